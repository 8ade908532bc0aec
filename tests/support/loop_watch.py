"""Test-only Jupyter server extension measuring how late the event loop runs its callbacks.

Why: "the event loop never blocks" is a property of the whole server (our handlers, Jupyter,
tornado, the GIL held by our threads), so it is measured inside the server under load: a tick
sleeps 10 ms on the server's IOLoop, over and over, and records how much later than due it woke
(its *lateness*: how long every other callback waited too). A watchdog thread samples the loop
thread's stack whenever a tick is more than :data:`STALL_S` overdue, so a stall names its
culprit. Nothing of this runs in a real server: enable it only in tests and benchmarks, with
``ServerApp.jpserver_extensions = {"tests.support.loop_watch": True}`` (``PYTHONPATH`` must
reach this repository).

Lateness has three causes, which each tick tells apart with the loop thread's
``/proc/thread-self/schedstat`` (Linux): the loop thread *running* (a callback on the loop:
the event loop blocked, what must never last), the loop thread *waiting for a CPU* (the
machine is overloaded: the OS's run queue), and the rest, the loop thread *waiting for the
GIL* held by another of the server's threads (or, rarely, for a page fault or a lock).

``GET <base_url>loop-watch`` (Jupyter authentication) answers the figures since start-up or the
last ``?reset=1``: ``{"ticks", "p50_ms", "p99_ms", "max_ms", "over_100ms", "worst": {"ms",
"running_ms", "cpu_wait_ms", "gil_wait_ms"}, "running_max_ms", "stalls": [{"ms", "running_ms",
"cpu_wait_ms", "gil_wait_ms", "stack", "threads"}]}``; with ``reset=1`` the figures are cleared
after the answer. ``running_max_ms`` is the longest the loop thread ran in one tick's interval:
the event loop's own longest block.
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
import traceback
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop

#: the tick's period (seconds)
TICK_S = 0.010
#: a tick this much overdue has its loop thread's stack sampled (seconds)
STALL_S = 0.050
#: stalls kept with their stacks (the longest are kept when there are more)
MAX_STALLS = 20


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _schedstat() -> tuple[float, float]:
    """(seconds on a CPU, seconds waiting for one) of the calling thread; zeros where the
    kernel does not tell."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            on_cpu, waiting, _ = f.read().split()
    except (OSError, ValueError):
        return 0.0, 0.0
    return int(on_cpu) / 1e9, int(waiting) / 1e9


class LoopWatch:
    """The tick on the loop and the watchdog thread beside it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lateness: list[float] = []  # seconds, one per tick
        #: (lateness, running, waiting for a CPU, waiting for the GIL) of the worst tick
        self.worst: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self.running_max = 0.0
        self.stalls: list[dict[str, Any]] = []
        self.due = 0.0  # monotonic time the current tick is due (0: not started)
        self.sampled_for = 0.0  # the due time whose stall was sampled already
        self.loop_thread = 0
        self.stopped = threading.Event()

    def start(self) -> None:
        """On the loop: the tick task and the watchdog."""
        self.loop_thread = threading.get_ident()
        self.task = asyncio.ensure_future(self.tick())
        threading.Thread(target=self.watch, name="loop-watch", daemon=True).start()

    async def tick(self) -> None:
        while not self.stopped.is_set():
            start = time.monotonic()
            self.due = start + TICK_S
            cpu0, wait0 = _schedstat()
            await asyncio.sleep(TICK_S)
            end = time.monotonic()
            cpu1, wait1 = _schedstat()
            late = max(0.0, end - self.due)
            running, cpu_wait = cpu1 - cpu0, wait1 - wait0
            # the interval is: running + waiting for a CPU + the 10 ms sleep + the rest
            gil_wait = max(0.0, (end - start) - TICK_S - running - cpu_wait)
            split = {"ms": round(late * 1000, 1), "running_ms": round(running * 1000, 1),
                     "cpu_wait_ms": round(cpu_wait * 1000, 1),
                     "gil_wait_ms": round(gil_wait * 1000, 1)}
            with self.lock:
                self.lateness.append(late)
                self.running_max = max(self.running_max, running)
                if late > self.worst[0]:
                    self.worst = (late, running, cpu_wait, gil_wait)
                if late >= STALL_S and self.stalls and self.stalls[-1]["due"] == self.due:
                    self.stalls[-1].update(split)

    def watch(self) -> None:
        """Sample the loop thread's stack once per stall, while it stalls."""
        while not self.stopped.wait(TICK_S / 2):
            due = self.due
            if not due or due == self.sampled_for or time.monotonic() - due < STALL_S:
                continue
            frame = sys._current_frames().get(self.loop_thread)
            if frame is None:
                continue
            stack = [f"{f.filename}:{f.lineno} {f.name}"
                     for f in traceback.extract_stack(frame)[-12:]]
            names = {t.ident: t.name for t in threading.enumerate()}
            threads = {  # where every other thread is: the GIL's holder is among them
                names.get(ident, str(ident)): [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} "
                                               f"{f.name}"
                                               for f in traceback.extract_stack(other)[-3:]]
                for ident, other in sys._current_frames().items()
                if ident not in (self.loop_thread, threading.get_ident())}
            self.sampled_for = due
            with self.lock:
                self.stalls.append({"due": due, "ms": round(STALL_S * 1000, 1),
                                    "stack": stack, "threads": threads})
                if len(self.stalls) > MAX_STALLS:  # keep the longest
                    self.stalls.remove(min(self.stalls[:-1], key=lambda s: s["ms"]))

    def report(self, reset: bool = False) -> dict[str, Any]:
        with self.lock:
            values = [v * 1000 for v in self.lateness]
            stalls = [{k: v for k, v in s.items() if k != "due"} for s in self.stalls]
            late, running, cpu_wait, gil_wait = self.worst
            running_max = self.running_max
            if reset:
                self.lateness, self.stalls = [], []
                self.worst, self.running_max = (0.0, 0.0, 0.0, 0.0), 0.0
        return {"ticks": len(values), "p50_ms": round(percentile(values, 0.50), 2),
                "p99_ms": round(percentile(values, 0.99), 2),
                "max_ms": round(max(values, default=0.0), 2),
                "over_100ms": sum(v > 100 for v in values),
                "worst": {"ms": round(late * 1000, 1), "running_ms": round(running * 1000, 1),
                          "cpu_wait_ms": round(cpu_wait * 1000, 1),
                          "gil_wait_ms": round(gil_wait * 1000, 1)},
                "running_max_ms": round(running_max * 1000, 1),
                "stalls": sorted(stalls, key=lambda s: -s["ms"])}


class LoopWatchHandler(APIHandler):
    @web.authenticated
    def get(self) -> None:
        watch: LoopWatch = self.settings["loop_watch"]
        self.finish(watch.report(reset=self.get_argument("reset", "") == "1"))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "tests.support.loop_watch"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    watch = LoopWatch()
    serverapp.web_app.settings["loop_watch"] = watch
    route = url_path_join(serverapp.web_app.settings["base_url"], "loop-watch")
    serverapp.web_app.add_handlers(".*$", [(route, LoopWatchHandler)])
    IOLoop.current().add_callback(watch.start)
