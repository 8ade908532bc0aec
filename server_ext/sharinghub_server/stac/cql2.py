"""CQL2 filters (text or JSON) -> the index's :data:`Expr` trees.

Parsing is the ``cql2`` package's job (a Rust parser; it also normalises operator case,
``!=``, ``IS NOT NULL``, timestamps with offsets, WKT -> GeoJSON). Its JSON output is then
converted here, which is also where everything the store cannot evaluate (functions,
``casei``/``accenti``, array operators, arithmetic) is refused with a 400 naming it - rather
than being silently mis-evaluated.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from typing import Any

# absolute: this module is stac/cql2.py, the parser is the top-level ``cql2`` package
import cql2

from ..index.query import (
    TEMPORAL_OPS,
    And,
    Between,
    Compare,
    Expr,
    In,
    Interval,
    IsNull,
    Like,
    Not,
    Or,
    Prop,
    Spatial,
    Temporal,
)
from .limits import (
    MAX_CONDITIONS,
    MAX_FILTER_CHARS,
    MAX_VALUES,
    check_filter_text,
    load_json,
)
from .params import (
    FILTER_LANGS,
    StacError,
    _show,
    bbox_polygon,
    check_bbox,
    check_geometry,
    day_end,
    day_start,
    parse_date,
    parse_instant,
    parse_timestamp,
)

COMPARISON_OPS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
SPATIAL_OPS = ("s_intersects", "s_disjoint", "s_within", "s_contains", "s_equals",
               "s_touches", "s_overlaps", "s_crosses")
#: the boolean-valued operators understood here (lower case)
_PREDICATES = {*COMPARISON_OPS, "and", "or", "not", "like", "in", "between", "isnull",
               *SPATIAL_OPS, *TEMPORAL_OPS}


def parse_filter(value: str | dict | bool, lang: str) -> Expr:
    """A ``filter`` parameter in ``filter-lang`` (``cql2-text``: a string; ``cql2-json``: an
    object, or its JSON text as in a GET query string) as an Expr tree."""
    if lang not in FILTER_LANGS:
        raise StacError(f"Unsupported filter-lang {_show(lang)}: expected 'cql2-text' or "
                        "'cql2-json'")
    if lang == "cql2-text":
        if not isinstance(value, str):
            raise StacError("Invalid filter: a cql2-text filter must be a string (for a JSON "
                            "object, set filter-lang to cql2-json)")
        if not value.strip():
            raise StacError("Invalid filter: it is empty")
        check_filter_text(value)  # before the parser, which crashes the process on deep input
        try:
            node = cql2.parse_text(value).to_json()
        except Exception as exc:  # cql2.ParseError, and whatever else the Rust side raises
            raise StacError(f"Invalid CQL2 text filter: {_text_error(exc)}") from None
        return from_cql2_json(node)

    if isinstance(value, str):
        try:
            value = load_json(value, "the filter", max_bytes=MAX_FILTER_CHARS)
        except StacError as exc:
            # text that is not JSON at all is likely CQL2 text sent with the wrong language
            hint = ("" if value.lstrip()[:1] in ("{", "[")
                    else "; for CQL2 text, set filter-lang to cql2-text")
            raise StacError(f"Invalid filter: {exc.description}{hint}") from None
    if not isinstance(value, (dict, bool)):
        raise StacError(f"Invalid CQL2 JSON filter {_show(value)}: expected an object")
    try:
        node = cql2.parse_json(json.dumps(value)).to_json()
    except Exception as exc:
        error = _first_line(exc)
    else:
        return from_cql2_json(node)
    # the parser's messages on JSON ("did not match any variant of untagged enum Expr") say
    # little: converting the input as given usually finds the precise fault
    from_cql2_json(value)
    raise StacError(f"Invalid CQL2 JSON filter: {error}")


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


#: the parser's grammar rules, as a user would name what was expected instead
_RULE_WORDS = {
    "EOI": "the end of the filter", "Expr": "an expression", "Identifier": "a property",
    "GEOMETRY": "a geometry", "Negative": "a number", "DECIMAL": "a number",
    "Double": "a number", "SingleQuotedString": "a 'string'", "True": "TRUE or FALSE",
    "False": "TRUE or FALSE", "Null": "NULL", "Array": "a list", "UnaryNot": "NOT",
    "NotFlag": "NOT", "ExpressionInParentheses": "( )", "And": "AND", "Or": "OR",
    **dict.fromkeys(("Add", "Subtract", "Multiply", "Divide", "Modulo", "Power"),
                    "an arithmetic operator"),
    **dict.fromkeys(("Eq", "Gt", "GtEq", "Lt", "LtEq", "NotEq"), "a comparison (= <> < >)"),
    "IsNullPostfix": "IS NULL",
}


def _text_error(exc: Exception) -> str:
    """One line out of the parser's multi-line, caret-drawing message: where, what is there,
    and what was expected, in words rather than the parser's grammar rule names."""
    text = str(exc)
    where = re.search(r"-->\s*(\d+):(\d+)", text)
    if where is None:
        return _first_line(exc)
    line, column = (int(n) for n in where.groups())
    source = re.search(rf"^\s*{line} \| ?(.*)$", text, re.MULTILINE)
    rest = source[1][column - 1:] if source else ""
    found = f"at {_show(rest, 20)}" if rest.strip() else "at the end"
    position = f"column {column}" if line == 1 else f"line {line}, column {column}"
    message = f"syntax error at {position} ({found})"
    expected = re.search(r"^\s*=\s*expected (.+?)\s*$", text, re.MULTILINE)
    if expected:
        rules = re.split(r",\s*(?:or\s+)?|\s+or\s+", expected[1])
        words = list(dict.fromkeys(_RULE_WORDS.get(rule, rule) for rule in rules if rule))
        message += ": expected " + (", ".join(words[:-1]) + " or " + words[-1]
                                    if len(words) > 1 else words[0])
    return message


