"""Runs crawls in the background, one at a time, and reports their progress.

Core code (no Jupyter): the server extension owns one scheduler; ``GET sharinghub/api/index``
shows :meth:`CrawlScheduler.status`, ``POST`` calls :meth:`CrawlScheduler.trigger`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .catalog.timeutil import iso
from .status import last_status

if TYPE_CHECKING:
    from .crawler import Crawler

log = logging.getLogger(__name__)


class CrawlScheduler:
    def __init__(self, crawler_factory: Callable[[], Crawler], store, *,
                 interval: float = 600) -> None:
        self._factory = crawler_factory
        self._store = store
        self.interval = interval
        self._lock = threading.Lock()
        self._running: threading.Thread | None = None
        self._progress: dict[str, int | None] = {"done": 0, "total": None}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._timer: threading.Thread | None = None
        self._started: str | None = None
        #: called (in the crawl thread) after every crawl, finished or not
        self.after_crawl: list[Callable[[], None]] = []

    # --- control --------------------------------------------------------------------------

    def start(self) -> None:
        """A crawl now, then one every ``interval`` seconds (none if ``interval`` is 0)."""
        self.trigger()
        if self.interval > 0 and self._timer is None:
            self._timer = threading.Thread(target=self._tick, name="sharinghub-crawl-timer",
                                           daemon=True)
            self._timer.start()

    def trigger(self) -> dict[str, Any]:
        """Start a crawl unless one is running (then join it); returns the status."""
        with self._lock:
            if self._running is None or not self._running.is_alive():
                self._progress = {"done": 0, "total": None}
                self._started = iso(datetime.now(timezone.utc))
                self._cancel.clear()
                self._running = threading.Thread(target=self._run, name="sharinghub-crawl",
                                                 daemon=True)
                self._running.start()
        return self.status()

    def stop(self, timeout: float = 10) -> None:
        """Stop the timer, cancel a running crawl and wait for it (bounded)."""
        self._stop.set()
        self._cancel.set()
        self._wake.set()
        running = self._running
        if running is not None:
            running.join(timeout)

    # --- state ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running is not None and self._running.is_alive()

    def status(self) -> dict[str, Any]:
        """The last finished crawl; before the first one finishes, the running one."""
        running = self.running
        last = last_status(self._store)
        if last is None and self._started is not None:
            last = {"started": self._started, "finished": None, "ok": False, "items": {},
                    "errors": []}
        return {
            "state": "running" if running else "idle",
            "progress": dict(self._progress),
            "last_crawl": last,
        }

    # --- threads --------------------------------------------------------------------------

    def _run(self) -> None:
        def progress(done: int, total: int | None) -> None:
            self._progress = {"done": done, "total": total}

        try:
            self._factory().crawl(progress, self._cancel)
        except Exception:  # a crawl must never take the server down
            log.exception("sharinghub crawl failed")
        for listener in self.after_crawl:
            try:
                listener()
            except Exception:
                log.exception("sharinghub: after-crawl listener failed")

    def _tick(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            if self._stop.is_set():
                return
            self._wake.clear()
            self.trigger()
