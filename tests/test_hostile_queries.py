"""Hostile and careless searches (issue 9, findings 2, 6, 7): each gets one clear error line,
none crashes or stalls the server, and slow searches hold up neither the rest of the server
nor, once abandoned or over their time, the catalog's own threads.

The slow searches are real: test_index's items with detailed outlines and SLOW filter (as
CQL2 text here), which takes minutes.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import socket
import threading
from pathlib import Path

import pytest
import requests
from tornado.httpclient import HTTPClientError

from sharinghub_server.index import open_store
from tests.support.jupyter_proc import jupyter_server
from tests.support.polling import poll
from tests.test_index import detailed_outlines

TOKEN = "hostile-token"
AUTH = {"Authorization": f"token {TOKEN}"}

SLOW_FILTER = " AND ".join(
    f"s_disjoint(geometry, POLYGON((0.9 {0.9 + i * 0.0005:.4f}, 0.95 {0.9 + i * 0.0005:.4f}, "
    f"0.95 0.99, 0.9 0.99, 0.9 {0.9 + i * 0.0005:.4f})))" for i in range(100))
SLOW_BODY = json.dumps({"filter-lang": "cql2-text", "filter": SLOW_FILTER}).encode()


def build_slow_index(path: Path) -> Path:
    store = open_store(f"sqlite://{path}")
    detailed_outlines(store)
    store.close()
    return path


@pytest.fixture(scope="module")
def slow_index(tmp_path_factory) -> Path:
    return build_slow_index(tmp_path_factory.mktemp("slow-index") / "index.sqlite")


@pytest.fixture
def jp_server_config(slow_index, tmp_path, request):
    """A server on a copy of the slow index, with no sources; ``indirect`` parameters add
    SharingHub traits."""
    index = tmp_path / "index.sqlite"
    shutil.copy(slow_index, index)
    return {"ServerApp": {"jpserver_extensions": {"sharinghub_server": True}},
            "SharingHub": {"index_url": f"sqlite://{index}", "crawl_interval": 0,
                           "mlflow_warmup": False,  # (see conftest.py)
                           **getattr(request, "param", {})}}


def one_line_error(response_body: bytes) -> str:
    body = json.loads(response_body)
    assert set(body) == {"code", "description"}
    assert "\n" not in body["description"] and len(body["description"]) < 300
    return body["description"]


def raw_request(port: int, method: str, path: str, body: bytes = b"") -> socket.socket:
    """A request sent on a socket of its own, left unread: closing the socket abandons it."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: token {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    sock.sendall(head.encode() + body)
    return sock


def has_answer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


# --- finding 2: no input crashes the server; each gets a 400 of one line -------------------


def test_hostile_searches_get_one_line_400s_and_the_server_lives_on(tmp_path):
    deep_json = {"op": "=", "args": [{"property": "a"}, 1]}
    for _ in range(100):
        deep_json = {"op": "not", "args": [deep_json]}
    gets = {
        "NOT ( x2000": {"filter": "NOT (" * 2000 + "a = 1" + ")" * 2000},
        "NOT x4000": {"filter": "NOT " * 4000 + "a = 1"},
        "( x2000": {"filter": "(" * 2000 + "a = 1" + ")" * 2000},
        "NOT x64": {"filter": "NOT " * 64 + "a = 1"},
        "250 ANDs": {"filter": " AND ".join(f"stars <> {i}" for i in range(250))},
        "2000 ids": {"ids": ",".join(f"g/p{i}" for i in range(2000))},
        "deep CQL2 JSON": {"filter-lang": "cql2-json", "filter": json.dumps(deep_json)},
    }
    text = {"filter-lang": "cql2-text"}
    posts = {
        "1000 ORs": json.dumps({**text, "filter": " OR ".join(
            f"stars = {i}" for i in range(1000))}).encode(),
        "IN of 5000": json.dumps({**text, "filter": "a IN (" + ",".join(
            str(i) for i in range(5000)) + ")"}).encode(),
        "2000 collections": json.dumps({"collections": ["dataset"] * 2000}).encode(),
        "[ x100000": b"[" * 100_000 + b"]" * 100_000,
        "deep CQL2 JSON": json.dumps({"filter": deep_json}).encode(),
        "limit of 5000 digits": b'{"limit": ' + b"9" * 5000 + b"}",
        "5 MiB": json.dumps({"ids": ["x" * 1000] * 5000}).encode(),
        "300,000 points": json.dumps({"intersects": {"type": "LineString", "coordinates": [
            [i % 180, 0] for i in range(300_000)]}}).encode(),
    }
    with jupyter_server(tmp_path / "server", token=TOKEN) as server:
        search = f"{server.url}sharinghub/api/stac/search"
        for what, params in gets.items():
            response = requests.get(search, params=params, headers=AUTH, timeout=60)
            assert response.status_code == 400, (what, response.status_code, response.text)
            one_line_error(response.content)
        for what, body in posts.items():
            response = requests.post(search, data=body, headers=AUTH, timeout=60)
            assert response.status_code == 400, (what, response.status_code, response.text)
            one_line_error(response.content)
        # a limit of thousands of digits is a limit above the maximum
        response = requests.get(search, params={"limit": "9" * 5000}, headers=AUTH, timeout=60)
        assert response.status_code == 200 and response.json()["numberMatched"] == 0
        assert server.proc.poll() is None
        assert requests.get(search, headers=AUTH, timeout=60).status_code == 200


