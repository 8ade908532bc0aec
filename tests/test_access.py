"""Access to every route of the extension, through real HTTP (pytest-jupyter's server).

The routes are enumerated from the running server's own route table (every rule whose handler
comes from ``sharinghub_server``, the embedded MLflow server's and the external one's), not from
a hand list, and every HTTP method tornado serves is tried on each:

- without credentials, with a wrong token (header and ``?token=``) and with a forged login
  cookie: refused (401/403, 405 for a method the route has not, a login redirect for a page
  under ``sharinghub/mlflow/``), and no data in the answer. One documented exception: Jupyter's
  CORS preflight (``OPTIONS``) on API handlers answers 200 with no body to anyone;
- with a real login cookie but no XSRF token, every state-changing method is refused (403;
  404 from another origin, Jupyter's answer) and changes nothing (STAC's POST /search, a read,
  is exempt by design);
  and changes nothing; the same request with the XSRF token goes through (the control);
- under ``sharinghub/mlflow/`` (no XSRF token from the MLflow UI) a cookie-authenticated write
  from another origin (``Origin``, ``Referer``, neither, ``null``) is refused; a same-origin
  one goes through the check;
- DVC destinations outside the Jupyter root are refused, symlinks in the workspace included:
  used as ``dest`` themselves, chained, dangling, and a symlink put in place of a queued
  pull's destination before the pull runs.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.routing import Router
from tornado.web import RequestHandler

from tests.conftest import TOKEN, wait_for_crawl
from tests.support.git_repos import make_dataset_repo, tool_env
from tests.support.gitlab_server import FakeProject
from tests.test_dvc_local import api, refused, wait_job

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
#: what may stand for a route's groups, tried in order: the first the group's pattern matches
#: fully and that reaches the same rule is used (real ids, so that a leak would show)
SAMPLES = ("dataset", "sharinghub-test/sen1floods11-dataset", "0123abcd", "README.md",
           "/api/2.0/mlflow/experiments/search")
#: text that only a real answer would hold
LEAKS = (b"sharinghub-test", b"features", b"sen1floods11", b"experiments", b'"job"',
         b"last_crawl", TOKEN.encode())
#: an external MLflow server nobody listens on: a request that passes our checks gets 502
UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture(params=["embedded", "external"])
def mlflow_mode(request) -> str:
    return request.param


@pytest.fixture
def jp_server_config(jp_server_config, mlflow_mode):
    """conftest's server (GitLab test server and local projects); MLflow embedded (never
    loaded: no warm-up, and no request here reaches it) or external (unreachable)."""
    sharinghub = {**jp_server_config["SharingHub"], "mlflow_warmup": False, "max_jobs": 1}
    if mlflow_mode == "external":
        sharinghub["mlflow_tracking_uri"] = UNREACHABLE
    return {**jp_server_config, "SharingHub": sharinghub}


def _rules(router: Router):
    """(compiled path regex, handler class) of every rule, nested routers walked."""
    for rule in getattr(router, "rules", []):
        if isinstance(rule.target, Router):
            yield from _rules(rule.target)
        elif isinstance(rule.target, type) and issubclass(rule.target, RequestHandler):
            yield rule.matcher.regex, rule.target


def our_routes(web_app) -> list[tuple[re.Pattern, type]]:
    """The extension's rules, as the running server routes them (first match wins)."""
    every = list(_rules(web_app.default_router)) + list(_rules(web_app.wildcard_router))
    ours = [(regex, handler) for regex, handler in every
            if handler.__module__.startswith("sharinghub_server.")]
    assert ours, "no route of the extension found in the server's route table"
    return ours


def _first_rule(web_app, path: str) -> type | None:
    every = list(_rules(web_app.default_router)) + list(_rules(web_app.wildcard_router))
    return next((h for regex, h in every if regex.fullmatch(path)), None)


def _sample_path(web_app, regex: re.Pattern, handler: type) -> str:
    """A path this rule serves: its groups filled with :data:`SAMPLES`."""
    pattern = regex.pattern.rstrip("$")
    pieces = re.split(r"(\((?:[^()]|\([^()]*\))*\)\??)", pattern)
    path = ""
    for piece in pieces:
        if piece.startswith("("):
            group = piece.rstrip("?")
            path += next((s for s in SAMPLES if re.fullmatch(group, s)), "x")
        else:
            path += piece.replace("/?", "").replace("\\", "")
    assert regex.fullmatch(path), (regex.pattern, path)
    assert _first_rule(web_app, path) is handler, (regex.pattern, path)
    return path


