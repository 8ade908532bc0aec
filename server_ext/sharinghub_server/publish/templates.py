"""The files a new project starts with: a README whose front matter is a filled-in template
for its category, and for datasets the DVC set-up ``dvc init`` + ``dvc remote add -d``
would write (written here, so that no DVC import or process is needed to create a project)."""

from __future__ import annotations

from datetime import date
from typing import Any

import yaml

from ..catalog.categories import Category

DVC_REMOTE = "storage"
#: what ``dvc init`` writes, byte for byte
DVCIGNORE = ("# Add patterns of files dvc should ignore, which could improve\n"
             "# the performance. Learn more at\n"
             "# https://dvc.org/doc/user-guide/dvcignore\n")
DVC_GITIGNORE = "/config.local\n/tmp\n/cache\n"


def is_dataset(category: Category) -> bool:
    return category.id == "dataset" or category.gitlab_topic == "sharinghub:dataset"


def is_model(category: Category) -> bool:
    return category.id == "ai-model" or category.gitlab_topic == "sharinghub:aimodel"


def front_matter(category: Category, *, name: str, title: str, description: str,
                 producer: dict[str, Any], remote: str | None,
                 topics: list[str] | None) -> dict[str, Any]:
    """The template's front matter: what the catalog maps (title, extent, license,
    providers), ``mlm`` for models, the DVC remote for datasets. ``topics`` only for local
    projects, whose topics live in the front matter."""
    meta: dict[str, Any] = {"title": title}
    if description:
        meta["description"] = description
    if topics is not None:
        meta["topics"] = topics
    meta["license"] = "CC-BY-4.0" if is_dataset(category) else "Apache-2.0"
    # no place yet (fill in a bbox [west, south, east, north] or WKT); time from today on
    meta["extent"] = {"spatial": None, "temporal": [date.today(), None]}
    meta["providers"] = [{**producer, "roles": ["producer", "licensor"]}]
    if is_model(category):
        from ..catalog.validate import MLM_SCHEMA  # (jsonschema: not at server start)

        meta["extensions"] = {"mlm": MLM_SCHEMA}
        meta["mlm"] = {"name": name, "architecture": "unknown", "tasks": [],
                       "framework": "unknown", "input": [], "output": []}
    if is_dataset(category) and remote:
        meta["sharinghub"] = {"dvc-remote": remote}
    return meta


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so that a README stays readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and not value.endswith((" ", "\t")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(meta: dict[str, Any]) -> str:
    """Front matter as YAML, keys in their order."""
    return yaml.dump(meta, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False)


def readme(meta: dict[str, Any], body: str) -> str:
    """A README: the YAML front matter, then the body (the item's description)."""
    text = dump(meta)
    return f"---\n{text}---\n{body.strip()}\n" if body.strip() else f"---\n{text}---\n"


def dvc_files(remote: str) -> dict[str, str]:
    """``.dvc/`` of a new dataset project with ``remote`` as its default remote."""
    return {
        ".dvcignore": DVCIGNORE,
        ".dvc/.gitignore": DVC_GITIGNORE,
        ".dvc/config": f"[core]\n    remote = {DVC_REMOTE}\n"
                       f"['remote \"{DVC_REMOTE}\"']\n    url = {remote}\n",
    }


def project_files(category: Category, *, name: str, title: str, description: str,
                  producer: dict[str, Any], remote: str | None,
                  topics: list[str] | None) -> dict[str, str]:
    """Every file of the first commit, by path."""
    meta = front_matter(category, name=name, title=title, description=description,
                        producer=producer, remote=remote, topics=topics)
    # a README body is what a reader sees first, and an empty one is an empty item
    # description, which a later metadata edit would be refused for
    files = {"README.md": readme(meta, description or f"# {title}")}
    if is_dataset(category) and remote:
        files.update(dvc_files(remote))
    return files
