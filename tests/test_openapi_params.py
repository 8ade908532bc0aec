"""The OpenAPI document against what the server reads, for every route: the search
parameters (GET) and body members (POST) the parser acts on are documented under their real
names with their types, and nothing else is; every route is documented with the methods its
handler has; the other handlers' query parameters are the documented ones. Last, a real
server pages with the paging parameter its document names."""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sharinghub_server.handlers import routes
from sharinghub_server.stac.errors import StacError
from sharinghub_server.stac.openapi import openapi_document
from sharinghub_server.stac.params import (
    GET_PAGING_PARAM,
    GET_PARAMETERS,
    POST_MEMBERS,
    search_from_get,
    search_from_post,
)

KNOWN = ["ai-model", "dataset"]
DOC = openapi_document("http://localhost/sharinghub/api/")
GET_SEARCH_PATHS = ("/stac/search", "/stac/collections/{collectionId}/items")

#: per GET parameter: a value the parser must act on, and one of a wrong type it must refuse
#: (None: a string parameter, any text is a value of its type)
GET_SAMPLES: dict[str, tuple[str, str | None]] = {
    "collections": ("ai-model,dataset", None),
    "ids": ("a/b,c/d", None),
    "bbox": ("0,40,10,50", "west,south,east,north"),
    "intersects": ('{"type": "Point", "coordinates": [5, 45]}', None),
    "datetime": ("2020-01-01/..", None),
    "q": ("flood,water", None),
    "filter": ("title = 'x'", None),
    "filter-lang": ("cql2-json", "xml"),
    "filter-crs": ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "EPSG:4326"),
    "sortby": ("-datetime,title", None),
    "limit": ("5", "five"),
    "cursor": ("opaque", None),
}
#: per POST member: a value the parser must act on, and one of a wrong type it must refuse
POST_SAMPLES: dict[str, tuple[Any, Any]] = {
    "collections": (["ai-model"], "ai-model"),
    "ids": (["a/b"], [1]),
    "bbox": ([0, 40, 10, 50], "0,40,10,50"),
    "intersects": ({"type": "Point", "coordinates": [5, 45]}, "POINT(5 45)"),
    "datetime": ("2020-01-01/..", 2020),
    "q": (["flood"], 3),
    "filter": ({"op": "=", "args": [{"property": "title"}, "x"]}, 3),
    "filter-lang": ("cql2-text", "xml"),
    "filter-crs": ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "EPSG:4326"),
    "sortby": ([{"field": "datetime", "direction": "desc"}], {"field": "datetime"}),
    "limit": (5, "5"),
    "token": ("opaque", 5),
}
#: what a parameter needs beside it to have an effect (filter-lang says how filter is read)
GET_WITH = {"filter-lang": {"filter": '{"op": "=", "args": [{"property": "title"}, "x"]}'}}
POST_WITH = {"filter-lang": {"filter": "title = 'x'"}}


def _get(args: dict[str, str]):
    return search_from_get(args, known_collections=KNOWN)


def _post(body: dict[str, Any]):
    return search_from_post(body, known_collections=KNOWN)


def _outcome(parse: Any, args: Any) -> Any:
    """The query parsed, or the error's text: what a client sees of its parameters."""
    try:
        return parse(args)
    except StacError as exc:
        return f"error: {exc}"


def _documented_query(path: str, method: str = "get") -> dict[str, dict]:
    return {p["name"]: p for p in DOC["paths"][path][method].get("parameters", [])
            if p["in"] == "query"}


def test_the_get_search_routes_document_exactly_the_parameters_the_parser_reads():
    assert set(GET_SAMPLES) == set(GET_PARAMETERS)  # a new parameter needs a sample here
    for path in GET_SEARCH_PATHS:
        documented = _documented_query(path)
        assert set(documented) == set(GET_PARAMETERS), path
        for name, (schema, _description) in GET_PARAMETERS.items():
            assert documented[name]["schema"] == schema
            if schema["type"] == "array":  # sent comma-separated
                assert (documented[name]["style"], documented[name]["explode"]) == (
                    "form", False)
    # the paging parameter is the one the parser reads (Jupyter takes ``token`` for itself)
    assert GET_PAGING_PARAM == "cursor" and "cursor" in _documented_query("/stac/search")
    assert "token" not in _documented_query("/stac/search")
    assert _get({"cursor": "abc"}).token == "abc"
    assert _get({"token": "abc"}).token is None


