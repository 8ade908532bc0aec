"""Encoded answers of catalog reads, kept while the index is unchanged.

A repeated read (the sidebar typing and erasing, a client re-reading a page, paging back) is
answered from here on the event loop: no thread hop, no store work, no encoding. A lookup is
a dict access under a lock held for microseconds, never I/O, so it may run on the event loop.

Answers are shared by every user: the catalog has no per-user view (a per-user filter would
have to join the key). An answer is valid while no write went through this server's store since
the read started (:attr:`~sharinghub_server.service.CatalogService.writes`); writes by other
processes to the same index (``sharinghub-lab index`` on a served file) are not counted, so
answers also expire after :data:`MAX_AGE` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

#: seconds an answer is reused at most (bounds how late a write by another process shows)
MAX_AGE = 3.0
#: answers kept, and their total size
MAX_ENTRIES = 256
MAX_BYTES = 32 << 20
#: bigger answers (pages of hundreds of items) and keys (POST bodies) are not kept
MAX_ANSWER_BYTES = 1 << 20
MAX_KEY_BYTES = 16 << 10


@dataclass(frozen=True)
class Answer:
    body: bytes
    content_type: str


class AnswerCache:
    def __init__(self, writes: Callable[[], int], *, max_age: float = MAX_AGE,
                 max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        """``writes()``: how many writes the store has had (read before each answer is
        computed, compared at each lookup)."""
        self._writes = writes
        self.max_age = max_age
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[int, float, Answer]] = OrderedDict()
        self._bytes = 0

    def epoch(self) -> int:
        """Take this before reading the store: an answer put with it is valid only if no
        write happened since (one that lands during the read makes it stale at once)."""
        return self._writes()

    def get(self, key: Hashable) -> Answer | None:
        now = time.monotonic()
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            epoch, expires, answer = found
            if epoch != self._writes() or now >= expires:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return answer

    def put(self, key: Hashable, epoch: int, answer: Answer) -> None:
        size = len(answer.body)
        if size > MAX_ANSWER_BYTES or epoch != self._writes():
            return
        with self._lock:
            self._drop(key)
            self._entries[key] = (epoch, time.monotonic() + self.max_age, answer)
            self._bytes += size
            while self._entries and (len(self._entries) > self.max_entries
                                     or self._bytes > self.max_bytes):
                self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._bytes -= len(found[2].body)


def request_key(method: str, protocol: str, host: str, uri: str, body: bytes = b""
                ) -> Hashable | None:
    """What a catalog read's answer depends on: the absolute URL (hrefs are built from it)
    and the body; None when the body is too big to be worth keeping as a key."""
    if len(body) > MAX_KEY_BYTES or len(uri) > MAX_KEY_BYTES:
        return None
    return (method, protocol, host, uri, body)