def implemented(handler: type, method: str) -> bool:
    """Whether ``handler`` answers ``method`` itself (tornado's defaults answer 405)."""
    return getattr(handler, method.lower()) is not getattr(RequestHandler, method.lower())


async def send(url: str, method: str, *, headers: dict | None = None,
               body: str | None = None) -> HTTPResponse:
    if body is None and method in ("POST", "PUT", "PATCH"):
        body = json.dumps({"item": "local/sen1floods11-sample", "dest": "leak"})
    return await AsyncHTTPClient().fetch(url, method=method, headers=headers or {},
                                         body=body, raise_error=False,
                                         follow_redirects=False,
                                         allow_nonstandard_methods=True)


def cookies_of(response: HTTPResponse) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in response.headers.get_list("Set-Cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        found.update({name: morsel.value for name, morsel in cookie.items()})
    return found


async def login(server: str, auth_header: dict[str, str]) -> dict[str, str]:
    """A browser's login with the Jupyter token on Jupyter's login page: its cookies (login
    and ``_xsrf``)."""
    token = auth_header["Authorization"].split()[-1]
    page = await send(f"{server}login", "GET")
    jar = cookies_of(page)
    xsrf = jar["_xsrf"]
    response = await send(f"{server}login", "POST",
                          headers={"Cookie": f"_xsrf={xsrf}",
                                   "Content-Type": "application/x-www-form-urlencoded"},
                          body=urlencode({"_xsrf": xsrf, "password": token}))
    assert response.code == 302, (response.code, response.body[:300])
    jar.update(cookies_of(response))
    assert any(name.startswith("username-") for name in jar), jar
    return jar


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


@pytest.fixture
def server_url(jp_http_port, jp_base_url) -> str:
    return f"http://localhost:{jp_http_port}{jp_base_url}"


async def routes_of(jp_fetch, jp_web_app, server_url) -> list[tuple[str, type]]:
    """(url, handler class) of every route; the crawl finished first (real ids exist)."""
    await wait_for_crawl(jp_fetch)
    origin = server_url[:server_url.index("/", len("http://"))]
    return [(origin + _sample_path(jp_web_app, regex, handler), handler)
            for regex, handler in our_routes(jp_web_app)]


def assert_no_data(response: HTTPResponse, what: tuple) -> None:
    body = response.body or b""
    assert len(body) < 400, (what, body[:400])
    for leak in LEAKS:
        assert leak not in body, (what, leak, body[:400])


def assert_refused(response: HTTPResponse, handler: type, method: str, what: tuple) -> None:
    code = response.code
    if method == "OPTIONS" and code in (200, 204):
        # Jupyter's CORS preflight (APIHandler.options): no data, and the real request that
        # may follow is refused like any other
        assert not response.body, what
    elif not implemented(handler, method) and code == 405:
        pass
    elif code == 302 and method in ("GET", "HEAD"):
        # a page (the MLflow UI) may send a browser to the login page
        assert "/login" in response.headers["Location"], what
        assert "/sharinghub/mlflow" in str(what), what
    else:
        assert code in (401, 403), (what, code, response.body[:300])
    assert_no_data(response, what)


async def test_the_route_table_is_enumerated_whole(jp_web_app, mlflow_mode, server_url,
                                                   jp_fetch):
    """The rules found are the extension's whole route table (with the MLflow handler of this
    mode), each reached by its sample path."""
    routes_here = await routes_of(jp_fetch, jp_web_app, server_url)
    from sharinghub_server.handlers import routes
    from sharinghub_server.handlers.mlflow import MLflowHandler, MLflowProxyHandler

    table = routes(external_mlflow=mlflow_mode == "external")
    found = [handler for _, handler in routes_here]
    assert len(found) == len(table)
    assert sorted(h.__name__ for h in found) == sorted(h.__name__ for _, h in table)
    assert (MLflowProxyHandler if mlflow_mode == "external" else MLflowHandler) in found


@pytest.mark.parametrize("credentials", ["none", "wrong-token", "wrong-token-param",
                                         "forged-cookie"])
async def test_every_route_and_method_refuses_unauthenticated_requests(
        server_url, jp_web_app, jp_fetch, credentials, jp_http_port):
    routes_here = await routes_of(jp_fetch, jp_web_app, server_url)
    headers: dict[str, str] = {}
    if credentials == "wrong-token":
        headers["Authorization"] = f"token {secrets.token_hex(8)}"
    elif credentials == "forged-cookie":
        headers["Cookie"] = f"username-localhost-{jp_http_port}={secrets.token_hex(24)}"
    tried = 0
    for url, handler in routes_here:
        if credentials == "wrong-token-param":
            url += ("&" if "?" in url else "?") + f"token={secrets.token_hex(8)}"
        for method in METHODS:
            response = await send(url, method, headers=headers)
            assert_refused(response, handler, method, (credentials, method, url))
            tried += 1
    assert tried == len(routes_here) * len(METHODS)


async def test_the_sample_urls_reach_their_handlers(server_url, jp_web_app, jp_fetch,
                                                    jp_auth_header, mlflow_mode):
    """The control: with the token, the same GET requests are not refused (so the refusals
    above came from authentication, not from a path that reaches nothing)."""
    routes_here = await routes_of(jp_fetch, jp_web_app, server_url)
    for url, handler in routes_here:
        if not implemented(handler, "GET") or "/sharinghub/mlflow" in url:
            continue  # (a GET would load the embedded MLflow server into this process)
        response = await send(url, "GET", headers=dict(jp_auth_header))
        assert response.code not in (401, 403), (url, response.code, response.body[:300])
    if mlflow_mode == "external":
        url = next(u for u, _ in routes_here if "/sharinghub/mlflow" in u)
        response = await send(url, "GET", headers=dict(jp_auth_header))
        assert response.code == 502  # through our checks, to the unreachable server


async def _state(jp_fetch, root: Path, gitlab) -> tuple:
    """What a write could change: the crawl, the workspace, GitLab's projects."""
    status = json.loads((await jp_fetch("sharinghub", "api", "index")).body)
    return (status["state"], json.dumps(status["last_crawl"], sort_keys=True),
            sorted(str(p.relative_to(root)) for p in root.rglob("*")),
            len(gitlab.projects), gitlab.count(method="POST"))


async def test_cookie_writes_without_the_xsrf_token_are_refused_everywhere(
        jp_fetch, server_url, jp_root_dir, gitlab, jp_web_app, jp_auth_header):
    routes_here = await routes_of(jp_fetch, jp_web_app, server_url)
    jar = await login(server_url, jp_auth_header)
    before = await _state(jp_fetch, Path(jp_root_dir), gitlab)
    host = urlsplit(server_url).netloc
    for url, handler in routes_here:
        for method in WRITES:
            # a same-origin page that forgot the token (except under sharinghub/mlflow/,
            # where the origin is the check: see the next test), and the other site's form
            same = () if "/sharinghub/mlflow" in url else (f"http://{host}",)
            for origin in (*same, "http://evil.example"):
                response = await send(url, method, headers={"Cookie": cookie_header(jar),
                                                             "Origin": origin})
                what = (method, url, origin)
                if (handler.__name__, method) == ("SearchHandler", "POST") and same and \
                        origin == same[0]:
                    # STAC's POST /search is a read, exempt from XSRF by design (STAC clients
                    # send no token); that it changed nothing is checked below
                    assert response.code == 200, (what, response.code)
                    continue
                # Jupyter refuses a request from another origin with 404 before the XSRF check
                refusals = (403, 404) if origin.endswith("evil.example") else (403,)
                assert response.code in refusals or (
                    response.code == 405 and not implemented(handler, method)), (
                    what, response.code, response.body[:300])
                assert_no_data(response, what)
    assert await _state(jp_fetch, Path(jp_root_dir), gitlab) == before
    assert "sharinghub_mlflow_container" not in jp_web_app.settings  # MLflow never reached
    # the control: the same cookie with the XSRF token is let through
    response = await send(f"{server_url}sharinghub/api/index", "POST", body="",
                          headers={"Cookie": cookie_header(jar),
                                   "X-XSRFToken": jar["_xsrf"]})
    assert response.code == 202, response.body[:300]
    await wait_for_crawl(jp_fetch)


async def test_mlflow_refuses_cross_origin_cookie_writes(
        jp_fetch, server_url, jp_web_app, mlflow_mode, jp_http_port, jp_auth_header):
    await wait_for_crawl(jp_fetch)  # (jp_fetch also makes the server listen)
    jar = await login(server_url, jp_auth_header)
    cookie = cookie_header(jar)
    url = f"{server_url}sharinghub/mlflow/api/2.0/mlflow/experiments/create"
    body = json.dumps({"name": "planted"})
    host = urlsplit(server_url).netloc
    hostile = [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://localhost:{jp_http_port + 1}"},  # another port: another origin
        {"Origin": f"http://{host}@evil.example"},
        {"Origin": f"http://{host}.evil.example"},
        {"Referer": "http://evil.example/page"},
        {"Referer": f"http://{host}.evil.example/page"},
        {},  # a browser's cookie-authenticated write says where it comes from
    ]
    for extra in hostile:
        for method in WRITES:
            response = await send(url, method, headers={"Cookie": cookie, **extra}, body=body)
            assert response.code == 403, (method, extra, response.code, response.body[:300])
            assert b"cross-origin" in response.body, (method, extra, response.body[:300])
    assert "sharinghub_mlflow_container" not in jp_web_app.settings
    if mlflow_mode == "external":
        # the same request from this origin passes the check: the unreachable server's 502
        for same in ({"Origin": f"http://{host}"}, {"Referer": f"http://{host}/lab"}):
            response = await send(url, "POST", headers={"Cookie": cookie, **same}, body=body)
            assert response.code == 502, (same, response.code, response.body[:300])


# --- DVC destinations and symlinks ----------------------------------------------------------


async def test_symlinks_to_outside_are_refused_as_dest(jp_fetch, jp_root_dir, tmp_path,
                                                       mlflow_mode):
    if mlflow_mode == "external":
        pytest.skip("the MLflow mode does not matter here")
    await wait_for_crawl(jp_fetch)
    root = Path(jp_root_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "out").symlink_to(outside)  # a symlink used as dest itself
    (root / "hop").symlink_to(root / "out")  # a chain: inside, then outside
    (root / "dangling").symlink_to(tmp_path / "not-yet")  # outside, not there yet
    (root / "self").symlink_to(root)  # the root itself
    (root / "up").symlink_to(root.parent)
    for dest in ("out", "out/", "hop", "hop/ds", "dangling", "dangling/ds", "self", "up",
                 "up/x", "./out", "sub/../out"):
        code, body = await refused(jp_fetch, "dvc", "pull", method="POST",
                                   body={"item": "local/sen1floods11-sample", "dest": dest})
        assert code == 400, (dest, body)
        assert str(outside) not in body["description"], body
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "not-yet").exists()


