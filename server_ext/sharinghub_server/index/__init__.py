"""The catalog index: a transactional store of STAC items with STAC API style search.

``open_store(url)`` gives an :class:`IndexStore`; :class:`Query` and the filter expression
classes describe what to search for.
"""

from .query import (
    TEMPORAL_OPS,
    And,
    Between,
    Budget,
    Compare,
    Expr,
    In,
    Interval,
    IsNull,
    Like,
    Not,
    Or,
    Page,
    Prop,
    Query,
    QueryError,
    QueryInterrupted,
    Spatial,
    Temporal,
)
from .store import CollectionSummary, IndexStore, ProjectUpdate, StoreClosed, open_store

__all__ = [
    "TEMPORAL_OPS",
    "And",
    "Between",
    "Budget",
    "CollectionSummary",
    "Compare",
    "Expr",
    "In",
    "IndexStore",
    "Interval",
    "IsNull",
    "Like",
    "Not",
    "Or",
    "Page",
    "ProjectUpdate",
    "Prop",
    "Query",
    "QueryError",
    "QueryInterrupted",
    "Spatial",
    "StoreClosed",
    "Temporal",
    "open_store",
]
