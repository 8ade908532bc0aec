"""Where the last crawl's report lives in the index (light: read at every status request)."""

from __future__ import annotations

from typing import Any

from .catalog.problems import NO_MODEL_ASSET
from .index.store import IndexStore

STATUS_KEY = "crawl_status"

#: items with overlays whose problems are looked at per status request, at most
_MAX_REVIEWED = 1000


def last_status(store: IndexStore) -> dict[str, Any] | None:
    """The report of the last finished crawl, as ``GET sharinghub/api/index`` shows it: the
    problems of each item are those of the item as served, its overlays merged in (a model
    registered since the crawl gave it its model asset)."""
    status = store.get_meta(STATUS_KEY)
    if not status or not status.get("errors"):
        return status
    return as_served(store, status)


def as_served(store: IndexStore, status: dict[str, Any]) -> dict[str, Any]:
    """``status`` with the stored problems of items that have overlays re-checked against
    the items as served (only those items are read: the others are as the crawl saw them)."""
    errors = status["errors"]
    flagged = sorted({e.get("project") for e in errors if isinstance(e, dict)
                      and str(e.get("message", "")).startswith(NO_MODEL_ASSET)}
                     - {None, ""})
    if not flagged:
        return status
    overlays = store.overlays(flagged[:_MAX_REVIEWED])
    if not overlays:
        return status
    verdicts = _mlm_verdicts(store, overlays)
    kept = []
    for error in errors:
        project = error.get("project") if isinstance(error, dict) else None
        if project in verdicts and str(error.get("message", "")).startswith(NO_MODEL_ASSET):
            verdict = verdicts[project]
            if verdict is None:
                continue  # served with its model asset: no longer a problem
            error = {**error, "message": verdict}
        kept.append(error)
    return {**status, "errors": kept}


def _mlm_verdicts(store: IndexStore, overlays: dict[str, dict]) -> dict[str, str | None]:
    """item id -> what is still missing for mlm in the item as served (None: nothing), for
    the items (with overlays) found in the index."""
    from .catalog.models import _MLM_REQUIRED, apply_overlays
    from .catalog.validate import MLM_SCHEMA
    from .index.query import Query

    served: dict[str, list[dict]] = {}
    query = Query(ids=sorted(overlays), limit=200)
    while True:
        page = store.search(query)
        for item in page.items:
            served.setdefault(item["id"], []).append(
                apply_overlays(item, overlays.get(item["id"], {})))
        if not page.next_token:
            break
        query = Query(ids=query.ids, limit=query.limit, token=page.next_token)
    verdicts: dict[str, str | None] = {}
    for item_id, items in served.items():
        verdict: str | None = None
        for item in items:
            assets = (item.get("assets") or {}).values()
            if not any("mlm:model" in (a.get("roles") or []) for a in assets):
                verdict = NO_MODEL_ASSET  # the stored message stands
                break
            if MLM_SCHEMA not in (item.get("stac_extensions") or []):
                props = item.get("properties") or {}
                missing = [k for k in _MLM_REQUIRED if k not in props]
                verdict = ("mlm: the registered model gives the model asset, but "
                           f"{', '.join(missing) or 'a required mlm field'} is missing "
                           "(the model has no signature and the front matter none), so the "
                           "mlm schema is not declared")
        if verdict != NO_MODEL_ASSET:
            verdicts[item_id] = verdict
    return verdicts
