"""Queued index writes: one writer thread writes every batch queued at that moment in one
transaction.

Why: SQLite's WAL logs every page a transaction dirties, whole, and a batch of items dirties
pages all over the index's B-trees, since their keys are random (recency keys, ids, property
values). Built through batches of 1,000, an index of 70,000 items logged about 60 MB per batch
(14 pages per item), and the cost per item tripled between the first batches and the last.
Batches written together dirty each page once for all of them: while the writer commits, the
next batches queue up, so the cost per item falls as the queue grows and the writer keeps up
whatever the index size. PostgreSQL's GIN pending list and Elasticsearch's refresh interval
make the same trade.

For callers: ``put(batch, wait=False)`` returns once the batch is queued (a crawl's batches);
it is written in order with every batch queued before it, each batch whole, and is visible
once written: :meth:`WriteQueue.flush` waits for that. ``wait=True`` returns once the batch is
written. A failed write fails its waiting callers, and the next ``put`` or ``flush`` of a caller
that did not wait. Batches queued but not written when the process dies are lost with their
project states: the next crawl fetches those projects again, as it would any project it never
reached.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .store import StoreClosed

log = logging.getLogger(__name__)

T = TypeVar("T")

#: seconds a writer thread waits for work before it ends (the next put starts another)
_IDLE_S = 5.0


@dataclass(eq=False)
class _Entry(Generic[T]):
    batch: T
    size: int
    wait: bool
    done: bool = False
    error: BaseException | None = None


class WriteQueue(Generic[T]):
    """Batches for ``write`` (called with a list of batches, in the order queued, on the
    writer thread; it writes them in one transaction). ``size`` tells a batch's weight (its
    items): a transaction takes batches up to ``group`` of it (adapted so that writing one
    lasts about ``seconds``: see :meth:`_adapt`), and ``put`` waits while ``limit`` of it is queued
    (memory, and what a kill loses). The writer waits up to ``linger`` seconds for a group to
    fill while no caller waits."""

    def __init__(self, write: Callable[[list[T]], None], size: Callable[[T], int], *,
                 group: int = 20_000, limit: int = 20_000, linger: float = 0.5,
                 seconds: float = 5.0, smallest: int = 1_000, name: str = "index-writer",
                 ) -> None:
        self._write = write
        self._size = size
        self.group = self.largest = group
        self.seconds = seconds
        self.smallest = min(smallest, group)
        self.limit = limit
        self.linger = linger
        self.name = name
        self._cond = threading.Condition()
        self._queue: deque[_Entry[T]] = deque()
        self._queued = 0  # size of the queued batches
        self._writing: list[_Entry[T]] = []
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None  # a write no caller waited for
        self._flushing = 0  # callers in flush() or idle(): the writer does not linger
        #: (weight, seconds) of the latest transactions: what a write costs as the index grows
        self.history: deque[tuple[int, float]] = deque(maxlen=1000)
        self._closed = False

    def put(self, batch: T, wait: bool = True) -> None:
        entry = _Entry(batch, max(1, self._size(batch)), wait)
        with self._cond:
            self._raise_failed()
            while self._queued >= self.limit and not self._closed:
                self._cond.wait()
            if self._closed:
                raise StoreClosed("the index store is closed")
            self._queue.append(entry)
            self._queued += entry.size
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
            if not wait:
                return
            while not entry.done:
                self._cond.wait()
        if entry.error is not None:
            raise entry.error

    def flush(self) -> None:
        """Wait until every batch queued so far is written; raise the error of a failed write
        that no caller waited for (once)."""
        with self._cond:
            self._wait_written()
            self._raise_failed()
            if self._closed:
                raise StoreClosed("the index store is closed")

    def idle(self) -> None:
        """Wait until every batch queued so far is written (or failed)."""
        with self._cond:
            self._wait_written()

    def _wait_written(self) -> None:
        self._flushing += 1
        self._cond.notify_all()
        try:
            while (self._queue or self._writing) and not self._closed:
                self._cond.wait()
        finally:
            self._flushing -= 1

    def busy(self) -> bool:
        with self._cond:
            return bool(self._queue or self._writing)

    def close(self) -> None:
        """Fail the queued batches (StoreClosed) and let the writer thread end once its write
        under way stops (the store interrupts it); :meth:`join` waits for that."""
        with self._cond:
            self._closed = True
            dropped, self._queue, self._queued = list(self._queue), deque(), 0
            for entry in dropped:
                entry.done, entry.error = True, StoreClosed("the index store was closed")
            self._cond.notify_all()

    def join(self, timeout: float = 30.0) -> None:
        with self._cond:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # --- the writer thread ------------------------------------------------------------------

    def _raise_failed(self) -> None:
        if self._failed is not None:
            error, self._failed = self._failed, None
            raise error

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closed:
                    self._cond.wait(_IDLE_S)
                self._linger()
                if not self._queue or self._closed:
                    self._thread = None  # (the next put starts another)
                    return
                taken = [self._queue.popleft()]
                weight = taken[0].size
                while self._queue and weight + self._queue[0].size <= self.group:
                    taken.append(self._queue.popleft())
                    weight += taken[-1].size
                self._writing = taken
            started = time.perf_counter()
            errors = self._write_all(taken)
            seconds = time.perf_counter() - started
            with self._cond:
                self.history.append((weight, seconds))
                if errors[0] is None:
                    self._adapt(weight, seconds)
                for entry, error in zip(taken, errors, strict=True):
                    entry.done, entry.error = True, error
                    if error is not None and not entry.wait and self._failed is None:
                        self._failed = error
                self._queued -= weight
                self._writing = []
                self._cond.notify_all()

    def _adapt(self, weight: int, seconds: float) -> None:
        """Size the next groups so that writing one (``write``: the transaction, and what
        the store does after it, such as emptying the WAL) lasts about ``seconds``, within
        [``smallest``, ``largest``] of weight: as the index grows, an item costs more pages,
        and a group of a fixed size would hold more of the WAL, of the writer's page cache
        and of the wait before readers see anything."""
        if weight >= self.group or seconds > self.seconds:  # (a measure of a full group)
            rate = weight / max(seconds, 1e-6)
            self.group = int(min(self.largest, max(self.smallest, rate * self.seconds)))

    def _linger(self) -> None:
        """Wait up to ``linger`` for more batches while the queued ones are few and no caller
        waits for them: a transaction of one batch costs nearly what one of ten does."""
        deadline = time.monotonic() + self.linger
        while (self._queue and not self._closed and self._queued < self.group
               and not self._flushing and not any(entry.wait for entry in self._queue)):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _write_all(self, taken: list[_Entry[T]]) -> list[BaseException | None]:
        """Write the batches in one transaction; when that fails, each in its own (the error
        of one batch fails that batch alone), unless the store is closing."""
        try:
            self._write([entry.batch for entry in taken])
            return [None] * len(taken)
        except BaseException as exc:
            if len(taken) == 1 or isinstance(exc, StoreClosed) or self._closed:
                log.debug("index write failed: %s", exc)
                return [exc] * len(taken)
        errors: list[BaseException | None] = []
        for entry in taken:
            try:
                self._write([entry.batch])
                errors.append(None)
            except BaseException as exc:
                log.warning("an index write failed: %s", exc)
                errors.append(exc)
        return errors
