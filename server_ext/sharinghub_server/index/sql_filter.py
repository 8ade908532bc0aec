"""Compile the filter expressions of :mod:`.query` to SQLite SQL over the ``items`` table
(typed columns) joined with ``item_docs AS docs`` (the JSON texts, compressed: SQL reads the
properties as ``sh_json(docs.props)``).

The index keeps item properties as JSON text next to a few typed columns (``id``,
``collection``, ``title``, and the ``datetime``/``start``/``end`` epoch seconds), and copies
every scalar property into ``item_props`` (one row per item, name and typed value: see
:func:`property_rows`), indexed by (name, kind, value). So each property reference becomes a
column (fast, indexable), a lookup in ``item_props``, or a ``json_extract`` wrapped in a type
guard. The typing is why this module exists rather than naive string building: a property
holding a value of the wrong JSON type behaves like a missing one, so a comparison with it is
*unknown* (SQL NULL) - never an error, and never SQLite's cross-type ordering (where any text is
greater than any number).

Where unknown and false mean the same (anywhere not under a NOT: see ``positive`` below), a
predicate on one property and literals is a test of that property's ``item_props`` rows of the
literal's kind: an index range to find the matching items, or a lookup for one item. Under a
NOT, the three-valued JSON form is used.

Also here, because the store and the compiler must agree on them exactly: timestamp parsing to
epoch seconds, and the Python SQL functions (exact shapely predicates, ISO string -> epoch).
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple

from .columns import ColumnTest, TimeTest
from .packing import sql_unpack
from .query import (
    TEMPORAL_OPS,
    And,
    Between,
    Compare,
    In,
    Interval,
    IsNull,
    Like,
    Not,
    Or,
    Prop,
    QueryError,
    Spatial,
    Temporal,
)

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
#: a DATE literal stands for its whole day in temporal functions: [00:00, 23:59:59.999999]
_DAY_END = 86400.0 - 1e-6
_INF = float("inf")

# --- timestamps -------------------------------------------------------------------------------

_ISO_RE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?)?\s*$"
)


def parse_datetime(text: str) -> datetime | None:
    """An RFC 3339 / ISO 8601 timestamp (or date) as an aware UTC datetime; None if it is not
    one. Hand-rolled because Python 3.10's ``fromisoformat`` rejects ``Z`` and odd fractions."""
    m = _ISO_RE.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        micro = int((frac or "0")[:6].ljust(6, "0"))
        dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), micro,
                      tzinfo=UTC)
        if tz and tz not in ("Z", "z"):
            digits = tz[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            dt = dt - offset if tz[0] == "+" else dt + offset
    except (ValueError, OverflowError):
        return None
    return dt


_NAIVE_EPOCH = datetime(1970, 1, 1)


def to_epoch(value: Any) -> float | None:
    """Epoch seconds of a datetime (naive = UTC), a date (its midnight UTC) or an ISO string.
    Items and literals both go through here, so equal instants give equal floats."""
    # the form nearly every item has, 2021-03-04T05:06:07Z, read by the C parser (a fifth of
    # the time: 100,000 items' property rows are made 1.4 s sooner); it reads ASCII digits
    # only, and hour 24 is left to parse_datetime, which refuses it
    if (type(value) is str and len(value) == 20 and value[19] in "Zz"
            and value[4] == value[7] == "-" and value[10] in "Tt "
            and value[13] == value[16] == ":" and value[11:13] < "24"):
        try:
            return (datetime.fromisoformat(value[:19]) - _NAIVE_EPOCH) / _SECOND
        except ValueError:
            pass
    if isinstance(value, datetime):
        dt = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        dt = parse_datetime(value)
        if dt is None:
            return None
    else:
        return None
    return (dt - EPOCH) / _SECOND


def epoch_to_iso(seconds: float) -> str:
    """``2020-01-01T00:00:00Z`` (with microseconds only when there are some)."""
    dt = EPOCH + timedelta(seconds=seconds)
    return dt.replace(tzinfo=None).isoformat() + "Z"


def interval_bounds(value: Any) -> tuple[float, float] | None:
    """[lo, hi] epoch seconds of a temporal literal: an instant, a date (its whole day), an
    Interval (open ends are infinite); None for anything else."""
    if isinstance(value, Interval):
        lo = -_INF if value.start in (None, "..") else to_epoch(value.start)
        hi = _INF if value.end in (None, "..") else to_epoch(value.end)
        if lo is None or hi is None:
            return None
        if isinstance(value.end, date) and not isinstance(value.end, datetime):
            hi += _DAY_END
        return lo, hi
    if isinstance(value, date) and not isinstance(value, datetime):
        t = to_epoch(value)
        return (t, t + _DAY_END) if t is not None else None
    t = to_epoch(value)
    return (t, t) if t is not None else None


# --- geometry ---------------------------------------------------------------------------------


_PREPARED = threading.local()
_PREPARED_SIZE = 64


def _prepared_geometry(text: str) -> Any:
    """A query geometry, parsed and prepared once however many rows it is tested against.
    Cached per thread: GEOS prepared geometries are not thread-safe."""
    cache: OrderedDict[str, Any] | None = getattr(_PREPARED, "cache", None)
    if cache is None:
        cache = _PREPARED.cache = OrderedDict()
    geom = cache.get(text)
    if geom is None:
        import shapely

        geom = _parse_geometry(text)
        shapely.prepare(geom)
        cache[text] = geom
        if len(cache) > _PREPARED_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(text)
    return geom


def _parse_geometry(text: str) -> Any:
    import shapely
    import shapely.geometry

    try:
        return shapely.from_geojson(text)
    except Exception:  # from_geojson is stricter than the GeoJSON out there
        return shapely.geometry.shape(json.loads(text))


#: CQL2 spatial op -> (shapely predicate, its converse for swapped operands)
_SPATIAL = {
    "s_intersects": ("intersects", "intersects"),
    "s_disjoint": ("disjoint", "disjoint"),
    "s_within": ("within", "contains"),
    "s_contains": ("contains", "within"),
    "s_equals": ("equals", "equals"),
    "s_touches": ("touches", "touches"),
    "s_overlaps": ("overlaps", "overlaps"),
    "s_crosses": ("crosses", "crosses"),
}


@functools.cache
def _predicate(name: str) -> Callable[[Any, Any], Any]:
    """A shapely predicate by name (shapely, with numpy, loads on first use: not at start)."""
    import shapely

    return getattr(shapely, name)


def sql_spatial(predicate: str, a: str | bytes | None,
                b: str | bytes | None) -> int | None:
    """SQL ``sh_spatial(predicate, a, b)``: the exact shapely predicate between two GeoJSON
    texts (or geometries as the store packs them); ``a`` (the query's literal) is cached
    prepared. NULL for missing/invalid input."""
    try:
        a, b = sql_unpack(a), sql_unpack(b)
        if a is None or b is None:
            return None
        return int(bool(_predicate(predicate)(_prepared_geometry(a), _parse_geometry(b))))
    except Exception:  # an exception escaping a SQL function aborts the whole query
        return None


def sql_epoch(value: Any) -> float | None:
    """SQL ``sh_epoch(text)``: epoch seconds of an ISO timestamp string, else NULL."""
    return to_epoch(value) if isinstance(value, str) else None


def register_functions(conn: sqlite3.Connection) -> None:
    """Install the Python SQL functions the compiled filters call."""
    conn.create_function("sh_spatial", 3, sql_spatial, deterministic=True)
    conn.create_function("sh_epoch", 1, sql_epoch, deterministic=True)
    conn.create_function("sh_json", 1, sql_unpack, deterministic=True)


def geometry_literal(value: Any) -> str:
    """Compact GeoJSON text of a geometry literal (a GeoJSON dict, or a [w, s, e, n] bbox);
    QueryError if it is not a geometry."""
    if isinstance(value, (list, tuple)):
        import shapely
        import shapely.geometry

        box = bbox_literal(value)
        parts = split_antimeridian(box)
        if len(parts) == 1:
            geom = shapely.box(box[0], box[1], box[2], box[3])
        else:
            geom = shapely.MultiPolygon([shapely.box(w, box[1], e, box[3]) for w, e in parts])
        value = shapely.geometry.mapping(geom)
    if not isinstance(value, dict):
        raise QueryError(f"not a geometry: {value!r}")
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=list)
    try:
        _prepared_geometry(text)
    except Exception as exc:
        raise QueryError(f"invalid geometry: {exc}") from None
    return text


