"""Compact JSON as UTF-8 bytes, for what is encoded often (served pages, index rows)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def encode_json(data: Any) -> bytes:
    """Compact JSON as UTF-8 bytes. orjson is ~15x faster than ``json`` on a page of items
    (9 vs 150 us for 10 items); what it refuses (integers beyond 64 bits, non-string keys,
    lone surrogates) goes to ``json``, which writes the same content. orjson writes
    non-ASCII characters as UTF-8 and ``json`` escapes them: the same JSON. (orjson writes NaN
    and the infinities, which JSON cannot hold, as null.)"""
    try:
        return orjson.dumps(data)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, separators=(",", ":")).encode()
