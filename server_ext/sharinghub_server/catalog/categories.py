"""Categories: which GitLab topic puts a project into which STAC collection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Category:
    id: str
    title: str
    gitlab_topic: str
    description: str = ""
    #: ``sharinghub:<feature>`` properties every item of the category carries ("enable"/"disable")
    features: dict[str, str] = field(default_factory=dict)
    #: asset rules applied to every project of the category (same syntax as front matter)
    assets: tuple[Any, ...] = ()

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> Category:
        missing = [k for k in ("id", "title", "gitlab_topic") if not data.get(k)]
        if missing:
            raise ValueError(f"category {data!r} lacks {', '.join(missing)}")
        return cls(
            id=str(data["id"]),
            title=str(data["title"]),
            gitlab_topic=str(data["gitlab_topic"]),
            description=str(data.get("description") or ""),
            features={str(k): str(v) for k, v in (data.get("features") or {}).items()},
            assets=tuple(data.get("assets") or ()),
        )


DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category("ai-model", "AI Models", "sharinghub:aimodel",
             "Machine learning models, their cards, weights and runs."),
    Category("dataset", "Datasets", "sharinghub:dataset",
             "Datasets for training and evaluation, versioned with DVC."),
    Category("processor", "Processors", "sharinghub:processor",
             "Processing chains and inference services."),
    Category("tools", "Tools", "sharinghub:tools", "Libraries and tools."),
    Category("dashboard", "Dashboards", "sharinghub:space", "Dashboards and demo spaces."),
)


def load_categories(config: list[dict[str, Any]] | None) -> tuple[Category, ...]:
    """Categories from configuration (``c.SharingHub.categories``), or the defaults."""
    if not config:
        return DEFAULT_CATEGORIES
    categories = tuple(Category.from_config(c) for c in config)
    ids = [c.id for c in categories]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate category ids in {ids}")
    return categories


def categories_of(topics: list[str], categories: tuple[Category, ...]) -> list[Category]:
    """The categories a project with these topics belongs to (a project may be in several)."""
    present = set(topics)
    return [c for c in categories if c.gitlab_topic in present]
