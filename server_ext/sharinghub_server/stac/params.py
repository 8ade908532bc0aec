"""STAC API item search parameters -> :class:`Query`.

The same search arrives in two shapes: a GET query string (every value a string, lists
comma-separated, JSON as text) and a POST ``/search`` JSON body (real arrays and objects). Both
are normalised here into one Query, and every bad input becomes a :class:`StacError` naming the
parameter and what was wrong with it - the store must never see a malformed query, because its
own errors are not written for API clients.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from ..index.query import Expr, Interval, Query
from .errors import StacError
from .limits import MAX_POSITIONS, MAX_TERMS, check_list, load_json

UTC = timezone.utc

#: the GET paging parameter; not ``token``, which Jupyter takes for its own login token
GET_PAGING_PARAM = "cursor"
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000

#: the only CRS the filter extension supports (longitude, latitude WGS84)
FILTER_CRS = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
FILTER_LANGS = ("cql2-text", "cql2-json")

GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                  "MultiPolygon", "GeometryCollection")

_STRINGS = {"type": "array", "items": {"type": "string"}}
#: the GET search parameters, the only ones :func:`search_from_get` reads: name -> (OpenAPI
#: schema, description). The OpenAPI document is made from this table (an array is sent
#: comma-separated: ``style: form, explode: false``).
GET_PARAMETERS: dict[str, tuple[dict[str, Any], str]] = {
    "collections": (_STRINGS, "comma-separated collection ids"),
    "ids": (_STRINGS, "comma-separated item ids"),
    "bbox": ({"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 6},
             "west,south,east,north (WGS84), or 6 numbers with heights"),
    "intersects": ({"type": "string"}, "a GeoJSON geometry, as JSON text"),
    "datetime": ({"type": "string"}, "RFC 3339 instant or interval; open ends with .."),
    "q": (_STRINGS, "free-text terms, comma-separated alternatives"),
    "filter": ({"type": "string"}, "CQL2 filter (text, or JSON with filter-lang=cql2-json)"),
    "filter-lang": ({"type": "string", "enum": list(FILTER_LANGS), "default": "cql2-text"},
                    "language of filter"),
    "filter-crs": ({"type": "string", "enum": [FILTER_CRS]}, "CRS of filter geometries"),
    "sortby": (_STRINGS, "fields, each with - (descending) or + (ascending) first"),
    "limit": ({"type": "integer", "minimum": 1, "default": DEFAULT_LIMIT},
              f"page size (at most {MAX_LIMIT}: more is taken as {MAX_LIMIT})"),
    GET_PAGING_PARAM: ({"type": "string"}, "paging cursor, from a next or prev link"),
}
#: the POST search body's members, the only ones :func:`search_from_post` reads: name ->
#: (JSON schema, description), as for :data:`GET_PARAMETERS`
POST_MEMBERS: dict[str, tuple[dict[str, Any], str]] = {
    "collections": (_STRINGS, "collection ids"),
    "ids": (_STRINGS, "item ids"),
    "bbox": ({"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 6},
             "west, south, east, north (WGS84), or 6 numbers with heights"),
    "intersects": ({"type": "object"}, "a GeoJSON geometry"),
    "datetime": ({"type": "string"}, "RFC 3339 instant or interval; open ends with .."),
    "q": (_STRINGS, "free-text terms, alternatives"),
    "filter": ({"anyOf": [{"type": "object"}, {"type": "string"}]},
               "CQL2 JSON filter (or CQL2 text, a string, with filter-lang=cql2-text)"),
    "filter-lang": ({"type": "string", "enum": list(FILTER_LANGS), "default": "cql2-json"},
                    "language of filter"),
    "filter-crs": ({"type": "string", "enum": [FILTER_CRS]}, "CRS of filter geometries"),
    "sortby": ({"type": "array", "items": {"type": "object", "required": ["field"],
                                           "properties": {
                                               "field": {"type": "string"},
                                               "direction": {"type": "string",
                                                             "enum": ["asc", "desc"]}}}},
               "sort fields, in order"),
    "limit": ({"type": "integer", "minimum": 1, "default": DEFAULT_LIMIT},
              f"page size (at most {MAX_LIMIT}: more is taken as {MAX_LIMIT})"),
    "token": ({"type": "string"}, "paging token, from a next or prev link's body"),
}


#: a number as JSON writes one, or ``nan``/``inf`` (which float() reads, and the bbox check
#: refuses as not finite); not float()'s other spellings (``1_0``, non-ASCII digits)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:nan|inf"
                     r"(?:inity)?)", re.IGNORECASE)


def _show(value: Any, limit: int = 80) -> str:
    """A value as quoted in an error message: strings repr-like, the rest as JSON, short."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- timestamps ---------------------------------------------------------------------------

