"""The embedded index store: one SQLite file (WAL mode), standard-library ``sqlite3`` only.

Layout (``SCHEMA_VERSION``):

* ``items``: one narrow row per STAC item (``source``, ``project``, ``collection``, ``id``,
  and typed columns for the common filters and sorts: ``datetime``/``start``/``end`` as epoch
  seconds, ``title``, the bbox). Kept free of JSON so that index walks, row lookups and scans
  stay cheap; indexed for the default sort and for date ranges.
* ``item_docs`` (same rowid): the item as JSON - ``props`` (its properties), ``json`` (the
  rest) - and its ``geometry`` GeoJSON. Read for the returned page, and by filters and sorts
  on properties (which then parse the properties only, not the links and assets).
* ``items_fts`` (FTS5 over title, description, keywords; rowid = item rowid) for ``q``.
* ``items_rtree`` (R*Tree) for ``bbox``/``intersects``; entry id = ``rowid * 2 + part`` since
  an item crossing the antimeridian has two boxes; auxiliary columns hold the exact bbox, which
  bbox queries check where the R*Tree's 32-bit rounding could decide wrongly.
* ``collection_stats`` (count, extents) and ``prop_types`` (per collection, property name and
  JSON type, how many items have it): kept up to date by writes, so ``collections()`` and
  ``queryables()`` never scan items.
* ``project_states``, ``meta`` (the ``get_meta``/``set_meta`` keys), and ``store_info``
  (schema version, and a generation counter bumped by every write, which keys read caches).

Threads: each thread gets its own connection; writes run in ``BEGIN IMMEDIATE`` transactions,
and a search runs its count and its page in one read transaction, so it sees one snapshot.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sqlite3
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import shapely

from .query import Interval, Page, Query, QueryError
from .sql_filter import (
    Binder,
    bbox_literal,
    compile_filter,
    epoch_to_iso,
    geometry_bounds,
    geometry_literal,
    interval_bounds,
    property_name,
    register_functions,
    resolve,
    rtree_subquery,
    split_antimeridian,
    to_epoch,
    uses_docs,
)
from .store import CollectionSummary, IndexStore, ProjectUpdate

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS project_states (
    source TEXT NOT NULL,
    project TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (source, project)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
    rowid INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    project TEXT NOT NULL,
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    datetime REAL,
    start REAL,
    "end" REAL,
    title TEXT,
    minx REAL, miny REAL, maxx REAL, maxy REAL,
    UNIQUE (collection, id)
);
CREATE TABLE IF NOT EXISTS item_docs (
    rowid INTEGER PRIMARY KEY,
    geometry TEXT,
    props TEXT,
    json TEXT NOT NULL
);
-- the default sort, per collection or not (start/end make them cover date-range counts)
CREATE INDEX IF NOT EXISTS items_collection_datetime
    ON items (collection, datetime, id, start, "end");
CREATE INDEX IF NOT EXISTS items_datetime ON items (datetime, id, start, "end");
-- date ranges: [start, end] intersects [a, b] is start <= b AND end >= a, either index can
-- answer (the planner picks the narrower side), and both cover the default sort's columns
CREATE INDEX IF NOT EXISTS items_start ON items (start, "end", datetime, id);
CREATE INDEX IF NOT EXISTS items_end ON items ("end", start, datetime, id);
CREATE INDEX IF NOT EXISTS items_id ON items (id);
CREATE INDEX IF NOT EXISTS items_title ON items (title, id);
CREATE INDEX IF NOT EXISTS items_project ON items (source, project);
CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5 (
    title, description, keywords, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS items_rtree
    USING rtree (id, minx, maxx, miny, maxy, +west, +south, +east, +north);
CREATE TABLE IF NOT EXISTS collection_stats (
    collection TEXT PRIMARY KEY,
    n INTEGER NOT NULL,
    tmin REAL, tmax REAL,  -- min start, max end
    west REAL, east REAL,  -- union of the boxes not crossing the antimeridian
    south REAL, north REAL,
    crossing INTEGER NOT NULL  -- items whose box crosses the antimeridian
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS prop_types (
    collection TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (collection, name, type)
) WITHOUT ROWID;
"""
_TABLES = ("store_info", "meta", "project_states", "items", "item_docs", "items_fts",
           "items_rtree", "collection_stats", "prop_types")

#: bm25 column weights (title, description, keywords): a title hit counts most
_BM25 = "bm25(items_fts, 10.0, 1.0, 5.0)"

