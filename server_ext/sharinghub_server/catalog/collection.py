"""One STAC collection per category, its extents computed from the items it holds."""

from __future__ import annotations

from typing import Any

from ..index.store import CollectionSummary
from .categories import Category
from .validate import STAC_VERSION


def build_collection(category: Category, summary: CollectionSummary | None) -> dict[str, Any]:
    """The collection of a category. An empty category still has a (whole-world, open) extent,
    since STAC requires one."""
    bbox = list(summary.bbox) if summary and summary.bbox else [-180.0, -90.0, 180.0, 90.0]
    interval = [summary.start if summary else None, summary.end if summary else None]
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": category.id,
        "title": category.title,
        "description": category.description or f"{category.title} shared on SharingHub",
        "license": "other",
        "keywords": [category.id, category.gitlab_topic],
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
        "links": [{"rel": "items", "type": "application/geo+json",
                   "href": f"stac/collections/{category.id}/items"}],
        "sharinghub:gitlab-topic": category.gitlab_topic,
        "sharinghub:items": summary.count if summary else 0,
    }
