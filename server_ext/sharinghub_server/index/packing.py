"""Compressed JSON texts for the index's big columns (item documents, properties, geometries,
crawler states): zstd with a raw-content dictionary per kind of text, since each text is small
(a few hundred bytes, too few for a compressor to learn from) but mostly made of the same keys
and boilerplate as every other one of its kind - which the dictionary then codes in a few bits.

A packed value is a BLOB: one format byte (which dictionary, which compressor), then the
compressed frame. Values written before zstd are raw deflate streams with the same
dictionaries (format byte = the kind); a TEXT value is stored as it is (schema 2 wrote every
JSON as TEXT): :func:`unpack` takes all three. zstd packs the texts of a 100,000-item build
about three times as fast as deflate did (21 against 59 us per item; 5.9 s of the build), and
unpacks them two to four times as fast, for about 80 more bytes per item. JSON values are
packed by :func:`pack_json`, whose format byte also says whether orjson may read the text
back (:data:`_ZSTD_ORJSON`). The dictionaries are part of the file format: never change one,
add another format byte.
"""

from __future__ import annotations

import json
import threading
import zlib
from typing import Any

import orjson
import zstandard

from ..jsontext import encode_json

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


#: a zstd value's format byte is its kind's plus this (a deflate value's is the kind)
_ZSTD = 16
#: ... or plus this, for a JSON text orjson wrote (:func:`pack_json`): it holds no integer
#: beyond 64 bits, which orjson refuses to write and would read back as a float, so orjson
#: reads it back too (twice as fast as ``json``: an item's three texts in ~13 us, not ~25)
_ZSTD_ORJSON = 32
#: zstd's level 3 (its default) packed as fast as level 1 and smaller, 5 a third slower
_LEVEL = 3

#: the dictionaries digested once (read-only: threads share them)
_ZSTD_DICTS = {kind: zstandard.ZstdCompressionDict(zdict, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
               for kind, zdict in _DICTS.items()}
for _zdict in _ZSTD_DICTS.values():
    _zdict.precompute_compress(level=_LEVEL)

#: a thread's compressors and decompressors (zstd contexts serve one thread at a time)
_local = threading.local()


def _packer(kind: int) -> zstandard.ZstdCompressor:
    packers = getattr(_local, "packers", None)
    if packers is None:
        packers = _local.packers = {
            k: zstandard.ZstdCompressor(level=_LEVEL, dict_data=d, write_checksum=False,
                                        write_dict_id=False)
            for k, d in _ZSTD_DICTS.items()}
    return packers[kind]


def _unpacker(kind: int) -> zstandard.ZstdDecompressor:
    unpackers = getattr(_local, "unpackers", None)
    if unpackers is None:
        unpackers = _local.unpackers = {k: zstandard.ZstdDecompressor(dict_data=d)
                                        for k, d in _ZSTD_DICTS.items()}
    return unpackers[kind]


def pack(text: str | bytes, kind: int) -> bytes:
    """``text`` (JSON, or its UTF-8 bytes) compressed with the dictionary of its kind (the
    frame records its size: :func:`unpack` then allocates just that)."""
    data = text.encode() if isinstance(text, str) else text
    return bytes((kind + _ZSTD,)) + _packer(kind).compress(data)


def pack_json(value: Any, kind: int) -> bytes:
    """``value`` as compact JSON, packed as :func:`pack` packs a text; written by orjson, and
    marked so, unless orjson refuses it (an integer beyond 64 bits, a key that is no
    string): then as :func:`~..jsontext.encode_json` writes what orjson refuses."""
    try:
        data = orjson.dumps(value)
    except TypeError:  # (orjson.JSONEncodeError)
        return pack(encode_json(value), kind)
    return bytes((kind + _ZSTD_ORJSON,)) + _packer(kind).compress(data)


def unpack_json(value: bytes | str | None) -> Any:
    """The value of a packed (or plain) JSON column; None for NULL."""
    if isinstance(value, bytes) and value and value[0] - _ZSTD_ORJSON in _DICTS:
        return orjson.loads(_unpacker(value[0] - _ZSTD_ORJSON).decompress(value[1:]))
    text = unpack(value)
    return json.loads(text) if text is not None else None


def unpack(value: bytes | str | None) -> str | None:
    """The text :func:`pack` or :func:`pack_json` packed (now or before zstd); a TEXT value
    (or NULL) as it is."""
    if value is None or isinstance(value, str):
        return value
    kind = value[0] if value else 0
    if kind - _ZSTD in _DICTS:
        return _unpacker(kind - _ZSTD).decompress(value[1:]).decode()
    if kind - _ZSTD_ORJSON in _DICTS:
        return _unpacker(kind - _ZSTD_ORJSON).decompress(value[1:]).decode()
    zdict = _DICTS.get(kind)
    if zdict is None:
        raise ValueError("a stored value of an unknown format")
    unpacker = zlib.decompressobj(-15, zdict)  # (reads any window up to 32 KiB)
    return (unpacker.decompress(value[1:]) + unpacker.flush()).decode()


def sql_unpack(value: bytes | str | None) -> str | None:
    """SQL ``sh_json(column)``: the JSON text of a packed (or plain) column, NULL for
    anything else (an exception escaping a SQL function would abort the whole query)."""
    try:
        return unpack(value) if isinstance(value, (bytes, str)) else None
    except (ValueError, zlib.error, zstandard.ZstdError, UnicodeDecodeError):
        return None
