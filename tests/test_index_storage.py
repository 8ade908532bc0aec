"""How the SQLite index stores items (schema 3): compactly (compressed documents, coded property
names, no second copy of texts or geometries), and consistently through failed writes,
replacements and deletions."""

from __future__ import annotations

import json
import random
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import sharinghub_server.index.sqlite as sqlite_store
from sharinghub_server.index import (
    Compare,
    Not,
    ProjectUpdate,
    Prop,
    Query,
    Spatial,
    open_store,
)
from sharinghub_server.index.packing import (
    GEOMETRY,
    PROPS,
    REST,
    STATE,
    pack,
    pack_json,
    sql_unpack,
    unpack,
    unpack_json,
)
from tests.support.polling import poll

WORDS = ("flood", "sentinel", "crop", "radar", "forest", "model", "maps", "water", "urban")


def _item(i: int, rng: random.Random) -> dict[str, Any]:
    """An item like the crawler's: boilerplate links and assets, a dozen properties."""
    item_id = f"group-{i % 37}/project-{i:05d}"
    w, s = rng.uniform(-170, 150), rng.uniform(-60, 50)
    return {
        "type": "Feature", "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/mlm/v1.4.0/schema.json"],
        "id": item_id, "collection": ("ai-model", "dataset")[i % 2],
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [w + 3, s], [w + 3, s + 2],
                                                         [w, s + 2], [w, s]]]},
        "bbox": [w, s, w + 3, s + 2],
        "properties": {
            "title": " ".join(rng.choice(WORDS) for _ in range(4)).capitalize(),
            "description": " ".join(rng.choice(WORDS) for _ in range(40)),
            "keywords": sorted({rng.choice(WORDS) for _ in range(3)}),
            "datetime": f"20{10 + i % 15}-0{1 + i % 9}-1{i % 10}T10:00:00Z",
            "created": "2019-01-01T00:00:00Z", "updated": f"2024-01-0{1 + i % 9}T00:00:00Z",
            "license": ("MIT", "Apache-2.0")[i % 2], "sharinghub:stars": i % 17,
            "sharinghub:private": i % 5 == 0, "eo:cloud_cover": round(rng.random() * 100, 1),
            "providers": [{"name": f"group-{i % 37}", "roles": ["producer", "host"]}],
        },
        "links": [{"rel": "self", "href": f"https://gitlab.example.com/{item_id}",
                   "type": "application/geo+json"},
                  {"rel": "license", "href": f"https://gitlab.example.com/{item_id}/-/blob/"
                   "main/LICENSE", "title": "MIT"}],
        "assets": {"readme": {"href": f"https://gitlab.example.com/{item_id}/-/raw/main/"
                              "README.md", "type": "text/markdown", "roles": ["metadata"],
                              "title": "README"}},
    }


@pytest.fixture
def store(tmp_path: Path):
    s = open_store(f"sqlite:///{tmp_path}/catalog.sqlite")
    yield s
    s.close()


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def test_items_take_little_room_and_come_back_whole(tmp_path: Path) -> None:
    """Schema 2 took 4.7 KB per item like these (1.6 KB of JSON; 2.4 KB now): texts were
    kept thrice (properties, FTS content and index), geometries twice, property names in
    every property row. Each is kept once now, the documents compressed."""
    path = tmp_path / "catalog.sqlite"
    store = open_store(f"sqlite://{path}")
    rng = random.Random(3)
    items = [_item(i, rng) for i in range(3000)]
    try:
        for start in range(0, len(items), 500):
            store.apply("gitlab", [ProjectUpdate(i["id"], {"fingerprint": i["id"]}, [i])
                                   for i in items[start:start + 500]], [])
        store.maintain()
        for item in items[::97]:
            assert store.get_item(item["collection"], item["id"]) == item
        page = store.search(Query(q=["flood"], limit=50))
        assert all(i == items[int(i["id"][-5:])] for i in page.items)
    finally:
        store.close()
    assert _size(path) / len(items) < 2700  # bytes per item, every index included


def test_json_filters_and_spatial_tests_read_the_packed_documents(store) -> None:
    """The forms of a filter that read the item's JSON (under a NOT, against another
    property) and the exact spatial tests see the same values as the property table."""
    rng = random.Random(5)
    items = [_item(i, rng) for i in range(60)]
    store.apply("gitlab", [ProjectUpdate(i["id"], {}, [i]) for i in items], [])
    stars = {i["id"] for i in items if i["properties"]["sharinghub:stars"] > 8}
    not_low = store.search(Query(filter=Not(Compare("<=", Prop("sharinghub:stars"), 8)),
                                 limit=100))
    assert {i["id"] for i in not_low.items} == stars
    same = store.search(Query(filter=Compare("=", Prop("created"), Prop("created")),
                              limit=100))
    assert same.matched == len(items)
    target = items[7]["geometry"]
    inside = store.search(Query(filter=Spatial("s_intersects", Prop("geometry"), target),
                                limit=100))
    assert items[7]["id"] in {i["id"] for i in inside.items}


