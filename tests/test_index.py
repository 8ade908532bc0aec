"""The SQLite index store, through its public interface, on real SQLite files."""

from __future__ import annotations

import base64
import copy
import json
import math
import random
import sqlite3
import subprocess
import sys
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

import sharinghub_server.index.columns as columns_module
import sharinghub_server.index.sqlite as sqlite_store
from sharinghub_server.index import (
    TEMPORAL_OPS,
    And,
    Between,
    Budget,
    Compare,
    In,
    Interval,
    IsNull,
    Like,
    Not,
    Or,
    ProjectUpdate,
    Prop,
    Query,
    QueryError,
    QueryInterrupted,
    Spatial,
    Temporal,
    open_store,
)
from sharinghub_server.index.sql_filter import KIND_BOOLEAN, KIND_NUMBER
from sharinghub_server.index.store import StoreClosed
from tests.support.polling import poll

UTC = timezone.utc


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def box(w: float, s: float, e: float, n: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def feature(item_id: str, collection: str, *, dt: str | None = None, start: str | None = None,
            end: str | None = None, geometry: dict | None = None,
            bbox: list[float] | None = None, **props) -> dict:
    properties = {"datetime": dt}
    if start is not None:
        properties["start_datetime"] = start
    if end is not None:
        properties["end_datetime"] = end
    properties.update({k.replace("__", ":"): v for k, v in props.items()})
    item = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": item_id,
        "collection": collection,
        "geometry": geometry,
        "properties": properties,
        "links": [{"rel": "self", "href": f"https://example.com/{collection}/{item_id}"}],
        "assets": {},
    }
    if bbox is not None:
        item["bbox"] = bbox
    elif geometry is not None:
        coords = [p for ring in geometry["coordinates"] for p in ring] \
            if geometry["type"] == "Polygon" else [geometry["coordinates"]]
        xs, ys = [p[0] for p in coords], [p[1] for p in coords]
        item["bbox"] = [min(xs), min(ys), max(xs), max(ys)]
    return item


TRIANGLE = {"type": "Polygon", "coordinates": [[[20, 0], [30, 0], [20, 10], [20, 0]]]}
PACIFIC = {"type": "MultiPolygon", "coordinates": [
    [[[170, -10], [180, -10], [180, 10], [170, 10], [170, -10]]],
    [[[-180, -10], [-170, -10], [-170, 10], [-180, 10], [-180, -10]]],
]}

UNET = feature(
    "grp/flood/unet", "ai-model", dt="2020-01-01T00:00:00Z", geometry=box(0, 0, 10, 10),
    title="Flood segmentation UNet",
    description="A UNet model for flood mapping from Sentinel-1 imagery.",
    keywords=["flood", "sentinel-1", "segmentation"], eo__cloud_cover=5,
    mlm__framework="pytorch", sharinghub__stars=12, created="2019-06-01T12:00:00+02:00",
    sharinghub__private=False,
)
CROPS = feature(
    "grp/crops/rf", "ai-model", start="2019-01-01T00:00:00Z", end="2019-12-31T23:59:59Z",
    geometry=TRIANGLE, title="Crop type random forest",
    description="Classifies crop types from optical time series.",
    keywords=["agriculture", "crops"], eo__cloud_cover=40.5, mlm__framework="sklearn",
    sharinghub__stars=3, created="2018-12-01T00:00:00Z", sharinghub__private=True,
)
TILES = feature(
    "grp/data/s2-tiles", "dataset", dt="2021-06-15T10:30:00.5Z", geometry=PACIFIC,
    bbox=[170, -10, -170, 10], title="Sentinel-2 tiles of the Pacific",
    description="Flood events over Pacific islands.", keywords=["sentinel-2", "pacific"],
    eo__cloud_cover="unknown", sharinghub__stars=50,
)
WEATHER = feature(
    "grp/data/weather", "dataset", dt="2022-03-01T00:00:00Z", title="Tabular weather data",
    description='Weather stations: "café" données, CSV 100% [raw]',
    keywords=["weather"], sharinghub__stars=0,
)
CLIMATE = feature(
    "grp/sub/deep/climate", "ai-model", start="2018-01-01T00:00:00Z",
    end="2023-01-01T00:00:00Z", geometry={"type": "Point", "coordinates": [-50, 40]},
    title="Long-running climate model",
    description="River flood flood flood model, decades of reanalysis.", keywords=[],
    mlm__framework="tensorflow", sharinghub__stars=7,
)
UNDATED = feature("grp/undated", "dataset", description="No dates, no title, no geometry.")

CORPUS = [UNET, CROPS, TILES, WEATHER, CLIMATE, UNDATED]
BY_ID = {item["id"]: item for item in CORPUS}


def update(*items: dict, project: str | None = None, **state) -> ProjectUpdate:
    return ProjectUpdate(project=project or items[0]["id"], state=state or {"v": 1},
                         items=list(items))


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/index/catalog.sqlite")
    yield s
    s.close()


@pytest.fixture
def corpus(store):
    store.apply("gitlab", [update(item) for item in CORPUS], [])
    return store


def ids(page_or_items) -> set[str]:
    items = page_or_items.items if hasattr(page_or_items, "items") else page_or_items
    return {item["id"] for item in items}


def found(store, **query) -> set[str]:
    page = store.search(Query(limit=1000, **query))
    assert page.matched == len(page.items)
    return ids(page)


# --- writes ---------------------------------------------------------------------------------


def test_open_store_creates_folders_and_persists(tmp_path):
    path = tmp_path / "a" / "b" / "idx.sqlite"
    store = open_store(str(path))
    store.apply("gitlab", [update(UNET)], [])
    store.set_meta("crawl", {"status": "done", "n": 1})
    store.close()
    assert path.exists()
    again = open_store(f"sqlite:///{path}")
    try:
        assert again.get_item("ai-model", UNET["id"]) == UNET
        assert again.get_meta("crawl") == {"status": "done", "n": 1}
        assert again.project_states("gitlab") == {UNET["id"]: {"v": 1}}
    finally:
        again.close()


def test_items_round_trip_exactly(corpus):
    for item in CORPUS:
        assert corpus.get_item(item["collection"], item["id"]) == item
    assert corpus.get_item("dataset", UNET["id"]) is None  # wrong collection
    assert corpus.get_item("ai-model", "nope") is None
    page = corpus.search(Query(ids=[UNET["id"]]))
    assert page.items == [UNET]


def test_items_round_trip_exactly_with_what_orjson_refuses(store):
    """Integers beyond 64 bits (orjson writes none, and would read them back as floats) and
    any others come back as they were, whichever way each text was packed."""
    big = feature("g/big", "dataset", dt="2021-01-01T00:00:00Z", n=2**70, m=-(2**63) - 1,
                  small=2**63 - 1, f=1.5e300)
    big["assets"] = {"data": {"href": "x.tif", "file:size": 10**30}}
    other = feature("g/other", "dataset", dt="2021-01-02T00:00:00Z", n=7)
    store.apply("gitlab", [update(big, other, project="g")], [])
    for item in (big, other):
        back = store.get_item("dataset", item["id"])
        assert back == item and repr(back) == repr(item)
    page = store.search(Query(collections=["dataset"], sortby=[("datetime", "asc")]))
    assert page.items == [big, other] and repr(page.items) == repr([big, other])


def test_apply_replaces_a_projects_items_and_state(store):
    model = feature("g/p", "ai-model", dt="2020-01-01T00:00:00Z", title="old model")
    data = feature("g/p", "dataset", dt="2020-01-01T00:00:00Z", title="old data")
    store.apply("gitlab", [update(model, data, v=1)], [])
    assert found(store) == {"g/p"} and store.search(Query()).matched == 2

    new_model = feature("g/p", "ai-model", dt="2021-01-01T00:00:00Z", title="new model")
    store.apply("gitlab", [update(new_model, v=2)], [])
    assert store.get_item("dataset", "g/p") is None  # no longer produced: gone
    assert store.get_item("ai-model", "g/p")["properties"]["title"] == "new model"
    assert store.project_states("gitlab") == {"g/p": {"v": 2}}
    assert found(store, q=["old"]) == set()  # the text index followed
    assert store.queryables("dataset") == {}


def test_apply_deletions_and_sources(store):
    store.apply("gitlab", [update(UNET), update(CROPS)], [])
    store.apply("local", [update(WEATHER, project="folder/weather")], [])
    # deleting a project id of one source leaves the same id of another source alone
    store.apply("local", [], [UNET["id"]])
    assert store.get_item("ai-model", UNET["id"]) is not None
    assert set(store.project_states("gitlab")) == {UNET["id"], CROPS["id"]}

    store.apply("gitlab", [], [UNET["id"]])
    assert store.get_item("ai-model", UNET["id"]) is None
    assert set(store.project_states("gitlab")) == {CROPS["id"]}
    assert store.project_states("local") == {"folder/weather": {"v": 1}}
    assert found(store) == {CROPS["id"], WEATHER["id"]}
    assert found(store, bbox=(0, 0, 10, 10)) == set()  # its R*Tree entry went too
    assert found(store, q=["unet"]) == set()
    assert store.project_states("nobody") == {}


def test_an_item_from_another_source_is_replaced_by_the_newer_write(store):
    store.apply("gitlab", [update(UNET, project="a")], [])
    newer = json.loads(json.dumps(UNET))
    newer["properties"]["title"] = "Mirrored UNet"
    store.apply("local", [update(newer, project="b")], [])
    assert store.search(Query()).matched == 1
    assert store.get_item("ai-model", UNET["id"])["properties"]["title"] == "Mirrored UNet"
    assert found(store, q=["mirrored"]) == {UNET["id"]}
    assert found(store, q=["flood segmentation unet"]) == set()  # the old title
    # deleting the project of the source that lost the item does not delete the winner
    store.apply("gitlab", [], ["a"])
    assert store.get_item("ai-model", UNET["id"]) is not None


def test_one_batch_is_the_same_as_its_updates_written_one_by_one(tmp_path):
    """A batch is written one statement per table: a project given twice, an item given by
    two projects, items of one second, must end as if the updates came one after another."""
    def titled(item: dict, title: str) -> dict:
        item = json.loads(json.dumps(item))
        item["properties"]["title"] = title
        return item

    second = [feature(f"s/{i}", "dataset", dt="2021-05-05T05:05:05Z", title=f"same second {i}")
              for i in range(3)]
    updates = [
        update(UNET, CROPS, project="p", v=1),
        update(titled(UNET, "taken by q"), TILES, project="q", v=2),
        update(second[0], WEATHER, project="r", v=3),
        update(titled(CROPS, "p again"), second[1], project="p", v=4),
        update(second[2], titled(WEATHER, "weather by s"), project="s", v=5),
    ]

    def written(batch: bool) -> dict:
        store = open_store(f"sqlite:///{tmp_path}/{batch}.sqlite")
        try:
            store.apply("gitlab", [update(CLIMATE, project="q"), update(UNDATED)], [])
            if batch:
                store.apply("gitlab", updates, [])
            else:
                for one in updates:
                    store.apply("gitlab", [one], [])
            page = store.search(Query(limit=100, q=None))
            return {"items": page.items, "matched": page.matched,
                    "order": [i["id"] for i in store.search(Query(limit=100, q=["same"])).items],
                    "states": store.project_states("gitlab"),
                    "projects": {i["id"]: store.project(i["id"]) for i in page.items},
                    "collections": {c: (s.count, s.bbox, s.start, s.end)
                                    for c, s in store.collections().items()},
                    "queryables": store.queryables(),
                    "texts": found(store, q=["taken"]) | found(store, q=["weather"])}
        finally:
            store.close()

    one_by_one = written(False)
    assert one_by_one["states"] == {"p": {"v": 4}, "q": {"v": 2}, "r": {"v": 3}, "s": {"v": 5},
                                    UNDATED["id"]: {"v": 1}}
    assert {i["id"] for i in one_by_one["items"]} == {UNET["id"], CROPS["id"], TILES["id"],
                                                      WEATHER["id"], UNDATED["id"],
                                                      *(i["id"] for i in second)}
    assert written(True) == one_by_one


def _table_rows(path: Path) -> dict[str, list]:
    """What each table of an index holds about its items, comparable across two indexes:
    property names decoded, R*Tree and FTS rows keyed by the item's id (rowids differ)."""
    with sqlite3.connect(path) as conn:
        ids = dict(conn.execute("SELECT rowid, collection || '/' || id FROM items"))
        def keyed(sql: str) -> list:
            return sorted((ids.get(key, f"gone {key}"), *rest) for key, *rest in conn.execute(sql))
        return {
            "items": sorted(ids.values()),
            "docs": [conn.execute("SELECT count(*) FROM item_docs").fetchone()[0],
                     conn.execute("SELECT count(*) FROM item_docs WHERE rowid NOT IN "
                                  "(SELECT doc FROM items)").fetchone()[0]],
            "props": keyed("SELECT p.item, n.name, p.kind, p.value, p.id FROM item_props AS p "
                           "JOIN prop_names AS n ON n.code = p.name"),
            "rtree": keyed("SELECT id >> 1, id & 1, minx, maxx, miny, maxy, mint, maxt "
                           "FROM items_rtree"),
            "time": keyed("SELECT id, mint, maxt, t0, t1 FROM items_time"),
            "fts": keyed("SELECT id FROM items_fts_docsize"),
            "words": sorted(conn.execute("SELECT term, doc FROM items_vocab")),
            "hist": sorted(conn.execute("SELECT * FROM time_hist")),
            "collection_hist": sorted(conn.execute("SELECT * FROM collection_time_hist")),
        }


def test_replaced_and_deleted_items_leave_no_rows_behind(tmp_path):
    """Deleting items (a project deleted or replaced, an item taken by another source) removes
    every row the index held for them, each table in one statement: afterwards each table holds
    what an index written with the remaining items alone holds."""
    def crossing(item: dict) -> bool:  # (two R*Tree rows)
        return "bbox" in item and item["bbox"][0] > item["bbox"][2]

    crossing_items = [i for i in mixed_items(160) if crossing(i)]
    others = [i for i in mixed_items(160) if not crossing(i)]
    # one item crossing the antimeridian deleted (p0), one kept (p6)
    items = [crossing_items[0], *others[:59], crossing_items[1], *others[59:118]]
    by_project = {f"p{k}": items[k * 10:k * 10 + 10] for k in range(12)}
    first = open_store(f"sqlite:///{tmp_path}/first.sqlite")
    try:
        first.apply("gitlab", [update(*its, project=p) for p, its in by_project.items()], [])
        # p0 and p1 deleted, p2 replaced by three of its items, p3's first item taken by
        # another source's project, p4 replaced by nothing
        taken = json.loads(json.dumps(by_project["p3"][0]))
        taken["properties"]["name"] = "taken"
        first.apply("gitlab", [update(*by_project["p2"][:3], project="p2")], ["p0", "p1"])
        first.apply("local", [update(taken, project="elsewhere")], [])
        first.apply("gitlab", [ProjectUpdate(project="p4", state={"v": 1}, items=[])], [])
        first.flush()
    finally:
        first.close()
    remaining = [*by_project["p2"][:3], taken, *by_project["p3"][1:],
                 *(i for k in range(5, 12) for i in by_project[f"p{k}"])]
    fresh = open_store(f"sqlite:///{tmp_path}/fresh.sqlite")
    try:
        fresh.apply("gitlab", [update(item) for item in remaining], [])
    finally:
        fresh.close()
    left, expected = _table_rows(tmp_path / "first.sqlite"), _table_rows(tmp_path / "fresh.sqlite")
    assert len(left["items"]) == len(remaining)
    assert left["docs"] == [len(remaining), 0]
    for table in expected:
        assert left[table] == expected[table], table


def test_a_failing_apply_changes_nothing(corpus):
    before = corpus.search(Query(limit=100))
    states = corpus.project_states("gitlab")
    changed = feature(UNET["id"], "ai-model", dt="2030-01-01T00:00:00Z", title="changed")
    bad_state = ProjectUpdate(project="x/y", state={"oops": object()}, items=[])
    with pytest.raises(TypeError):
        # the first update and the deletion run before the state that cannot be stored
        corpus.apply("gitlab", [update(changed), bad_state], [CROPS["id"]])
    after = corpus.search(Query(limit=100))
    assert after.items == before.items and after.matched == before.matched
    assert corpus.project_states("gitlab") == states
    assert found(corpus, q=["changed"]) == set()
    assert corpus.collections()["ai-model"].count == 3
    # and the store still takes writes
    corpus.apply("gitlab", [update(changed)], [])
    assert found(corpus, q=["changed"]) == {UNET["id"]}


def test_project_of_an_item(store):
    store.apply("gitlab", [update(UNET, v=1)], [])
    store.apply("local", [update(CROPS, project="folder/crops", v=2),
                          ProjectUpdate(project="folder/empty", state={"v": 3})], [])
    assert store.project(UNET["id"]) == ("gitlab", {"v": 1})
    assert store.project(CROPS["id"]) == ("local", {"v": 2})  # via its item
    assert store.project("folder/empty") == ("local", {"v": 3})  # no items: by project id
    assert store.project("nope") is None


def test_apply_rejects_items_without_id_or_collection(store):
    with pytest.raises(ValueError):
        store.apply("gitlab", [update({"id": "x", "properties": {}})], [])
    assert store.search(Query()).matched == 0
    # one bad item refuses its whole batch, the good projects before it too, even queued
    with pytest.raises(ValueError):
        store.apply("gitlab", [update(UNET), update({"id": 3, "collection": "dataset"})], [],
                    wait=False)
    store.flush()
    assert store.search(Query()).matched == 0


