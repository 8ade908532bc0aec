"""A DVC remote over HTTP that can stop a pull half-way: it serves a local DVC remote folder
(``GET``/``HEAD`` of ``files/md5/..``) and holds every download past the ``hold_after``-th
until :meth:`HoldingRemote.release`, so that a test cancels or kills the pull at that point
(by polling :attr:`HoldingRemote.waiting`, not by sleeping)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import tornado.httpserver
import tornado.web

from tests.support.threaded import ThreadedServer


class _Files(tornado.web.RequestHandler):
    def initialize(self, remote: HoldingRemote) -> None:
        self._remote = remote

    def compute_etag(self) -> str | None:
        return None

    async def head(self, path: str) -> None:
        await self._serve(path, body=False)

    async def get(self, path: str) -> None:
        await self._serve(path, body=True)

    async def _serve(self, path: str, *, body: bool) -> None:
        file = (self._remote.folder / path).resolve()
        if not file.is_relative_to(self._remote.folder) or not file.is_file():
            raise tornado.web.HTTPError(404)
        if body:
            await self._remote._gate()
        data = file.read_bytes()
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", str(len(data)))
        if body:
            self.write(data)
            self._remote._served()


class HoldingRemote(ThreadedServer):
    """``url`` is the DVC remote URL (``http://127.0.0.1:PORT/``) for ``folder``."""

    thread_name = "dvc-http-remote"

    def __init__(self, folder: str | Path, hold_after: int | None = None) -> None:
        super().__init__()
        self.folder = Path(folder).resolve()
        self.hold_after = hold_after
        #: downloads answered so far, and how many wait at the hold now
        self.served = 0
        self.waiting = 0
        self._started = 0
        self._released = threading.Event()
        self._lock = threading.Lock()

    def http_server(self) -> tornado.httpserver.HTTPServer:
        app = tornado.web.Application([(r"/(.*)", _Files, {"remote": self})],
                                      log_function=lambda _h: None)
        return tornado.httpserver.HTTPServer(app)

    def release(self) -> None:
        self._released.set()

    def hold_again(self, after: int) -> None:
        """Hold the downloads past the ``after``-th from now on."""
        with self._lock:
            self._started = 0
            self.hold_after = after
            self._released = threading.Event()

    def stop(self) -> None:
        self.release()
        super().stop()

    async def _gate(self) -> None:
        with self._lock:
            self._started += 1
            held = self.hold_after is not None and self._started > self.hold_after
            if held:
                self.waiting += 1
        if not held:
            return
        try:
            while not self._released.is_set():
                await asyncio.sleep(0.01)
        finally:
            with self._lock:
                self.waiting -= 1

    def _served(self) -> None:
        with self._lock:
            self.served += 1
