"""Where the last crawl's report lives in the index (light: read at every status request)."""

from __future__ import annotations

from typing import Any

from .index.store import IndexStore

STATUS_KEY = "crawl_status"


def last_status(store: IndexStore) -> dict[str, Any] | None:
    """The report of the last finished crawl, as ``GET sharinghub/api/index`` shows it."""
    return store.get_meta(STATUS_KEY)
