"""The index's query model: what the STAC API (and the CLI, the tests) ask of an index store.

CQL2 (text or JSON) compiles to :class:`Expr` trees; the store compiles those to its own query
language (SQL for SQLite/PostgreSQL). Nothing here knows about HTTP or STAC API parameter syntax.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# --- filter expressions -------------------------------------------------------------------


@dataclass(frozen=True)
class Prop:
    """A queryable: ``id``, ``collection``, ``geometry``, ``datetime``, ``start_datetime``,
    ``end_datetime``, or any item property name (``title``, ``eo:cloud_cover``, ...)."""

    name: str


@dataclass(frozen=True)
class Interval:
    """A CQL2 interval; ``None`` is an open end (``..``)."""

    start: datetime | None
    end: datetime | None


#: a literal: str, int, float, bool, datetime (timestamp), date, a GeoJSON geometry dict,
#: an Interval, or a list of literals (for ``in`` and array operators)
Value = Any
Operand = Prop | Value


@dataclass(frozen=True)
class Compare:
    op: Literal["=", "<>", "<", "<=", ">", ">="]
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Like:
    prop: Operand
    pattern: str  # CQL2 pattern: % any run, _ one character, \ escapes


@dataclass(frozen=True)
class In:
    prop: Operand
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Between:
    prop: Operand
    low: Value
    high: Value


@dataclass(frozen=True)
class IsNull:
    prop: Operand


@dataclass(frozen=True)
class And:
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    arg: Expr


@dataclass(frozen=True)
class Spatial:
    """``s_intersects`` (and friends): ``left``/``right`` are ``Prop("geometry")`` or geometries."""

    op: Literal["s_intersects", "s_disjoint", "s_within", "s_contains", "s_equals",
                "s_touches", "s_overlaps", "s_crosses"]
    left: Operand
    right: Operand


TEMPORAL_OPS = (
    "t_after", "t_before", "t_contains", "t_disjoint", "t_during", "t_equals", "t_finishedby",
    "t_finishes", "t_intersects", "t_meets", "t_metby", "t_overlappedby", "t_overlaps",
    "t_startedby", "t_starts",
)


@dataclass(frozen=True)
class Temporal:
    """A CQL2 temporal function. Operands are a ``Prop`` (``datetime`` means the item's
    ``[start_datetime, end_datetime]`` interval, or its instant), a datetime, or an Interval."""

    op: str  # one of TEMPORAL_OPS
    left: Operand
    right: Operand


Expr = Compare | Like | In | Between | IsNull | And | Or | Not | Spatial | Temporal

# --- the query and its answer -------------------------------------------------------------


@dataclass
class Budget:
    """How long a search may work, and a flag its caller sets once the answer is no longer
    wanted (the client left): a store stops the search at either, even mid-statement."""

    seconds: float
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class Query:
    #: any of these (None or [] : no restriction)
    collections: list[str] | None = None
    ids: list[str] | None = None
    bbox: tuple[float, float, float, float] | None = None  # west, south, east, north (WGS84)
    intersects: dict | None = None  # GeoJSON geometry
    #: items whose [start, end] (or instant) intersects this interval; None ends are open
    datetime: Interval | None = None
    #: free-text terms, alternatives (OR); a multi-word term is a phrase; case-insensitive
    q: list[str] | None = None
    filter: Expr | None = None
    #: (field, "asc"|"desc"); field: "id", "collection", "datetime", or a property name
    sortby: list[tuple[str, str]] = field(default_factory=list)
    limit: int = 10
    #: an opaque token from a previous Page (next_token / prev_token) for keyset paging
    token: str | None = None
    #: None: no limit (the CLI, the tests); the server always sets one
    budget: Budget | None = field(default=None, compare=False)


@dataclass
class Page:
    items: list[dict]
    matched: int  # exact count of all matches, across pages
    next_token: str | None = None
    prev_token: str | None = None


class QueryError(ValueError):
    """A query the store cannot answer as asked (unknown sort field, bad token, ...)."""


class QueryInterrupted(RuntimeError):
    """A search stopped by its :class:`Budget`: over its time (``timed_out``), or no longer
    wanted."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out