def test_meta(store):
    assert store.get_meta("missing") is None
    store.set_meta("status", {"running": True, "projects": [1, 2]})
    store.set_meta("count", 3)
    store.set_meta("status", "idle")
    assert store.get_meta("status") == "idle"
    assert store.get_meta("count") == 3


# --- search: basic fields -------------------------------------------------------------------


def test_collections_ids_and_counts(corpus):
    assert corpus.search(Query(limit=2)).matched == len(CORPUS)
    assert found(corpus, collections=["dataset"]) == {TILES["id"], WEATHER["id"], UNDATED["id"]}
    assert found(corpus, collections=["dataset", "ai-model"]) == set(BY_ID)
    assert found(corpus, collections=["nope"]) == set()
    assert found(corpus, ids=[UNET["id"], TILES["id"], "nope"]) == {UNET["id"], TILES["id"]}
    assert found(corpus, ids=[UNET["id"]], collections=["dataset"]) == set()
    page = corpus.search(Query(limit=0))
    assert page.items == [] and page.matched == len(CORPUS) and page.next_token is None
    with pytest.raises(QueryError):
        corpus.search(Query(limit=-1))


def test_free_text(corpus):
    assert found(corpus, q=["flood"]) == {UNET["id"], TILES["id"], CLIMATE["id"]}
    assert found(corpus, q=["FLOOD"]) == found(corpus, q=["flood"])  # case-insensitive
    assert found(corpus, q=["weather", "crops"]) == {WEATHER["id"], CROPS["id"]}  # OR
    # a multi-word term is a phrase: words next to each other, in that order
    assert found(corpus, q=["random forest"]) == {CROPS["id"]}
    assert found(corpus, q=["forest random"]) == set()
    assert found(corpus, q=["sentinel-2"]) == {TILES["id"]}
    assert found(corpus, q=["sentinel"]) == {UNET["id"], TILES["id"]}
    assert found(corpus, q=["flooding"]) == set()  # no stemming
    assert found(corpus, q=["cafe"]) == {WEATHER["id"]}  # accents folded
    # FTS syntax in terms is just text
    assert found(corpus, q=['"café" données']) == {WEATHER["id"]}
    assert found(corpus, q=["flood OR weather"]) == set()
    assert found(corpus, q=["NOT", "100%"]) == {WEATHER["id"]}
    assert found(corpus, q=["title:flood"]) == set()
    assert found(corpus, q=["flo*"]) == set()
    # terms of punctuation only match nothing rather than failing
    assert found(corpus, q=["-"]) == set()
    assert found(corpus, q=['"', "..."]) == set()
    assert found(corpus, q=["---", "weather"]) == {WEATHER["id"]}
    assert found(corpus, q=["crop\x00type"]) == {CROPS["id"]}
    # title and description only index properties, not ids
    assert found(corpus, q=["grp"]) == set()
    # keywords are indexed
    assert found(corpus, q=["agriculture"]) == {CROPS["id"]}


def test_free_text_ranks_by_relevance(corpus):
    page = corpus.search(Query(q=["flood"], limit=10))
    # a title hit outranks descriptions (CLIMATE says flood three times in its description)
    assert page.items[0]["id"] == UNET["id"]
    assert [i["id"] for i in page.items[1:]] == [CLIMATE["id"], TILES["id"]]
    # with a sortby, the sort wins over relevance
    page = corpus.search(Query(q=["flood"], sortby=[("datetime", "asc")]))
    assert [i["id"] for i in page.items] == [CLIMATE["id"], UNET["id"], TILES["id"]]


def test_datetime(corpus):
    def between(a, b):
        return found(corpus, datetime=Interval(ts(a) if a else None, ts(b) if b else None))

    assert between("2019-06-01T00:00:00Z", "2019-06-02T00:00:00Z") == {CROPS["id"], CLIMATE["id"]}
    # instants: a range contains its bounds
    assert between("2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z") == {UNET["id"], CLIMATE["id"]}
    assert between("2019-12-31T23:59:59Z", "2019-12-31T23:59:59Z") == {CROPS["id"], CLIMATE["id"]}
    assert between("2020-01-01T00:00:01Z", "2020-01-01T00:00:01Z") == {CLIMATE["id"]}
    # sub-second timestamps
    assert between("2021-06-15T10:30:00.5Z", "2021-06-15T10:30:00.5Z") == \
        {TILES["id"], CLIMATE["id"]}
    assert between("2021-06-15T10:30:00.4Z", "2021-06-15T10:30:00.49Z") == {CLIMATE["id"]}
    # open ends
    assert between("2022-01-01T00:00:00Z", None) == {WEATHER["id"], CLIMATE["id"]}
    assert between(None, "2018-06-01T00:00:00Z") == {CLIMATE["id"]}
    assert between(None, None) == set(BY_ID) - {UNDATED["id"]}
    # time zones are honoured
    assert found(corpus, datetime=Interval(
        datetime(2022, 3, 1, 1, 0, tzinfo=timezone(__import__("datetime").timedelta(hours=1))),
        None)) == {WEATHER["id"], CLIMATE["id"]}
    # dates: the whole day
    assert found(corpus, datetime=Interval(date(2021, 6, 15), date(2021, 6, 15))) == \
        {TILES["id"], CLIMATE["id"]}
    with pytest.raises(QueryError):
        between("2021-01-01T00:00:00Z", "2020-01-01T00:00:00Z")


def test_bbox(corpus):
    assert found(corpus, bbox=(1, 1, 2, 2)) == {UNET["id"]}
    assert found(corpus, bbox=(-60, 30, 15, 50)) == {CLIMATE["id"]}
    # touching edges intersect
    assert found(corpus, bbox=(10, 10, 11, 11)) == {UNET["id"]}
    assert found(corpus, bbox=(10.000001, 10.000001, 11, 11)) == set()
    # an item's bbox, not its geometry: the triangle's empty corner matches
    assert found(corpus, bbox=(28, 8, 29, 9)) == {CROPS["id"]}
    # antimeridian: the query's box crossing it, the item's box crossing it
    assert found(corpus, bbox=(175, -1, -175, 1)) == {TILES["id"]}
    assert found(corpus, bbox=(178, -1, 179, 1)) == {TILES["id"]}
    assert found(corpus, bbox=(-179, -1, -178, 1)) == {TILES["id"]}
    assert found(corpus, bbox=(0, -1, 5, 1)) == {UNET["id"]}  # not the Pacific item
    assert found(corpus, bbox=(160, -50, 25, 50)) == {TILES["id"], UNET["id"], CROPS["id"],
                                                      CLIMATE["id"]}
    assert found(corpus, bbox=(160, -50, -60, 50)) == {TILES["id"]}
    assert found(corpus, bbox=(-180, -90, 180, 90)) == set(BY_ID) - {WEATHER["id"],
                                                                      UNDATED["id"]}
    assert found(corpus, bbox=(0, 0, 0, 10, 10, 5)) == {UNET["id"]}  # 3D bbox
    with pytest.raises(QueryError):
        corpus.search(Query(bbox=(0, 10, 1, 5)))  # south above north


def test_bbox_is_exact_beyond_the_rtree_precision(store):
    # the R*Tree keeps 32-bit floats (rounded outwards); answers use the exact bbox
    item = feature("g/edge", "dataset", dt="2020-01-01T00:00:00Z",
                   geometry=box(10.05, 10.05, 10.1, 10.1))
    store.apply("gitlab", [update(item)], [])
    assert found(store, bbox=(10.1, 10.1, 11, 11)) == {"g/edge"}
    assert found(store, bbox=(10.1000001, 10.1000001, 11, 11)) == set()
    assert found(store, bbox=(10.1000001, -90, -179, 90)) == set()
    assert found(store, bbox=(10.0, -90, -179, 90)) == {"g/edge"}


def test_intersects_is_exact(corpus):
    inside_bbox_outside_triangle = {"type": "Point", "coordinates": [28, 8]}
    assert found(corpus, intersects=inside_bbox_outside_triangle) == set()
    assert found(corpus, intersects={"type": "Point", "coordinates": [21, 1]}) == {CROPS["id"]}
    line = {"type": "LineString", "coordinates": [[5, 5], [22, 1]]}
    assert found(corpus, intersects=line) == {UNET["id"], CROPS["id"]}
    assert found(corpus, intersects=box(175, -1, 176, 1)) == {TILES["id"]}
    assert found(corpus, intersects=box(-51, 39, -49, 41)) == {CLIMATE["id"]}
    with pytest.raises(QueryError):
        corpus.search(Query(intersects={"type": "Polygon", "coordinates": "nope"}))


# --- search: filters ------------------------------------------------------------------------


def test_compare(corpus):
    cc = Prop("eo:cloud_cover")
    assert found(corpus, filter=Compare("<", cc, 10)) == {UNET["id"]}
    assert found(corpus, filter=Compare(">=", cc, 5)) == {UNET["id"], CROPS["id"]}
    assert found(corpus, filter=Compare("=", cc, 40.5)) == {CROPS["id"]}
    # the string "unknown" neither equals nor differs from a number: no error, no match
    assert found(corpus, filter=Compare("<>", cc, 5)) == {CROPS["id"]}
    assert found(corpus, filter=Compare("=", cc, "unknown")) == {TILES["id"]}
    assert found(corpus, filter=Compare(">", cc, "a")) == {TILES["id"]}  # strings compare
    assert found(corpus, filter=Compare(">", 10, cc)) == {UNET["id"]}  # literal on the left
    assert found(corpus, filter=Compare("=", Prop("mlm:framework"), "pytorch")) == {UNET["id"]}
    assert found(corpus, filter=Compare("<>", Prop("mlm:framework"), "pytorch")) == \
        {CROPS["id"], CLIMATE["id"]}  # a missing property is unknown, not different
    assert found(corpus, filter=Compare("=", Prop("sharinghub:private"), True)) == {CROPS["id"]}
    assert found(corpus, filter=Compare("=", Prop("sharinghub:private"), False)) == {UNET["id"]}
    assert found(corpus, filter=Compare("=", Prop("sharinghub:stars"), True)) == set()
    assert found(corpus, filter=Compare("=", Prop("id"), UNET["id"])) == {UNET["id"]}
    assert found(corpus, filter=Compare("=", Prop("collection"), "dataset")) == \
        {TILES["id"], WEATHER["id"], UNDATED["id"]}
    assert found(corpus, filter=Compare("=", Prop("id"), 5)) == set()
    assert found(corpus, filter=Compare("=", Prop("title"), "Tabular weather data")) == \
        {WEATHER["id"]}
    assert found(corpus, filter=Compare("=", Prop("properties.title"), "Tabular weather data")) \
        == {WEATHER["id"]}
    # unknown properties are NULL
    assert found(corpus, filter=Compare("=", Prop("no:such"), 1)) == set()
    assert found(corpus, filter=Not(Compare("=", Prop("no:such"), 1))) == set()
    # literal-only comparisons
    assert found(corpus, filter=Compare("<", 1, 2)) == set(BY_ID)
    assert found(corpus, filter=Compare("<", "a", 2)) == set()
    with pytest.raises(QueryError):
        corpus.search(Query(filter=Compare("~", cc, 1)))


def test_compare_timestamps(corpus):
    dt = Prop("datetime")
    assert found(corpus, filter=Compare(">", dt, ts("2021-01-01T00:00:00Z"))) == \
        {TILES["id"], WEATHER["id"]}
    assert found(corpus, filter=Compare("=", dt, ts("2021-06-15T10:30:00.5Z"))) == {TILES["id"]}
    assert found(corpus, filter=Compare("=", dt, "2021-06-15T10:30:00.500+00:00")) == \
        {TILES["id"]}  # an ISO string compared with a timestamp property is a timestamp
    assert found(corpus, filter=Compare(">=", dt, date(2022, 3, 1))) == {WEATHER["id"]}
    assert found(corpus, filter=Compare("<", Prop("end_datetime"), ts("2020-01-01T00:00:00Z"))) \
        == {CROPS["id"]}
    assert found(corpus, filter=Compare(">", Prop("start_datetime"), ts("2021-01-01T00:00:00Z"))) \
        == {TILES["id"], WEATHER["id"]}
    # a range item's datetime is its start
    assert found(corpus, filter=Compare("=", dt, ts("2018-01-01T00:00:00Z"))) == {CLIMATE["id"]}
    # ISO string properties, with offsets, compare as instants
    created = Prop("created")
    assert found(corpus, filter=Compare("=", created, ts("2019-06-01T10:00:00Z"))) == {UNET["id"]}
    assert found(corpus, filter=Compare("<", created, ts("2019-06-01T10:00:00Z"))) == {CROPS["id"]}
    assert found(corpus, filter=Compare(">", created, datetime(2019, 1, 1))) == {UNET["id"]}
    assert found(corpus, filter=Compare(">", Prop("title"), datetime(2019, 1, 1))) == set()
    assert found(corpus, filter=Compare("=", dt, "not a date")) == set()
    # property to property
    assert found(corpus, filter=Compare("<", Prop("created"), Prop("datetime"))) == \
        {UNET["id"], CROPS["id"]}
    assert found(corpus, filter=Compare("<", Prop("start_datetime"), Prop("end_datetime"))) == \
        {CROPS["id"], CLIMATE["id"]}


def test_like(corpus):
    assert found(corpus, filter=Like(Prop("id"), "grp/data/%")) == {TILES["id"], WEATHER["id"]}
    assert found(corpus, filter=Like(Prop("title"), "%UNet")) == {UNET["id"]}
    assert found(corpus, filter=Like(Prop("title"), "%unet")) == set()  # case-sensitive
    assert found(corpus, filter=Like(Prop("mlm:framework"), "py_orch")) == {UNET["id"]}
    assert found(corpus, filter=Like(Prop("mlm:framework"), "py_rch")) == set()
    # escapes, and GLOB's own special characters are literal
    assert found(corpus, filter=Like(Prop("description"), "%100\\%%")) == {WEATHER["id"]}
    assert found(corpus, filter=Like(Prop("description"), "%1000\\%%")) == set()
    assert found(corpus, filter=Like(Prop("description"), "%[raw]")) == {WEATHER["id"]}
    assert found(corpus, filter=Like(Prop("description"), "%\\[raw\\]")) == {WEATHER["id"]}
    assert found(corpus, filter=Like(Prop("description"), "%[ra_]")) == {WEATHER["id"]}
    assert found(corpus, filter=Like(Prop("description"), "%[r?w]")) == set()
    assert found(corpus, filter=Like(Prop("description"), "%\\_%")) == set()
    assert found(corpus, filter=Like(Prop("description"), "*%")) == set()
    assert found(corpus, filter=Like(Prop("sharinghub:stars"), "%")) == set()  # not a string
    assert found(corpus, filter=Not(Like(Prop("id"), "grp/%"))) == set()


def test_in_between_isnull(corpus):
    fw = Prop("mlm:framework")
    assert found(corpus, filter=In(fw, ("pytorch", "sklearn", "jax"))) == {UNET["id"], CROPS["id"]}
    assert found(corpus, filter=Not(In(fw, ("pytorch", "sklearn")))) == {CLIMATE["id"]}
    assert found(corpus, filter=In(Prop("collection"), ("dataset",))) == \
        {TILES["id"], WEATHER["id"], UNDATED["id"]}
    cc = Prop("eo:cloud_cover")
    # values of several types: each item's value is tested against those of its own type
    assert found(corpus, filter=In(cc, (5, "unknown"))) == {UNET["id"], TILES["id"]}
    assert found(corpus, filter=Not(In(cc, (5, "unknown")))) == {CROPS["id"]}
    assert found(corpus, filter=In(cc, ())) == set()
    assert found(corpus, filter=In(Prop("datetime"), (ts("2020-01-01T00:00:00Z"),))) == \
        {UNET["id"]}
    assert found(corpus, filter=In(Prop("created"), ("2018-12-01T00:00:00Z",
                                                     ts("2019-06-01T10:00:00Z")))) == \
        {UNET["id"], CROPS["id"]}
    stars = Prop("sharinghub:stars")
    assert found(corpus, filter=Between(stars, 3, 12)) == {UNET["id"], CROPS["id"], CLIMATE["id"]}
    assert found(corpus, filter=Not(Between(stars, 3, 12))) == \
        {TILES["id"], WEATHER["id"]}  # UNDATED has no stars: unknown
    assert found(corpus, filter=Between(Prop("datetime"), ts("2021-01-01T00:00:00Z"),
                                        ts("2022-12-31T00:00:00Z"))) == {TILES["id"],
                                                                         WEATHER["id"]}
    assert found(corpus, filter=IsNull(fw)) == {TILES["id"], WEATHER["id"], UNDATED["id"]}
    assert found(corpus, filter=IsNull(Prop("no:such"))) == set(BY_ID)
    assert found(corpus, filter=IsNull(Prop("geometry"))) == {WEATHER["id"], UNDATED["id"]}
    assert found(corpus, filter=IsNull(Prop("title"))) == {UNDATED["id"]}
    assert found(corpus, filter=IsNull(Prop("datetime"))) == {UNDATED["id"]}
    assert found(corpus, filter=Not(IsNull(Prop("end_datetime")))) == \
        set(BY_ID) - {UNDATED["id"]}


