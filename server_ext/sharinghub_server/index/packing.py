"""Compressed JSON texts for the index's big columns (item documents, properties, geometries,
crawler states): raw deflate with a preset dictionary per kind of text, since each text is small
(a few hundred bytes, too few for deflate to learn from) but mostly made of the same keys and
boilerplate as every other one of its kind - which the dictionary then codes in a few bits.

A packed value is a BLOB: one format byte (which dictionary), then the deflate stream. A TEXT
value is stored as it is (schema 2 wrote every JSON as TEXT): :func:`unpack` takes both. The
dictionaries are part of the file format: never change one, add another format byte.
"""

from __future__ import annotations

import json
import zlib

_EPOCH = "2020-01-01T00:00:00Z"


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


#: the rest of an item (all but its properties and geometry)
REST = 1
#: an item's properties
PROPS = 2
#: a GeoJSON geometry
GEOMETRY = 3
#: a project's crawler state
STATE = 4

_DICTS: dict[int, bytes] = {
    REST: _compact({
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": [
            "https://stac-extensions.github.io/mlm/v1.4.0/schema.json",
            "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
            "https://stac-extensions.github.io/file/v2.1.0/schema.json",
            "https://stac-extensions.github.io/scientific/v1.0.0/schema.json",
            "https://stac-extensions.github.io/version/v1.2.0/schema.json",
            "https://stac-extensions.github.io/label/v1.0.1/schema.json"],
        "id": "", "collection": "", "geometry": None, "bbox": [], "properties": None,
        "links": [
            {"rel": "self", "href": "https://", "type": "application/geo+json"},
            {"rel": "parent", "href": "", "type": "application/json"},
            {"rel": "collection", "href": "", "type": "application/json"},
            {"rel": "root", "href": "", "type": "application/json"},
            {"rel": "derived_from", "href": "", "type": "application/json", "title": ""},
            {"rel": "license", "href": "/-/blob/main/LICENSE", "title": ""},
            {"rel": "preview", "href": "", "type": "image/png"},
            {"rel": "cite-as", "href": "https://doi.org/"},
            {"rel": "mlflow:model", "href": "", "title": ""}],
        "assets": {
            "readme": {"href": "/-/raw/main/README.md", "type": "text/markdown",
                       "roles": ["metadata"], "title": "README"},
            "archive": {"href": "/-/archive/main/-main.zip", "type": "application/zip",
                        "roles": ["source"]},
            "release": {"href": "", "type": "application/zip", "roles": ["source"]},
            "preview": {"href": "", "type": "image/png", "roles": ["thumbnail"]},
            "data": {"href": "", "type": "image/tiff; application=geotiff",
                     "roles": ["data"], "file:size": 0, "file:checksum": "d50110",
                     "dvc:md5": "", "dvc:nfiles": 0},
            "model": {"href": "", "type": "application/octet-stream",
                      "roles": ["mlm:model"], "mlm:artifact_type": ""}},
    }),
    PROPS: _compact({
        "title": "", "description": "", "keywords": [], "datetime": _EPOCH,
        "start_datetime": _EPOCH, "end_datetime": _EPOCH, "created": _EPOCH,
        "updated": _EPOCH, "license": "", "license-url": "", "providers": [
            {"name": "", "roles": ["producer", "host", "licensor", "processor"],
             "url": "https://"}],
        "sharinghub:id": 0, "sharinghub:path": "", "sharinghub:stars": 0,
        "sharinghub:default-branch": "main", "sharinghub:dvc-init": "disable",
        "sharinghub:private": False, "eo:cloud_cover": 0, "eo:bands": [],
        "sci:doi": "", "sci:citation": "", "mlm:name": "", "mlm:architecture": "",
        "mlm:tasks": ["semantic-segmentation", "classification"], "mlm:framework": "",
        "mlm:framework_version": "", "mlm:input": [], "mlm:output": [],
        "null": None, "true": True, "false": False,
    }) + b" the model data for and of with sentinel from images training segmentation dataset",
    GEOMETRY: b'{"type":"Point","coordinates":[]}{"type":"MultiPolygon","coordinates":[[[['
              b'{"type":"Polygon","coordinates":[[[-180.0,-90.0],[180.0,90.0],[0.0,0.0]]]}',
    STATE: _compact({"fingerprint": "", "id": "", "path": "", "default_branch": "main",
                     "last_activity_at": _EPOCH, "created_at": _EPOCH, "topics": [],
                     "readme": "", "files": [], "tags": [], "head": "", "stars": 0}),
}


#: a 4 KiB window: texts are small, and a compressor with a 32 KiB one costs ten times as
#: much to set up (a dictionary must fit in the window, less 262 bytes)
_WINDOW_BITS = 12


#: a compressor per kind, its dictionary loaded: each pack starts from a copy (loading the
#: dictionary anew was an eighth of the time packing took)
_PACKERS = {kind: zlib.compressobj(6, zlib.DEFLATED, -_WINDOW_BITS, 5, zlib.Z_DEFAULT_STRATEGY,
                                   zdict) for kind, zdict in _DICTS.items()}


def pack(text: str | bytes, kind: int) -> bytes:
    """``text`` (JSON, or its UTF-8 bytes) compressed with the dictionary of its kind."""
    packer = _PACKERS[kind].copy()
    data = text.encode() if isinstance(text, str) else text
    return bytes((kind,)) + packer.compress(data) + packer.flush()


def unpack(value: bytes | str | None) -> str | None:
    """The text :func:`pack` packed; a TEXT value (or NULL) as it is."""
    if value is None or isinstance(value, str):
        return value
    zdict = _DICTS.get(value[0]) if value else None
    if zdict is None:
        raise ValueError("a stored value of an unknown format")
    unpacker = zlib.decompressobj(-15, zdict)  # (reads any window up to 32 KiB)
    return (unpacker.decompress(value[1:]) + unpacker.flush()).decode()


def sql_unpack(value: bytes | str | None) -> str | None:
    """SQL ``sh_json(column)``: the JSON text of a packed (or plain) column, NULL for
    anything else (an exception escaping a SQL function would abort the whole query)."""
    try:
        return unpack(value) if isinstance(value, (bytes, str)) else None
    except (ValueError, zlib.error, UnicodeDecodeError):
        return None
