"""Which MLflow requests the catalog reacts to, and a WSGI middleware that reports them.

The embedded server's app is wrapped by :func:`observed`; the external-mode proxy reports the
same requests itself. Either way the tracking service hears of every registry write and every
new run that passes through ``sharinghub/mlflow/``, whichever client made it (MLflow UI, plain
client, our helpers).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger(__name__)

#: (method, path below the tracking root, request body, status, response body)
Listener = Callable[[str, str, bytes, int, bytes], None]
#: the name of an experiment a client looks up, before MLflow answers the lookup
Lookup = Callable[[str], None]

_WATCHED = re.compile(
    r"^(?:ajax-)?api/2\.0/mlflow/(?:registered-models/|model-versions/|runs/create$)")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_GET_BY_NAME = re.compile(r"^(?:ajax-)?api/2\.0/mlflow/experiments/get-by-name$")


def watched(method: str, path: str) -> bool:
    """A request whose outcome the catalog needs to see."""
    return method.upper() not in SAFE_METHODS and bool(_WATCHED.match(path.lstrip("/")))


def experiment_lookup(method: str, path: str, query: str) -> str | None:
    """The experiment name a request looks up by name (what ``mlflow.set_experiment`` asks
    first), or None for any other request."""
    if method.upper() != "GET" or not _GET_BY_NAME.match(path.lstrip("/")):
        return None
    names = parse_qs(query).get("experiment_name")
    return names[-1] if names else None


def observed(app: Any, prefix: str, listener: Listener, lookup: Lookup | None = None) -> Any:
    """``app`` reporting its watched requests to ``listener`` once answered; ``prefix`` is
    the static prefix its routes live under (stripped from the reported path). ``lookup``
    hears of an experiment looked up by name before MLflow answers (so the server can make
    an item's experiment first, and the client never sees it missing)."""
    root = prefix.rstrip("/") + "/"

    def middleware(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        sub = path[len(root):] if path.startswith(root) else path.lstrip("/")
        method = environ.get("REQUEST_METHOD", "GET")
        if lookup is not None:
            name = experiment_lookup(method, sub, environ.get("QUERY_STRING", ""))
            if name:
                try:
                    lookup(name)
                except Exception:  # MLflow answers the lookup either way
                    log.exception("sharinghub: experiment lookup hook failed")
        if not watched(method, sub):
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        seen: dict[str, int] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        result = app(environ, capture)
        try:
            chunks = list(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        try:
            listener(method, sub, body, seen.get("status", 500), b"".join(chunks))
        except Exception:  # MLflow has answered: the catalog's bookkeeping must not undo it
            log.exception("sharinghub: MLflow request hook failed")
        return chunks

    return middleware