_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$", re.ASCII)
_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?$", re.ASCII
)
#: the last instant of a day: a date-only end covers its whole day
_DAY_END = time(23, 59, 59, 999999, tzinfo=UTC)


def parse_date(text: str) -> date | None:
    """``YYYY-MM-DD`` as a date; None if it is not one."""
    m = _DATE_RE.match(text.strip())
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 date-time as an aware UTC datetime; None if it is not one. Lenient where
    that costs nothing (no seconds, no offset = UTC, a space for ``T``); hand-rolled because
    Python 3.10's ``fromisoformat`` rejects ``Z``."""
    m = _DATETIME_RE.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        micro = int((frac or "0")[:6].ljust(6, "0"))
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), micro, tzinfo=UTC)
        if tz and tz not in ("Z", "z"):
            digits = tz[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
            if hours > 23 or minutes > 59:
                return None
            offset = timedelta(hours=hours, minutes=minutes)
            dt = dt - offset if tz[0] == "+" else dt + offset
    except (ValueError, OverflowError):
        return None
    return dt


def parse_instant(text: str) -> datetime | date | None:
    """A timestamp (aware UTC datetime) or a date; None if it is neither."""
    return parse_timestamp(text) or parse_date(text)


def day_start(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(0, tzinfo=UTC))


def day_end(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, _DAY_END)


def parse_datetime_param(text: str) -> Interval:
    """The ``datetime`` parameter: an instant, or ``start/end`` with ``..`` or empty for an
    open end. A date-only value stands for its whole day (start at 00:00:00 UTC, end at
    23:59:59.999999 UTC), so ``2020-01-01/2020-12-31`` includes December 31st."""
    text = text.strip()
    if "/" not in text:
        instant = parse_instant(text)
        if instant is None:
            raise StacError(f"Invalid datetime {_show(text)}: expected an RFC 3339 date-time "
                            "(2020-01-01T00:00:00Z), a date, or an interval start/end")
        return Interval(day_start(instant), day_end(instant))
    parts = text.split("/")
    if len(parts) != 2:
        raise StacError(f"Invalid datetime interval {_show(text)}: expected start/end")
    ends: list[datetime | date | None] = []
    for part in parts:
        part = part.strip()
        if part in ("", ".."):
            ends.append(None)
            continue
        instant = parse_instant(part)
        if instant is None:
            raise StacError(f"Invalid datetime {_show(part)} in interval {_show(text)}: "
                            "expected an RFC 3339 date-time, a date, or '..'")
        ends.append(instant)
    start, end = ends
    if start is None and end is None:
        raise StacError(f"Invalid datetime interval {_show(text)}: both ends are open")
    interval = Interval(None if start is None else day_start(start),
                        None if end is None else day_end(end))
    if interval.start is not None and interval.end is not None and interval.start > interval.end:
        raise StacError(f"Invalid datetime interval {_show(text)}: the start is after the end")
    return interval


# --- geometry -----------------------------------------------------------------------------


def check_bbox(values: Any, what: str = "bbox",
               shown: str | None = None) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a 4- or 6-number bbox (a 3D one loses its heights).
    West > east is allowed: the box crosses the antimeridian. ``shown``: the input as the
    client wrote it, for messages."""
    what = f"{what} {_show(values) if shown is None else _show(shown)}"
    if not isinstance(values, (list, tuple)) or len(values) not in (4, 6) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise StacError(f"Invalid {what}: expected 4 or 6 numbers")
    nums = [float(v) for v in values]
    if not all(math.isfinite(v) for v in nums):
        raise StacError(f"Invalid {what}: numbers must be finite")
    if len(nums) == 6:
        if nums[2] > nums[5]:
            raise StacError(f"Invalid {what}: the minimum height is above "
                            "the maximum one")
        nums = [nums[0], nums[1], nums[3], nums[4]]
    w, s, e, n = nums
    if not (-90 <= s <= 90 and -90 <= n <= 90):
        raise StacError(f"Invalid {what}: latitudes must be within [-90, 90]")
    if not (-180 <= w <= 180 and -180 <= e <= 180):
        raise StacError(f"Invalid {what}: longitudes must be within "
                        "[-180, 180]")
    if s > n:
        raise StacError(f"Invalid {what}: south is greater than north")
    return w, s, e, n


def bbox_polygon(box: tuple[float, float, float, float]) -> dict:
    """A bbox as a GeoJSON geometry: a Polygon, or a MultiPolygon of two when it crosses the
    antimeridian (a single polygon would span the other way round the globe)."""
    w, s, e, n = box

    def ring(w: float, e: float) -> list:
        return [[[w, s], [e, s], [e, n], [w, n], [w, s]]]

    if w <= e:
        return {"type": "Polygon", "coordinates": ring(w, e)}
    return {"type": "MultiPolygon", "coordinates": [ring(w, 180.0), ring(-180.0, e)]}


def check_geometry(value: Any, what: str = "intersects") -> dict:
    """A GeoJSON geometry object, checked by building it with shapely (the store will)."""
    if not isinstance(value, dict):
        raise StacError(f"Invalid {what}: expected a GeoJSON geometry object, got {_show(value)}")
    kind = value.get("type")
    if kind not in GEOMETRY_TYPES:
        hint = " (not a Feature: pass its geometry)" if kind in ("Feature",
                                                                 "FeatureCollection") else ""
        raise StacError(f"Invalid {what}: {_show(kind)} is not a GeoJSON geometry type{hint}")
    key = "geometries" if kind == "GeometryCollection" else "coordinates"
    if key not in value:
        raise StacError(f"Invalid {what}: the {kind} has no {key!r}")
    positions = _count_positions(value[key], kind)
    if positions > MAX_POSITIONS:
        raise StacError(f"Invalid {what}: {positions} points, at most {MAX_POSITIONS}")
    _check_shape(value[key], kind, what)
    try:
        import shapely.geometry  # lazily: 40 ms, and most searches have no geometry

        shapely.geometry.shape(value)
    except Exception as exc:  # shapely/GEOS raise a zoo of types for malformed input
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StacError(f"Invalid {what}: malformed {kind} coordinates ({detail})") from None
    return value


#: how deep a geometry's positions lie in its coordinates, and what that looks like
_NESTING = {"Point": (0, "[lon, lat]"),
            "MultiPoint": (1, "a list of [lon, lat] positions"),
            "LineString": (1, "a list of [lon, lat] positions"),
            "MultiLineString": (2, "a list of lines, each a list of [lon, lat] positions"),
            "Polygon": (2, "a list of rings, each a list of [lon, lat] positions"),
            "MultiPolygon": (3, "a list of polygons, each a list of rings of [lon, lat] "
                                "positions")}


def _check_shape(value: Any, kind: str, what: str) -> None:
    """Coordinates nested as ``kind`` needs, each position 2 or 3 finite numbers; a
    collection's members each a geometry (shapely's own errors on these name its internals)."""
    if kind == "GeometryCollection":
        if not isinstance(value, list):
            raise StacError(f"Invalid {what}: malformed GeometryCollection (its geometries "
                            "must be a list)")
        for member in value:
            check_geometry(member, what)
        return
    depth, looks = _NESTING[kind]
    stack = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if level == depth:
            if not (isinstance(node, list) and 2 <= len(node) <= 3 and all(
                    isinstance(n, (int, float)) and not isinstance(n, bool) and math.isfinite(n)
                    for n in node)):
                raise StacError(f"Invalid {what}: malformed {kind} coordinates (a position "
                                f"is 2 or 3 finite numbers, not {_show(node, 40)})")
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)
        else:
            raise StacError(f"Invalid {what}: malformed {kind} coordinates (expected "
                            f"{looks})")


def _count_positions(value: Any, kind: str) -> int:
    """Positions in a geometry's coordinates (or a collection's geometries), walked without
    recursion; shapely reports the malformed, this only counts."""
    count, stack = 0, [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.append(node.get("geometries" if node.get("type") == "GeometryCollection"
                                  else "coordinates"))
        elif isinstance(node, list):
            if node and not isinstance(node[0], (list, dict)):
                count += 1  # a position: [x, y(, z)]
            else:
                stack.extend(node)
    return count


# --- small parsers shared by GET and POST -------------------------------------------------


def _check_collections(names: list[str], known: Collection[str],
                       collection: str | None) -> list[str] | None:
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(_show(name, 40) for name in unknown[:3])
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise StacError(f"Unknown collection{'s' if len(unknown) > 1 else ''}: {listed}{more}")
    if collection is not None:
        if collection not in known:
            raise StacError(f"Collection {_show(collection)} not found", status=404)
        if names and collection not in names:
            raise StacError(f"collections={_show(','.join(names))} excludes the collection "
                            f"{collection!r} of this endpoint")
        return [collection]
    return names or None


def _check_limit(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?[0-9]+", text):
            # thousands of digits are a huge number, not worth converting (Python refuses
            # beyond 4300): above the maximum, or below 1
            digits = text.lstrip("+-").lstrip("0") or "0"
            value = int(text) if len(digits) <= 18 else (-1 if text[0] == "-" else MAX_LIMIT)
    if not isinstance(value, int) or isinstance(value, bool):
        raise StacError(f"Invalid limit {_show(value)}: expected an integer between 1 and "
                        f"{MAX_LIMIT}")
    if value < 1:
        raise StacError(f"Invalid limit {value}: it must be at least 1")
    return min(value, MAX_LIMIT)


def _sort_field(field: Any) -> str:
    if not isinstance(field, str) or not field.strip() or any(c.isspace()
                                                              for c in field.strip()):
        raise StacError(f"Invalid sortby field {_show(field)}")
    field = field.strip()
    name = field[len("properties."):] if field.startswith("properties.") else field
    if not name:
        raise StacError(f"Invalid sortby field {_show(field)}")
    return name


def parse_sortby_text(text: str) -> list[tuple[str, str]]:
    """``+a,-b,c``: no sign (or ``+``, which a query string may have decoded to a space) is
    ascending."""
    sortby = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        direction = "desc" if entry[0] == "-" else "asc"
        if entry[0] in "+-":
            entry = entry[1:]
        sortby.append((_sort_field(entry), direction))
    return sortby


def _parse_sortby_json(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):  # the GET form, which some clients send in bodies too
        return parse_sortby_text(value)
    if not isinstance(value, list):
        raise StacError('Invalid sortby: expected an array of {"field", "direction"} objects')
    sortby = []
    for entry in value:
        if not isinstance(entry, dict) or "field" not in entry:
            raise StacError(f'Invalid sortby entry {_show(entry)}: expected {{"field": ..., '
                            '"direction": "asc" | "desc"}')
        direction = entry.get("direction", "asc")
        if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
            raise StacError(f"Invalid sortby direction {_show(direction)} for "
                            f"{_show(entry['field'])}: expected 'asc' or 'desc'")
        sortby.append((_sort_field(entry["field"]), direction.lower()))
    return sortby


def sortby_to_text(sortby: list[tuple[str, str]]) -> str:
    """The GET form of a sort: ``a,-b`` (ascending needs no sign, and ``+`` is awkward in
    URLs)."""
    return ",".join(("-" if direction == "desc" else "") + field for field, direction in sortby)


def sortby_to_json(sortby: list[tuple[str, str]]) -> list[dict[str, str]]:
    """The POST form of a sort."""
    return [{"field": field, "direction": direction} for field, direction in sortby]


def split_terms(text: str) -> list[str]:
    """Free-text terms: comma-separated, except inside double quotes (``"a, b",c``), whose
    marks are dropped - a multi-word term is searched as a phrase anyway."""
    terms, current, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [term.strip() for term in terms if term.strip()]


def _check_terms(terms: list[str]) -> list[str]:
    if len(terms) > MAX_TERMS:
        raise StacError(f"Invalid q: {len(terms)} terms, at most {MAX_TERMS}")
    return terms


def _unquote(term: str) -> str:
    term = term.strip()
    if len(term) >= 2 and term[0] == term[-1] == '"':
        term = term[1:-1].strip()
    return term


def _check_filter_crs(value: Any) -> None:
    if value != FILTER_CRS:
        raise StacError(f"Unsupported filter-crs {_show(value)}: only {FILTER_CRS} is "
                        "supported")


def _check_filter_lang(value: Any) -> str:
    if value not in FILTER_LANGS:
        raise StacError(f"Unsupported filter-lang {_show(value)}: expected 'cql2-text' or "
                        "'cql2-json'")
    return value


def _filter(value: str | dict | bool, lang: str) -> Expr:
    # imported here: stac.cql2 imports StacError and the timestamp helpers from this module
    from .cql2 import parse_filter

    return parse_filter(value, lang)


def _check_spatial(query: Query) -> None:
    if query.bbox is not None and query.intersects is not None:
        raise StacError("Only one of bbox and intersects can be given")


# --- GET ----------------------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def search_from_get(args: Mapping[str, Any], *, known_collections: Collection[str],
                    collection: str | None = None) -> Query:
    """A Query from GET ``/search`` (or ``/collections/{collection}/items``) parameters, as
    decoded strings (a list means a repeated parameter: the last value wins). Empty values
    count as absent; unknown parameters are ignored (they may belong to other extensions)."""
    a: dict[str, str] = {}
    for key, value in args.items():
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else ""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if key in GET_PARAMETERS and isinstance(value, str) and value.strip():
            a[key] = value.strip()

    query = Query(limit=DEFAULT_LIMIT)
    query.collections = _check_collections(
        check_list(_split(a.get("collections", "")), "collections"), known_collections,
        collection)
    query.ids = check_list(_split(a["ids"]), "ids") or None if "ids" in a else None
    if "bbox" in a:
        parts = [part.strip() for part in a["bbox"].split(",")]
        if not all(_NUMBER.fullmatch(part) for part in parts):
            raise StacError(f"Invalid bbox {_show(a['bbox'])}: expected 4 or 6 comma-separated "
                            "numbers")
        query.bbox = check_bbox([float(part) for part in parts], shown=a["bbox"])
    if "intersects" in a:
        query.intersects = check_geometry(load_json(a["intersects"], "intersects"))
    _check_spatial(query)
    if "datetime" in a:
        query.datetime = parse_datetime_param(a["datetime"])
    if "q" in a:
        query.q = _check_terms(split_terms(a["q"])) or None
    if "filter-crs" in a:
        _check_filter_crs(a["filter-crs"])
    lang = _check_filter_lang(a.get("filter-lang", "cql2-text"))
    if "filter" in a:
        query.filter = _filter(a["filter"], lang)
    if "sortby" in a:
        query.sortby = parse_sortby_text(a["sortby"])
    if "limit" in a:
        query.limit = _check_limit(a["limit"])
    query.token = a.get(GET_PAGING_PARAM)
    return query


# --- POST ---------------------------------------------------------------------------------


def _strings(body: dict, key: str) -> list[str]:
    value = body[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StacError(f"Invalid {key} {_show(value)}: expected an array of strings")
    return check_list([v.strip() for v in value if v.strip()], key)


def search_from_post(body: Any, *, known_collections: Collection[str]) -> Query:
    """A Query from a POST ``/search`` JSON body. ``null`` members count as absent; unknown
    members are ignored."""
    if not isinstance(body, dict):
        raise StacError("Invalid search body: expected a JSON object")
    b = {key: value for key, value in body.items() if value is not None and key in POST_MEMBERS}

    query = Query(limit=DEFAULT_LIMIT)
    names = _strings(b, "collections") if "collections" in b else []
    query.collections = _check_collections(names, known_collections, None)
    if "ids" in b:
        query.ids = _strings(b, "ids") or None
    if "bbox" in b:
        query.bbox = check_bbox(b["bbox"])
    if "intersects" in b:
        query.intersects = check_geometry(b["intersects"])
    _check_spatial(query)
    if "datetime" in b:
        if not isinstance(b["datetime"], str):
            raise StacError(f"Invalid datetime {_show(b['datetime'])}: expected a string")
        if b["datetime"].strip():
            query.datetime = parse_datetime_param(b["datetime"])
    if "q" in b:
        q = b["q"]
        if isinstance(q, str):
            query.q = _check_terms(split_terms(q)) or None
        elif isinstance(q, list) and all(isinstance(term, str) for term in q):
            query.q = _check_terms([t for t in (_unquote(term) for term in q) if t]) or None
        else:
            raise StacError(f"Invalid q {_show(q)}: expected an array of strings")
    if "filter-crs" in b:
        _check_filter_crs(b["filter-crs"])
    lang = _check_filter_lang(b.get("filter-lang", "cql2-json"))
    if "filter" in b:
        query.filter = _filter(b["filter"], lang)
    if "sortby" in b:
        query.sortby = _parse_sortby_json(b["sortby"])
    if "limit" in b:
        if not isinstance(b["limit"], int) or isinstance(b["limit"], bool):
            raise StacError(f"Invalid limit {_show(b['limit'])}: expected an integer between "
                            f"1 and {MAX_LIMIT}")
        query.limit = _check_limit(b["limit"])
    if "token" in b:
        if not isinstance(b["token"], str):
            raise StacError(f"Invalid token {_show(b['token'])}: expected a string")
        query.token = b["token"] or None
    return query


# --- paging links -------------------------------------------------------------------------


def get_args_for(args: Mapping[str, str], token: str) -> dict[str, str]:
    """The query string of a ``next``/``prev`` link: the same parameters, another token."""
    out = {key: value for key, value in args.items() if key != GET_PAGING_PARAM}
    out[GET_PAGING_PARAM] = token
    return out


def post_body_for(body: dict, token: str) -> dict:
    """The body of a POST ``next``/``prev`` link: the same search, another token."""
    return {**{key: value for key, value in body.items() if key != "token"}, "token": token}
