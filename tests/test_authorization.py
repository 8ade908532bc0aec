"""Jupyter's authorization layer on every route of the extension (issue 15, defect 9), and JSON
404s for unknown job ids and paths (defect 2), through real HTTP (pytest-jupyter's server).

The routes are enumerated from ``sharinghub_server.handlers.routes()`` (with the embedded
MLflow handler and with the external one), each reached by a sample path that the running
server routes to that very handler, and every method tornado serves is tried on each:

- with a read-only authorizer (``ServerApp.authorizer_class``): each write is a JSON 403 that
  changes nothing (no crawl, no job, no job cancelled, no file in the workspace or the local
  projects, no GitLab write, no index write, MLflow never reached), each read goes through
  (200/400/404 JSON as usual; an external MLflow's read reaches the server: 502 from the
  unreachable one); the authorizer is asked exactly once per request, with the action and
  resource the README documents;
- with an authorizer refusing everything: every method every route implements is a JSON 403
  and changes nothing;
- the embedded MLflow, end to end: a read-only user lists and searches, cannot create;
- unknown job ids (not hex, encoded dot segments, slashes...) and paths under
  ``sharinghub/api`` no route serves are JSON 404s ``{code, description}``.

Jupyter's CORS preflight (``OPTIONS`` on API handlers, Jupyter's own method) answers anyone
with no body and asks no authorizer: it is left as it is (see ``tests/test_access.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote, urlsplit

import pytest
from jupyter_server.auth import Authorizer
from jupyter_server.base.handlers import APIHandler
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.routing import Router
from tornado.web import RequestHandler

from sharinghub_server.handlers import routes
from sharinghub_server.jobs import Job

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DATASET = "local/sen1floods11-sample"
MODEL = "local/flood-model"
#: an external MLflow server nobody listens on: a request that passes our checks gets 502
UNREACHABLE = "http://127.0.0.1:9"
#: text that only a real answer would hold
LEAKS = (b"sharinghub-test", b"features", b"sen1floods11", b"experiments", b'"job"',
         b"last_crawl")

#: the values of each route's groups, in order (``None``: the held job's id)
GROUPS: dict[str, tuple] = {
    "CollectionHandler": ("dataset",),
    "QueryablesHandler": ("dataset",),
    "ItemsHandler": ("dataset",),
    "ItemHandler": ("dataset", DATASET),
    "DownloadHandler": (MODEL, "README.md"),
    "JobHandler": (None,),
    "NotFoundHandler": ("/nope",),
}
#: query strings the reads need to answer 200
QUERIES = {"VersionsHandler": f"?item={DATASET}", "PermissionsHandler": f"?item={DATASET}"}
#: bodies that would succeed if the write were let through
BODIES = {
    "PullHandler": {"item": DATASET, "dest": "leak"},
    "NewProjectHandler": {"category": "dataset", "name": "planted"},
    "PublishDatasetHandler": {"item": DATASET, "path": "leak", "version": "v9.9"},
    "MetadataHandler": {"item": MODEL, "front_matter": {"title": "planted"}},
    "SearchHandler": {"limit": 5},
}
#: (handler, method) -> (action, resource) the authorizer must be asked; otherwise GET/HEAD/
#: OPTIONS read and the rest write the handler's resource below
SPECIAL = {("SearchHandler", "POST"): ("read", "sharinghub:catalog"),
           ("IndexHandler", "GET"): ("read", "sharinghub:catalog"),
           ("IndexHandler", "POST"): ("write", "sharinghub:index")}
RESOURCES = {
    **dict.fromkeys(("LandingHandler", "ConformanceHandler", "QueryablesHandler",
                     "SearchHandler", "CollectionsHandler", "CollectionHandler", "ItemsHandler",
                     "ItemHandler", "OpenAPIHandler", "DownloadHandler", "NotFoundHandler"),
                    "sharinghub:catalog"),
    "IndexHandler": "sharinghub:index",
    **dict.fromkeys(("VersionsHandler", "PullHandler", "JobHandler"), "sharinghub:dvc"),
    **dict.fromkeys(("NewProjectHandler", "PublishDatasetHandler", "MetadataHandler",
                     "PermissionsHandler"), "sharinghub:publish"),
    **dict.fromkeys(("MLflowHandler", "MLflowProxyHandler"), "sharinghub:mlflow"),
}
#: requests under sharinghub/mlflow/: (method, path below it, body, action)
MLFLOW = [
    ("GET", "api/2.0/mlflow/experiments/search?max_results=10", None, "read"),
    ("HEAD", "api/2.0/mlflow/experiments/search", None, "read"),
    ("OPTIONS", "api/2.0/mlflow/experiments/search", None, "read"),
    ("GET", "", None, "read"),  # the UI
    ("POST", "api/2.0/mlflow/runs/search", {"experiment_ids": ["0"]}, "read"),
    ("POST", "ajax-api/2.0/mlflow/experiments/search", {}, "read"),
    ("POST", "api/2.0/mlflow/registered-models/get-latest-versions", {"name": "m"}, "read"),
    ("POST", "graphql", {"query": "{ __typename }"}, "read"),
    ("POST", "api/2.0/mlflow/experiments/create", {"name": "planted"}, "write"),
    ("POST", "ajax-api/2.0/mlflow/runs/create", {"experiment_id": "0"}, "write"),
    ("POST", "api/2.0/mlflow/registered-models/create", {"name": "planted"}, "write"),
    ("POST", "api/3.0/mlflow/review-queues/get-or-create-user", {}, "write"),
    ("POST", "api/2.0/mlflow/search", {}, "read"),  # (no such endpoint: MLflow's 404)
    ("PUT", "api/2.0/mlflow/runs/search", {}, "write"),
    ("PATCH", "api/2.0/mlflow/registered-models/update", {"name": "m"}, "write"),
    ("DELETE", "api/2.0/mlflow/registered-models/delete", {"name": "m"}, "write"),
    ("POST", "api/2.0/mlflow/experiments/delete", {"experiment_id": "0"}, "write"),
]


class Recording(Authorizer):
    """Records what it is asked about the extension's resources; ``allows`` decides."""

    calls: ClassVar[list[tuple[str, str, str, str]]] = []

    def allows(self, action: str, resource: str) -> bool:
        raise NotImplementedError

    def is_authorized(self, handler, user, action, resource) -> bool:
        if resource.startswith("sharinghub:"):
            Recording.calls.append((handler.request.method, handler.request.path, action,
                                    resource))
        return self.allows(action, resource)


