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
from urllib.parse import urlsplit

from jupyter_server.base.handlers import JupyterHandler
from tornado import httpclient, httputil, web
from tornado.wsgi import WSGIContainer

from ..tracking.hooks import watched

_SAFE = ("GET", "HEAD", "OPTIONS")
#: request headers an external server gets from the client (never its credentials)
_FORWARD = ("Accept", "Content-Type", "Range", "If-None-Match", "If-Modified-Since",
            "User-Agent")
#: response headers passed back (never cookies)
_BACK = ("Content-Type", "Content-Encoding", "Content-Range", "Accept-Ranges", "ETag",
         "Last-Modified", "Cache-Control", "Content-Disposition")


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
        if self.request.method in _SAFE or self.token_authenticated or not self.cookies:
            return
        origin = self.request.headers.get("Origin") or self.request.headers.get("Referer")
        if not origin or urlsplit(origin).netloc != self.request.host:
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
    Bearer`` instead of the user's Jupyter credentials, answers streamed back."""

    async def _forward(self, path: str | None = None) -> None:
        tracking = self.settings["sharinghub_tracking"]
        sub = (path or "").lstrip("/")
        method = self.request.method or "GET"
        url = f"{tracking.external_uri}/{sub}"
        if self.request.query:
            url += "?" + self.request.query
        headers = {k: self.request.headers[k] for k in _FORWARD if k in self.request.headers}
        headers.update(tracking.upstream_headers())
        base = tracking.base_of(sub)
        below = sub[len(base):].lstrip("/")
        keep = watched(method, below)
        state: dict[str, Any] = {"status": None, "headers": httputil.HTTPHeaders(),
                                 "started": False, "body": []}

        def on_header(line: str) -> None:
            if line.startswith("HTTP/"):
                state["status"] = httputil.parse_response_start_line(line.strip()).code
                state["headers"] = httputil.HTTPHeaders()
            elif line.strip():
                state["headers"].parse_line(line)

        def start() -> None:
            if not state["started"]:
                state["started"] = True
                self.set_status(state["status"] or 502)
                for name in _BACK:
                    if name in state["headers"]:
                        self.set_header(name, state["headers"][name])

        def on_chunk(chunk: bytes) -> None:
            start()
            if keep:
                state["body"].append(chunk)
            self.write(chunk)
            self.flush()

        body = self.request.body if method not in ("GET", "HEAD", "OPTIONS") else None
        request = httpclient.HTTPRequest(
            url, method=method, headers=headers, body=body, allow_nonstandard_methods=True,
            streaming_callback=on_chunk, header_callback=on_header, follow_redirects=False,
            decompress_response=False, request_timeout=3600, connect_timeout=20)
        try:
            response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as exc:
            raise web.HTTPError(502, f"the MLflow server is unreachable: {exc}") from None
        if response.code == 599:
            raise web.HTTPError(502, "the MLflow server is unreachable")
        state["status"] = state["status"] or response.code
        start()
        self.finish()
        if keep:
            tracking.on_request(base, method, below, self.request.body or b"",
                                response.code, b"".join(state["body"]))

    get = post = put = patch = delete = head = options = _forward