# --- finding 6: a time budget, abandoned searches stop, the rest of the server answers ------


@pytest.mark.parametrize("jp_server_config", [{"search_threads": 1, "search_timeout": 0.5}],
                         indirect=True)
async def test_a_search_over_its_time_ends_with_an_error_and_frees_its_thread(jp_fetch):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("sharinghub", "api", "stac", "search", method="POST", body=SLOW_BODY)
    assert info.value.code == 503
    assert "took more than 0.5 s" in one_line_error(info.value.response.body)
    # the only catalog thread is free again
    response = await jp_fetch("sharinghub", "api", "stac", "search", params={"limit": "1"})
    assert json.loads(response.body)["numberMatched"] == 20


def test_slow_searches_leave_the_server_alone_and_stop_when_abandoned(tmp_path, slow_index):
    root = tmp_path / "server"
    root.mkdir()
    shutil.copy(slow_index, root / "index.sqlite")
    with jupyter_server(root, token=TOKEN, args=["--SharingHub.search_threads=2",
                                                 "--SharingHub.search_timeout=3600",
                                                 "--SharingHub.crawl_interval=0"],
                        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}) as server:
        port = int(server.url.split(":")[2].split("/")[0])
        api = f"{server.url}sharinghub/api"
        mlflow = f"{server.url}sharinghub/mlflow/api/2.0/mlflow/experiments/search"
        # loaded first (a few seconds of imports, which busy search threads slow down a lot:
        # they share the GIL)
        assert requests.get(mlflow, params={"max_results": 5}, headers=AUTH,
                            timeout=120).status_code == 200
        searches = [raw_request(port, "POST", "/sharinghub/api/stac/search", SLOW_BODY)
                    for _ in range(3)]  # more than the catalog has threads
        status = requests.get(f"{api}/index", headers=AUTH, timeout=60)
        assert status.status_code == 200 and status.json()["state"] == "idle"
        job = requests.get(f"{api}/dvc/jobs/0123abcd", headers=AUTH, timeout=60)
        assert job.status_code == 404 and one_line_error(job.content)
        experiments = requests.get(mlflow, params={"max_results": 5}, headers=AUTH, timeout=60)
        assert experiments.status_code == 200, experiments.text
        assert "experiments" in experiments.json()
        # ... all answered while every search is still at work
        assert not any(has_answer(sock) for sock in searches)

        for sock in searches:  # the clients leave: their searches stop
            sock.close()
        poll(lambda: server.log_path.read_text().count("the search was abandoned") == 3,
             "the abandoned searches to stop", timeout=60)
        quick = requests.get(f"{api}/stac/search", params={"limit": 1}, headers=AUTH,
                             timeout=60)
        assert quick.status_code == 200 and quick.json()["numberMatched"] == 20


# --- finding 7: bodies and parameters are parsed off the event loop, within a size cap -----


@pytest.mark.parametrize("jp_server_config", [{"search_threads": 1}], indirect=True)
async def test_a_search_is_parsed_off_the_event_loop(jp_fetch, jp_serverapp):
    """While the catalog's one thread is busy, a search with a geometry waits for it to be
    parsed and checked - and the event loop answers other requests meanwhile."""
    outline = [[math.cos(2 * math.pi * k / 2000), math.sin(2 * math.pi * k / 2000)]
               for k in range(2000)]
    body = json.dumps({"intersects": {"type": "Polygon", "coordinates": [[*outline, outline[0]]]},
                       "datetime": "not a date"})  # checked after the geometry
    gate = threading.Event()
    jp_serverapp.web_app.settings["sharinghub_search_executor"].submit(gate.wait)
    try:
        search = asyncio.ensure_future(jp_fetch("sharinghub", "api", "stac", "search",
                                                method="POST", body=body))
        for _ in range(20):
            landing = await jp_fetch("sharinghub", "api", "stac")
            assert json.loads(landing.body)["type"] == "Catalog"
            assert not search.done()
    finally:
        gate.set()
    with pytest.raises(HTTPClientError) as info:
        await search
    assert info.value.code == 400 and "datetime" in one_line_error(info.value.response.body)


async def test_big_bodies_and_geometries_are_refused_in_one_line(jp_fetch):
    huge = json.dumps({"ids": ["x" * 1000] * 5000})  # 5 MiB
    many_points = {"type": "LineString", "coordinates": [[i % 180, 0] for i in range(150_000)]}
    for body, expected in ((huge, "too large"), (json.dumps({"intersects": many_points}),
                                                 "at most 100000")):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("sharinghub", "api", "stac", "search", method="POST", body=body)
        assert info.value.code == 400
        assert expected in one_line_error(info.value.response.body)
