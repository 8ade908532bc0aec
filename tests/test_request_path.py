"""The STAC API's request path: a search's blocking work in one thread hop, encoded answers
reused while the index is unchanged (and never after a write), JSON encoded once."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from sharinghub_server.handlers.answers import Answer, AnswerCache, request_key
from sharinghub_server.index.store import ProjectUpdate, open_store
from sharinghub_server.jsontext import encode_json


def item(n: int, collection: str = "dataset", **props) -> dict:
    return {"type": "Feature", "stac_version": "1.1.0", "stac_extensions": [],
            "id": f"grp/item-{n}", "collection": collection,
            "geometry": {"type": "Point", "coordinates": [n, n / 2]}, "bbox": [n, n / 2, n, n / 2],
            "properties": {"datetime": f"2020-01-{n + 1:02d}T00:00:00Z", "title": f"Item {n}",
                           "description": "Débit d'une rivière, ≈ 3 m³/s", **props},
            "links": [{"rel": "license", "href": "https://example.com/LICENSE"}],
            "assets": {"readme": {"href": f"download/grp/item-{n}/-/README.md",
                                  "type": "text/markdown", "roles": ["metadata"]}}}


def add(store, *items: dict) -> None:
    store.apply("local", [ProjectUpdate(project=i["id"], state={}, items=[i]) for i in items],
                [])


@pytest.fixture
def index(tmp_path):
    path = tmp_path / "index.sqlite"
    store = open_store(f"sqlite://{path}")
    add(store, *(item(n) for n in range(12)))
    store.close()
    return path


@pytest.fixture
def jp_server_config(index):
    """A server on a small index, no sources, no MLflow warm-up (not in the test process)."""
    return {"ServerApp": {"jpserver_extensions": {"sharinghub_server": True}},
            "SharingHub": {"index_url": f"sqlite://{index}", "crawl_interval": 0,
                           "mlflow_warmup": False}}


class CountingPool(ThreadPoolExecutor):
    """The catalog's pool, counting the tasks it is given (each one a thread hop)."""

    def __init__(self) -> None:
        super().__init__(2, thread_name_prefix="counting")
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def pool(jp_serverapp):
    settings = jp_serverapp.web_app.settings
    counting = CountingPool()
    settings["sharinghub_search_executor"] = counting
    yield counting
    counting.shutdown()


async def fetch(jp_fetch, *parts, **kw) -> tuple[bytes, dict]:
    response = await jp_fetch("sharinghub", "api", "stac", *parts, **kw)
    return response.body, json.loads(response.body)


SEARCH = json.dumps({"q": ["rivière"], "limit": 5,
                     "sortby": [{"field": "datetime", "direction": "desc"}]})


async def test_a_search_is_one_thread_hop(jp_fetch, pool):
    _, page = await fetch(jp_fetch, "search", method="POST", body=SEARCH)
    assert page["numberMatched"] == 12 and len(page["features"]) == 5
    assert pool.submitted == 1  # body, parsing, search, page and JSON: one task
    _, page = await fetch(jp_fetch, "search", params={"bbox": "0,0,3,3", "limit": "2"})
    assert page["numberMatched"] == 4 and pool.submitted == 2
    _, page = await fetch(jp_fetch, "collections", "dataset", "items", params={"limit": "3"})
    assert page["numberMatched"] == 12 and pool.submitted == 3
    # a next page is a search of its own
    link = next(x for x in page["links"] if x["rel"] == "next")
    query = link["href"].split("?", 1)[1]
    _, second = await fetch(jp_fetch, "collections", "dataset", "items",
                            params=dict(p.split("=", 1) for p in query.split("&")))
    assert pool.submitted == 4
    assert not {f["id"] for f in page["features"]} & {f["id"] for f in second["features"]}


async def test_a_repeated_read_is_answered_without_a_hop(jp_fetch, pool):
    reads = [
        (("search",), {"method": "POST", "body": SEARCH}),
        (("search",), {"params": {"q": "item", "limit": "3"}}),
        (("collections",), {}),
        (("collections", "dataset"), {}),
        (("collections", "dataset", "items", "grp/item-3"), {}),
        (("queryables",), {}),
    ]
    for parts, kw in reads:
        before = pool.submitted
        first, _ = await fetch(jp_fetch, *parts, **kw)
        again, _ = await fetch(jp_fetch, *parts, **kw)
        assert again == first, parts
        assert pool.submitted == before + 1, parts


