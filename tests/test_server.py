"""The server extension through real HTTP (pytest-jupyter), fed by the GitLab test server
and local example projects; pystac-client drives the STAC API."""

from __future__ import annotations

import asyncio
import json
import re

import pystac_client
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from sharinghub_server.catalog.validate import validate
from sharinghub_server.handlers import routes
from sharinghub_server.stac.responses import CONFORMANCE
from tests.conftest import TOKEN, wait_for_crawl


async def get_json(jp_fetch, *parts, **kw):
    response = await jp_fetch("sharinghub", "api", *parts, **kw)
    return json.loads(response.body)


async def error_of(jp_fetch, *parts, **kw):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("sharinghub", "api", *parts, **kw)
    return info.value.code, json.loads(info.value.response.body)


def stac_url(jp_http_port, jp_base_url):
    return f"http://localhost:{jp_http_port}{jp_base_url}sharinghub/api/stac"


def open_client(jp_http_port, jp_base_url, jp_auth_header):
    return pystac_client.Client.open(stac_url(jp_http_port, jp_base_url),
                                     headers=jp_auth_header)


async def test_landing_page_and_conformance(jp_fetch, jp_base_url):
    landing = await get_json(jp_fetch, "stac")
    assert landing["type"] == "Catalog" and landing["stac_version"] == "1.1.0"
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "root", "conformance", "data", "search", "service-desc", "child"} <= rels
    assert all(link["href"].startswith("http://") for link in landing["links"])
    validate(landing)
    children = [link for link in landing["links"] if link["rel"] == "child"]
    assert len(children) == 5
    conformance = await get_json(jp_fetch, "stac", "conformance")
    assert conformance["conformsTo"] == list(CONFORMANCE)
    openapi = await get_json(jp_fetch, "openapi.json")
    assert "/stac/search" in openapi["paths"]


async def test_collections_have_extents_computed_from_their_items(jp_fetch):
    await wait_for_crawl(jp_fetch)
    collections = (await get_json(jp_fetch, "stac", "collections"))["collections"]
    assert [c["id"] for c in collections] == ["ai-model", "dataset", "processor", "tools",
                                              "dashboard"]
    for c in collections:
        validate(c)
    dataset = next(c for c in collections if c["id"] == "dataset")
    west, south, east, north = dataset["extent"]["spatial"]["bbox"][0]
    assert (west, south, east, north) == (-10.5, 35.0, 30.25, 60.0)
    assert dataset["extent"]["temporal"]["interval"][0][0] == "2019-01-01T00:00:00Z"
    one = await get_json(jp_fetch, "stac", "collections", "dataset")
    assert one["extent"] == dataset["extent"]
    code, body = await error_of(jp_fetch, "stac", "collections", "nope")
    assert code == 404 and body["code"] == "NotFound"


async def test_items_by_id_with_slashes_and_absolute_hrefs(jp_fetch, jp_http_port):
    await wait_for_crawl(jp_fetch)
    item = await get_json(jp_fetch, "stac", "collections", "dataset", "items",
                          "sharinghub-test/sen1floods11-dataset")
    validate(item)
    assert item["id"] == "sharinghub-test/sen1floods11-dataset"
    footprint = item["assets"]["footprint.geojson"]["href"]
    assert re.match(rf"http://(localhost|127\.0\.0\.1):{jp_http_port}/", footprint)
    assert "/sharinghub/api/download/sharinghub-test/sen1floods11-dataset/-/" in footprint
    self_link = next(link for link in item["links"] if link["rel"] == "self")
    assert self_link["href"].endswith("/items/sharinghub-test/sen1floods11-dataset")
    code, body = await error_of(jp_fetch, "stac", "collections", "dataset", "items", "no/such")
    assert code == 404 and body["description"]


