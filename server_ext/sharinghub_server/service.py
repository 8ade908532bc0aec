"""The catalog service: store, sources, categories and the crawl scheduler, wired together.

Core code with no Jupyter import; the server extension builds one from its traits and its
handlers call it. Everything here may block (SQLite, git, GitLab): handlers run it off the
event loop.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from .catalog.categories import Category
from .index.store import IndexStore
from .scheduler import CrawlScheduler
from .sources.records import ProjectRecord

if TYPE_CHECKING:  # the crawler and sources pull in python-gitlab, pystac, shapely: lazily
    from .crawler import Crawler
    from .sources.gitlab import GitLabSource
    from .sources.local import LocalSource


class NotFound(LookupError):
    """An unknown item, collection or file (404)."""


class BadRequest(ValueError):
    """A request that cannot be answered as asked (400)."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to stream from GitLab: the URL (no secret in it) and the headers to send."""

    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class LocalFile:
    path: Path


class CatalogService:
    def __init__(self, store: IndexStore, categories: tuple[Category, ...],
                 sources: list[GitLabSource | LocalSource], *, crawl_interval: float = 600):
        self.store = store
        self.categories = categories
        self.sources = {s.key: s for s in sources}
        self.scheduler = CrawlScheduler(self._crawler, store, interval=crawl_interval)

    def _crawler(self) -> Crawler:
        from .crawler import Crawler

        return Crawler(self.store, list(self.sources.values()), self.categories)

    def start(self) -> None:
        """Background crawls, if there is anything to crawl."""
        if self.sources:
            self.scheduler.start()

    def close(self) -> None:
        self.scheduler.stop()
        self.store.close()

    def category(self, cid: str) -> Category:
        for c in self.categories:
            if c.id == cid:
                return c
        raise NotFound(f"no collection {cid!r}")

    @property
    def collection_ids(self) -> list[str]:
        return [c.id for c in self.categories]

    # --- downloads ------------------------------------------------------------------------

    def resolve_download(self, item_id: str, path: str, ref: str | None) -> RemoteFile | LocalFile:
        """Where a repository file of an item's project is, for the download endpoint."""
        clean = posixpath.normpath(path.lstrip("/"))
        if not path or clean.startswith("..") or clean == "." or "\x00" in path:
            raise BadRequest(f"bad file path {path!r}")
        found = self.store.project(item_id)
        if found is None:
            raise NotFound(f"no item {item_id!r}")
        source_key, state = found
        record = ProjectRecord.from_json(state["record"])
        from .sources.gitlab import GitLabSource
        from .sources.local import LocalSource

        source = self.sources.get(source_key)
        if isinstance(source, GitLabSource):
            url = (f"{source.url}/api/v4/projects/{record.gitlab_id}/repository/files/"
                   f"{quote(clean, safe='')}/raw?ref={quote(ref or record.default_branch)}"
                   "&lfs=true")
            return RemoteFile(url=url, headers=source.auth_headers())
        if isinstance(source, LocalSource):
            root = (source.folder / record.name).resolve()
            target = (root / clean).resolve()
            if not target.is_relative_to(root) or not target.is_file():
                raise NotFound(f"no file {clean!r} in {item_id}")
            if ".git" in target.relative_to(root).parts:
                raise NotFound(f"no file {clean!r} in {item_id}")
            return LocalFile(target)
        raise NotFound(f"the source of {item_id} is not configured on this server")