# --- conversion -----------------------------------------------------------------------------


def from_cql2_json(node: Any) -> Expr:
    """A CQL2 JSON boolean expression (as the ``cql2`` package outputs it) as an Expr tree;
    StacError for what is malformed, not supported, or too big."""
    expr = _boolean(node)
    _check_size(expr)
    return expr


def _check_size(expr: Any) -> None:
    """At most MAX_CONDITIONS conditions and MAX_VALUES values in IN lists: beyond, the index
    spends seconds preparing the query, or its SQL parser gives up."""
    conditions = values = 0
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, (And, Or)):
            stack.extend(node.args)
        elif isinstance(node, Not):
            stack.append(node.arg)
        elif not isinstance(node, bool):
            conditions += 1
            values += len(node.values) if isinstance(node, In) else 0
    if conditions > MAX_CONDITIONS:
        raise StacError(f"Invalid CQL2 filter: {conditions} conditions, at most "
                        f"{MAX_CONDITIONS}")
    if values > MAX_VALUES:
        raise StacError(f"Invalid CQL2 filter: {values} values in IN lists, at most "
                        f"{MAX_VALUES}")


def _op_of(node: dict) -> str:
    op = node.get("op")
    if not isinstance(op, str):
        raise StacError(f"Invalid CQL2 expression {_show(node)}: 'op' must be a string")
    return op


def _args(node: dict, op: str, count: int | None = None, at_least: int = 0) -> list:
    args = node.get("args")
    if not isinstance(args, list):
        raise StacError(f"Invalid CQL2 expression {_show(node)}: 'args' must be an array")
    if (count is not None and len(args) != count) or len(args) < at_least:
        expected = count if count is not None else f"at least {at_least}"
        raise StacError(f"Invalid CQL2 '{op}': expected {expected} argument(s), "
                        f"got {len(args)}")
    return args


