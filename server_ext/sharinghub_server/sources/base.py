"""What the crawler needs of a source of projects (GitLab, local folders)."""

from __future__ import annotations

import hashlib
from typing import Protocol

from .records import ProjectRecord, Tag


class SourceError(RuntimeError):
    """A source could not be read (unreachable, bad token, ...). One line, no secrets."""


class Source(Protocol):
    #: identifies the source in the index ("gitlab:https://...", "local:/path")
    key: str
    #: how many projects may be fetched at once
    workers: int

    def list_projects(self, topics: list[str]) -> list[ProjectRecord]:
        """Every project carrying at least one of ``topics``, with list-level fields only
        (no README, files, releases). Raises SourceError unless the listing is complete."""
        ...

    def project(self, project_id: str) -> ProjectRecord | None:
        """One project by id, with list-level fields (what :meth:`list_projects` gives), or
        None if it does not exist (for re-indexing a single project at once)."""
        ...

    def fetch(self, project: ProjectRecord, *, fingerprint: bool) -> ProjectRecord:
        """The full record of a listed project. Problems with single files go into
        ``record.errors``; SourceError when the project itself cannot be read. With
        ``fingerprint``, the record also carries what :meth:`fingerprint` compares."""
        ...

    def fingerprint(self, project: ProjectRecord) -> str:
        """A cheap token of the repository's state (head commit, tags): it changes on every
        push or tag, even when the project's activity timestamp lags behind."""
        ...


def repo_fingerprint(head: str | None, tags: list[Tag]) -> str:
    """The token :meth:`Source.fingerprint` returns: head commit and every tag's target."""
    text = "\n".join([head or "", *sorted(f"{t.name}={t.commit}" for t in tags)])
    return hashlib.sha1(text.encode()).hexdigest()
