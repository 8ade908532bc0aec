"""Lineage for MLflow runs: a run started where pulled datasets live is tagged with them.

Registered as an MLflow run-context provider (entry point ``mlflow.run_context_provider``):
``mlflow.start_run()`` in a working directory that holds DVC pulls made through sharinghub
(their ``.sharinghub-pull.json`` manifests) tags the run with ``sharinghub.datasets``; the
server turns that tag into MLflow dataset inputs and, once a model of the run is registered,
into ``derived_from`` links from the model's item to the exact dataset versions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlflow.tracking.context.abstract_context import RunContextProvider

MANIFEST = ".sharinghub-pull.json"
DATASETS_TAG = "sharinghub.datasets"
#: how deep below the working directory manifests are looked for, and how many folders at most
MAX_DEPTH = 3
MAX_DIRS = 2000
#: MLflow's limit on a tag value
_TAG_MAX = 8000


def find_manifests(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Pull manifests in ``root`` (default: the working directory) and its subfolders, up to
    :data:`MAX_DEPTH` levels, hidden folders skipped; ordered by path."""
    start = Path(root or os.getcwd())
    found: list[tuple[str, dict[str, Any]]] = []
    queue: list[tuple[Path, int]] = [(start, 0)]
    seen = 0
    while queue and seen < MAX_DIRS:
        folder, depth = queue.pop(0)
        seen += 1
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name == MANIFEST and entry.is_file():
                try:
                    data = json.loads(Path(entry.path).read_text())
                except (OSError, ValueError):
                    continue
                if isinstance(data, dict) and data.get("item"):
                    found.append((str(Path(entry.path).parent), data))
            elif (depth < MAX_DEPTH and not entry.name.startswith(".")
                  and entry.is_dir(follow_symlinks=False)):
                queue.append((Path(entry.path), depth + 1))
    return [data for _, data in sorted(found, key=lambda pair: pair[0])]


def datasets_tag(manifests: list[dict[str, Any]]) -> str:
    """The tag value: what the server needs of each manifest, within MLflow's length limit."""
    slim = [{"item": m["item"], "rev": m.get("rev"), "commit": m.get("commit"),
             "outputs": [{"path": o.get("path"), "md5": o.get("md5")}
                         for o in m.get("outputs") or []]} for m in manifests]
    while slim:
        value = json.dumps(slim, separators=(",", ":"))
        if len(value) <= _TAG_MAX:
            return value
        slim.pop()
    return "[]"


class PulledDatasetsContext(RunContextProvider):
    """Tags runs with the datasets pulled into the working directory. MLflow asks
    :meth:`in_context` then :meth:`tags` for each new run: the folder is scanned once."""

    def __init__(self) -> None:
        self._found: list[dict[str, Any]] = []

    def in_context(self) -> bool:
        self._found = find_manifests()
        return bool(self._found)

    def tags(self) -> dict[str, str]:
        found, self._found = self._found or find_manifests(), []
        return {DATASETS_TAG: datasets_tag(found)} if found else {}