async def test_pystac_client_search_every_parameter(jp_fetch, jp_http_port, jp_base_url,
                                                    jp_auth_header):
    await wait_for_crawl(jp_fetch)

    def run():
        client = open_client(jp_http_port, jp_base_url, jp_auth_header)
        ids = lambda search: sorted(i.id for i in search.items())  # noqa: E731
        out = {
            "collections": ids(client.search(collections=["ai-model"])),
            "ids": ids(client.search(ids=["big/many-tiles"])),
            "bbox": ids(client.search(bbox=[6, 46, 7, 47])),
            "intersects": ids(client.search(intersects={
                "type": "Point", "coordinates": [0.0, 50.0]})),
            "datetime": ids(client.search(datetime="2019-06-01/2019-07-01")),
            "open_datetime": ids(client.search(datetime="../2019-02-01")),
            "cql2_text": ids(client.search(filter="\"eo:cloud_cover\" < 20",
                                           filter_lang="cql2-text")),
            "cql2_json": ids(client.search(filter={
                "op": "like", "args": [{"property": "title"}, "Sen1%"]})),
            "sortby": [i.id for i in client.search(collections=["tools"], sortby="-id").items()],
            "matched": client.search(collections=["tools"]).matched(),
        }
        return out

    found = await asyncio.to_thread(run)
    assert found["collections"] == ["local/flood-model", "models/cloud-model",
                                    "secret/private-model", "sharinghub-test/flood-model"]
    assert found["ids"] == ["big/many-tiles", "big/many-tiles"]
    assert found["bbox"] == ["geo/alps/footprint-processor", "local/flood-model",
                             "local/sen1floods11-sample", "sharinghub-test/sen1floods11-dataset"]
    assert found["intersects"] == ["local/flood-model", "local/sen1floods11-sample",
                                   "sharinghub-test/sen1floods11-dataset"]
    assert found["datetime"] == ["local/sen1floods11-sample",
                                 "sharinghub-test/sen1floods11-dataset"]
    assert found["open_datetime"] == ["local/sen1floods11-sample",
                                      "sharinghub-test/sen1floods11-dataset"]
    assert found["cql2_text"] == ["geo/alps/footprint-processor"]
    assert found["cql2_json"] == ["local/sen1floods11-sample",
                                  "sharinghub-test/sen1floods11-dataset"]
    assert found["sortby"] == sorted(found["sortby"], reverse=True)
    assert found["matched"] == 3


async def test_free_text_get_and_post(jp_fetch):
    await wait_for_crawl(jp_fetch)
    page = await get_json(jp_fetch, "stac", "search", params={"q": "flood detection,alps"})
    ids = [f["id"] for f in page["features"]]
    # terms are alternatives; a term of several words is a phrase
    assert set(ids) == {"sharinghub-test/flood-model", "local/flood-model",
                        "geo/alps/footprint-processor"}
    response = await jp_fetch("sharinghub", "api", "stac", "search", method="POST",
                              body=json.dumps({"q": ["Sen1Floods11"], "limit": 50}))
    posted = json.loads(response.body)
    assert posted["numberMatched"] >= 2
    assert {"sharinghub-test/sen1floods11-dataset", "local/sen1floods11-sample"} <= {
        f["id"] for f in posted["features"]}


async def test_paging_through_every_item_exactly_once(jp_fetch, jp_http_port, jp_base_url,
                                                      jp_auth_header):
    status = await wait_for_crawl(jp_fetch)
    total = sum(status["last_crawl"]["items"].values())

    def run():
        client = open_client(jp_http_port, jp_base_url, jp_auth_header)
        search = client.search(limit=2, method="GET")
        pages = list(search.pages())
        post = list(client.search(limit=3, method="POST").items())
        per_collection = [list(c.get_items()) for c in client.get_collections()]
        return pages, post, per_collection

    pages, post, per_collection = await asyncio.to_thread(run)
    keys = [(i.collection_id, i.id) for page in pages for i in page.items]
    assert len(keys) == len(set(keys)) == total
    assert all(len(page.items) <= 2 for page in pages)
    assert sorted((i.collection_id, i.id) for i in post) == sorted(keys)
    assert sum(len(items) for items in per_collection) == total
    for item in post:
        validate(item.to_dict(transform_hrefs=False))


async def test_prev_links_walk_back(jp_fetch, jp_auth_header):
    await wait_for_crawl(jp_fetch)
    first = await get_json(jp_fetch, "stac", "search", params={"limit": "3"})
    next_href = next(link["href"] for link in first["links"] if link["rel"] == "next")
    client = AsyncHTTPClient()
    headers = dict(jp_auth_header)
    second = json.loads((await client.fetch(next_href, headers=headers)).body)
    keys = lambda page: {(f["collection"], f["id"]) for f in page["features"]}  # noqa: E731
    assert second["features"] and not keys(second) & keys(first)
    prev_href = next(link["href"] for link in second["links"] if link["rel"] == "prev")
    back = json.loads((await client.fetch(prev_href, headers=headers)).body)
    assert [f["id"] for f in back["features"]] == [f["id"] for f in first["features"]]


async def test_bad_parameters_are_400_json_never_500(jp_fetch):
    await wait_for_crawl(jp_fetch)
    bad = {
        "bbox": "1,2,3",
        "datetime": "yesterday",
        "filter": "title ===",
        "collections": "no-such-collection",
        "limit": "-1",
        "intersects": "{not json",
        "sortby": "",
    }
    for name, value in bad.items():
        if not value:
            continue
        code, body = await error_of(jp_fetch, "stac", "search", params={name: value})
        assert code == 400, name
        assert set(body) == {"code", "description"} and body["description"], name
        assert "Traceback" not in body["description"]
    code, body = await error_of(jp_fetch, "stac", "search", method="POST", body="[1, 2")
    assert code == 400
    clamped = await get_json(jp_fetch, "stac", "search", params={"limit": "5000"})
    assert clamped["numberReturned"] == clamped["numberMatched"]