def geometry_bounds(text: str) -> tuple[float, float, float, float] | None:
    """The bounds of a validated geometry literal, None when empty."""
    import shapely

    bounds = tuple(float(v) for v in shapely.bounds(_prepared_geometry(text)))
    return None if any(math.isnan(v) for v in bounds) else bounds  # type: ignore[return-value]


def bbox_literal(value: Sequence[Any]) -> tuple[float, float, float, float]:
    """(w, s, e, n) of a 4- or 6-number bbox; QueryError otherwise."""
    try:
        nums = [float(v) for v in value]
    except (TypeError, ValueError):
        raise QueryError(f"invalid bbox: {value!r}") from None
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if len(nums) != 4 or not all(math.isfinite(v) for v in nums) or nums[1] > nums[3]:
        raise QueryError(f"invalid bbox: {value!r}")
    return nums[0], nums[1], nums[2], nums[3]


def split_antimeridian(box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Longitude ranges of a bbox: one, or two when it crosses the antimeridian (w > e)."""
    w, _, e, _ = box
    return [(w, e)] if w <= e else [(w, 180.0), (-180.0, e)]


def _margin(value: float) -> float:
    """More than the R*Tree's rounding of a coordinate near ``value`` (32-bit floats)."""
    return max(1e-4, abs(value) * 1e-6)


#: the R*Tree's time dimension: epoch seconds over this (100 days), so that its splits weigh
#: time about as much as degrees (in seconds, time would decide them all, and a query on
#: space alone would visit many more nodes)
RTREE_TIME_UNIT = 8_640_000.0


def rtree_subquery(binder: Binder, box: tuple[float, float, float, float],
                   exact: bool = False, span: tuple[float, float] | None = None,
                   distinct: bool = False) -> str:
    """SQL selecting (as ``item``) the rowids of items whose R*Tree box intersects ``box``.
    R*Tree entry ids are ``rowid * 2 + part`` (an item crossing the antimeridian has two
    entries, so a rowid may come twice, unless ``distinct``).

    ``span``: also only items whose [start, end] may intersect this interval (the R*Tree's
    third dimension, rounded outwards: a superset, which the date range itself narrows;
    undated items are at time 0).

    The R*Tree rounds its boxes outwards to 32-bit floats; ``exact`` makes an entry within
    rounding distance of the query's edges also pass the test on the item's exact bbox (the
    auxiliary columns ``west``..``north``, antimeridian-aware; reading them costs a lookup,
    which entries clear of the edges never pay)."""
    union = " UNION " if distinct else " UNION ALL "
    return union.join(f"SELECT id >> 1 AS item FROM items_rtree WHERE {t.format(t='')}"
                      for t in _rtree_tests(binder, box, exact, span))


def time_rtree_test(binder: Binder, span: tuple[float, float], exact: bool) -> str:
    """The test of ``items_time AS tt`` entries (dated items' [start, end], rounded outwards
    to 32-bit floats) for the items whose interval may intersect ``span`` - or, ``exact``,
    does (entries within rounding distance of its ends are checked on the exact times, the
    auxiliary columns ``t0``/``t1``)."""
    lo, hi = span
    tests, clear, exact_tests = [], [], []
    if hi != _INF:
        tests.append(f"tt.mint <= {binder.bind(hi)}")
        clear.append(f"tt.mint <= {binder.bind(hi - _time_margin(hi))}")
        exact_tests.append(f"tt.t0 <= {binder.bind(hi)}")
    if lo != -_INF:
        tests.append(f"tt.maxt >= {binder.bind(lo)}")
        clear.append(f"tt.maxt >= {binder.bind(lo + _time_margin(lo))}")
        exact_tests.append(f"tt.t1 >= {binder.bind(lo)}")
    if not tests:
        return "1"
    test = " AND ".join(tests)
    if exact:
        test += f" AND (({' AND '.join(clear)}) OR ({' AND '.join(exact_tests)}))"
    return test


def _time_margin(value: float) -> float:
    """More than the R*Tree's rounding of a time near ``value`` (32-bit floats)."""
    return max(1.0, abs(value) * 2.0**-20)


def rtree_join(binder: Binder, box: tuple[float, float, float, float], exact: bool = False,
               span: tuple[float, float] | None = None) -> tuple[str, str] | None:
    """For a box not crossing the antimeridian, (FROM ``items_rtree AS r``, WHERE term): the
    R*Tree entries of the items in the box, each item once - its second entry (an item
    crossing the antimeridian has two) only when its first is not in the box. The item's
    rowid is ``r.id >> 1``. None for a box crossing the antimeridian."""
    tests = _rtree_tests(binder, box, exact, span)
    if len(tests) != 1:
        return None
    test = tests[0]
    return "items_rtree AS r", (
        f"{test.format(t='r.')} AND (r.id & 1 = 0 OR NOT EXISTS (SELECT 1 FROM items_rtree "
        f"AS p WHERE p.id = r.id - 1 AND {test.format(t='p.')}))")


def _rtree_tests(binder: Binder, box: tuple[float, float, float, float], exact: bool,
                 span: tuple[float, float] | None) -> list[str]:
    """The R*Tree test of each longitude range of ``box``, its columns prefixed ``{t}``."""
    w, s, e, n = box
    lat = f"{{t}}miny <= {binder.bind(n)} AND {{t}}maxy >= {binder.bind(s)}"
    if exact:
        if w <= e:
            lon = (f"CASE WHEN {{t}}west <= {{t}}east THEN {{t}}west <= {binder.bind(e)} AND "
                   f"{{t}}east >= {binder.bind(w)} ELSE {{t}}west <= {binder.bind(e)} OR "
                   f"{{t}}east >= {binder.bind(w)} END")
        else:
            lon = (f"CASE WHEN {{t}}west <= {{t}}east THEN {{t}}east >= {binder.bind(w)} OR "
                   f"{{t}}west <= {binder.bind(e)} ELSE 1 END")
        exact_test = (f"{{t}}south <= {binder.bind(n)} AND {{t}}north >= {binder.bind(s)} "
                      f"AND ({lon})")
        clear_lat = (f"{{t}}miny <= {binder.bind(n - _margin(n))} AND "
                     f"{{t}}maxy >= {binder.bind(s + _margin(s))}")
    if span is not None:
        if span[1] != _INF:
            lat += f" AND {{t}}mint <= {binder.bind(span[1] / RTREE_TIME_UNIT)}"
        if span[0] != -_INF:
            lat += f" AND {{t}}maxt >= {binder.bind(span[0] / RTREE_TIME_UNIT)}"
    tests = []
    for lo, hi in split_antimeridian(box):
        test = f"{{t}}minx <= {binder.bind(hi)} AND {{t}}maxx >= {binder.bind(lo)} AND {lat}"
        if exact:
            clear = (f"{{t}}minx <= {binder.bind(hi - _margin(hi))} AND "
                     f"{{t}}maxx >= {binder.bind(lo + _margin(lo))} AND {clear_lat}")
            test += f" AND (({clear}) OR ({exact_test}))"
        tests.append(test)
    return tests


def bbox_test(binder: Binder, box: tuple[float, float, float, float]) -> str:
    """The exact test of an item's bbox (the ``items`` columns, antimeridian-aware) against
    ``box``, for rows found otherwise: what :func:`rtree_subquery` with ``exact`` finds."""
    w, s, e, n = (binder.bind(v) for v in box)
    lat = f"items.miny <= {n} AND items.maxy >= {s}"
    if box[0] <= box[2]:
        lon = (f"CASE WHEN items.minx <= items.maxx THEN items.minx <= {e} AND items.maxx >= {w} "
               f"ELSE items.minx <= {e} OR items.maxx >= {w} END")
    else:
        lon = (f"CASE WHEN items.minx <= items.maxx THEN items.maxx >= {w} OR items.minx <= {e} "
               "ELSE 1 END")
    return f"({lat} AND ({lon}))"


# --- compiling --------------------------------------------------------------------------------


class Binder:
    """Collects named parameters, so SQL fragments compose in any order."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and \
                not -(2**63) <= value < 2**63:
            value = float(value)  # beyond SQLite's integers
        name = f"p{len(self.params)}"
        self.params[name] = value
        return ":" + name


def sql_string(text: str) -> str:
    """A SQL string literal (NUL, which SQL text cannot hold, spelled ``char(0)``)."""
    return " || char(0) || ".join("'" + part.replace("'", "''") + "'"
                                  for part in text.split("\x00"))


class Ref:
    """What a property name resolves to: a typed column or a JSON value."""

    __slots__ = ("jtype", "kind", "sql")

    def __init__(self, kind: str, sql: str, jtype: str | None = None) -> None:
        self.kind = kind  # "text" | "time" | "json" | "geom"
        self.sql = sql
        self.jtype = jtype  # for "json": the json_type() of the value


_COLUMNS = {
    "id": Ref("text", "items.id"),
    "collection": Ref("text", "items.collection"),
    "title": Ref("text", "items.title"),
    "datetime": Ref("time", "items.datetime"),
    "start_datetime": Ref("time", "items.start"),
    "end_datetime": Ref("time", 'items."end"'),
    "geometry": Ref("geom", "docs.geometry"),
}


def property_name(name: str) -> str:
    return name[len("properties."):] if name.startswith("properties.") else name


def json_ref(name: str) -> Ref:
    """``properties[name]`` of the item, via json_extract (json_each for names with ``"``,
    which JSON paths cannot quote)."""
    if '"' in name or "\x00" in name:
        key = sql_string(name)
        return Ref(
            "json",
            f"(SELECT value FROM json_each({PROPS_JSON}) WHERE key = {key})",
            f"(SELECT type FROM json_each({PROPS_JSON}) WHERE key = {key})",
        )
    path = sql_string(f'$."{name}"')
    return Ref("json", f"json_extract({PROPS_JSON}, {path})",
               f"json_type({PROPS_JSON}, {path})")


#: the JSON text of the item's properties (stored packed: see :mod:`.packing`)
PROPS_JSON = "sh_json(docs.props)"

#: any JSON property, as far as literals compared with it go
JSON_REF = Ref("json", "NULL", "NULL")


def resolve(name: str) -> Ref:
    name = property_name(name)
    return _COLUMNS.get(name) or json_ref(name)


# --- the property table -----------------------------------------------------------------------

#: ``item_props.kind``: which literals a value compares with. A string that is a timestamp has
#: two rows: its text, and its instant (epoch seconds).
KIND_NUMBER, KIND_STRING, KIND_BOOLEAN, KIND_TIME = 1, 2, 3, 4
_KINDS = {"num": KIND_NUMBER, "str": KIND_STRING, "bool": KIND_BOOLEAN, "time": KIND_TIME}
#: JSON types (of ``prop_types``) -> the kind of their values
JSON_TYPE_KINDS = {"integer": KIND_NUMBER, "number": KIND_NUMBER, "string": KIND_STRING,
                   "boolean": KIND_BOOLEAN}
#: properties not copied to ``item_props``: long texts, which free text (``q``) searches
_NOT_IN_PROPS = frozenset({"description"})
#: estimates of how many items a condition matches count up to this
ESTIMATE_CAP = 5000


def in_props_table(name: str) -> bool:
    """Whether ``item_props`` holds this property's values (not those of the properties held
    in ``items`` columns, nor long texts)."""
    return name not in _COLUMNS and name not in _NOT_IN_PROPS


def property_rows(props: dict[str, Any]) -> list[tuple[str, int, Any]]:
    """The ``item_props`` rows (name, kind, value) of an item's properties: numbers, strings,
    booleans (0/1), and strings that are timestamps once more as epoch seconds - the values the
    JSON forms compare, typed the same way (arrays, objects and nulls are left to those)."""
    rows: list[tuple[str, int, Any]] = []
    for name, value in props.items():
        if not isinstance(name, str) or name in _COLUMNS or name in _NOT_IN_PROPS:
            continue
        kind = type(value)
        if kind is str:  # (the common types first, by identity: a write asks per value)
            rows.append((name, KIND_STRING, value))
            # a timestamp starts with a digit (after spaces): the others are not parsed
            if value[:1].isdigit() or value[:1].isspace():
                instant = to_epoch(value)
                if instant is not None:
                    rows.append((name, KIND_TIME, instant))
        elif kind is float:
            rows.append((name, KIND_NUMBER, value))
        elif kind is bool:
            rows.append((name, KIND_BOOLEAN, int(value)))
        elif kind is int:
            rows.append((name, KIND_NUMBER, _sql_number(value)))
        elif kind not in (list, dict, type(None)):
            rows.extend(_subclass_rows(name, value))
    return rows


def _subclass_rows(name: str, value: Any) -> list[tuple[str, int, Any]]:
    """:func:`property_rows` of a value whose type subclasses a JSON one (bool before int)."""
    if isinstance(value, bool):
        return [(name, KIND_BOOLEAN, int(value))]
    if isinstance(value, int):
        return [(name, KIND_NUMBER, _sql_number(value))]
    if isinstance(value, float):
        return [(name, KIND_NUMBER, value)]
    if isinstance(value, str):
        instant = to_epoch(value)
        return [(name, KIND_STRING, value)] + \
            ([(name, KIND_TIME, instant)] if instant is not None else [])
    return []


def _sql_number(value: int) -> int | float:
    """An integer as json_extract reads it: beyond 64 bits, a real."""
    return value if -(2**63) <= value < 2**63 else float(value)


class Cond:
    """One condition of a search (all must hold), in the forms a query plan chooses from.

    * ``sql``: a WHERE term that can find the matches (an index range, an IN list of rowids);
    * ``scan``: the same test for rows found otherwise (by another condition, or walking a sort
      index), cheap per row; None when ``sql`` is that already;
    * ``probe`` (free text): a lookup per row - dearer per row than ``scan`` (an IN list, built
      once per query), but without its set-up cost;
    * ``only``: a query counting the matches when this is the only condition;
    * ``estimate``: the number of matches up to :data:`ESTIMATE_CAP` (a query, or the number),
      None when unknown; the condition with the fewest finds the rows;
    * ``drive``: (FROM, WHERE term, the item's rowid) finding the matches from another
      table than ``items`` (which is joined to it when needed) rather than by ``sql``'s IN
      list, when this condition finds the rows;
    * ``props``: for a test of one property's ``item_props`` rows, (the name as a bound
      parameter, the test of ``kind`` and ``value``), which other such tests join with;
    * ``sides``: for a conjunction of ranges on ``items`` columns (a date range is two), those
      ranges, one per column: the store lets the narrowest find the rows;
    * ``span``: for a date range, its [start, end] in epoch seconds (infinite when open);
    * ``rowids``: for free text, the test of ``items_fts.rowid`` that a date range of the same
      search allows (rowids are recency keys), for queries reading the FTS index in order;
      ``within``: that date range's condition (its share of the items estimates the share of
      the free text's matches that a listing bounded by ``rowids`` reads);
    * ``collections``: for the search's collections, their test on a column ``collection``
      (of ``items``, or of the store's per-collection tables), to count them with a date range;
    * ``bound``: for free text, a query giving a number its matches do not exceed, read from
      token counts without reading the FTS index (None when there is none);
    * ``column``: for a test of one property's values of one kind by ranges (comparisons,
      BETWEEN, IN, a boolean), or for a date range (``t_intersects`` on ``datetime``, the
      ``datetime`` parameter), that test, which the store can run on the values it holds in
      memory (:mod:`.columns`) to count a conjunction of such tests;
    * ``words``: for free text whose every term is one word (ASCII letters and digits), those
      words as the FTS index holds them (lower case): the store can hold the items of each;
    * ``repeats``: a query selecting (as ``item``) the rowids of the matches, some maybe more
      than once, cheaper than finding each once (a box's R*Tree entries).
    """

    __slots__ = ("bound", "collections", "column", "drive", "estimate", "kind", "only", "probe",
                 "props", "repeats", "rowids", "scan", "sides", "span", "sql", "within",
                 "words")

    def __init__(self, sql: str, *, scan: str | None = None, kind: str = "",
                 only: str | None = None, estimate: str | int | None = None,
                 probe: str | None = None, drive: tuple[str, str, str] | None = None,
                 props: tuple[str, str] | None = None, sides: list[str] | None = None,
                 span: tuple[float, float] | None = None) -> None:
        self.sql, self.scan, self.kind, self.only = sql, scan, kind, only
        self.estimate, self.probe, self.drive, self.props = estimate, probe, drive, props
        self.sides, self.span = sides, span
        self.rowids: str | None = None
        self.within: Cond | None = None
        self.collections: str | None = None
        self.bound: str | None = None
        self.column: ColumnTest | TimeTest | None = None
        self.words: list[str] | None = None
        self.repeats: str | None = None


class PropsClause(NamedTuple):
    """A predicate's test of one property's ``item_props`` rows."""

    #: the property name, as a bound parameter
    name: str
    #: the test of its rows' ``kind`` and ``value`` (SQL)
    clause: str
    #: whether an item may pass with several rows (a test of several kinds)
    several: bool
    #: the same test as ranges of one kind's values, where it is one (:mod:`.columns`)
    column: ColumnTest | None


def props_cond(name: str, clause: str, several: bool = False) -> Cond:
    """The condition "the item has an ``item_props`` row named ``name`` (a bound parameter)
    passing ``clause`` (on ``kind`` and ``value``)"; ``several``: one item may have several
    such rows (a test on several kinds), which counting must not count twice."""
    where = f"name = {name_code(name)} AND ({clause})"
    return Cond(
        f"items.rowid IN (SELECT item FROM item_props WHERE {where})",
        scan=f"EXISTS (SELECT 1 FROM item_props WHERE item = items.rowid AND {where})",
        kind="props",
        drive=None if several else ("item_props AS d", qualify_props(f"d.{where}", "d"),
                                    "d.item"),
        props=None if several else (name, clause),
        only=f"SELECT count({'DISTINCT item' if several else '*'}) FROM item_props "
             f"WHERE {where}",
        estimate=f"SELECT count(*) FROM (SELECT 1 FROM item_props WHERE {where} "
                 f"LIMIT {ESTIMATE_CAP})",
    )


def name_code(name: str) -> str:
    """``item_props.name`` of a property name (as SQL: a parameter or a literal):
    ``item_props`` holds names as codes (table ``prop_names``); NULL for a name no item has."""
    return f"(SELECT code FROM prop_names WHERE name = {name})"


_PROPS_COLUMN = re.compile(r"(?<![\w.:])(kind|value)\b")


def qualify_props(clause: str, alias: str) -> str:
    """A test of ``kind`` and ``value`` (as :func:`props_cond` takes) on table ``alias``."""
    return _PROPS_COLUMN.sub(rf"{alias}.\1", clause)


def _like_prefix(pattern: str) -> str:
    """The literal text a CQL2 LIKE pattern starts with."""
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            ch = next(chars, "\\")
        elif ch in "%_":
            break
        out.append(ch)
    return "".join(out)


def _after_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (UTF-8 byte
    order is code point order); None if there is none."""
    while prefix:
        code = ord(prefix[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None


def _category(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "num"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (datetime, date)):
        return "time"
    if isinstance(value, Interval):
        return "interval"
    if isinstance(value, (dict, list, tuple)):
        return "json"
    return "other"


_OPS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_FLIP = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


_PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "<>": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def _compare_python(op: str, a: Any, b: Any) -> bool | None:
    """A comparison of two literals, evaluated now (None when their types do not compare)."""
    if isinstance(a, (datetime, date)) or isinstance(b, (datetime, date)):
        a, b = to_epoch(a), to_epoch(b)
    if a is None or b is None:
        return None
    try:
        return bool(_PY_OPS[op](a, b))
    except TypeError:
        return None


def _sql_bool(value: bool | None) -> str:
    return "NULL" if value is None else ("1" if value else "0")


class FilterCompiler:
    """Turns one Expr tree into a SQL boolean expression; parameters go to ``binder``."""

    def __init__(self, binder: Binder) -> None:
        self.b = binder

    def compile(self, expr: Any, top: bool = False, positive: bool = False) -> str:
        """``top``: the expression is the filter or a conjunct of it, where unknown and false
        are the same (no match); that lets spatial tests drive the query from the R*Tree.
        ``positive``: it is not under a NOT, so unknown and false are the same for it too
        (AND and OR cannot tell them apart in a result that decides a match); predicates on
        one property then look up ``item_props``."""
        if positive:
            found = self.props_clause(expr)
            if found is not None:
                return props_cond(found.name, found.clause).scan or ""
        if isinstance(expr, And):
            return "(" + " AND ".join(self.compile(a, top, positive) for a in expr.args) + ")" \
                if expr.args else "1"
        if isinstance(expr, Or):
            return "(" + " OR ".join(self.compile(a, positive=positive) for a in expr.args) + \
                ")" if expr.args else "0"
        if isinstance(expr, Not):
            return f"(NOT {self.compile(expr.arg)})"
        if isinstance(expr, Compare):
            return self._compare(expr.op, expr.left, expr.right)
        if isinstance(expr, Like):
            return self._like(expr.prop, expr.pattern)
        if isinstance(expr, In):
            return self._in(expr.prop, expr.values)
        if isinstance(expr, Between):
            if positive:  # each bound on its own may be a property lookup
                return self.compile(And((Compare(">=", expr.prop, expr.low),
                                         Compare("<=", expr.prop, expr.high))), positive=True)
            return (f"({self._compare('>=', expr.prop, expr.low)} AND "
                    f"{self._compare('<=', expr.prop, expr.high)})")
        if isinstance(expr, IsNull):
            return self._isnull(expr.prop)
        if isinstance(expr, Spatial):
            return self._spatial(expr.op, expr.left, expr.right, top)
        if isinstance(expr, Temporal):
            return self._temporal(expr.op, expr.left, expr.right)
        if isinstance(expr, bool):
            return _sql_bool(expr)
        if isinstance(expr, Prop):  # a boolean property used as a predicate
            ref = resolve(expr.name)
            if ref.kind != "json":
                return "NULL"
            return f"(CASE {ref.jtype} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"
        raise QueryError(f"unsupported filter expression: {expr!r}")

    # -- index ranges ----------------------------------------------------------------------

    def column_sides(self, expr: Any) -> tuple[list[str], tuple[float, float] | None] | None:
        """A predicate comparing one indexed ``items`` column (or the datetime interval's two)
        with literals, as ranges, one per column (an index can find each), and for a
        temporal one the [lo, hi] that the item's start <= hi and end >= lo follow from (for
        seeking the datetime index); None for any other predicate."""
        if isinstance(expr, Temporal):
            template = TEMPORAL_SQL.get(expr.op.lower()) if isinstance(expr.op, str) else None
            props = [o for o in (expr.left, expr.right) if isinstance(o, Prop)]
            if template is None or " OR " in template or len(props) != 1:
                return None
            name = property_name(props[0].name)
            if name != "datetime" and resolve(name).kind != "time":
                return None
            literal = expr.right if isinstance(expr.left, Prop) else expr.left
            bounds = interval_bounds(literal)
            a, b = (self._temporal_operand(expr.left), self._temporal_operand(expr.right))
            if a is None or b is None or bounds is None:
                return None
            ends = {"datetime": ("start", "end"), "start_datetime": ("start", "start"),
                    "end_datetime": ("end", "end")}.get(name, (None, None))
            lit = "b" if isinstance(expr.left, Prop) else "a"
            lo, hi = -_INF, _INF
            groups: dict[str, list[str]] = {}
            for part in template.split(" AND "):
                test = part.format(a0=a[0], a1=a[1], b0=b[0], b1=b[1])
                column = next((c for c in ("items.start", 'items."end"') if c in test), test)
                groups.setdefault(column, []).append(test)
                x, op, y = part.split(" ")
                if x[1] == lit:  # literal op item: item flipped-op literal
                    x, op, y = y, _FLIP[op], x
                end, value = ends[int(x[2])], bounds[int(y[2])]
                if end == "start" and op in ("<", "<=", "="):
                    hi = min(hi, value)
                elif end == "end" and op in (">", ">=", "="):
                    lo = max(lo, value)
            return [" AND ".join(tests) for tests in groups.values()], (lo, hi)
        if isinstance(expr, (Compare, Between, In, IsNull)) and _tests_a_column(expr):
            sql = self.compile(expr, top=True, positive=True)
            return None if uses_docs(sql) else ([sql], None)
        return None

    # -- item_props lookups ----------------------------------------------------------------

    @staticmethod
    def _props_name(operand: Any) -> str | None:
        """The property an operand names, if ``item_props`` holds its values."""
        if not isinstance(operand, Prop):
            return None
        name = property_name(operand.name)
        return name if in_props_table(name) else None

    def _props_literal(self, value: Any) -> tuple[int | None, Any]:
        """(kind, value as stored) of a literal compared with a JSON property; kind None when
        no ``item_props`` row can equal it (arrays, objects, nulls, intervals)."""
        category, converted = self._literal(JSON_REF, value)
        kind = _KINDS.get(category)
        return (kind, converted) if kind is not None and converted is not None else (None, None)

    def props_clause(self, expr: Any) -> PropsClause | None:
        """For a predicate on one ``item_props`` property and literals, where an unknown
        result counts as false: its test of the property's rows (:class:`PropsClause`). None
        for any other expression."""
        b = self.b.bind
        if isinstance(expr, Compare):
            op = _OPS.get(expr.op) if isinstance(expr.op, str) else None
            left, right = expr.left, expr.right
            if op is None:
                return None
            if not isinstance(left, Prop) and isinstance(right, Prop):
                left, right, op = right, left, _FLIP[op]
            name = self._props_name(left)
            if name is None or isinstance(right, Prop):
                return None
            kind, value = self._props_literal(right)
            if kind is None:
                return None
            ranges = {"=": (value, True, value, True), "<": (None, False, value, False),
                      "<=": (None, False, value, True), ">": (value, False, None, False),
                      ">=": (value, True, None, False)}
            return PropsClause(b(name), f"kind = {kind} AND value {op} {b(value)}", False,
                               ColumnTest(name, kind, [ranges[op]]) if op in ranges else None)
        if isinstance(expr, Between):
            name = self._props_name(expr.prop)
            if name is None:
                return None
            (kind, low), (high_kind, high) = (self._props_literal(expr.low),
                                              self._props_literal(expr.high))
            if kind is None or kind != high_kind:
                return None
            return PropsClause(b(name), f"kind = {kind} AND value >= {b(low)} AND value <= "
                                        f"{b(high)}", False,
                               ColumnTest(name, kind, [(low, True, high, True)]))
        if isinstance(expr, In):
            name = self._props_name(expr.prop)
            if name is None or not expr.values:
                return None
            groups: dict[int, list[Any]] = {}
            for value in expr.values:
                if _category(value) == "json":
                    return None
                kind, converted = self._props_literal(value)
                if kind is not None:
                    groups.setdefault(kind, []).append(converted)
            if not groups:
                return None
            tests = [f"(kind = {kind} AND value IN ({', '.join(b(v) for v in values)}))"
                     for kind, values in groups.items()]
            (kind, values), *others = groups.items()
            return PropsClause(b(name), " OR ".join(tests), bool(others), None if others else
                               ColumnTest(name, kind, [(v, True, v, True) for v in values]))
        if isinstance(expr, Like):
            name = self._props_name(expr.prop)
            if name is None or not isinstance(expr.pattern, str):
                return None
            clause = f"kind = {KIND_STRING}"
            prefix = _like_prefix(expr.pattern)
            upper = _after_prefix(prefix)
            if prefix and upper is not None:  # an index range
                clause += f" AND value >= {b(prefix)} AND value < {b(upper)}"
            return PropsClause(b(name), f"{clause} AND value GLOB "
                                        f"{b(like_to_glob(expr.pattern))}", False, None)
        if isinstance(expr, Prop):
            name = self._props_name(expr)
            return None if name is None else PropsClause(
                b(name), f"kind = {KIND_BOOLEAN} AND value = 1", False,
                ColumnTest(name, KIND_BOOLEAN, [(1, True, 1, True)]))
        if isinstance(expr, Temporal):
            template = TEMPORAL_SQL.get(expr.op.lower()) if isinstance(expr.op, str) else None
            left, right = self._props_name(expr.left), self._props_name(expr.right)
            if template is None or (left is None) == (right is None):
                return None
            other = expr.right if left is not None else expr.left
            if isinstance(other, Prop):
                return None
            bounds = self._temporal_operand(other)
            if bounds is None:
                return None
            value = ("value", "value")
            a, c = (value, bounds) if left is not None else (bounds, value)
            test = template.format(a0=a[0], a1=a[1], b0=c[0], b1=c[1])
            return PropsClause(b(left or right), f"kind = {KIND_TIME} AND ({test})", False, None)
        return None

    # -- typed views -----------------------------------------------------------------------

    def _typed(self, ref: Ref, category: str) -> str | None:
        """SQL for ref's value when it is of ``category``, else NULL; None if it never is."""
        if ref.kind == "text":
            return ref.sql if category == "str" else None
        if ref.kind == "time":
            return ref.sql if category == "time" else None
        if ref.kind == "json":
            guard = {
                "str": "= 'text'", "num": "IN ('integer', 'real')",
                "bool": "IN ('true', 'false')", "json": "IN ('array', 'object')",
            }.get(category)
            if guard is not None:
                return f"(CASE WHEN {ref.jtype} {guard} THEN {ref.sql} END)"
            if category == "time":
                return f"sh_epoch({ref.sql})"
        return None

    def _literal(self, ref: Ref, value: Any) -> tuple[str, Any]:
        """(category, SQL-ready value) of a literal compared with ``ref``."""
        category = _category(value)
        if category == "time":
            return category, to_epoch(value)
        if category == "str" and ref.kind == "time":
            return "time", to_epoch(value)  # None when not a timestamp: no match
        if category == "bool":
            return category, int(value)
        if category == "json":
            return category, json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return category, value

    # -- predicates ------------------------------------------------------------------------

    def _compare(self, op: str, left: Any, right: Any) -> str:
        if op not in _OPS:
            raise QueryError(f"unknown comparison operator {op!r}")
        op = _OPS[op]
        if not isinstance(left, Prop) and isinstance(right, Prop):
            left, right, op = right, left, _FLIP[op]
        if not isinstance(left, Prop):
            return _sql_bool(_compare_python(op, left, right))
        ref = resolve(left.name)
        if isinstance(right, Prop):
            return self._compare_props(op, ref, resolve(right.name))
        if ref.kind == "geom":
            if op not in ("=", "<>") or not isinstance(right, (dict, list, tuple)):
                return "NULL"
            equals = self._spatial("s_equals", left, right)
            return equals if op == "=" else f"(NOT {equals})"
        category, value = self._literal(ref, right)
        typed = self._typed(ref, category)
        if typed is None or value is None:
            return "NULL"
        return f"({typed} {op} {self.b.bind(value)})"

    def _compare_props(self, op: str, a: Ref, b: Ref) -> str:
        if a.kind == "geom" or b.kind == "geom":
            return "NULL"
        if a.kind == "time" and b.kind == "json":
            return f"({a.sql} {op} sh_epoch({b.sql}))"
        if b.kind == "time" and a.kind == "json":
            return f"(sh_epoch({a.sql}) {op} {b.sql})"
        if a.kind == "json" and b.kind == "json":  # same JSON type only
            return f"((CASE WHEN {a.jtype} = {b.jtype} THEN {a.sql} END) {op} {b.sql})"
        if a.kind != b.kind and "json" not in (a.kind, b.kind):
            return "NULL"
        return f"({a.sql} {op} {b.sql})"

    def _like(self, prop: Any, pattern: str) -> str:
        if not isinstance(pattern, str):
            return "NULL"
        glob = self.b.bind(like_to_glob(pattern))
        if not isinstance(prop, Prop):
            return f"({self.b.bind(prop)} GLOB {glob})" if isinstance(prop, str) else "NULL"
        typed = self._typed(resolve(prop.name), "str")
        return "NULL" if typed is None else f"({typed} GLOB {glob})"

    def _in(self, prop: Any, values: Sequence[Any]) -> str:
        if not isinstance(prop, Prop):
            return _sql_bool(any(_compare_python("=", prop, v) for v in values) if values
                             else False)
        ref = resolve(prop.name)
        groups: dict[str, list[Any]] = {}
        for value in values:
            category, converted = self._literal(ref, value)
            if converted is not None and self._typed(ref, category) is not None:
                groups.setdefault(category, []).append(converted)
        if not groups:
            return "0" if not values else "NULL"
        tests: dict[str, tuple[str, str]] = {}
        for category, vals in groups.items():
            typed = self._typed(ref, category)
            assert typed is not None
            tests[category] = (typed, f"{typed} IN ({', '.join(self.b.bind(v) for v in vals)})")
        if len(tests) == 1:
            return f"({next(iter(tests.values()))[1]})"
        # several JSON types: a value is tested against the literals of its own type; a value
        # of none of them is unknown, like a missing one
        whens = []
        if "time" in tests:  # ISO strings are also "str": try them as timestamps first
            typed, test = tests.pop("time")
            whens.append(f"WHEN {test} THEN 1")
            if "str" not in tests:
                whens.append(f"WHEN {typed} IS NOT NULL THEN 0")
        whens += [f"WHEN {typed} IS NOT NULL THEN {test}" for typed, test in tests.values()]
        return f"(CASE {' '.join(whens)} ELSE NULL END)"

    def _isnull(self, prop: Any) -> str:
        if not isinstance(prop, Prop):
            return _sql_bool(prop is None)
        name = property_name(prop.name)
        ref = json_ref(name) if name == "title" else resolve(name)
        return f"({ref.sql} IS NULL)"

    def _spatial(self, op: str, left: Any, right: Any, top: bool = False) -> str:
        if op not in _SPATIAL:
            raise QueryError(f"unknown spatial operator {op!r}")
        predicate, converse = _SPATIAL[op]
        if isinstance(left, Prop) and isinstance(right, Prop):
            a, b = resolve(left.name), resolve(right.name)
            return f"sh_spatial('{predicate}', {a.sql}, {b.sql})"
        if not isinstance(left, Prop) and not isinstance(right, Prop):
            return _sql_bool(bool(sql_spatial(predicate, geometry_literal(left),
                                              geometry_literal(right))))
        if isinstance(left, Prop):  # literal first: it is the prepared, cached one
            prop, literal, predicate = left, right, converse
        else:
            prop, literal = right, left
        text = geometry_literal(literal)
        ref = resolve(prop.name)
        exact = f"sh_spatial('{predicate}', {self.b.bind(text)}, {ref.sql})"
        bounds = geometry_bounds(text)
        if ref.kind != "geom" or bounds is None:
            return exact
        # every predicate but disjoint implies intersecting bboxes: the R*Tree answers for the
        # rows outside the literal's bounds without parsing their geometry
        candidates = f"items.rowid IN ({rtree_subquery(self.b, bounds)})"
        if top and predicate != "disjoint":  # the candidates drive the query
            return f"({candidates} AND {exact})"
        outside = "1" if predicate == "disjoint" else "0"
        return (f"(CASE WHEN {candidates} THEN {exact} "
                f"WHEN docs.geometry IS NOT NULL THEN {outside} END)")

    def _temporal_operand(self, value: Any) -> tuple[str, str] | None:
        if isinstance(value, Prop):
            name = property_name(value.name)
            if name == "datetime":
                return "items.start", 'items."end"'
            ref = resolve(name)
            if ref.kind == "time":
                return ref.sql, ref.sql
            if ref.kind == "json":
                epoch = f"sh_epoch({ref.sql})"
                return epoch, epoch
            return None
        bounds = interval_bounds(value)
        if bounds is None:
            return None
        lo = self.b.bind(bounds[0])
        return lo, (lo if bounds[1] == bounds[0] else self.b.bind(bounds[1]))

    def _temporal(self, op: str, left: Any, right: Any) -> str:
        template = TEMPORAL_SQL.get(op.lower()) if isinstance(op, str) else None
        if template is None:
            raise QueryError(f"unknown temporal operator {op!r}")
        a, b = self._temporal_operand(left), self._temporal_operand(right)
        if a is None or b is None:
            return "NULL"
        return "(" + template.format(a0=a[0], a1=a[1], b0=b[0], b1=b[1]) + ")"


#: CQL2 temporal functions as Allen relations between [a0, a1] and [b0, b1] (OGC 21-065)
TEMPORAL_SQL = {
    "t_after": "{a0} > {b1}",
    "t_before": "{a1} < {b0}",
    "t_contains": "{a0} < {b0} AND {a1} > {b1}",
    "t_disjoint": "{a0} > {b1} OR {a1} < {b0}",
    "t_during": "{a0} > {b0} AND {a1} < {b1}",
    "t_equals": "{a0} = {b0} AND {a1} = {b1}",
    "t_finishedby": "{a0} < {b0} AND {a1} = {b1}",
    "t_finishes": "{a0} > {b0} AND {a1} = {b1}",
    "t_intersects": "{a0} <= {b1} AND {a1} >= {b0}",
    "t_meets": "{a1} = {b0}",
    "t_metby": "{a0} = {b1}",
    "t_overlappedby": "{a0} > {b0} AND {a0} < {b1} AND {a1} > {b1}",
    "t_overlaps": "{a0} < {b0} AND {a1} > {b0} AND {a1} < {b1}",
    "t_startedby": "{a0} = {b0} AND {a1} > {b1}",
    "t_starts": "{a0} = {b0} AND {a1} < {b1}",
}
assert set(TEMPORAL_SQL) == set(TEMPORAL_OPS)


def like_to_glob(pattern: str) -> str:
    """A CQL2 LIKE pattern (``%``, ``_``, ``\\`` escapes; case-sensitive) as a SQLite GLOB."""
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            ch = next(chars, "\\")
            out.append(f"[{ch}]" if ch in "*?[" else ch)
        elif ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


def uses_docs(sql: str) -> bool:
    """Whether SQL built here reads the ``docs`` (JSON) table, which then must be joined."""
    return "docs." in sql


def _tests_a_column(expr: Any) -> bool:
    """Whether a (top-level) predicate compares an indexed column of ``items``."""
    if isinstance(expr, Compare):
        props = [o for o in (expr.left, expr.right) if isinstance(o, Prop)]
        return expr.op not in ("<>", "!=") and len(props) == 1 and \
            resolve(props[0].name).kind in ("text", "time")
    if isinstance(expr, (In, Between, IsNull, Like)):
        prop = expr.prop
        return isinstance(prop, Prop) and resolve(prop.name).kind in ("text", "time")
    if isinstance(expr, Temporal):
        return any(isinstance(o, Prop) and resolve(o.name).kind == "time"
                   for o in (expr.left, expr.right))
    if isinstance(expr, Spatial):
        return expr.op != "s_disjoint" and any(
            isinstance(o, Prop) and resolve(o.name).kind == "geom" for o in (expr.left, expr.right))
    return False


def _conjuncts(expr: Any) -> list[Any]:
    if isinstance(expr, And):
        return [part for arg in expr.args for part in _conjuncts(arg)]
    return [expr]


def _intersects_datetime(expr: Any) -> bool:
    """Whether ``expr`` is ``t_intersects`` of the item's ``datetime`` and a literal."""
    return isinstance(expr, Temporal) and isinstance(expr.op, str) and \
        expr.op.lower() == "t_intersects" and any(
            isinstance(o, Prop) and property_name(o.name) == "datetime"
            for o in (expr.left, expr.right))


def compile_filter(expr: Any, binder: Binder) -> list[Cond]:
    """A filter Expr as conditions over ``items``/``docs`` (its parameters go to ``binder``),
    one per conjunct of its top-level AND: a test of one property's values in ``item_props``
    (which can find its matches, or check a row), or SQL (``kind`` "index" when it tests an
    indexed column or the R*Tree, so that SQLite can find its matches without reading every
    item)."""
    compiler = FilterCompiler(binder)
    conds = []
    for part in _conjuncts(expr):
        found = compiler.props_clause(part)
        if found is not None:
            cond = props_cond(found.name, found.clause, found.several)
            cond.column = found.column
            if isinstance(part, Like) and "value >=" not in found.clause:
                cond.estimate = None  # no index range: estimating would read every value
            conds.append(cond)
            continue
        found_sides = compiler.column_sides(part)
        if found_sides is not None:
            sides, span = found_sides
            cond = Cond("(" + " AND ".join(sides) + ")", kind="index", sides=sides, span=span)
            if span is not None and _intersects_datetime(part):  # start <= hi AND end >= lo
                cond.column = TimeTest(*span)
            conds.append(cond)
            continue
        sql = compiler.compile(part, top=True, positive=True)
        conds.append(Cond(sql, kind="index" if _tests_a_column(part) else ""))
    return conds
