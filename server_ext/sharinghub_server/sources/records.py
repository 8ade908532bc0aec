"""What a source knows about one project, before any STAC mapping.

Sources (GitLab, local folders) produce :class:`ProjectRecord` objects; the catalog turns them
into STAC items. Records are plain data, serialisable to JSON, so the crawler can keep them in the
index and rebuild items without asking the source again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Release:
    tag_name: str
    name: str = ""
    released_at: str | None = None
    description: str = ""
    archive_url: str | None = None


@dataclass
class Tag:
    name: str
    commit: str
    date: str | None = None


@dataclass(frozen=True)
class Ref:
    """A version of a project: a tag, or the default branch's head."""

    rev: str
    kind: str  # "tag" | "branch"
    commit: str
    date: str | None


@dataclass
class ProjectRecord:
    """One project as a source sees it. ``id`` is the full path and becomes the STAC item id."""

    source: str
    id: str
    name: str
    topics: list[str] = field(default_factory=list)
    created_at: str | None = None
    last_activity_at: str | None = None
    description: str = ""
    web_url: str = ""
    #: who hosts the project, for the default ``host`` provider: "GitLab (https://...)"
    host_name: str = ""
    #: the host's base URL (producer URLs are ``<host_url>/<top namespace>``)
    host_url: str = ""
    gitlab_id: int | None = None
    default_branch: str = "main"
    star_count: int = 0
    visibility: str = "public"
    repo_url: str | None = None
    readme: str | None = None
    files: list[str] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    head_commit: str | None = None
    license_id: str | None = None
    license_name: str | None = None
    license_url: str | None = None
    #: path -> text of the DVC files the mapping reads: ``*.dvc``, ``dvc.lock``, ``.dvc/config``
    dvc_files: dict[str, str] = field(default_factory=dict)
    #: problems met while reading the project (shown by the crawl status, never fatal)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProjectRecord:
        data = dict(data)
        data["releases"] = [Release(**r) for r in data.get("releases") or []]
        data["tags"] = [Tag(**t) for t in data.get("tags") or []]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def has_dvc(self) -> bool:
        return any(f == ".dvc" or f.startswith(".dvc/") for f in self.files)