def test_a_failed_write_leaves_no_property_name_behind(store) -> None:
    """Property names are coded in the index; a code given in a write that failed is not
    used afterwards (the next write codes the name again)."""
    rng = random.Random(7)
    item = _item(1, rng)
    item["properties"]["brand:new"] = 42
    bad = ProjectUpdate("x/y", {"oops": object()}, [])
    with pytest.raises(TypeError):
        store.apply("gitlab", [ProjectUpdate(item["id"], {}, [item]), bad], [])
    other = _item(2, rng)
    other["properties"]["other:new"] = 1
    store.apply("gitlab", [ProjectUpdate(other["id"], {}, [other])], [])
    store.apply("gitlab", [ProjectUpdate(item["id"], {}, [item])], [])
    assert [i["id"] for i in store.search(Query(
        filter=Compare("=", Prop("brand:new"), 42))).items] == [item["id"]]
    assert [i["id"] for i in store.search(Query(
        filter=Compare("=", Prop("other:new"), 1))).items] == [other["id"]]
    assert store.search(Query(sortby=[("brand:new", "desc")], limit=1)).items[0]["id"] == \
        item["id"]
    assert store.queryables()["brand:new"] == "integer"


def test_replacing_and_deleting_items_leaves_no_trace(tmp_path: Path) -> None:
    """Whatever a write stored of an item (document, property rows, free-text postings, R*Tree
    boxes) goes with it: a new item with another's recency key matches nothing of the old."""
    path = tmp_path / "catalog.sqlite"
    store = open_store(f"sqlite://{path}")
    rng = random.Random(9)
    items = [_item(i, rng) for i in range(40)]
    try:
        store.apply("gitlab", [ProjectUpdate(i["id"], {}, [i]) for i in items], [])
        quiet = [dict(i, properties={**i["properties"], "title": "Quiet",
                                     "description": "nothing", "keywords": [],
                                     "license": "none"}) for i in items[:20]]
        store.apply("gitlab", [ProjectUpdate(i["id"], {}, [i]) for i in quiet],
                    [i["id"] for i in items[20:30]])
        store.maintain()
        left = quiet + items[30:]
        for word in WORDS:
            expected = {i["id"] for i in left if word in (
                i["properties"]["title"].lower().split() + i["properties"]["description"].split()
                + i["properties"]["keywords"])}
            page = store.search(Query(q=[word], limit=100))
            assert {i["id"] for i in page.items} == expected, word
            assert page.matched == len(expected)
        mit = store.search(Query(filter=Compare("=", Prop("license"), "MIT"), limit=100))
        assert {i["id"] for i in mit.items} == {i["id"] for i in items[30:]
                                                if i["properties"]["license"] == "MIT"}
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("items", "item_docs")]
        props = conn.execute("SELECT count(DISTINCT item) FROM item_props").fetchone()[0]
    finally:
        conn.close()
    assert counts == [30, 30] and props == 30


def test_maintenance_waits_for_the_write_under_way(tmp_path: Path, monkeypatch) -> None:
    """The maintenance scheduled after a write does not merge the FTS index while the next
    write runs (a batch slower than its delay, in a long crawl): it comes after it."""
    monkeypatch.setattr(sqlite_store, "_MAINTENANCE_DELAY", 0.05)
    store = open_store(f"sqlite:///{tmp_path}/m.sqlite")
    try:
        rng = random.Random(11)
        with store._lock:
            store._writing += 1  # as while another apply() runs, from before this one's end
        try:
            store.apply("gitlab", [ProjectUpdate(i["id"], {}, [i])
                                   for i in (_item(n, rng) for n in range(20))], [])
            conn = store._conn()  # (to look at the store's own bookkeeping)
            store._maintain_quietly()  # the timer, firing meanwhile
            poll(lambda: store._timer is not None and store._timer.is_alive(), "a timer")
            assert store._info(conn, "fts_unmerged") and not store._info(conn, "term_docs")
        finally:
            with store._lock:
                store._writing -= 1
        poll(lambda: store._info(conn, "term_docs") == 1, "the maintenance after the write")
        assert not store._info(conn, "fts_unmerged")
    finally:
        store.close()


@pytest.mark.parametrize("kind", [REST, PROPS, GEOMETRY, STATE])
def test_packed_texts_come_back_exactly(kind: int) -> None:
    for text in ('{"a":1}', "", '{"title":"Café ☃ \\u0000","n":[1.5e300,-0.0]}',
                 '{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,1],[0,0]]]}' * 40):
        packed = pack(text, kind)
        assert isinstance(packed, bytes) and packed[0] == kind + 16  # (zstd)
        assert unpack(packed) == text and sql_unpack(packed) == text
        # each pack starts afresh (no state left by the packs before), from text or bytes
        assert pack(text.encode(), kind) == packed == pack(text, kind)
    assert unpack('{"plain": "schema 2"}') == '{"plain": "schema 2"}'
    assert unpack(None) is None
    with pytest.raises(ValueError):
        unpack(b"\x7fnot packed")
    assert sql_unpack(b"\x7fnot packed") is None and sql_unpack(b"\x02garbage") is None
    assert sql_unpack(b"\x12garbage") is None and sql_unpack(b"\x12") is None