def test_boolean_logic(corpus):
    ai = Compare("=", Prop("collection"), "ai-model")
    popular = Compare(">", Prop("sharinghub:stars"), 5)
    assert found(corpus, filter=And((ai, popular))) == {UNET["id"], CLIMATE["id"]}
    assert found(corpus, filter=Or((ai, popular))) == \
        {UNET["id"], CROPS["id"], CLIMATE["id"], TILES["id"]}
    assert found(corpus, filter=And((ai, Not(popular)))) == {CROPS["id"]}
    assert found(corpus, filter=Not(Or((ai, popular)))) == {WEATHER["id"]}
    assert found(corpus, filter=And(())) == set(BY_ID)
    assert found(corpus, filter=Or(())) == set()
    # filters combine with the other fields
    assert found(corpus, filter=popular, q=["flood"], collections=["ai-model"]) == \
        {UNET["id"], CLIMATE["id"]}
    # a boolean property on its own is a predicate
    assert found(corpus, filter=Prop("sharinghub:private")) == {CROPS["id"]}
    with pytest.raises(QueryError):
        corpus.search(Query(filter=object()))


def test_spatial(corpus):
    geom = Prop("geometry")
    point_outside_triangle = {"type": "Point", "coordinates": [28, 8]}
    assert found(corpus, filter=Spatial("s_intersects", geom, point_outside_triangle)) == set()
    assert found(corpus, filter=Spatial("s_intersects", geom, box(-60, 0, 21, 50))) == \
        {UNET["id"], CROPS["id"], CLIMATE["id"]}
    assert found(corpus, filter=Spatial("s_intersects", box(-60, 0, 21, 50), geom)) == \
        {UNET["id"], CROPS["id"], CLIMATE["id"]}
    # disjoint is the complement among items that have a geometry
    assert found(corpus, filter=Spatial("s_disjoint", geom, point_outside_triangle)) == \
        {UNET["id"], CROPS["id"], TILES["id"], CLIMATE["id"]}
    assert found(corpus, filter=Not(Spatial("s_intersects", geom, box(-60, 0, 21, 50)))) == \
        {TILES["id"]}
    assert found(corpus, filter=Spatial("s_within", geom, box(-1, -1, 11, 11))) == {UNET["id"]}
    assert found(corpus, filter=Spatial("s_contains", geom, box(1, 1, 2, 2))) == {UNET["id"]}
    assert found(corpus, filter=Spatial("s_contains", box(-1, -1, 50, 11), geom)) == \
        {UNET["id"], CROPS["id"]}
    assert found(corpus, filter=Spatial("s_equals", geom, TRIANGLE)) == {CROPS["id"]}
    assert found(corpus, filter=Spatial("s_touches", geom, box(10, 0, 20, 10))) == \
        {UNET["id"], CROPS["id"]}
    assert found(corpus, filter=Spatial("s_overlaps", geom, box(5, 5, 15, 15))) == {UNET["id"]}
    assert found(corpus, filter=Spatial("s_crosses", geom,
                                        {"type": "LineString", "coordinates": [[-5, 5], [5, 5]]})
                 ) == {UNET["id"]}
    # a bbox literal, also across the antimeridian
    assert found(corpus, filter=Spatial("s_intersects", geom, [175, -1, -175, 1])) == \
        {TILES["id"]}
    assert found(corpus, filter=Spatial("s_intersects", geom, [-169, -1, 169, 1])) == \
        {UNET["id"], CROPS["id"]}
    assert found(corpus, filter=Compare("=", geom, TRIANGLE)) == {CROPS["id"]}
    with pytest.raises(QueryError):
        corpus.search(Query(filter=Spatial("s_nearby", geom, TRIANGLE)))
    with pytest.raises(QueryError):
        corpus.search(Query(filter=Spatial("s_intersects", geom, "POINT (1 1)")))


def epoch(value) -> float:
    if isinstance(value, str):
        value = ts(value)
    return value.timestamp()


#: CQL2 temporal functions on [a0, a1] and [b0, b1], written independently of the store
ALLEN = {
    "t_after": lambda a0, a1, b0, b1: a0 > b1,
    "t_before": lambda a0, a1, b0, b1: a1 < b0,
    "t_contains": lambda a0, a1, b0, b1: a0 < b0 and a1 > b1,
    "t_disjoint": lambda a0, a1, b0, b1: not (a0 <= b1 and a1 >= b0),
    "t_during": lambda a0, a1, b0, b1: a0 > b0 and a1 < b1,
    "t_equals": lambda a0, a1, b0, b1: a0 == b0 and a1 == b1,
    "t_finishedby": lambda a0, a1, b0, b1: a0 < b0 and a1 == b1,
    "t_finishes": lambda a0, a1, b0, b1: a0 > b0 and a1 == b1,
    "t_intersects": lambda a0, a1, b0, b1: a0 <= b1 and a1 >= b0,
    "t_meets": lambda a0, a1, b0, b1: a1 == b0,
    "t_metby": lambda a0, a1, b0, b1: a0 == b1,
    "t_overlappedby": lambda a0, a1, b0, b1: b0 < a0 < b1 < a1,
    "t_overlaps": lambda a0, a1, b0, b1: a0 < b0 < a1 < b1,
    "t_startedby": lambda a0, a1, b0, b1: a0 == b0 and a1 > b1,
    "t_starts": lambda a0, a1, b0, b1: a0 == b0 and a1 < b1,
}
INF = float("inf")

TEMPORAL_LITERALS = [
    ts("2020-01-01T00:00:00Z"),  # UNET's instant, inside CLIMATE
    ts("2019-01-01T00:00:00Z"),  # CROPS' start
    ts("2023-01-01T00:00:00Z"),  # CLIMATE's end
    Interval(ts("2019-01-01T00:00:00Z"), ts("2019-12-31T23:59:59Z")),  # CROPS exactly
    Interval(ts("2018-01-01T00:00:00Z"), ts("2020-01-01T00:00:00Z")),  # starts with CLIMATE
    Interval(ts("2019-12-31T23:59:59Z"), ts("2021-06-15T10:30:00.5Z")),  # CROPS end - TILES
    Interval(ts("2017-01-01T00:00:00Z"), ts("2023-01-01T00:00:00Z")),  # ends with CLIMATE
    Interval(ts("2019-06-01T00:00:00Z"), None),
    Interval(None, ts("2020-01-01T00:00:00Z")),
    Interval(None, None),
]


def literal_bounds(value) -> tuple[float, float]:
    if isinstance(value, Interval):
        return (-INF if value.start is None else epoch(value.start),
                INF if value.end is None else epoch(value.end))
    return epoch(value), epoch(value)


def item_bounds(item) -> tuple[float, float] | None:
    p = item["properties"]
    start = p.get("start_datetime") or p.get("datetime")
    end = p.get("end_datetime") or p.get("datetime")
    return (epoch(start), epoch(end)) if start else None


@pytest.mark.parametrize("op", TEMPORAL_OPS)
def test_temporal_functions_follow_allen(corpus, op):
    assert set(ALLEN) == set(TEMPORAL_OPS)
    for literal in TEMPORAL_LITERALS:
        b0, b1 = literal_bounds(literal)
        expected = {item["id"] for item in CORPUS
                    if item_bounds(item) and ALLEN[op](*item_bounds(item), b0, b1)}
        assert found(corpus, filter=Temporal(op, Prop("datetime"), literal)) == expected, literal
        # swapped operands: the literal is ``a``
        swapped = {item["id"] for item in CORPUS
                   if item_bounds(item) and ALLEN[op](b0, b1, *item_bounds(item))}
        assert found(corpus, filter=Temporal(op, literal, Prop("datetime"))) == swapped, literal


def test_temporal_examples(corpus):
    dt = Prop("datetime")
    crops = Interval(ts("2019-01-01T00:00:00Z"), ts("2019-12-31T23:59:59Z"))
    assert found(corpus, filter=Temporal("t_equals", dt, crops)) == {CROPS["id"]}
    assert found(corpus, filter=Temporal("t_during", dt, crops)) == set()
    assert found(corpus, filter=Temporal("t_contains", dt, crops)) == {CLIMATE["id"]}
    assert found(corpus, filter=Temporal("t_intersects", dt, ts("2020-01-01T00:00:00Z"))) == \
        {UNET["id"], CLIMATE["id"]}
    assert found(corpus, filter=Temporal("t_before", dt, Interval(ts("2021-01-01T00:00:00Z"),
                                                                  None))) == \
        {UNET["id"], CROPS["id"]}
    assert found(corpus, filter=Temporal("t_after", dt, Interval(None, ts("2021-01-01T00:00:00Z")))
                 ) == {TILES["id"], WEATHER["id"]}
    assert found(corpus, filter=Not(Temporal("t_intersects", dt, crops))) == \
        {UNET["id"], TILES["id"], WEATHER["id"]}  # UNDATED has no time: unknown
    # a date stands for its day
    assert found(corpus, filter=Temporal("t_during", dt, date(2021, 6, 15))) == {TILES["id"]}
    # a string property holding a timestamp, and start/end properties as instants
    assert found(corpus, filter=Temporal("t_before", Prop("created"), ts("2019-01-01T00:00:00Z"))
                 ) == {CROPS["id"]}
    assert found(corpus, filter=Temporal("t_equals", Prop("end_datetime"),
                                         ts("2023-01-01T00:00:00Z"))) == {CLIMATE["id"]}
    assert found(corpus, filter=Temporal("T_MEETS", Prop("start_datetime"),
                                         ts("2019-01-01T00:00:00Z"))) == {CROPS["id"]}
    assert found(corpus, filter=Temporal("t_intersects", Prop("title"), crops)) == set()
    with pytest.raises(QueryError):
        corpus.search(Query(filter=Temporal("t_near", dt, crops)))


def test_weird_property_names(store):
    item = feature("g/q", "dataset", dt="2020-01-01T00:00:00Z", **{'we"ird': 1, "it's": "x"})
    store.apply("gitlab", [update(item)], [])
    assert found(store, filter=Compare("=", Prop('we"ird'), 1)) == {"g/q"}
    assert found(store, filter=Compare("=", Prop("it's"), "x")) == {"g/q"}
    assert found(store, sortby=[("it's", "asc")]) == {"g/q"}
    assert store.queryables()["we\"ird"] == "integer"


# --- sorting and paging ---------------------------------------------------------------------


def order(store, sortby=None, **query) -> list[str]:
    page = store.search(Query(limit=1000, sortby=sortby or [], **query))
    return [item["id"] for item in page.items]


def test_default_order_and_sortby(corpus):
    # newest first by datetime (a range's start), undated last
    assert order(corpus) == [WEATHER["id"], TILES["id"], UNET["id"], CROPS["id"], CLIMATE["id"],
                             UNDATED["id"]]
    assert order(corpus, [("datetime", "asc")]) == [UNDATED["id"], CLIMATE["id"], CROPS["id"],
                                                    UNET["id"], TILES["id"], WEATHER["id"]]
    assert order(corpus, [("sharinghub:stars", "desc")]) == [
        TILES["id"], UNET["id"], CLIMATE["id"], CROPS["id"], WEATHER["id"], UNDATED["id"]]
    assert order(corpus, [("properties.sharinghub:stars", "asc")])[0] == UNDATED["id"]
    assert order(corpus, [("title", "asc")]) == [
        UNDATED["id"], CROPS["id"], UNET["id"], CLIMATE["id"], TILES["id"], WEATHER["id"]]
    assert order(corpus, [("id", "desc")]) == sorted(BY_ID, reverse=True)
    assert order(corpus, [("collection", "asc"), ("id", "asc")]) == \
        sorted(BY_ID, key=lambda i: (BY_ID[i]["collection"], i))
    assert order(corpus, [("end_datetime", "desc")])[:2] == [CLIMATE["id"], WEATHER["id"]]
    assert order(corpus, [("start_datetime", "asc")])[1:3] == [CLIMATE["id"], CROPS["id"]]
    assert order(corpus, [("no:such", "asc")]) == order(corpus, [("no:such", "desc")])[::-1]
    for bad in ([("geometry", "asc")], [("title", "up")], [("", "asc")], [("title",)]):
        with pytest.raises(QueryError):
            corpus.search(Query(sortby=bad))


@pytest.fixture
def many(store):
    """67 items with ties and NULLs in the sort keys, over two sources and two collections."""
    updates = {"gitlab": [], "local": []}
    for i in range(67):
        props = {"sharinghub:stars": i % 5, "title": f"item {i % 9}" if i % 4 else None}
        if i % 11 == 0:
            props["sharinghub:stars"] = None
        item = feature(f"g/p{i:02d}", "ai-model" if i % 3 else "dataset",
                       dt=None if i % 13 == 0 else f"2020-01-{1 + i % 7:02d}T00:00:00Z",
                       description="common words" + (" flood" if i % 2 else ""), **props)
        updates["gitlab" if i % 2 else "local"].append(update(item))
    for source, ups in updates.items():
        store.apply(source, ups, [])
    return store


SORTS = [
    [],
    [("datetime", "asc")],
    [("sharinghub:stars", "desc"), ("datetime", "asc")],
    [("sharinghub:stars", "asc")],
    [("title", "desc")],
    [("title", "asc"), ("id", "desc")],
    [("collection", "asc")],
]


@pytest.mark.parametrize("sortby", SORTS)
@pytest.mark.parametrize("limit", [1, 7, 10])
def test_paging_visits_everything_once_forward_and_back(many, sortby, limit):
    everything = order(many, sortby)
    assert len(everything) == len(set(everything)) == 67
    pages, token = [], None
    while True:
        page = many.search(Query(sortby=sortby, limit=limit, token=token))
        assert page.matched == 67
        assert (page.prev_token is None) == (token is None)
        pages.append(page)
        token = page.next_token
        if token is None:
            break
    assert [i["id"] for p in pages for i in p.items] == everything
    assert all(len(p.items) == limit for p in pages[:-1])
    # and back from the last page to the first
    for index in range(len(pages) - 1, 0, -1):
        back = many.search(Query(sortby=sortby, limit=limit, token=pages[index].prev_token))
        assert back.items == pages[index - 1].items
        assert (back.prev_token is None) == (index == 1)
        assert back.next_token is not None
        again = many.search(Query(sortby=sortby, limit=limit, token=back.next_token))
        assert again.items == pages[index].items


def test_paging_ranked_free_text(many):
    everything = order(many, q=["flood"])
    assert len(everything) == 33
    seen, token = [], None
    while True:
        page = many.search(Query(q=["flood"], limit=4, token=token))
        seen += [i["id"] for i in page.items]
        if page.next_token is None:
            break
        back = many.search(Query(q=["flood"], limit=4, token=page.next_token))
        assert many.search(Query(q=["flood"], limit=4, token=back.prev_token)).items == page.items
        token = page.next_token
    assert seen == everything
    with pytest.raises(QueryError):  # a ranking token is tied to its terms
        many.search(Query(q=["common"], limit=4, token=token))


def test_paging_with_filters_and_changes_in_between(many):
    query = {"collections": ["ai-model"], "filter": Compare(">", Prop("sharinghub:stars"), 1)}
    expected = order(many, **query)
    first = many.search(Query(limit=5, **query))
    assert [i["id"] for i in first.items] == expected[:5]
    # the page's last item goes away; the next page still starts after where it was
    gone = first.items[-1]
    many.apply("local" if int(gone["id"][3:]) % 2 == 0 else "gitlab", [], [gone["id"]])
    second = many.search(Query(limit=5, token=first.next_token, **query))
    assert [i["id"] for i in second.items] == expected[5:10]
    assert second.matched == len(expected) - 1


def test_empty_page_still_links_back(many):
    page = many.search(Query(limit=60))
    rest = many.search(Query(limit=60, token=page.next_token))
    assert len(rest.items) == 7
    # everything on and after the second page is removed
    for item in rest.items:
        source = "gitlab" if int(item["id"][3:]) % 2 else "local"
        many.apply(source, [], [item["id"]])
    empty = many.search(Query(limit=60, token=page.next_token))
    assert empty.items == [] and empty.next_token is None
    back = many.search(Query(limit=60, token=empty.prev_token))
    assert back.items == page.items


def test_empty_page_going_back_still_links_forward(many):
    first = many.search(Query(limit=10))
    second = many.search(Query(limit=10, token=first.next_token))
    for item in first.items:  # everything before the second page goes
        source = "gitlab" if int(item["id"][3:]) % 2 else "local"
        many.apply(source, [], [item["id"]])
    empty = many.search(Query(limit=10, token=second.prev_token))
    assert empty.items == [] and empty.prev_token is None and empty.next_token is not None
    assert many.search(Query(limit=10, token=empty.next_token)).items == second.items


