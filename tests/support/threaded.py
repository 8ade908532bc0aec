"""Test servers that speak real HTTP: a tornado server on a free loopback port, served from a
background thread with its own event loop, so that synchronous clients (python-gitlab, git,
the MLflow client) can call it from the test's thread; and a free port for subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import socket
import threading
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil


def _port_span() -> range:
    """The ports this test process hands out: below the kernel's ephemeral range, which every
    outgoing connection takes a port from (a port found free there could be a client's by the
    time a server binds it), and apart from the other pytest-xdist workers' ports."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 1024  # (unknown: the kernel chooses, as it did before)
    low, high = 10_000, ephemeral
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    share = (high - low) // max(workers, 1)
    return range(low + worker * share, low + (worker + 1) * share)


_PORTS = _port_span()
_next_port = itertools.count(random.randrange(max(len(_PORTS), 1)))


def free_port() -> int:
    """A loopback port free right now, for a server started in another process: one of this
    process's own (see :func:`_port_span`), in turn, skipping those in use."""
    for _ in range(min(len(_PORTS), 1000)):
        port = _PORTS[next(_next_port) % len(_PORTS)]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # (none of ours is free: any the kernel gives)
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadedServer:
    """Subclasses say what to serve (:meth:`http_server`) and may set up and tear down on the
    server's loop (:meth:`on_start`, :meth:`on_stop`)."""

    host = "127.0.0.1"
    thread_name = "test-server"

    def __init__(self) -> None:
        self.port: int | None = None
        self.url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._start_error: BaseException | None = None

    def http_server(self) -> tornado.httpserver.HTTPServer:
        raise NotImplementedError

    async def on_start(self) -> None:
        """Runs on the server's loop before it answers."""

    async def on_stop(self) -> None:
        """Runs on the server's loop after it stopped answering."""

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Any:
        """Bind a free loopback port and serve from a background thread."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        sockets = tornado.netutil.bind_sockets(0, self.host, backlog=1024)
        self.port = sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sockets, ready),
                                        name=f"{self.thread_name}-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(10) or self._start_error is not None:
            raise RuntimeError(f"{type(self).__name__} failed to start") from self._start_error
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join(15)
        self._thread = self._loop = self._stopping = None

    def _run(self, sockets: list[Any], ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(sockets, ready))
        except BaseException as exc:
            self._start_error = exc
            ready.set()
        finally:
            loop.close()

    async def _serve(self, sockets: list[Any], ready: threading.Event) -> None:
        http = self.http_server()
        http.add_sockets(sockets)
        await self.on_start()
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        ready.set()
        await self._stopping.wait()
        http.stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(http.close_all_connections(), 5)
        await self.on_stop()
