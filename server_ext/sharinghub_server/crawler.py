"""The crawler: sources → records → STAC items → index, incrementally.

A re-crawl lists the projects (cheap: one request per 100 projects and topic), then fetches
details only for projects that are new or whose activity timestamp moved. GitLab updates
``last_activity_at`` at most about hourly, so projects active within the last hour also get a
cheap repository check (head commit, tags). Deletions happen only after a complete listing;
a project that fails to fetch keeps its previous items.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .catalog.categories import Category
from .catalog.frontmatter import MAX_README_CHARS
from .catalog.item import project_items
from .catalog.timeutil import iso, parse_datetime
from .index.store import DirectUpdates, IndexStore, ProjectUpdate
from .sources.base import Source, SourceError, repo_fingerprint
from .sources.records import ProjectRecord
from .status import STATUS_KEY, last_status

__all__ = ["CrawlError", "CrawlStatus", "Crawler", "SourceReport", "last_status"]

log = logging.getLogger(__name__)

#: bump when the mapping changes, so stored projects are re-mapped (not re-fetched)
MAPPING_VERSION = "2"
#: fields a listing gives; a change there re-maps the project without fetching it again
_LIST_FIELDS = ("name", "topics", "description", "web_url", "default_branch", "star_count",
                "visibility", "created_at", "host_name", "host_url", "repo_url")

Progress = Callable[[int, int | None], None]


@dataclass
class CrawlError:
    project: str
    message: str


@dataclass
class SourceReport:
    source: str
    ok: bool = False
    listed: int = 0
    fetched: int = 0
    probed: int = 0
    remapped: int = 0
    unchanged: int = 0
    deleted: int = 0
    error: str | None = None


@dataclass
class CrawlStatus:
    """What ``GET sharinghub/api/index`` reports as ``last_crawl``."""

    started: str
    finished: str | None = None
    ok: bool = False
    items: dict[str, int] = field(default_factory=dict)
    errors: list[CrawlError] = field(default_factory=list)
    sources: list[SourceReport] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Crawler:
    def __init__(self, store: IndexStore, sources: Iterable[Source],
                 categories: tuple[Category, ...], *, recent_window: float = 3600,
                 batch_size: int = 200, direct: DirectUpdates | None = None) -> None:
        self.store = store
        self.sources = list(sources)
        self.categories = categories
        self.recent_window = timedelta(seconds=recent_window)
        self.batch_size = batch_size
        self.direct = direct or DirectUpdates()
        self._config_hash = hashlib.sha1(
            (MAPPING_VERSION + repr(categories)).encode()).hexdigest()[:12]

    def crawl(self, progress: Progress | None = None,
              cancel: threading.Event | None = None) -> CrawlStatus:
        """Crawl every source once. ``ok`` is True when every source was crawled completely;
        per-project problems are listed in ``errors`` and do not make it False."""
        status = CrawlStatus(started=iso(_now()))
        progress = progress or (lambda done, total: None)
        offset = 0
        for source in self.sources:
            report = SourceReport(source=source.key)
            status.sources.append(report)
            try:
                offset = self._crawl_source(source, report, status.errors, progress, offset, cancel)
                report.ok = True
            except SourceError as exc:
                report.error = str(exc)
                status.errors.append(CrawlError(project="", message=str(exc)))
                log.warning("crawl of %s failed: %s", source.key, exc)
            except Exception as exc:  # a bug: this source's crawl ends, the others go on
                log.exception("crawl of %s failed", source.key)
                report.error = f"{type(exc).__name__}: {str(exc)[:300]}"
                status.errors.append(CrawlError(project="", message=(
                    f"crawl of {source.key} failed: {report.error}")))
            if cancel is not None and cancel.is_set():
                break
        status.ok = all(r.ok for r in status.sources) and not (cancel and cancel.is_set())
        status.items = {cid: s.count for cid, s in self.store.collections().items()}
        status.finished = iso(_now())
        self.store.set_meta(STATUS_KEY, status.to_json())
        return status

    # --- one source -----------------------------------------------------------------------

    def _crawl_source(self, source: Source, report: SourceReport, errors: list[CrawlError],
                      progress: Progress, offset: int,
                      cancel: threading.Event | None) -> int:
        topics = [c.gitlab_topic for c in self.categories]
        listed_at = self.direct.ticket()
        listed = source.list_projects(topics)  # raises SourceError unless complete
        report.listed = len(listed)
        states = self.store.project_states(source.key)
        total = offset + len(listed)
        done = offset
        progress(done, total)
        recent_since = _now() - self.recent_window

        #: each update with the ticket of the read it comes from
        pending: list[tuple[ProjectUpdate, int]] = []

        def flush() -> None:
            if pending:
                with self.direct.writing():  # not what a publish re-indexed since
                    fresh = [u for u, read in pending
                             if not self.direct.stale(source.key, u.project, read)]
                    self.store.apply(source.key, fresh, [], wait=False)
                pending.clear()

        work: list[tuple[ProjectRecord, dict[str, Any] | None, bool]] = []
        for record in listed:
            state = states.get(record.id)
            recent = _is_recent(record, recent_since)
            if (state is None or not state.get("complete")
                    or state["record"].get("last_activity_at") != record.last_activity_at
                    or recent):
                work.append((record, state, recent))
                continue
            try:
                update = self._remap_if_needed(record, state, errors)
            except Exception as exc:  # a bug: this project keeps its indexed items
                log.exception("re-mapping %s failed", record.id)
                errors.append(CrawlError(record.id, f"re-mapping failed ({type(exc).__name__}: "
                                         f"{str(exc)[:200]}); kept the previously indexed "
                                         "version"))
                update = None
            if update is None:
                report.unchanged += 1
            else:
                report.remapped += 1
                pending.append((update, listed_at))
            done += 1
        progress(done, total)

        with ThreadPoolExecutor(max_workers=max(1, source.workers)) as pool:
            futures = {pool.submit(self._visit, source, record, state, recent, report,
                                   listed_at): record
                       for record, state, recent in work}
            for future in as_completed(futures):
                record = futures[future]
                try:
                    update, problems, read = future.result()
                except Exception as exc:  # SourceError, or a bug: the other projects go on
                    if not isinstance(exc, SourceError):
                        log.error("crawling %s failed", record.id, exc_info=exc)
                        exc = f"{type(exc).__name__}: {str(exc)[:200]}"
                    kept = record.id in states
                    errors.append(CrawlError(record.id, f"{exc}" + (
                        " (kept the previously indexed version)" if kept else " (not indexed)")))
                    update, problems, read = None, [], 0
                errors.extend(CrawlError(record.id, p) for p in problems)
                if update is not None:
                    pending.append((update, read))
                    if len(pending) >= self.batch_size:
                        flush()
                done += 1
                progress(done, total)
                if cancel is not None and cancel.is_set():
                    for f in futures:
                        f.cancel()
                    break
        flush()
        listed_ids = {r.id for r in listed}
        gone = [pid for pid in states if pid not in listed_ids]
        if gone and not (cancel is not None and cancel.is_set()):
            with self.direct.writing():
                gone = [pid for pid in gone if not self.direct.stale(source.key, pid, listed_at)]
                self.store.apply(source.key, [], gone, wait=False)
            report.deleted = len(gone)
        self.store.flush()  # the source's batches (a cancelled crawl's too) are visible now
        return done

    def _visit(self, source: Source, record: ProjectRecord, state: dict[str, Any] | None,
               recent: bool, report: SourceReport, listed_at: int,
               ) -> tuple[ProjectUpdate | None, list[str], int]:
        """Fetch the project if it changed; for a recently active project whose timestamp
        did not move, a fingerprint check decides. Also returns the ticket of the read."""
        read = self.direct.ticket()
        if (state is not None and state.get("complete") and recent
                and state["record"].get("last_activity_at") == record.last_activity_at
                and state.get("fingerprint")):
            report.probed += 1
            if source.fingerprint(record) == state["fingerprint"]:
                found: list[CrawlError] = []
                update = self._remap_if_needed(record, state, found)
                # a remap rebuilds the stored record, read when the crawl listed
                return update, [e.message for e in found], listed_at
        full = source.fetch(record, fingerprint=recent)
        report.fetched += 1
        fingerprint = repo_fingerprint(full.head_commit, full.tags) if recent else None
        return (*self._update(full, fingerprint), read)

    def index_project(self, source: Source, project: str) -> ProjectUpdate | None:
        """Re-index one project now, outside a crawl (after a publish): read it from its
        source, map it and write it at once; a crawl running meanwhile keeps it (see
        :class:`DirectUpdates`). Returns the update written, None if the project is gone
        (its items are then removed)."""
        self.direct.begin(source.key, project)
        record = source.project(project)
        if record is None:
            with self.direct.writing():
                self.store.apply(source.key, [], [project])
            return None
        full = source.fetch(record, fingerprint=True)
        update, _ = self._update(full, repo_fingerprint(full.head_commit, full.tags))
        with self.direct.writing():
            self.store.apply(source.key, [update], [])
        return update

    def _update(self, record: ProjectRecord, fingerprint: str | None,
                ) -> tuple[ProjectUpdate, list[str]]:
        built = project_items(record, self.categories)
        stored = record.to_json()
        if stored["readme"] and len(stored["readme"]) > MAX_README_CHARS:
            # the mapping reads no further; one more character keeps the README's "too
            # long" problem when the stored record is mapped again
            stored["readme"] = stored["readme"][: MAX_README_CHARS + 1]
        state = {
            "record": stored,
            "list": self._list_key(record),
            "fingerprint": fingerprint,
            "problems": built.problems,
            "complete": True,
        }
        return ProjectUpdate(project=record.id, state=state, items=built.items), built.problems

    def _remap_if_needed(self, listed: ProjectRecord, state: dict[str, Any],
                         errors: list[CrawlError]) -> ProjectUpdate | None:
        """Stored details + fresh list-level fields, re-mapped only if those fields moved."""
        if state.get("list") == self._list_key(listed):
            errors.extend(CrawlError(listed.id, p) for p in state.get("problems", []))
            return None
        stored = ProjectRecord.from_json(state["record"])
        for name in _LIST_FIELDS:
            setattr(stored, name, getattr(listed, name))
        update, problems = self._update(stored, state.get("fingerprint"))
        errors.extend(CrawlError(listed.id, p) for p in problems)
        return update

    def _list_key(self, record: ProjectRecord) -> str:
        values = {name: getattr(record, name) for name in _LIST_FIELDS}
        return self._config_hash + hashlib.sha1(
            json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _is_recent(record: ProjectRecord, since: datetime) -> bool:
    try:
        last = parse_datetime(record.last_activity_at)
    except ValueError:
        return True
    return last is None or last >= since