async def test_queryables_from_the_index(jp_fetch):
    await wait_for_crawl(jp_fetch)
    every = await get_json(jp_fetch, "stac", "queryables")
    assert every["properties"]["eo:cloud_cover"]["type"] == "number"
    assert every["properties"]["datetime"]["format"] == "date-time"
    models = await get_json(jp_fetch, "stac", "collections", "ai-model", "queryables")
    assert "mlm:architecture" in models["properties"]
    assert "eo:cloud_cover" not in models["properties"]


async def test_index_status_and_crawl_now(jp_fetch, gitlab):
    status = await wait_for_crawl(jp_fetch)
    assert status["last_crawl"]["ok"] is True
    assert status["last_crawl"]["items"]["dataset"] == 3
    assert any(e["project"] == "broken/bad-yaml" for e in status["last_crawl"]["errors"])
    gitlab.remove_project("plain/no-readme")
    response = await jp_fetch("sharinghub", "api", "index", method="POST", body="")
    started = json.loads(response.body)
    assert set(started) == {"state", "progress", "last_crawl"}
    status = await wait_for_crawl(jp_fetch)
    assert status["last_crawl"]["items"]["tools"] == 2
    assert TOKEN not in json.dumps(status)


async def test_download_streams_repository_files(jp_fetch, gitlab):
    await wait_for_crawl(jp_fetch)
    response = await jp_fetch("sharinghub", "api", "download",
                              "sharinghub-test/sen1floods11-dataset", "-", "docs/notes.txt",
                              params={"ref": "main"})
    assert response.body == b"notes"
    ranged = await jp_fetch("sharinghub", "api", "download", "local/flood-model", "-",
                            "preview.png", headers={"Range": "bytes=0-7"})
    assert ranged.code == 206 and ranged.body == b"\x89PNG\r\n\x1a\n"
    assert ranged.headers["Content-Range"].startswith("bytes 0-7/")
    # the private project's files come with the server's token, which never shows
    private = await jp_fetch("sharinghub", "api", "download", "secret/private-model", "-",
                             "README.md")
    assert b"Private model" in private.body
    assert TOKEN.encode() not in private.body and TOKEN not in str(private.headers)
    for parts in (("plain/no-readme", "-", "nope.txt"), ("no/such", "-", "README.md"),
                  ("local/flood-model", "-", "../../etc/passwd")):
        code, body = await error_of(jp_fetch, "download", *parts)
        assert code in (400, 404) and body["code"]


_SAMPLES = {"([^/]+)": "dataset", "(.+?)": "group/project", "(.+)": "README.md",
            "([0-9a-f]+)": "0123abcd", "(/.*)?": "/api/2.0/mlflow/experiments/search"}


def _fill(pattern: str) -> str:
    """A concrete path for a route pattern: every group gets a sample value."""
    path = re.sub(r"\([^)]*\)\??", lambda m: _SAMPLES[m.group(0)], pattern.replace("/?", ""))
    assert "(" not in path, f"add a sample for {pattern}"
    return path.replace("\\", "")


async def test_every_route_refuses_unauthenticated_requests(jp_fetch, jp_http_port,
                                                           jp_base_url):
    await wait_for_crawl(jp_fetch)
    client = AsyncHTTPClient()
    for pattern, _handler in routes():
        url = f"http://localhost:{jp_http_port}{jp_base_url.rstrip('/')}{_fill(pattern)}"
        for method in ("GET", "POST", "PATCH", "DELETE"):
            response = await client.fetch(url, method=method, raise_error=False,
                                          body="{}" if method in ("POST", "PATCH") else None,
                                          follow_redirects=False)
            assert response.code in (401, 403, 405), (method, url, response.code)
            body = response.body or b""
            assert b"sharinghub-test" not in body and b"features" not in body, url


async def test_items_served_all_validate(jp_fetch):
    await wait_for_crawl(jp_fetch)
    page = await get_json(jp_fetch, "stac", "search", params={"limit": "100"})
    assert page["numberMatched"] == page["numberReturned"] > 10
    for feature in page["features"]:
        validate(feature)
        for asset in feature["assets"].values():
            # absolute everywhere: the server, S3, or a folder remote as a file URI
            assert re.match(r"^(https?|s3|file)://", asset["href"]), asset["href"]
    assert TOKEN not in json.dumps(page)

