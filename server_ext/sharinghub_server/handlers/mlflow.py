"""``sharinghub/mlflow/``: MLflow's REST API, artifacts and UI behind Jupyter's authentication,
served by the embedded server or proxied to an external one.

The MLflow UI sends no ``_xsrf`` token, so instead of Jupyter's XSRF check a cookie-
authenticated state change must come from this origin (Origin or Referer); requests with a
token (the MLflow client's ``MLFLOW_TRACKING_TOKEN``) need no such check. Every answer says
that only this origin may frame it (JupyterLab shows the UI in a tab; other sites may not).

Authorization: resource ``sharinghub:mlflow``, asked of Jupyter's authorizer once authenticated
(in ``prepare``, as one handler serves every method). ``read``: GET, HEAD and OPTIONS, and the
POSTs of MLflow's REST API that only read (:func:`mlflow_action`: its searches, ``*/search``
and ``experiments/search-datasets``, ``registered-models/get-latest-versions``,
``traces/batchGetInfos``, and ``graphql``, whose operations are all queries and searches in
MLflow); ``write``: every other request (creating, logging, updating, deleting).
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.wsgi import WSGIContainer

from ..tracking.hooks import SAFE_METHODS, watched
from .base import HTTP_CODES, UpstreamHead
from .streaming import Relay, RelayingHandler

#: request headers an external server gets from the client (never its credentials)
_FORWARD = ("Accept", "Content-Type", "Range", "If-None-Match", "If-Modified-Since",
            "User-Agent")
#: response headers passed back (never cookies)
_BACK = ("Content-Type", "Content-Length", "Content-Encoding", "Content-Range",
         "Accept-Ranges", "ETag", "Last-Modified", "Cache-Control", "Content-Disposition")
#: query parameters that are Jupyter's authentication, not MLflow's
_JUPYTER_PARAMS = ("token", "_xsrf")


#: the last path segment of MLflow's POST endpoints that only read
_POST_READS = re.compile(r"search|search-datasets|get-latest-versions|batchGetInfos|graphql")


def mlflow_action(method: str, path: str) -> str:
    """``read`` or ``write``: what a request to MLflow (``path``: its decoded path, as MLflow
    routes it) does, for Jupyter's authorizer."""
    method = method.upper()
    if method in SAFE_METHODS:
        return "read"
    last = path.rstrip("/").rpartition("/")[2]
    return "read" if method == "POST" and _POST_READS.fullmatch(last) else "write"


def framed_by_self(csp: str) -> str:
    """A Content-Security-Policy with ``frame-ancestors 'self'``, unless it already says who
    may frame (an admin's ``headers`` setting wins)."""
    directives = [d.strip() for d in csp.split(";") if d.strip()]
    if any(d.split()[0].lower() == "frame-ancestors" for d in directives):
        return csp
    return "; ".join([*directives, "frame-ancestors 'self'"])


def _with_header(app: Callable, name: str, value: str) -> Callable:
    """A WSGI app adding one header to every answer of ``app``."""

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start(status: str, headers: list, exc_info: Any = None) -> Any:
            return start_response(status, [*headers, (name, value)], exc_info)

        return app(environ, start)

    return wrapped


def _upstream_query(query: str) -> str:
    """The query without Jupyter's own credentials (``?token=`` authenticates to Jupyter),
    the rest byte for byte and in order."""
    return "&".join(p for p in query.split("&")
                    if unquote_plus(p.partition("=")[0]) not in _JUPYTER_PARAMS)


class _MLflowBase(JupyterHandler):
    auth_resource = "sharinghub:mlflow"

    async def prepare(self) -> None:
        await super().prepare()  # authenticates: login redirect for GET, else 403
        if self._finished:
            return
        if self.current_user is None:
            raise web.HTTPError(403, "authentication required")
        # what ``@authorized`` does, with the action read from MLflow's path, not the method
        action = mlflow_action(self.request.method or "GET", unquote(self.request.path))
        if not await ensure_async(self.authorizer.is_authorized(
                self, self.current_user, action, self.auth_resource)):
            raise web.HTTPError(403, f"User is not authorized to {action} on resource: "
                                     f"{self.auth_resource}.")

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

    @property
    def content_security_policy(self) -> str:
        return framed_by_self(super().content_security_policy)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """MLflow-shaped errors, which the MLflow client reports as such, carrying the
        extension's ``code`` and ``description`` too."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = (exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message
                   else self._reason)
        codes = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "ENDPOINT_NOT_FOUND",
                 502: "TEMPORARILY_UNAVAILABLE", 504: "TEMPORARILY_UNAVAILABLE"}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error_code": codes.get(status_code, "INTERNAL_ERROR"),
                                "message": message,
                                "code": HTTP_CODES.get(status_code, "HTTPError"),
                                "description": message}))


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
            # the WSGI answers bypass this handler's headers: the policy goes in them
            app = _with_header(app, "Content-Security-Policy", self.content_security_policy)
            container = self.settings.setdefault(
                "sharinghub_mlflow_container",
                WSGIContainer(app, executor=self.settings["sharinghub_executor"]))
        container(self.request)
        self._finished = True
        self.on_finish()

    def _unused(self) -> None:  # every method goes through prepare()
        raise web.HTTPError(405)

    get = post = put = patch = delete = head = options = _unused


class MLflowProxyHandler(RelayingHandler, _MLflowBase):
    """An external server: requests forwarded with the GitLab token as ``Authorization:
    Bearer`` instead of the user's Jupyter credentials (header, cookie or ``?token=``),
    answers streamed back at the client's pace (see :mod:`.streaming`)."""

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

    async def _forward(self, path: str | None = None) -> None:
        tracking = self.settings["sharinghub_tracking"]
        raw = self._upstream_path()
        sub = unquote(raw)
        method = self.request.method or "GET"
        url = f"{tracking.external_uri}/{raw}"
        query = _upstream_query(self.request.query)
        if query:
            url += "?" + query
        headers = {k: self.request.headers[k] for k in _FORWARD if k in self.request.headers}
        headers.update(tracking.upstream_headers())
        base = tracking.base_of(sub)
        below = sub[len(base):].lstrip("/")
        keep = watched(method, below)
        relay = Relay(self, functools.partial(self._show, tracking), keep=keep)
        body = self.request.body if method not in SAFE_METHODS else None
        response = await relay.fetch(url, method=method, headers=headers, body=body,
                                     allow_nonstandard_methods=True,
                                     unreachable="the MLflow server is unreachable")
        relay.start()  # an empty answer has had no chunk
        self.finish()
        if keep:
            tracking.on_request(base, method, below, self.request.body or b"",
                                response.code, b"".join(relay.kept))

    def _show(self, tracking, head: UpstreamHead) -> bool:
        """Every answer goes back as it is, errors included, with the headers of ``_BACK``."""
        self.set_status(head.status or 502)
        for name in _BACK:
            if name in head.headers:
                self.set_header(name, head.headers[name])
        location = head.headers.get("Location")
        if location:
            self.set_header("Location", self._local_location(location, tracking))
        return True

    def _local_location(self, location: str, tracking) -> str:
        """A redirect within the MLflow server, as a path on this one."""
        upstream = tracking.external_uri + "/"
        if location.startswith(upstream):
            return url_path_join(self.base_url, "sharinghub/mlflow/",
                                 location[len(upstream):])
        return location

    get = post = put = patch = delete = head = options = _forward