def test_bad_tokens(many):
    good = many.search(Query(limit=5)).next_token
    assert good is not None
    bad = [
        "not base64 !!",
        "eyJub3QiOiJhIHRva2VuIn0",  # {"not":"a token"}
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(json.dumps(
            {"s": [["datetime", "desc"], ["id", "desc"]], "d": "n", "k": [1.0]}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(
            {"s": [["datetime", "desc"], ["id", "desc"]], "d": "x", "k": [1.0, "a", 1]}
        ).encode()).decode(),
        good[:-3],
    ]
    for token in bad:
        with pytest.raises(QueryError):
            many.search(Query(limit=5, token=token))
    with pytest.raises(QueryError):  # a token from another sort order
        many.search(Query(limit=5, token=good, sortby=[("title", "asc")]))
    with pytest.raises(QueryError):
        many.search(Query(limit=5, token=good, q=["flood"]))
    # the same order spelled out is the same order
    assert many.search(Query(limit=5, token=good, sortby=[("datetime", "desc")])).items


# --- what makes searches fast: the property table, plans, rankings, time and space indexes ----


def paged(store, limit: int, **query) -> list[str]:
    """Every match, page by page forward, checking each page's way back."""
    seen, token, previous = [], None, None
    while True:
        page = store.search(Query(limit=limit, token=token, **query))
        if previous is not None:  # the previous page, from this one
            back = store.search(Query(limit=limit, token=page.prev_token, **query))
            assert [i["id"] for i in back.items] == [i["id"] for i in previous.items]
        seen += [i["id"] for i in page.items]
        if page.next_token is None:
            return seen
        token, previous = page.next_token, page


def mixed_items(n: int, seed: int = 7) -> list[dict]:
    """Items whose properties hold values of several JSON types (or none), some dated with
    ranges, some crossing the antimeridian."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "flood", "crop", "river", "urban"]
    items = []
    for i in range(n):
        props: dict = {"stars": rng.randint(0, 20)}
        roll = rng.random()
        if roll < 0.55:
            props["score"] = rng.choice([rng.randint(-5, 50), round(rng.uniform(-5, 50), 2)])
        elif roll < 0.65:
            props["score"] = rng.choice(["high", "low", "12"])
        elif roll < 0.72:
            props["score"] = rng.choice([True, False])
        elif roll < 0.78:
            props["score"] = None
        elif roll < 0.84:
            props["score"] = [1, 2]
        props["name"] = f"{rng.choice(words)}-{rng.randint(0, 30):02d}" if rng.random() < 0.9 \
            else rng.randint(0, 9)
        if rng.random() < 0.8:
            props["label"] = rng.choice(words).upper() + rng.choice(["", "é", "%", "_x"])
        if rng.random() < 0.7:
            props["ok"] = rng.random() < 0.5
        props["seen"] = (f"2020-01-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
                         if rng.random() < 0.7 else rng.choice(["soon", 3]))
        day = rng.randint(0, 2000)
        start = datetime(2018, 1, 1, tzinfo=UTC) + timedelta(days=day,
                                                             seconds=rng.randint(0, 86399))
        dates: dict = {}
        kind = rng.random()
        if kind < 0.55:
            dates["dt"] = start.isoformat().replace("+00:00", "Z")
        elif kind < 0.9:
            end = start + timedelta(days=rng.choice([0, 1, 30, 400]),
                                    seconds=rng.randint(0, 3600))
            dates["start"] = start.isoformat().replace("+00:00", "Z")
            dates["end"] = end.isoformat().replace("+00:00", "Z")
        w, s = rng.uniform(-180, 175), rng.uniform(-80, 70)
        size = rng.choice([0.5, 5, 30])
        e = w + size
        bbox = [w, s, e - 360 if e > 180 else e, min(90, s + size)] if rng.random() < 0.9 \
            else None
        items.append(feature(
            f"m/{i:03d}", rng.choice(["ai-model", "dataset"]), bbox=bbox,
            geometry=box(w, s, min(e, 180), min(90, s + size)) if bbox else None,
            title=" ".join(rng.choices(words, k=3)), description=" ".join(rng.choices(words, k=8)),
            keywords=rng.sample(words, 2), **dates, **props))
    return items


@pytest.fixture
def mixed(store):
    items = mixed_items(400)
    for batch in range(0, len(items), 100):
        store.apply("gitlab", [update(item) for item in items[batch:batch + 100]], [])
    store.items = {item["id"]: item for item in items}
    return store


S, N, NAME, SEEN = Prop("score"), Prop("stars"), Prop("name"), Prop("seen")
PROPERTY_FILTERS = [
    *[Compare(op, S, v) for op in ("=", "<>", "<", "<=", ">", ">=")
      for v in (10, 10.5, "high", True, "12")],
    Compare(">", 10, S), Compare("=", "low", S),
    Between(S, 0, 20), Between(S, "a", "z"), Between(S, 0, "z"), Between(N, 3, 7),
    In(S, (1, 2, "high", True)), In(S, (3,)), In(NAME, ("alpha-01", "beta-02", 5)), In(S, ()),
    In(S, (ts("2020-01-05T00:00:00Z"), "12")),
    Like(NAME, "alpha%"), Like(NAME, "%-1_"), Like(NAME, "b_ta%"), Like(Prop("label"), "%\\%"),
    Like(Prop("label"), "RIVER_x"), Like(Prop("label"), "FLOOD%"), Like(Prop("label"), "%é"),
    Prop("ok"), Compare("=", Prop("ok"), False), Compare("=", Prop("ok"), 0),
    Temporal("t_before", SEEN, ts("2020-01-15T00:00:00Z")),
    Temporal("t_during", SEEN, Interval(ts("2020-01-05T00:00:00Z"), ts("2020-01-20T00:00:00Z"))),
    Temporal("t_after", ts("2020-01-10T00:00:00Z"), SEEN),
    Temporal("t_intersects", SEEN, date(2020, 1, 7)),
    Compare("<", SEEN, ts("2020-01-10T00:00:00Z")), Compare(">", SEEN, "2020-01-20"),
    Or((Compare(">", S, 40), Like(NAME, "crop%"))),
    And((Compare(">", S, 5), Compare("<", N, 10), Like(NAME, "%0%"))),
    And((Compare(">=", N, 15), Prop("ok"))),
    Compare("=", Prop("no:such"), 1), IsNull(S), Compare("=", S, Prop("stars")),
    And((Temporal("t_intersects", Prop("datetime"), Interval(ts("2019-01-01T00:00:00Z"),
                                                             ts("2019-06-01T00:00:00Z"))),
         Compare("<", N, 8))),
    Temporal("t_during", Prop("datetime"), Interval(ts("2019-01-01T00:00:00Z"),
                                                   ts("2020-06-01T00:00:00Z"))),
]


@pytest.mark.parametrize("expr", PROPERTY_FILTERS, ids=repr)
def test_property_table_answers_as_json_does(mixed, expr):
    """A filter on properties (which, where unknown and false are the same, reads
    item_props) finds what it finds under a double negation (which reads the JSON)."""
    via_props = found(mixed, filter=expr)
    via_json = found(mixed, filter=Not(Not(expr)))
    assert via_props == via_json
    # and combined with conditions on other indexes
    both = found(mixed, filter=expr, collections=["dataset"], bbox=(-90, -60, 60, 60))
    assert both == {i for i in via_json if mixed.items[i]["collection"] == "dataset"} & \
        found(mixed, bbox=(-90, -60, 60, 60))


CONJUNCTIONS = [
    And((Temporal("t_intersects", Prop("datetime"), Interval(ts("2019-01-01T00:00:00Z"),
                                                             ts("2021-06-01T00:00:00Z"))),
         Compare("<", N, 12))),
    And((Temporal("t_intersects", Prop("datetime"), Interval(ts("2020-01-01T00:00:00Z"), None)),
         Compare(">=", S, 3))),
    And((Between(S, 0, 40), Compare(">=", N, 5))),
    And((Compare(">", N, 2), Like(NAME, "%0%"), Compare("<", S, 30))),
]


@pytest.mark.parametrize("expr", CONJUNCTIONS, ids=repr)
@pytest.mark.parametrize("listing", ["lists", "looks up"])
def test_conditions_past_the_estimate_cap_answer_alike(mixed, plans, monkeypatch, expr,
                                                       listing):
    """With estimates capped low, a capped condition is counted further before it is chosen
    to find the rows, and the other property tests are one list of matches or a lookup per
    row: the same answers, counted and paged, as the JSON gives."""
    import sharinghub_server.index.sql_filter as sql_filter

    for module in (sql_filter, sqlite_store):
        monkeypatch.setattr(module, "ESTIMATE_CAP", 10)
    monkeypatch.setattr(sqlite_store, "_COST_LIST_PROPS", 1e-6 if listing == "lists" else 1e9)
    expected = found(mixed, filter=Not(Not(expr)))
    assert 10 < len(expected) < len(mixed.items)
    everything = order(mixed, filter=expr)
    assert set(everything) == expected
    assert mixed.search(Query(limit=3, filter=expr)).matched == len(expected)
    assert paged(mixed, 7, filter=expr) == everything
    by_stars = order(mixed, [("stars", "desc"), ("id", "asc")], filter=expr)
    assert by_stars == sorted(expected, key=lambda i: (-mixed.items[i]["properties"]["stars"],
                                                       i))


def test_conditions_past_the_cap_leaving_few_matches_are_listed_at_once(mixed, monkeypatch):
    """Conditions each past the estimate cap, but leaving few matches between them (counted
    further, as the plan counts them, and taken as independent), are listed by one query
    that both counts and pages; leaving many, or with a date range (a page in date order
    walks the range), they are counted, then paged."""
    import sharinghub_server.index.sql_filter as sql_filter

    for module in (sql_filter, sqlite_store):
        monkeypatch.setattr(module, "ESTIMATE_CAP", 10)
    monkeypatch.setattr(sqlite_store, "_COLLECT_MAX", 60)
    monkeypatch.setattr(sqlite_store, "_DENSE_SCAN", 1)  # (no walk along the date index)
    dataset = found(mixed, collections=["dataset"])
    always = {"datetime": Interval(ts("2010-01-01T00:00:00Z"), ts("2030-01-01T00:00:00Z"))}
    for box_, dated, listed in (((0, -60, 90, 60), {}, True), ((-180, -90, 180, 90), {}, False),
                                ((170, -60, -100, 60), {}, True),
                                ((0, -60, 90, 60), always, False)):
        boxed = found(mixed, bbox=box_)
        want = dataset & boxed & found(mixed, **dated)
        assert len(dataset) > 10 and len(boxed) > 10 and want and (len(want) <= 60 or not listed)
        assert (len(dataset) * len(boxed) <= 60 * len(mixed.items)) == (listed or bool(dated))
        query = {"collections": ["dataset"], "bbox": box_, **dated}
        mixed._cache.clear()
        mixed._rows.clear()
        statements: list[str] = []
        mixed._conn().set_trace_callback(statements.append)  # (this thread's connection)
        page = mixed.search(Query(limit=3, **query))
        mixed._conn().set_trace_callback(None)
        assert any("LIMIT 61" in s for s in statements) == listed
        assert page.matched == len(want)
        got = paged(mixed, 4, **query)
        assert set(got) == want and got == order(mixed, **query)


COLUMN_CONJUNCTIONS = [
    And((Between(S, 0, 20), Compare(">=", N, 5))),
    And((Compare("<", S, 10.5), Compare("<=", N, 7))),
    And((Compare("<=", S, 10), Compare(">", N, 12))),
    And((Compare(">", 10, S), Compare("=", N, 4))),  # (the literal first)
    And((Compare(">=", S, 1.5), Compare("<", S, 30))),  # (one property twice; [1, 2] too)
    And((Compare("=", S, "high"), Compare("<", N, 10))),
    And((Compare(">", S, "h"), Compare("<", N, 16))),  # (texts in order)
    And((Prop("ok"), Compare(">=", N, 15))),
    And((Compare("=", Prop("ok"), False), In(N, (1, 2, 3, 3)))),
    And((In(NAME, ("alpha-01", "beta-02", "crop-05", "river-11")), Compare(">", N, 0))),
    And((Compare(">", SEEN, ts("2020-01-10T00:00:00Z")), Compare("<", N, 10))),
    And((Compare(">", N, 2), Compare("<", S, 30), Prop("ok"))),
    And((Between(S, 20, 10), Compare(">", N, 1))),  # (no value in the range)
    And((Compare("=", Prop("no:such"), 1), Compare(">", N, 1))),  # (a property no item has)
    And((Temporal("t_intersects", Prop("datetime"), Interval(ts("2019-01-01T00:00:00Z"),
                                                             ts("2021-06-01T00:00:00Z"))),
         Compare("<", N, 12))),
    And((Temporal("t_intersects", Interval(ts("2020-01-01T00:00:00Z"), None),
                  Prop("datetime")), Compare(">=", S, 3))),  # (the literal first, open)
    And((Compare(">", N, 4), Temporal("t_intersects", Prop("datetime"),
                                      ts("2019-07-01T00:00:00Z")), Prop("ok"))),
    And((Temporal("t_during", Prop("datetime"), Interval(ts("2019-01-01T00:00:00Z"),
                                                         ts("2021-06-01T00:00:00Z"))),
         Compare("<", N, 12))),  # (SQL: only t_intersects is a date range)
]
#: the ``datetime`` parameter beside a filter
DATED = [(Compare(">=", N, 5), Interval(ts("2019-03-01T00:00:00Z"), None)),
         (Between(S, 0, 40), Interval(None, ts("2020-02-01T00:00:00Z"))),
         (And((Compare("<", N, 9), Compare("=", Prop("ok"), False))),
          Interval(ts("2018-06-01T00:00:00Z"), ts("2021-01-01T00:00:00Z"))),
         (And((Compare("<", N, 9), Temporal("t_intersects", Prop("datetime"), Interval(
             ts("2019-01-01T00:00:00Z"), ts("2020-01-01T00:00:00Z"))))), Interval(None, None))]


@pytest.mark.parametrize("expr,interval", [*((e, None) for e in COLUMN_CONJUNCTIONS), *DATED],
                         ids=repr)
def test_conjunctions_count_from_columns_as_sql_does(mixed, monkeypatch, expr, interval):
    """A conjunction of property tests and date ranges that SQL took long to count (here:
    any) is counted from its columns once they are read in the background: the JSON's count
    either way, the same pages; a write makes SQL count again until the columns are read at
    the new generation."""
    monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 0.0)
    monkeypatch.setattr(columns_module, "_SLICE", 7)  # (the times read in many slices)
    dated = {"datetime": interval} if interval is not None else {}
    # columns: every part is a column test (not t_during) of a property some item has
    columns = "t_during" not in repr(expr) and "no:such" not in repr(expr)

    def sql_counts() -> int:
        """SQL counts of one count of ``expr`` (the result caches emptied)."""
        mixed._cache.clear()
        statements: list[str] = []
        mixed._conn().set_trace_callback(statements.append)  # (this thread's connection)
        try:
            assert mixed.search(Query(limit=0, filter=expr, **dated)).matched == len(expected)
        finally:
            mixed._conn().set_trace_callback(None)
        return len([s for s in statements if s.startswith("SELECT count(")  # (not capped)
                    and not s.startswith("SELECT count(*) FROM (SELECT 1 FROM ")])

    expected = found(mixed, filter=Not(Not(expr)), **dated)
    for write in (False, True):
        if write:  # deleted and changed items: a new generation
            gone = sorted(expected)[:1] + sorted(set(mixed.items) - expected)[:2]
            changed = json.loads(json.dumps(mixed.items[sorted(set(mixed.items) - {*gone})[0]]))
            changed["properties"]["stars"] = 5
            mixed.apply("gitlab", [update(changed)], gone)
            mixed.items = {i: item for i, item in mixed.items.items() if i not in gone}
            mixed.items[changed["id"]] = changed
            expected = found(mixed, filter=Not(Not(expr)), **dated)
        assert sql_counts() == 1  # (meanwhile its columns are read)
        mixed._columns.wait()
        assert sql_counts() == (0 if columns else 1)
        everything = order(mixed, filter=expr, **dated)
        assert set(everything) == expected
        assert paged(mixed, 7, filter=expr, **dated) == everything


def test_first_pages_in_date_order_come_from_held_columns_as_sql_orders_them(store,
                                                                             monkeypatch):
    """Once the columns of a conjunction are held, its first page in date order is the
    passing items nearest that end of the recency keys, with every item of the last one's
    second, sorted by SQL: the same pages as SQL's, however items within one second were
    indexed (not in date order here) and wherever the page ends."""
    seconds = ["2021-05-01T10:00:00.750Z", "2021-05-01T10:00:00Z", "2021-05-01T10:00:00.250Z",
               "2021-05-01T10:00:00.500Z", "2021-05-01T10:00:00.999Z"]
    datetimes = [*seconds, "2021-05-01T10:00:01Z", "2021-05-01T09:59:59.500Z",
                 "2019-01-01T00:00:00Z", "2024-02-02T02:02:02.020Z", None, None,
                 "2021-05-01T09:59:59.900Z", *seconds]
    items = [feature(f"s/{i:02d}", "dataset", dt=dt, geometry=box(0, 0, 1, 1), stars=i % 9,
                     score=i % 4) for i, dt in enumerate(datetimes)]
    for item in items:  # (one write each: the order of indexing within a second)
        store.apply("gitlab", [update(item)], [])
    expr = And((Compare(">=", N, 1), Compare("<=", S, 2)))
    want = {i["id"] for i in items if i["properties"]["stars"] >= 1
            and i["properties"]["score"] <= 2}
    assert 8 < len(want) < len(items)

    def pages() -> dict:
        return {(direction, limit): (store.search(Query(limit=limit, filter=expr, sortby=[
            ("datetime", direction)])), paged(store, limit, filter=expr, sortby=[
                ("datetime", direction)])) for direction in ("desc", "asc")
            for limit in range(1, 12)}

    monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 3600.0)
    by_sql = pages()
    assert set(by_sql[("desc", 11)][1]) == want
    monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 0.0)
    store._cache.clear()
    store.search(Query(limit=0, filter=expr))
    store._columns.wait()
    store._cache.clear()
    store._rows.clear()
    statements: list[str] = []
    store._conn().set_trace_callback(statements.append)  # (this thread's connection)
    by_columns = pages()
    store._conn().set_trace_callback(None)
    assert not [s for s in statements if s.startswith("SELECT count(")  # (not capped)
                and not s.startswith("SELECT count(*) FROM (SELECT 1 FROM ")]
    firsts = [s for s in statements if s.startswith("SELECT items.datetime, ")
              and " FROM items WHERE items.rowid IN (" in s]
    assert len(firsts) == 2 * len(by_sql)  # (each first page, twice: found by the columns)
    for key, (page, everything) in by_sql.items():
        first, all_of_them = by_columns[key]
        assert [i["id"] for i in first.items] == [i["id"] for i in page.items], key
        assert (first.matched, first.next_token) == (page.matched, page.next_token), key
        assert all_of_them == everything, key


@pytest.mark.parametrize("dense", [False, True])
def test_a_collection_in_a_date_range_is_found_from_the_range_or_walked_in_the_collection(
        mixed, monkeypatch, dense):
    """A collection's items in a date range, in date order: found from the range and
    sorted, the collection a test of each row (SQLite would rather walk the collection's
    index in date order, through every newer item); or, dense, walked along that index from
    the range's end: the same pages either way."""
    monkeypatch.setattr(sqlite_store, "_COLLECT_MAX", 0)  # (counted, then paged)
    monkeypatch.setattr(sqlite_store, "_DENSE_SCAN", 10**9 if dense else 1)
    query = {"collections": ["dataset"],
             "datetime": Interval(ts("2018-01-01T00:00:00Z"), ts("2018-06-01T00:00:00Z"))}
    want = found(mixed, collections=["dataset"]) & found(mixed, datetime=query["datetime"])
    assert 3 < len(want) < 100
    statements: list[str] = []
    mixed._conn().set_trace_callback(statements.append)  # (this thread's connection)
    page = mixed.search(Query(limit=3, **query))
    mixed._conn().set_trace_callback(None)
    [select] = [s for s in statements if s.startswith("SELECT items.datetime, items.id")]
    assert ("INDEXED BY items_collection_datetime" in select) == dense
    assert ("+items.collection IN (" in select) == (not dense)
    assert page.matched == len(want)
    got = paged(mixed, 3, **query)
    assert set(got) == want and got == order(mixed, **query)


def test_conjunctions_quick_to_count_by_sql_read_no_columns(mixed, monkeypatch):
    """Columns are read only after SQL took ``_COLUMNS_AFTER`` over a count: a quick count
    leaves nothing to read, and the next count is SQL's again."""
    monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 3600.0)
    expr = And((Between(S, 0, 20), Compare(">=", N, 5)))
    expected = len(found(mixed, filter=Not(Not(expr))))
    for _ in range(2):
        mixed._cache.clear()
        assert mixed.search(Query(limit=0, filter=expr)).matched == expected
        assert mixed._columns._builder is None and not mixed._columns._wanted
    monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 0.0)
    mixed._cache.clear()
    assert mixed.search(Query(limit=0, filter=expr)).matched == expected
    mixed._columns.wait()
    generation = mixed._generation(mixed._conn())
    tests = mixed._column_tests(mixed._conn(),
                                sqlite_store.compile_filter(expr, sqlite_store.Binder()))
    assert mixed._columns.count(generation, tests) == expected


