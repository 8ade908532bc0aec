"""An index written by the previous store (schema 2) opens with this one, is migrated in place,
and answers as it did: every search (counts, pages, paging tokens), item, summary, state, overlay
and meta key; writes after the migration replace and delete its old rows cleanly.

The fixture ``fixtures/index-v2.db.gz`` and the answers beside it were written by the store of
commit 3447d92 (schema 2), with this module's :func:`populate` and :func:`answers`:

    git worktree add /tmp/v2 3447d92
    PYTHONPATH=/tmp/v2/server_ext:. .venv/bin/python -m tests.test_index_migration OUT_DIR

(this module uses only the store's public interface, so that the old code runs it too).
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from sharinghub_server.index import (
    And,
    Between,
    Compare,
    In,
    Interval,
    Like,
    Not,
    ProjectUpdate,
    Prop,
    Query,
    Temporal,
    open_store,
)

FIXTURES = Path(__file__).parent / "fixtures"
OLD_INDEX = FIXTURES / "index-v2.db.gz"
OLD_ANSWERS = FIXTURES / "index-v2.answers.json"

WORDS = ("flood", "crop", "sentinel", "radar", "forest", "urban", "water", "model", "tiles",
         "climate", "café", "segmentation", "time", "series", "maps")
COLLECTIONS = ("ai-model", "dataset", "processor")


def _item(i: int, rng: random.Random) -> dict:
    """A deterministic, varied item: instants and intervals, boxes (some across the
    antimeridian), properties of several types, missing ones."""
    collection = COLLECTIONS[i % 3]
    props: dict[str, Any] = {
        "title": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))).capitalize()
        if i % 7 else None,
        "description": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20))),
        "keywords": sorted({rng.choice(WORDS) for _ in range(rng.randint(0, 3))}),
        "datetime": None,
        "created": f"20{10 + i % 12:02d}-0{1 + i % 9}-1{i % 10}T0{i % 10}:00:00Z",
        "sharinghub:stars": i % 13 if i % 5 else None,
        "license": ("MIT", "Apache-2.0", "CC-BY-4.0")[i % 3],
        "sharinghub:private": i % 4 == 0,
    }
    if i % 6 == 0:
        props["start_datetime"] = f"20{15 + i % 8:02d}-01-01T00:00:00Z"
        props["end_datetime"] = f"20{15 + i % 8:02d}-0{1 + i % 9}-28T23:59:59Z"
    elif i % 17:
        props["datetime"] = f"20{12 + i % 11:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}T" \
                            f"{i % 24:02d}:{i % 60:02d}:00Z"
    if collection == "ai-model":
        props["mlm:framework"] = ("pytorch", "sklearn", "jax")[i % 3 if i % 2 else 0]
        props["eo:cloud_cover"] = round(rng.random() * 100, 1) if i % 9 else "unknown"
    item: dict[str, Any] = {
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": [],
        "id": f"grp-{i % 7}/project-{i:03d}", "collection": collection, "geometry": None,
        "properties": props,
        "links": [{"rel": "self", "href": f"https://example.com/p/{i}"}],
        "assets": {"readme": {"href": f"https://example.com/p/{i}/README.md",
                              "roles": ["metadata"]}},
    }
    if i % 5:
        w, s = rng.uniform(-180, 170), rng.uniform(-80, 70)
        e, n = w + rng.uniform(0.1, 30), s + rng.uniform(0.1, 15)
        if e > 180:
            e -= 360
        item["bbox"] = [round(w, 3), round(s, 3), round(e, 3), round(n, 3)]
        if w <= e:
            ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
            item["geometry"] = {"type": "Polygon", "coordinates": [
                [[round(x, 3), round(y, 3)] for x, y in ring]]}
    return item


def corpus() -> list[dict]:
    rng = random.Random(14)
    return [_item(i, rng) for i in range(160)]


def populate(store: Any) -> None:
    """The old index's content: two sources, projects with two items (one id in two
    collections, and an item whose id is not its project's), writes in several transactions
    (FTS segments), a deletion, overlays and meta keys."""
    items = corpus()
    for start in range(0, 120, 40):
        store.apply("gitlab", [ProjectUpdate(item["id"], {"n": i + start}, [item])
                               for i, item in enumerate(items[start:start + 40])], [])
    twin = dict(items[120], collection="dataset")
    other = dict(items[121], id="grp-x/renamed-item")
    store.apply("local", [
        ProjectUpdate(items[120]["id"], {"twin": True}, [items[120], twin]),
        ProjectUpdate(items[121]["id"], {"renamed": True}, [other]),
        *[ProjectUpdate(item["id"], {"local": item["id"]}, [item]) for item in items[122:]],
    ], [])
    store.apply("gitlab", [], [items[3]["id"], items[4]["id"]])
    store.set_overlay(items[10]["id"], "mlflow", {"models": ["m1"]})
    store.set_meta("crawl", {"ok": True, "items": 157})
    maintain = getattr(store, "maintain", None)
    if maintain is not None:
        maintain()


#: name -> Query (answers are compared page by page, following next links)
QUERIES: dict[str, Query] = {
    "all": Query(limit=25),
    "q flood": Query(q=["flood"], limit=7),
    "q phrase": Query(q=["time series"], limit=5),
    "q two": Query(q=["café", "radar"], limit=6),
    "q + datetime": Query(q=["water"], datetime=Interval("2016-01-01T00:00:00Z", None),
                          limit=5),
    "bbox": Query(bbox=(-30, -40, 60, 40), limit=9),
    "bbox across 180": Query(bbox=(170, -90, -170, 90), limit=9),
    "datetime": Query(datetime=Interval("2015-06-01T00:00:00Z", "2019-01-01T00:00:00Z"),
                      limit=8),
    "collections": Query(collections=["ai-model"], limit=10),
    "ids": Query(ids=["grp-1/project-001", "grp-x/renamed-item", "grp-1/project-120"]),
    "stars >= 5": Query(filter=Compare(">=", Prop("sharinghub:stars"), 5), limit=10),
    "framework and cloud": Query(filter=And((
        Compare("=", Prop("mlm:framework"), "pytorch"),
        Between(Prop("eo:cloud_cover"), 10, 80))), limit=4),
    "not private": Query(filter=Not(Compare("=", Prop("sharinghub:private"), True)),
                         limit=12),
    "license in": Query(filter=In(Prop("license"), ("MIT", "CC-BY-4.0")), limit=11),
    "like": Query(filter=Like(Prop("title"), "Flood%"), limit=5),
    "created t_after": Query(filter=Temporal("t_after", Prop("created"),
                                             "2016-01-01T00:00:00Z"), limit=9),
    "sort stars": Query(sortby=[("sharinghub:stars", "desc")], limit=13),
    "sort title": Query(sortby=[("title", "asc")], limit=13),
    "sort created in ai-model": Query(collections=["ai-model"], sortby=[("created", "asc")],
                                      limit=6),
}


def run(store: Any, query: Query) -> list[dict]:
    pages, token = [], None
    while True:
        page = store.search(Query(**{**query.__dict__, "token": token}))
        pages.append({"matched": page.matched, "ids": [i["id"] for i in page.items],
                      "collections": [i["collection"] for i in page.items]})
        token = page.next_token
        if token is None or len(pages) > 50:
            return pages


def answers(store: Any) -> dict[str, Any]:
    """Everything the store answers about the fixture's content, JSON-ready."""
    items = {}
    for item in [*corpus(), dict(corpus()[121], id="grp-x/renamed-item")]:
        for collection in COLLECTIONS:
            found = store.get_item(collection, item["id"])
            if found is not None:
                items[f"{collection}:{item['id']}"] = found
    return {
        "searches": {name: run(store, query) for name, query in QUERIES.items()},
        "items": items,
        "collections": {c: [s.count, s.bbox and list(s.bbox), s.start, s.end]
                        for c, s in store.collections().items()},
        "queryables": store.queryables(),
        "states": {source: store.project_states(source) for source in ("gitlab", "local")},
        "project": store.project("grp-x/renamed-item"),
        "overlays": store.overlays(),
        "meta": store.get_meta("crawl"),
    }


