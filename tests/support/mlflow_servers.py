"""A real MLflow tracking server, and an imitation of MLflow SharingHub in front of it.

External MLflow mode proxies ``sharinghub/mlflow/<rest>`` to an MLflow SharingHub server, so its
tests need one.  MLflow SharingHub (https://github.com/csgroup-oss/mlflow-sharinghub) is a
Flask plugin of the MLflow server (``mlflow server --app-name sharinghub``) that cannot run here,
so :class:`SharingHubGateway` reproduces what it does, in front of a real ``mlflow server``
(:class:`MLflowServer`).  Behaviour taken from its sources (``src/mlflow_sharinghub/``):

* ``app.py``: every project has its tracking endpoint at ``/<project path>/tracking/<rest>``,
  which MLflow serves as ``/<rest>``.
* ``auth/api.py``, ``_internal/server.py``: the token is ``Authorization: Bearer`` (or the
  web session); none gives 401 with ``WWW-Authenticate: Bearer realm="mlflow"``, except for
  ``/health``, ``/version``, ``/auth`` and static files.
* ``clients/gitlab.py``, ``permissions.py``: the project is read with the user's token from
  ``GET <gitlab>/api/v4/projects/<url-encoded path>?simple=true``; a 404 means no access; the
  role is the highest of ``permissions.project_access`` / ``group_access``: Guest and Reporter
  read, Developer creates and updates, Maintainer and Owner also delete.
* ``hooks/handlers/validators.py``: creating an experiment needs the suffix ``(<project
  id>)`` (``<anything> (<id>)``, not necessarily the project's name); renaming keeps the
  suffix; the ``project`` tag cannot be set by clients.
* ``hooks/handlers/initializers.py``: after a creation, the server tags the experiment
  ``project=<project path>``; it never creates an experiment by itself (clients do, as
  ``mlflow.set_experiment`` in SharingHub's snippet, ``sharinghub-ui`` ``codeTemplates.js``).
* ``permissions.py``, ``hooks/before.py``: an experiment (its runs, its proxied artifacts) is
  reachable only from the tracking endpoint of the project its ``project`` tag names; anything
  refused answers 403 ``Permission denied.`` (plain text, ``utils/http.py``).
* ``hooks/handlers/filters.py``: experiment and run searches drop what the user cannot read.
  Listing proxied artifacts (``/api/2.0/mlflow-artifacts/artifacts?path=``, no trailing slash)
  is not checked by the real server either.

Deliberate differences: a token GitLab rejects gets 401 here (the real server lets the GitLab
error through, a 500); the model registry and the global (project-less) view are not imitated;
filtered searches are not refilled up to ``max_results``; project permissions are not cached
(the real server keeps them in its session for 300 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlencode

import tornado.httpclient
import tornado.httpserver
import tornado.httputil
import tornado.netutil
import tornado.web

from tests.support.threaded import ThreadedServer, free_port

__all__ = [
    "GatewayRequest",
    "MLflowServer",
    "SharingHubGateway",
    "gateway_factory_fixture",
    "mlflow_fixture",
]

_MAX_BODY = 1 << 30


# --------------------------------------------------------------------------------------------
# the real MLflow server


class MLflowServer:
    """``mlflow server`` on a free loopback port, SQLite backend and served artifacts in
    ``workdir``; its own process group, so :meth:`stop` also ends uvicorn's worker."""

    def __init__(self, workdir: str | os.PathLike[str], *, startup_timeout: float = 60.0) -> None:
        self.workdir = Path(workdir)
        self.startup_timeout = startup_timeout
        self.port = 0
        self.url = ""
        self.log_path = self.workdir / "mlflow-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MLflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> MLflowServer:
        """Start the server and wait (bounded polling of ``/health``) until it answers."""
        if self._proc is not None:
            raise RuntimeError("already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("mlflow")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]
        cmd += ["server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
                "--artifacts-destination", str(self.workdir / "artifacts"), "--serve-artifacts"]
        # job execution would start a pool of 8 workers (2.4 GB) we never use
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                          cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                if resp.status == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mlflow server did not start:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """Terminate the process group (SIGKILL after 10 s); idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def log(self) -> str:
        """The server's output so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# --------------------------------------------------------------------------------------------
# the MLflow SharingHub imitation


@dataclass
class GatewayRequest:
    """One request the gateway received: ``path`` is raw (percent-encoded), without the query;
    ``status`` is set once answered."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int | None = None


class _Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class _Ctx:
    """What a request is about: its project (None: unknown to GitLab or hidden) and role."""

    path: str
    project: dict[str, Any] | None
    level: int = field(init=False)

    def __post_init__(self) -> None:
        perms = (self.project or {}).get("permissions") or {}
        self.level = max((perms.get(k) or {}).get("access_level", 0)
                         for k in ("project_access", "group_access"))


_TEXT = {"Content-Type": "text/html; charset=utf-8"}
_UNAUTHENTICATED = _Reply(401, {**_TEXT, "WWW-Authenticate": 'Bearer realm="mlflow"'}, (
    b"You are not authenticated. Please use the Authorization header for bearer auth, "
    b"if you are using the MLflow client set MLFLOW_TRACKING_TOKEN."))
_FORBIDDEN = _Reply(403, _TEXT, b"Permission denied.")
_UNPROTECTED = ("/health", "/version", "/auth", "/static-files/static", "/static-files/favicon")
#: GitLab access levels each action needs (permissions.py: Guest 10 ... Maintainer 40)
_LEVELS = {"read": 10, "create": 30, "update": 30, "delete": 40}
#: MLflow endpoints acting on the experiment ``experiment_id`` names, and the action
_ON_EXPERIMENT = {"experiments/get": "read", "experiments/update": "update",
                  "experiments/set-experiment-tag": "update", "runs/create": "update",
                  "experiments/delete": "delete", "experiments/restore": "delete"}
#: MLflow endpoints acting on the run ``run_id`` (or ``run_uuid``) names, and the action
_ON_RUN = {"runs/get": "read", "metrics/get-history": "read", "artifacts/list": "read",
           **dict.fromkeys(("runs/update", "runs/log-metric", "runs/log-batch", "runs/log-model",
                            "runs/log-inputs", "runs/log-parameter", "runs/set-tag",
                            "runs/delete-tag"), "update"),
           "runs/delete": "delete", "runs/restore": "delete"}
_SUFFIX = re.compile(r"\s+\(.+\)$")
_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "te",
        "upgrade", "proxy-authorization", "proxy-connection", "trailer"}


def _suffix(name: str) -> str | None:
    m = _SUFFIX.search(name)
    return m.group().strip() if m else None


class _Handler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def initialize(self, gateway: SharingHubGateway) -> None:
        self.gateway = gateway

    def compute_etag(self) -> None:
        return None

    async def get(self, *_: str) -> None:
        await self.gateway._handle(self)

    post = put = patch = delete = get


class SharingHubGateway(ThreadedServer):
    """MLflow SharingHub's behaviour (see the module docstring) in front of ``upstream_url``
    (a plain MLflow server), checking tokens against the GitLab API at ``gitlab_url``.

    Served by tornado from a background thread on ``127.0.0.1:<free port>``.  Every request
    is recorded (:attr:`requests`).  ``strict_names`` also requires new experiments to be named
    exactly ``<project name> (<project id>)`` (the real server only checks the suffix).
    """

    def __init__(self, upstream_url: str, gitlab_url: str, *, project_tag: str = "project",
                 strict_names: bool = False) -> None:
        super().__init__()
        self.upstream_url = upstream_url.rstrip("/")
        self.gitlab_url = gitlab_url.rstrip("/")
        self.project_tag = project_tag
        self.strict_names = strict_names
        self._log: list[GatewayRequest] = []
        self._lock = threading.Lock()
        self._http: tornado.httpclient.AsyncHTTPClient | None = None

    # ---- lifecycle and helpers for tests -------------------------------------------------------

    def tracking_uri(self, project_path: str) -> str:
        """The project's MLflow tracking URI: ``<url>/<project path>/tracking``."""
        return f"{self.url}/{project_path.strip('/')}/tracking"

    @property
    def requests(self) -> list[GatewayRequest]:
        """A snapshot of the requests received so far."""
        with self._lock:
            return list(self._log)

    def reset_requests(self) -> None:
        with self._lock:
            self._log.clear()

    thread_name = "sharinghub-gateway"

    def http_server(self) -> tornado.httpserver.HTTPServer:
        app = tornado.web.Application([(r"/.*", _Handler, {"gateway": self})],
                                      log_function=lambda _h: None)
        # artifacts of any size, like the real server (tornado's default stops at 100 MB)
        return tornado.httpserver.HTTPServer(app, max_body_size=_MAX_BODY,
                                             max_buffer_size=_MAX_BODY)

    async def on_start(self) -> None:
        self._http = tornado.httpclient.AsyncHTTPClient(force_instance=True,
                                                        max_body_size=_MAX_BODY)

    async def on_stop(self) -> None:
        if self._http is not None:
            self._http.close()

    # ---- request handling ------------------------------------------------------------------

    async def _handle(self, handler: _Handler) -> None:
        req = handler.request
        record = GatewayRequest(req.method or "GET", req.path, req.query, dict(req.headers))
        with self._lock:
            self._log.append(record)
        try:
            reply = await self._answer(req)
        except Exception as exc:  # a bug here should show up in the test, not hang it
            reply = _Reply(500, {"Content-Type": "text/plain"}, repr(exc).encode())
        record.status = reply.status
        handler.set_status(reply.status)
        for name, value in reply.headers.items():
            handler.set_header(name, value)
        await handler.finish(reply.body)

    async def _answer(self, req: tornado.httputil.HTTPServerRequest) -> _Reply:
        m = re.fullmatch(r"/(.+?)/tracking(/.*)?", req.path)
        if not m:
            return _Reply(404, _TEXT, b"Not Found")
        rest = m[2] or "/"
        if rest.startswith(_UNPROTECTED):
            return await self._forward(req, rest)
        scheme, _, token = req.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _UNAUTHENTICATED
        project = await self._gitlab_project(token.strip(), unquote(m[1]))
        if project is False:
            return _UNAUTHENTICATED
        ctx = _Ctx(unquote(m[1]), project or None)
        api = re.fullmatch(r"/(?:ajax-)?api/2\.0/mlflow/(.+)", rest)
        if api:
            return await self._api(req, rest, api[1], ctx)
        artifact = re.fullmatch(r"/api/2\.0/mlflow-artifacts/artifacts/(.+)", rest)
        action = {"GET": "read", "PUT": "update", "DELETE": "delete"}.get(req.method or "")
        if artifact and action:
            exp_id = re.match(r"(\d+)/", unquote(artifact[1]))
            if not exp_id:
                return _FORBIDDEN
            refusal = await self._check_experiment(ctx, action, experiment_id=exp_id[1])
            if refusal:
                return refusal
        return await self._forward(req, rest)

    async def _api(self, req: tornado.httputil.HTTPServerRequest, rest: str, endpoint: str,
                   ctx: _Ctx) -> _Reply:
        """The MLflow REST API: checks before, tagging and filtering after."""
        params = _params(req)
        if endpoint == "experiments/create":
            if not self._may_create(ctx, str(params.get("name", ""))):
                return _FORBIDDEN
            reply = await self._forward(req, rest)
            if reply.status == 200:
                await self._call("POST", "/api/2.0/mlflow/experiments/set-experiment-tag", {
                    "experiment_id": json.loads(reply.body)["experiment_id"],
                    "key": self.project_tag, "value": ctx.path})
            return reply
        if endpoint == "experiments/get-by-name" and "experiment_name" in params:
            refusal = await self._check_experiment(ctx, "read", "get-by-name",
                                                   experiment_name=params["experiment_name"])
        elif endpoint in _ON_EXPERIMENT and "experiment_id" in params:
            refusal = await self._check_experiment(ctx, _ON_EXPERIMENT[endpoint],
                                                   experiment_id=params["experiment_id"],
                                                   new_name=params.get("new_name"),
                                                   tag_key=params.get("key"))
        elif endpoint in _ON_RUN and ("run_id" in params or "run_uuid" in params):
            run_id = params.get("run_id", params.get("run_uuid"))
            status, run = await self._call("GET", "/api/2.0/mlflow/runs/get", {"run_id": run_id})
            if status != 200:
                return _json_reply(status, run)
            refusal = await self._check_experiment(
                ctx, _ON_RUN[endpoint], experiment_id=run["run"]["info"]["experiment_id"])
        else:
            refusal = None
        if refusal:
            return refusal
        reply = await self._forward(req, rest)
        if endpoint in ("experiments/search", "runs/search") and reply.status == 200:
            return await self._filter(reply, ctx, endpoint.split("/")[0])
        return reply

    def _may_create(self, ctx: _Ctx, name: str) -> bool:
        if ctx.project is None or ctx.level < _LEVELS["create"]:
            return False
        if self.strict_names and name != f"{ctx.project['name']} ({ctx.project['id']})":
            return False
        return _suffix(name) == f"({ctx.project['id']})"

    async def _check_experiment(self, ctx: _Ctx, action: str, by: str = "get", *,
                                new_name: Any = None, tag_key: Any = None,
                                **query: str) -> _Reply | None:
        """None when ``ctx`` may do ``action`` on the experiment, else the reply to send
        (upstream's own error, e.g. 404, when it does not exist)."""
        status, data = await self._call("GET", f"/api/2.0/mlflow/experiments/{by}", query)
        if status != 200:
            return _json_reply(status, data)
        experiment = data["experiment"]
        if not self._allowed(ctx, experiment, action):
            return _FORBIDDEN
        if new_name is not None and (_suffix(str(new_name)) is None
                                     or _suffix(str(new_name)) != _suffix(experiment["name"])):
            return _FORBIDDEN
        return _FORBIDDEN if tag_key == self.project_tag else None

    def _allowed(self, ctx: _Ctx, experiment: dict[str, Any], action: str) -> bool:
        tags = {t["key"]: t.get("value", "") for t in experiment.get("tags", [])}
        return tags.get(self.project_tag, "").strip() == ctx.path and ctx.level >= _LEVELS[action]

    async def _filter(self, reply: _Reply, ctx: _Ctx, kind: str) -> _Reply:
        """Drop the experiments (or runs) ``ctx`` cannot read from a search answer."""
        data = json.loads(reply.body)
        experiments: dict[str, dict[str, Any] | None] = {}
        kept = []
        for item in data.get(kind, []):
            if kind == "experiments":
                experiment: dict[str, Any] | None = item
            else:
                exp_id = item["info"]["experiment_id"]
                if exp_id not in experiments:
                    status, got = await self._call("GET", "/api/2.0/mlflow/experiments/get",
                                                   {"experiment_id": exp_id})
                    experiments[exp_id] = got["experiment"] if status == 200 else None
                experiment = experiments[exp_id]
            if experiment is not None and self._allowed(ctx, experiment, "read"):
                kept.append(item)
        data[kind] = kept
        return reply._replace(body=json.dumps(data).encode())

    # ---- outgoing calls ----------------------------------------------------------------------

    async def _gitlab_project(self, token: str, path: str) -> dict[str, Any] | bool | None:
        """The GitLab project as the token sees it: None if hidden or absent, False if GitLab
        rejects the token."""
        assert self._http is not None
        resp = await self._http.fetch(
            f"{self.gitlab_url}/api/v4/projects/{quote(path, safe='')}?simple=true",
            headers={"Authorization": f"Bearer {token}"}, raise_error=False, request_timeout=30)
        if resp.code == 401:
            return False
        if resp.code == 404:
            return None
        if resp.code != 200:
            raise RuntimeError(f"GitLab answered {resp.code} for project {path}")
        return json.loads(resp.body)

    async def _call(self, method: str, path: str,
                    params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A JSON call of the upstream MLflow REST API (query for GET, body otherwise)."""
        assert self._http is not None
        url, body = f"{self.upstream_url}{path}", None
        if method == "GET":
            url += "?" + urlencode(params)
        else:
            body = json.dumps(params).encode()
        resp = await self._http.fetch(url, method=method, body=body, raise_error=False,
                                      headers={"Content-Type": "application/json"},
                                      request_timeout=60)
        try:
            return resp.code, json.loads(resp.body or b"{}")
        except ValueError:
            return resp.code, {"error_code": "INTERNAL_ERROR", "message": resp.body.decode()}

    async def _forward(self, req: tornado.httputil.HTTPServerRequest, rest: str) -> _Reply:
        """Send the request to the upstream MLflow as ``/<rest>`` and return its answer."""
        assert self._http is not None
        url = f"{self.upstream_url}{rest}" + (f"?{req.query}" if req.query else "")
        headers = {k: v for k, v in req.headers.get_all()
                   if k.lower() not in _HOP and k.lower() not in ("authorization", "cookie")}
        has_body = req.method in ("POST", "PUT", "PATCH") or bool(req.body)
        resp = await self._http.fetch(tornado.httpclient.HTTPRequest(
            url, method=req.method or "GET", headers=headers,
            body=req.body if has_body else None, allow_nonstandard_methods=True,
            follow_redirects=False, decompress_response=False, request_timeout=120),
            raise_error=False)
        if resp.code == 599:
            return _Reply(502, {"Content-Type": "text/plain"}, f"upstream: {resp.error}".encode())
        out = {k: v for k, v in resp.headers.get_all()
               if k.lower() not in _HOP and k.lower() not in ("date", "server")}
        return _Reply(resp.code, out, resp.body or b"")


def _json_reply(status: int, data: Any) -> _Reply:
    return _Reply(status, {"Content-Type": "application/json"}, json.dumps(data).encode())


def _params(req: tornado.httputil.HTTPServerRequest) -> dict[str, Any]:
    """The MLflow request parameters: the query for GET, else the JSON body (as the real
    server's ``get_request_param``)."""
    if req.method == "GET":
        return {k: v[-1].decode() for k, v in req.query_arguments.items()}
    try:
        body = json.loads(req.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# --------------------------------------------------------------------------------------------
# pytest fixtures


def mlflow_fixture(scope: str = "module") -> Callable[..., Any]:
    """A fixture yielding a started :class:`MLflowServer` (about 5 s to start, 0.5 GB):
    ``mlflow_upstream = mlflow_fixture()`` in a test module."""
    import pytest

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def _mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
        with MLflowServer(tmp_path_factory.mktemp("mlflow-upstream")) as server:
            yield server

    return _mlflow


def gateway_factory_fixture(upstream: str = "mlflow_upstream") -> Callable[..., Any]:
    """A fixture yielding ``make(gitlab_url, **options) -> SharingHubGateway``, started in
    front of the fixture named ``upstream`` and stopped at teardown:
    ``sharinghub_gateway = gateway_factory_fixture()`` in a test module."""
    import pytest

    @pytest.fixture
    def _factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., SharingHubGateway]]:
        server: MLflowServer = request.getfixturevalue(upstream)
        started: list[SharingHubGateway] = []

        def make(gitlab_url: str, **options: Any) -> SharingHubGateway:
            gateway = SharingHubGateway(server.url, gitlab_url, **options).start()
            started.append(gateway)
            return gateway

        yield make
        for gateway in started:
            gateway.stop()

    return _factory
