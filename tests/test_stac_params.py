"""STAC API search parameters (GET and POST) and CQL2 filters -> Query / Expr trees.

Pure unit tests: no server, no store. Every error path asserts the status and that the
description names what was wrong.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from sharinghub_server.index.query import (
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
    Query,
    Spatial,
    Temporal,
)
from sharinghub_server.stac import cql2 as stac_cql2
from sharinghub_server.stac.cql2 import from_cql2_json, parse_filter
from sharinghub_server.stac.params import (
    DEFAULT_LIMIT,
    FILTER_CRS,
    MAX_LIMIT,
    StacError,
    get_args_for,
    post_body_for,
    search_from_get,
    search_from_post,
    sortby_to_json,
    sortby_to_text,
)

UTC = timezone.utc
KNOWN = ("ai-models", "datasets", "tools")


def get(**args: str) -> Query:
    return search_from_get(args, known_collections=KNOWN)


def post(body: object) -> Query:
    return search_from_post(body, known_collections=KNOWN)


def dt(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def fails(fn, *args, status: int = 400, match: str = "", **kwargs) -> StacError:
    """Call fn, expect a StacError of ``status`` whose description contains ``match``."""
    with pytest.raises(StacError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert err.status == status
    assert match.lower() in err.description.lower(), err.description
    assert "\n" not in err.description
    return err


def text(expr: str):
    return parse_filter(expr, "cql2-text")


def cjson(node: object):
    return parse_filter(node, "cql2-json")


# --- StacError ----------------------------------------------------------------------------


def test_stac_error_json_and_codes():
    err = StacError("bad bbox")
    assert (err.status, err.code) == (400, "InvalidParameterValue")
    assert err.to_json() == {"code": "InvalidParameterValue", "description": "bad bbox"}
    assert str(err) == "bad bbox"
    missing = StacError("Collection 'x' not found", status=404)
    assert missing.code == "NotFound"
    assert StacError("x", code="Custom").to_json()["code"] == "Custom"


def test_cql2_module_uses_the_parser_package():
    # stac/cql2.py shares its name with the parser package; its ``import cql2`` must be the
    # top-level package, not itself
    assert stac_cql2.cql2 is not stac_cql2
    assert hasattr(stac_cql2.cql2, "parse_text")


# --- defaults, collections, ids ------------------------------------------------------------


def test_empty_get_and_post_are_the_default_query():
    for query in (get(), post({})):
        assert query == Query(limit=DEFAULT_LIMIT)
    assert DEFAULT_LIMIT == 10


def test_empty_get_values_and_null_post_members_are_absent():
    assert get(bbox="", datetime=" ", limit="", filter="") == Query()
    assert post({"bbox": None, "datetime": None, "limit": None, "filter": None}) == Query()


def test_unknown_parameters_are_ignored():
    assert get(fields="id", foo="bar") == Query()
    assert post({"fields": {"include": ["id"]}, "conf": {}}) == Query()


def test_collections_and_ids():
    query = get(collections="ai-models, datasets,", ids="a, b ,,c")
    assert query.collections == ["ai-models", "datasets"]
    assert query.ids == ["a", "b", "c"]
    query = post({"collections": ["tools"], "ids": ["x"]})
    assert query.collections == ["tools"]
    assert query.ids == ["x"]
    assert post({"collections": [], "ids": []}).collections is None


def test_unknown_collections_are_named():
    err = fails(get, collections="ai-models,nope,other", match="unknown collections")
    assert "'nope'" in err.description and "'other'" in err.description
    assert "ai-models" not in err.description
    fails(post, {"collections": ["nope"]}, match="'nope'")


def test_post_collections_and_ids_must_be_string_arrays():
    fails(post, {"collections": "ai-models"}, match="collections")
    fails(post, {"ids": [1, 2]}, match="ids")


def test_collection_from_path_restricts_the_search():
    def items(cid: str, **args: str) -> Query:
        return search_from_get(args, known_collections=KNOWN, collection=cid)

    assert items("datasets").collections == ["datasets"]
    assert items("datasets", collections="datasets,tools").collections == ["datasets"]
    fails(items, "datasets", collections="tools", match="datasets")
    err = fails(items, "nope", status=404, match="'nope' not found")
    assert err.code == "NotFound"


# --- bbox / intersects --------------------------------------------------------------------


def test_bbox_get_and_post():
    assert get(bbox="-10.5, 40,5,50").bbox == (-10.5, 40.0, 5.0, 50.0)
    assert post({"bbox": [-10, 40, 5, 50]}).bbox == (-10.0, 40.0, 5.0, 50.0)


def test_bbox_3d_drops_heights():
    assert get(bbox="1,2,-100,3,4,500").bbox == (1.0, 2.0, 3.0, 4.0)
    assert post({"bbox": [1, 2, 0, 3, 4, 10]}).bbox == (1.0, 2.0, 3.0, 4.0)


def test_bbox_across_the_antimeridian_is_allowed():
    assert get(bbox="170,-10,-170,10").bbox == (170.0, -10.0, -170.0, 10.0)


@pytest.mark.parametrize(("value", "message"), [
    ("1,2,3", "4 or 6"),
    ("1,2,3,4,5", "4 or 6"),
    ("a,b,c,d", "4 or 6"),
    ("0,10,1,5", "south is greater than north"),
    ("0,-91,1,5", "latitude"),
    ("0,0,1,95", "latitude"),
    ("-181,0,1,5", "longitude"),
    ("0,0,200,5", "longitude"),
    ("0,0,nan,5", "finite"),
    ("0,0,10,1,1,5", "height"),
])
def test_invalid_bbox_get(value, message):
    err = fails(get, bbox=value, match=message)
    assert value in err.description  # quoted as the client wrote it


@pytest.mark.parametrize("value", ["1,2,3,4", [1, 2, 3], [1, "2", 3, 4], [True, 0, 1, 1]])
def test_invalid_bbox_post(value):
    fails(post, {"bbox": value}, match="bbox")


POINT = {"type": "Point", "coordinates": [1.5, 2.5]}
SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}


def test_intersects_get_and_post():
    assert get(intersects=json.dumps(SQUARE)).intersects == SQUARE
    assert post({"intersects": POINT}).intersects == POINT
    collection = {"type": "GeometryCollection", "geometries": [POINT, SQUARE]}
    assert post({"intersects": collection}).intersects == collection


@pytest.mark.parametrize(("geometry", "message"), [
    ({"type": "Feature", "geometry": POINT, "properties": {}}, "not a feature"),
    ({"type": "Circle", "coordinates": [0, 0]}, "'Circle' is not a GeoJSON geometry type"),
    ({"type": "Point"}, "no 'coordinates'"),
    ({"type": "Point", "coordinates": "x"}, "malformed point"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}, "malformed polygon"),
    ({"type": "LineString", "coordinates": [[0, 0]]}, "malformed linestring"),
    ([1, 2], "expected a geojson geometry object"),
])
def test_invalid_intersects(geometry, message):
    fails(get, intersects=json.dumps(geometry), match=message)
    fails(post, {"intersects": geometry}, match=message)


def test_intersects_get_must_be_json():
    fails(get, intersects="POINT(1 2)", match="intersects")


def test_bbox_and_intersects_are_exclusive():
    fails(get, bbox="0,0,1,1", intersects=json.dumps(POINT), match="bbox and intersects")
    fails(post, {"bbox": [0, 0, 1, 1], "intersects": POINT}, match="bbox and intersects")


# --- datetime -----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("2020-01-02T03:04:05Z", Interval(dt(2020, 1, 2, 3, 4, 5), dt(2020, 1, 2, 3, 4, 5))),
    ("2020-01-02T03:04:05.25z", Interval(dt(2020, 1, 2, 3, 4, 5, 250000),
                                         dt(2020, 1, 2, 3, 4, 5, 250000))),
    ("2020-01-02T03:04:05+02:00", Interval(dt(2020, 1, 2, 1, 4, 5), dt(2020, 1, 2, 1, 4, 5))),
    ("2020-01-02T03:04:05-01:30", Interval(dt(2020, 1, 2, 4, 34, 5), dt(2020, 1, 2, 4, 34, 5))),
    # a date is its whole day
    ("2020-01-02", Interval(dt(2020, 1, 2), dt(2020, 1, 2, 23, 59, 59, 999999))),
    ("2020-01-01T00:00:00Z/2020-06-01T12:00:00Z",
     Interval(dt(2020, 1, 1), dt(2020, 6, 1, 12))),
    ("2020-01-01/2020-12-31", Interval(dt(2020, 1, 1), dt(2020, 12, 31, 23, 59, 59, 999999))),
    ("../2020-01-01T00:00:00Z", Interval(None, dt(2020, 1, 1))),
    ("/2020-01-01T00:00:00Z", Interval(None, dt(2020, 1, 1))),
    ("2020-01-01T00:00:00Z/..", Interval(dt(2020, 1, 1), None)),
    ("2020-01-01T00:00:00Z/", Interval(dt(2020, 1, 1), None)),
    ("2020-01-01T00:00:00Z/2020-01-01T00:00:00Z", Interval(dt(2020, 1, 1), dt(2020, 1, 1))),
])
def test_datetime(value, expected):
    for query in (get(datetime=value), post({"datetime": value})):
        assert query.datetime == expected
        for end in (query.datetime.start, query.datetime.end):
            assert end is None or end.utcoffset() is not None


@pytest.mark.parametrize(("value", "message"), [
    ("../..", "both ends are open"),
    ("/", "both ends are open"),
    ("2021-01-01T00:00:00Z/2020-01-01T00:00:00Z", "start is after the end"),
    ("2020-01-02/2020-01-01", "start is after the end"),
    ("yesterday", "yesterday"),
    ("2020-13-01", "2020-13-01"),
    ("2020-02-30T00:00:00Z", "2020-02-30"),
    ("2020-01-01T25:00:00Z", "rfc 3339"),
    ("2020-01-01/nope", "'nope'"),
    ("2020-01-01/2020-02-01/2020-03-01", "start/end"),
])
def test_invalid_datetime(value, message):
    fails(get, datetime=value, match=message)
    fails(post, {"datetime": value}, match=message)


def test_post_datetime_must_be_a_string():
    fails(post, {"datetime": ["2020-01-01", "2020-02-01"]}, match="expected a string")


# --- q ------------------------------------------------------------------------------------


def test_q_get():
    assert get(q="sentinel, landsat ,,").q == ["sentinel", "landsat"]
    assert get(q='"climate model",sentinel').q == ["climate model", "sentinel"]
    assert get(q='"a, b",c').q == ["a, b", "c"]  # a quoted comma does not split
    assert get(q=' , ,').q is None


def test_q_post():
    assert post({"q": ["sentinel", " climate model ", "", '"a, b"']}).q == [
        "sentinel", "climate model", "a, b"]
    assert post({"q": 'sentinel,"a, b"'}).q == ["sentinel", "a, b"]
    assert post({"q": []}).q is None
    fails(post, {"q": ["a", 1]}, match="q")
    fails(post, {"q": {"a": 1}}, match="array of strings")


# --- sortby -------------------------------------------------------------------------------


def test_sortby_get():
    assert get(sortby="+title,-properties.datetime,id").sortby == [
        ("title", "asc"), ("datetime", "desc"), ("id", "asc")]
    # "+" in a query string decodes to a space
    assert get(sortby=" eo:cloud_cover").sortby == [("eo:cloud_cover", "asc")]


def test_sortby_post():
    body = {"sortby": [{"field": "properties.title", "direction": "desc"},
                       {"field": "id", "direction": "ASC"}, {"field": "datetime"}]}
    assert post(body).sortby == [("title", "desc"), ("id", "asc"), ("datetime", "asc")]
    assert post({"sortby": "-datetime"}).sortby == [("datetime", "desc")]


@pytest.mark.parametrize(("value", "message"), [
    ("-", "sortby field"), ("+properties.", "sortby field"), ("title desc", "title desc"),
])
def test_invalid_sortby_get(value, message):
    fails(get, sortby=value, match=message)


@pytest.mark.parametrize(("value", "message"), [
    ({"field": "title"}, "array"),
    ([{"direction": "asc"}], "sortby entry"),
    (["title"], "sortby entry"),
    ([{"field": "title", "direction": "up"}], "'up'"),
    ([{"field": 3}], "sortby field"),
])
def test_invalid_sortby_post(value, message):
    fails(post, {"sortby": value}, match=message)


def test_sortby_renderings():
    sortby = [("title", "asc"), ("datetime", "desc")]
    assert sortby_to_text(sortby) == "title,-datetime"
    assert get(sortby=sortby_to_text(sortby)).sortby == sortby
    assert sortby_to_json(sortby) == [{"field": "title", "direction": "asc"},
                                      {"field": "datetime", "direction": "desc"}]
    assert post({"sortby": sortby_to_json(sortby)}).sortby == sortby


# --- limit, token -------------------------------------------------------------------------


def test_limit():
    assert get(limit="25").limit == 25
    assert post({"limit": 1}).limit == 1
    assert get(limit=str(MAX_LIMIT)).limit == MAX_LIMIT
    assert get(limit="100000").limit == MAX_LIMIT  # clamped, not refused
    assert post({"limit": 5000}).limit == MAX_LIMIT
    assert MAX_LIMIT == 1000


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "ten", "1e3", "1_000"])
def test_invalid_limit_get(value):
    fails(get, limit=value, match="limit")


@pytest.mark.parametrize("value", [0, -1, 2.5, 10.0, "10", True])
def test_invalid_limit_post(value):
    fails(post, {"limit": value}, match="limit")


def test_token_passthrough():
    assert get(cursor="opaque-Abc_123==").token == "opaque-Abc_123=="
    assert get(token="jupyter-login").token is None  # Jupyter's, not ours
    assert post({"token": "opaque"}).token == "opaque"
    assert post({"token": ""}).token is None
    fails(post, {"token": 42}, match="token")


# --- paging links -------------------------------------------------------------------------


def test_get_args_for_round_trip():
    args = {"collections": "datasets", "bbox": "0,0,1,1", "sortby": "-datetime",
            "limit": "5", "cursor": "old"}
    linked = get_args_for(args, "new")
    assert linked == {**args, "cursor": "new"}
    assert args["cursor"] == "old"  # not modified in place
    first, second = get(**args), get(**linked)
    assert second.token == "new"
    second.token = first.token
    assert first == second
    assert get_args_for({"q": "x"}, "t") == {"q": "x", "cursor": "t"}


def test_post_body_for_round_trip():
    body = {"collections": ["tools"], "filter": {"op": "=", "args": [{"property": "id"}, "x"]},
            "sortby": [{"field": "id", "direction": "desc"}], "limit": 3}
    linked = post_body_for(body, "next")
    assert linked == {**body, "token": "next"}
    assert "token" not in body
    assert post(linked).token == "next"
    assert post_body_for(linked, "again")["token"] == "again"
    again = post(linked)
    again.token = None
    assert again == post(body)


# --- POST body shape ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [[], "collections=x", 3, None])
def test_post_body_must_be_an_object(body):
    fails(post, body, match="json object")


# --- filter parameters --------------------------------------------------------------------


def test_filter_get_defaults_to_cql2_text():
    query = get(filter="title = 'Model'")
    assert query.filter == Compare("=", Prop("title"), "Model")


def test_filter_get_cql2_json():
    node = {"op": "=", "args": [{"property": "title"}, "Model"]}
    query = get(filter=json.dumps(node), **{"filter-lang": "cql2-json"})
    assert query.filter == Compare("=", Prop("title"), "Model")
    fails(get, filter="title = 'x'", match="not valid json", **{"filter-lang": "cql2-json"})


def test_filter_post_defaults_to_cql2_json():
    node = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 10]}
    assert post({"filter": node}).filter == Compare("<", Prop("eo:cloud_cover"), 10)
    text_body = {"filter": "properties.eo:cloud_cover < 10", "filter-lang": "cql2-text"}
    assert post(text_body).filter == Compare("<", Prop("eo:cloud_cover"), 10)
    err = fails(post, {"filter": "id = 'x'"}, match="filter-lang")
    assert "cql2-text" in err.description


def test_filter_lang_and_crs():
    fails(get, filter="id = 'x'", match="unsupported filter-lang", **{"filter-lang": "sql"})
    fails(post, {"filter": "id = 'x'", "filter-lang": "cql-text"}, match="filter-lang")
    ok = get(filter="id = 'x'", **{"filter-crs": FILTER_CRS})
    assert ok.filter == Compare("=", Prop("id"), "x")
    assert post({"filter-crs": FILTER_CRS}).filter is None
    err = fails(get, filter="id = 'x'", match="filter-crs",
                **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"})
    assert FILTER_CRS in err.description
    fails(post, {"filter-crs": "EPSG:4326"}, match="filter-crs")


def test_post_text_filter_must_be_a_string():
    fails(post, {"filter": {"op": "=", "args": [1, 1]}, "filter-lang": "cql2-text"},
          match="must be a string")
    fails(post, {"filter": [1], "filter-lang": "cql2-json"}, match="expected an object")


def test_combined_get_parameters():
    query = get(collections="datasets", ids="d1,d2", bbox="0,0,10,10",
                datetime="2020-01-01T00:00:00Z/..", q="rain", filter="id <> 'd3'",
                sortby="-datetime", limit="2", cursor="t1")
    assert query == Query(
        collections=["datasets"], ids=["d1", "d2"], bbox=(0.0, 0.0, 10.0, 10.0),
        datetime=Interval(dt(2020, 1, 1), None), q=["rain"],
        filter=Compare("<>", Prop("id"), "d3"), sortby=[("datetime", "desc")], limit=2,
        token="t1")


# --- CQL2 -> Expr ------------------------------------------------------------------------


def test_comparisons_text_and_json_agree():
    for op in ("=", "<>", "<", "<=", ">", ">="):
        expected = Compare(op, Prop("size"), 10)
        assert text(f"size {op} 10") == expected
        assert cjson({"op": op, "args": [{"property": "size"}, 10]}) == expected
    assert text("size != 3") == Compare("<>", Prop("size"), 3)
    assert text("10 > size") == Compare(">", 10, Prop("size"))


def test_literals():
    assert text("flag = TRUE") == Compare("=", Prop("flag"), True)
    assert text("x = -2.5") == Compare("=", Prop("x"), -2.5)
    assert text("t = 'it''s'") == Compare("=", Prop("t"), "it's")
    assert text("a = b") == Compare("=", Prop("a"), Prop("b"))
    ts = text("datetime > TIMESTAMP('2020-01-01T02:00:00+02:00')")
    assert ts == Compare(">", Prop("datetime"), dt(2020, 1, 1))
    assert ts.right.tzinfo is not None
    day = text("updated <= DATE('2021-03-04')")
    assert day == Compare("<=", Prop("updated"), date(2021, 3, 4))
    assert type(day.right) is date
    assert cjson({"op": "=", "args": [{"property": "d"}, {"date": "2021-03-04"}]}).right == \
        date(2021, 3, 4)
    assert cjson({"op": "=", "args": [{"property": "d"}, {"timestamp": "2021-03-04T05:06:07Z"}]}
                 ).right == dt(2021, 3, 4, 5, 6, 7)


def test_properties_prefix_is_stripped():
    assert text("properties.title = 'x'") == Compare("=", Prop("title"), "x")
    assert cjson({"op": "isNull", "args": [{"property": "properties.license"}]}) == \
        IsNull(Prop("license"))
    assert text('"properties.eo:cloud_cover" < 5') == Compare("<", Prop("eo:cloud_cover"), 5)


def test_logical_operators():
    assert text("a = 1 AND b = 2 AND c = 3") == And((
        Compare("=", Prop("a"), 1), Compare("=", Prop("b"), 2), Compare("=", Prop("c"), 3)))
    assert text("a = 1 OR b = 2") == Or((Compare("=", Prop("a"), 1), Compare("=", Prop("b"), 2)))
    assert text("NOT (a = 1)") == Not(Compare("=", Prop("a"), 1))
    assert text("a = 1 AND (b = 2 OR NOT c = 3)") == And((
        Compare("=", Prop("a"), 1),
        Or((Compare("=", Prop("b"), 2), Not(Compare("=", Prop("c"), 3)))),
    ))
    assert cjson({"op": "and", "args": [True, {"op": "not", "args": [False]}]}) == \
        And((True, Not(False)))


def test_like_in_between_isnull():
    assert text("title LIKE 'Mod%'") == Like(Prop("title"), "Mod%")
    assert text("title NOT LIKE 'a\\_b'") == Not(Like(Prop("title"), "a\\_b"))
    assert text("license IN ('MIT', 'Apache-2.0')") == In(Prop("license"), ("MIT", "Apache-2.0"))
    assert text("n IN (1, 2)") == In(Prop("n"), (1, 2))
    assert text("n NOT IN (1)") == Not(In(Prop("n"), (1,)))
    assert text("n BETWEEN 1 AND 5") == Between(Prop("n"), 1, 5)
    assert text("n NOT BETWEEN 1 AND 5") == Not(Between(Prop("n"), 1, 5))
    assert text("license IS NULL") == IsNull(Prop("license"))
    assert text("license IS NOT NULL") == Not(IsNull(Prop("license")))
    assert cjson({"op": "in", "args": [{"property": "id"}, ["a", "b"]]}) == \
        In(Prop("id"), ("a", "b"))
    assert cjson({"op": "between", "args": [{"property": "n"}, 1, 2]}) == Between(Prop("n"), 1, 2)
    assert cjson({"op": "like", "args": [{"property": "id"}, "x%"]}) == Like(Prop("id"), "x%")


def test_spatial_with_wkt_and_bbox():
    assert text("S_INTERSECTS(geometry, POINT(1 2))") == Spatial(
        "s_intersects", Prop("geometry"), {"type": "Point", "coordinates": [1, 2]})
    polygon = text("S_INTERSECTS(geometry, POLYGON((0 0, 2 0, 2 2, 0 2, 0 0)))")
    assert polygon == Spatial("s_intersects", Prop("geometry"), {
        "type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]})
    box = text("S_INTERSECTS(geometry, BBOX(0, 1, 2, 3))")
    assert box == Spatial("s_intersects", Prop("geometry"), {
        "type": "Polygon", "coordinates": [[[0, 1], [2, 1], [2, 3], [0, 3], [0, 1]]]})
    assert cjson({"op": "s_intersects", "args": [{"property": "geometry"},
                                                 {"bbox": [0, 1, 2, 3]}]}) == box
    assert cjson({"op": "s_within", "args": [{"property": "geometry"}, SQUARE]}) == \
        Spatial("s_within", Prop("geometry"), SQUARE)
    assert text("S_CONTAINS(POINT(1 2), geometry)") == Spatial(
        "s_contains", {"type": "Point", "coordinates": [1, 2]}, Prop("geometry"))


def test_spatial_bbox_across_the_antimeridian_is_two_polygons():
    expr = text("S_INTERSECTS(geometry, BBOX(170, -10, -170, 10))")
    assert expr.right["type"] == "MultiPolygon"
    assert expr.right["coordinates"] == [
        [[[170, -10], [180, -10], [180, 10], [170, 10], [170, -10]]],
        [[[-180, -10], [-170, -10], [-170, 10], [-180, 10], [-180, -10]]],
    ]


@pytest.mark.parametrize("op", ["s_intersects", "s_disjoint", "s_within", "s_contains",
                                "s_equals", "s_touches", "s_overlaps", "s_crosses"])
def test_every_spatial_operator(op):
    assert text(f"{op.upper()}(geometry, POINT(0 0))").op == op


def test_temporal_with_instants_and_open_intervals():
    assert text("T_AFTER(datetime, TIMESTAMP('2020-01-01T00:00:00Z'))") == Temporal(
        "t_after", Prop("datetime"), dt(2020, 1, 1))
    assert text("T_BEFORE(datetime, DATE('2020-01-01'))") == Temporal(
        "t_before", Prop("datetime"), date(2020, 1, 1))
    assert text("T_INTERSECTS(datetime, INTERVAL('2020-01-01T00:00:00Z', '..'))") == Temporal(
        "t_intersects", Prop("datetime"), Interval(dt(2020, 1, 1), None))
    assert text("T_DURING(datetime, INTERVAL('..', '2021-06-30'))") == Temporal(
        "t_during", Prop("datetime"), Interval(None, date(2021, 6, 30)))
    assert text("T_DURING(datetime, INTERVAL('2020-01-01', '2020-12-31'))") == Temporal(
        "t_during", Prop("datetime"), Interval(date(2020, 1, 1), date(2020, 12, 31)))
    assert text("T_INTERSECTS(datetime, INTERVAL('..', '..'))").right == Interval(None, None)
    node = {"op": "t_overlaps", "args": [{"property": "datetime"}, {"interval": [
        {"timestamp": "2020-01-01T00:00:00Z"}, {"date": "2020-02-01"}]}]}
    assert cjson(node) == Temporal("t_overlaps", Prop("datetime"),
                                   Interval(dt(2020, 1, 1), date(2020, 2, 1)))
    assert cjson({"op": "t_equals", "args": [{"property": "datetime"},
                                             {"timestamp": "2020-01-01T00:00:00Z"}]}
                 ).right == dt(2020, 1, 1)


@pytest.mark.parametrize("op", TEMPORAL_OPS)
def test_every_temporal_operator(op):
    expr = text(f"{op.upper()}(datetime, TIMESTAMP('2020-01-01T00:00:00Z'))")
    assert expr == Temporal(op, Prop("datetime"), dt(2020, 1, 1))
    assert cjson({"op": op, "args": [{"property": "datetime"},
                                     {"timestamp": "2020-01-01T00:00:00Z"}]}) == expr


def test_from_cql2_json_directly():
    assert from_cql2_json({"op": "=", "args": [{"property": "properties.x"}, 1.0]}) == \
        Compare("=", Prop("x"), 1)
    assert from_cql2_json({"op": "in", "args": [{"property": "x"}, [1, "a"]]}) == \
        In(Prop("x"), (1, "a"))


# --- CQL2 errors -------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "message"), [
    ("CASEI(title) = 'model'", "casei"),
    ("ACCENTI(title) = 'model'", "accenti"),
    ("A_CONTAINS(keywords, ('a'))", "a_contains"),
    ("size + 1 = 3", "arithmetic"),
    ("size * 2 > 3", "arithmetic"),
    ("lower(title) = 'x'", "lower()"),
    ("S_FOO(geometry, POINT(0 0))", "s_foo"),
])
def test_unsupported_cql2(expr, message):
    err = fails(text, expr, match="not supported")
    assert message in err.description.lower()


@pytest.mark.parametrize(("expr", "message"), [
    ("title = ", "syntax error at column 9"),
    ("((", "syntax error"),
    ("title = 'a' AND", "syntax error"),
    ("", "empty"),
    ("title", "boolean expression"),
    ("x = NULL", "is null"),
    ("T_AFTER(datetime, TIMESTAMP('garbage'))", "'garbage'"),
    ("T_AFTER(datetime, DATE('2020-13-45'))", "'2020-13-45'"),
    ("T_DURING(INTERVAL(start_datetime, end_datetime), INTERVAL('2020-01-01', '..'))",
     "properties as interval bounds are not supported"),
    ("T_INTERSECTS(datetime, INTERVAL('2021-01-01', '2020-01-01'))", "start is after the end"),
    ("T_INTERSECTS(datetime, INTERVAL('2021-01-01', 'soon'))", "'soon'"),
    ("T_AFTER(datetime, 42)", "temporal operand"),
    ("S_INTERSECTS(geometry, 'here')", "spatial operand"),
    ("S_INTERSECTS(geometry, BBOX(0, 10, 1, 5))", "south is greater than north"),
    ("S_INTERSECTS(geometry, POINT(1))", "malformed point"),
    ("x = INTERVAL('2020-01-01', '..')", "interval is only allowed in temporal"),
    ("x IN (a, 'b')", "properties in the list"),
])
def test_invalid_cql2_text(expr, message):
    fails(text, expr, match=message)


@pytest.mark.parametrize(("node", "message"), [
    ({"op": "=", "args": [{"property": "x"}]}, "expected 2 argument(s), got 1"),
    ({"op": "between", "args": [{"property": "x"}, 1]}, "expected 3 argument(s)"),
    ({"op": "and", "args": []}, "at least 1"),
    ({"op": "like", "args": [{"property": "x"}, 5]}, "pattern must be a string"),
    ({"op": "in", "args": [{"property": "x"}, "a"]}, "list of values"),
    ({"op": "=", "args": [{"property": "x"}, {"foo": 1}]}, '{"foo": 1}'),
    ({"op": "=", "args": [{"property": "x"}, ["a"]]}, "only allowed as the list of in"),
    ({"op": "s_intersects", "args": [{"property": "geometry"},
                                     {"type": "Point", "coordinates": "x"}]}, "malformed point"),
    ({"op": "t_after", "args": [{"property": "datetime"}, {"timestamp": "garbage"}]},
     "'garbage'"),
    ({"op": "t_after", "args": [{"property": "datetime"}, {"interval": ["2020-01-01"]}]},
     "[start, end]"),
    ({"op": "zz", "args": [1, 2]}, "zz() is not supported"),
    ({"op": "=", "args": [{"op": "casei", "args": [{"property": "x"}]}, "a"]}, "casei"),
    ({"op": "=", "args": [{"op": "=", "args": [1, 1]}, True]}, "cannot be used as a value"),
    ({"foo": 1}, "boolean expression"),
    ({"property": "flag"}, "boolean expression"),
    (42, "expected an object"),
])
def test_invalid_cql2_json(node, message):
    fails(cjson, node, match=message)
    fails(post, {"filter": node}, match=message)


def test_parse_filter_rejects_other_languages():
    fails(parse_filter, "x = 1", "cql-text", match="unsupported filter-lang")
    err = fails(parse_filter, {"op": "=", "args": [{"property": "x"}, 1]}, "cql2-text",
                match="must be a string")
    assert err.status == 400


# --- limits: what could crash, stall or overload the server is refused early (issue 9) -----


def test_a_limit_of_thousands_of_digits_is_above_the_maximum():
    assert get(limit="9" * 5000).limit == MAX_LIMIT
    assert get(limit="0" * 30 + "7").limit == 7
    fails(get, limit="-" + "9" * 5000, match="at least 1")
    from sharinghub_server.stac.limits import load_json

    fails(post, load_json(b'{"limit": ' + b"9" * 5000 + b"}"), match="Invalid limit")


def test_lists_are_capped():
    fails(get, ids=",".join(f"g/p{i}" for i in range(1001)), match="at most 1000")
    assert len(get(ids=",".join(f"g/p{i}" for i in range(1000))).ids) == 1000
    fails(post, {"collections": ["tools"] * 1001}, match="at most 1000")
    fails(post, {"q": [f"w{i}" for i in range(101)]}, match="at most 100")
    fails(get, q=",".join(f"w{i}" for i in range(101)), match="at most 100")


def test_cql2_text_is_bounded_before_it_reaches_the_parser():
    fails(get, filter="a = 1 OR " * 8000 + "a = 1", match="at most 65536")
    fails(get, filter="(" * 65 + "a = 1" + ")" * 65, match="64 levels deep")
    assert get(filter="(" * 64 + "a = 1" + ")" * 64).filter == Compare("=", Prop("a"), 1)
    assert get(filter="title = '" + "(" * 100 + "'").filter == Compare(
        "=", Prop("title"), "(" * 100)  # brackets in a string nest nothing
    fails(get, filter="NOT " * 33 + "a = 1", match="more than 32 NOTs")
    assert isinstance(get(filter="NOT " * 32 + "a = 1").filter, Not)
    fails(get, filter=" OR ".join(f"a = {i}" for i in range(101)), match="101 conditions")
    fails(get, filter=f"a IN ({','.join(str(i) for i in range(1001))})", match="at most 1000")
    two = " OR ".join(f"a{n} IN ({','.join(str(i) for i in range(600))})" for n in range(2))
    fails(get, filter=two, match="1200 values in IN lists")


def test_json_is_bounded_before_it_is_parsed():
    from sharinghub_server.stac.limits import load_json

    assert load_json(b"[" * 64 + b"]" * 64) is not None
    assert load_json(json.dumps({"a": "[{" * 1000, "b": '"]'})) == {"a": "[{" * 1000,
                                                                     "b": '"]'}
    for deep in (b"[" * 65 + b"]" * 65, b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
                 b"[" * 100_000):
        err = fails(load_json, deep, match="levels deep")
        assert len(err.description) < 100
    fails(load_json, b"x" * (4 * 1024 * 1024 + 1), match="too large")
    fails(load_json, b"[1, 2", match="not valid JSON")
    nested = {"op": "=", "args": [{"property": "a"}, 1]}
    for _ in range(40):
        nested = {"op": "not", "args": [nested]}
    fails(get, **{"filter-lang": "cql2-json", "filter": json.dumps(nested)},
          match="levels deep")


def test_geometries_are_capped():
    line = {"type": "LineString", "coordinates": [[i % 180, 0] for i in range(100_001)]}
    fails(post, {"intersects": line}, match="100001 points, at most 100000")
    line["coordinates"].pop()
    assert post({"intersects": line}).intersects is line
    fails(get, filter="S_INTERSECTS(geometry, LINESTRING(" + ", ".join(
        f"{i % 180} 0" for i in range(100_001)) + "))", match="at most")
