"""STAC API documents: landing page, conformance, collections, items, item collections.

Core code: takes the index's relative hrefs and the API root URL of the request, returns JSON
dicts. Handlers only pick the document and write it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urljoin

from ..catalog.categories import Category
from ..catalog.collection import build_collection
from ..catalog.hrefs import absolutize, is_absolute, item_href
from ..catalog.validate import STAC_VERSION
from ..index.store import CollectionSummary

GEOJSON = "application/geo+json"
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"

STAC_API = "https://api.stacspec.org/v1.0.0"
FREE_TEXT = "https://api.stacspec.org/v1.0.0-rc.1"
OGC_FEATURES = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf"
OGC_FILTER = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf"
CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf"

#: what this API implements, and nothing more
CONFORMANCE: tuple[str, ...] = (
    f"{STAC_API}/core",
    f"{STAC_API}/collections",
    f"{STAC_API}/ogcapi-features",
    f"{STAC_API}/ogcapi-features#sort",
    f"{FREE_TEXT}/ogcapi-features#free-text",
    f"{STAC_API}/item-search",
    f"{STAC_API}/item-search#sort",
    f"{STAC_API}/item-search#filter",
    f"{FREE_TEXT}/item-search#free-text",
    f"{OGC_FEATURES}/core",
    f"{OGC_FEATURES}/oas30",
    f"{OGC_FEATURES}/geojson",
    f"{OGC_FILTER}/filter",
    f"{OGC_FILTER}/features-filter",
    f"{CQL2}/cql2-text",
    f"{CQL2}/cql2-json",
    f"{CQL2}/basic-cql2",
    f"{CQL2}/advanced-comparison-operators",
    f"{CQL2}/basic-spatial-functions",
    f"{CQL2}/temporal-functions",
)


def _link(rel: str, href: str, media_type: str = JSON, **extra: Any) -> dict[str, Any]:
    return {"rel": rel, "type": media_type, "href": href, **extra}


def landing_page(api: str, categories: tuple[Category, ...]) -> dict[str, Any]:
    """``api`` is the absolute API root, ending in ``/`` (``.../sharinghub/api/``)."""
    stac = f"{api}stac"
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "sharinghub",
        "title": "SharingHub",
        "description": "AI models, datasets and processors shared on GitLab, as a STAC catalog.",
        "conformsTo": list(CONFORMANCE),
        "links": [
            _link("self", stac),
            _link("root", stac),
            _link("conformance", f"{stac}/conformance"),
            _link("data", f"{stac}/collections"),
            _link("search", f"{stac}/search", GEOJSON, method="GET"),
            _link("search", f"{stac}/search", GEOJSON, method="POST"),
            _link(QUERYABLES_REL, f"{stac}/queryables", "application/schema+json"),
            _link("service-desc", f"{api}openapi.json", OPENAPI),
            *[_link("child", f"{stac}/collections/{quote(c.id)}", title=c.title)
              for c in categories],
        ],
    }


def collection(api: str, category: Category, summary: CollectionSummary | None) -> dict[str, Any]:
    stac = f"{api}stac"
    doc = absolutize(build_collection(category, summary), api)
    own = f"{stac}/collections/{quote(category.id)}"
    doc["links"] = [
        _link("self", own), _link("root", stac), _link("parent", stac),
        *doc["links"],
        _link(QUERYABLES_REL, f"{own}/queryables", "application/schema+json"),
    ]
    return doc


def collections(api: str, categories: tuple[Category, ...],
                summaries: dict[str, CollectionSummary]) -> dict[str, Any]:
    stac = f"{api}stac"
    return {
        "collections": [collection(api, c, summaries.get(c.id)) for c in categories],
        "links": [_link("self", f"{stac}/collections"), _link("root", stac)],
    }


#: a relative path that ``urljoin`` only appends to a base ending in ``/``: no scheme, no
#: host, no parameters (``;``), no character urlsplit strips; dot segments and empty ones
#: (``//``), which urljoin removes, are checked apart
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_~%!$&'()*+,=@-][A-Za-z0-9_~%!$&'()*+,=@./-]*")
#: a query urljoin keeps as it is (not empty: an empty one it drops)
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9_~%!$&'()*+,;=@./?:-]+")


def _absolute(href: str, base: str) -> str:
    """What :func:`~..catalog.hrefs.absolutize` makes of ``href`` against ``base`` (ending
    in ``/``), without parsing the URLs it need not parse: every href of every page goes
    through here (a page of 10 items: dozens of them)."""
    if href.startswith(("https://", "http://")):
        return href
    path, sep, query = href.partition("?")
    if (_PLAIN_PATH.fullmatch(path) and "/." not in path and "//" not in path
            and (not sep or _PLAIN_QUERY.fullmatch(query))):
        return base + href
    return href if is_absolute(href) else urljoin(base, href)


def _absolutize(obj: dict[str, Any], base: str) -> dict[str, Any]:
    """:func:`~..catalog.hrefs.absolutize`, faster (same result)."""
    out = dict(obj)
    if "links" in out:
        out["links"] = [link if (href := _absolute(link["href"], base)) is link["href"]
                        else {**link, "href": href} for link in out["links"]]
    if "assets" in out:
        out["assets"] = {key: a if (href := _absolute(a["href"], base)) is a["href"]
                         else {**a, "href": href} for key, a in out["assets"].items()}
    return out


def item(api: str, stored: dict[str, Any]) -> dict[str, Any]:
    """A stored item as served: absolute hrefs, and self/parent/root links."""
    stac = f"{api}stac"
    doc = _absolutize(stored, api if api.endswith("/") else api + "/")
    cid = stored.get("collection", "")
    doc["links"] = [
        _link("self", f"{api}{item_href(cid, stored['id'])}", GEOJSON),
        _link("parent", f"{stac}/collections/{quote(cid)}"),
        _link("root", stac),
        *[link for link in doc["links"] if link.get("rel") not in ("self", "parent", "root")],
    ]
    return doc


def item_collection(api: str, items: list[dict[str, Any]], matched: int,
                    links: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [item(api, i) for i in items],
        "numberMatched": matched,
        "numberReturned": len(items),
        "links": [_link("root", f"{api}stac"), *links],
    }


_JSON_TYPES = {"string", "number", "integer", "boolean", "array", "object"}


def queryables(api: str, found: dict[str, str], collection_id: str | None) -> dict[str, Any]:
    """JSON Schema of what a filter can name, built from what the index holds."""
    props: dict[str, Any] = {
        "id": {"title": "Item id", "type": "string"},
        "collection": {"title": "Collection", "type": "string"},
        "geometry": {"title": "Footprint", "$ref": "https://geojson.org/schema/Geometry.json"},
        "datetime": {"title": "Last activity", "type": "string", "format": "date-time"},
        "start_datetime": {"type": "string", "format": "date-time"},
        "end_datetime": {"type": "string", "format": "date-time"},
    }
    for name, kind in sorted(found.items()):
        if name not in props:
            props[name] = {"type": kind if kind in _JSON_TYPES else "string"}
    own = (f"{api}stac/collections/{quote(collection_id)}/queryables" if collection_id
           else f"{api}stac/queryables")
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": own,
        "type": "object",
        "title": f"Queryables of {collection_id}" if collection_id else "Queryables",
        "properties": props,
        "additionalProperties": True,
    }