async def test_a_write_makes_the_kept_answers_stale(jp_fetch, pool, jp_serverapp):
    service = jp_serverapp.web_app.settings["sharinghub_service"]
    _, page = await fetch(jp_fetch, "search", method="POST", body=SEARCH)
    _, collection = await fetch(jp_fetch, "collections", "dataset")
    assert page["numberMatched"] == 12
    # through the service's store, as crawls, publishes and the registry write
    add(service.store, item(40, datetime="2021-01-01T00:00:00Z"))
    _, page = await fetch(jp_fetch, "search", method="POST", body=SEARCH)
    assert page["numberMatched"] == 13 and page["features"][0]["id"] == "grp/item-40"
    _, after = await fetch(jp_fetch, "collections", "dataset")
    assert after["extent"] != collection["extent"]
    service.store.set_overlay("grp/item-40", "note", {"x": 1})
    before = pool.submitted
    await fetch(jp_fetch, "search", method="POST", body=SEARCH)
    assert pool.submitted == before + 1


async def test_errors_are_not_kept(jp_fetch, pool):
    from tornado.httpclient import HTTPClientError

    for _ in range(2):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("sharinghub", "api", "stac", "collections", "dataset", "items",
                           "grp/none")
        assert info.value.code == 404
    assert pool.submitted == 2


def test_an_answer_read_across_a_write_is_not_kept():
    writes = [0]
    cache = AnswerCache(lambda: writes[0])
    key = request_key("GET", "http", "host", "/x")
    epoch = cache.epoch()
    writes[0] += 1  # a write lands while the answer is computed
    cache.put(key, epoch, Answer(b"{}", "application/json"))
    assert cache.get(key) is None
    cache.put(key, cache.epoch(), Answer(b"{}", "application/json"))
    assert cache.get(key) == Answer(b"{}", "application/json")
    writes[0] += 1
    assert cache.get(key) is None


def test_answers_expire_and_stay_within_their_bounds():
    expired = AnswerCache(lambda: 0, max_age=0)
    expired.put("k", 0, Answer(b"1", "a"))
    assert expired.get("k") is None  # (writes of other processes show after max_age)
    cache = AnswerCache(lambda: 0, max_entries=3, max_bytes=10)
    for n in range(4):
        cache.put(n, 0, Answer(b"x" * 3, "a"))
    assert [cache.get(n) is not None for n in range(4)] == [False, True, True, True]
    cache.put("big", 0, Answer(b"x" * 9, "a"))  # over max_bytes with the others: they go
    assert cache.get("big") is not None and cache.get(3) is None
    assert request_key("POST", "http", "h", "/s", b"x" * (1 << 20)) is None


@pytest.mark.parametrize("value", [
    {"title": "Débit ≈ 3 m³/s 🌊", "n": [0.1, 1e-7, 1e16, -0.0, 123456789, True, None]},
    {"big": 2**70},  # beyond orjson: the standard library
    {1: "an int key"},
    {"lone": "\ud800"},
])
def test_json_is_encoded_once_with_the_same_content(value):
    encoded = encode_json(value)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == json.loads(json.dumps(value))


def test_item_hrefs_are_made_absolute_as_urljoin_makes_them():
    """The page builder's short way for plain relative hrefs gives what urljoin gives."""
    import random

    from sharinghub_server.catalog.hrefs import absolutize
    from sharinghub_server.stac.responses import _absolutize

    base = "http://127.0.0.1:8888/a%40b/sharinghub/api/"
    hrefs = ["", ".", "..", "./a", "../a", "a/./b", "a/../b", "a//b", "a;p", "a?", "a?b?c",
             "download/g/p/-/README.md", "download/g/p/-/a.tif?ref=v1.0", "stac/x/items/g%2Fp",
             "//host/x", "/root", "?q=1", "#f", "mailto:x", "c:/x", "a/b:c", "https://e.org/x",
             "HTTP://E.ORG", " a", "a b", "down\tload", "a/.hidden", "x?y=./z", "é/x"]
    rng = random.Random(7)
    alphabet = "ab0./:?#%@ -_~\\\t\né+;=&"
    hrefs += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
              for _ in range(20_000)]
    for href in hrefs:
        obj = {"id": "x", "links": [{"rel": "a", "href": href}], "assets": {"k": {"href": href}}}
        assert _absolutize(obj, base) == absolutize(obj, base), href