class ReadOnly(Recording):
    def allows(self, action: str, resource: str) -> bool:
        return action == "read"


class RefuseAll(Recording):
    def allows(self, action: str, resource: str) -> bool:
        return False


class AllowAll(Recording):
    def allows(self, action: str, resource: str) -> bool:
        return True


@pytest.fixture
def authorizer() -> type[Recording]:
    return ReadOnly


@pytest.fixture(params=["embedded", "external"])
def mlflow_mode(request) -> str:
    return request.param


@pytest.fixture
def jp_server_config(jp_server_config, mlflow_mode, authorizer):
    """conftest's server (GitLab test server, local projects) with ``authorizer``; MLflow
    embedded (not warmed up: only a test's own reads load it) or external (unreachable)."""
    sharinghub = {**jp_server_config["SharingHub"], "mlflow_warmup": False, "max_jobs": 1}
    if mlflow_mode == "external":
        sharinghub["mlflow_tracking_uri"] = UNREACHABLE
    Recording.calls.clear()
    return {**jp_server_config, "SharingHub": sharinghub,
            "ServerApp": {**jp_server_config["ServerApp"], "authorizer_class": authorizer}}


# --- helpers -----------------------------------------------------------------------------


async def crawled(jp_web_app, timeout: float = 60) -> None:
    """The start-up crawl finished (asked of the service: the user may not read)."""
    scheduler = jp_web_app.settings["sharinghub_service"].scheduler
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = scheduler.status()
        if status["state"] == "idle" and (status["last_crawl"] or {}).get("finished"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the crawl did not finish in time")


def _rules(router: Router):
    for rule in getattr(router, "rules", []):
        if isinstance(rule.target, Router):
            yield from _rules(rule.target)
        elif isinstance(rule.target, type) and issubclass(rule.target, RequestHandler):
            yield rule.matcher.regex, rule.target


def first_rule(web_app, path: str) -> type | None:
    every = list(_rules(web_app.default_router)) + list(_rules(web_app.wildcard_router))
    return next((h for regex, h in every if regex.fullmatch(path)), None)


def sample_path(pattern: str, values: tuple) -> str:
    """``pattern`` (a route's) with its groups replaced by ``values``, in order."""
    found = iter(values)
    path = re.sub(r"\((?:[^()]|\([^()]*\))*\)\??", lambda _m: quote(next(found), safe="/"),
                  pattern)
    return path.replace("/?", "").replace("\\", "")


def implemented(handler: type, method: str) -> bool:
    """Whether ``handler`` answers ``method`` itself (tornado's defaults answer 405)."""
    return getattr(handler, method.lower()) is not getattr(RequestHandler, method.lower())


def cors_preflight(handler: type, method: str) -> bool:
    return method == "OPTIONS" and handler.options is APIHandler.options


def expected(handler: type, method: str) -> tuple[str, str]:
    name = handler.__name__
    if (name, method) in SPECIAL:
        return SPECIAL[(name, method)]
    return ("read" if method in ("GET", "HEAD", "OPTIONS") else "write"), RESOURCES[name]


async def send(url: str, method: str, headers: dict, body=None) -> HTTPResponse:
    if method not in ("POST", "PUT", "PATCH"):
        body = None
    elif body is None:
        body = ""
    elif not isinstance(body, str):
        body = json.dumps(body)
        headers = {**headers, "Content-Type": "application/json"}
    return await AsyncHTTPClient().fetch(url, method=method, headers=headers, body=body,
                                         raise_error=False, follow_redirects=False,
                                         allow_nonstandard_methods=True)


def requests_of(jp_web_app, server: str, external: bool, job_id: str):
    """(handler, method, url, body) of every route and method: the enumeration. Each sample
    path (below ``server``, the base URL) is routed by the running server to its handler."""
    base = urlsplit(server).path.rstrip("/")
    table = routes(external_mlflow=external)
    assert {h.__name__ for _, h in table} <= set(RESOURCES), "a route with no resource here"
    out = []
    for pattern, handler in table:
        name = handler.__name__
        if "mlflow" in pattern:
            for method, below, body, _action in MLFLOW:
                path = f"{base}/sharinghub/mlflow/{below}".split("?")[0]
                assert first_rule(jp_web_app, path) is handler, path
                out.append((handler, method, f"{server}sharinghub/mlflow/{below}", body))
            continue
        values = tuple(job_id if v is None else v for v in GROUPS.get(name, ()))
        path = sample_path(pattern, values)
        assert re.fullmatch(pattern, path), (pattern, path)
        assert first_rule(jp_web_app, base + path) is handler, path
        for method in METHODS:
            out.append((handler, method, server + path.lstrip("/") + QUERIES.get(name, ""),
                        BODIES.get(name)))
    return out


def _files(folder: Path) -> list:
    """Every file outside ``.git`` with its content's hash, and the git refs (a commit, a
    tag)."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink() or ("/.git/" in f"/{rel}/" and "/.git/refs/" not in f"/{rel}/"):
            continue
        out.append((rel, hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else None))
    return out


def state(jp_web_app, root: Path, projects: Path, gitlab) -> tuple:
    """What a write could change."""
    service = jp_web_app.settings["sharinghub_service"]
    status = service.scheduler.status()
    return (status["state"], json.dumps(status["last_crawl"], sort_keys=True),
            service.writes, sorted(service.jobs._jobs), _files(root), _files(projects),
            len(gitlab.projects), gitlab.count(method="POST"), gitlab.count(method="PUT"))


def assert_json_403(response: HTTPResponse, resource: str, what: tuple) -> None:
    assert response.code == 403, (what, response.code, response.body[:300])
    if response.request.method == "HEAD":
        return
    body = json.loads(response.body)
    assert body["code"] == "Forbidden", (what, body)
    assert f"resource: {resource}" in body["description"], (what, body)
    for leak in LEAKS:
        assert leak not in response.body, (what, leak, response.body[:300])


class HeldJob:
    """A running job (its work waits) whose id the job routes use: a DELETE let through would
    cancel it."""

    def __init__(self, jp_web_app) -> None:
        self.release = threading.Event()
        self.job = Job(kind="pull", item=DATASET, rev=None, dest="held")

        def work(job: Job) -> dict:
            job.state = "pulling"
            self.release.wait(60)
            return {}

        jp_web_app.settings["sharinghub_service"].jobs.submit(self.job, work)


# --- defect 9: authorization -------------------------------------------------------------


async def test_a_read_only_user_reads_everything_and_writes_nothing(
        jp_fetch, jp_web_app, jp_http_port, jp_base_url, jp_auth_header, jp_root_dir,
        local_projects, gitlab, mlflow_mode):
    server = f"http://localhost:{jp_http_port}{jp_base_url}"
    await crawled(jp_web_app)
    held = HeldJob(jp_web_app)
    try:
        before = state(jp_web_app, Path(jp_root_dir), local_projects, gitlab)
        reads = writes = 0
        for handler, method, url, body in requests_of(jp_web_app, server,
                                                      mlflow_mode == "external", held.job.id):
            what = (method, url)
            mlflow = "/sharinghub/mlflow" in url
            action, resource = expected(handler, method)
            if mlflow:
                path = url[url.index("/sharinghub/mlflow/") + len("/sharinghub/mlflow/"):]
                action = next(a for m, p, _, a in MLFLOW if m == method and p == path)
                if action == "read" and mlflow_mode == "embedded":
                    continue  # (would load MLflow here: see the embedded test below)
            Recording.calls.clear()
            response = await send(url, method, dict(jp_auth_header), body)
            if cors_preflight(handler, method):
                assert response.code in (200, 204) and not response.body, what
                assert Recording.calls == [], what
                continue
            if not implemented(handler, method):
                assert response.code == 405 and Recording.calls == [], (what, response.code)
                continue
            asked = [(m, action, r) for m, _, action, r in Recording.calls]
            assert asked == [(method, action, resource)], (what, Recording.calls)
            if action == "write":
                assert_json_403(response, resource, what)
                writes += 1
            elif mlflow:
                # through every check, to the unreachable server
                assert response.code == 502, (what, response.code, response.body[:300])
                reads += 1
            else:
                assert response.code in (200, 400, 404), (what, response.code,
                                                          response.body[:300])
                if method != "HEAD" and "json" in response.headers.get("Content-Type", ""):
                    json.loads(response.body)
                reads += 1
        assert state(jp_web_app, Path(jp_root_dir), local_projects, gitlab) == before
        assert not held.job.cancel_event.is_set() and held.job.state == "pulling"
        assert "sharinghub_mlflow_container" not in jp_web_app.settings  # never reached
        assert reads >= 15 and writes >= 10, (reads, writes)
    finally:
        held.release.set()


@pytest.mark.parametrize("authorizer", [RefuseAll])
async def test_an_authorizer_refusing_everything_gets_a_403_everywhere(
        jp_fetch, jp_web_app, jp_http_port, jp_base_url, jp_auth_header, jp_root_dir,
        local_projects, gitlab, mlflow_mode):
    server = f"http://localhost:{jp_http_port}{jp_base_url}"
    await crawled(jp_web_app)
    held = HeldJob(jp_web_app)
    try:
        before = state(jp_web_app, Path(jp_root_dir), local_projects, gitlab)
        refused = 0
        for handler, method, url, body in requests_of(jp_web_app, server,
                                                      mlflow_mode == "external", held.job.id):
            what = (method, url)
            Recording.calls.clear()
            response = await send(url, method, dict(jp_auth_header), body)
            if cors_preflight(handler, method):
                assert response.code in (200, 204) and not response.body, what
            elif not implemented(handler, method):
                assert response.code == 405, (what, response.code)
            else:
                _, resource = expected(handler, method)
                assert_json_403(response, resource, what)
                assert len(Recording.calls) == 1, (what, Recording.calls)
                refused += 1
        assert state(jp_web_app, Path(jp_root_dir), local_projects, gitlab) == before
        assert not held.job.cancel_event.is_set()
        assert "sharinghub_mlflow_container" not in jp_web_app.settings
        assert refused >= 35, refused
    finally:
        held.release.set()


async def test_a_read_only_user_of_the_embedded_mlflow_searches_but_cannot_create(
        jp_fetch, jp_web_app, jp_http_port, jp_base_url, jp_auth_header, mlflow_mode):
    if mlflow_mode == "external":
        pytest.skip("the embedded server; the external one's reads and writes: above")
    url = f"http://localhost:{jp_http_port}{jp_base_url}sharinghub/mlflow/api/2.0/mlflow/"
    headers = dict(jp_auth_header)
    await crawled(jp_web_app)
    listed = await send(url + "experiments/search?max_results=100", "GET", headers)
    assert listed.code == 200, listed.body[:300]
    searched = await send(url + "runs/search", "POST", headers, {"experiment_ids": ["0"]})
    assert searched.code == 200, searched.body[:300]
    for path, body in (("experiments/create", {"name": "planted"}),
                       ("registered-models/create", {"name": "planted"})):
        refused = await send(url + path, "POST", headers, body)
        assert refused.code == 403, refused.body[:300]
        answer = json.loads(refused.body)
        # the MLflow client's shape and the extension's, in one
        assert answer["error_code"] == "PERMISSION_DENIED" and answer["code"] == "Forbidden"
        assert "sharinghub:mlflow" in answer["message"] == answer["description"]
    names = [e["name"] for e in json.loads(
        (await send(url + "experiments/search?max_results=100", "GET", headers)).body
    ).get("experiments", [])]
    assert "planted" not in names
    models = await send(url + "registered-models/search", "GET", headers)
    assert b"planted" not in models.body


# --- defect 2: unknown job ids and paths -------------------------------------------------


@pytest.mark.parametrize("authorizer", [AllowAll])
async def test_unknown_job_ids_and_paths_are_json_404s(
        jp_fetch, jp_web_app, jp_http_port, jp_base_url, jp_auth_header, mlflow_mode):
    if mlflow_mode == "external":
        pytest.skip("the MLflow mode does not matter here")
    server = f"http://localhost:{jp_http_port}{jp_base_url}sharinghub/api/"
    headers = dict(jp_auth_header)
    for job in ("zzz", "0000", "..%2F..", "%2E%2E", "ZZZ", "a%20b", "x/y", "%00", "%C3%A9",
                "0123abcd-", "f" * 500, "abc/"):
        for method in ("GET", "DELETE"):
            response = await send(f"{server}dvc/jobs/{job}", method, headers)
            what = (method, job)
            assert response.code == 404, (what, response.code, response.body[:300])
            assert response.headers["Content-Type"].startswith("application/json"), what
            body = json.loads(response.body)
            assert body["code"] == "NotFound", (what, body)
            assert body["description"].startswith("no job "), (what, body)
    for path in ("", "/", "/nope", "/dvc/jobs", "/dvc/jobs/", "/dvc", "/openapi.yaml",
                 "/stac/collections/dataset/bogus",
                 f"/download/{MODEL}", "/publish/new/extra", "/index/now"):
        for method in ("GET", "POST", "DELETE"):
            response = await send(server.rstrip("/") + path, method, headers,
                                  "{}" if method == "POST" else None)
            what = (method, path)
            assert response.code == 404, (what, response.code, response.body[:300])
            body = json.loads(response.body)
            assert body["code"] == "NotFound" and body["description"], (what, body)