#: sortable fields held in columns; anything else sorts by the JSON property
_SORT_COLUMNS = {
    "id": "items.id",
    "collection": "items.collection",
    "datetime": "items.datetime",
    "start_datetime": "items.start",
    "end_datetime": 'items."end"',
    "title": "items.title",
}
_UNSORTABLE = {"geometry", "bbox", "links", "assets", "type", "stac_version"}
_DEFAULT_SORT = [("datetime", "desc")]

_CACHE_SIZE = 512  # counts and pages (rowids and sort keys), per store generation
#: rows worth walking along a sort index (testing free text and bboxes row by row) rather
#: than collecting and sorting all matches
_DENSE_SCAN = 2000
#: sort expressions that have an index to walk
_INDEXED = {"items.datetime", "items.id", "items.collection", "items.title", "items.start",
            'items."end"'}


class _Cond:
    """A search condition: its SQL; ``scan``, the same test written to check rows one by one
    (while walking an index) rather than to drive the query; ``only``, a count query for
    when it is the query's only condition."""

    __slots__ = ("kind", "only", "scan", "sql")

    def __init__(self, sql: str, scan: str | None = None, kind: str = "",
                 only: str | None = None) -> None:
        self.sql, self.scan, self.kind, self.only = sql, scan, kind, only


