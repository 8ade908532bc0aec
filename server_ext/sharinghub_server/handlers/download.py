"""``sharinghub/api/download/{item_id}/-/{file_path}``: a repository file, streamed with the
server's credentials (never shown to the client), ranges passed through."""

from __future__ import annotations

import mimetypes
import os
import re

from tornado import httpclient, web

from ..service import LocalFile, NotFound, RemoteFile
from .base import SharingHubHandler, UpstreamHead

_CHUNK = 1 << 20
_PASS_HEADERS = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag",
                 "Last-Modified")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class DownloadHandler(SharingHubHandler):
    @web.authenticated
    async def get(self, item_id: str, path: str) -> None:
        ref = self.get_argument("ref", None)
        target = await self.run(self.service.resolve_download, item_id, path, ref)
        if isinstance(target, LocalFile):
            await self._local(target)
        else:
            await self._remote(target, path)

    async def _remote(self, target: RemoteFile, path: str) -> None:
        headers = dict(target.headers)
        if "Range" in self.request.headers:
            headers["Range"] = self.request.headers["Range"]
        answer = UpstreamHead()
        state = {"started": False}

        def on_chunk(chunk: bytes) -> None:
            if answer.status is None or answer.status >= 300:
                return  # an error body from GitLab is not the user's file
            if not state["started"]:
                state["started"] = True
                self.set_status(answer.status)
                for name in _PASS_HEADERS:
                    if name in answer.headers:
                        self.set_header(name, answer.headers[name])
                self._disposition(path)
            self.write(chunk)
            self.flush()

        request = httpclient.HTTPRequest(target.url, headers=headers, streaming_callback=on_chunk,
                                         header_callback=answer, request_timeout=3600,
                                         follow_redirects=True)
        response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code >= 400 or response.code == 599:
            if response.code in (401, 403, 404):
                raise NotFound(f"no file {path!r} at that revision, or it is not visible")
            raise web.HTTPError(502, f"GitLab answered {response.code}")
        if not state["started"]:  # an empty file
            self.set_status(response.code)
            self._disposition(path)
        self.finish()

    async def _local(self, target: LocalFile) -> None:
        size = target.size
        start, end = 0, size - 1
        spec = self.request.headers.get("Range")
        if spec:
            m = _RANGE.match(spec.strip())
            if not m or (not m[1] and not m[2]):
                self.set_header("Content-Range", f"bytes */{size}")
                raise web.HTTPError(416, "unsupported range")
            if m[1]:
                start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
            else:
                start, end = max(0, size - int(m[2])), size - 1
            if start > end or start >= size:
                self.set_header("Content-Range", f"bytes */{size}")
                raise web.HTTPError(416, "range not satisfiable")
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("Content-Length", str(end - start + 1))
        self.set_header("Content-Type",
                        mimetypes.guess_type(target.path.name)[0] or "application/octet-stream")
        self._disposition(target.path.name)
        position = start
        with open(target.path, "rb") as f:
            while position <= end:
                n = min(_CHUNK, end - position + 1)
                f.seek(position)
                chunk = await self.run(f.read, n)
                if not chunk:
                    break
                self.write(chunk)
                await self.flush()
                position += len(chunk)
        self.finish()

    def _disposition(self, path: str) -> None:
        name = os.path.basename(path).replace('"', "")
        self.set_header("Content-Disposition", f'inline; filename="{name}"')
