"""The index store interface. SQLite is the embedded default; a PostgreSQL store can follow
behind the same interface.

The store holds two things:

* **items**: STAC Item dicts (JSON-ready), each with ``collection`` set. One project can give
  several items (one per collection it belongs to); items are grouped by ``(source, project)``.
* **overlays**: what is known about an item from elsewhere (registered MLflow models), kept
  apart from crawled items so that an update shows at once and no crawl undoes it.
* **project states**: whatever the crawler wants to remember about a project between crawls
  (its :class:`~sharinghub_server.sources.records.ProjectRecord` JSON, fingerprints).

Writes are transactional: :meth:`IndexStore.apply` replaces the items of many projects and
deletes others in one transaction, so readers never see half of a batch. A crawl queues its
batches (``wait=False``) and flushes at its end: a store may write queued batches together.
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .query import Page, Query


@dataclass
class ProjectUpdate:
    """Replace everything the index holds for one project of one source."""

    project: str  # the project id (its full path; the item id)
    state: dict[str, Any]  # opaque crawler state, stored as JSON
    items: list[dict] = field(default_factory=list)  # the project's items, one per collection


class DirectUpdates:
    """Projects re-indexed outside a crawl (a publish), so that a crawl running meanwhile
    never writes back what it read before: each read of a source and each direct re-index
    gets a ticket from one counter; a crawl's update (or deletion) of a project is dropped
    when the project was re-indexed directly after the crawl read it. The check and the
    write happen under one lock, and so does the direct write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._direct: dict[tuple[str, str], int] = {}

    def ticket(self) -> int:
        """Taken just before reading a source: orders the read against direct updates."""
        with self._lock:
            return next(self._counter)

    def begin(self, source: str, project: str) -> None:
        """A direct re-index of ``project`` starts (before it reads the source)."""
        with self._lock:
            self._direct[(source, project)] = next(self._counter)

    def stale(self, source: str, project: str, read: int) -> bool:
        """Whether data read with ticket ``read`` is older than a direct re-index (call
        inside :meth:`writing`)."""
        return self._direct.get((source, project), 0) > read

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        with self._lock:
            yield


@dataclass
class CollectionSummary:
    count: int
    bbox: tuple[float, float, float, float] | None  # union of item bboxes, None if none has one
    start: str | None  # earliest start_datetime/datetime (ISO 8601), None if no item
    end: str | None  # latest end_datetime/datetime


class StoreClosed(RuntimeError):
    """The store was closed (the server is stopping): before this operation, or during it,
    which then stopped."""


class IndexStore(abc.ABC):
    """Persistent, transactional catalog index."""

    @abc.abstractmethod
    def project_states(self, source: str) -> dict[str, dict[str, Any]]:
        """project id -> state, for every project of ``source`` in the index."""

    @abc.abstractmethod
    def apply(self, source: str, updates: list[ProjectUpdate], deletions: list[str], *,
              wait: bool = True) -> None:
        """In one transaction: replace the items and state of each updated project, and remove
        the items and state of each project id in ``deletions`` (for this source only).
        Batches are written in the order they are given. ``wait=False``: return once the batch
        is queued (it may be written together with other queued batches); it is visible once
        written, which :meth:`flush` waits for. An item the index cannot hold raises
        ValueError here, either way."""

    def flush(self) -> None:  # noqa: B027 - stores that write at once have nothing queued
        """Wait until every batch queued with ``apply(wait=False)`` is written; raise the
        error of one whose write failed."""

    def warm_up(self) -> tuple[int, int]:
        """Read in the background what the store holds in memory for its searches: what it
        held the last time it was open, and what helps whatever the searches (a server calls
        it once start-up has settled); how many parts of each. Stores that hold nothing have
        nothing to read."""
        return 0, 0

    @abc.abstractmethod
    def get_item(self, collection: str, item_id: str) -> dict | None: ...

    @abc.abstractmethod
    def project(self, project: str) -> tuple[str, dict[str, Any]] | None:
        """(source, state) of the project with this id (an item id), if indexed."""

    @abc.abstractmethod
    def search(self, query: Query) -> Page:
        """Items matching ``query``; raises QueryError for what cannot be answered."""

    @abc.abstractmethod
    def collections(self) -> dict[str, CollectionSummary]:
        """Per collection id present in the index: count and extents computed from its items."""

    @abc.abstractmethod
    def queryables(self, collection: str | None = None) -> dict[str, str]:
        """Property name -> JSON type ("string", "number", "integer", "boolean", "array",
        "object") of the properties items hold (of one collection, or all)."""

    @abc.abstractmethod
    def set_overlay(self, item_id: str, key: str, value: Any | None) -> None:
        """Store (``None``: remove) what is known about an item outside its project, such as
        its registered models. Overlays belong to the item id, not to a crawl: crawls neither
        see nor remove them."""

    @abc.abstractmethod
    def overlays(self, item_ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """item id -> {key: value} for the given ids (all, if ``None``) that have overlays."""

    @abc.abstractmethod
    def get_meta(self, key: str) -> Any | None:
        """A JSON value stored under ``key`` (crawl status and the like)."""

    @abc.abstractmethod
    def set_meta(self, key: str, value: Any) -> None: ...

    @property
    @abc.abstractmethod
    def writes(self) -> int:
        """Write transactions committed through this store object so far, counted in memory
        (no I/O: read on the event loop): an answer computed when it had a value is still
        the index's answer while it keeps it, but for writes by other processes."""

    def close(self) -> None:  # noqa: B027 - optional for stores holding no resources
        """Release connections; operations under way stop with :class:`StoreClosed`, and so
        do later ones. Closing again does nothing."""


def open_store(url: str) -> IndexStore:
    """Open the store an ``index_url`` names: ``sqlite:///path`` (or a plain path)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        raise NotImplementedError("the PostgreSQL index store is not built yet; use sqlite:///")
    from .sqlite import SQLiteStore

    path = url
    if url.startswith("sqlite://"):
        path = url[len("sqlite://"):]  # sqlite:///abs/path -> /abs/path
        if path.startswith("//"):
            path = path[1:]  # SQLAlchemy's sqlite:////abs/path spelling
    return SQLiteStore(path)
