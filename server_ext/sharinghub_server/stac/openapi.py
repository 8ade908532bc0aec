"""The OpenAPI 3.0 document of the extension's API (``service-desc`` of the landing page).

The search parameters (GET) and body members (POST) are made from the tables the parser reads
(:data:`.params.GET_PARAMETERS`, :data:`.params.POST_MEMBERS`): the document cannot name a
parameter the server does not read, nor miss one it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import __version__
from .params import GET_PARAMETERS, POST_MEMBERS


def _param(name: str, where: str, description: str, schema: dict | None = None,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "description": description, "required": required,
            "schema": schema or {"type": "string"}}


def _ok(description: str, media: str = "application/json",
        schema: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}
                               } if schema else {media: {}}
    error = {"$ref": "#/components/responses/Error"}
    return {"200": {"description": description, "content": content},
            "400": error, "403": error, "404": error}


def _searched(description: str) -> dict[str, Any]:
    """A search's answers: a page of items, or 503 when it took more than its time."""
    return {**_ok(description, "application/geo+json", "ItemCollection"),
            "503": {"$ref": "#/components/responses/Error"}}


def _query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A GET search parameter; arrays are comma-separated (``form``, not exploded)."""
    param = _param(name, "query", description, schema)
    if schema.get("type") == "array":
        param.update(style="form", explode=False)
    return param


_SEARCH_PARAMS = [_query_param(name, schema, description)
                  for name, (schema, description) in GET_PARAMETERS.items()]
_SEARCH_BODY = {"type": "object", "properties": {
    name: {**schema, "description": description}
    for name, (schema, description) in POST_MEMBERS.items()}}


_STR = {"type": "string"}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": required, "properties": properties}}}}


def _job() -> dict[str, Any]:
    return {"202": {"description": "the job", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"job": _STR}}}}},
        "400": {"$ref": "#/components/responses/Error"},
        "403": {"$ref": "#/components/responses/Error"},
        "404": {"$ref": "#/components/responses/Error"}}


def _refusals() -> dict[str, Any]:
    error = {"$ref": "#/components/responses/Error"}
    return {"400": error, "403": error, "404": error, "409": error, "502": error}


def openapi_document(api_root: str, collections: Sequence[str] = ()) -> dict[str, Any]:
    """The document of the API at ``api_root``; ``collections``: the server's collection ids
    (the ``collectionId`` path parameter's values), when known."""
    job_id = _param("jobId", "path", "job id, as POST dvc/pull or publish/dataset gave it",
                    required=True)
    cid = _param("collectionId", "path", "collection (category) id",
                 {"type": "string", "enum": list(collections)} if collections else None,
                 required=True)
    item_id = _param("itemId", "path", "item id: the project's full path (may contain /)",
                     required=True)
    return {
        "openapi": "3.0.3",
        "info": {"title": "sharinghub-lab API", "version": __version__,
                 "description": "STAC API over the catalog index, crawl control, downloads, "
                                "DVC pulls and publishing. Every path needs Jupyter "
                                "authentication: the server's token, or in a browser the "
                                "login cookie Jupyter sets (whose name depends on the "
                                "server), with the _xsrf cookie's value in an X-XSRFToken "
                                "header on requests that change something."},
        "servers": [{"url": api_root.rstrip("/")}],
        "security": [{"token": []}],
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
                "responses": _searched("items")}},
            "/stac/collections/{collectionId}/items/{itemId}": {"get": {
                "summary": "One item", "parameters": [cid, item_id],
                "responses": _ok("item", "application/geo+json")}},
            "/stac/search": {
                "get": {"summary": "Item search", "parameters": _SEARCH_PARAMS,
                        "responses": _searched("items")},
                "post": {"summary": "Item search", "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Search"}}}},
                    "responses": _searched("items")},
            },
            "/index": {
                "get": {"summary": "Crawl status", "responses": _ok("status", schema="Status")},
                "post": {"summary": "Crawl now (or join the running crawl)",
                         "responses": {"202": {"description": "crawl running", "content": {
                             "application/json": {"schema": {
                                 "$ref": "#/components/schemas/Status"}}}},
                             "403": {"$ref": "#/components/responses/Error"}}},
            },
            "/download/{itemId}/-/{filePath}": {"get": {
                "summary": "A repository file of the item's project, streamed",
                "parameters": [item_id,
                               _param("filePath", "path", "file path in the repository",
                                      required=True),
                               _param("ref", "query", "branch, tag or commit"),
                               _param("Range", "header", "byte range")],
                "responses": {**_ok("the file, typed by its name (else "
                                    "application/octet-stream)", "*/*"),
                              "206": {"description": "partial content", "content": {"*/*": {}}},
                              "416": {"$ref": "#/components/responses/Error"},
                              "502": {"$ref": "#/components/responses/Error"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": _ok(
                "OpenAPI", "application/vnd.oai.openapi+json;version=3.0")}},
            "/dvc/versions": {"get": {
                "summary": "An item's DVC versions (tags and the default branch), newest first",
                "parameters": [_param("item", "query", "item id", required=True)],
                "responses": _ok("versions")}},
            "/dvc/pull": {"post": {
                "summary": "Pull a version into the workspace (a job)",
                "requestBody": _body({"item": _STR, "rev": _STR, "dest": _STR}, ["item"]),
                "responses": _job()}},
            "/dvc/jobs/{jobId}": {
                "get": {"summary": "A pull or publish job", "parameters": [job_id],
                        "responses": _ok("job", schema="Job")},
                "delete": {"summary": "Cancel a job (409 once it ended)",
                           "parameters": [job_id],
                           "responses": {**_ok("job", schema="Job"),
                                         "409": {"$ref": "#/components/responses/Error"}}}},
            "/publish/new": {"post": {
                "summary": "A new project (GitLab, else the first local projects folder) with "
                           "the category's topic and README template, DVC for datasets; "
                           "indexed at once",
                "requestBody": _body({"category": _STR, "name": _STR, "namespace": _STR,
                                      "title": _STR, "description": _STR,
                                      "visibility": {"type": "string", "enum": [
                                          "private", "internal", "public"]}},
                                     ["category", "name"]),
                "responses": {"201": {"description": "the new item", "content": {
                    "application/geo+json": {}}}, **_refusals()}}},
            "/publish/dataset": {"post": {
                "summary": "Publish a folder as a new dataset version (a job): dvc add, dvc "
                           "push, commit, tag, atomic git push, re-index",
                "requestBody": _body({"item": _STR, "path": _STR, "version": _STR,
                                      "message": _STR}, ["item", "path", "version"]),
                "responses": {**_job(), **_refusals()}}},
            "/publish/metadata": {"patch": {
                "summary": "Replace the README front matter: validated as a STAC item, "
                           "committed, pushed, re-indexed",
                "requestBody": _body({"item": _STR, "front_matter": {"type": "object"}},
                                     ["item", "front_matter"]),
                "responses": {**_ok("the item", "application/geo+json"), **_refusals()}}},
            "/publish/permissions": {"get": {
                "summary": "Whether the user may publish versions of an item, and why not",
                "parameters": [_param("item", "query", "item id", required=True)],
                "responses": _ok("permissions")}},
        },
        "components": {
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer",
                          "description": "the Jupyter server's token (or 'token <t>')"},
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
                "Search": _SEARCH_BODY,
                "Job": {"type": "object", "properties": {
                    "job": _STR, "kind": {"type": "string", "enum": ["pull", "publish"]},
                    "item": _STR, "rev": {"type": "string", "nullable": True}, "dest": _STR,
                    "state": {"type": "string", "enum": [
                        "queued", "cloning", "pulling", "pushing", "done", "failed",
                        "cancelled"]},
                    "files_done": {"type": "integer"},
                    "files_total": {"type": "integer", "nullable": True},
                    "bytes_done": {"type": "integer"},
                    "bytes_total": {"type": "integer", "nullable": True},
                    "error": {"type": "string", "nullable": True},
                    "result": {"type": "object", "nullable": True}}},
                "Status": {"type": "object", "properties": {
                    "state": {"type": "string", "enum": ["idle", "running"]},
                    "progress": {"type": "object"},
                    "last_crawl": {"type": "object", "nullable": True}}},
            },
        },
    }
