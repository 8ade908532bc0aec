"""The OpenAPI 3.0 document of the extension's API (``service-desc`` of the landing page)."""

from __future__ import annotations

from typing import Any

from .. import __version__


def _param(name: str, where: str, description: str, schema: dict | None = None,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "description": description, "required": required,
            "schema": schema or {"type": "string"}}


def _ok(description: str, media: str = "application/json",
        schema: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}
                               } if schema else {media: {}}
    return {"200": {"description": description, "content": content},
            "400": {"$ref": "#/components/responses/Error"},
            "403": {"description": "not authenticated"},
            "404": {"$ref": "#/components/responses/Error"}}


_SEARCH_PARAMS = [
    _param("collections", "query", "comma-separated collection ids"),
    _param("ids", "query", "comma-separated item ids"),
    _param("bbox", "query", "west,south,east,north (WGS84)"),
    _param("intersects", "query", "GeoJSON geometry"),
    _param("datetime", "query", "RFC 3339 instant or interval; open ends with .."),
    _param("q", "query", "free-text terms, comma-separated alternatives"),
    _param("filter", "query", "CQL2 filter"),
    _param("filter-lang", "query", "cql2-text (default) or cql2-json",
           {"type": "string", "enum": ["cql2-text", "cql2-json"]}),
    _param("sortby", "query", "+field,-field"),
    _param("limit", "query", "page size (default 10, at most 1000)",
           {"type": "integer", "minimum": 1}),
    _param("token", "query", "paging token from a next/prev link"),
]


def openapi_document(api_root: str) -> dict[str, Any]:
    cid = _param("collectionId", "path", "collection (category) id", required=True)
    item_id = _param("itemId", "path", "item id: the project's full path (may contain /)",
                     required=True)
    return {
        "openapi": "3.0.3",
        "info": {"title": "sharinghub-lab API", "version": __version__,
                 "description": "STAC API over the catalog index, crawl control and "
                                "downloads. Every path needs Jupyter authentication."},
        "servers": [{"url": api_root.rstrip("/")}],
        "security": [{"token": []}, {"cookie": []}],
        "paths": {
            "/stac": {"get": {"summary": "Landing page", "responses": _ok("STAC catalog")}},
            "/stac/conformance": {"get": {"summary": "Conformance classes",
                                          "responses": _ok("conformance")}},
            "/stac/queryables": {"get": {"summary": "Queryables (JSON Schema)",
                                         "responses": _ok("schema", "application/schema+json")}},
            "/stac/collections": {"get": {"summary": "Collections, one per category",
                                          "responses": _ok("collections")}},
            "/stac/collections/{collectionId}": {"get": {
                "summary": "A collection", "parameters": [cid], "responses": _ok("collection")}},
            "/stac/collections/{collectionId}/queryables": {"get": {
                "summary": "Queryables of a collection", "parameters": [cid],
                "responses": _ok("schema", "application/schema+json")}},
            "/stac/collections/{collectionId}/items": {"get": {
                "summary": "Items of a collection", "parameters": [cid, *_SEARCH_PARAMS],
                "responses": _ok("items", "application/geo+json", "ItemCollection")}},
            "/stac/collections/{collectionId}/items/{itemId}": {"get": {
                "summary": "One item", "parameters": [cid, item_id],
                "responses": _ok("item", "application/geo+json")}},
            "/stac/search": {
                "get": {"summary": "Item search", "parameters": _SEARCH_PARAMS,
                        "responses": _ok("items", "application/geo+json", "ItemCollection")},
                "post": {"summary": "Item search", "requestBody": {"content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Search"}}}},
                    "responses": _ok("items", "application/geo+json", "ItemCollection")},
            },
            "/index": {
                "get": {"summary": "Crawl status", "responses": _ok("status", schema="Status")},
                "post": {"summary": "Crawl now (or join the running crawl)",
                         "responses": {"202": {"description": "crawl running", "content": {
                             "application/json": {"schema": {
                                 "$ref": "#/components/schemas/Status"}}}}}},
            },
            "/download/{itemId}/-/{filePath}": {"get": {
                "summary": "A repository file of the item's project, streamed",
                "parameters": [item_id,
                               _param("filePath", "path", "file path in the repository",
                                      required=True),
                               _param("ref", "query", "branch, tag or commit"),
                               _param("Range", "header", "byte range")],
                "responses": {**_ok("the file", "application/octet-stream"),
                              "206": {"description": "partial content"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": _ok("OpenAPI")}},
        },
        "components": {
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer",
                          "description": "the Jupyter server's token (or 'token <t>')"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "_xsrf"},
            },
            "responses": {"Error": {"description": "error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {
                "Error": {"type": "object", "required": ["code", "description"], "properties": {
                    "code": {"type": "string"}, "description": {"type": "string"}}},
                "ItemCollection": {"type": "object", "required": ["type", "features"],
                                   "properties": {
                                       "type": {"type": "string", "enum": ["FeatureCollection"]},
                                       "features": {"type": "array",
                                                    "items": {"type": "object"}},
                                       "numberMatched": {"type": "integer"},
                                       "numberReturned": {"type": "integer"},
                                       "links": {"type": "array", "items": {"type": "object"}}}},
                "Search": {"type": "object", "properties": {
                    "collections": {"type": "array", "items": {"type": "string"}},
                    "ids": {"type": "array", "items": {"type": "string"}},
                    "bbox": {"type": "array", "items": {"type": "number"}},
                    "intersects": {"type": "object"},
                    "datetime": {"type": "string"},
                    "q": {"type": "array", "items": {"type": "string"}},
                    "filter": {"type": "object"},
                    "filter-lang": {"type": "string", "enum": ["cql2-json", "cql2-text"]},
                    "sortby": {"type": "array", "items": {"type": "object", "properties": {
                        "field": {"type": "string"},
                        "direction": {"type": "string", "enum": ["asc", "desc"]}}}},
                    "limit": {"type": "integer"},
                    "token": {"type": "string"}}},
                "Status": {"type": "object", "properties": {
                    "state": {"type": "string", "enum": ["idle", "running"]},
                    "progress": {"type": "object"},
                    "last_crawl": {"type": "object", "nullable": True}}},
            },
        },
    }