def traced_count(store, **query) -> tuple[int, list[str]]:
    """(the match count of one search, the statements it ran), the result caches emptied."""
    store._cache.clear()
    statements: list[str] = []
    store._conn().set_trace_callback(statements.append)  # (this thread's connection)
    try:
        matched = store.search(Query(limit=0, **query)).matched
    finally:
        store._conn().set_trace_callback(None)
    return matched, statements


def sql_counts(statements: list[str]) -> list[str]:
    """The counts by SQL among ``statements`` (not the capped counts of estimates)."""
    return [s for s in statements if s.startswith("SELECT count(")
            and not s.startswith("SELECT count(*) FROM (SELECT 1 FROM ")]


def sql_counted(store, expr, **query) -> tuple[int, int]:
    """(the match count of one search of ``expr``, how many counts SQL ran for it)."""
    matched, statements = traced_count(store, filter=expr, **query)
    return matched, len(sql_counts(statements))


def test_a_reopened_store_warms_up_the_columns_it_held_before(mixed, tmp_path, monkeypatch):
    """The columns a store held are remembered beside the index, by property name: reopened,
    its warm-up reads them again in the background, and the first counts that need them are
    the columns' (no SQL count, though SQL is never slow enough here to have them read);
    a write later makes SQL count again, as for columns read on demand."""
    monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 0.0)
    stars_and_score = And((Compare(">=", N, 5), Compare("<", S, 30)))
    dated = {"datetime": Interval(ts("2018-06-01T00:00:00Z"), ts("2021-01-01T00:00:00Z"))}
    ok_and_stars = And((Prop("ok"), Compare("<=", N, 9)))
    expected = {expr: sql_counted(mixed, expr, **query)[0] for expr, query in
                ((stars_and_score, dated), (ok_and_stars, {}))}
    mixed._columns.wait()
    memory = tmp_path / "index" / "catalog.sqlite-columns.json"
    held = json.loads(memory.read_text())["held"]
    assert sorted(map(str, held)) == sorted(map(str, [
        ["stars", KIND_NUMBER], ["score", KIND_NUMBER], "dates", ["ok", KIND_BOOLEAN]]))
    path, items = mixed.path, mixed.items
    mixed.close()

    monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 3600.0)  # (never read on demand)
    monkeypatch.setattr(sqlite_store, "_MAINTENANCE_DELAY", 3600.0)  # (it reads them again)
    again = open_store(f"sqlite:///{path}")
    try:
        assert sql_counted(again, ok_and_stars) == (expected[ok_and_stars], 1)  # (cold)
        assert again._columns._builder is None
        assert again.warm_up()[0] == 4
        again._columns.wait()
        for expr, query in ((stars_and_score, dated), (ok_and_stars, {})):
            assert sql_counted(again, expr, **query) == (expected[expr], 0)
        gone = sorted(items)[:3]
        again.apply("gitlab", [], gone)
        left = {i: item for i, item in items.items() if i not in gone}
        assert sql_counted(again, ok_and_stars) == (len([
            i for i in left.values() if i["properties"].get("ok") is True
            and i["properties"]["stars"] <= 9]), 1)
        again._columns.want_words(["alpha"])  # (words alone read at the new generation)
        again._columns.wait()
        remembered = json.loads(memory.read_text())["held"]
        assert sorted(map(str, remembered)) == sorted(map(str, held))  # (as they were)
    finally:
        again.close()


def test_what_a_store_held_is_read_again_once_its_writes_are_maintained(mixed, monkeypatch):
    """Held columns and words describe one generation. Once a crawl's writes are over (their
    maintenance, a few seconds after the last), what was held is read again in the
    background: the next counts are the columns' and words' (no SQL count, none slow enough
    to want them), of the items the writes left, not of those before."""
    monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 0.0)  # (SQL wants them at once)
    monkeypatch.setattr(sqlite_store, "_MAINTENANCE_DELAY", 3600.0)  # (maintained when called)
    mixed.maintain()  # (then the fixture's writes' timer, if it fires, finds nothing due)
    ok_and_stars = And((Prop("ok"), Compare("<=", N, 9)))
    worded = {"q": ["alpha"], "bbox": (-100, -60, 60, 50)}
    sql_counted(mixed, ok_and_stars)
    mixed._columns.want_words(["alpha"])
    mixed._columns.wait()
    assert sql_counted(mixed, ok_and_stars)[1] == 0
    assert any(s.startswith("SELECT group_concat(") for s in traced_count(mixed, **worded)[1])

    monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 3600.0)  # (never wanted by SQL now)
    gone = [i for i, item in sorted(mixed.items.items())
            if item["properties"].get("ok") is True][:5]
    changed = copy.deepcopy(next(item for i, item in sorted(mixed.items.items())
                                 if item["properties"].get("ok") is not True))
    changed["properties"].update(ok=True, stars=0, title="alpha")
    mixed.apply("gitlab", [update(changed)], gone)
    left = {i: item for i, item in mixed.items.items() if i not in gone} | {
        changed["id"]: changed}
    expected = len([i for i in left.values() if i["properties"].get("ok") is True
                    and i["properties"]["stars"] <= 9])
    assert sql_counted(mixed, ok_and_stars) == (expected, 1)  # (held for the old generation)
    by_sql, statements = traced_count(mixed, **worded)
    assert not any(s.startswith("SELECT group_concat(") for s in statements)

    mixed.maintain()
    mixed._columns.wait()
    assert sql_counted(mixed, ok_and_stars) == (expected, 0)
    matched, statements = traced_count(mixed, **worded)
    assert any(s.startswith("SELECT group_concat(") for s in statements)
    assert matched == by_sql


def test_what_was_held_before_a_newer_generation_held_less_is_read_again(mixed, tmp_path,
                                                                          monkeypatch):
    """Mid-crawl, a slow count has one column read at a newer generation, which then holds
    that one alone: the refresh after the writes reads again every column held recently,
    and the memory beside the index still names them all."""
    monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 3600.0)  # (never wanted by SQL)
    monkeypatch.setattr(sqlite_store, "_MAINTENANCE_DELAY", 3600.0)
    mixed.maintain()  # (then the fixture's writes' timer, if it fires, finds nothing due)
    conn = mixed._conn()

    def tests_of(expr):
        return mixed._column_tests(conn, sqlite_store.compile_filter(expr, sqlite_store.Binder()))

    ok_and_stars = tests_of(And((Prop("ok"), Compare("<=", N, 9))))
    stars_and_score = tests_of(And((Compare(">=", N, 5), Compare("<", S, 30))))
    mixed._columns.want(ok_and_stars)
    mixed._columns.wait()
    first = sorted(mixed.items)[0]
    mixed.apply("gitlab", [update(mixed.items[first])], [])  # (a new generation)
    mixed._columns.want(stars_and_score[1:])  # (the score alone, as a slow count would)
    mixed._columns.wait()
    generation = mixed._generation(conn)
    assert mixed._columns.holds(generation, stars_and_score[1:])
    assert not mixed._columns.holds(generation, ok_and_stars)
    memory = tmp_path / "index" / "catalog.sqlite-columns.json"
    remembered = sorted(map(str, [
        ["ok", KIND_BOOLEAN], ["stars", KIND_NUMBER], ["score", KIND_NUMBER]]))
    assert sorted(map(str, json.loads(memory.read_text())["held"])) == remembered

    mixed.apply("gitlab", [update(mixed.items[first])], [])
    mixed.maintain()
    mixed._columns.wait()
    assert mixed._columns.holds(mixed._generation(conn), ok_and_stars + stars_and_score)
    assert sorted(map(str, json.loads(memory.read_text())["held"])) == remembered


def test_words_wanted_together_are_read_in_order_up_to_max_words(mixed, monkeypatch):
    """Words wanted together are read in the order wanted, ``MAX_WORDS`` of them: a refresh
    gives the most frequent first, and reads no word it would then drop."""
    monkeypatch.setattr(columns_module, "MAX_WORDS", 3)
    read, read_word = [], columns_module._read_word

    def reading(conn, word, *args):
        read.append(word)
        return read_word(conn, word, *args)

    monkeypatch.setattr(columns_module, "_read_word", reading)
    mixed._columns.want_words(["urban", "alpha", "river", "delta", "flood"])
    mixed._columns.wait()
    assert read == ["urban", "alpha", "river"]
    generation = mixed._generation(mixed._conn())
    assert mixed._columns.holds(generation, [], ["urban", "alpha", "river"])


@pytest.mark.parametrize("warmed", [True, False])
def test_a_warmed_up_store_holds_the_most_frequent_words_again_after_writes(
        tmp_path, monkeypatch, warmed):
    """A server's warm-up usually comes before its first crawl ends (an empty index then, no
    words to hold). A store warmed up picks the most frequent words again at each
    maintenance after writes, and has their items read; one never warmed up (the server's
    warm-up off) reads none."""
    monkeypatch.setattr(columns_module, "MAX_WORDS", 3)
    monkeypatch.setattr(sqlite_store, "MAX_WORDS", 3)
    monkeypatch.setattr(sqlite_store, "_MAINTENANCE_DELAY", 3600.0)  # (maintained when called)
    store = open_store(f"sqlite:///{tmp_path}/index/catalog.sqlite")
    try:
        if warmed:
            assert store.warm_up() == (0, 0)  # (nothing yet)
        items = mixed_items(400)
        store.apply("gitlab", [update(item) for item in items], [])
        store.maintain()
        store._columns.wait()
        counts = dict(store._conn().execute("SELECT term, n FROM term_docs"))
        frequent = sorted(counts, key=lambda w: (-counts[w], w))
        assert counts[frequent[3]] < counts[frequent[2]]  # (the 3 most frequent: no tie)
        generation = store._generation(store._conn())
        assert all(store._columns.holds(generation, [], [word]) == warmed
                   for word in frequent[:3])
        assert not store._columns.holds(generation, [], frequent[3:4])

        # a rarer word held on demand: after the next writes, read again as well, but the
        # frequent words come first (MAX_WORDS in all)
        store._columns.want_words([frequent[3]])
        store._columns.wait()
        store.apply("gitlab", [update(items[0])], [])  # (the same item: a new generation)
        store.maintain()
        store._columns.wait()
        generation = store._generation(store._conn())
        assert all(store._columns.holds(generation, [], [word]) == warmed
                   for word in frequent[:3])
        assert store._columns.holds(generation, [], frequent[3:4]) == (not warmed)
    finally:
        store.close()


#: a box of every item with one
WORLD = (-180, -90, 180, 90)
#: free text of words with other conditions: (q, bbox, datetime, filter, collections)
WORDED = [
    (["flood"], (-100, -60, 60, 50), (ts("2018-06-01T00:00:00Z"), ts("2021-01-01T00:00:00Z")),
     None, None),
    (["crop", "RIVER"], (150, -70, -120, 60), (ts("2019-01-01T00:00:00Z"), None), None, None),
    (["urban"], (-170, -80, 0, 80), None, Compare(">=", N, 5), None),
    (["alpha"], (-120, -50, 120, 50), None, Like(NAME, "%1%"), ["dataset"]),
    (["beta", "gamma"], (0, -80, 179, 80), (None, ts("2020-01-01T00:00:00Z")),
     Between(S, 0, 30), None),
    (["delta"], None, (ts("2018-06-01T00:00:00Z"), ts("2022-01-01T00:00:00Z")),
     Compare("<", N, 9), None),  # (every part held: no listing either)
    (["alpha beta"], (-100, -60, 60, 50), None, None, None),  # (a phrase: SQL counts)
    (["flood"], WORLD, None, None, None),  # (the box has more items than the word: SQL)
]


@pytest.mark.parametrize("q,bbox,dates,expr,collections", WORDED, ids=repr)
def test_free_text_of_held_words_counts_among_other_conditions_as_sql_does(
        mixed, monkeypatch, q, bbox, dates, expr, collections):
    """Once the items of free text's words are held (and the columns of the other conditions
    that have one), a count of the text and other conditions lists the items of the
    conditions without held columns by SQL and tests them against the held: SQL's count
    (the JSON's), before and after a write, and the same pages."""
    query: dict = {"q": q}
    if bbox is not None:
        query["bbox"] = bbox
    if dates is not None:
        query["datetime"] = Interval(*dates)
    if expr is not None:
        query["filter"] = expr
    if collections is not None:
        query["collections"] = collections
    # how it is counted once held: the box's items listed (the one part not held), every item
    # (all parts held), or by SQL (a phrase, a box with more items than the word)
    path = "sql" if " " in q[0] or bbox == WORLD else "all" if bbox is None else "listed"

    for write in (False, True):
        if write:  # deleted and changed items: a new generation
            gone = sorted(mixed.items)[::7]
            mixed.apply("gitlab", [], gone)
            mixed.items = {i: item for i, item in mixed.items.items() if i not in gone}
        # (words counted from term_docs, as after any write's maintenance, which also reads
        # again what was held)
        mixed.maintain()
        mixed._columns.wait()
        expected = found(mixed, **query)
        assert len(expected) > 2, query
        if not write:
            monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 0.0)  # (any SQL count: held)
            matched, statements = traced_count(mixed, **query)
            assert matched == len(expected)
            assert not any("group_concat(" in s for s in statements)  # (nothing held yet)
            mixed._columns.wait()
        monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 3600.0)
        matched, statements = traced_count(mixed, **query)
        assert matched == len(expected)
        lists = [s for s in statements if s.startswith("SELECT group_concat(")]
        counts = sql_counts(statements)
        assert (len(lists), bool(counts)) == {"listed": (1, False), "all": (0, False),
                                              "sql": (0, True)}[path], counts
        assert paged(mixed, 7, **query) == order(mixed, **query)