# --- the tests --------------------------------------------------------------------------------


@pytest.fixture
def old_index(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.sqlite"
    with gzip.open(OLD_INDEX) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def _schema_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT value FROM store_info WHERE key = 'schema_version'").fetchone()[0]
    finally:
        conn.close()


def test_an_old_index_opens_migrated_and_answers_as_before(old_index: Path) -> None:
    assert _schema_version(old_index) == 2
    expected = json.loads(OLD_ANSWERS.read_text())
    store = open_store(f"sqlite://{old_index}")
    try:
        got = json.loads(json.dumps(answers(store)))
    finally:
        store.close()
    from sharinghub_server.index.sqlite import SCHEMA_VERSION

    assert _schema_version(old_index) == SCHEMA_VERSION > 2
    assert got["searches"] == expected["searches"]
    for key in ("items", "collections", "queryables", "states", "project", "overlays", "meta"):
        assert got[key] == expected[key], key
    # opening it again: no second migration, the same answers
    store = open_store(f"sqlite://{old_index}")
    try:
        assert json.loads(json.dumps(answers(store)))["searches"] == expected["searches"]
    finally:
        store.close()


def test_a_fresh_index_answers_as_the_old_one_did(tmp_path: Path) -> None:
    """The same content written by this store: the same answers as schema 2 gave."""
    expected = json.loads(OLD_ANSWERS.read_text())
    store = open_store(f"sqlite://{tmp_path}/fresh.sqlite")
    try:
        populate(store)
        got = json.loads(json.dumps(answers(store)))
    finally:
        store.close()
    assert got["searches"] == expected["searches"]
    for key in ("items", "collections", "queryables", "states", "project", "overlays", "meta"):
        assert got[key] == expected[key], key


def _words(item: dict) -> set[str]:
    props = item["properties"]
    text = " ".join([props.get("title") or "", props.get("description") or "",
                     *props.get("keywords", [])])
    return set(text.lower().split())


def _free_text_counts_match_the_items(store: Any) -> None:
    """Every word's count and matches, against the items the store serves."""
    served = [i for p in run(store, Query(limit=100)) for i in p["ids"]]
    everything = store.search(Query(limit=len(served))).items
    for word in WORDS:
        expected = {(i["collection"], i["id"]) for i in everything if word in _words(i)}
        page = store.search(Query(q=[word], limit=len(served)))
        assert page.matched == len(expected), word
        assert {(i["collection"], i["id"]) for i in page.items} == expected, word


def test_writes_after_the_migration_replace_old_rows_cleanly(old_index: Path) -> None:
    """Old rows (schema 2's documents, FTS entries rebuilt from its content) are replaced and
    deleted like new ones: nothing of them is found afterwards, before and after the FTS
    index is merged."""
    items = corpus()
    store = open_store(f"sqlite://{old_index}")
    try:
        _free_text_counts_match_the_items(store)
        before = store.collections()
        changed = dict(items[0], properties={**items[0]["properties"],
                                             "title": "Renamed zyxwvu flood",
                                             "sharinghub:stars": 999})
        store.apply("gitlab", [ProjectUpdate(items[0]["id"], {"v": 2}, [changed])],
                    [items[1]["id"]])
        assert store.get_item("ai-model", items[0]["id"]) == changed
        assert store.get_item("dataset", items[1]["id"]) is None
        assert store.project_states("gitlab")[items[0]["id"]] == {"v": 2}
        assert [i["id"] for i in store.search(Query(q=["zyxwvu"])).items] == [items[0]["id"]]
        assert [i["id"] for i in store.search(Query(filter=Compare(
            "=", Prop("sharinghub:stars"), 999))).items] == [items[0]["id"]]
        after = store.collections()
        assert after["dataset"].count == before["dataset"].count - 1
        assert after["ai-model"].count == before["ai-model"].count
        _free_text_counts_match_the_items(store)
        if hasattr(store, "maintain"):
            store.maintain()  # merging the FTS segments keeps the deletions
        _free_text_counts_match_the_items(store)
        # a new item may take a deleted one's recency key: no old posting may match it
        reborn = dict(items[1], id="grp-new/reborn", properties={
            **items[1]["properties"], "title": "Quiet", "description": "nothing", "keywords": []})
        store.apply("gitlab", [ProjectUpdate("grp-new/reborn", {}, [reborn])], [])
        _free_text_counts_match_the_items(store)
    finally:
        store.close()


if __name__ == "__main__":  # writes the fixture, with whichever store is importable
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    built = open_store(f"sqlite://{path}")
    populate(built)
    result = answers(built)
    built.close()
    conn = sqlite3.connect(path)
    conn.execute("VACUUM")
    conn.close()
    with open(path, "rb") as src, gzip.open(out / "index-v2.db.gz", "wb", 9) as dst:
        shutil.copyfileobj(src, dst)
    (out / "index-v2.answers.json").write_text(json.dumps(result, sort_keys=True))