class _Connection:
    """A thread's connection, closed when the thread ends (its thread-local goes)."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        weakref.finalize(self, conn.close)


class SQLiteStore(IndexStore):
    """The SQLite index at ``path`` (created with its parent folders if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        #: every thread's connection; a thread's goes when the thread does
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()  # guards _connections and the caches
        self._closed = False
        self._cache: OrderedDict[tuple, tuple[int, Any]] = OrderedDict()
        self._create_schema()

    # --- connections and transactions -------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        held = getattr(self._local, "held", None)
        if held is not None:
            return held.conn
        if self._closed:
            raise RuntimeError("the index store is closed")
        conn = sqlite3.connect(str(Path(self.path).expanduser()), timeout=60.0,
                               isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -65536")  # KiB: 64 MiB per connection at most
        conn.execute("PRAGMA mmap_size = 268435456")
        register_functions(conn)
        held = _Connection(conn)
        with self._lock:
            self._connections.add(held)
        self._local.held = held
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every statement inside sees the same snapshot."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taking the write lock up front (no upgrade deadlocks)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _create_schema(self) -> None:
        conn = self._conn()
        conn.execute("PRAGMA journal_mode = WAL")
        with self._write() as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'store_info'").fetchone()
            version = conn.execute(
                "SELECT value FROM store_info WHERE key = 'schema_version'"
            ).fetchone() if exists else None
            if version is not None and version[0] > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: index schema {version[0]} is newer than this "
                                   f"software's ({SCHEMA_VERSION})")
            if version is not None and version[0] < SCHEMA_VERSION:
                # the index is a cache of the sources: an old layout is rebuilt by a crawl
                for table in _TABLES:
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _statements(_SCHEMA):
                conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO store_info VALUES ('schema_version', ?)",
                         (SCHEMA_VERSION,))
            conn.execute("INSERT OR IGNORE INTO store_info VALUES ('generation', 0)")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = list(self._connections), weakref.WeakSet()
        for held in connections:
            with suppress(sqlite3.Error):
                held.conn.execute("PRAGMA optimize")
            held.conn.close()
        self._local = threading.local()

    @staticmethod
    def _generation(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM store_info WHERE key = 'generation'").fetchone()
        return int(row[0])

    # --- writes -----------------------------------------------------------------------------

    def apply(self, source: str, updates: list[ProjectUpdate], deletions: list[str]) -> None:
        rows = [(update, [_Row(item) for item in update.items]) for update in updates]
        changes = _Changes()
        with self._write() as conn:
            for project in deletions:
                self._delete_project(conn, source, project, changes)
                conn.execute("DELETE FROM project_states WHERE source = ? AND project = ?",
                             (source, project))
            for update, item_rows in rows:
                self._delete_project(conn, source, update.project, changes)
                for row in item_rows:
                    self._insert_item(conn, source, update.project, row, changes)
                conn.execute(
                    "INSERT INTO project_states (source, project, state) VALUES (?, ?, ?) "
                    "ON CONFLICT (source, project) DO UPDATE SET state = excluded.state",
                    (source, update.project, _dumps(update.state)),
                )
            changes.save(conn)
            conn.execute("UPDATE store_info SET value = value + 1 WHERE key = 'generation'")
            self._maybe_analyze(conn)

    _DELETED = ("SELECT items.rowid, collection, start, \"end\", minx, miny, maxx, maxy, props "
                "FROM items JOIN item_docs AS docs ON docs.rowid = items.rowid WHERE ")

    @staticmethod
    def _delete_rows(conn: sqlite3.Connection, found: list[tuple], changes: _Changes) -> None:
        """Delete items (rows of ``_DELETED``) with their docs, FTS and R*Tree rows."""
        for row in found:
            changes.removed(row)
        rowids = [(row[0],) for row in found]
        conn.executemany("DELETE FROM items_fts WHERE rowid = ?", rowids)
        conn.executemany("DELETE FROM items_rtree WHERE id IN (?1 * 2, ?1 * 2 + 1)", rowids)
        conn.executemany("DELETE FROM items WHERE rowid = ?", rowids)
        conn.executemany("DELETE FROM item_docs WHERE rowid = ?", rowids)

    def _delete_project(self, conn: sqlite3.Connection, source: str, project: str,
                        changes: _Changes) -> None:
        found = conn.execute(self._DELETED + "source = ? AND project = ?",
                             (source, project)).fetchall()
        if found:
            self._delete_rows(conn, found, changes)

    def _insert_item(self, conn: sqlite3.Connection, source: str, project: str, row: _Row,
                     changes: _Changes) -> None:
        # the same (collection, id) from another source or project: the newer write wins
        found = conn.execute(self._DELETED + "collection = ? AND id = ?",
                             (row.collection, row.id)).fetchall()
        if found:
            self._delete_rows(conn, found, changes)
        cursor = conn.execute(
            "INSERT INTO items (source, project, collection, id, datetime, start, \"end\", "
            "title, minx, miny, maxx, maxy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (source, project, row.collection, row.id, row.datetime, row.start, row.end,
             row.title, *(row.bbox or (None, None, None, None))),
        )
        rowid = cursor.lastrowid
        conn.execute("INSERT INTO item_docs (rowid, geometry, props, json) VALUES (?, ?, ?, ?)",
                     (rowid, row.geometry, row.props, row.json))
        conn.execute(
            "INSERT INTO items_fts (rowid, title, description, keywords) VALUES (?, ?, ?, ?)",
            (rowid, *row.text),
        )
        if row.bbox is not None:
            w, s, e, n = row.bbox
            conn.executemany(
                "INSERT INTO items_rtree (id, minx, maxx, miny, maxy, west, south, east, north) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(rowid * 2 + part, lo, hi, s, n, w, s, e, n)
                 for part, (lo, hi) in enumerate(split_antimeridian(row.bbox))],
            )
        changes.added(row)

    def _maybe_analyze(self, conn: sqlite3.Connection) -> None:
        """Refresh the planner's statistics when the item count has changed a lot since the
        last time (the choice between the datetime, start/end and FTS paths depends on them)."""
        count = conn.execute("SELECT coalesce(sum(n), 0) FROM collection_stats").fetchone()[0]
        row = conn.execute("SELECT value FROM store_info WHERE key = 'analyzed'").fetchone()
        last = row[0] if row else 0
        if count >= 1000 and (count > 2 * last or count < last / 2):
            conn.execute("PRAGMA analysis_limit = 2000")
            conn.execute("ANALYZE")
            conn.execute("INSERT INTO items_fts (items_fts) VALUES ('optimize')")
            conn.execute("INSERT OR REPLACE INTO store_info VALUES ('analyzed', ?)", (count,))

    def set_meta(self, key: str, value: Any) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         (key, _dumps(value)))

    # --- simple reads -----------------------------------------------------------------------

    def get_meta(self, key: str) -> Any | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def project_states(self, source: str) -> dict[str, dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT project, state FROM project_states WHERE source = ?", (source,))
        return {project: json.loads(state) for project, state in rows}

    def project(self, item_id: str) -> tuple[str, dict[str, Any]] | None:
        """(source, state) of the project an item id belongs to (the service's download
        endpoint asks this; not yet part of :class:`IndexStore`)."""
        conn = self._conn()
        row = conn.execute(
            "SELECT ps.source, ps.state FROM items JOIN project_states AS ps "
            "ON ps.source = items.source AND ps.project = items.project "
            "WHERE items.id = ? ORDER BY items.rowid DESC LIMIT 1", (item_id,)).fetchone()
        if row is None:  # a project without items (yet): by its id
            row = conn.execute("SELECT source, state FROM project_states WHERE project = ? "
                               "ORDER BY source LIMIT 1", (item_id,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def get_item(self, collection: str, item_id: str) -> dict | None:
        row = self._conn().execute(
            "SELECT json, props FROM items JOIN item_docs AS docs ON docs.rowid = items.rowid "
            "WHERE collection = ? AND id = ?",
            (collection, item_id),
        ).fetchone()
        return _load_item(*row) if row else None

    def collections(self) -> dict[str, CollectionSummary]:
        rows = self._conn().execute(
            "SELECT collection, n, tmin, tmax, west, south, east, north, crossing "
            "FROM collection_stats ORDER BY collection"
        ).fetchall()
        result = {}
        for collection, count, start, end, west, south, east, north, crossing in rows:
            bbox = None
            if south is not None:
                if crossing or west is None:
                    west, east = -180.0, 180.0
                bbox = (west, south, east, north)
            result[collection] = CollectionSummary(
                count=count,
                bbox=bbox,
                start=epoch_to_iso(start) if start is not None else None,
                end=epoch_to_iso(end) if end is not None else None,
            )
        return result

    def queryables(self, collection: str | None = None) -> dict[str, str]:
        sql = "SELECT name, type, sum(n) FROM prop_types"
        params: tuple = ()
        if collection is not None:
            sql += " WHERE collection = ?"
            params = (collection,)
        found: dict[str, Counter[str]] = {}
        for name, kind, n in self._conn().execute(sql + " GROUP BY name, type", params):
            found.setdefault(name, Counter())[kind] += n
        return {name: _merge_types(kinds) for name, kinds in sorted(found.items())}

    # --- search -----------------------------------------------------------------------------

    def search(self, query: Query) -> Page:
        if not isinstance(query.limit, int) or query.limit < 0:
            raise QueryError(f"invalid limit: {query.limit!r}")
        binder = Binder()
        match = _fts_match(query.q) if query.q else None
        if query.q and match is None:  # only terms that cannot match anything
            self._sort_spec(query)  # still report a bad sortby
            if query.token:
                _decode_token(query.token)
            return Page(items=[], matched=0)
        ranked = match is not None and not query.sortby
        sort = self._sort_spec(query)
        signature = _signature(sort, query.q if ranked else None)
        token = _decode_token(query.token) if query.token else None
        if token is not None and token["s"] != signature:
            raise QueryError("the paging token belongs to a different sort order")
        if ranked:
            keys = [(_BM25, "asc"), ("items_fts.rowid", "asc")]
        else:
            keys = [(expr, direction) for _, expr, direction in sort]
            keys.append(("items.rowid", keys[-1][1]))  # unique tie-breaker, index-friendly

        with self._read() as conn:
            generation = self._generation(conn)
            where = self._where(conn, generation, query, binder, match)
            matched = self._count(conn, generation, where, binder.params)
            if query.limit == 0 or matched == 0:
                return Page(items=[], matched=matched)
            backward = token is not None and token["d"] == "p"
            order = [(e, _flip(d)) for e, d in keys] if backward else keys
            if ranked:  # from the FTS table, whose bm25() ranks
                others = [c.sql for c in where if c.kind != "fts"]
                source = "items_fts"
                if others:
                    source += " JOIN items ON items.rowid = items_fts.rowid"
                conditions = [f"items_fts MATCH {binder.bind(match)}", *others]
            elif keys[0][0] in _INDEXED and self._dense(conn, generation, matched, query.limit):
                # many rows match: walking the sort's index and testing each row beats
                # collecting every match to sort them
                source, conditions = "items", [c.scan or c.sql for c in where]
            else:
                source, conditions = "items", [c.sql for c in where]
                if keys[0][0] not in _INDEXED and not any(c.kind for c in where):
                    source += " NOT INDEXED"  # sorting every item: read them in rowid order
            segments = _keyset(order, token["k"], binder) if token is not None else ["1"]
            if any(uses_docs(sql) for sql in [*conditions, *segments, *(e for e, _ in keys)]):
                source += " JOIN item_docs AS docs ON docs.rowid = items.rowid"
            # the page's sort keys and rowids first, its JSON after: sorting carries no JSON
            rows: list = []
            for segment in segments:
                rows += self._cached(
                    conn, generation,
                    f"SELECT {', '.join(e for e, _ in keys)} "
                    f"FROM {source} WHERE {' AND '.join([*conditions, segment])} "
                    f"ORDER BY {', '.join(f'{e} {d.upper()}' for e, d in order)} "
                    f"LIMIT {query.limit + 1 - len(rows)}",
                    binder.params,
                    lambda cursor: cursor.fetchall(),
                )
                if len(rows) > query.limit:
                    break
            more = len(rows) > query.limit
            rows = [list(row) for row in rows[: query.limit]]
            docs = self._docs(conn, [row[-1] for row in rows])

        if backward:
            rows.reverse()
        items = [docs[row[-1]] for row in rows]
        first = rows[0] if rows else None
        last = rows[-1] if rows else None
        next_token = prev_token = None
        if backward:
            prev_token = _encode_token(signature, "p", first) if more and first else None
            if last is not None:
                next_token = _encode_token(signature, "n", last)
            elif token is not None:  # nothing left before: what was after is still there
                next_token = _encode_token(signature, "n", _nudge(token["k"], keys, -1))
        else:
            next_token = _encode_token(signature, "n", last) if more and last else None
            if token is not None:
                prev_token = _encode_token(signature, "p", first) if first else \
                    _encode_token(signature, "p", _nudge(token["k"], keys, +1))
        return Page(items=items, matched=matched, next_token=next_token, prev_token=prev_token)

    @staticmethod
    def _docs(conn: sqlite3.Connection, rowids: list[int]) -> dict[int, dict]:
        """rowid -> item, for a page."""
        if not rowids:
            return {}
        marks = ", ".join("?" * len(rowids))
        found = conn.execute(
            f"SELECT rowid, json, props FROM item_docs WHERE rowid IN ({marks})", rowids)
        return {rowid: _load_item(rest, props) for rowid, rest, props in found}

    def _count(self, conn: sqlite3.Connection, generation: int, where: list[_Cond],
               params: dict) -> int:
        """The exact match count: the same conditions, without ORDER BY or JSON (and from
        the FTS or R*Tree index alone when it is the only condition)."""
        if len(where) == 1 and where[0].only:
            sql = where[0].only
        else:
            source = "items"
            if any(uses_docs(c.sql) for c in where):
                # reading every item's JSON: in rowid order, not along some index
                if not any(c.kind for c in where):
                    source += " NOT INDEXED"
                source += " JOIN item_docs AS docs ON docs.rowid = items.rowid"
            sql = f"SELECT count(*) FROM {source} WHERE {' AND '.join(c.sql for c in where) or '1'}"
        return self._cached(conn, generation, sql, params, lambda cursor: cursor.fetchone()[0])

    def _crossing_items(self, conn: sqlite3.Connection, generation: int) -> int:
        return self._cached(conn, generation,
                            "SELECT coalesce(sum(crossing), 0) FROM collection_stats", {},
                            lambda cursor: cursor.fetchone()[0])

    def _dense(self, conn: sqlite3.Connection, generation: int, matched: int, limit: int) -> bool:
        """Whether walking an index in sort order finds a page within a few thousand rows."""
        total = self._cached(conn, generation, "SELECT count(*) FROM items", {},
                             lambda cursor: cursor.fetchone()[0])
        return (limit + 1) * total <= _DENSE_SCAN * matched

    def _cached(self, conn: sqlite3.Connection, generation: int, sql: str, params: dict,
                read: Any) -> Any:
        """``read(conn.execute(sql, params))``, remembered until the next write: a catalog
        changes at crawl time only, and paging asks for the same count again and again."""
        key = (sql, tuple(sorted(params.items(), key=lambda kv: kv[0])))
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] == generation:
                self._cache.move_to_end(key)
                return cached[1]
        value = read(conn.execute(sql, params))
        with self._lock:
            self._cache[key] = (generation, value)
            self._cache.move_to_end(key)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return value

    def _where(self, conn: sqlite3.Connection, generation: int, query: Query, binder: Binder,
               match: str | None) -> list[_Cond]:
        """The query's conditions on ``items`` (joined with ``docs`` when they need it)."""
        where: list[_Cond] = []
        if match is not None:
            m = binder.bind(match)
            # (scan: not a correlated FTS query per row, whose cost is unbounded when the
            # matches sit at the far end of the sort order)
            matches = f"SELECT rowid FROM items_fts WHERE items_fts MATCH {m}"
            where.append(_Cond(
                f"items.rowid IN ({matches})", scan=f"+items.rowid IN ({matches})", kind="fts",
                only=f"SELECT count(*) FROM items_fts WHERE items_fts MATCH {m}",
            ))
        if query.collections:
            where.append(_Cond(_in_list("items.collection", query.collections, binder),
                               kind="index"))
        if query.ids:
            where.append(_Cond(_in_list("items.id", query.ids, binder), kind="index"))
        if query.bbox is not None:
            box = bbox_literal(query.bbox)
            rtree = rtree_subquery(binder, box, exact=True)
            # an item has two R*Tree entries when it crosses the antimeridian: count each once
            # (only then, as counting distinct values costs a sort)
            once = box[0] <= box[2] and not self._crossing_items(conn, generation)
            where.append(_Cond(
                f"items.rowid IN ({rtree})", scan=f"+items.rowid IN ({rtree})", kind="bbox",
                only=f"SELECT count({'*' if once else 'DISTINCT item'}) FROM ({rtree})",
            ))
        if query.intersects is not None:
            text = geometry_literal(query.intersects)
            bounds = geometry_bounds(text)
            if bounds is None:
                where.append(_Cond("0"))
            else:
                rtree = rtree_subquery(binder, bounds)
                where.append(_Cond(f"items.rowid IN ({rtree})",
                                   scan=f"+items.rowid IN ({rtree})", kind="bbox"))
                where.append(_Cond(
                    f"sh_spatial('intersects', {binder.bind(text)}, docs.geometry)"))
        if query.datetime is not None:
            where.extend(_Cond(c, kind="index")
                         for c in _datetime_conditions(query.datetime, binder))
        if query.filter is not None:
            sql, indexed = compile_filter(query.filter, binder)
            where.append(_Cond(sql, kind="index" if indexed else ""))
        return where

    def _sort_spec(self, query: Query) -> list[tuple[str, str, str]]:
        """[(field, SQL, direction)] of the query's sort (or the default one)."""
        spec = []
        for entry in query.sortby or _DEFAULT_SORT:
            try:
                field, direction = entry
            except (TypeError, ValueError):
                raise QueryError(f"invalid sortby entry: {entry!r}") from None
            direction = str(direction).lower()
            if direction not in ("asc", "desc"):
                raise QueryError(f"invalid sort direction {direction!r} for {field!r}")
            if not isinstance(field, str) or not field:
                raise QueryError(f"invalid sort field: {field!r}")
            name = property_name(field)
            if name in _UNSORTABLE:
                raise QueryError(f"cannot sort by {field!r}")
            spec.append((name, _SORT_COLUMNS.get(name) or resolve(name).sql, direction))
        if all(name != "id" for name, _, _ in spec):  # the tie-breaker the indexes hold
            spec.append(("id", "items.id", spec[-1][2]))
        return spec


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a script (``executescript`` would commit our transaction)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""


class _Changes:
    """What one ``apply`` changes in the per-collection summaries, saved at its end."""

    def __init__(self) -> None:
        self.types: Counter[tuple[str, str, str]] = Counter()
        self.count: Counter[str] = Counter()
        self.crossing: Counter[str] = Counter()
        #: collection -> [tmin, tmax, west, east, south, north] of the added items
        self.extents: dict[str, list[float | None]] = {}
        #: collection -> (start, end, minx, miny, maxx, maxy) of the removed items
        self.gone: dict[str, list[tuple]] = {}

    def added(self, row: _Row) -> None:
        c = row.collection
        self.count[c] += 1
        for name, kind in row.types:
            self.types[(c, name, kind)] += 1
        ext = self.extents.setdefault(c, [None] * 6)
        bbox = row.bbox
        crossing = bbox is not None and bbox[0] > bbox[2]
        self.crossing[c] += crossing
        lon = (bbox[0], bbox[2]) if bbox is not None and not crossing else (None, None)
        lat = (bbox[1], bbox[3]) if bbox is not None else (None, None)
        for i, (value, pick) in enumerate(zip(
                (row.start, row.end, lon[0], lon[1], lat[0], lat[1]),
                (min, max, min, max, min, max), strict=True)):
            if value is not None:
                ext[i] = value if ext[i] is None else pick(ext[i], value)

    def removed(self, row: tuple) -> None:
        _, c, start, end, minx, miny, maxx, maxy, props = row
        self.count[c] -= 1
        for name, kind in _property_types(json.loads(props) if props else {}):
            self.types[(c, name, kind)] -= 1
        if minx is not None and minx > maxx:
            self.crossing[c] -= 1
        self.gone.setdefault(c, []).append((start, end, minx, miny, maxx, maxy))

    def save(self, conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO prop_types (collection, name, type, n) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (collection, name, type) DO UPDATE SET n = n + excluded.n",
            [(c, name, t, n) for (c, name, t), n in self.types.items() if n],
        )
        conn.execute("DELETE FROM prop_types WHERE n <= 0")
        for c in set(self.count) | set(self.gone):
            self._save_stats(conn, c)

    def _save_stats(self, conn: sqlite3.Connection, c: str) -> None:
        old = conn.execute(
            "SELECT n, tmin, tmax, west, east, south, north, crossing FROM collection_stats "
            "WHERE collection = ?", (c,)).fetchone()
        n = (old[0] if old else 0) + self.count[c]
        if n <= 0:
            conn.execute("DELETE FROM collection_stats WHERE collection = ?", (c,))
            return
        gone = self.gone.get(c, ())
        if gone and (old is None or any(_on_edge(item, old) for item in gone)):
            # a removed item may have held an extent's edge: recompute this collection
            stats = conn.execute(
                'SELECT count(*), min(start), max("end"), '
                "min(CASE WHEN minx <= maxx THEN minx END), "
                "max(CASE WHEN minx <= maxx THEN maxx END), min(miny), max(maxy), "
                "coalesce(sum(minx > maxx), 0) FROM items WHERE collection = ?", (c,),
            ).fetchone()
        else:
            merged = list(old[1:7]) if old else [None] * 6
            for i, value in enumerate(self.extents.get(c, [None] * 6)):
                if value is not None:
                    pick = min if i % 2 == 0 else max
                    merged[i] = value if merged[i] is None else pick(merged[i], value)
            stats = (n, *merged, (old[7] if old else 0) + self.crossing[c])
        conn.execute(
            "INSERT OR REPLACE INTO collection_stats "
            "(collection, n, tmin, tmax, west, east, south, north, crossing) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (c, *stats))


def _on_edge(gone: tuple, old: tuple) -> bool:
    """Whether a removed item's extent reaches the collection's (so removing it may shrink
    them)."""
    start, end, minx, miny, maxx, maxy = gone
    _, tmin, tmax, west, east, south, north, _ = old
    if start is not None and (tmin is None or start <= tmin):
        return True
    if end is not None and (tmax is None or end >= tmax):
        return True
    if miny is None:
        return False
    if south is None or miny <= south or maxy >= north:
        return True
    if minx > maxx:  # boxes crossing the antimeridian are counted, not in west/east
        return False
    return west is None or minx <= west or maxx >= east


# --- item rows --------------------------------------------------------------------------------


class _Row:
    """The columns of one item, computed before the write transaction starts."""

    __slots__ = ("bbox", "collection", "datetime", "end", "geometry", "id", "json", "props",
                 "start", "text", "title", "types")

    def __init__(self, item: dict) -> None:
        collection, item_id = item.get("collection"), item.get("id")
        if not isinstance(collection, str) or not isinstance(item_id, str):
            raise ValueError(f"an indexed item needs a string id and collection: {item_id!r}")
        self.collection, self.id = collection, item_id
        props = item.get("properties")
        props = props if isinstance(props, dict) else {}
        dt = to_epoch(props.get("datetime"))
        start = to_epoch(props.get("start_datetime"))
        end = to_epoch(props.get("end_datetime"))
        self.datetime = _first(dt, start, end)
        self.start = _first(start, dt, end)
        self.end = _first(end, dt, start)
        title = props.get("title")
        self.title = title if isinstance(title, str) else None
        self.geometry = _dumps(item["geometry"]) if item.get("geometry") else None
        self.bbox = _item_bbox(item)
        keywords = props.get("keywords")
        self.text = (
            _text(title),
            _text(props.get("description")),
            " ".join(_text(k) for k in keywords) if isinstance(keywords, list) else
            _text(keywords),
        )
        self.types = list(_property_types(props))
        rest = dict(item)
        if "properties" in item:
            rest["properties"] = None  # keeps the key's place; props holds the value
            self.props: str | None = _dumps(item["properties"])
        else:
            self.props = None
        self.json = _dumps(rest)


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _load_item(rest: str, props: str | None) -> dict:
    item = json.loads(rest)
    if props is not None:
        item["properties"] = json.loads(props)
    return item


def _item_bbox(item: dict) -> tuple[float, float, float, float] | None:
    """The item's bbox (its own, else its geometry's bounds), None if it has neither."""
    bbox = item.get("bbox")
    if isinstance(bbox, (list, tuple)) and len(bbox) in (4, 6):
        try:
            return bbox_literal(bbox)
        except QueryError:
            pass
    geometry = item.get("geometry")
    if not geometry:
        return None
    try:
        bounds = shapely.bounds(shapely.from_geojson(_dumps(geometry)))
    except Exception:
        return None
    if any(math.isnan(v) for v in bounds):
        return None
    return float(bounds[0]), float(bounds[1]), float(bounds[2]), float(bounds[3])


def _property_types(props: dict) -> Iterator[tuple[str, str]]:
    for name, value in props.items():
        kind = _json_type(value)
        if kind is not None:
            yield name, kind


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


def _merge_types(kinds: Counter[str]) -> str:
    """One JSON type for a property seen with several: integers count as numbers when there
    are some, then the most common type wins."""
    kinds = Counter(kinds)
    if "number" in kinds:
        kinds["number"] += kinds.pop("integer", 0)
    return sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


# --- query pieces -----------------------------------------------------------------------------


def _fts_match(terms: list[str]) -> str | None:
    """An FTS5 query OR-ing the terms, each a quoted phrase; None if no term has a word."""
    phrases = []
    for term in terms:
        if isinstance(term, str) and any(ch.isalnum() for ch in term):
            term = term.replace("\x00", " ")  # FTS5 would read it as the query's end
            phrases.append('"' + term.replace('"', '""') + '"')
    return " OR ".join(phrases) if phrases else None


def _in_list(column: str, values: list[str], binder: Binder) -> str:
    return f"{column} IN ({', '.join(binder.bind(v) for v in values)})"


def _datetime_conditions(interval: Any, binder: Binder) -> list[str]:
    if not isinstance(interval, Interval):
        interval = Interval(interval, interval)
    bounds = interval_bounds(interval)
    if bounds is None:
        raise QueryError(f"invalid datetime interval: {interval!r}")
    lo, hi = bounds
    if lo > hi:
        raise QueryError("the datetime interval ends before it starts")
    conditions = []
    if hi != math.inf:
        conditions.append(f"items.start <= {binder.bind(hi)}")
    if lo != -math.inf:
        conditions.append(f'items."end" >= {binder.bind(lo)}')
    return conditions or ['items."end" IS NOT NULL']


def _flip(direction: str) -> str:
    return "desc" if direction == "asc" else "asc"


#: sort expressions that are never NULL (no NULL block to page through)
_NOT_NULL = {"items.id", "items.collection", "items.rowid", "items_fts.rowid", _BM25}


def _after(keys: list[tuple[str, str]], values: list[Any], binder: Binder) -> str:
    """Rows strictly after ``values`` in the order ``keys`` ([(SQL, direction)]), with SQLite's
    NULL placement (first when ascending, last when descending). A filter, not a seek."""
    alternatives = []
    equal: list[str] = []
    for (expr, direction), value in zip(keys, values, strict=True):
        nullable = expr not in _NOT_NULL
        if value is None:
            later = f"{expr} IS NOT NULL" if direction == "asc" else None
            same = f"{expr} IS NULL"
        else:
            p = binder.bind(value)
            later = f"{expr} > {p}" if direction == "asc" else \
                f"coalesce({expr} < {p}, 1)" if nullable else f"{expr} < {p}"
            same = f"{expr} = {p}"
        if later is not None:
            alternatives.append(" AND ".join([*equal, later]))
        equal.append(same)
    return "(" + " OR ".join(f"({a})" for a in alternatives) + ")" if alternatives else "0"


def _keyset(keys: list[tuple[str, str]], values: list[Any], binder: Binder) -> list[str]:
    """The rows after ``values`` in the order ``keys``, as conditions on consecutive segments
    of that order, each one an index range on the first key: values of the first key, and
    its NULL block (which SQLite sorts first ascending, last descending). Writing it as one OR
    would leave SQLite unable to seek."""
    (lead, direction), value = keys[0], values[0]
    tail = _after(keys[1:], values[1:], binder)
    nullable = lead not in _NOT_NULL
    if value is None:
        segments = [f"{lead} IS NULL AND {tail}"]
        if direction == "asc":
            segments.append(f"{lead} IS NOT NULL")
        return segments
    p = binder.bind(value)
    if direction == "asc":
        return [f"{lead} >= {p} AND ({lead} > {p} OR ({lead} = {p} AND {tail}))"]
    segments = [f"{lead} <= {p} AND ({lead} < {p} OR ({lead} = {p} AND {tail}))"]
    if nullable:
        segments.append(f"{lead} IS NULL")
    return segments


def _nudge(key: list[Any], keys: list[tuple[str, str]], step: int) -> list[Any]:
    """A key just past ``key`` (its rowid moved one step in the tie-breaker's direction), so
    that "strictly before/after" the result includes the row at ``key`` itself."""
    forward = 1 if keys[-1][1] == "asc" else -1
    return [*key[:-1], key[-1] + step * forward]


def _signature(sort: list[tuple[str, str, str]], ranked_q: list[str] | None) -> list:
    if ranked_q is not None:
        return ["rank", list(ranked_q)]
    return [[name, direction] for name, _, direction in sort]


def _encode_token(signature: list, direction: str, key: list[Any] | None) -> str | None:
    if key is None:
        return None
    raw = json.dumps({"s": signature, "d": direction, "k": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise QueryError("invalid paging token") from None
    if (not isinstance(data, dict) or data.get("d") not in ("n", "p")
            or not isinstance(data.get("k"), list) or not data["k"]
            or not isinstance(data["k"][-1], int) or isinstance(data["k"][-1], bool)
            or not all(v is None or isinstance(v, (str, int, float)) for v in data["k"])):
        raise QueryError("invalid paging token")
    if len(data["k"]) != _key_length(data.get("s")):
        raise QueryError("invalid paging token")
    return data


def _key_length(signature: Any) -> int:
    if isinstance(signature, list) and signature[:1] == ["rank"]:
        return 2
    return len(signature) + 1 if isinstance(signature, list) else -1


__all__ = ["SCHEMA_VERSION", "SQLiteStore"]
