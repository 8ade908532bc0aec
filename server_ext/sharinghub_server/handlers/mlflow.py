"""``sharinghub/mlflow/``: MLflow's REST API, artifacts and UI behind Jupyter's authentication,
served by the embedded server or proxied to an external one.

The MLflow UI sends no ``_xsrf`` token, so instead of Jupyter's XSRF check a cookie-
authenticated state change must come from this origin (Origin or Referer); requests with a
token (the MLflow client's ``MLFLOW_TRACKING_TOKEN``) need no such check.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote, urlsplit

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import httpclient, iostream, web
from tornado.wsgi import WSGIContainer

from ..tracking.hooks import SAFE_METHODS, watched
from .base import UpstreamHead

#: request headers an external server gets from the client (never its credentials)
_FORWARD = ("Accept", "Content-Type", "Range", "If-None-Match", "If-Modified-Since",
            "User-Agent")
#: response headers passed back (never cookies)
_BACK = ("Content-Type", "Content-Length", "Content-Encoding", "Content-Range",
         "Accept-Ranges", "ETag", "Last-Modified", "Cache-Control", "Content-Disposition")
#: artifacts of any size stream through the proxy (tornado's client stops at 100 MB)
_MAX_BODY = 1 << 40


class _MLflowBase(JupyterHandler):
    async def prepare(self) -> None:
        await super().prepare()  # authenticates: login redirect for GET, else 403
        if self._finished:
            return
        if self.current_user is None:
            raise web.HTTPError(403, "authentication required")

    def check_xsrf_cookie(self) -> None:
        if not hasattr(self, "_jupyter_current_user"):
            return  # tornado asks before authentication; prepare() asks again after it
        if self.request.method in SAFE_METHODS or self.token_authenticated:
            return
        origin = self.request.headers.get("Origin") or self.request.headers.get("Referer")
        if origin:
            if urlsplit(origin).netloc != self.request.host:
                raise web.HTTPError(403, "cross-origin request to MLflow refused")
        elif self.cookies:  # a browser's cookie-authenticated change says where it is from
            raise web.HTTPError(403, "cross-origin request to MLflow refused")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """MLflow-shaped errors, which the MLflow client reports as such."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = (exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message
                   else self._reason)
        codes = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "ENDPOINT_NOT_FOUND",
                 502: "TEMPORARILY_UNAVAILABLE", 504: "TEMPORARILY_UNAVAILABLE"}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error_code": codes.get(status_code, "INTERNAL_ERROR"),
                                "message": message}))


class MLflowHandler(_MLflowBase):
    """The embedded server: its WSGI app, run on the extension's thread pool."""

    async def prepare(self) -> None:
        await super().prepare()
        if self._finished:
            return
        embedded = self.settings["sharinghub_mlflow"]
        container = self.settings.get("sharinghub_mlflow_container")
        if container is None:
            # the first requests wait for the load instead of failing
            app = await asyncio.wrap_future(embedded.wsgi_app())
            container = self.settings.setdefault(
                "sharinghub_mlflow_container",
                WSGIContainer(app, executor=self.settings["sharinghub_executor"]))
        container(self.request)
        self._finished = True
        self.on_finish()

    def _unused(self) -> None:  # every method goes through prepare()
        raise web.HTTPError(405)

    get = post = put = patch = delete = head = options = _unused


class MLflowProxyHandler(_MLflowBase):
    """An external server: requests forwarded with the GitLab token as ``Authorization:
    Bearer`` instead of the user's Jupyter credentials, answers streamed back (with
    backpressure: a slow client slows the download, the server buffers nothing)."""

    _gone = False

    def on_connection_close(self) -> None:
        self._gone = True  # the next chunk stops the upstream download

    def _upstream_path(self) -> str:
        """The request's path below ``sharinghub/mlflow/``, still percent-encoded (so that
        ``%3F``, ``%2F`` or a space in an artifact name reach the server as sent); dot
        segments and encoded slashes are refused: the path stays below the server's URI."""
        prefix = url_path_join(self.base_url, "sharinghub/mlflow")
        raw = self.request.path[len(prefix):] if self.request.path.startswith(prefix) else ""
        for segment in raw.split("/"):
            plain = unquote(segment)
            if plain in (".", "..") or "/" in plain or "\\" in plain:
                raise web.HTTPError(400, "bad path for the MLflow server")
        return raw.lstrip("/")

    def _client(self) -> httpclient.AsyncHTTPClient:
        client = self.settings.get("sharinghub_proxy_client")
        if client is None:
            client = self.settings.setdefault("sharinghub_proxy_client",
                                              httpclient.AsyncHTTPClient(
                                                  force_instance=True, max_clients=64,
                                                  max_body_size=_MAX_BODY))
        return client

    async def _forward(self, path: str | None = None) -> None:
        tracking = self.settings["sharinghub_tracking"]
        raw = self._upstream_path()
        sub = unquote(raw)
        method = self.request.method or "GET"
        url = f"{tracking.external_uri}/{raw}"
        if self.request.query:
            url += "?" + self.request.query
        headers = {k: self.request.headers[k] for k in _FORWARD if k in self.request.headers}
        headers.update(tracking.upstream_headers())
        base = tracking.base_of(sub)
        below = sub[len(base):].lstrip("/")
        keep = watched(method, below)
        answer = UpstreamHead()
        state: dict[str, Any] = {"started": False, "body": []}

        def start() -> None:
            if not state["started"]:
                state["started"] = True
                self.set_status(answer.status or 502)
                for name in _BACK:
                    if name in answer.headers:
                        self.set_header(name, answer.headers[name])
                location = answer.headers.get("Location")
                if location:
                    self.set_header("Location", self._local_location(location, tracking))

        def on_chunk(chunk: bytes):
            if self._gone:
                raise iostream.StreamClosedError()  # stops the upstream download
            start()
            if keep:
                state["body"].append(chunk)
            self.write(chunk)
            return self.flush()

        body = self.request.body if method not in SAFE_METHODS else None
        request = httpclient.HTTPRequest(
            url, method=method, headers=headers, body=body, allow_nonstandard_methods=True,
            streaming_callback=on_chunk, header_callback=answer, follow_redirects=False,
            decompress_response=False, request_timeout=3600, connect_timeout=20)
        try:
            response = await self._client().fetch(request, raise_error=False)
            failed = response.code == 599
        except (OSError, httpclient.HTTPClientError, iostream.StreamClosedError):
            failed = True
        if failed:
            if state["started"] or self._gone:  # a cut answer must not look complete
                self.request.connection.close()
                return
            raise web.HTTPError(502, "the MLflow server is unreachable")
        start()
        self.finish()
        if keep:
            tracking.on_request(base, method, below, self.request.body or b"",
                                response.code, b"".join(state["body"]))

    def _local_location(self, location: str, tracking) -> str:
        """A redirect within the MLflow server, as a path on this one."""
        upstream = tracking.external_uri + "/"
        if location.startswith(upstream):
            return url_path_join(self.base_url, "sharinghub/mlflow/",
                                 location[len(upstream):])
        return location

    get = post = put = patch = delete = head = options = _forward
