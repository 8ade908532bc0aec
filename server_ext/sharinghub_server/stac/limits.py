"""How big a search may be, checked before anything expensive or fragile sees it.

The CQL2 parser (Rust) overflows its stack and takes the whole server down on deeply nested
text; ``json.loads`` raises RecursionError on deep nesting and refuses integers of more than
4300 digits; SQLite's parser and planner give up on long OR chains and deep NOTs; shapely takes
seconds on huge polygons. The limits here are generous for real searches and keep each of
those well out of reach.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import StacError

#: bytes of a POST /search body (Jupyter's own limit is hundreds of MiB)
MAX_BODY_BYTES = 4 * 1024 * 1024
#: characters of a CQL2 text filter (or of a CQL2 JSON filter in a query string)
MAX_FILTER_CHARS = 64 * 1024
#: nesting of parentheses/brackets in a filter, and of arrays/objects in a JSON body
MAX_DEPTH = 64
#: NOTs in a CQL2 text filter (each one nests, parentheses or not)
MAX_NOTS = 32
#: conditions (comparisons, LIKE, IN, BETWEEN, IS NULL, spatial and temporal tests)
MAX_CONDITIONS = 100
#: values in IN lists (all of a filter's together), and entries of ``ids``/``collections``
MAX_VALUES = 1000
#: positions (points) of an ``intersects`` geometry or a geometry literal
MAX_POSITIONS = 100_000
#: free-text terms of ``q``
MAX_TERMS = 100

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
#: JSON with only its brackets, all spelled [ ] (a mismatch is json.loads's to report)
_BRACKETS_ONLY = (bytes.maketrans(b"{}", b"[]"),
                  bytes(b for b in range(256) if b not in b"[]{}"))
#: a \\u escape of a UTF-16 surrogate (half of a pair, or alone: json.loads takes both)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_CQL2_STRING = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_NOT = re.compile(r"\bnot\b", re.I)


def _json_too_deep(data: bytes, max_depth: int) -> bool:
    """Whether JSON text nests deeper than ``max_depth``, without parsing it: strings out,
    then each pass over the brackets removes the innermost level (C speed, no recursion)."""
    table, others = _BRACKETS_ONLY
    brackets = _JSON_STRING.sub(b"", data).translate(table, others)
    for level in range(max_depth):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            # all gone, or unbalanced (not JSON, but json.loads would still recurse into
            # every bracket left open)
            return level + brackets.count(b"[") > max_depth
        brackets = shorter
    return bool(brackets)


def _int(text: str) -> int | float:
    """A JSON integer; beyond Python's 4300-digit conversion limit, a float (inf when huge),
    which the checks downstream refuse as they refuse any float where an integer belongs."""
    return int(text) if len(text) < 4000 else float(text)


def load_json(data: bytes | str, what: str = "the request body",
              max_bytes: int = MAX_BODY_BYTES) -> Any:
    """JSON text as Python values; StacError (400) when it is too big, nested deeper than
    :data:`MAX_DEPTH` or not JSON."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise StacError(f"{what} is too large: {len(raw)} bytes, at most {max_bytes}")
    if _json_too_deep(raw, MAX_DEPTH):
        raise StacError(f"{what} is nested more than {MAX_DEPTH} levels deep")
    try:
        value = json.loads(raw or b"null", parse_int=_int)
    except (ValueError, RecursionError) as exc:
        raise StacError(f"{what} is not valid JSON ({exc})") from None
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(value):
        raise StacError(f"{what} is not valid JSON (a \\u escape of a lone UTF-16 "
                        "surrogate)")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """Whether decoded JSON holds a lone surrogate (``"\\ud800"``), which json.loads lets
    through and which no UTF-8 consumer (SQLite, the answer's encoder) can take."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def check_filter_text(text: str) -> None:
    """A CQL2 text filter the parser can take: not too long, not nested too deep (string
    literals aside, whose brackets nest nothing)."""
    if len(text) > MAX_FILTER_CHARS:
        raise StacError(f"Invalid filter: {len(text)} characters, at most {MAX_FILTER_CHARS}")
    code = _CQL2_STRING.sub("''", text)
    depth = deepest = 0
    for ch in re.findall(r"[()\[\]]", code):
        depth += 1 if ch in "([" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise StacError(f"Invalid filter: nested more than {MAX_DEPTH} levels deep")
    if len(_NOT.findall(code)) > MAX_NOTS:
        raise StacError(f"Invalid filter: more than {MAX_NOTS} NOTs")


def check_list(values: list, what: str) -> list:
    """A list parameter (``ids``, ``collections``) of at most :data:`MAX_VALUES` entries."""
    if len(values) > MAX_VALUES:
        raise StacError(f"Invalid {what}: {len(values)} values, at most {MAX_VALUES}")
    return values