async def test_a_symlink_put_in_place_of_a_queued_pulls_dest_is_refused(
        jp_fetch, jp_root_dir, tmp_path, gitlab, mlflow_mode):
    """With one job at a time, a pull held by GitLab keeps a second pull queued; the second
    one's destination becomes a symlink out of the root before it runs."""
    if mlflow_mode == "external":
        pytest.skip("the MLflow mode does not matter here")
    env = tool_env(tmp_path / "home")
    repo = make_dataset_repo(tmp_path / "repos", "held-ds", str(tmp_path / "remote"), env=env)
    gitlab.add_git_project(FakeProject(id=7001, path_with_namespace="eo/held-ds",
                                       visibility="private", topics=["sharinghub:dataset"]),
                           repo.bare)
    await jp_fetch("sharinghub", "api", "index", method="POST", body="")
    await wait_for_crawl(jp_fetch)
    hold = gitlab.hold("git")
    try:
        _, first = await api(jp_fetch, "dvc", "pull", method="POST",
                             body={"item": "eo/held-ds", "dest": "held"})
        for _ in range(1000):  # bounded polling: git is waiting for GitLab
            if hold.waiting:
                break
            await asyncio.sleep(0.01)
        assert hold.waiting
        _, second = await api(jp_fetch, "dvc", "pull", method="POST",
                              body={"item": "local/sen1floods11-sample", "dest": "later"})
        _, job = await api(jp_fetch, "dvc", "jobs", second["job"])
        assert job["state"] == "queued"
        outside = tmp_path / "outside"
        outside.mkdir()
        (Path(jp_root_dir) / "later").symlink_to(outside)
    finally:
        hold.release()
    await wait_job(jp_fetch, first["job"])
    job = await wait_job(jp_fetch, second["job"])
    assert list(outside.iterdir()) == [], job
    assert job["state"] == "failed", job
