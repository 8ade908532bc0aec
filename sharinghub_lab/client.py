"""The one HTTP client of the notebook side: where the server is, and the one place HTTP
errors and connection failures become :class:`SharingHubError` (one line for the user).

A kernel started by a Jupyter server finds it with no configuration: the server's runtime
file (``jpserver-<pid>.json`` in Jupyter's runtime dir) whose pid is the kernel's parent (or
an ancestor). Elsewhere ``SHARINGHUB_URL`` and ``SHARINGHUB_TOKEN`` name it (and win when
set); ``connect(url, token)`` overrides both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from .errors import SharingHubError, first_line

__all__ = ["Client", "SharingHubError", "connect", "current", "find_runtime_server"]

#: seconds an API call may take (pulls and crawls are jobs: their calls answer at once)
TIMEOUT = 60
NO_SERVER = ("no Jupyter server with sharinghub found: run this in a kernel started by "
             "JupyterLab, or set SHARINGHUB_URL and SHARINGHUB_TOKEN (and SHARINGHUB_ROOT, "
             "the server's root dir, for pulls), or call sh.connect(url, token)")


class Client:
    """A Jupyter server running the sharinghub extension: ``url`` (ending with its base URL
    and ``/``), its ``token`` and, when known, its ``root_dir`` (pull destinations are
    relative to it)."""

    def __init__(self, url: str, token: str = "", root_dir: str | os.PathLike[str] | None = None
                 ) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.token = token
        self.root_dir = Path(root_dir).resolve() if root_dir else None
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"token {token}"

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    @property
    def api_url(self) -> str:
        return f"{self.url}sharinghub/api/"

    @property
    def tracking_url(self) -> str:
        return f"{self.url}sharinghub/mlflow"

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json_body: Any = None, url: str | None = None) -> Any:
        """``method`` on ``sharinghub/api/<path>`` (or the absolute ``url``); the JSON
        answer, or :class:`SharingHubError`."""
        target = url or self.api_url + path
        try:
            response = self.session.request(method, target, params=params, json=json_body,
                                            timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise SharingHubError(f"cannot reach the Jupyter server at {self.url}: "
                                  f"{first_line(exc)}") from None
        if response.status_code >= 400:
            raise SharingHubError(_http_error(response, self.url),
                                  response.status_code) from None
        try:
            return response.json()
        except ValueError:
            raise SharingHubError(f"the server at {self.url} answered {method} {path} with "
                                  "something that is not JSON") from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json_body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def download(self, href: str, target: Path, chunk: int = 1 << 20) -> Path:
        """Stream ``href`` into the file ``target`` (written beside it, then renamed: a
        failed download leaves nothing). The token goes only to this server's origin."""
        from urllib.parse import urlsplit

        same_origin = urlsplit(href)[:2] == urlsplit(self.url)[:2]
        partial = target.with_name(f".{target.name}.part")
        try:
            get = self.session.get if same_origin else requests.get
            with get(href, stream=True, timeout=TIMEOUT) as response:
                if response.status_code >= 400:
                    raise SharingHubError(_http_error(response, self.url),
                                          response.status_code)
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(partial, "wb") as out:
                    for block in response.iter_content(chunk):
                        out.write(block)
            os.replace(partial, target)
        except requests.RequestException as exc:
            raise SharingHubError(f"cannot download {href}: {first_line(exc)}") from None
        finally:
            partial.unlink(missing_ok=True)
        return target

    def check(self) -> Client:
        """The server answers and runs the extension (its STAC landing page)."""
        try:
            self.get("stac")
        except SharingHubError as exc:
            if exc.status == 404:
                raise SharingHubError(f"the Jupyter server at {self.url} does not run the "
                                      "sharinghub extension") from None
            raise
        return self


def _http_error(response: requests.Response, url: str) -> str:
    status = response.status_code
    try:
        body = response.json()
        description = str(body.get("description") or body.get("message") or "").strip()
    except (ValueError, AttributeError):
        description = ""
    description = description.splitlines()[0] if description else response.reason or "error"
    if status in (401, 403):
        return (f"the Jupyter server at {url} refused the request (HTTP {status}): set "
                "SHARINGHUB_TOKEN to its token, or call sh.connect(url, token)")
    if status >= 500:
        return f"the server failed (HTTP {status}): {description}"
    return description


# --- finding the server ----------------------------------------------------------------------

def _ancestors(pid: int) -> Iterator[int]:
    """``pid`` and its ancestors, nearest first."""
    try:
        import psutil
    except ImportError:  # without psutil: the process and its parent only
        yield pid
        if pid == os.getpid():
            yield os.getppid()
        return
    try:
        proc = psutil.Process(pid)
        yield proc.pid
        for parent in proc.parents():
            yield parent.pid
    except psutil.Error:
        return


def find_runtime_server(pid: int | None = None,
                        runtime_dir: str | os.PathLike[str] | None = None
                        ) -> dict[str, Any] | None:
    """The runtime info (``url``, ``token``, ``root_dir``, ...) of the Jupyter server that
    is ``pid`` (default: this process) or one of its ancestors; None if there is none."""
    if runtime_dir is None:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime_dir = jupyter_runtime_dir()
    servers: dict[int, dict[str, Any]] = {}
    for path in Path(runtime_dir).glob("jpserver-*.json"):
        try:
            info = json.loads(path.read_text())
            servers[int(info["pid"])] = info
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if not servers:
        return None
    for ancestor in _ancestors(os.getpid() if pid is None else pid):
        info = servers.get(ancestor)
        if info is not None and info.get("url") and not info.get("sock"):
            return info
    return None


_current: Client | None = None


def connect(url: str | None = None, token: str | None = None, *,
            root_dir: str | os.PathLike[str] | None = None) -> Client:
    """Connect to (and remember) a server: ``url`` (and ``token``) when given, else
    ``SHARINGHUB_URL``/``SHARINGHUB_TOKEN``/``SHARINGHUB_ROOT``, else the Jupyter server this
    kernel runs under. Checks it runs the extension."""
    global _current
    if url:
        client = Client(url, token if token is not None else "", root_dir)
    elif os.environ.get("SHARINGHUB_URL"):
        client = Client(os.environ["SHARINGHUB_URL"],
                        token if token is not None else os.environ.get("SHARINGHUB_TOKEN", ""),
                        root_dir or os.environ.get("SHARINGHUB_ROOT") or None)
    else:
        info = find_runtime_server()
        if info is None:
            raise SharingHubError(NO_SERVER)
        client = Client(info["url"], token if token is not None else info.get("token", ""),
                        root_dir or info.get("root_dir"))
    _current = client.check()
    return client


def current() -> Client:
    """The connected server, connecting on first use."""
    return _current if _current is not None else connect()
