"""The catalog service: store, sources, categories and the crawl scheduler, wired together.

Core code with no Jupyter import; the server extension builds one from its traits and its
handlers call it. Everything here may block (SQLite, git, GitLab): handlers run it off the
event loop.
"""

from __future__ import annotations

import functools
import logging
import math
import posixpath
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .catalog.categories import Category
from .index.query import Page, Query
from .index.store import IndexStore
from .scheduler import CrawlScheduler
from .sources.records import ProjectRecord

if TYPE_CHECKING:  # the crawler and sources pull in python-gitlab, pystac, shapely: lazily
    from .crawler import Crawler
    from .index.store import ProjectUpdate
    from .jobs import Job
    from .publish.service import Publisher
    from .sources.gitlab import GitLabSource
    from .sources.local import BlobCache, LocalSource


log = logging.getLogger(__name__)


class NotFound(LookupError):
    """An unknown item, collection or file (404)."""


class BadRequest(ValueError):
    """A request that cannot be answered as asked (400)."""


class Forbidden(PermissionError):
    """The user may not do this (403): no push rights on the project, say."""


class Conflict(RuntimeError):
    """The request clashes with what exists (409): an existing project or tag, uncommitted
    changes, a publish already running."""


class Upstream(RuntimeError):
    """GitLab (or git) failed where it should not have (502); one line, no secrets."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to stream from GitLab: the URL (no secret in it) and the headers to send."""

    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int