@pytest.mark.parametrize("query", [
    {"bbox": (-100, -60, 60, 50), "filter": Not(Compare(">=", N, 5))},
    {"bbox": (-100, -60, 60, 50), "filter": Compare("<", S, Prop("stars"))},
    {"intersects": box(-100, -60, 60, 50)},
    {"intersects": box(-100, -60, 60, 50), "bbox": (-120, -70, 0, 70)},
], ids=repr)
def test_free_text_of_held_words_with_tests_of_the_json_counts_by_sql(mixed, query):
    """Free text of held words with conditions that SQL tests on the items' JSON (a NOT, a
    property against a property, a geometry) is counted by SQL, which reads the JSON once:
    SQL's count, no error."""
    query = {"q": ["flood"], **query}
    expected = len(found(mixed, **query))  # (nothing held yet)
    assert expected > 2
    mixed.maintain()
    assert mixed.warm_up()[1] > 0
    mixed._columns.wait()
    assert mixed._columns.holds(mixed._generation(mixed._conn()), [], ["flood"])
    matched, statements = traced_count(mixed, **query)
    assert matched == expected and sql_counts(statements)


def test_closing_the_store_stops_a_read_of_words_between_its_statements(mixed, monkeypatch):
    """A word's items are read a slice at a time, in many short statements, between which
    the store's close (interrupting the statement running) may fall: the read stops at the
    next one, and nothing is held."""
    monkeypatch.setattr(columns_module, "_SLICE", 1)  # (a statement per item)
    reading, release, lists = threading.Event(), threading.Event(), []
    integers = columns_module._integers

    def parsed(text):
        lists.append(text)
        if len(lists) == 3:  # (every rowid, then a word's first two slices)
            reading.set()
            release.wait(30)
        return integers(text)

    monkeypatch.setattr(columns_module, "_integers", parsed)
    mixed._columns.want_words(["flood", "crop"])
    assert reading.wait(30)
    builder = mixed._columns._builder
    mixed.close()
    read = len(lists)
    release.set()
    builder.join(30)
    assert not builder.is_alive()
    assert len(lists) == read  # (no statement after the close)
    assert not mixed._columns._words
    mixed._columns.want_words(["urban"])  # (closed: nothing more is read)
    assert mixed._columns._builder is None


def test_columns_read_again_with_words_are_held_before_the_words_are_read(mixed, monkeypatch):
    """Columns and words read again together after writes are read in two parts, the
    columns first: counts of properties use them while the words, much longer to read,
    are still being read."""
    monkeypatch.setattr(sqlite_store, "_COLUMNS_AFTER", 3600.0)  # (never wanted by SQL)
    monkeypatch.setattr(sqlite_store, "_MAINTENANCE_DELAY", 3600.0)
    mixed.maintain()  # (then the fixture's writes' timer, if it fires, finds nothing due)
    ok_and_stars = And((Prop("ok"), Compare("<=", N, 9)))
    expected = sql_counted(mixed, ok_and_stars)[0]
    tests = mixed._column_tests(mixed._conn(),
                                sqlite_store.compile_filter(ok_and_stars, sqlite_store.Binder()))
    mixed._columns.want(tests)
    mixed._columns.wait()
    first = sorted(mixed.items)[0]
    mixed.apply("gitlab", [update(mixed.items[first])], [])  # (the same: a new generation)
    assert sql_counted(mixed, ok_and_stars) == (expected, 1)

    reading, release = threading.Event(), threading.Event()
    read_word = columns_module._read_word

    def slow_word(*args, **kwargs):
        reading.set()
        release.wait(30)
        return read_word(*args, **kwargs)

    monkeypatch.setattr(columns_module, "_read_word", slow_word)
    mixed._columns.refresh(["alpha"])
    try:
        assert reading.wait(30)
        assert sql_counted(mixed, ok_and_stars) == (expected, 0)  # (the columns, held)
        assert not mixed._columns.holds(mixed._generation(mixed._conn()), [], ["alpha"])
    finally:
        release.set()
    mixed._columns.wait()
    assert mixed._columns.holds(mixed._generation(mixed._conn()), tests, ["alpha"])


def test_the_warm_up_holds_the_items_of_the_most_frequent_words(mixed, monkeypatch):
    """The warm-up reads the items of the words in at least ``_WORD_SHARE`` of the items (the
    ``MAX_WORDS`` most frequent), so that the first searches of these words with a box
    need no IN list of their matches."""
    monkeypatch.setattr(columns_module, "MAX_WORDS", 3)
    monkeypatch.setattr(sqlite_store, "MAX_WORDS", 3)
    mixed.maintain()
    counts = dict(mixed._conn().execute("SELECT term, n FROM term_docs"))
    frequent = sorted(counts, key=lambda w: (-counts[w], w))
    assert counts[frequent[3]] < counts[frequent[2]]  # (the 3 most frequent: no tie)
    assert mixed.warm_up() == (0, 3)
    mixed._columns.wait()
    generation = mixed._generation(mixed._conn())
    assert mixed._columns.holds(generation, [], frequent[:3])
    assert not mixed._columns.holds(generation, [], frequent[3:4])
    for word in frequent[:4]:
        query = {"q": [word], "bbox": (-100, -60, 60, 50)}
        matched, statements = traced_count(mixed, **query)
        assert matched == len(found(mixed, **query))
        assert any(s.startswith("SELECT group_concat(") for s in statements) == (
            word in frequent[:3])
        statements.clear()  # (asked again, a next page's count: remembered, either way)
        mixed._conn().set_trace_callback(statements.append)
        try:
            assert mixed.search(Query(limit=0, **query)).matched == matched
        finally:
            mixed._conn().set_trace_callback(None)
        assert not [s for s in statements
                    if s.startswith(("SELECT group_concat(", "SELECT count("))]
    monkeypatch.setattr(sqlite_store, "_WORD_SHARE", 1.0)  # (no word is in every item)
    monkeypatch.setattr(sqlite_store, "_MAINTENANCE_DELAY", 3600.0)  # (it reads them again)
    mixed.apply("gitlab", [], sorted(mixed.items)[:1])  # (a new generation: nothing held)
    assert mixed.warm_up() == (0, 0)
    mixed._columns.wait()
    assert not mixed._columns.holds(mixed._generation(mixed._conn()), [], frequent[:1])


@pytest.mark.parametrize("memory", [
    "{not json", '{"held": 3}', '["dates"]',
    json.dumps({"held": [["no:such", KIND_BOOLEAN], ["ok", str(KIND_BOOLEAN)], ["ok"], 7, None,
                         "dates", ["ok", KIND_BOOLEAN]]})])
def test_a_warm_up_reads_only_what_its_memory_names_well(mixed, memory):
    """A memory file that is not what the store writes (edited, truncated, of another index)
    holds nothing it cannot name: a property no item has, a malformed entry; the server's
    warm-up never fails for it."""
    file = Path(mixed.path).with_name(Path(mixed.path).name + "-columns.json")
    file.write_text(memory)
    held, _ = mixed.warm_up()
    mixed._columns.wait()
    assert held == (2 if "dates" in memory and "held" in memory else 0)
    generation = mixed._generation(mixed._conn())
    expr = And((Prop("ok"), Temporal("t_intersects", Prop("datetime"), Interval(
        ts("2018-06-01T00:00:00Z"), ts("2022-01-01T00:00:00Z")))))
    tests = mixed._column_tests(mixed._conn(),
                                sqlite_store.compile_filter(expr, sqlite_store.Binder()))
    counted = mixed._columns.count(generation, tests)
    assert (counted is not None) == bool(held)
    if held:
        assert counted == len(found(mixed, filter=Not(Not(expr))))


@pytest.mark.parametrize("expr,walks", [
    (And((Compare(">=", N, 5), Compare("<", S, 30))), True),
    (And((Compare(">", N, 2), Prop("ok"), Compare(">=", S, 0))), True),
    (And((Temporal("t_intersects", Prop("datetime"), Interval(ts("2018-06-01T00:00:00Z"),
                                                             ts("2022-01-01T00:00:00Z"))),
          Compare(">", N, 3))), True),
    (And((Compare("<=", N, 3), Compare("<", S, 12))), False),  # (few: found, sorted)
    (And((Compare(">", N, 2), Like(NAME, "%0%"))), False),  # (a LIKE: not costed)
])
@pytest.mark.parametrize("limit", [3, 8])
def test_pages_of_conjunctions_walk_the_date_index_when_that_costs_less(
        mixed, monkeypatch, expr, walks, limit):
    """Beyond the rows a page may walk by default, a page of property tests and date ranges
    in date order still walks the datetime index when every condition has more matches than
    would make finding them cost as much: the same pages either way."""
    expected = order(mixed, [("datetime", "desc")], filter=Not(Not(expr)))  # (the JSON's)
    assert len(expected) > limit
    monkeypatch.setattr(sqlite_store, "_DENSE_SCAN", 1)  # (the default walks no page here)
    monkeypatch.setattr(sqlite_store, "_COLLECT_MAX", 0)  # (nor lists every match)
    statements: list[str] = []
    mixed._conn().set_trace_callback(statements.append)  # (this thread's connection)
    try:
        assert paged(mixed, limit, filter=expr, sortby=[("datetime", "desc")]) == expected
    finally:
        mixed._conn().set_trace_callback(None)
    pages = [s for s in statements if s.startswith("SELECT items.datetime, items.id")]
    assert pages and all(("INDEXED BY items_datetime" in s) == walks for s in pages)


def test_property_table_follows_writes(mixed):
    before = found(mixed, filter=Compare(">", N, 10))
    some = sorted(before)[:5]
    mixed.apply("gitlab", [], some)  # deleted
    changed = json.loads(json.dumps(mixed.items[sorted(before)[5]]))
    changed["properties"]["stars"] = 0
    mixed.apply("gitlab", [update(changed)], [])
    assert found(mixed, filter=Compare(">", N, 10)) == before - set(some) - {changed["id"]}
    assert found(mixed, filter=Compare("=", N, 0)) >= {changed["id"]}


def reference_order(items: dict, name: str, direction: str) -> list[str]:
    """Items by one property the way SQLite orders it (NULL, numbers - booleans are 0 and 1 -,
    texts), ties by id."""
    def key(item_id):
        value = items[item_id]["properties"].get(name)
        if value is None:
            return (0, 0, item_id)
        if isinstance(value, (bool, int, float)):
            return (1, value, item_id)
        return (2, value, item_id)
    ordered = sorted(items, key=key)
    return ordered if direction == "asc" else ordered[::-1]


@pytest.mark.parametrize("name", ["stars", "label", "ok"])
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_sorting_by_a_property_walks_its_values(mixed, name, direction):
    """One JSON type: the item_props index, in order (with the items without the property
    first ascending, last descending)."""
    expected = reference_order(mixed.items, name, direction)
    assert order(mixed, [(name, direction)]) == expected
    assert paged(mixed, 37, sortby=[(name, direction)]) == expected
    # a filter leaving few matches: those sorted
    subset = found(mixed, filter=Compare("<", N, 3))
    assert order(mixed, [(name, direction)], filter=Compare("<", N, 3)) == \
        [i for i in expected if i in subset]


def test_sorting_by_a_property_of_several_types_still_sorts(mixed):
    """Several JSON types: the JSON values, in SQLite's order of types."""
    for name in ("score", "name", "seen"):
        up = order(mixed, [(name, "asc")])
        assert up == order(mixed, [(name, "desc")])[::-1]
        assert paged(mixed, 50, sortby=[(name, "desc")]) == up[::-1]


@pytest.fixture(params=["listed", "paged"])
def plans(request, monkeypatch):
    """Both ways of answering: all matches listed by one query when there are few (its
    length the count, a page a slice), or counted, then read page by page."""
    if request.param == "paged":
        monkeypatch.setattr(sqlite_store, "_COLLECT_MAX", 0)
    return request.param


@pytest.mark.parametrize("query", [
    {"filter": Compare("<", Prop("stars"), 6)},
    {"filter": Compare("<", Prop("stars"), 6), "sortby": [("stars", "desc"), ("id", "asc")]},
    {"collections": ["dataset"], "sortby": [("label", "asc")]},
    {"bbox": (-100, -50, 100, 50), "sortby": [("datetime", "asc")]},
    {"datetime": Interval(ts("2019-01-01T00:00:00Z"), ts("2020-01-01T00:00:00Z"))},
    {"q": ["river"], "sortby": [("end_datetime", "desc")]},
    {"q": ["river"]},
    {"q": ["river"], "filter": Compare(">", Prop("stars"), 12)},
])
def test_both_plans_page_alike(mixed, plans, query):
    everything = order(mixed, **query)
    assert everything and len(everything) == len(set(everything))
    for limit in (1, 9):
        assert paged(mixed, limit, **query) == everything


@pytest.mark.parametrize("bm25_max", [3000, 0])
def test_free_text_with_a_date_range_reads_only_its_recency_keys(mixed, plans, monkeypatch,
                                                                  bm25_max):
    """Rowids are recency keys: the FTS index is read in the date range's rowids only."""
    monkeypatch.setattr(sqlite_store, "_BM25_MAX", bm25_max)  # bm25, or fields and recency
    ranked = order(mixed, q=["river"])
    # intervals ending or starting on matches' own seconds
    edges = [ts(mixed.items[i]["properties"].get("start_datetime") or
                mixed.items[i]["properties"]["datetime"])
             for i in ranked if item_bounds(mixed.items[i])][:6]
    for interval in [Interval(ts("2019-01-01T00:00:00Z"), ts("2019-06-01T00:00:00Z")),
                     Interval(ts("2022-06-01T00:00:00Z"), None),
                     Interval(None, ts("2018-03-01T00:00:00Z")),
                     *(Interval(t, t) for t in edges),
                     *(Interval(t - timedelta(hours=1), t) for t in edges),
                     *(Interval(t, None) for t in edges)]:
        want = found(mixed, q=["river"]) & found(mixed, datetime=interval)
        got = order(mixed, q=["river"], datetime=interval)
        assert got == [i for i in ranked if i in want]
        assert paged(mixed, 4, q=["river"], datetime=interval) == got
        assert paged(mixed, 3, q=["river"], datetime=interval, bbox=(-120, -60, 120, 60)) == \
            [i for i in got if i in found(mixed, bbox=(-120, -60, 120, 60))]


def fields_corpus(store):
    """Items where a word is in the title, the keywords or only the description."""
    rows = [  # id, where "flood" is, datetime
        ("t/old", "title", "2020-01-01T00:00:00Z"),
        ("t/new", "title", "2022-01-01T00:00:00Z"),
        ("t/both", "title keywords", "2018-01-01T00:00:00Z"),
        ("k/one", "keywords", "2023-01-01T00:00:00Z"),
        ("d/new", "description", "2024-01-01T00:00:00Z"),
        ("d/old", "description", "2019-01-01T00:00:00Z"),
        ("d/undated", "description", None),
        ("n/none", "", "2021-01-01T00:00:00Z"),
    ]
    items = []
    for item_id, where, dt in rows:
        items.append(feature(
            item_id, "dataset", dt=dt, geometry=box(0, 0, 1, 1),
            title=("Flood maps " if "title" in where else "Maps ") + item_id,
            keywords=["flood"] if "keywords" in where else ["maps"],
            description=("Flooding; flood extent." if "description" in where else "Rivers."),
        ))
    store.apply("gitlab", [update(item) for item in items], [])
    return ["t/new", "t/old", "t/both", "k/one", "d/new", "d/old", "d/undated"]


def test_common_words_rank_by_field_then_recency(store, monkeypatch):
    expected = fields_corpus(store)
    monkeypatch.setattr(sqlite_store, "_BM25_MAX", 2)  # "flood" is a common word here
    assert order(store, q=["flood"]) == expected
    for limit in (1, 2, 3):
        assert paged(store, limit, q=["flood"]) == expected
    # with other conditions: the same order, of fewer items
    assert order(store, q=["flood"], bbox=(0, 0, 1, 1), ids=expected[1:]) == expected[1:]
    assert order(store, q=["flood"], filter=Compare("<>", Prop("title"), "x")) == expected
    # terms OR-ed: matching any in a field is matching in that field
    assert order(store, q=["flood", "rivers"]) == \
        ["t/new", "t/old", "t/both", "k/one", "d/new", "n/none", "d/old", "d/undated"]
    assert order(store, q=["maps"])[:3] == ["d/new", "k/one", "t/new"]  # all in titles
    page = store.search(Query(q=["flood"], limit=3))
    assert page.matched == 7
    # a token keeps the ranking of its first page, whatever the number of matches now
    monkeypatch.setattr(sqlite_store, "_BM25_MAX", 1000)
    rest = store.search(Query(q=["flood"], limit=10, token=page.next_token))
    assert [i["id"] for i in page.items + rest.items] == expected
    # while a new search ranks by bm25 (title hits first all the same: they weigh most)
    assert set(order(store, q=["flood"])[:3]) == {"t/new", "t/old", "t/both"}


def test_ranking_by_field_looks_up_few_items(store, monkeypatch):
    """Other conditions leaving few items: those looked up in the FTS index, same order."""
    expected = fields_corpus(store)
    monkeypatch.setattr(sqlite_store, "_BM25_MAX", 0)
    monkeypatch.setattr(sqlite_store, "_COST_PROBE", 0.0)  # lookups, however few the items
    filtered = {"datetime": Interval(ts("2019-06-01T00:00:00Z"), None)}
    want = [i for i in expected if i in found(store, **filtered)]
    assert order(store, q=["flood"], **filtered) == want
    assert paged(store, 1, q=["flood"], **filtered) == want
    monkeypatch.setattr(sqlite_store, "_COLLECT_MAX", 0)
    assert paged(store, 2, q=["flood"], **filtered) == want