def _unsupported(op: str) -> StacError:
    lower = op.lower()
    if lower in ("casei", "accenti"):
        what = f"{op.upper()}() (case/accent-insensitive comparison)"
    elif lower.startswith("a_"):
        what = f"the array operator {op.upper()}"
    elif lower in ("+", "-", "*", "/", "%", "^", "div"):
        what = f"arithmetic ({op})"
    elif lower.startswith(("s_", "t_")):
        what = f"the operator {op.upper()}"
    elif lower in ("point", "linestring", "polygon", "multipoint", "multilinestring",
                   "multipolygon", "geometrycollection"):
        return StacError(f"Invalid CQL2 filter: malformed {op.upper()} geometry")
    else:
        what = f"the function {op}()"
    return StacError(f"Invalid CQL2 filter: {what} is not supported")


def _boolean(node: Any) -> Any:
    """A boolean expression: a predicate, AND/OR/NOT of them, or a boolean literal."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict) or "op" not in node:
        raise StacError(f"Invalid CQL2 filter: expected a boolean expression (a comparison, "
                        f"LIKE, IN, BETWEEN, IS NULL, a spatial or temporal function, or "
                        f"AND/OR/NOT of those), got {_show(node)}")
    op = _op_of(node)
    lower = op.lower()
    if lower in ("and", "or"):
        args = tuple(_boolean(arg) for arg in _args(node, op, at_least=1))
        return And(args) if lower == "and" else Or(args)
    if lower == "not":
        return Not(_boolean(_args(node, op, 1)[0]))
    if lower in COMPARISON_OPS:
        left, right = _args(node, op, 2)
        return Compare(COMPARISON_OPS[lower], _scalar(left), _scalar(right))  # type: ignore[arg-type]
    if lower == "like":
        value, pattern = _args(node, op, 2)
        if not isinstance(pattern, str):
            raise StacError(f"Invalid CQL2 LIKE: the pattern must be a string, got "
                            f"{_show(pattern)}")
        return Like(_scalar(value), pattern)
    if lower == "in":
        value, values = _args(node, op, 2)
        if not isinstance(values, list):
            raise StacError(f"Invalid CQL2 IN: expected a list of values, got {_show(values)}")
        return In(_scalar(value), tuple(_literal_in_list(v) for v in values))
    if lower == "between":
        value, low, high = _args(node, op, 3)
        return Between(_scalar(value), _scalar(low), _scalar(high))
    if lower == "isnull":
        return IsNull(_scalar(_args(node, op, 1)[0]))
    if lower in SPATIAL_OPS:
        left, right = _args(node, op, 2)
        return Spatial(lower, _spatial(left), _spatial(right))  # type: ignore[arg-type]
    if lower in TEMPORAL_OPS:
        left, right = _args(node, op, 2)
        return Temporal(lower, _temporal(left), _temporal(right))
    raise _unsupported(op)


def _property(node: dict) -> Prop:
    name = node["property"]
    if not isinstance(name, str) or not name:
        raise StacError(f"Invalid CQL2 property reference {_show(node)}")
    if name.startswith("properties.") and len(name) > len("properties."):
        name = name[len("properties."):]
    return Prop(name)


def _timestamp(text: Any) -> datetime:
    parsed = parse_timestamp(text) if isinstance(text, str) else None
    if parsed is None:
        raise StacError(f"Invalid CQL2 TIMESTAMP {_show(text)}: expected an RFC 3339 "
                        "date-time such as 2020-01-01T00:00:00Z")
    return parsed


def _date(text: Any) -> date:
    parsed = parse_date(text) if isinstance(text, str) else None
    if parsed is None:
        raise StacError(f"Invalid CQL2 DATE {_show(text)}: expected YYYY-MM-DD")
    return parsed


def _value(node: Any) -> Any:
    """Any operand: a property, a literal, a temporal literal, an interval, a geometry, or an
    array. Callers narrow it down to what their operator accepts."""
    if isinstance(node, (bool, str)):
        return node
    if isinstance(node, (int, float)):
        if not math.isfinite(node):
            raise StacError(f"Invalid CQL2 number {node!r}")
        return node
    if node is None:
        raise StacError("Invalid CQL2 filter: null is not a value (use IS NULL to test for "
                        "a missing property)")
    if isinstance(node, list):
        return tuple(_value(v) for v in node)
    if not isinstance(node, dict):
        raise StacError(f"Invalid CQL2 value {_show(node)}")
    if "op" in node:
        op = _op_of(node)
        if op.lower() in _PREDICATES:
            raise StacError(f"Invalid CQL2 filter: a boolean expression ({op}) cannot be used "
                            "as a value")
        raise _unsupported(op)
    if "property" in node:
        return _property(node)
    if "timestamp" in node:
        return _timestamp(node["timestamp"])
    if "date" in node:
        return _date(node["date"])
    if "interval" in node:
        return _interval(node["interval"])
    if "bbox" in node:
        return bbox_polygon(check_bbox(node["bbox"], what="CQL2 BBOX"))
    if "type" in node:
        return check_geometry(node, what="CQL2 geometry")
    raise StacError(f"Invalid CQL2 value {_show(node)}")


def _scalar(node: Any) -> Any:
    """An operand of a comparison, LIKE, IN, BETWEEN or IS NULL."""
    value = _value(node)
    if isinstance(value, tuple):
        raise StacError(f"Invalid CQL2 filter: an array ({_show(node)}) is only allowed as the "
                        "list of IN")
    if isinstance(value, Interval):
        raise StacError("Invalid CQL2 filter: an INTERVAL is only allowed in temporal "
                        "functions (T_INTERSECTS, T_DURING, ...)")
    return value


def _literal_in_list(node: Any) -> Any:
    value = _scalar(node)
    if isinstance(value, Prop):
        raise StacError(f"Invalid CQL2 IN: properties in the list ({value.name}) are not "
                        "supported")
    return value


def _spatial(node: Any) -> Any:
    value = _value(node)
    if not isinstance(value, (Prop, dict)):
        raise StacError(f"Invalid CQL2 spatial operand {_show(node)}: expected a geometry "
                        "(WKT, GeoJSON, BBOX) or a property")
    return value


def _temporal(node: Any) -> Any:
    """A property, an instant (datetime or date), or an Interval; plain strings are read as
    instants, as CQL2 text writes them inside INTERVAL()."""
    if isinstance(node, str):
        instant = parse_instant(node)
        if instant is None:
            raise StacError(f"Invalid CQL2 temporal operand {_show(node)}: expected a "
                            "TIMESTAMP, DATE or INTERVAL")
        return instant
    value = _value(node)
    if not isinstance(value, (Prop, datetime, date, Interval)):
        raise StacError(f"Invalid CQL2 temporal operand {_show(node)}: expected a "
                        "TIMESTAMP, DATE, INTERVAL or a property")
    return value


def _interval_end(node: Any) -> datetime | date | None:
    if node == "..":
        return None
    if isinstance(node, str):
        instant = parse_instant(node)
        if instant is None:
            raise StacError(f"Invalid CQL2 INTERVAL bound {_show(node)}: expected a "
                            "timestamp, a date, or '..'")
        return instant
    if isinstance(node, dict) and "timestamp" in node:
        return _timestamp(node["timestamp"])
    if isinstance(node, dict) and "date" in node:
        return _date(node["date"])
    if isinstance(node, dict) and "property" in node:
        raise StacError("Invalid CQL2 INTERVAL: properties as interval bounds are not "
                        "supported (use the datetime property itself)")
    raise StacError(f"Invalid CQL2 INTERVAL bound {_show(node)}")


def _interval(node: Any) -> Interval:
    """An INTERVAL; date bounds stay dates (the store reads a date end as its whole day)."""
    if not isinstance(node, list) or len(node) != 2:
        raise StacError(f"Invalid CQL2 INTERVAL {_show(node)}: expected [start, end]")
    start, end = _interval_end(node[0]), _interval_end(node[1])
    if start is not None and end is not None and day_start(start) > day_end(end):
        raise StacError(f"Invalid CQL2 INTERVAL {_show(node)}: the start is after the end")
    return Interval(start, end)  # type: ignore[arg-type]