class CatalogService:
    def __init__(self, store: IndexStore, categories: tuple[Category, ...],
                 sources: list[GitLabSource | LocalSource], *, crawl_interval: float = 600,
                 root_dir: str | Path = ".", dvc_remotes: dict | None = None,
                 max_jobs: int = 2, dvc_default_remote: str = ""):
        from .datasets.versions import VersionReader
        from .index.store import DirectUpdates
        from .jobs import JobManager

        self.store = store
        self.categories = categories
        self.collection_ids = tuple(c.id for c in categories)
        self.sources = {s.key: s for s in sources}
        self.root_dir = Path(root_dir).resolve()
        self.dvc_remotes = dict(dvc_remotes or {})
        self.jobs = JobManager(max_workers=max_jobs)
        self._versions = VersionReader()
        #: item, its overlays -> the item as served (the tracking service's registered models
        #: and tracking link); by default the overlays are merged as they are
        self.decorate_item: Callable[[dict, dict], dict] | None = None
        #: re-indexes outside crawls (publishes) that a running crawl must not undo
        self.direct = DirectUpdates()
        self.scheduler = CrawlScheduler(self._crawler, store, interval=crawl_interval)
        self.dvc_default_remote = dvc_default_remote
        self._blob_cache: BlobCache | None = None
        self._blob_lock = threading.Lock()
        #: when the catalog was last read (``time.monotonic``): background work that would
        #: slow reads down waits for a quiet moment (the MLflow experiments sync)
        self.last_read = -math.inf

    @functools.cached_property
    def publisher(self) -> Publisher:
        """New projects, dataset versions, metadata edits (loaded on first use)."""
        from .publish.service import Publisher

        return Publisher(self, dvc_default_remote=self.dvc_default_remote)

    def _crawler(self) -> Crawler:
        from .crawler import Crawler

        return Crawler(self.store, list(self.sources.values()), self.categories,
                       direct=self.direct)

    def reindex(self, source: Any, project: str) -> ProjectUpdate | None:
        """Index one project of ``source`` now (after a publish): search and versions show
        it at once, and a crawl running meanwhile does not undo it."""
        return self._crawler().index_project(source, project)

    def start(self) -> None:
        """Background crawls, if there is anything to crawl."""
        if self.sources:
            self.scheduler.start()

    def close(self) -> None:
        self.scheduler.stop()
        self.jobs.shutdown()
        self.store.close()
        if self._blob_cache is not None:
            self._blob_cache.close()

    def category(self, cid: str) -> Category:
        for c in self.categories:
            if c.id == cid:
                return c
        raise NotFound(f"no collection {cid!r}")

    @property
    def writes(self) -> int:
        """Writes to the index made by this process so far (crawls, registered models,
        publishes, maintenance): an answer computed before none since is still the index's
        answer."""
        return self.store.writes

    def project(self, item_id: str) -> tuple[ProjectRecord, Any]:
        """The record and the configured source of an item's project (NotFound if none)."""
        return self._project(item_id)

    def _project(self, item_id: str) -> tuple[ProjectRecord, Any]:
        """The record and the configured source of an item's project."""
        found = self.store.project(item_id)
        if found is None:
            raise NotFound(f"no item {item_id!r}")
        source_key, state = found
        source = self.sources.get(source_key)
        if source is None:
            raise NotFound(f"the source of {item_id} is not configured on this server")
        return ProjectRecord.from_json(state["record"]), source

    # --- items, as served: crawled, with their overlays merged in ----------------------------

    def get_item(self, collection: str, item_id: str) -> dict | None:
        self.last_read = time.monotonic()
        item = self.store.get_item(collection, item_id)
        if item is None:
            return None
        return self._with_overlays([item])[0]

    def search(self, query: Query) -> Page:
        self.last_read = time.monotonic()
        page = self.store.search(query)
        page.items = self._with_overlays(page.items)
        return page

    def _with_overlays(self, items: list[dict]) -> list[dict]:
        from .catalog.models import apply_overlays

        found = self.store.overlays([item["id"] for item in items]) if items else {}
        decorate = self.decorate_item or (lambda item, overlays: apply_overlays(item, overlays))
        out = []
        for item in items:
            try:
                out.append(decorate(item, found.get(item["id"], {})))
            except Exception:  # an overlay must never cost the item itself
                log.exception("sharinghub: overlays of %s not applied", item["id"])
                out.append(item)
        return out

    # --- DVC ------------------------------------------------------------------------------

    def dvc_versions(self, item_id: str) -> dict[str, Any]:
        from .sources.base import SourceError

        record, source = self._project(item_id)
        try:
            return {"item": item_id, "versions": self._versions.versions(source, record)}
        except SourceError as exc:
            raise BadRequest(str(exc)) from None

    def start_pull(self, item_id: str, rev: str | None, dest: str | None) -> Job:
        from .datasets.pull import PullPlan, resolve_dest, run_pull
        from .jobs import Job
        from .sources.base import SourceError
        from .sources.local import valid_ref

        if rev is not None and (not isinstance(rev, str) or not valid_ref(rev)):
            raise BadRequest("rev must be a branch, tag or commit (not an option, no spaces)")
        if dest is not None and not isinstance(dest, str):
            raise BadRequest("dest must be a path relative to the Jupyter root")
        record, source = self._project(item_id)
        try:
            target = resolve_dest(self.root_dir, dest, item_id)
            url = source.clone_url(record)
        except (ValueError, SourceError) as exc:
            raise BadRequest(str(exc)) from None
        plan = PullPlan(item=item_id, rev=rev, dest=target, repo_url=url,
                        token=source.git_token(), remote_settings=self.dvc_remotes)
        rel = target.relative_to(self.root_dir).as_posix()
        job = Job(kind="pull", item=item_id, rev=rev, dest=rel)
        return self.jobs.submit(job, lambda j: run_pull(j, plan))

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def cancel_job(self, job_id: str) -> Job:
        self.job(job_id)
        return self.jobs.cancel(job_id)

    # --- downloads ------------------------------------------------------------------------

    def resolve_download(self, item_id: str, path: str, ref: str | None) -> RemoteFile | LocalFile:
        """Where a repository file of an item's project is, for the download endpoint."""
        clean = posixpath.normpath(path.lstrip("/"))
        if not path or clean.startswith("..") or clean == "." or "\x00" in path:
            raise BadRequest(f"bad file path {path!r}")
        from .sources.gitlab import GitLabSource
        from .sources.local import LocalSource, served

        record, source = self._project(item_id)
        if isinstance(source, GitLabSource):
            url = (f"{source.url}/api/v4/projects/{record.gitlab_id}/repository/files/"
                   f"{quote(clean, safe='')}/raw?ref={quote(ref or record.default_branch)}"
                   "&lfs=true")
            return RemoteFile(url=url, headers=source.auth_headers())
        if isinstance(source, LocalSource):
            root = (source.folder / record.name).resolve()
            if ref and (root / ".git").exists():
                return self._committed(item_id, root, clean, ref)
            if ref and ref != record.default_branch:
                raise NotFound(f"{item_id} is not a git repository: no revision {ref!r}")
            # no ref (or a folder's only "branch"): the working tree, as it is now
            target = (root / clean).resolve()
            try:
                if not target.is_relative_to(root) or not target.is_file():
                    raise NotFound(f"no file {clean!r} in {item_id}")
            except OSError:  # a name too long for the file system, say
                raise NotFound(f"no file {clean!r} in {item_id}") from None
            # local-only files stay here, asked for directly or through a symlink
            if not served(Path(clean)) or not served(target.relative_to(root)):
                raise NotFound(f"no file {clean!r} in {item_id}")
            return LocalFile(target, target.stat().st_size)
        raise NotFound(f"no downloads from the source of {item_id}")

    def _committed(self, item_id: str, root: Path, clean: str, ref: str) -> LocalFile:
        """A local git project's file as committed at ``ref`` (blocking: git)."""
        from .sources.base import SourceError
        from .sources.local import RevisionNotFound, committed_file, served

        try:
            found = committed_file(root, ref, clean, served)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        except RevisionNotFound as exc:
            raise NotFound(f"{item_id}: {exc}") from None
        try:
            if found.lfs is not None:  # an LFS pointer: the file it points to
                path = self._blobs.alias(found, found.lfs)
            elif found.here is not None:  # the working tree holds these very bytes
                path = found.here
            else:
                path = self._blobs.file(found)
            return LocalFile(path, path.stat().st_size)
        except (OSError, SourceError) as exc:
            raise Upstream(f"{item_id}: {clean} could not be read at {ref!r}: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                           ) from None

    @property
    def _blobs(self) -> BlobCache:
        """Files committed at other revisions than the working tree's, written out for the
        download endpoint (removed at :meth:`close`)."""
        with self._blob_lock:
            if self._blob_cache is None:
                from .sources.local import BlobCache

                self._blob_cache = BlobCache()
            return self._blob_cache
