"""The embedded index store: one SQLite file (WAL mode), standard-library ``sqlite3`` only.

Layout (``SCHEMA_VERSION``):

* ``items``: one narrow row per STAC item (``source``, ``project``, ``collection``, ``id``,
  ``doc`` - its ``item_docs`` row - and typed columns for the common filters and sorts:
  ``datetime``/``start``/``end`` as epoch seconds, ``title``, the bbox). Kept free of JSON so
  that index walks, row lookups and scans stay cheap; indexed for the default sort and for date
  ranges, and by (id, collection). Its rowid is a *recency key*: the item's ``datetime`` in
  whole seconds, then the order of indexing among items of the same second (undated items
  first), so that "newest first" is rowid order - the order in which the FTS index lists its
  matches too.
* ``item_docs``: the item - ``props`` (its properties), ``json`` (the rest) and its
  ``geometry`` - each JSON text compressed (:mod:`.packing`; schema 2's rows, JSON texts with
  the geometry in the rest too, are read as they are). Keyed in the order of writing, not by
  recency: a write appends to the last pages instead of rewriting a random page per item.
  Read for the returned page, and by the filters that ``item_props`` cannot answer (under a
  NOT, arrays, property against property: SQL reads ``sh_json(docs.props)``).
* ``item_props``: every scalar property of every item (but the long ``description``), one row
  per (name, kind, value): numbers, strings, booleans, and timestamp strings once more as epoch
  seconds (see :func:`~.sql_filter.property_rows`); names are coded (``prop_names``). Its key
  (name, kind, value, id, item) turns a filter on a property into an index range, and a sort
  on one into an index walk in the sort's order (ties by id, like every sort); a second index
  (item, name, kind) looks up one item's value.
* ``overlays``: JSON per (item id, key) that the service merges into served items (registered
  MLflow models); outside every crawl and every schema rebuild.
* ``items_fts`` (FTS5 over title, description, keywords; rowid = item rowid) for ``q``,
  contentless (the texts are the properties'; deleting an item gives the index the texts it
  had, see :func:`_fts_text`), and ``term_docs``: how many items each of its tokens is in,
  recounted by :meth:`maintain` (a one-word search is counted from it while the FTS index is
  unchanged since; a two-word one from both words' counts less the items with both).
* ``items_rtree`` (R*Tree) for ``bbox``/``intersects``; entry id = ``rowid * 2 + part`` since
  an item crossing the antimeridian has two boxes; auxiliary columns hold the exact bbox, which
  bbox queries check where the R*Tree's 32-bit rounding could decide wrongly. Its third
  dimension is the item's [start, end] (in units of 100 days, so that space still shapes the
  tree): a bbox with a date range is one R*Tree query.
* ``items_time`` (R*Tree of dated items' [start, end], exact values in auxiliary columns) for
  date ranges that hold few of the items on either side of them, and ``time_hist`` (how many
  items start and end in each 12 days) to tell, to estimate any date range's count, and to
  count a date range alone exactly from it and the rows of one 12 days per side (while no
  item starts after it ends: ``store_info`` counts those); ``collection_time_hist``, the same
  per collection, counts a collection's items in a date range.
* ``collection_stats`` (count, extents) and ``prop_types`` (per collection, property name and
  JSON type, how many items have it): kept up to date by writes, so ``collections()`` and
  ``queryables()`` never scan items.
* ``project_states`` (compressed JSON), ``meta`` (the ``get_meta``/``set_meta`` keys), and
  ``store_info`` (schema version, a generation counter bumped by every write, which keys read
  caches, and the bookkeeping of the above).

Schema 3 (this one) stores what schema 2 did in about 55% of the space and writes fewer pages
per item; an index of schema 2 is migrated in place on opening (:func:`_migrate_v2`: a few
seconds per 100,000 items), since an index may be served with no source to crawl it again.

Searching: every part of a query (free text, bbox, datetime, each conjunct of the filter) is a
condition with several SQL forms (:class:`~.sql_filter.Cond`); the plan lets the condition with
the fewest matches find the rows (by cheap capped counts, or the counts kept above; a capped
count is counted further when another condition's count is above the cap) and tests the others
on them (a property test of many rows as one list of its matches), or walks the sort's index
when matches are dense. A conjunction of property tests and date ranges that SQL took long to
count is counted from the tested values held in memory from then on (:mod:`.columns`: read in
the background, until the next write). When a condition finds
at most ``_COLLECT_MAX`` items, one query lists all the matches in order: their number is the
exact count, and a page a slice of them (the next pages too: the list is cached). Free text
ranks by bm25 while its terms match at most ``_BM25_MAX`` items; beyond that (a common word:
bm25 would score tens of thousands of rows per page, and says little about them) it ranks by
*field*: items matching in their title first, then in their keywords, then in their
description only, newest first within each - one FTS query per field, read in rowid (recency)
order. The ranking a first page uses stays with its paging tokens, so paging stays exact.

Writes: ``apply`` hands its batch to a writer thread (:mod:`.write_queue`), which writes every
batch queued at that moment in one transaction: a crawl queues its batches of 200 projects
without waiting, so while a transaction commits the next ones gather, and each B-tree page they
touch is logged once for all of them (built through batches of 1,000, 100,000 items took 56 s
written one batch per transaction, the last batches costing 3.2 times the first per item; 29 s
queued, 1.4 times). The writer's connection has a bigger page cache, so that pages a big
transaction dirties stay in memory until it commits; transactions are sized to last a few
seconds, and the writer empties the WAL between two once it is past ``_WAL_LIMIT``. Each
transaction adds an FTS segment, which every FTS query then reads too (FTS5's own automerge
keeps them a few per level): a few seconds after the last write,
:meth:`SQLiteStore.maintain` merges them into one and recounts the tokens, in the background.
No write does work in proportion to the index (no FTS merge of all of it, statistics
refreshed with a bounded ``analysis_limit``) but for the pages it touches.

The writer thread makes the rows too (encoding, packing): made in the caller's thread, they
would overlap with the writes only in C, and ``executemany`` gives up the GIL around each row's
step, then waits for it, up to the switch interval (5 ms), whenever another thread runs Python.
Made there, 100,000 items took 48 s to build instead of 39; and beside a thread running Python
70% of the time, 20,000 items took 21.5 s to write instead of 7.6. Statements that hold
thousands of rows (multi-row VALUES, or rows read from JSON) keep the GIL away, but SQLite took
1.5 to 2 times as long to run them here: both built slower (44.7 and 47.3 s). Measured again
with statements of 30,000 parameters (alone, 400,000 property rows took 3.4 s against 3.6
with ``executemany``; beside a busy thread 3.7 s against over 14 minutes): the build was no
faster (27.2 and 28.2 s against 25.0 and 25.9), as the writer's own Python (the parameters'
lists, the statistics) then waits for the GIL as well, and the statements took 1.4 to 2.2
times as long.
Where the writer's time goes, 100,000 items in 6 transactions (25.2 s in all): the INSERTs
12.4 s (``item_props`` 4.5, FTS 2.2, ``items`` and its indexes 2.0, the R*Trees 2.6), the
commits 2.2, emptying the WAL 1.4, Python and the rest 9 (the rows about 4.3).

Threads: each thread gets its own connection; writes run in ``BEGIN IMMEDIATE`` transactions,
and a search runs its count and its page in one read transaction, so it sees one snapshot.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import math
import re
import sqlite3
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar, cast

from .checkpoint import Checkpointer
from .columns import MAX_WORDS, Columns, Test, TimeTest
from .packing import GEOMETRY, PROPS, REST, STATE, pack_json, unpack_json
from .query import Budget, Interval, Page, Query, QueryError, QueryInterrupted
from .sql_filter import (
    ESTIMATE_CAP,
    JSON_TYPE_KINDS,
    KIND_NUMBER,
    RTREE_TIME_UNIT,
    Binder,
    Cond,
    bbox_literal,
    bbox_test,
    compile_filter,
    epoch_to_iso,
    geometry_bounds,
    geometry_literal,
    in_props_table,
    interval_bounds,
    name_code,
    property_name,
    property_rows,
    qualify_props,
    register_functions,
    resolve,
    rtree_join,
    rtree_subquery,
    split_antimeridian,
    sql_string,
    time_rtree_test,
    to_epoch,
    uses_docs,
)
from .store import CollectionSummary, IndexStore, ProjectUpdate, StoreClosed
from .write_queue import WriteQueue

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS overlays (
    item TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (item, key)
) WITHOUT ROWID;
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
    doc INTEGER NOT NULL,  -- item_docs.rowid
    datetime REAL,
    start REAL,
    "end" REAL,
    title TEXT,
    minx REAL, miny REAL, maxx REAL, maxy REAL
);
-- appended in the order of writing (not by recency key): a write fills the last pages
CREATE TABLE IF NOT EXISTS item_docs (
    rowid INTEGER PRIMARY KEY,
    geometry TEXT,
    props TEXT,
    json NOT NULL  -- BLOBs packed by .packing (schema 2 rows: TEXT, the rest with geometry)
);
-- property names, coded: item_props holds the codes
CREATE TABLE IF NOT EXISTS prop_names (code INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS item_props (
    name INTEGER NOT NULL,  -- prop_names.code
    kind INTEGER NOT NULL,  -- sql_filter.KIND_*: number, string, boolean, timestamp
    value NOT NULL,  -- no type affinity: numbers stay numbers, texts texts
    id TEXT NOT NULL,  -- the item's id: sorts break ties by it
    item INTEGER NOT NULL,  -- items.rowid
    PRIMARY KEY (name, kind, value, id, item)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS item_props_item ON item_props (item, name, kind);
-- the default sort, per collection or not (start/end make them cover date-range counts)
CREATE INDEX IF NOT EXISTS items_collection_datetime
    ON items (collection, datetime, id, start, "end");
CREATE INDEX IF NOT EXISTS items_datetime ON items (datetime, id, start, "end");
-- date ranges: [start, end] intersects [a, b] is start <= b AND end >= a, either index can
-- answer (the planner picks the narrower side), and both cover the default sort's columns
CREATE INDEX IF NOT EXISTS items_start ON items (start, "end", datetime, id);
CREATE INDEX IF NOT EXISTS items_end ON items ("end", start, datetime, id);
-- ids (a project's items share it) and (collection, id) lookups, and the sort by id
CREATE UNIQUE INDEX IF NOT EXISTS items_id ON items (id, collection);
CREATE INDEX IF NOT EXISTS items_title ON items (title, id);
CREATE INDEX IF NOT EXISTS items_project ON items (source, project);
-- contentless: the texts are in item_docs.props (see _fts_text), deleted by value
CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5 (
    title, description, keywords, content = '', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS items_rtree
    USING rtree (id, minx, maxx, miny, maxy, mint, maxt, +west, +south, +east, +north);
CREATE VIRTUAL TABLE IF NOT EXISTS items_vocab USING fts5vocab (items_fts, 'row');
-- how many items each FTS token is in, as of the last maintenance (valid while the store_info
-- key 'term_docs' is 1): counts one-word searches without reading the token's postings
-- (two-word ones: both counts less the items with both)
CREATE TABLE IF NOT EXISTS term_docs (term TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS items_time USING rtree (id, mint, maxt, +t0, +t1);
-- how many items start and end in each 2^20 s (12 days) of time: date range estimates and
-- counts
CREATE TABLE IF NOT EXISTS time_hist (
    bucket INTEGER PRIMARY KEY,
    starts INTEGER NOT NULL,
    ends INTEGER NOT NULL
);
-- the same per collection: a collection's items in a date range, counted the same way
CREATE TABLE IF NOT EXISTS collection_time_hist (
    collection TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    starts INTEGER NOT NULL,
    ends INTEGER NOT NULL,
    PRIMARY KEY (collection, bucket)
) WITHOUT ROWID;
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
_TABLES = ("store_info", "meta", "project_states", "items", "item_docs", "item_props",
           "prop_names", "items_vocab", "term_docs", "items_fts", "items_rtree", "items_time",
           "time_hist", "collection_time_hist", "collection_stats", "prop_types")

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
#: when a condition finds at most this many items, one query lists all the matches in order
#: (their number is the count, a page a slice of them); such lists are cached apart, fewer
_COLLECT_MAX = ESTIMATE_CAP
_ROWS_CACHE_SIZE = 32
#: rows worth walking along a sort index (testing free text and bboxes row by row) rather
#: than collecting and sorting all matches
_DENSE_SCAN = 2000
#: sort expressions that have an index to walk, and the index
_WALK_INDEX = {"items.datetime": "items_datetime", "items.id": "items_id",
               "items.title": "items_title", "items.start": "items_start",
               'items."end"': "items_end"}
_INDEXED = {*_WALK_INDEX, "items.collection"}

#: free text ranks by bm25 while its terms match at most this many items, by field beyond
_BM25_MAX = 3000
#: the share of the items (the newest) whose free-text matches tell whether there are few
_SAMPLE_SHARE = 0.03
#: the fields of that ranking, best first: FTS queries for the matches in the title, in the
#: keywords but not the title, and only in the rest (the description); together, all matches
_FIELD_TIERS = (
    "{{title}} : ({q})",
    "({{keywords}} : ({q})) NOT ({{title}} : ({q}))",
    "({q}) NOT ({{title keywords}} : ({q}))",
)
_FIELDS_KEYS = [("tier", "asc"), ("items_fts.rowid", "desc")]

#: what plans cost, in microseconds (measured on a small machine), to choose between them:
_COST_ROW = 0.5  # one row found by the condition that finds the rows
_COST_PROBE = 15.0  # one lookup in the FTS index for one row
_COST_LIST = 0.25  # per match, listing the matches of a free-text condition (an IN list)
_COST_PROBE_PROPS = 3.5  # one lookup of one row's property in item_props (a large index)
_COST_LIST_PROPS = 0.9  # per match, counting then listing a property test's matches (an IN list)
#: how far a condition's capped estimate is counted on: when another's count is above the cap
#: (``_refine``), or to tell whether listing a property test's matches costs less (``_listed``)
_REFINE_MAX = 200_000
#: projects or item ids looked up per query when a write finds what it replaces
_VALUES_PER_QUERY = 5000

#: recency keys (the items rowid): whole seconds of the item's datetime, offset and clamped to
#: 38 bits, then this many bits for the items of one second (in the order they are indexed)
_SLOT_BITS = 22
_SECONDS = 2**37

#: the page cache of the connection that writes apply()'s batches, in KiB (a read
#: connection's is 64 MiB)
_WRITER_CACHE_KIB = 262_144
#: the WAL's size past which the writer empties it between two transactions (bytes)
_WAL_LIMIT = 512 * 2**20

#: seconds without writes before the FTS index is merged (see SQLiteStore.maintain)
_MAINTENANCE_DELAY = 5.0
#: seconds a count by SQL of a conjunction of column tests takes before its columns are read
#: (or, of free text and other conditions, before its words' items are)
_COLUMNS_AFTER = 0.05
#: the share of the items a word is in for its items to be read at the warm-up (at most
#: ``MAX_WORDS`` words, the most frequent)
_WORD_SHARE = 0.05


class _Connection:
    """A thread's connection, closed when the thread ends (its thread-local goes), or by
    :meth:`SQLiteStore.close` once no operation uses it (``depth``, under the store's lock)."""

    __slots__ = ("__weakref__", "conn", "depth", "released")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.depth = 0  # operations of its thread under way (they nest)
        self.released = False
        weakref.finalize(self, conn.close)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _operation(method: _Method) -> _Method:
    """A public method of :class:`SQLiteStore`: see :meth:`SQLiteStore._using`."""

    @functools.wraps(method)
    def run(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
        with self._using():
            return method(self, *args, **kwargs)

    return cast(_Method, run)


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
        self._rows: OrderedDict[tuple, tuple[int, Any]] = OrderedDict()
        self._timer: threading.Timer | None = None  # the next maintenance
        self._maintaining = threading.Lock()
        self._names: dict[str, int] = {}  # prop_names codes (committed ones)
        #: tested properties' values, to count conjunctions (which, remembered beside the index)
        file = Path(self.path).expanduser()
        self._columns = Columns(self._read_at, file.with_name(f"{file.name}-columns.json"))
        self._keep_warm = False  # (the frequent words held after writes: see warm_up)
        self._writing = 0  # apply() calls under way
        self._writes = 0  # write transactions committed (:attr:`writes`)
        #: copies the WAL into the file after writes, on a thread of its own
        self._checkpointer = Checkpointer(str(Path(self.path).expanduser()))
        #: apply()'s batches, written by a thread of their own, several per transaction
        self._queue: WriteQueue[_Batch] = WriteQueue(self._write_batches, _Batch.weight,
                                                     name="sharinghub-index-writer")
        self._create_schema()
        if self._maintenance_due(self._conn()):
            self._schedule_maintenance()

    # --- connections and transactions -------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        return self._held().conn

    def _held(self) -> _Connection:
        """This thread's connection (opened on first use)."""
        if self._closed:
            raise StoreClosed("the index store is closed")
        held = getattr(self._local, "held", None)
        if held is not None:
            return held
        conn = sqlite3.connect(str(Path(self.path).expanduser()), timeout=60.0,
                               isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -65536")  # KiB: 64 MiB per connection at most
        conn.execute("PRAGMA mmap_size = 2147418112")  # all of it: pages shared by threads
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # (the checkpointer's job)
        register_functions(conn)
        held = _Connection(conn)
        with self._lock:
            if self._closed:  # (closed meanwhile)
                conn.close()
                raise StoreClosed("the index store is closed")
            self._connections.add(held)
        self._local.held = held
        return held

    @contextmanager
    def _using(self) -> Iterator[None]:
        """One operation on this thread's connection, which :meth:`close` leaves open until
        the operation ends (closing a connection another thread is stepping crashes CPython's
        sqlite3): close interrupts it, and the operation, stopped, closes it here."""
        held = self._held()
        with self._lock:
            if self._closed:
                raise StoreClosed("the index store is closed")
            held.depth += 1
        try:
            yield
        except (sqlite3.Error, QueryInterrupted) as exc:
            if self._closed:  # (interrupted by close)
                raise StoreClosed("the index store was closed during the operation") from exc
            raise
        finally:
            with self._lock:
                held.depth -= 1
            if self._closed:
                self._release(held)

    def _release(self, held: _Connection) -> None:
        """Close a connection of a closed store, once no operation uses it (and once)."""
        with self._lock:
            if held.depth or held.released:
                return
            held.released = True
        with suppress(sqlite3.Error):
            held.conn.execute("PRAGMA optimize")
        held.conn.close()

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
        with self._lock:
            self._writes += 1
        self._checkpointer.wrote()

    @property
    def writes(self) -> int:
        return self._writes

    def _create_schema(self) -> None:
        conn = self._conn()
        # (SQLite's 4 KiB pages: 16 KiB ones built 100,000 items ~7% sooner, but a write
        # rewrites every leaf it touches into the WAL, and a transaction small beside the index
        # touches one leaf per row in its randomly keyed B-trees: 1,000,000 items took 1,287 s
        # to build with them, 852 s with 4 KiB; searches at 1,000,000 were no faster. 8 KiB
        # pages built 100,000 items in 28.6, 23.8 and 27.5 s against 31.9, 24.3 and 25.7)
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
            if version is not None and version[0] == 2:
                _migrate_v2(conn)  # (an index may have no source to crawl it again)
            elif version is not None and version[0] < SCHEMA_VERSION:
                # the index is a cache of the sources: an older layout is rebuilt by a crawl
                for table in _TABLES:
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _statements(_SCHEMA):
                conn.execute(statement)
            if version is not None and version[0] == 2:  # statistics of the new indexes
                conn.execute("PRAGMA analysis_limit = 2000")
                conn.execute("ANALYZE")
                conn.execute("INSERT OR REPLACE INTO store_info VALUES ('analyzed', ?)",
                             (conn.execute("SELECT count(*) FROM items").fetchone()[0],))
            conn.execute("INSERT OR REPLACE INTO store_info VALUES ('schema_version', ?)",
                         (SCHEMA_VERSION,))
            conn.execute("INSERT OR IGNORE INTO store_info VALUES ('generation', 0)")
            if conn.execute("SELECT 1 FROM store_info WHERE key = 'inverted'").fetchone() is None:
                # (counted once, for an index written before the store kept this number)
                conn.execute("INSERT INTO store_info SELECT 'inverted', count(*) FROM items "
                             'WHERE start > "end"')
            if conn.execute("SELECT 1 FROM store_info WHERE key = 'collection_time_hist'"
                            ).fetchone() is None:
                # (likewise, the per-collection histogram)
                changes = _Changes()
                for collection, start, end in conn.execute(
                        'SELECT collection, start, "end" FROM items WHERE start IS NOT NULL'):
                    changes.count_times(collection, start, end, +1)
                conn.execute("DELETE FROM collection_time_hist")
                changes.save_time_hist(conn)
                conn.execute("INSERT INTO store_info VALUES ('collection_time_hist', 1)")

    def close(self) -> None:
        """Stop every operation under way (at once: even a statement in progress) and close
        every connection: the idle ones here, the others by their thread as its operation
        ends. Operations after this raise StoreClosed."""
        self._columns.close()  # (its reads stop between statements too)
        self._queue.close()  # (queued batches fail: see write_queue)
        with self._lock:
            self._closed = True  # (no operation starts after this)
            timer, self._timer = self._timer, None
            connections, self._connections = list(self._connections), weakref.WeakSet()
        if timer is not None:
            timer.cancel()
        for held in connections:
            held.conn.interrupt()  # (thread-safe; does nothing to an idle connection)
        with self._maintaining:  # (waits for a maintenance under way to stop)
            pass
        self._queue.join()  # (its write under way stops, interrupted)
        self._checkpointer.close()
        for held in connections:
            self._release(held)

    @_operation
    def warm_up(self) -> tuple[int, int]:
        """The columns held the last time, and the items of the most frequent words (in at
        least ``_WORD_SHARE`` of the items), read on a thread of their own (see
        :mod:`.columns`); (how many columns, how many words). From then on, each maintenance
        after writes picks the most frequent words again: a server's first crawl usually ends
        after its warm-up, which found no words then."""
        with self._read() as conn:
            held = self._columns.recall(functools.partial(self._name_code, conn))
            words = self._frequent_words(conn)
        self._keep_warm = True
        self._columns.want_words(words)
        return held, len(words)

    def _frequent_words(self, conn: sqlite3.Connection) -> list[str]:
        """The ``MAX_WORDS`` most frequent words in at least ``_WORD_SHARE`` of the items, by
        the latest maintenance's counts."""
        least = max(1, math.ceil(self._total(conn, self._generation(conn)) * _WORD_SHARE))
        return [word for word, in conn.execute(
            "SELECT term FROM term_docs WHERE n >= ? ORDER BY n DESC LIMIT ?",
            (least, MAX_WORDS)) if _TOKEN.fullmatch(word)]

    # --- maintenance ------------------------------------------------------------------------

    def maintain(self) -> None:
        """Catch up with the writes since the last time: merge the FTS index into one segment,
        and recount how many items each token is in. Every write (a crawl writes in batches)
        adds an FTS segment, which every FTS query then reads too: with a few dozen, looking
        up one item's match costs ten times as much. Runs in the background a few seconds
        after the last write (or on opening an index left so), or when called."""
        with self._maintaining:
            if self._closed:
                return
            with self._using():
                words = self._maintain()
        # after writes (the scheduled maintenance comes once they pause), what was held before
        # them is read again in the background, rather than when a slow count next wants it;
        # not while more are queued (the next write would make it stale: its maintenance will)
        if not self._queue.busy():
            self._columns.refresh(words)

    def _maintain(self) -> list[str]:
        """:meth:`maintain`'s transaction; then the most frequent words, when the store keeps
        them held (see :meth:`warm_up`)."""
        with self._write() as conn:
            if self._maintenance_due(conn):
                if self._info(conn, "fts_unmerged"):
                    conn.execute("INSERT INTO items_fts (items_fts) VALUES ('optimize')")
                conn.execute("DELETE FROM term_docs")
                conn.execute("INSERT INTO term_docs (term, n) SELECT term, doc FROM items_vocab")
                conn.executemany("INSERT OR REPLACE INTO store_info VALUES (?, ?)",
                                 [("fts_unmerged", 0), ("term_docs", 1)])
                # (so that cached reads see the counts)
                conn.execute("UPDATE store_info SET value = value + 1 WHERE key = 'generation'")
        if not self._keep_warm:
            return []
        with self._read() as conn:
            return self._frequent_words(conn)

    def _maintenance_due(self, conn: sqlite3.Connection) -> bool:
        return bool(self._info(conn, "fts_unmerged")) or not self._info(conn, "term_docs")

    @staticmethod
    def _info(conn: sqlite3.Connection, key: str) -> Any:
        row = conn.execute("SELECT value FROM store_info WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _schedule_maintenance(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(_MAINTENANCE_DELAY, self._maintain_quietly)
            self._timer.daemon = True
            self._timer.start()

    def _maintain_quietly(self) -> None:
        """The scheduled maintenance, unless a write began meanwhile (a batch slower than the
        delay): merging the whole FTS index between two batches of a crawl would make each
        batch cost in proportion to the index. It comes after the crawl's last write."""
        with self._lock:
            writing = self._writing > 0
        if writing or self._queue.busy():
            self._schedule_maintenance()
            return
        with suppress(sqlite3.Error, RuntimeError):  # busy, or closed meanwhile: next time
            self.maintain()

    @staticmethod
    def _generation(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM store_info WHERE key = 'generation'").fetchone()
        return int(row[0])

    # --- writes -----------------------------------------------------------------------------

    def apply(self, source: str, updates: list[ProjectUpdate], deletions: list[str], *,
              wait: bool = True) -> None:
        if self._closed:
            raise StoreClosed("the index store is closed")
        for update in updates:  # (refused here, in the caller's thread)
            for item in update.items:
                _check_item(item)
        self._queue.put(_Batch(source, list(updates), deletions), wait)

    def flush(self) -> None:
        self._queue.flush()

    def write_costs(self) -> list[tuple[int, float]]:
        """(items, seconds) of the latest transactions of queued batches, oldest first."""
        return list(self._queue.history)

    def _write_batches(self, batches: list[_Batch]) -> None:
        """Write queued batches in one transaction (on the write queue's thread)."""
        with self._lock:
            self._writing += 1  # (the scheduled maintenance waits for the write's end)
        try:
            with self._using():
                # the writer thread's connection (it ends when the thread does): a
                # transaction of many batches dirties much of the index, and pages evicted
                # from a smaller cache are spilled to the WAL, then read back from it
                conn = self._conn()
                conn.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
                self._apply(batches)
                self._bound_wal(conn)
        finally:
            with self._lock:
                self._writing -= 1
        self._schedule_maintenance()

    def _bound_wal(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL into the file and empty it, here between two transactions, once it
        has grown past ``_WAL_LIMIT``. The checkpoint thread's passive copies cannot empty it
        while transactions follow one another (SQLite starts the log over only at the start
        of a write that finds it all copied): building 1,000,000 items, it reached 16 GB."""
        try:
            size = Path(f"{Path(self.path).expanduser()}-wal").stat().st_size
        except OSError:
            return
        if size > _WAL_LIMIT:
            try:  # (waits for readers of older snapshots: the busy timeout)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error as exc:  # busy: after the next transaction, then
                log.debug("index WAL not emptied: %s", exc)

    def _apply(self, batches: list[_Batch]) -> None:
        changes = _Changes()
        with self._write() as conn:
            changes.doc = conn.execute("SELECT coalesce(max(rowid), 0) FROM item_docs"
                                       ).fetchone()[0]
            for batch in batches:
                source = batch.source
                self._delete_projects(conn, source, batch.deletions, changes)
                conn.execute("DELETE FROM project_states WHERE source = ? AND project IN "
                             "(SELECT value FROM json_each(?))", (source, _dumps(batch.deletions)))
                self._write_updates(conn, source, batch.updates, changes)
            changes.save(conn)
            conn.execute("UPDATE store_info SET value = value + 1 WHERE key = 'generation'")
            self._maybe_analyze(conn, changes.written)
        with self._lock:
            self._names.update(changes.names)

    _DELETED = ("SELECT items.rowid, collection, start, \"end\", minx, miny, maxx, maxy, props, "
                "items.doc, items.id FROM items JOIN item_docs AS docs ON docs.rowid = items.doc "
                "WHERE ")

    @staticmethod
    def _delete_rows(conn: sqlite3.Connection, found: list[tuple], changes: _Changes) -> None:
        """Delete items (rows of ``_DELETED``) with their docs, FTS and R*Tree rows (one
        statement per table but FTS, rather than a statement per item and table)."""
        found = sorted(found)  # (in rowid order: see _write_updates)
        for row in found:
            changes.removed(row)
        # a contentless FTS index forgets a row given the texts it was indexed with
        conn.executemany(
            "INSERT INTO items_fts (items_fts, rowid, title, description, keywords) "
            "VALUES ('delete', ?, ?, ?, ?)",
            [(row[0], *_fts_text(_props_dict(row[8]))) for row in found])
        rowids = _dumps([row[0] for row in found])
        conn.execute("DELETE FROM items_rtree WHERE id IN (SELECT value * 2 FROM json_each(?1) "
                     "UNION ALL SELECT value * 2 + 1 FROM json_each(?1))", (rowids,))
        for table, key in (("item_props", "item"), ("items_time", "id"), ("items", "rowid")):
            conn.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT value FROM json_each(?))",
                         (rowids,))
        conn.execute("DELETE FROM item_docs WHERE rowid IN (SELECT value FROM json_each(?))",
                     (_dumps([row[9] for row in found]),))

    def _delete_projects(self, conn: sqlite3.Connection, source: str, projects: list[str],
                         changes: _Changes) -> None:
        found = self._found(conn, "source = ? AND project IN", projects, source)
        if found:
            self._delete_rows(conn, found, changes)

    def _found(self, conn: sqlite3.Connection, where: str, values: list[str],
               *params: Any) -> list[tuple]:
        """Rows of ``_DELETED`` where ``where`` (with ``params``, ending with IN) holds for one
        of ``values``."""
        return [row for chunk in range(0, len(values), _VALUES_PER_QUERY)
                for row in conn.execute(
                    f"{self._DELETED}{where} (SELECT value FROM json_each(?))",
                    (*params, _dumps(values[chunk:chunk + _VALUES_PER_QUERY]))).fetchall()]

    def _write_updates(self, conn: sqlite3.Connection, source: str,
                       updates: list[ProjectUpdate], changes: _Changes) -> None:
        """Replace these projects' items and states: the same as writing them one after the
        other, in one ``executemany`` per table rather than a statement per item and table
        (with the JSON encoded by orjson and packed from a loaded compressor, 100,000 items
        took 51 s to build instead of 76 s, on the same machine). Written in turn, a project
        given twice ends with its last update, and an item (collection, id) given twice with
        its last write: only those are inserted."""
        latest: dict[str, ProjectUpdate] = {}
        for update in updates:
            latest.pop(update.project, None)  # (the last update, in its place)
            latest[update.project] = update
        self._delete_projects(conn, source, list(latest), changes)
        entries: dict[tuple[str, str], tuple[str, _Row]] = {}
        for project, update in latest.items():
            for item in update.items:
                row = _Row(item)
                entries.pop((row.collection, row.id), None)  # (the last write, in its place)
                entries[(row.collection, row.id)] = (project, row)
        # the same (collection, id) already held (another source or project): the newer wins
        found = [row for row in self._found(conn, "items.id IN", sorted({i for _, i in entries}))
                 if (row[1], row[10]) in entries]
        if found:
            self._delete_rows(conn, found, changes)
        rows = [row for _, row in entries.values()]
        codes = self._name_codes(conn, {name for row in rows for name, _, _ in row.prop_rows},
                                 changes)
        keys = _RecencyKeys(conn, [row.datetime for row in rows])
        items, props, docs, texts, times, boxes = [], [], [], [], [], []
        for project, row in entries.values():
            rowid = keys.next(row.datetime)
            changes.doc += 1
            items.append((rowid, source, project, row.collection, row.id, changes.doc,
                          row.datetime, row.start, row.end, row.title,
                          *(row.bbox or (None, None, None, None))))
            props += [(codes[name], kind, value, row.id, rowid)
                      for name, kind, value in row.prop_rows]
            docs.append((changes.doc, row.geometry, row.props, row.json))
            texts.append((rowid, *row.text))
            if row.start is not None:
                times.append((rowid, min(row.start, row.end), max(row.start, row.end),
                              row.start, row.end))
            if row.bbox is not None:
                w, s, e, n = row.bbox
                t0, t1 = (row.start / RTREE_TIME_UNIT, row.end / RTREE_TIME_UNIT) \
                    if row.start is not None else (0.0, 0.0)
                boxes.extend((rowid * 2 + part, lo, hi, s, n, min(t0, t1), max(t0, t1), w, s,
                              e, n) for part, (lo, hi) in enumerate(split_antimeridian(row.bbox)))
            changes.added(row)
        # each table's rows in its key's order: a B-tree then fills its pages one after the
        # other, and FTS5 writes its pending terms out as a segment whenever a rowid comes
        # lower than the one before (100,000 items' texts took 5.6 s to index in recency
        # order, 1.8 s sorted; the props rows compare: the values of one kind have one type)
        for table_rows in (items, props, texts, times, boxes):
            table_rows.sort()
        conn.executemany(
            "INSERT INTO items (rowid, source, project, collection, id, doc, datetime, start, "
            "\"end\", title, minx, miny, maxx, maxy) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", items)
        conn.executemany(
            "INSERT INTO item_props (name, kind, value, id, item) VALUES (?, ?, ?, ?, ?)", props)
        conn.executemany(
            "INSERT INTO item_docs (rowid, geometry, props, json) VALUES (?, ?, ?, ?)", docs)
        conn.executemany(
            "INSERT INTO items_fts (rowid, title, description, keywords) VALUES (?, ?, ?, ?)",
            texts)
        conn.executemany(
            "INSERT INTO items_time (id, mint, maxt, t0, t1) VALUES (?, ?, ?, ?, ?)", times)
        conn.executemany(
            "INSERT INTO items_rtree (id, minx, maxx, miny, maxy, mint, maxt, west, south, "
            "east, north) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", boxes)
        conn.executemany(
            "INSERT INTO project_states (source, project, state) VALUES (?, ?, ?) "
            "ON CONFLICT (source, project) DO UPDATE SET state = excluded.state",
            [(source, project, pack_json(update.state, STATE))
             for project, update in latest.items()])

    def _name_codes(self, conn: sqlite3.Connection, names: set[str],
                    changes: _Changes) -> dict[str, int]:
        """name -> its ``prop_names`` code, coding new names (known to this store's cache
        once the write commits: a rolled back code must not be used)."""
        codes = changes.names
        for name in names - codes.keys():  # (not coded by this transaction: committed, or new)
            code = self._name_code(conn, name)
            if code is None:
                conn.execute("INSERT OR IGNORE INTO prop_names (name) VALUES (?)", (name,))
                code = conn.execute("SELECT code FROM prop_names WHERE name = ?",
                                    (name,)).fetchone()[0]
            codes[name] = code
        return codes

    def _maybe_analyze(self, conn: sqlite3.Connection, written: int) -> None:
        """Refresh the planner's statistics when the item count has changed a lot since the
        last time (the choice between the datetime, start/end and FTS paths depends on them;
        ``analysis_limit`` bounds the work whatever the size), and note what the FTS index
        needs merged and recounted (:meth:`maintain`: merging it all here, every so many
        items, made a write cost in proportion to the index)."""
        count = conn.execute("SELECT coalesce(sum(n), 0) FROM collection_stats").fetchone()[0]
        row = conn.execute("SELECT value FROM store_info WHERE key = 'analyzed'").fetchone()
        last = row[0] if row else 0
        if count >= 1000 and (count > 2 * last or count < last / 2):
            conn.execute("PRAGMA analysis_limit = 2000")
            conn.execute("ANALYZE")
            conn.execute("INSERT OR REPLACE INTO store_info VALUES ('analyzed', ?)", (count,))
        if not written:
            return
        unmerged = written + (self._info(conn, "fts_unmerged") or 0)
        conn.executemany("INSERT OR REPLACE INTO store_info VALUES (?, ?)",
                         [("fts_unmerged", unmerged), ("term_docs", 0)])

    @_operation
    def set_meta(self, key: str, value: Any) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         (key, _dumps(value)))

    @_operation
    def set_overlay(self, item_id: str, key: str, value: Any | None) -> None:
        with self._write() as conn:
            if value is None:
                conn.execute("DELETE FROM overlays WHERE item = ? AND key = ?", (item_id, key))
            else:
                conn.execute("INSERT OR REPLACE INTO overlays (item, key, value) "
                             "VALUES (?, ?, ?)", (item_id, key, _dumps(value)))

    # --- simple reads -----------------------------------------------------------------------

    @_operation
    def overlays(self, item_ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
        conn = self._conn()
        if item_ids is None:
            rows = conn.execute("SELECT item, key, value FROM overlays").fetchall()
        else:
            ids = sorted(set(item_ids))
            rows = []
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                rows += conn.execute(
                    "SELECT item, key, value FROM overlays WHERE item IN "
                    f"({', '.join('?' * len(chunk))})", chunk).fetchall()
        found: dict[str, dict[str, Any]] = {}
        for item, key, value in rows:
            found.setdefault(item, {})[key] = json.loads(value)
        return found

    @_operation
    def get_meta(self, key: str) -> Any | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    @_operation
    def project_states(self, source: str) -> dict[str, dict[str, Any]]:
        self._queue.idle()  # (the crawler compares what it finds with what is written)
        rows = self._conn().execute(
            "SELECT project, state FROM project_states WHERE source = ?", (source,))
        return {project: unpack_json(state) for project, state in rows}

    @_operation
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
        return (row[0], unpack_json(row[1])) if row else None

    @_operation
    def get_item(self, collection: str, item_id: str) -> dict | None:
        row = self._conn().execute(
            "SELECT json, props, geometry FROM items JOIN item_docs AS docs "
            "ON docs.rowid = items.doc WHERE collection = ? AND id = ?",
            (collection, item_id),
        ).fetchone()
        return _load_item(*row) if row else None

    @_operation
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

    @_operation
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

    @_operation
    def search(self, query: Query) -> Page:
        if not isinstance(query.limit, int) or query.limit < 0:
            raise QueryError(f"invalid limit: {query.limit!r}")
        binder = Binder()
        match = _fts_match(query.q) if query.q else None
        sort = _sort_spec(query)
        token = _decode_token(query.token) if query.token else None
        if query.q and match is None:  # only terms that cannot match anything
            return Page(items=[], matched=0)
        ranked = match is not None and not query.sortby
        if token is not None:
            allowed = ([["rank", list(query.q or ())], ["rank-fields", list(query.q or ())]]
                       if ranked else [_signature(sort)])
            if token["s"] not in allowed:
                raise QueryError("the paging token belongs to a different sort order")

        with self._read() as conn, _limited(conn, query.budget, lambda: self._closed):
            generation = self._generation(conn)
            where = self._where(conn, generation, query, binder, match)
            params = binder.params
            backward = token is not None and token["d"] == "p"
            # the matches in order: all of them when they are few (then one query both counts
            # and pages), else SELECTs of segments of the order, read until the page is full
            everything: list | None = None
            page: list | None = None  # (a first page found otherwise)
            selects: Iterator[str] = iter(())
            collect = query.limit > 0
            if ranked:
                alone = len(where) == 1
                if token is not None:
                    fields = token["s"][0] == "rank-fields"
                else:
                    if collect and alone and self._likely_few(conn, generation, where[0],
                                                              params):
                        everything = self._bm25_all(conn, generation, where[0], params)
                    fields = everything is None and self._more_than(
                        conn, generation, where[0], params, _BM25_MAX, alone=alone)
                signature = ["rank-fields" if fields else "rank", list(query.q or ())]
                if fields:
                    keys = _FIELDS_KEYS
                    if token is not None and (type(token["k"][0]) is not int or
                                              token["k"][0] not in range(len(_FIELD_TIERS))):
                        raise QueryError("invalid paging token")
                    lookups = self._fields_lookups(conn, generation, binder, match, where,
                                                   query.limit) if collect else None
                    if lookups is not None:
                        everything = self._collect(conn, generation, lookups, params)
                    if everything is None:
                        matched = self._count(conn, generation, where, params)
                        selects = self._fields_page(conn, generation, binder, match, where,
                                                    backward, token, query.limit, matched)
                else:
                    keys = [(_BM25, "asc"), ("items_fts.rowid", "asc")]
                    if collect and everything is None:
                        if not alone:
                            everything = self._collect(conn, generation, next(self._bm25_page(
                                conn, generation, binder, where, keys, False, None)), params)
                        elif not _counted(where[0]):
                            # (but for words counted already: its page is its best few)
                            everything = self._bm25_all(conn, generation, where[0], params)
                    if everything is None:
                        matched = self._count(conn, generation, where, params)
                        selects = self._bm25_page(conn, generation, binder, where, keys,
                                                  backward, token)
            else:
                signature = _signature(sort)
                keys, lead = self._sort_keys(conn, generation, sort)
                first = self._first_page_from_columns(
                    conn, generation, where, keys, query.limit) if collect and not token else None
                if first is not None:
                    matched, page = first
                elif collect and self._few(conn, generation, where, params, keys, lead,
                                           query.limit):
                    source, terms = self._plan(conn, generation, where, params)
                    if any(uses_docs(sql) for sql in [*terms, *(e for e, _ in keys)]):
                        source += " JOIN item_docs AS docs ON docs.rowid = items.doc"
                    everything = self._collect(
                        conn, generation, f"SELECT {', '.join(e for e, _ in keys)} "
                        f"FROM {source} WHERE {' AND '.join(terms)} ORDER BY {_order_by(keys)}",
                        params)
                if everything is None and page is None:
                    matched = self._count(conn, generation, where, params)
                    selects = self._sorted_page(conn, generation, binder, where, keys, lead,
                                                backward, token, query.limit, matched)
            if everything is not None:
                matched = len(everything)
            if query.limit == 0 or matched == 0:
                return Page(items=[], matched=matched)
            if everything is not None:
                rows = _slice(everything, keys, token["k"] if token else None, query.limit,
                              backward)
            elif page is not None:
                rows = page
            else:
                rows = []
                for select in selects:  # segments of the order, until the page is full
                    rows += self._cached(conn, generation,
                                         f"{select} LIMIT {query.limit + 1 - len(rows)}",
                                         binder.params, lambda cursor: cursor.fetchall())
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

    # -- pages: each a sequence of SELECTs (segments of the order) of sort keys and rowid ----

    def _sorted_page(self, conn: sqlite3.Connection, generation: int, binder: Binder,
                     where: list[Cond], keys: list[tuple[str, str]], lead: tuple | None,
                     backward: bool, token: dict | None, limit: int,
                     matched: int) -> Iterator[str]:
        """A page in a sort order: along the sort's index when matches are dense enough to
        fill it after a few thousand rows, else all matches found and sorted."""
        params = binder.params
        order = [(e, _flip(d)) for e, d in keys] if backward else keys
        total = self._total(conn, generation)
        walked = (limit + 1) * total / max(matched, 1)
        dense = (keys[0][0] in _INDEXED or lead is not None) and (
            walked <= _DENSE_SCAN or self._walk_cheaper(conn, generation, where, params, walked))
        if dense:
            one = next((c for c in where if c.kind == "index" and c.sql.startswith(
                "items.collection IN (") and c.sql.count(",") == 0), None)  # one collection
            walks_one = keys[0][0] == "items.datetime" and one is not None
            terms = [c.sql if walks_one and c is one else  # (the index's first column)
                     self._test(conn, generation, c, params, walked) for c in where]
            if lead is not None:
                yield from self._props_walk(binder, terms, order, lead, token, total, walked)
                return
            source = "items"
            index = _WALK_INDEX.get(keys[0][0])
            if keys[0][0] == "items.datetime":
                if walks_one:
                    index = "items_collection_datetime"
                terms += self._datetime_seeks(conn, generation, where, binder)
            if index is not None:  # (SQLite, not knowing how many rows pass, may sort all)
                source += f" INDEXED BY {index}"
        else:
            source, terms = self._plan(conn, generation, where, params)
            if source == "items" and keys[0][0] not in _INDEXED and \
                    not any(c.kind for c in where):
                source += " NOT INDEXED"  # sorting every item: read them in rowid order
        segments = _keyset(order, token["k"], binder) if token is not None else ["1"]
        if any(uses_docs(sql) for sql in [*terms, *segments, *(e for e, _ in keys)]):
            source += " JOIN item_docs AS docs ON docs.rowid = items.doc"
        for segment in segments:
            yield (f"SELECT {', '.join(e for e, _ in keys)} FROM {source} "
                   f"WHERE {' AND '.join([*terms, segment])} ORDER BY {_order_by(order)}")

    def _walk_cheaper(self, conn: sqlite3.Connection, generation: int, where: list[Cond],
                      params: dict, walked: float) -> bool:
        """Whether walking ``walked`` rows along the sort's index, each tested, costs less
        than finding the matches from the condition with the fewest (each tested) and
        sorting them, for property tests and date ranges (a lookup in ``item_props`` per row
        tested; a date range, a test of the row's own columns): when every condition has
        more matches than that. "eo:cloud_cover" BETWEEN 71.6 AND 84.9 AND license = 'MIT'
        at 1,000,000 items, 11,678 matches, a page of 50 in date order: 208 ms from the
        70,536 rows of the range, 12 ms walking about 4,400 items."""
        costs = [_COST_PROBE_PROPS if c.props is not None else
                 _COST_ROW if isinstance(c.column, TimeTest) else None for c in where]
        if not where or None in costs:
            return False
        each = _COST_ROW + sum(c for c in costs if c is not None)
        for cond, cost in zip(where, costs, strict=True):
            # the rows the condition must find for finding them to cost as much as the walk
            even = int(walked * each / (each - (cost or 0))) + 1
            if even > _REFINE_MAX:
                return False
            rows = self._count_to(conn, generation, cond, params, even) \
                if cond.props is not None else self._estimate(conn, generation, cond, params)
            if rows is None or rows < even:
                return False
        return True

    def _props_walk(self, binder: Binder, terms: list[str], order: list[tuple[str, str]],
                    lead: tuple, token: dict | None, total: int,
                    walked: float) -> Iterator[str]:
        """A page sorted by a property first: its ``item_props`` rows in index order (ties by
        id, then rowid: the index's own order), then - or first, ascending - the items without
        it (NULL sorts first ascending, last descending), along the id index. ``walked``:
        the rows a walk reads to fill the page, were the matches spread evenly."""
        name, kind, present = lead
        direction = order[0][1]
        rest = order[1:]
        walk = [("s.value", direction)]
        if rest == [("items.id", direction), ("items.rowid", direction)]:
            walk += [("s.id", direction), ("s.item", direction)]  # the index's order
        else:
            walk += rest  # SQLite sorts runs of equal values
        docs = " JOIN item_docs AS docs ON docs.rowid = items.doc" \
            if any(uses_docs(sql) for sql in [*terms, *(e for e, _ in rest)]) else ""

        def with_value(condition: str) -> str:
            return (f"SELECT {', '.join(e for e, _ in walk)} FROM item_props AS s CROSS JOIN "
                    f"items ON items.rowid = s.item{docs} WHERE s.name = {name_code(name)} AND "
                    f"s.kind = {kind} AND {' AND '.join([*terms, condition])} "
                    f"ORDER BY {_order_by(walk)}")

        # the id index, named: SQLite, not knowing how many items lack the property, found
        # the other conditions' matches and sorted them all (400,000 at 1,000,000 items: 0.9 s)
        lacking = total - present
        by_id = " INDEXED BY items_id" if rest and rest[0][0] == "items.id" and lacking > 0 \
            and walked * total / lacking <= _DENSE_SCAN else ""

        def without(condition: str) -> str:
            return (f"SELECT NULL, {', '.join(e for e, _ in rest)} FROM items{by_id}{docs} WHERE "
                    f"NOT EXISTS (SELECT 1 FROM item_props WHERE item = items.rowid AND "
                    f"name = {name_code(name)} AND kind = {kind}) AND "
                    f"{' AND '.join([*terms, condition])} ORDER BY {_order_by(rest)}")

        nulls_first = direction == "asc"
        nulls = present < total  # does any item lack the property?
        if token is None:
            parts = [(None, "1"), ("v", "1")] if nulls_first else [("v", "1"), (None, "1")]
        elif token["k"][0] is None:  # within the items without it
            parts = [(None, _after(rest, token["k"][1:], binder))]
            if nulls_first:
                parts.append(("v", "1"))
        else:
            parts = [("v", segment) for segment in _keyset(walk, token["k"], binder)]
            if not nulls_first:
                parts.append((None, "1"))
        for part, condition in parts:
            if part == "v":
                yield with_value(condition)
            elif nulls:
                yield without(condition)

    def _bm25_page(self, conn: sqlite3.Connection, generation: int, binder: Binder,
                   where: list[Cond], keys: list[tuple[str, str]], backward: bool,
                   token: dict | None) -> Iterator[str]:
        """A page ranked by bm25: every match scored (they are few), from the FTS index."""
        params = binder.params
        fts, others = where[0], where[1:]
        terms = [_fts_condition(fts), *([fts.rowids] if fts.rowids else []),
                 *(self._test(conn, generation, c, params, _BM25_MAX) for c in others)]
        order = [(e, _flip(d)) for e, d in keys] if backward else keys
        segments = _keyset(order, token["k"], binder) if token is not None else ["1"]
        source = "items_fts"
        if others:
            source += " CROSS JOIN items ON items.rowid = items_fts.rowid"
            if any(uses_docs(sql) for sql in terms):
                source += " JOIN item_docs AS docs ON docs.rowid = items.doc"
        for segment in segments:
            yield (f"SELECT {', '.join(e for e, _ in keys)} FROM {source} "
                   f"WHERE {' AND '.join([*terms, segment])} ORDER BY {_order_by(order)}")

    def _bm25_all(self, conn: sqlite3.Connection, generation: int, fts: Cond,
                  params: dict) -> list | None:
        """Every match of free text alone as (bm25 score, rowid), in the ranking's order (by
        score, then rowid: sorted here, as SQL would), if there are at most ``_BM25_MAX``;
        None beyond (read no further). One statement counts and ranks them."""
        rows = self._cached(conn, generation,
                            f"SELECT {_BM25}, items_fts.rowid FROM items_fts WHERE "
                            f"{_fts_condition(fts)} LIMIT {_BM25_MAX + 1}", params,
                            lambda cursor: sorted(cursor.fetchall()), rows=True)
        return rows if len(rows) <= _BM25_MAX else None

    def _likely_few(self, conn: sqlite3.Connection, generation: int, fts: Cond,
                    params: dict) -> bool:
        """Whether free text seems to match at most ``_BM25_MAX`` items, by its matches
        among the newest ``_SAMPLE_SHARE`` of the items (by ``time_hist``; rowids are recency
        keys). Then :meth:`_bm25_all` both counts and ranks them: bm25 reads a phrase's
        matches once to weigh it, and again to score them, so counting them first read them
        three times (at 1,000,000 items "with the rolatime" has 48 matches, read in 18 ms each
        time). A wrong guess costs time (about one more read of the matches, either way), never
        the answer."""
        if _counted(fts):
            return False  # (counted without reading its matches)
        if self._bounded(conn, generation, fts, params, _BM25_MAX):
            return True  # (a phrase with a rare word)
        newest = self._newest(conn, generation, _SAMPLE_SHARE)
        if newest is None:
            return False
        low, share = newest
        most = math.ceil(share * _BM25_MAX)
        seen = self._cached(conn, generation,
                            f"SELECT count(*) FROM (SELECT 1 FROM items_fts WHERE "
                            f"{_fts_condition(fts)} AND items_fts.rowid >= {low} "
                            f"LIMIT {most + 1})", params, lambda cursor: cursor.fetchone()[0])
        return seen <= most

    def _bounded(self, conn: sqlite3.Connection, generation: int, fts: Cond, params: dict,
                 n: int) -> bool:
        """Whether free text's ``bound`` (from ``term_docs``) shows it matches at most n
        items."""
        return fts.bound is not None and self._cached(
            conn, generation, fts.bound, params, lambda cursor: cursor.fetchone()[0]) <= n

    def _newest(self, conn: sqlite3.Connection, generation: int,
                share: float) -> tuple[int, float] | None:
        """(the lowest recency key, the share of all items) of the newest items from whole
        ``time_hist`` buckets holding at least ``share`` of them by their start; None if
        there are none."""
        total = self._total(conn, generation)
        if not total:
            return None
        buckets = self._cached(conn, generation,
                               "SELECT bucket, starts FROM time_hist ORDER BY bucket DESC", {},
                               lambda cursor: cursor.fetchall())
        held = 0
        for bucket, starts in buckets:
            held += starts
            if held >= share * total:
                return _recency_base(bucket << _BUCKET_BITS), held / total
        return None

    def _fields_lookups(self, conn: sqlite3.Connection, generation: int, binder: Binder,
                        match: str, where: list[Cond], limit: int) -> str | None:
        """When the conditions besides free text leave few items, the query listing those
        matching it with their field tier, in the fields ranking's order: each looked up in
        the FTS index, once for whether it matches, then for the field (cheaper than reading
        the FTS matches in order until a page is full: None then)."""
        params = binder.params
        fts, others = where[0], where[1:]
        if not others:
            return None
        lead = min((e for e in (self._estimate(conn, generation, c, params) for c in others)
                    if e is not None), default=None)
        if lead is None or lead >= ESTIMATE_CAP:
            return None
        few = self._count(conn, generation, others, params)
        everything = self._estimate(conn, generation, fts, params) or 1
        total = self._total(conn, generation) or 1
        # reading the FTS matches in order: how many until a page is full, if the other
        # conditions are independent of the text
        walked = (limit + 1) * total / max(few, 1)
        if few * _COST_PROBE >= min(walked, everything) * _COST_ROW:
            return None
        source, terms = self._plan(conn, generation, others, params)
        if any(uses_docs(sql) for sql in terms):
            source += " JOIN item_docs AS docs ON docs.rowid = items.doc"

        def lookup(fts_query: str) -> str:
            return (f"EXISTS (SELECT 1 FROM items_fts WHERE items_fts MATCH "
                    f"{binder.bind(fts_query)} AND rowid = items.rowid)")

        tier = (f"CASE WHEN {lookup(_FIELD_TIERS[0].format(q=match))} THEN 0 "
                f"WHEN {lookup(f'{{keywords}} : ({match})')} THEN 1 ELSE 2 END")
        return (f"WITH found AS MATERIALIZED (SELECT {tier} AS tier, items.rowid AS item "
                f"FROM {source} WHERE {' AND '.join([*terms, fts.probe or fts.sql])}) "
                f"SELECT tier, item FROM found ORDER BY tier ASC, item DESC")

    def _fields_page(self, conn: sqlite3.Connection, generation: int, binder: Binder,
                     match: str, where: list[Cond], backward: bool, token: dict | None,
                     limit: int, matched: int) -> Iterator[str]:
        """A page ranked by field (title, keywords, the rest), newest first within each: one
        FTS query per field, read in rowid (recency) order, testing the other conditions on
        each match."""
        params = binder.params
        fts, others = where[0], where[1:]
        everything = self._estimate(conn, generation, fts, params) or matched
        # reading the FTS matches in order: how many until the page is full
        walked = (limit + 1) * everything / max(matched, 1)
        tiers = range(len(_FIELD_TIERS))
        if backward:
            tiers = tiers[::-1]
        if token is not None:
            tiers = tiers[tiers.index(token["k"][0]):]
        terms = [self._test(conn, generation, c, params, walked) for c in others]
        source = "items_fts"
        if others:
            source += " CROSS JOIN items ON items.rowid = items_fts.rowid"
        if any(uses_docs(sql) for sql in terms):
            source += " JOIN item_docs AS docs ON docs.rowid = items.doc"
        for tier in tiers:
            conditions = [*terms, *([fts.rowids] if fts.rowids else []),
                          f"items_fts MATCH {binder.bind(_FIELD_TIERS[tier].format(q=match))}"]
            if token is not None and tier == token["k"][0]:
                conditions.append(f"items_fts.rowid {'>' if backward else '<'} "
                                  f"{binder.bind(token['k'][1])}")
            yield (f"SELECT {tier}, items_fts.rowid FROM {source} "
                   f"WHERE {' AND '.join(conditions)} "
                   f"ORDER BY items_fts.rowid {'ASC' if backward else 'DESC'}")

    def _collect(self, conn: sqlite3.Connection, generation: int, sql: str,
                 params: dict) -> list | None:
        """All the rows of ``sql`` (sort keys and rowid, in order) if there are at most
        ``_COLLECT_MAX``, else None."""
        rows = self._cached(conn, generation, f"{sql} LIMIT {_COLLECT_MAX + 1}", params,
                            lambda cursor: cursor.fetchall(), rows=True)
        return rows if len(rows) <= _COLLECT_MAX else None

    def _few(self, conn: sqlite3.Connection, generation: int, where: list[Cond],
             params: dict, keys: list[tuple[str, str]], lead: tuple | None,
             limit: int) -> bool:
        """Whether to list all the matches at once: a condition finds at most
        ``_COLLECT_MAX`` items (so do all of them), or several leave about that many between
        them (counted further than the cap, as the plan would; as if independent), and, by
        the estimates, the matches are too sparse for a page to be a walk along the sort's
        index (after a count, that walk is cheaper than listing thousands of matches). Listed,
        they are read once; counted, then found for a page, twice: at 1,000,000 items a
        collection's items in a box (~11,000 items, 4,662 matches) took 19 ms each way. (Not
        with a date range: a page in date order walks its range alone, which this estimate
        does not see, and the held columns may count it.)"""
        estimates = [self._estimate(conn, generation, c, params) for c in where]
        by_one = any(e is not None and e < ESTIMATE_CAP and e <= _COLLECT_MAX
                     for e in estimates)  # (one condition finds few: not capped)
        if not by_one:
            if len(where) < 2 or any(c.span is not None for c in where):
                return False
            self._refine(conn, generation, where, params, estimates)
            if ESTIMATE_CAP in estimates:  # (still capped: no count above it)
                return False
        total = self._total(conn, generation) or 1
        matches = _independent(estimates, total)
        if not by_one and matches > _COLLECT_MAX:
            return False
        walkable = keys[0][0] in _INDEXED or lead is not None
        return not (walkable and (limit + 1) * total <= _DENSE_SCAN * matches)

    def _more_than(self, conn: sqlite3.Connection, generation: int, cond: Cond, params: dict,
                   n: int, alone: bool = False) -> bool:
        """Whether the free-text condition matches more than n items (counting no further,
        unless it is the search's only condition, ``alone``: then counting them all costs
        no more when they are at most n, and beyond n the search counts them all anyway: at
        1,000,000 items, "for model the" read its postings in 31 ms up to 3,001 matches,
        then again in 121 ms for all 11,883)."""
        if _counted(cond):
            return (self._estimate(conn, generation, cond, params) or 0) > n
        if self._bounded(conn, generation, cond, params, n):
            return False  # (a phrase with a rare word: no need to read its matches twice)
        if alone and cond.only:
            return self._cached(conn, generation, cond.only, params,
                                lambda cursor: cursor.fetchone()[0]) > n
        return self._cached(conn, generation,
                            f"SELECT count(*) FROM (SELECT 1 FROM items_fts WHERE "
                            f"{_fts_condition(cond)} LIMIT {n + 1})", params,
                            lambda cursor: cursor.fetchone()[0]) > n

    @staticmethod
    def _docs(conn: sqlite3.Connection, rowids: list[int]) -> dict[int, dict]:
        """rowid -> item, for a page."""
        if not rowids:
            return {}
        marks = ", ".join("?" * len(rowids))
        found = conn.execute(
            "SELECT items.rowid, json, props, geometry FROM items JOIN item_docs AS docs "
            f"ON docs.rowid = items.doc WHERE items.rowid IN ({marks})", rowids)
        return {rowid: _load_item(rest, props, geometry) for rowid, rest, props, geometry in found}

    # -- plans -----------------------------------------------------------------------------

    def _count(self, conn: sqlite3.Connection, generation: int, where: list[Cond],
               params: dict) -> int:
        """The exact match count: the conditions, planned, without ORDER BY or JSON (from one
        index alone when there is one condition)."""
        if not where:
            return self._total(conn, generation)
        tests = self._column_tests(conn, where)
        if tests is not None and (count := self._columns.count(generation, tests)) is not None:
            return count
        fts = [c for c in where if c.kind == "fts"]
        words = fts[0].words if len(fts) == 1 and len(where) > 1 else None
        if words and (count := self._count_held(conn, generation, where, params,
                                                words)) is not None:
            return count
        started = time.perf_counter()
        if len(where) == 1 and where[0].only:
            sql = where[0].only
        elif (sql := self._collection_time_count(conn, generation, where, params)) is None:
            source, terms = self._plan(conn, generation, where, params, items=False)
            if any(uses_docs(sql) for sql in terms):
                # reading every item's JSON: in rowid order, not along some index
                if source == "items" and not any(c.kind for c in where):
                    source += " NOT INDEXED"
                source += " JOIN item_docs AS docs ON docs.rowid = items.doc"
            sql = f"SELECT count(*) FROM {source} WHERE {' AND '.join(terms)}"
        count = self._cached(conn, generation, sql, params, lambda cursor: cursor.fetchone()[0])
        if time.perf_counter() - started >= _COLUMNS_AFTER:  # (read in the background: SQL
            if tests is not None:                             # counts meanwhile)
                self._columns.want(tests)
            elif words:
                self._columns.want_words(words)
                if columns := [t for c in where if (t := self._column_test(conn, c)) is not None]:
                    self._columns.want(columns)  # (a date range, say)
        return count

    def _count_held(self, conn: sqlite3.Connection, generation: int, where: list[Cond],
                    params: dict, words: list[str]) -> int | None:
        """The count of free text whose words' items are held (:mod:`.columns`) and of other
        conditions: the items that the conditions without held columns find (listed by SQL),
        or every item when each other condition's column is held, tested against the words'
        items and the held columns; None when a word's items are not held, or the others
        find more items than the text's matches SQL would list. At 1,000,000 items, "and" (in
        671,373 items) in a box and three years took SQL 59 ms: an IN list of its 273,480
        matches in the years, to test 10,935 items of the box (with the years held, 8 ms);
        "detection" in a box across the antimeridian and four years, 58 (the box's 33,070
        items each read from ``items`` to test the years: 31)."""
        held: list[Test] = []
        rest: list[Cond] = []
        for cond in where:
            if cond.kind == "fts":
                continue
            test = self._column_test(conn, cond)
            if test is not None and self._columns.holds(generation, [test]):
                held.append(test)
            else:
                rest.append(cond)
        if not self._columns.holds(generation, held, words):
            return None
        sql, used = (self._held_listing(conn, generation, where, rest, params) if rest
                     else ("", ()))  # (every condition held: counted among every item)
        if sql is None:
            return None

        def count() -> int | None:
            if not sql:
                return self._columns.count(generation, held, words)
            found = conn.execute(sql, dict(used)).fetchone()[0]
            return self._columns.count_among(generation, found, held, words)

        # (remembered as counts by SQL are: the pages that follow ask again)
        return self._remembered(
            ("held", sql, used, tuple(words), tuple(_test_key(test) for test in held)),
            generation, count)

    def _held_listing(self, conn: sqlite3.Connection, generation: int, where: list[Cond],
                      rest: list[Cond], params: dict) -> tuple[str | None, tuple]:
        """(the query listing the items of the conditions ``rest`` of ``where`` for
        :meth:`_count_held`, its parameters); None when SQL should count: the others find
        more items than the free text's matches that SQL would list (and test them against,
        or list to test the others), or they read the items' JSON."""
        estimates = [self._estimate(conn, generation, c, params) for c in where]
        if ESTIMATE_CAP in estimates:
            self._refine(conn, generation, where, params, estimates)
        rows = min((e for c, e in zip(where, estimates, strict=True)
                    if c in rest and e is not None), default=None)
        fts = next(c for c in where if c.kind == "fts")
        if rows is None or rows > min(_REFINE_MAX, self._listing(conn, generation, fts, params)):
            return None, ()
        if len(rest) == 1 and rest[0].repeats is not None:
            source, terms, rowid = f"({rest[0].repeats})", ["1"], "item"
        else:
            source, terms, rowid = self._plan_rows(conn, generation, rest, params, items=False)
            if any(uses_docs(term) for term in terms):
                return None, ()  # (tests of the items' JSON: SQL counts, reading it once)
        sql = f"SELECT group_concat({rowid}, ' ') FROM {source} WHERE {' AND '.join(terms)}"
        return sql, tuple(sorted((name, params[name]) for name in set(_PARAM.findall(sql))
                                 if name in params))

    def _column_tests(self, conn: sqlite3.Connection, where: list[Cond]) -> list[Test] | None:
        """A conjunction's tests as :mod:`.columns` runs them (the count of a conjunction of
        property tests and date ranges, from the tested values held in memory), when each
        condition has a ``column`` and there are several; None when SQL alone counts. The
        columns are held once a count by SQL has taken ``_COLUMNS_AFTER``: they are read in
        the background (at ~0.3 us a row, every item's and each tested property's), while
        SQL intersects the tests' matches row by row, at 0.4 us a row at 100,000 items and
        1-4 us at 1,000,000 (an index bigger than the caches)."""
        if len(where) < 2:
            return None
        tests = [self._column_test(conn, c) for c in where]
        # (None: a condition without a column, or of a property no item has, which SQL finds
        # at once has no match)
        return None if None in tests else cast(list[Test], tests)

    def _column_test(self, conn: sqlite3.Connection, cond: Cond) -> Test | None:
        """A condition's test as :mod:`.columns` runs it; None when it has none, or tests a
        property no item has."""
        column = cond.column
        if column is None or isinstance(column, TimeTest):
            return column
        code = self._name_code(conn, column.name)
        return (code, column) if code is not None else None

    def _read_at(self, fn: Callable[[sqlite3.Connection, int], None]) -> None:
        """``fn(conn, generation)`` in a read transaction (the columns' reads)."""
        with self._using(), self._read() as conn:
            fn(conn, self._generation(conn))

    def _name_code(self, conn: sqlite3.Connection, name: str) -> int | None:
        """A property name's ``prop_names`` code (committed: it never changes), None for a
        name no item has had."""
        with self._lock:
            code = self._names.get(name)
        if code is None:
            row = conn.execute("SELECT code FROM prop_names WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            code = row[0]
            with self._lock:
                self._names[name] = code
        return code

    def _collection_time_count(self, conn: sqlite3.Connection, generation: int,
                               where: list[Cond], params: dict) -> str | None:
        """A query counting the items of some collections in a date range (or meeting start
        and end comparisons) as :meth:`_exact_time_count` counts a date range alone, from the
        per-collection histogram: at 1,000,000 items, counting along an index range took up to
        60 ms; None for other conditions."""
        if len(where) != 2:
            return None
        collections = [cond.collections for cond in where if cond.collections is not None]
        ranges = [cond.sides for cond in where if cond.sides is not None]
        if len(collections) != 1 or len(ranges) != 1:
            return None
        return self._exact_time_count(conn, generation, ranges[0], params, collections[0])

    def _plan(self, conn: sqlite3.Connection, generation: int, where: list[Cond],
              params: dict, items: bool = True) -> tuple[str, list[str]]:
        """(FROM, WHERE terms) finding the items that meet every condition: the one with the
        fewest matches (by its estimate) finds them, the others test each. ``items``: the
        query reads ``items`` (else, when no test needs it, it is left out)."""
        source, terms, _ = self._plan_rows(conn, generation, where, params, items)
        return source, terms

    def _plan_rows(self, conn: sqlite3.Connection, generation: int, where: list[Cond],
                   params: dict, items: bool = True) -> tuple[str, list[str], str]:
        """:meth:`_plan`'s (FROM, WHERE terms), and the rowid of the items found there."""
        if not where:
            return "items", ["1"], "items.rowid"
        if len(where) == 1:
            if where[0].drive is None:
                return "items", [where[0].sql], "items.rowid"
            source, term, rowid = where[0].drive
            return f"{source} CROSS JOIN items ON items.rowid = {rowid}", [term], rowid
        estimates = [self._estimate(conn, generation, c, params) for c in where]
        known = [i for i, e in enumerate(estimates) if e is not None]
        if not known:
            return "items", [c.sql for c in where], "items.rowid"
        lead = min(known, key=lambda i: estimates[i])
        if estimates[lead] == ESTIMATE_CAP:
            self._refine(conn, generation, where, params, estimates)
            lead = min(known, key=lambda i: estimates[i])
        rows = estimates[lead] or 0
        rest = [c for i, c in enumerate(where) if i != lead]
        fts = [c for c in rest if c.kind == "fts"]
        if fts and len(rest) > 1 and rows < ESTIMATE_CAP:
            # free text is tested on the rows that pass the other conditions too: how many
            listing = min(self._listing(conn, generation, c, params) for c in fts)
            if rows * _COST_PROBE >= listing * _COST_LIST:
                rows = self._count(conn, generation, [c for c in where if c.kind != "fts"],
                                   params)
        driver = where[lead]
        if driver.drive is None:
            tests = [self._test(conn, generation, c, params, rows) for c in rest]
            return "items", [driver.sql, *_fts_last(rest, tests)], "items.rowid"
        # found from another table: the other property tests join it, then items if needed
        source, term, rowid = driver.drive
        joins, listed = [], []
        for index, cond in enumerate(c for c in rest if c.props is not None):
            name, clause = cond.props
            if self._listed(conn, generation, cond, params, rows):
                listed.append(f"+{rowid} IN (SELECT item FROM item_props WHERE name = "
                              f"{name_code(name)} AND ({clause}))")
                continue
            alias = f"e{index}"
            joins.append(f" CROSS JOIN item_props AS {alias} ON {alias}.item = {rowid} AND "
                         f"{alias}.name = {name_code(name)} AND ({qualify_props(clause, alias)})")
        rest = [c for c in rest if c.props is None]
        tests = [self._test(conn, generation, c, params, rows, rowid) for c in rest]
        if items or any("items." in t or "docs." in t for t in [term, *tests]):
            joins.append(f" CROSS JOIN items ON items.rowid = {rowid}")
        return source + "".join(joins), [term, *listed, *_fts_last(rest, tests)], rowid

    def _refine(self, conn: sqlite3.Connection, generation: int, where: list[Cond],
                params: dict, estimates: list[int | None]) -> None:
        """Count further the conditions whose estimate stopped at the cap, when another's
        known count is above it: "at least 5,000" made a property test holding 450,000 items
        find the rows of a date range holding 24,000 (0.6 s, not 0.26 s, at 1,000,000
        items). Up to the smallest count above the cap, at most ``_REFINE_MAX``."""
        above = [e for e in estimates if e is not None and e > ESTIMATE_CAP]
        if not above:
            return
        for i, cond in enumerate(where):
            if estimates[i] == ESTIMATE_CAP:
                estimates[i] = self._count_to(conn, generation, cond, params,
                                              min(min(above), _REFINE_MAX) + 1) or ESTIMATE_CAP

    def _listed(self, conn: sqlite3.Connection, generation: int, cond: Cond, params: dict,
                rows: float) -> bool:
        """Whether a property test of ``rows`` rows found otherwise costs less as one list of
        its matches (counted, then built once; a lookup in memory per row) than as a lookup
        in the index per row: when its matches are few enough for their number."""
        most = min(rows * _COST_PROBE_PROPS / _COST_LIST_PROPS, _REFINE_MAX)
        if most <= ESTIMATE_CAP:  # (even a list of the capped estimate's size costs more)
            return False
        matches = self._count_to(conn, generation, cond, params, int(most) + 1)
        return matches is not None and matches <= most

    def _count_to(self, conn: sqlite3.Connection, generation: int, cond: Cond, params: dict,
                  limit: int) -> int | None:
        """A condition's matches counted up to ``limit`` rather than the estimate's cap; None
        when its estimate is no capped count."""
        capped = f"LIMIT {ESTIMATE_CAP})"
        if not (isinstance(cond.estimate, str) and cond.estimate.endswith(capped)):
            return None
        return self._cached(conn, generation,
                            cond.estimate.removesuffix(capped) + f"LIMIT {limit})", params,
                            lambda cursor: cursor.fetchone()[0])

    def _listing(self, conn: sqlite3.Connection, generation: int, cond: Cond,
                 params: dict) -> float:
        """How many matches listing a free-text condition's reads: its estimate, or when a
        date range bounds the listing by recency keys, the range's share of it (at 1,000,000
        items, "and" in a date range and a box: the box's 10,935 items probed one by one in
        153 ms, the 273,480 matches in the range listed in 85, all 671,373 in 147)."""
        listing = self._estimate(conn, generation, cond, params) or 0
        if cond.within is not None and listing:
            dated = self._estimate(conn, generation, cond.within, params)
            if dated is not None:
                listing *= min(1.0, dated / (self._total(conn, generation) or 1))
        return listing

    def _test(self, conn: sqlite3.Connection, generation: int, cond: Cond, params: dict,
              rows: float, rowid: str = "items.rowid") -> str:
        """A condition as the test of ``rows`` rows found otherwise. ``rowid``: the rows'
        rowid where it is not ``items``' own (rows found from another table): free text
        listed tests it before ``items`` is joined, sparing the lookups of the rows it
        rejects (looked up in the FTS index, it still comes last, after cheaper tests)."""
        if cond.probe is not None:
            listing = self._listing(conn, generation, cond, params)
            if rows * _COST_PROBE < listing * _COST_LIST:
                return cond.probe
            if rowid != "items.rowid":
                return f"+{rowid} IN ({_fts_matches(cond)})"
        return cond.scan or cond.sql

    def _estimate(self, conn: sqlite3.Connection, generation: int, cond: Cond,
                  params: dict) -> int | None:
        if cond.estimate is None or isinstance(cond.estimate, int):
            return cond.estimate
        return self._cached(conn, generation, cond.estimate, params,
                            lambda cursor: cursor.fetchone()[0])

    def _total(self, conn: sqlite3.Connection, generation: int) -> int:
        return self._cached(conn, generation,
                            "SELECT coalesce(sum(n), 0) FROM collection_stats", {},
                            lambda cursor: cursor.fetchone()[0])

    def _cached(self, conn: sqlite3.Connection, generation: int, sql: str, params: dict,
                read: Any, rows: bool = False) -> Any:
        """``read(conn.execute(sql, params))``, remembered until the next write: a catalog
        changes at crawl time only, and paging asks for the same count again and again.
        ``rows``: a list of up to ``_COLLECT_MAX`` rows, kept in a smaller cache."""
        used = {name: params[name] for name in _PARAM.findall(sql) if name in params}
        key = (sql, tuple(sorted(used.items(), key=lambda kv: kv[0])))
        return self._remembered(key, generation, lambda: read(conn.execute(sql, used)), rows)

    def _remembered(self, key: tuple, generation: int, compute: Callable[[], Any],
                    rows: bool = False) -> Any:
        """``compute()``, remembered under ``key`` until the next write (None is not: it is
        computed again). ``rows``: in the smaller cache, of lists of rows."""
        cache, size = (self._rows, _ROWS_CACHE_SIZE) if rows else (self._cache, _CACHE_SIZE)
        with self._lock:
            cached = cache.get(key)
            if cached is not None and cached[0] == generation:
                cache.move_to_end(key)
                return cached[1]
        value = compute()
        if value is not None:
            with self._lock:
                cache[key] = (generation, value)
                cache.move_to_end(key)
                while len(cache) > size:
                    cache.popitem(last=False)
        return value

    def _where(self, conn: sqlite3.Connection, generation: int, query: Query, binder: Binder,
               match: str | None) -> list[Cond]:
        """The query's conditions (free text first, if any)."""
        where: list[Cond] = []
        if match is not None:
            m = binder.bind(match)
            matches = f"SELECT rowid FROM items_fts WHERE items_fts MATCH {m}"
            count = f"SELECT count(*) FROM items_fts WHERE items_fts MATCH {m}"
            terms = [t.strip() for t in query.q or () if isinstance(t, str) and t.strip()]
            counted = self._cached(conn, generation,
                                   "SELECT value FROM store_info WHERE key = 'term_docs'", {},
                                   lambda cursor: (cursor.fetchone() or (0,))[0])
            if counted and 1 <= len(terms) <= 2 and all(_WORD.fullmatch(t) for t in terms):
                count = self._words_count([t.lower() for t in terms], binder)
            where.append(Cond(
                f"items.rowid IN ({matches})", scan=f"+items.rowid IN ({matches})", kind="fts",
                only=count, estimate=count,
                probe=f"EXISTS (SELECT 1 FROM items_fts WHERE items_fts MATCH {m} "
                      f"AND rowid = items.rowid)"))
            if counted:
                where[-1].bound = _phrases_bound(query.q or (), binder)
            if terms and all(_WORD.fullmatch(t) for t in terms):
                where[-1].words = sorted({t.lower() for t in terms})
        if query.collections:
            test = _in_list("collection", sorted(set(query.collections)), binder)
            count = f"SELECT coalesce(sum(n), 0) FROM collection_stats WHERE {test}"
            collections = _in_list("items.collection", query.collections, binder)
            # (tested on rows found otherwise, not an index SQLite may prefer for the order:
            # a collection's items in an old date range walked its newer items, 38 ms at
            # 1,000,000 items against 4 from the range's own index)
            where.append(Cond(collections, scan=f"+{collections}", kind="index", only=count,
                              estimate=count))
            where[-1].collections = test
        if query.ids:
            sql = _in_list("items.id", query.ids, binder)
            count = f"SELECT count(*) FROM items WHERE {sql}"
            where.append(Cond(sql, kind="index", only=count, estimate=count))
        # with a date range too, the R*Tree (which knows items' times) finds both at once
        span = None
        if query.datetime is not None:
            span = interval_bounds(query.datetime if isinstance(query.datetime, Interval)
                                   else Interval(query.datetime, query.datetime))
        if query.bbox is not None:
            box = bbox_literal(query.bbox)
            rtree = rtree_subquery(binder, box, exact=True, span=span)
            # an item has two R*Tree entries when it crosses the antimeridian: count each once
            join = rtree_join(binder, box, exact=True, span=span)
            if join is not None:
                count = f"SELECT count(*) FROM {join[0]} WHERE {join[1]}"
                drive = (*join, "r.id >> 1")
            else:  # (an R*Tree query per side of the antimeridian: one entry may match both)
                count = f"SELECT count(DISTINCT item) FROM ({rtree})"
                # (the items, each once, for other tests of the rowid before items is read)
                once = rtree_subquery(binder, box, exact=True, span=span, distinct=True)
                drive = (f"({once}) AS r", "1", "r.item")
            where.append(Cond(
                f"items.rowid IN ({rtree})", scan=bbox_test(binder, box), kind="bbox",
                only=None if span else count, drive=drive,
                estimate=f"SELECT count(*) FROM (SELECT 1 FROM ({rtree}) LIMIT {ESTIMATE_CAP})",
            ))
            where[-1].repeats = rtree
        if query.intersects is not None:
            text = geometry_literal(query.intersects)
            bounds = geometry_bounds(text)
            if bounds is None:
                where.append(Cond("0", estimate=0))
            else:
                rtree = rtree_subquery(binder, bounds, span=span)
                where.append(Cond(
                    f"items.rowid IN ({rtree})", scan=f"+items.rowid IN ({rtree})", kind="bbox",
                    estimate=f"SELECT count(*) FROM (SELECT 1 FROM ({rtree}) "
                             f"LIMIT {ESTIMATE_CAP})"))
                where.append(Cond(
                    f"sh_spatial('intersects', {binder.bind(text)}, docs.geometry)"))
        if query.datetime is not None:
            where.append(self._datetime_cond(conn, generation, query.datetime, binder))
            rowids = self._recency_range(conn, generation, where[-1].span) \
                if match is not None and where[-1].span else None
            if rowids is not None:
                # the free-text matches the date range can be among: rowids are recency keys
                fts = where[0]
                a, b = binder.bind(rowids[0]), binder.bind(rowids[1])
                fts.rowids = f"items_fts.rowid BETWEEN {a} AND {b}"
                fts.within = where[-1]
                matches = _fts_matches(fts)
                fts.sql, fts.scan = f"items.rowid IN ({matches})", f"+items.rowid IN ({matches})"
        if query.filter is not None:
            for cond in compile_filter(query.filter, binder):
                if cond.sides is not None:
                    cond = self._ranges(conn, generation, cond, binder)
                where.append(cond)
        return where

    @staticmethod
    def _words_count(words: list[str], binder: Binder) -> str:
        """A query counting the items with any of one or two words, each its own token in
        lower case, from the counts kept at maintenance (``term_docs``): one word's is its
        count; two words' is both counts less the items with both, since an FTS query for
        both reads only the rarer word's postings in full (at 1,000,000 items "with" OR
        "koniki" counted in 34-60 ms, "with" AND "koniki" in 12-17)."""
        counts = [f"coalesce((SELECT n FROM term_docs WHERE term = {binder.bind(w)}), 0)"
                  for w in words]
        if len(words) == 1:
            return f"SELECT {counts[0]}"
        both = binder.bind(" AND ".join(f'"{w}"' for w in words))
        return (f"SELECT {counts[0]} + {counts[1]} - (SELECT count(*) FROM items_fts "
                f"WHERE items_fts MATCH {both})")

    def _datetime_cond(self, conn: sqlite3.Connection, generation: int, interval: Any,
                       binder: Binder) -> Cond:
        """[start, end] intersects the interval: start <= its end AND end >= its start."""
        sides, span = _datetime_conditions(interval, binder)
        cond = Cond(" AND ".join(sides), kind="index", sides=sides, span=span)
        cond.column = TimeTest(*span)
        cond = self._ranges(conn, generation, cond, binder)
        if cond.drive is not None and self._inverted(conn, generation) == 0:
            # the R*Tree test is exact (but for items that end before they start, whose
            # entry spans from their end to their start): counting needs nothing else
            exact = time_rtree_test(binder, span, exact=True)
            cond.drive = ("items_time AS tt", exact, "tt.id")
            if cond.only is None:
                cond.only = f"SELECT count(*) FROM items_time AS tt WHERE {exact}"
        return cond

    def _ranges(self, conn: sqlite3.Connection, generation: int, cond: Cond,
                binder: Binder) -> Cond:
        """A condition of ranges on ``items`` columns (``sides``), found from the one whose
        index range holds the fewest rows (SQLite, which keeps no statistics of values, often
        picks another), the others tested on those rows."""
        params = binder.params
        sides = cond.sides or [cond.sql]
        counts = []
        for side in sides:
            found = _TIME_SIDE.fullmatch(side)
            if found and isinstance(params.get(found[3]), (int, float)):
                counts.append(self._time_count(conn, generation, found[1], found[2],
                                               params[found[3]]))
            else:
                counts.append(self._cached(
                    conn, generation, f"SELECT count(*) FROM (SELECT 1 FROM items WHERE {side} "
                                      f"LIMIT {ESTIMATE_CAP})", params,
                    lambda cursor: cursor.fetchone()[0]))
        narrow = min(range(len(sides)), key=lambda i: counts[i])
        tests = [_unindexed(side) for side in sides]
        if len(sides) > 1 and counts[narrow] < max(counts):
            cond.sql = " AND ".join(sides[i] if i == narrow else tests[i]
                                    for i in range(len(sides)))
        cond.scan = " AND ".join(tests)
        cond.estimate = counts[narrow]
        exact = self._exact_time_count(conn, generation, sides, params)
        if exact is not None:
            cond.only = exact
        if cond.span is not None and len(sides) == 2:  # start <= b AND end >= a
            # = items starting by b, but those ending before a (if start <= end, as is usual)
            lo, hi = cond.span
            cond.estimate = max(0, min(counts[narrow], self._time_count(
                conn, generation, "start", "<=", hi) - self._time_count(
                conn, generation, '"end"', "<", lo, inside=False)))
            if cond.estimate * 4 < counts[narrow]:
                # few of the items on the narrower side: the time R*Tree finds them faster
                cond.drive = ("items_time AS tt", time_rtree_test(binder, cond.span, False)
                              + f" AND {cond.scan}", "tt.id")
        return cond

    def _exact_time_count(self, conn: sqlite3.Connection, generation: int, sides: list[str],
                          params: dict, collections: str | None = None) -> str | None:
        """A query counting the items that meet these ranges on their start and end from
        time_hist, reading rows of one bucket per side (not the hundreds of thousands an index
        range may hold); None when the ranges have another form. Two sides, start <= hi AND
        end >= lo, count as (start <= hi) - (end < lo): exact while no item starts after it
        ends (the store counts those) and lo <= hi. ``collections`` (a test of ``collection``):
        the items of those collections."""
        found = [_TIME_SIDE.fullmatch(side) for side in sides]
        if sides == ['items."end" IS NOT NULL']:  # (an interval open at both ends)
            if collections is not None:
                return ("SELECT coalesce(sum(ends), 0) FROM collection_time_hist WHERE "
                        + collections)
            return "SELECT coalesce(sum(ends), 0) FROM time_hist"
        if not all(found) or len(found) > 2:
            return None
        ranges = {m[1]: (m[2], m[3], params.get(m[3])) for m in found if m is not None}
        if len(ranges) != len(found) or not all(
                type(v) in (int, float) and abs(v) <= _EXACT_TIME_MAX for *_, v in ranges.values()):
            return None
        if len(ranges) == 1:
            [(column, (op, name, value))] = ranges.items()
            return f"SELECT {_side_count(column, op, name, value, collections)}"
        (op_s, name_s, hi), (op_e, name_e, lo) = ranges["start"], ranges['"end"']
        if op_s not in ("<", "<=") or op_e not in (">", ">=") or lo > hi or (
                lo == hi and op_s == "<" and op_e == ">"):
            return None
        if self._inverted(conn, generation) != 0:
            return None
        before = "<" if op_e == ">=" else "<="  # the items ending before the range
        ended = _side_count('"end"', before, name_e, lo, collections)
        return f"SELECT {_side_count('start', op_s, name_s, hi, collections)} - {ended}"

    def _inverted(self, conn: sqlite3.Connection, generation: int) -> int | None:
        """How many items start after they end (a start_datetime after the end_datetime)."""
        return self._cached(conn, generation,
                            "SELECT value FROM store_info WHERE key = 'inverted'", {},
                            lambda cursor: (cursor.fetchone() or (None,))[0])

    def _time_count(self, conn: sqlite3.Connection, generation: int, column: str, op: str,
                    t: float, inside: bool = True) -> int:
        """How many items have a start (or end) ``op`` t, from time_hist: counting t's
        whole bucket (``inside``: an over-estimate) or none of it."""
        field = "starts" if column == "start" else "ends"
        bucket = _bucket(min(max(t, -1e15), 1e15))
        if op in ("<", "<="):
            test = "<=" if inside else "<"
        elif op in (">", ">="):
            test = ">=" if inside else ">"
        else:
            test = "="
        return self._cached(
            conn, generation, f"SELECT coalesce(sum({field}), 0) FROM time_hist "
                              f"WHERE bucket {test} :bucket", {"bucket": bucket},
            lambda cursor: cursor.fetchone()[0])

    def _datetime_seeks(self, conn: sqlite3.Connection, generation: int, where: list[Cond],
                        binder: Binder) -> list[str]:
        """Bounds on ``items.datetime`` implied by the date ranges of the query (an item's
        datetime lies within known distances of its start and end), for walking the
        datetime index from where matches can start."""
        seeks = []
        for cond in where:
            if cond.span is None:
                continue
            lo, hi = self._datetime_bounds(conn, generation, cond.span)
            if hi is not None:
                seeks.append(f"items.datetime <= {binder.bind(hi)}")
            if lo is not None:
                seeks.append(f"items.datetime >= {binder.bind(lo)}")
        return seeks

    def _datetime_bounds(self, conn: sqlite3.Connection, generation: int,
                         span: tuple[float, float]) -> tuple[float | None, float | None]:
        """The bounds of the ``datetime`` of items whose [start, end] intersects ``span``."""
        before, after = self._cached(
            conn, generation,
            "SELECT (SELECT value FROM store_info WHERE key = 'datetime_from_start'), "
            "(SELECT value FROM store_info WHERE key = 'end_from_datetime')", {},
            lambda cursor: cursor.fetchone())
        lo, hi = span
        return (lo - after if lo != -math.inf and after is not None else None,
                hi + before if hi != math.inf and before is not None else None)

    def _spilled(self, conn: sqlite3.Connection, generation: int) -> bool:
        """Whether some recency key was ever given out of its second (millions of items in
        one second): then rowid order is not date order (to the second) everywhere."""
        return self._cached(conn, generation,
                            "SELECT value FROM store_info WHERE key = 'spilled'", {},
                            lambda cursor: cursor.fetchone()) is not None

    def _first_page_from_columns(self, conn: sqlite3.Connection, generation: int,
                                 where: list[Cond], keys: list[tuple[str, str]],
                                 limit: int) -> tuple[int, list] | None:
        """(matched, the rows of a first page) of a conjunction that the held columns count,
        in an order that starts with the date: the passing items nearest that end of the
        recency keys, and every other passing item of the last one's second, sorted by SQL
        (within a second, recency keys follow the order of indexing, not the date or the
        other keys); None otherwise. At 1,000,000 items, found and sorted by SQL, the 3,303
        matches of "eo:cloud_cover" BETWEEN 10.9 AND 14.5 AND license = 'MIT' took 50 ms for a
        page of 50; from the columns, 2.3."""
        if keys[0][0] != "items.datetime" or any(uses_docs(e) for e, _ in keys):
            return None
        tests = self._column_tests(conn, where)
        if tests is None or self._spilled(conn, generation):
            return None
        found = self._columns.ends(generation, tests, limit + 1, keys[0][1] == "desc",
                                   _SLOT_BITS)
        if found is None or len(found[1]) > _VALUES_PER_QUERY:
            return None
        matched, rowids = found
        marks = ", ".join("?" * len(rowids))
        rows = conn.execute(
            f"SELECT {', '.join(e for e, _ in keys)} FROM items WHERE items.rowid IN ({marks}) "
            f"ORDER BY {_order_by(keys)} LIMIT {limit + 1}", rowids.tolist()).fetchall()
        return matched, rows

    def _recency_range(self, conn: sqlite3.Connection, generation: int,
                       span: tuple[float, float]) -> tuple[int, int] | None:
        """The rowids (recency keys) of the items whose [start, end] may intersect ``span``;
        None if that is not a range (no bound, or keys once spilled out of their second)."""
        lo, hi = self._datetime_bounds(conn, generation, span)
        if (lo is None and hi is None) or self._spilled(conn, generation):
            return None
        return (_recency_base(lo) if lo is not None else 1 << _SLOT_BITS,
                _recency_base(hi) + (1 << _SLOT_BITS) - 1 if hi is not None else 2**62)

    def _sort_keys(self, conn: sqlite3.Connection, generation: int,
                   sort: list[tuple[str, str, str]]
                   ) -> tuple[list[tuple[str, str]], tuple | None]:
        """[(SQL, direction)] of a sort order, the rowid last; and, when it starts with a
        property ``item_props`` can walk in order, (its name as SQL, its kind, how many items
        have it)."""
        keys, lead = [], None
        for index, (name, sql, direction) in enumerate(sort):
            if name not in _SORT_COLUMNS and in_props_table(name):
                kind, present = self._prop_kind(conn, generation, name)
                if kind is not None:
                    literal = sql_string(name)
                    sql = (f"(SELECT value FROM item_props WHERE item = items.rowid AND "
                           f"name = {name_code(literal)} AND kind = {kind})")
                    if index == 0:
                        lead = (literal, kind, present)
            keys.append((sql, direction))
        keys.append(("items.rowid", keys[-1][1]))  # unique tie-breaker, index-friendly
        return keys, lead

    def _prop_kind(self, conn: sqlite3.Connection, generation: int,
                   name: str) -> tuple[int | None, int]:
        """The kind of a property's values when they all have one (they sort in
        ``item_props`` then), and how many items have it."""
        found = self._cached(conn, generation,
                             "SELECT type, sum(n) FROM prop_types WHERE name = :name "
                             "GROUP BY type", {"name": name}, lambda cursor: cursor.fetchall())
        kinds = {JSON_TYPE_KINDS.get(kind) for kind, _ in found}
        if not found:
            return KIND_NUMBER, 0
        if len(kinds) == 1 and None not in kinds:
            return kinds.pop(), sum(n for _, n in found)
        return None, 0


#: SQLite VM steps between two looks at a search's budget
_BUDGET_STEPS = 1000
#: SQLite's messages for a statement beyond its own limits: the query is too big (400), the
#: store is fine
_TOO_COMPLEX = ("too many", "too large", "too big", "stack overflow")


@contextmanager
def _limited(conn: sqlite3.Connection, budget: Budget | None,
             closed: Callable[[], bool]) -> Iterator[None]:
    """A search within its budget and while the store is open (SQLite's progress handler
    stops even a statement in progress, and those after one that ``close`` interrupted), and
    within SQLite's limits, whose errors are the query's fault, not the store's."""
    deadline, cancelled = math.inf, threading.Event()
    if budget is not None:
        if budget.cancelled.is_set():
            raise QueryInterrupted("the search was abandoned", timed_out=False)
        deadline, cancelled = time.monotonic() + budget.seconds, budget.cancelled
    conn.set_progress_handler(
        lambda: closed() or cancelled.is_set() or time.monotonic() > deadline, _BUDGET_STEPS)
    try:
        yield
    except sqlite3.OperationalError as exc:
        message = str(exc)
        if budget is not None and message == "interrupted" and not closed():
            if budget.cancelled.is_set():
                raise QueryInterrupted("the search was abandoned", timed_out=False) from None
            raise QueryInterrupted(f"the search took more than {budget.seconds:g} s and was "
                                   "stopped: narrow it down", timed_out=True) from None
        if any(marker in message for marker in _TOO_COMPLEX):
            raise QueryError(f"the search is too complex for the index ({message})") from None
        raise
    finally:
        conn.set_progress_handler(None, 0)


def _sort_spec(query: Query) -> list[tuple[str, str, str]]:
    """[(field, SQL, direction)] of the query's sort (or the default one), with the id
    tie-breaker the indexes hold."""
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


def _fts_last(conds: list[Cond], tests: list[str]) -> list[str]:
    """Tests in the order to make them: free text last, the cheap ones first."""
    return [t for c, t in zip(conds, tests, strict=True) if c.kind != "fts"] + \
        [t for c, t in zip(conds, tests, strict=True) if c.kind == "fts"]


def _slice(rows: list, keys: list[tuple[str, str]], after: list | None, limit: int,
           backward: bool) -> list:
    """Up to limit + 1 of ``rows`` (sorted in the order ``keys``, SQLite's: NULL, numbers,
    texts) strictly after the key ``after`` - or, ``backward``, strictly before it, nearest
    first - as the SELECTs of a page would read them."""
    if after is None:
        return rows[: limit + 1]
    directions = [d for _, d in keys]
    lo, hi = 0, len(rows)
    while lo < hi:  # the first row after the key (backward: the first not before it)
        mid = (lo + hi) // 2
        c = _compare(rows[mid], after, directions)
        if c < 0 or (c == 0 and not backward):
            lo = mid + 1
        else:
            hi = mid
    if not backward:
        return rows[lo: lo + limit + 1]
    return rows[max(0, lo - limit - 1): lo][::-1]


def _compare(a: Any, b: Any, directions: list[str]) -> int:
    for x, y, direction in zip(a, b, directions, strict=True):
        rx, ry = _rank(x), _rank(y)
        c = (rx > ry) - (rx < ry) if rx != ry else 0 if x is None else (x > y) - (x < y)
        if c:
            return c if direction == "asc" else -c
    return 0


def _rank(value: Any) -> int:
    """SQLite's order of types."""
    if value is None:
        return 0
    if isinstance(value, (int, float)):
        return 1
    return 2 if isinstance(value, str) else 3


def _order_by(keys: list[tuple[str, str]]) -> str:
    return ", ".join(f"{e} {d.upper()}" for e, d in keys)


def _fts_condition(fts: Cond) -> str:
    """``items_fts MATCH :p`` of the free-text condition (for queries on ``items_fts``)."""
    m = _PARAM.search(fts.sql)  # items.rowid IN (SELECT ... WHERE items_fts MATCH :p)
    assert m is not None
    return f"items_fts MATCH :{m.group(1)}"


def _independent(estimates: list[int | None], total: int) -> float:
    """The matches of conditions of these match counts (None: unknown) among ``total``
    items, as if they were independent."""
    matches = float(total)
    for e in estimates:
        if e is not None:
            matches *= min(e, total) / total
    return matches


def _test_key(test: Test) -> tuple:
    """What a column test tests (hashable), to remember counts by."""
    if isinstance(test, TimeTest):
        return ("dates", test.low, test.high)
    code, column = test
    return (code, column.kind, tuple(tuple(bound) for bound in column.ranges))


def _counted(fts: Cond) -> bool:
    """Whether free text is counted from ``term_docs`` (one or two words), without reading
    its matches."""
    return "term_docs" in (fts.only or "")


def _fts_matches(fts: Cond) -> str:
    """The rowids of the free-text condition's matches (within the recency keys of the
    search's date range, if any)."""
    within = f" AND {fts.rowids}" if fts.rowids else ""
    return f"SELECT rowid FROM items_fts WHERE {_fts_condition(fts)}{within}"


_PARAM = re.compile(r":([A-Za-z_]\w*)")


#: schema 2's indexes on ``items``, which schema 3 replaces or keeps under the same names
_V2_ITEM_INDEXES = ("items_collection_datetime", "items_datetime", "items_start", "items_end",
                    "items_id", "items_title", "items_project")


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Schema 2 -> 3 in place (inside the caller's write transaction), keeping every item,
    state, overlay and meta key: ``items`` gains its ``doc`` key (its schema 2 document has
    the item's rowid) and loses the (collection, id) constraint, rebuilt; the FTS index is
    rebuilt contentless from its old content. ``item_docs`` rows stay as they are: their
    JSON text is read as schema 2 wrote it."""
    for index in _V2_ITEM_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    conn.execute("ALTER TABLE items RENAME TO items_v2")
    conn.execute(_create_table("items"))
    conn.execute(
        'INSERT INTO items (rowid, source, project, collection, id, doc, datetime, start, "end", '
        "title, minx, miny, maxx, maxy) SELECT rowid, source, project, collection, id, rowid, "
        'datetime, start, "end", title, minx, miny, maxx, maxy FROM items_v2')
    conn.execute("DROP TABLE items_v2")
    conn.execute("DROP INDEX IF EXISTS item_props_item")
    conn.execute("ALTER TABLE item_props RENAME TO item_props_v2")
    conn.execute(_create_table("prop_names"))
    conn.execute("INSERT INTO prop_names (name) SELECT DISTINCT name FROM item_props_v2 "
                 "ORDER BY name")
    conn.execute(_create_table("item_props"))
    conn.execute("INSERT INTO item_props (name, kind, value, id, item) SELECT n.code, p.kind, "
                 "p.value, p.id, p.item FROM item_props_v2 AS p JOIN prop_names AS n "
                 "ON n.name = p.name ORDER BY 1, 2, 3, 4, 5")
    conn.execute("DROP TABLE item_props_v2")
    conn.execute("DROP TABLE IF EXISTS items_vocab")
    conn.execute("CREATE VIRTUAL TABLE items_fts_v3 USING fts5 (title, description, keywords, "
                 "content = '', tokenize = 'unicode61 remove_diacritics 2')")
    conn.execute("INSERT INTO items_fts_v3 (rowid, title, description, keywords) "
                 "SELECT rowid, title, description, keywords FROM items_fts")
    conn.execute("DROP TABLE items_fts")
    conn.execute("ALTER TABLE items_fts_v3 RENAME TO items_fts")
    conn.executemany("INSERT OR REPLACE INTO store_info VALUES (?, ?)",
                     [("fts_unmerged", 1), ("term_docs", 0), ("analyzed", 0)])
    conn.execute("UPDATE store_info SET value = value + 1 WHERE key = 'generation'")


def _create_table(name: str) -> str:
    """The statement of ``_SCHEMA`` creating table ``name``."""
    return next(statement for statement in _statements(_SCHEMA)
                if f"CREATE TABLE IF NOT EXISTS {name} (" in statement)


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
        #: the largest datetime - start and end - datetime of the added items: bounds kept by
        #: the store (never lowered: they stay bounds), for seeking the datetime index
        self.spans: dict[str, float] = {}
        #: time_hist bucket -> [starts, ends] changes, and per (collection, bucket)
        self.hist: dict[int, list[int]] = {}
        self.collection_hist: dict[tuple[str, int], list[int]] = {}
        self.written = 0  # items added and removed
        #: change in the number of items starting after they end (see _exact_time_count)
        self.inverted = 0
        self.doc = 0  # the last item_docs key used (the next document is appended after it)
        self.names: dict[str, int] = {}  # prop_names codes used (some maybe new)

    def added(self, row: _Row) -> None:
        self.written += 1
        c = row.collection
        self.count[c] += 1
        if row.datetime is not None:  # (then start and end are not None either)
            for key, span in (("datetime_from_start", row.datetime - row.start),
                              ("end_from_datetime", row.end - row.datetime)):
                self.spans[key] = max(span, self.spans.get(key, span))
            self.count_times(c, row.start, row.end, +1)
            self.inverted += row.start > row.end
        for name, kind in row.types:
            self.types[(c, name, kind)] += 1
        ext = self.extents.get(c)
        if ext is None:
            ext = self.extents[c] = [None] * 6
        if row.start is not None:
            _widen(ext, 0, row.start, row.end)
        bbox = row.bbox
        if bbox is not None:
            crossing = bbox[0] > bbox[2]
            if crossing:
                self.crossing[c] += 1
            else:
                _widen(ext, 2, bbox[0], bbox[2])
            _widen(ext, 4, bbox[1], bbox[3])

    def count_times(self, collection: str, start: float | None, end: float | None,
                    step: int) -> None:
        for index, t in enumerate((start, end)):
            if t is not None:
                bucket = _bucket(t)
                self.hist.setdefault(bucket, [0, 0])[index] += step
                self.collection_hist.setdefault((collection, bucket), [0, 0])[index] += step

    def removed(self, row: tuple) -> None:
        _, c, start, end, minx, miny, maxx, maxy, props = row[:9]
        self.written += 1
        self.count[c] -= 1
        self.count_times(c, start, end, -1)
        if start is not None and end is not None and start > end:
            self.inverted -= 1
        for name, kind in _property_types(_props_dict(props)):
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
        conn.executemany(
            "INSERT INTO time_hist (bucket, starts, ends) VALUES (?, ?, ?) ON CONFLICT (bucket) "
            "DO UPDATE SET starts = starts + excluded.starts, ends = ends + excluded.ends",
            [(bucket, starts, ends) for bucket, (starts, ends) in self.hist.items()
             if starts or ends])
        conn.execute("DELETE FROM time_hist WHERE starts <= 0 AND ends <= 0")
        self.save_time_hist(conn)
        if self.inverted:
            conn.execute("UPDATE store_info SET value = value + ? WHERE key = 'inverted'",
                         (self.inverted,))
        conn.executemany(
            "INSERT INTO store_info (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            list(self.spans.items()))
        for c in set(self.count) | set(self.gone):
            self._save_stats(conn, c)

    def save_time_hist(self, conn: sqlite3.Connection) -> None:
        """Add the per-collection histogram's changes."""
        conn.executemany(
            "INSERT INTO collection_time_hist (collection, bucket, starts, ends) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (collection, bucket) DO UPDATE SET "
            "starts = starts + excluded.starts, ends = ends + excluded.ends",
            [(c, bucket, starts, ends) for (c, bucket), (starts, ends)
             in self.collection_hist.items() if starts or ends])
        conn.execute("DELETE FROM collection_time_hist WHERE starts <= 0 AND ends <= 0")

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
            added = self.extents.get(c, [None] * 6)
            for i in (0, 2, 4):  # ([min, max] pairs, both set or both None)
                if added[i] is not None:
                    _widen(merged, i, added[i], added[i + 1])
            stats = (n, *merged, (old[7] if old else 0) + self.crossing[c])
        conn.execute(
            "INSERT OR REPLACE INTO collection_stats "
            "(collection, n, tmin, tmax, west, east, south, north, crossing) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (c, *stats))


def _widen(extent: list[float | None], i: int, low: float, high: float) -> None:
    """Widen ``extent[i:i + 2]`` ([min, max]) to take in [low, high]."""
    if extent[i] is None or low < extent[i]:
        extent[i] = low
    if extent[i + 1] is None or high > extent[i + 1]:
        extent[i + 1] = high


class _RecencyKeys:
    """Free rowids for the items of one write, by datetime: each after the items of the same
    second, those in the index and those given a key before by this write."""

    def __init__(self, conn: sqlite3.Connection, datetimes: list[float | None]) -> None:
        self.conn = conn
        #: a second's first key -> the last key given in it (None: none yet), for the seconds
        #: of these datetimes at once (a query per item was 100,000 queries per 100,000 items)
        self.last: dict[int, int | None] = dict(conn.execute(
            "SELECT value, (SELECT max(rowid) FROM items WHERE rowid >= value AND rowid < "
            "value + ?) FROM json_each(?)",
            (1 << _SLOT_BITS, _dumps(sorted({_recency_base(t) for t in datetimes})))))
        self.given: set[int] = set()

    def next(self, datetime: float | None) -> int:
        base = _recency_base(datetime)
        end = base + (1 << _SLOT_BITS)
        last = self.last[base]  # (every second of the write: read at once, in __init__)
        key = base if last is None else last + 1
        while key in self.given:  # (spilled here from an earlier second by this write)
            key += 1
        if key >= end:
            # millions of items in one second: the first free key after them (in a later
            # second's range, which date ranges then no longer narrow to)
            self.conn.execute("INSERT OR REPLACE INTO store_info VALUES ('spilled', 1)")
            gap = self.conn.execute(  # (the index's first free key after base, at once)
                "SELECT min(rowid) + 1 FROM items AS a WHERE rowid >= ? AND NOT EXISTS "
                "(SELECT 1 FROM items AS b WHERE b.rowid = a.rowid + 1)", (base,)).fetchone()[0]
            key = max(key, gap or key)
            while key in self.given or self.conn.execute(
                    "SELECT 1 FROM items WHERE rowid = ?", (key,)).fetchone():
                key += 1
        self.last[base] = key
        self.given.add(key)
        return key


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


class _Batch:
    """One apply(): projects to replace (with their items' rows) and projects to delete."""

    __slots__ = ("deletions", "source", "updates")

    def __init__(self, source: str, updates: list[ProjectUpdate], deletions: list[str]) -> None:
        self.source, self.updates, self.deletions = source, updates, list(deletions)

    def weight(self) -> int:
        """Its size for the write queue: items written and projects deleted."""
        return sum(len(update.items) or 1 for update in self.updates) + len(self.deletions)


class _Row:
    """The columns of one item, computed before the write transaction starts."""

    __slots__ = ("bbox", "collection", "datetime", "end", "geometry", "id", "json", "prop_rows",
                 "props", "start", "text", "title", "types")

    def __init__(self, item: dict) -> None:
        self.collection, self.id = _check_item(item)
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
        self.geometry = pack_json(item["geometry"], GEOMETRY) if item.get("geometry") else None
        self.bbox = _item_bbox(item)
        self.text = _fts_text(props)
        self.types = _property_types(props)
        self.prop_rows = property_rows(props)
        rest = dict(item)
        if "properties" in item:
            rest["properties"] = None  # keeps the key's place; props holds the value
            self.props: bytes | None = pack_json(item["properties"], PROPS)
        else:
            self.props = None
        if self.geometry is not None:
            rest["geometry"] = None  # likewise: the geometry column holds it
        self.json = pack_json(rest, REST)


def _check_item(item: dict) -> tuple[str, str]:
    """(collection, id) of an item the index can hold; ValueError for one it cannot."""
    collection, item_id = item.get("collection"), item.get("id")
    if not isinstance(collection, str) or not isinstance(item_id, str):
        raise ValueError(f"an indexed item needs a string id and collection: {item_id!r}")
    return collection, item_id


def _fts_text(props: dict) -> tuple[str, str, str]:
    """The (title, description, keywords) texts the FTS index holds for these properties;
    the same again when an item is deleted (from its stored properties)."""
    keywords = props.get("keywords")
    return (
        _text(props.get("title")),
        _text(props.get("description")),
        " ".join(_text(k) for k in keywords) if isinstance(keywords, list) else
        _text(keywords),
    )




_BUCKET_BITS = 20  # time_hist buckets: 2^20 seconds (about 12 days)


def _recency_base(datetime: float | None) -> int:
    """The first recency key (rowid) of the items of this datetime's second (undated: 0)."""
    if datetime is None:
        return 0
    slot = min(max(math.floor(datetime), -_SECONDS), _SECONDS - 1) + _SECONDS + 1
    return slot << _SLOT_BITS


def _bucket(t: float) -> int:
    return math.floor(t) >> _BUCKET_BITS


#: times beyond this (seconds from the epoch, ~31 million years) are not counted exactly
_EXACT_TIME_MAX = 1e15


def _side_count(column: str, op: str, name: str, value: float,
                collections: str | None = None) -> str:
    """An SQL expression counting the items whose start (or end: ``column``) is ``op`` the
    parameter ``name`` (of ``value``): the whole buckets of time_hist on that side, and the
    rows of the value's own bucket from the column's index. ``collections`` (a test of
    ``collection``): the items of those collections, from collection_time_hist."""
    field, index = ("starts", "items_start") if column == "start" else ("ends", "items_end")
    hist, rows = "time_hist WHERE", f"SELECT count(*) FROM items INDEXED BY {index} WHERE "
    if collections is not None:
        hist = f"collection_time_hist WHERE {collections} AND"
        rows += f"{collections} AND "
    bucket = _bucket(value)
    first, after = bucket << _BUCKET_BITS, (bucket + 1) << _BUCKET_BITS
    if op == "=":
        return f"({rows}{column} = :{name})"
    if op in ("<", "<="):
        return (f"((SELECT coalesce(sum({field}), 0) FROM {hist} bucket < {bucket}) "
                f"+ ({rows}{column} >= {first} AND {column} {op} :{name}))")
    return (f"((SELECT coalesce(sum({field}), 0) FROM {hist} bucket > {bucket}) "
            f"+ ({rows}{column} {op} :{name} AND {column} < {after}))")


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


#: compact JSON, made once (``json.dumps`` with options makes an encoder per call)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _load_item(rest: bytes | str, props: bytes | str | None,
               geometry: bytes | str | None) -> dict:
    """An item from its ``item_docs`` row (packed, or as schema 2 wrote it: JSON texts, the
    geometry in the rest too)."""
    item = unpack_json(rest)
    if props is not None:
        item["properties"] = unpack_json(props)
    if geometry is not None and isinstance(rest, bytes):
        item["geometry"] = unpack_json(geometry)
    return item


def _props_dict(value: bytes | str | None) -> dict:
    """An item's stored properties, as the write read them (anything but an object: none)."""
    props = unpack_json(value)
    return props if isinstance(props, dict) else {}


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
    import shapely

    try:
        bounds = shapely.bounds(shapely.from_geojson(_dumps(geometry)))
    except Exception:
        return None
    if any(math.isnan(v) for v in bounds):
        return None
    return float(bounds[0]), float(bounds[1]), float(bounds[2]), float(bounds[3])


def _property_types(props: dict) -> list[tuple[str, str]]:
    """(name, JSON type) of the properties that have one (not null)."""
    return [(name, kind) for name, value in props.items()
            if value is not None and (kind := _json_type(value)) is not None]


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
               dict: "object"}


def _json_type(value: Any) -> str | None:
    kind = _JSON_TYPES.get(type(value))  # (the common case, at once: a write asks per value)
    if kind is None:  # (subclasses: bool before int, as the table is ordered)
        kind = next((name for t, name in _JSON_TYPES.items() if isinstance(value, t)), None)
    return kind


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


def _phrases_bound(terms: Any, binder: Binder) -> str | None:
    """A query giving a number the matches of the terms' phrases (:func:`_fts_match`) do not
    exceed, from ``term_docs``: the sum over the phrases of their rarest token's count (an
    item with the phrase has each of its tokens). Only for ASCII terms, whose tokens are
    their runs of letters and digits in lower case; None otherwise."""
    parts = []
    for term in terms:
        if not isinstance(term, str) or not any(ch.isalnum() for ch in term):
            continue  # (not in the FTS query)
        if not term.isascii():
            return None
        tokens = sorted(set(_WORD.findall(term.lower())))
        marks = ", ".join(binder.bind(t) for t in tokens)
        parts.append(f"(SELECT CASE WHEN count(*) < {len(tokens)} THEN 0 ELSE min(n) END "
                     f"FROM term_docs WHERE term IN ({marks}))")
    return f"SELECT {' + '.join(parts)}" if parts else None


def _in_list(column: str, values: list[str], binder: Binder) -> str:
    return f"{column} IN ({', '.join(binder.bind(v) for v in values)})"


#: a search term that the FTS tokenizer reads as one token: itself, in lower case
_WORD = re.compile(r"[A-Za-z0-9]+")
#: a word as the FTS index holds it (``_WORD`` in lower case)
_TOKEN = re.compile(r"[a-z0-9]+")

#: a side of a date range: ``items.start`` or ``items."end"``, an operator, a parameter
_TIME_SIDE = re.compile(r'items\.(start|"end") (<=|<|>=|>|=) :(\w+)')


def _unindexed(sql: str) -> str:
    """Ranges on ``items`` columns, as tests no index serves."""
    return sql.replace("items.", "+items.")


def _datetime_conditions(interval: Any,
                         binder: Binder) -> tuple[list[str], tuple[float, float]]:
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
    return conditions or ['items."end" IS NOT NULL'], (lo, hi)


def _flip(direction: str) -> str:
    return "desc" if direction == "asc" else "asc"


#: sort expressions that are never NULL (no NULL block to page through)
_NOT_NULL = {"items.id", "items.collection", "items.rowid", "items_fts.rowid", _BM25,
             "s.value", "s.id", "s.item"}


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


def _signature(sort: list[tuple[str, str, str]]) -> list:
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
    if isinstance(signature, list) and signature[:1] in (["rank"], ["rank-fields"]):
        return 2  # [score or field tier, rowid]
    return len(signature) + 1 if isinstance(signature, list) else -1


__all__ = ["SCHEMA_VERSION", "SQLiteStore"]
