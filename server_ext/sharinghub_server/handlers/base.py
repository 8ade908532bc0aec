"""What every handler shares: authentication and authorization, the one place errors become
HTTP answers, running blocking work off the event loop, and JSON encoding.

Authorization is Jupyter's (``ServerApp.authorizer_class``): every method of every handler is
``@web.authenticated`` then ``@authorized``, which asks the authorizer whether the user may
``read`` (GET, HEAD, OPTIONS) or ``write`` (POST, PUT, PATCH, DELETE) the handler's
``auth_resource``; a refusal is a JSON 403. The resources:

- ``sharinghub:catalog``: read: the STAC API (its ``POST search`` included: a read),
  ``openapi.json``, the crawl status (``GET index``), repository files (``download``); an
  unknown ``sharinghub/api/`` path asks it too (read or write by method) before its JSON 404;
- ``sharinghub:index``: write: ``POST index``, crawl now;
- ``sharinghub:dvc``: read: ``GET dvc/versions``, ``GET dvc/jobs/{job}``; write: ``POST dvc/pull``
  (into the workspace), ``DELETE dvc/jobs/{job}`` (cancel);
- ``sharinghub:publish``: read: ``GET publish/permissions``; write: ``POST publish/new``,
  ``POST publish/dataset``, ``PATCH publish/metadata``;
- ``sharinghub:mlflow``: everything under ``sharinghub/mlflow/`` (see :mod:`.mlflow` for which
  requests read).

``authorized`` fixes the action and resource it found at its first call (a closure variable):
a decorated method must serve one HTTP method, on one resource; give both explicitly where
that does not hold.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import httputil, web
from tornado.ioloop import IOLoop

from ..index.query import QueryError, QueryInterrupted
from ..index.store import StoreClosed
from ..jobs import JobConflict
from ..jsontext import encode_json
from ..service import BadRequest, CatalogService, Conflict, Forbidden, NotFound, Upstream
from ..stac.errors import StacError, one_line
from ..stac.limits import load_json

T = TypeVar("T")


#: the ``code`` of tornado's and Jupyter's own errors
HTTP_CODES = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed"}
#: what they mean, when they say nothing themselves (``@web.authenticated`` does not)
_HTTP_DESCRIPTIONS = {
    401: "authentication required: a token or a login",
    403: "refused: not authenticated (no valid token or login), or not allowed",
    404: "no such resource",
    405: "this method is not allowed on this resource",
}


def error_answer(exc: BaseException | None, status: int) -> tuple[int, str, str]:
    """(status, code, description) for an exception: the only mapping of errors to HTTP.
    The description is one line, short: it may quote the request (an id, a path)."""
    status, code, description = _answer(exc, status)
    return status, code, one_line(description)


def _answer(exc: BaseException | None, status: int) -> tuple[int, str, str]:
    if isinstance(exc, StacError):
        return exc.status, exc.code, exc.description
    if isinstance(exc, NotFound):
        return 404, "NotFound", str(exc)
    if isinstance(exc, BadRequest | QueryError):
        return 400, "InvalidParameterValue", str(exc)
    if isinstance(exc, JobConflict | Conflict):
        return 409, "Conflict", str(exc)
    if isinstance(exc, Forbidden):
        return 403, "Forbidden", str(exc)
    if isinstance(exc, Upstream):
        return 502, "BadGateway", str(exc)
    if isinstance(exc, QueryInterrupted):  # 499: nginx's "client closed request", no error
        return (503, "QueryTimeout", str(exc)) if exc.timed_out else (499, "Abandoned", str(exc))
    if isinstance(exc, StoreClosed):
        return 503, "ShuttingDown", "the server is stopping"
    if isinstance(exc, web.HTTPError):  # Jupyter's refusals (authentication, authorization)
        code = HTTP_CODES.get(exc.status_code, "HTTPError")
        return exc.status_code, code, (exc.log_message or _HTTP_DESCRIPTIONS.get(exc.status_code)
                                       or exc.reason or "request refused")
    if status < 500:
        return status, "HTTPError", "request refused"
    return 500, "ServerError", "the server failed to answer; see its log"


class UpstreamHead:
    """Status and headers of an answer streamed from another server: tornado's
    ``header_callback`` (a redirect or ``100 Continue`` starts them afresh)."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers = httputil.HTTPHeaders()

    def __call__(self, line: str) -> None:
        if line.startswith("HTTP/"):
            self.status = httputil.parse_response_start_line(line.strip()).code
            self.headers = httputil.HTTPHeaders()
        elif line.strip():
            self.headers.parse_line(line)


class SharingHubHandler(APIHandler):
    """Base of every sharinghub handler; each HTTP method is ``@web.authenticated`` and
    ``@authorized`` on the class's ``auth_resource`` (see the module's docstring), which
    each handler class names."""

    #: the setting naming the thread pool of :meth:`run`: catalog handlers have their own, so
    #: that slow searches never hold up MLflow, downloads or job control
    pool_setting = "sharinghub_executor"

    @property
    def service(self) -> CatalogService:
        return self.settings["sharinghub_service"]

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking work (SQLite, files, git, parsing big bodies) in this handler's pool."""
        return await IOLoop.current().run_in_executor(
            self.settings[self.pool_setting], functools.partial(fn, *args, **kwargs))

    @property
    def api_root(self) -> str:
        """Absolute URL of ``sharinghub/api/`` on the server that answers (hrefs use it)."""
        path = url_path_join(self.base_url, "sharinghub/api/")
        return f"{self.request.protocol}://{self.request.host}{path}"

    def write_json(self, data: Any, status: int = 200, content_type: str = "application/json"):
        self.write_encoded(encode_json(data), status, content_type)

    def write_encoded(self, body: bytes, status: int = 200,
                      content_type: str = "application/json") -> None:
        """An answer already encoded (by :func:`encode_json`, in a worker thread or a cache)."""
        self.set_status(status)
        # (Jupyter's APIHandler.finish sets the Content-Type itself, to this)
        self.finish(body, set_content_type=content_type)

    def json_body(self) -> Any:
        """The request's small JSON body (bounded in size and depth; big ones: :meth:`run`
        ``load_json``)."""
        return load_json(self.request.body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        status, code, description = error_answer(exc, status_code)
        self.clear_header("Content-Disposition")
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(encode_json({"code": code, "description": description}))

    def log_exception(self, typ, value, tb) -> None:  # expected errors are not server bugs
        if isinstance(value, StacError | NotFound | BadRequest | QueryError | JobConflict |
                      QueryInterrupted | Conflict | Forbidden | Upstream):
            self.log.info("sharinghub: %s %s: %s", self.request.method, self.request.path,
                          value)
            return
        super().log_exception(typ, value, tb)


class NotFoundHandler(SharingHubHandler):
    """Any other path under ``sharinghub/api/``: a JSON 404 for every method, rather than
    Jupyter's page; resource ``sharinghub:catalog`` (GET and HEAD read, the others write: a
    read-only user's write is a 403 here too, as on every route)."""

    def _missing(self, *_args: str) -> None:
        path = self.request.path
        below = path[path.find("/sharinghub/api"):].lstrip("/")
        raise NotFound(f"no {self.request.method} endpoint {below!r} in the SharingHub API")

    _read = web.authenticated(authorized("read", "sharinghub:catalog")(_missing))
    _write = web.authenticated(authorized("write", "sharinghub:catalog")(_missing))
    get = head = _read
    post = put = patch = delete = _write