@pytest.mark.parametrize("kind", [REST, PROPS, GEOMETRY, STATE])
def test_packed_json_values_come_back_exactly_whichever_encoder_wrote_them(kind: int) -> None:
    """orjson writes (and then reads) what it can; what it refuses (integers beyond 64 bits,
    which it would read back as floats; keys that are no strings) ``json`` writes and reads,
    marked apart: every value comes back as ``json`` gives it, types included."""
    plain = [{"a": 1, "b": [1.5e300, -0.0, 0.1, 10**18, -(2**63), 2**64 - 1]}, [], "", None,
             {"title": "Café ☃ \u0000 \ud7ff", "n": {"deep": [[[True, False, None]]]}}]
    refused = [{"big": 2**64}, {"small": -(2**63) - 1}, [1, [2, [10**30]]], {1: "x", "2": 3}]
    for value in plain + refused:
        packed = pack_json(value, kind)
        expected = json.loads(json.dumps(value))
        back = unpack_json(packed)
        assert back == expected and repr(back) == repr(expected)
        assert packed[0] == kind + (32 if value in plain else 16)  # (orjson, else json)
        assert json.loads(unpack(packed)) == expected == json.loads(sql_unpack(packed))
    assert unpack_json(pack('{"n": 123456789012345678901234567890}', kind)) == \
        {"n": 123456789012345678901234567890}
    assert unpack_json('{"plain": "schema 2"}') == {"plain": "schema 2"}
    assert unpack_json(None) is None
    assert sql_unpack(b"\x22garbage") is None and sql_unpack(b"\x22") is None


#: values the code before zstd wrote (raw deflate, format byte = the kind): still read
_DEFLATED = {
    REST: (b'\x01\xab\xc6\xac"\xc0\x05Q\xba~\x01zY\x94\x98\xa9\x0bK\x8c\xe8e\x12zIT\x0b\x00',
           '{"type":"Feature","id":"g/p","collection":"ai-model","geometry":null,'
           '"properties":null}'),
    PROPS: (b'\x02\xab\x86g)\xb7\x9c\xfc\xfc\x14\x85\xdc\xc4\x82b\x94\xb4\xe8\xeb\x19\xa2T\x0b\x00',
            '{"title":"Flood maps","license":"MIT"}'),
    GEOMETRY: (b'\x03\xab\xc6\xef&C=S\x1d#\xa0\xcaZ\x00',
               '{"type":"Point","coordinates":[1.5,2.0]}'),
    STATE: (b'\x04\xabF\xf3JbR\xb2R-\x00', '{"fingerprint":"abc"}'),
}


def test_threads_pack_and_unpack_at_once() -> None:
    """Each thread has its own compression contexts (a zstd context serves one at a time)."""
    texts = [json.dumps({"title": f"item {i}", "n": list(range(i % 50))}) for i in range(400)]
    expected = [pack(text, PROPS) for text in texts]

    def work(offset: int) -> bool:
        order = texts[offset:] + texts[:offset]
        return all(unpack(pack(text, PROPS)) == text for text in order * 3)

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, (0, 100, 200, 300)))
    assert [pack(text, PROPS) for text in texts] == expected


@pytest.mark.parametrize("kind", [REST, PROPS, GEOMETRY, STATE])
def test_values_packed_before_zstd_still_read(kind: int) -> None:
    value, text = _DEFLATED[kind]
    assert unpack(value) == text and sql_unpack(value) == text
    assert pack(text, kind) != value and unpack(pack(text, kind)) == text


def test_writes_reach_the_database_file_from_the_checkpointer(tmp_path: Path) -> None:
    """Commits never copy the write-ahead log into the file themselves (a batch would pay
    for every index page it touched, again at each batch): the store's checkpoint thread
    does, soon after the writes, while the store stays open; what was committed is readable
    throughout, and the log is gone once the store is closed."""
    path = tmp_path / "catalog.sqlite"
    store = open_store(f"sqlite://{path}")
    rng = random.Random(5)
    items = [_item(i, rng) for i in range(1500)]
    try:
        writer = store._conn()
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        before = path.stat().st_size
        for start in range(0, len(items), 500):
            store.apply("gitlab", [ProjectUpdate(i["id"], {"fingerprint": i["id"]}, [i])
                                   for i in items[start:start + 500]], [])
        # the file itself grows by the items' pages, with no close and no other checkpoint
        poll(lambda: path.stat().st_size > before + 1_000_000, "the checkpoint into the file")
        other = sqlite3.connect(path)
        assert other.execute("SELECT count(*) FROM items").fetchone()[0] == len(items)
        other.close()
    finally:
        store.close()
    assert not Path(f"{path}-wal").exists()
    reopened = open_store(f"sqlite://{path}")
    try:
        assert reopened.get_item(items[7]["collection"], items[7]["id"]) == items[7]
    finally:
        reopened.close()
