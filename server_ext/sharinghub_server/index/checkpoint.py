"""WAL checkpoints off the writer's path.

SQLite's default copies the write-ahead log into the database file at the end of the commit
that takes the log past 1,000 pages, in the committing thread: a write of a big batch then
pays for copying its pages (scattered: items are keyed by recency, their property index by
value) and an fsync, and a bulk load re-copies the same index pages after every batch. Built
through batches of 1,000 items, 40,000 items took 74 s that way, 12 s with the copy done here.

The index's connections never checkpoint on commit (``wal_autocheckpoint = 0``); after each
write, :meth:`Checkpointer.wrote` wakes one thread that checkpoints PASSIVE (never waiting on
readers or the writer, which go on meanwhile) at most once per ``interval``: several batches'
pages are copied once. What is committed is durable in the log either way.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, path: str, *, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        """A write committed: checkpoint soon (the thread starts with the first write)."""
        with self._lock:
            if self._stopping.is_set():
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="sharinghub-index-checkpoint")
                self._thread.start()
        self._wake.set()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (after a checkpoint under way); the store's last connection to
        close checkpoints whatever is left, as SQLite does."""
        with self._lock:
            self._stopping.set()
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            while True:
                self._wake.wait()
                if self._stopping.is_set():
                    return
                self._wake.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # (busy, a file gone): the next write retries
                    log.debug("index checkpoint skipped: %s", exc)
                if self._stopping.wait(self.interval):
                    return
        finally:
            conn.close()