def test_one_word_counts_come_from_token_counts_after_maintenance(mixed):
    words = ["river", "RIVER", "crop", "nope", "NOT", "and", "or"]
    fts = {w: mixed.search(Query(q=[w], limit=0)).matched for w in words}
    assert fts["river"] == fts["RIVER"] > 0 and fts["nope"] == 0
    before = order(mixed, q=["river"])
    mixed.maintain()
    assert {w: mixed.search(Query(q=[w], limit=0)).matched for w in words} == fts
    assert order(mixed, q=["river"]) == paged(mixed, 7, q=["river"]) == before
    # a write makes the counts stale: searches count from the FTS index again
    gone = sorted(found(mixed, q=["river"]))[:3]
    mixed.apply("gitlab", [], gone)
    assert mixed.search(Query(q=["river"], limit=0)).matched == fts["river"] - 3
    mixed.maintain()
    assert mixed.search(Query(q=["river"], limit=0)).matched == fts["river"] - 3
    assert found(mixed, q=["river"]) == found(mixed, q=["river", "nope"])


@pytest.mark.parametrize("words", [["river", "crop"], ["river", "RIVER"], ["flood", "nope"],
                                   ["nope", "nada"], ["alpha", "m"], ["Beta", "urban"],
                                   ["or", "NOT"]])
def test_two_word_counts_come_from_token_counts_less_the_items_with_both(mixed, words):
    """After maintenance, either of two words is counted as both words' counts less the items
    with both: the same count, order and pages as the FTS index's own count of either, and as
    the union of the one-word searches; stale counts after a write are not used."""
    either = found(mixed, q=[words[0]]) | found(mixed, q=[words[1]])
    fts = mixed.search(Query(q=words, limit=0)).matched
    ranked, by_date = order(mixed, q=words), order(mixed, q=words, sortby=[("datetime", "desc")])
    assert fts == len(either) and set(ranked) == either
    mixed.maintain()
    statements: list[str] = []
    mixed._conn().set_trace_callback(statements.append)  # (this thread's connection)
    assert mixed.search(Query(q=words, limit=0)).matched == fts
    mixed._conn().set_trace_callback(None)
    assert any("term_docs" in s and " AND " in s and "MATCH" in s for s in statements)
    assert order(mixed, q=words) == paged(mixed, 7, q=words) == ranked
    assert order(mixed, q=words, sortby=[("datetime", "desc")]) == by_date
    assert paged(mixed, 5, q=words, sortby=[("datetime", "desc")]) == by_date
    gone = sorted(either)[:2]
    mixed.apply("gitlab", [], gone)
    assert mixed.search(Query(q=words, limit=0)).matched == fts - len(gone)
    mixed.maintain()
    assert mixed.search(Query(q=words, limit=0)).matched == fts - len(gone)


@pytest.mark.parametrize("bm25_max", [0, 4, 1000])
def test_ranked_phrases_rank_alike_with_the_token_counts_bound(mixed, monkeypatch, bm25_max):
    """A ranked search whose phrases' rarest tokens are in at most ``_BM25_MAX`` items ranks
    by bm25 without counting its matches first (the token counts bound them); the same pages
    as when the counts are stale and the FTS index is read."""
    monkeypatch.setattr(sqlite_store, "_BM25_MAX", bm25_max)
    queries = [["river crop"], ["crop-river alpha"], ["flood", "beta gamma"], ["nope river"],
               ["urban", "Delta   URBAN"], ["café river"], ["river", "-"], ["alpha beta gamma"]]
    stale = {tuple(q): (order(mixed, q=q), paged(mixed, 3, q=q)) for q in queries}
    mixed.maintain()
    counted: list[str] = []
    for q in queries:
        statements: list[str] = []
        mixed._conn().set_trace_callback(statements.append)  # (this thread's connection)
        assert (order(mixed, q=q), paged(mixed, 3, q=q)) == stale[tuple(q)], q
        mixed._conn().set_trace_callback(None)
        counted += [s for s in statements if f"LIMIT {bm25_max + 1})" in s]
    # the bound spared the capped counts of the phrases it bounds: "nope river" (0) always,
    # and every ASCII one when _BM25_MAX is above the whole corpus
    assert not any("nope river" in s for s in counted)
    if bm25_max == 1000:
        assert all("café" in s for s in counted)


@pytest.mark.parametrize("q", [["river crop"], ["alpha beta"], ["flood", "beta gamma"],
                               ["urban delta"], ["nope river"]])
def test_a_ranked_search_of_free_text_alone_reads_its_matches_once_to_count(mixed, monkeypatch,
                                                                             q):
    """Free text alone, ranked: its matches are read once to count them and pick bm25 (at
    most ``_BM25_MAX`` matches) or fields then recency, with no count capped at
    ``_BM25_MAX`` first, which read the same postings again when there were more. When its
    matches among the newest items say they are few, the one statement that scores them all
    is that count (bm25 reads them once more to weigh the phrases, whatever the statement)."""
    n = len(found(mixed, q=q))
    bm25 = f"SELECT {sqlite_store._BM25}, items_fts.rowid FROM items_fts WHERE"
    # at most n matches among the sampled items: always "few" once the bm25 limit, scaled
    # to the sample, reaches n (the sample holds at least _SAMPLE_SHARE of the items)
    sure = math.ceil(n / sqlite_store._SAMPLE_SHARE) + 1
    for bm25_max in (n - 1, n, sure):
        monkeypatch.setattr(sqlite_store, "_BM25_MAX", bm25_max)
        mixed._cache.clear()
        mixed._rows.clear()
        statements: list[str] = []
        mixed._conn().set_trace_callback(statements.append)  # (this thread's connection)
        page = mixed.search(Query(q=q, limit=2))
        mixed._conn().set_trace_callback(None)
        assert page.matched == n
        counts = [s for s in statements if s.startswith("SELECT count(*) FROM items_fts")]
        assert all("LIMIT" not in s for s in counts)
        scored = [s for s in statements if s.startswith(bm25)]
        assert all(s.endswith(f"LIMIT {bm25_max + 1}") and "ORDER BY" not in s
                   for s in scored)
        sampled = [s for s in statements if "items_fts.rowid >=" in s]
        assert len(sampled) == 1 and "LIMIT" in sampled[0]
        if bm25_max == sure:  # scored and counted by one statement
            assert (len(scored), len(counts)) == (1, 0)
        elif n > bm25_max:  # counted (scored too, if the sample guessed wrong)
            assert len(counts) == 1 and len(scored) <= 1
        else:  # counted then scored, or scored alone
            assert len(scored) == 1 and len(counts) <= 1
        if page.next_token is not None:
            fields = sqlite_store._decode_token(page.next_token)["s"][0] == "rank-fields"
            assert fields == (n > bm25_max)
        ranked = order(mixed, q=q)
        assert len(ranked) == n and paged(mixed, 3, q=q) == ranked


def test_free_text_alone_scored_at_once_ranks_as_sql_orders_it(mixed, monkeypatch):
    """Scored by one unordered statement and sorted here, free text's matches come in the
    order SQL's ORDER BY bm25, rowid gives them, page by page both ways."""
    for q in (["river crop"], ["alpha beta"], ["flood", "beta gamma"], ["gamma"]):
        mixed._cache.clear()
        mixed._rows.clear()
        sql = mixed._conn().execute(
            f"SELECT items.id FROM items_fts JOIN items ON items.rowid = items_fts.rowid "
            f"WHERE items_fts MATCH ? ORDER BY {sqlite_store._BM25}, items_fts.rowid",
            (sqlite_store._fts_match(q),)).fetchall()
        assert sql
        monkeypatch.setattr(sqlite_store.SQLiteStore, "_likely_few", lambda *args: True)
        assert order(mixed, q=q) == [i for i, in sql]
        assert paged(mixed, 4, q=q) == [i for i, in sql]
        monkeypatch.undo()


def test_free_text_in_a_date_range_is_listed_when_the_range_leaves_few_of_its_matches(
        mixed, monkeypatch):
    """A free-text test of the rows found otherwise lists its matches (an IN list) rather
    than looking each row up, when listing costs less; a date range bounds the listing to
    its recency keys, so its share of the items is the share of the matches listed. Listed,
    it tests rows found from the R*Tree (on either side of the antimeridian) by their rowid
    there, before their ``items`` rows are read."""
    monkeypatch.setattr(sqlite_store, "_COLLECT_MAX", 0)  # (counted, then paged)
    monkeypatch.setattr(sqlite_store, "_COST_PROBE", 1.0)
    monkeypatch.setattr(sqlite_store, "_COST_LIST", 0.5)
    narrow = Interval(ts("2020-01-01T00:00:00Z"), ts("2020-07-01T00:00:00Z"))
    river = found(mixed, q=["river"])
    # everywhere: the range's items, each looked up, cost more than the word's matches in the
    # range listed (not than all of them); a small box leaves few items to look up
    for box_, listed in (((-180, -90, 180, 90), True), ((0, 0, 40, 40), False),
                         ((-10, -90, -20, 90), True), ((150, -90, -170, 90), False)):
        query = {"q": ["river"], "datetime": narrow, "bbox": box_,
                 "sortby": [("datetime", "desc")]}
        want = river & found(mixed, datetime=narrow, bbox=box_)
        assert want
        mixed._cache.clear()
        statements: list[str] = []
        mixed._conn().set_trace_callback(statements.append)  # (this thread's connection)
        page = mixed.search(Query(limit=3, **query))
        mixed._conn().set_trace_callback(None)
        [count] = [s for s in statements if s.startswith("SELECT count(*)") and "MATCH" in s
                   and "items_rtree" in s]
        rowid = "r.item" if box_[0] > box_[2] else "r.id >> 1"
        assert (f"+{rowid} IN (SELECT rowid FROM items_fts" in count) == listed
        assert ("AND rowid = items.rowid)" in count) == (not listed)
        assert page.matched == len(want)
        got = paged(mixed, 4, **query)
        assert set(got) == want and got == order(mixed, **query)


def test_maintenance_runs_after_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_store, "_MAINTENANCE_DELAY", 0.05)
    store = open_store(f"sqlite:///{tmp_path}/m.sqlite")
    try:
        store.apply("gitlab", [update(item) for item in CORPUS], [])
        conn = store._conn()  # (to look at the store's own bookkeeping)
        for _ in range(200):
            if store._info(conn, "term_docs") == 1:
                break
            threading.Event().wait(0.02)
        assert store._info(conn, "term_docs") == 1 and not store._info(conn, "fts_unmerged")
        assert found(store, q=["flood"]) == {UNET["id"], TILES["id"], CLIMATE["id"]}
        store.apply("gitlab", [update(WEATHER)], [])  # schedules the next one
    finally:
        store.close()  # cancels it
    again = open_store(f"sqlite:///{tmp_path}/m.sqlite")  # due: scheduled again, on opening
    try:
        assert again._timer is not None
    finally:
        again.close()


def reference_dates(items: dict, lo: float, hi: float) -> set[str]:
    out = set()
    for item_id, item in items.items():
        bounds = item_bounds(item)
        if bounds and bounds[0] <= hi and bounds[1] >= lo:
            out.add(item_id)
    return out


def test_date_ranges_are_exact_whichever_index_answers(mixed):
    """Date ranges are found from the start or end index, or the time R*Tree (32-bit floats,
    rounded outwards: the edges are checked on the exact times)."""
    rng = random.Random(3)
    instants = sorted({epoch(i["properties"].get("start_datetime") or
                             i["properties"]["datetime"])
                       for i in mixed.items.values() if item_bounds(i)})
    cases = []
    for _ in range(40):
        t = rng.choice(instants)
        for lo, hi in ((t, t), (t - 1, t - 0.5), (t + 0.000001, t + 1), (t - 86400, t),
                       (t, t + 86400 * rng.choice([1, 10, 100, 1000]))):
            cases.append((lo, hi))
    cases += [(-INF, instants[10]), (instants[-10], INF)]
    for lo, hi in cases:
        interval = Interval(None if lo == -INF else datetime.fromtimestamp(lo, UTC),
                            None if hi == INF else datetime.fromtimestamp(hi, UTC))
        expected = reference_dates(mixed.items, lo, hi)
        assert found(mixed, datetime=interval) == expected, (lo, hi)
        assert found(mixed, filter=Temporal("t_intersects", Prop("datetime"), interval)) == \
            expected
        assert found(mixed, datetime=interval, bbox=(-180, -90, 180, 90)) == \
            expected & found(mixed, bbox=(-180, -90, 180, 90))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _store_info(store, key: str):
    with sqlite3.connect(store.path) as conn:
        return conn.execute("SELECT value FROM store_info WHERE key = ?", (key,)).fetchone()[0]


def _check_date_counts(store, items: dict, edge: float) -> None:
    """Counts (limit 0: nothing listed) of date ranges and of start and end comparisons, on
    and around a time_hist bucket's first second, against the items listed: in all the
    collections, in one, in two (and the same collection twice), in one no item is in."""
    week = 7 * 86400
    spans = [(edge, edge), (edge - 0.5, edge - 0.5), (edge - 0.5, edge), (edge, edge + 0.5),
             (edge + 0.25, edge + 0.25), (edge + 2**20, edge + 2**20), (edge - week, edge),
             (-INF, edge), (-INF, edge - 0.5), (edge, INF), (edge + 0.5, INF), (-INF, INF),
             (edge - 400 * 86400, edge + 30 * 86400)]
    for collections in (None, ["dataset"], ["ai-model", "dataset", "ai-model"], ["none"]):
        def kept(ids_: set[str], collections: list[str] | None = collections) -> set[str]:
            return {i for i in ids_ if collections is None
                    or items[i]["collection"] in collections}
        for lo, hi in spans:
            interval = Interval(None if lo == -INF else datetime.fromtimestamp(lo, UTC),
                                None if hi == INF else datetime.fromtimestamp(hi, UTC))
            expected = kept(reference_dates(items, lo, hi))
            for query in ({"datetime": interval},
                          {"filter": Temporal("t_intersects", Prop("datetime"), interval)}):
                query["collections"] = collections
                assert store.search(Query(limit=0, **query)).matched == len(expected), \
                    (collections, lo, hi)
                assert found(store, **query) == expected, (collections, lo, hi)
        for name in ("start_datetime", "end_datetime"):
            for op in ("<", "<=", "=", ">=", ">"):
                for t in (edge - 0.5, edge, edge + 0.5):
                    test = Compare(op, Prop(name), datetime.fromtimestamp(t, UTC))
                    listed = found(store, filter=test, collections=collections)
                    assert kept(found(store, filter=test)) == listed
                    assert store.search(Query(limit=0, filter=test, collections=collections)
                                        ).matched == len(listed), (collections, name, op, t)


def test_date_counts_are_exact_at_the_edges_of_the_time_histogram(mixed):
    """A date range alone is counted from time_hist and the rows of one bucket per side (at a
    million items, not hundreds of thousands of rows): exact on a bucket's edges, for open
    intervals and for start and end comparisons; and exact too while an item that ends
    before it starts is in the index (which the difference of two sides would count wrong)."""
    edge = float(int(epoch("2019-06-01T00:00:00Z")) >> sqlite_store._BUCKET_BITS
                 << sqlite_store._BUCKET_BITS)
    edges = [feature("edge/at", "dataset", dt=_iso(edge)),
             feature("edge/before", "dataset", dt=_iso(edge - 0.5)),
             feature("edge/after", "dataset", dt=_iso(edge + 0.5)),
             feature("edge/to", "dataset", start=_iso(edge - 0.5), end=_iso(edge)),
             feature("edge/from", "dataset", start=_iso(edge), end=_iso(edge + 2**20))]
    mixed.apply("gitlab", [update(item) for item in edges], [])
    items = {**mixed.items, **{item["id"]: item for item in edges}}
    assert _store_info(mixed, "inverted") == 0
    _check_date_counts(mixed, items, edge)

    backwards = feature("edge/backwards", "dataset", start=_iso(edge + 86400),
                        end=_iso(edge - 86400))
    mixed.apply("gitlab", [update(backwards)], [])
    assert _store_info(mixed, "inverted") == 1
    _check_date_counts(mixed, {**items, backwards["id"]: backwards}, edge)

    mixed.apply("gitlab", [], [backwards["id"]])
    assert _store_info(mixed, "inverted") == 0
    _check_date_counts(mixed, items, edge)


def test_an_index_from_before_counts_its_items_ending_before_they_start(tmp_path):
    path = tmp_path / "old.sqlite"
    store = open_store(f"sqlite:///{path}")
    edge = epoch("2020-01-01T00:00:00Z")
    backwards = feature("b/1", "dataset", start=_iso(edge + 86400), end=_iso(edge - 86400))
    store.apply("gitlab", [update(UNET), update(backwards)], [])
    store.close()
    histogram = "SELECT * FROM collection_time_hist ORDER BY collection, bucket"
    with sqlite3.connect(path) as conn:  # as the store before these counts left it
        kept = conn.execute(histogram).fetchall()
        conn.execute("DELETE FROM store_info WHERE key IN ('inverted', 'collection_time_hist')")
        conn.execute("DROP TABLE collection_time_hist")
    assert {row[0] for row in kept} == {"ai-model", "dataset"}
    store = open_store(f"sqlite:///{path}")
    try:
        assert _store_info(store, "inverted") == 1
        with sqlite3.connect(path) as conn:  # (and the per-collection histogram, made again)
            assert conn.execute(histogram).fetchall() == kept
        day = Interval(ts("2020-01-01T00:00:00Z"), ts("2020-01-01T12:00:00Z"))
        # (the difference of the two sides would give 0: UNET, less the item ending before)
        assert store.search(Query(limit=0, datetime=day)).matched == 1
        assert found(store, datetime=day) == {UNET["id"]}
    finally:
        store.close()