@pytest.mark.parametrize("name", sorted(GET_PARAMETERS))
def test_every_documented_get_parameter_is_read_with_its_documented_type(name):
    schema = GET_PARAMETERS[name][0]
    good, wrong = GET_SAMPLES[name]
    base = GET_WITH.get(name, {})
    if name == "filter-crs":  # the only value it has changes nothing: a wrong one is refused
        _get({name: good})
    else:
        assert _outcome(_get, {**base, name: good}) != _outcome(_get, base), (
            f"{name} was not read")
    if wrong is not None:
        with pytest.raises(StacError):
            _get({**base, name: wrong})
    query = _get({**base, name: good})
    if schema["type"] == "array" and name in ("collections", "ids", "q"):
        assert getattr(query, name) == good.split(",")
    if schema["type"] == "integer":
        assert getattr(query, name) == int(good)


@pytest.mark.parametrize("name", ["token", "page", "next", "offset", "sort", "fields",
                                  "filter_lang", "Limit"])
def test_a_parameter_the_document_does_not_name_changes_nothing(name):
    assert name not in GET_PARAMETERS
    assert _get({name: "2"}) == _get({})


def test_the_post_search_body_documents_exactly_the_members_the_parser_reads():
    assert set(POST_SAMPLES) == set(POST_MEMBERS)
    body = DOC["paths"]["/stac/search"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/Search"}
    properties = DOC["components"]["schemas"]["Search"]["properties"]
    assert set(properties) == set(POST_MEMBERS)
    for name, (schema, _description) in POST_MEMBERS.items():
        assert {k: v for k, v in properties[name].items() if k != "description"} == schema


@pytest.mark.parametrize("name", sorted(POST_MEMBERS))
def test_every_documented_post_member_is_read_with_its_documented_type(name):
    good, wrong = POST_SAMPLES[name]
    base = POST_WITH.get(name, {})
    if name == "filter-crs":
        _post({name: good})
    else:
        assert _outcome(_post, {**base, name: good}) != _outcome(_post, base), (
            f"{name} was not read")
    with pytest.raises(StacError):
        _post({**base, name: wrong})
    assert _post({"cursor": "abc", "page": 2}) == _post({})


# --- every route ---------------------------------------------------------------------------

_API = "/sharinghub/api"


def _route_path(pattern: str) -> str:
    """A route's regex as the document's path template, with ``{}`` for each group."""
    path = pattern[len(_API):] if pattern.startswith(_API) else pattern
    path = re.sub(r"\([^)]*\)", "{}", path)
    return path.removesuffix("/?") or "/"


def _doc_path(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", template)


def _handler_methods(cls: type) -> set[str]:
    """HTTP methods the handler implements (defined in this project's code)."""
    found = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("sharinghub_server"):
            continue
        for method in ("get", "post", "put", "patch", "delete"):
            if method in vars(klass):
                found.add(method)
    return found


def _arguments_read(cls: type, method: str) -> set[str]:
    """Query parameters a handler method reads by name (``get_argument("x", ...)``)."""
    for klass in cls.__mro__:
        if method in vars(klass):
            tree = ast.parse(textwrap.dedent(inspect.getsource(vars(klass)[method])))
            return {node.args[0].value for node in ast.walk(tree)
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("get_argument", "get_query_argument")
                    and node.args and isinstance(node.args[0], ast.Constant)}
    return set()


def test_every_route_is_documented_with_its_methods_and_query_parameters():
    # (the last route answers a JSON 404 for every other path under the API: no endpoint)
    api_routes = {_route_path(pattern): handler for pattern, handler in routes()
                  if pattern.startswith(_API) and handler.__name__ != "NotFoundHandler"}
    documented = {_doc_path(path): (path, ops) for path, ops in DOC["paths"].items()}
    assert set(api_routes) == set(documented)
    for path, handler in api_routes.items():
        template, ops = documented[path]
        assert set(ops) == _handler_methods(handler), template
        for method in ops:
            if template in GET_SEARCH_PATHS and method == "get":
                continue  # the search parser's table, checked above
            assert set(_documented_query(template, method)) == _arguments_read(
                handler, method), f"{method.upper()} {template}"


# --- a real server ------------------------------------------------------------------------


async def test_a_client_pages_with_the_parameter_the_document_names(jp_fetch):
    from tests.conftest import wait_for_crawl

    await wait_for_crawl(jp_fetch)
    doc = json.loads((await jp_fetch("sharinghub", "api", "openapi.json")).body)
    (paging,) = [p["name"] for p in doc["paths"]["/stac/search"]["get"]["parameters"]
                 if "paging" in p["description"]]
    first = json.loads((await jp_fetch("sharinghub", "api", "stac", "search",
                                       params={"limit": "2"})).body)
    (link,) = [lk for lk in first["links"] if lk["rel"] == "next"]
    cursor = parse_qs(urlsplit(link["href"]).query)[paging][0]
    second = json.loads((await jp_fetch("sharinghub", "api", "stac", "search",
                                        params={"limit": "2", paging: cursor})).body)
    ids = [f["id"] + f["collection"] for f in first["features"]]
    more = [f["id"] + f["collection"] for f in second["features"]]
    assert len(ids) == 2 and more and not set(ids) & set(more)
