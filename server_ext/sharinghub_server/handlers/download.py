"""``sharinghub/api/download/{item_id}/-/{file_path}``: a repository file, streamed with the
server's credentials (never shown to the client, never sent to another host), at the client's
pace and of any size, ranges passed through."""

from __future__ import annotations

import functools
import mimetypes
import os
import re
from urllib.parse import urljoin, urlsplit

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..service import LocalFile, NotFound, RemoteFile
from .base import SharingHubHandler, UpstreamHead
from .streaming import Relay, RelayingHandler

_CHUNK = 1 << 20
_PASS_HEADERS = ("Content-Type", "Content-Length", "Content-Encoding", "Content-Range",
                 "Accept-Ranges", "ETag", "Last-Modified")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: GitLab answers a raw LFS file in object storage with a redirect to the storage
_REDIRECTS = (301, 302, 303, 307, 308)
_HOPS = 5
_CREDENTIALS = ("private-token", "authorization", "cookie")


def _origin(url: str) -> tuple[str, str, int | None]:
    """scheme, host, port: who a request goes to."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a port that is not a number
        raise web.HTTPError(502, "GitLab redirected to a bad URL") from None
    return parts.scheme, parts.hostname or "", port


class DownloadHandler(RelayingHandler, SharingHubHandler):
    """A repository file of an item (an asset's href): resource ``sharinghub:catalog``, read."""

    auth_resource = "sharinghub:catalog"

    @web.authenticated
    @authorized
    async def get(self, item_id: str, path: str) -> None:
        ref = self.get_argument("ref", None)
        target = await self.run(self.service.resolve_download, item_id, path, ref)
        if isinstance(target, LocalFile):
            await self._local(target)
        else:
            await self._remote(target, path)

    async def _remote(self, target: RemoteFile, path: str) -> None:
        """Redirects are followed here, not by tornado's client (which keeps ``PRIVATE-TOKEN``
        on a redirect to another host): GitLab's credentials go to GitLab's origin only, and
        once an answer sent us elsewhere, nowhere again."""
        headers = dict(target.headers)
        if "Range" in self.request.headers:
            headers["Range"] = self.request.headers["Range"]
        home, url = _origin(target.url), target.url
        for _hop in range(_HOPS + 1):
            relay = Relay(self, functools.partial(self._show, path))
            response = await relay.fetch(url, headers=headers,
                                         unreachable="the server of this file is unreachable")
            location = response.headers.get("Location")
            if response.code not in _REDIRECTS or not location:
                break
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                raise web.HTTPError(502, "GitLab redirected to a bad URL")
            if _origin(url) != home:
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIALS}
        else:
            raise web.HTTPError(502, f"GitLab redirected more than {_HOPS} times")
        if response.code >= 300:
            if response.code in (401, 403, 404):
                raise NotFound(f"no file {path!r} at that revision, or it is not visible")
            raise web.HTTPError(502, f"GitLab answered {response.code}")
        relay.start()  # an empty file has had no chunk
        self._finish_file()

    def _show(self, path: str, head: UpstreamHead) -> bool:
        """A file's answer goes to the client; a redirect's or an error's body does not."""
        if head.status is None or not 200 <= head.status < 300:
            return False
        self.set_status(head.status)
        for name in _PASS_HEADERS:
            if name in head.headers:
                self.set_header(name, head.headers[name])
        self._disposition(path)
        return True

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
        self._finish_file()

    def _finish_file(self) -> None:
        """Finish, keeping the file's Content-Type (Jupyter's APIHandler.finish would set
        application/json where no chunk was flushed yet: an empty file)."""
        self.finish(set_content_type=self._headers.get("Content-Type")
                    or "application/octet-stream")

    def _disposition(self, path: str) -> None:
        name = os.path.basename(path).replace('"', "")
        self.set_header("Content-Disposition", f'inline; filename="{name}"')