def test_bboxes_count_items_crossing_the_antimeridian_once(mixed):
    crossing = {i for i, item in mixed.items.items() if item.get("bbox") and
                item["bbox"][0] > item["bbox"][2]}
    assert crossing
    for box_ in [(-180, -90, 180, 90), (170, -90, 180, 90), (-180, -90, -170, 90),
                 (-10, -50, 10, 50), (175, -90, -175, 90)]:
        page = mixed.search(Query(bbox=box_, limit=1000))
        assert page.matched == len(page.items) == len(ids(page))
    everywhere = found(mixed, bbox=(-180, -90, 180, 90))
    assert crossing <= everywhere
    dated = found(mixed, bbox=(-180, -90, 180, 90),
                  datetime=Interval(ts("2019-01-01T00:00:00Z"), ts("2021-01-01T00:00:00Z")))
    assert dated == everywhere & reference_dates(
        mixed.items, epoch("2019-01-01T00:00:00Z"), epoch("2021-01-01T00:00:00Z"))


def test_rowids_follow_recency_even_within_one_second(store, monkeypatch):
    monkeypatch.setattr(sqlite_store, "_SLOT_BITS", 1)  # two items per second, then beyond
    same = [feature(f"s/{i}", "dataset", dt="2021-05-05T05:05:05Z", title=f"flood {i}")
            for i in range(6)]
    others = [feature("s/later", "dataset", dt="2021-05-05T05:05:06Z", title="flood later"),
              feature("s/undated", "dataset", title="flood undated"),
              feature("s/ancient", "dataset", dt="0001-01-01T00:00:00Z", title="flood old"),
              feature("s/future", "dataset", dt="9999-12-31T23:59:59Z", title="flood far")]
    store.apply("gitlab", [update(item) for item in others[:2] + same + others[2:]], [])
    assert found(store) == {i["id"] for i in same + others}
    monkeypatch.setattr(sqlite_store, "_BM25_MAX", 0)
    ranked = order(store, q=["flood"])
    assert ranked[0] == "s/future" and ranked[-2:] == ["s/ancient", "s/undated"]
    assert set(ranked[1:8]) == {i["id"] for i in same} | {"s/later"}
    assert paged(store, 3, q=["flood"]) == ranked
    # (keys out of their second: date ranges no longer narrow the FTS index to a key range)
    second = Interval(ts("2021-05-05T05:05:05Z"), ts("2021-05-05T05:05:05Z"))
    assert order(store, q=["flood"], datetime=second) == [i for i in ranked
                                                         if i in {j["id"] for j in same}]


def test_closing_with_maintenance_pending(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_store, "_MAINTENANCE_DELAY", 60)
    store = open_store(f"sqlite:///{tmp_path}/c.sqlite")
    store.apply("gitlab", [update(UNET)], [])
    timer = store._timer
    store.close()
    assert timer is not None
    timer.join(5)
    assert not timer.is_alive()
    store.maintain()  # closed: nothing to do


# --- summaries ------------------------------------------------------------------------------


def test_a_collection_box_spans_the_globe_while_it_holds_a_box_across_the_antimeridian(store):
    near = feature("g/near", "dataset", dt="2021-01-01T00:00:00Z", bbox=[10.0, 0.0, 20.0, 5.0])
    across = feature("g/across", "dataset", dt="2021-01-02T00:00:00Z",
                     bbox=[170.0, -5.0, -170.0, 2.0])
    store.apply("gitlab", [update(near), update(across)], [])
    assert store.collections()["dataset"].bbox == (-180.0, -5.0, 180.0, 5.0)
    store.apply("gitlab", [update(near, project="g/more")], [across["id"]])
    assert store.collections()["dataset"].bbox == (10.0, 0.0, 20.0, 5.0)


def test_collections_summaries(corpus):
    summaries = corpus.collections()
    assert set(summaries) == {"ai-model", "dataset"}
    ai = summaries["ai-model"]
    assert ai.count == 3
    assert ai.bbox == (-50.0, 0.0, 30.0, 40.0)
    assert (ai.start, ai.end) == ("2018-01-01T00:00:00Z", "2023-01-01T00:00:00Z")
    data = summaries["dataset"]
    assert data.count == 3
    assert data.bbox == (-180.0, -10.0, 180.0, 10.0)  # holds a box crossing the antimeridian
    assert (data.start, data.end) == ("2021-06-15T10:30:00.500000Z", "2022-03-01T00:00:00Z")

    # removing the items that hold the edges shrinks the extents
    corpus.apply("gitlab", [], [CLIMATE["id"], TILES["id"]])
    summaries = corpus.collections()
    assert summaries["ai-model"].bbox == (0.0, 0.0, 30.0, 10.0)
    assert (summaries["ai-model"].start, summaries["ai-model"].end) == \
        ("2019-01-01T00:00:00Z", "2020-01-01T00:00:00Z")
    assert summaries["dataset"] == type(data)(count=2, bbox=None, start="2022-03-01T00:00:00Z",
                                              end="2022-03-01T00:00:00Z")
    # adding widens them; replacing an item inside the extents keeps them
    corpus.apply("gitlab", [update(CLIMATE), update(UNET)], [])
    assert corpus.collections()["ai-model"].bbox == (-50.0, 0.0, 30.0, 40.0)
    corpus.apply("gitlab", [], [UNET["id"], CROPS["id"], CLIMATE["id"]])
    assert set(corpus.collections()) == {"dataset"}


def test_collections_match_a_recount_after_many_changes(many):
    for i in range(0, 67, 3):
        source = "gitlab" if i % 2 else "local"
        many.apply(source, [], [f"g/p{i:02d}"])
    remaining = many.search(Query(limit=1000)).items
    for name, summary in many.collections().items():
        items = [i for i in remaining if i["collection"] == name]
        assert summary.count == len(items)
        dates = sorted(i["properties"]["datetime"] for i in items if i["properties"]["datetime"])
        assert (summary.start, summary.end) == (dates[0], dates[-1])


def test_queryables(corpus):
    everything = corpus.queryables()
    assert everything["eo:cloud_cover"] == "number"  # integers and numbers
    assert everything["sharinghub:stars"] == "integer"
    assert everything["mlm:framework"] == "string"
    assert everything["keywords"] == "array"
    assert everything["sharinghub:private"] == "boolean"
    assert everything["datetime"] == "string"
    assert "no:such" not in everything
    datasets = corpus.queryables("dataset")
    assert "mlm:framework" not in datasets
    assert datasets["eo:cloud_cover"] == "string"
    assert corpus.queryables("nope") == {}
    corpus.apply("gitlab", [], [UNET["id"], CROPS["id"]])
    assert "sharinghub:private" not in corpus.queryables()


# --- threads --------------------------------------------------------------------------------


def test_readers_never_see_a_partial_apply(store):
    projects = 40

    def generation(version: int) -> list[ProjectUpdate]:
        return [update(feature(f"g/p{i:02d}", "ai-model", dt="2020-01-01T00:00:00Z",
                               title=f"version {version}", version=version),
                       version=version) for i in range(projects)]

    store.apply("gitlab", generation(0), [])
    reading = threading.Event()
    done = threading.Event()
    problems: list[str] = []
    observed: set[int] = set()

    def reader():
        try:
            while True:
                finished = done.is_set()
                page = store.search(Query(limit=projects))
                versions = {i["properties"]["version"] for i in page.items}
                observed.update(versions)
                if page.matched != projects or len(page.items) != projects or len(versions) != 1:
                    problems.append(f"{page.matched} items, versions {sorted(versions)}")
                text = store.search(Query(q=["version"], limit=0)).matched
                if text != projects:
                    problems.append(f"free text saw {text}")
                reading.set()
                if finished:
                    return
        except Exception as exc:  # pragma: no cover - reported below
            problems.append(repr(exc))
            reading.set()

    thread = threading.Thread(target=reader)
    thread.start()
    assert reading.wait(30)
    for version in range(1, 80):
        store.apply("gitlab", generation(version), [])
    done.set()
    thread.join(60)
    assert not thread.is_alive()
    assert problems == []
    assert 79 in observed  # the reader's last look came after the last apply


# --- work limits: a time budget, a caller that gives up, SQLite's own limits --------------


def detailed_outlines(store, items: int = 20, points: int = 20_000) -> None:
    """Items with detailed outlines, for searches that take minutes: see SLOW."""
    ring = [[round(math.cos(2 * math.pi * k / points), 6),
             round(math.sin(2 * math.pi * k / points), 6)] for k in range(points)]
    outline = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    store.apply("local", [update(feature(f"slow/item-{i}", "dataset",
                                         dt="2020-01-01T00:00:00Z", geometry=outline))
                          for i in range(items)], [])


#: 100 shapes inside the outlines' bounding boxes but outside the outlines: every test parses
#: every outline (about two minutes here)
SLOW = And(tuple(Spatial("s_disjoint", Prop("geometry"),
                         box(0.9, 0.9 + i * 0.0005, 0.95, 0.99)) for i in range(100)))


def test_a_search_stops_at_its_time_budget(store):
    detailed_outlines(store)
    with pytest.raises(QueryInterrupted, match=r"more than 0\.2 s") as info:
        store.search(Query(filter=SLOW, budget=Budget(0.2)))
    assert info.value.timed_out
    assert store.search(Query(limit=1, budget=Budget(0.2))).matched == 20  # still usable


def test_a_search_stops_when_its_caller_gives_up(store):
    detailed_outlines(store)
    budget = Budget(3600)
    outcome: list = []

    def search() -> None:
        try:
            store.search(Query(filter=SLOW, budget=budget))
        except QueryInterrupted as exc:
            outcome.append(exc)

    thread = threading.Thread(target=search)
    thread.start()
    budget.cancelled.set()
    thread.join(60)  # the search alone takes minutes
    assert not thread.is_alive()
    assert len(outcome) == 1 and not outcome[0].timed_out
    assert store.search(Query(limit=1)).matched == 20


@pytest.mark.parametrize("expr", [
    And(tuple(Compare("<>", Prop("stars"), i) for i in range(250))),  # too many FROM terms
    Or(tuple(Compare("=", Prop("stars"), i) for i in range(7000))),  # expression too deep
], ids=["250 ANDs", "7000 ORs"])
def test_queries_beyond_sqlites_limits_are_query_errors(corpus, expr):
    with pytest.raises(QueryError, match="too complex"):
        corpus.search(Query(filter=expr))


# --- closing the store while other threads use it -------------------------------------------


def close_while_searching(path: str, searches: int = 4) -> None:
    """In a subprocess of the test below (a crash is then its exit code, not pytest's end):
    SLOW searches in threads, the store closed while every one of them is inside SQLite (it
    has called the store's spatial SQL function); prints how each search ended."""
    store = open_store(f"sqlite://{path}")
    store.search(Query(limit=1))  # this thread's connection: idle at close
    stepping: set[int] = set()
    outcomes: list[str] = []

    def watch(frame, event: str, arg) -> None:
        if event == "call" and frame.f_code.co_name == "sql_spatial":
            stepping.add(threading.get_ident())
            sys.setprofile(None)  # (seen once is enough)

    def search(budget: Budget | None) -> None:
        try:
            store.search(Query(filter=SLOW, budget=budget))
            outcomes.append("finished")
        except StoreClosed:
            outcomes.append("closed")
        except Exception as exc:  # (reported to the test, which fails on it)
            outcomes.append(f"{type(exc).__name__}: {exc}")

    threading.setprofile(watch)
    # half with a budget, as in the server: stopped by close, not by the budget
    threads = [threading.Thread(target=search, args=(Budget(3600) if i % 2 else None,))
               for i in range(searches)]
    for thread in threads:
        thread.start()
    poll(lambda: len(stepping) == searches, "every search to be inside SQLite", timeout=120)
    store.close()
    for thread in threads:
        thread.join()
    store.close()  # a second time: nothing left to do
    try:
        store.search(Query(limit=1))
        outcomes.append("searched after close")
    except StoreClosed:
        pass
    except Exception as exc:
        outcomes.append(f"after close: {type(exc).__name__}: {exc}")
    print(json.dumps(outcomes))


@pytest.fixture(scope="module")
def slow_store_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("slow") / "index.sqlite"
    store = open_store(f"sqlite://{path}")
    detailed_outlines(store, items=8, points=2000)  # a SLOW search: seconds
    store.close()
    return path


def test_closing_the_store_while_threads_search_stops_them_cleanly(slow_store_file):
    code = f"from tests.test_index import close_while_searching; " \
           f"close_while_searching({str(slow_store_file)!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"exit code {done.returncode}: {done.stderr[-2000:]}"
    # each search ended with the store's error, and a search after close too
    assert json.loads(done.stdout.splitlines()[-1]) == ["closed"] * 4


def test_timestamps_read_the_same_on_the_fast_path_and_the_general_one() -> None:
    """``to_epoch`` reads the common form (``2021-03-04T05:06:07Z``) with the C parser and
    everything else with ``parse_datetime``: on strings at and around that form (every
    character varied, out-of-range fields, other digits and separators) both agree."""
    import sharinghub_server.index.sql_filter as sql_filter

    def general(text: str) -> float | None:
        dt = sql_filter.parse_datetime(text)
        return None if dt is None else (dt - sql_filter.EPOCH) / timedelta(seconds=1)

    rng = random.Random(11)
    alphabet = "0123456789-:TtZz +.\n\u0663\uff17x"
    texts = ["2021-03-04T05:06:07Z", "2021-03-04t05:06:07z", "2021-03-04 05:06:07Z",
             "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
             "2021-03-04T24:00:00Z", "2021-02-29T05:06:07Z", "2024-02-29T05:06:07Z",
             "2021-13-04T05:06:07Z", "2021-03-04T05:60:07Z", "2021-03-04T05:06:60Z",
             "2021-W09-4T05:06:07Z", "2021-03-04T05:06:07\n", "\uff12021-03-04T05:06:07Z"]
    for _ in range(20000):
        chars = list(f"{rng.randrange(10000):04d}-{rng.randrange(14):02d}-{rng.randrange(33):02d}"
                     f"T{rng.randrange(26):02d}:{rng.randrange(62):02d}:{rng.randrange(62):02d}Z")
        for _ in range(rng.choice((0, 0, 1, 2))):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        texts.append("".join(chars))
    fast = 0
    for text in texts:
        assert sql_filter.to_epoch(text) == general(text), text
        fast += general(text) is not None
    assert fast > 2000  # (both read many of them)


def test_property_rows_are_those_of_the_plain_type_tests() -> None:
    """``property_rows`` tests the common types by identity and parses only strings that
    start with a digit or a space: the same rows as testing each value with ``isinstance``
    (bool before int) and parsing every string, subclasses and odd texts included."""
    import enum

    import sharinghub_server.index.sql_filter as sql_filter

    def reference(props: dict) -> list:
        rows = []
        for name, value in props.items():
            if not isinstance(name, str) or not sql_filter.in_props_table(name):
                continue
            if isinstance(value, bool):
                rows.append((name, sql_filter.KIND_BOOLEAN, int(value)))
            elif isinstance(value, int):
                rows.append((name, sql_filter.KIND_NUMBER,
                             value if -(2**63) <= value < 2**63 else float(value)))
            elif isinstance(value, float):
                rows.append((name, sql_filter.KIND_NUMBER, value))
            elif isinstance(value, str):
                rows.append((name, sql_filter.KIND_STRING, value))
                instant = sql_filter.to_epoch(value)
                if instant is not None:
                    rows.append((name, sql_filter.KIND_TIME, instant))
        return rows

    class Level(enum.IntEnum):
        HIGH = 3

    class Text(str):
        pass

    rng = random.Random(5)
    starts = ["", " ", "\t", "\u2003", "2", "\u0663", "\u00b2", "x", "-", "+"]
    values = [True, False, 0, -1, 2**63, -(2**63) - 1, 2**70, 1.5, float("nan"), float("inf"),
              None, [], {}, Level.HIGH, Text("2021-03-04"), Text("MIT"), date(2021, 3, 4),
              "2021-03-04T05:06:07Z", " 2021-03-04", "\u0662\u0660\u0662\u0661-03-04",
              "2021-03-04T05:06:07.5+02:00", "MIT", "", "12", "1e5"]
    for _ in range(3000):
        props = {}
        for i in range(rng.randrange(8)):
            value = rng.choice(values)
            if rng.random() < 0.4:
                value = rng.choice(starts) + rng.choice(["2021-03-04", "2021-03-04T05:06Z",
                                                          "abc", "99", ""])
            props[rng.choice(["license", "created", "title", "description", "n", "p"]) +
                  str(i)] = value
        props[rng.choice(["title", "datetime", "description", 7])] = "2021-03-04"
        assert sql_filter.property_rows(props) == reference(props) or \
            repr(sql_filter.property_rows(props)) == repr(reference(props)), props
