"""Lineage for MLflow runs: a run started where pulled datasets live is tagged with them.

Registered as an MLflow run-context provider (entry point ``mlflow.run_context_provider``):
``mlflow.start_run()`` in a working directory that holds DVC pulls made through sharinghub
(their ``.sharinghub-pull.json`` manifests), or inside one (a notebook in a pulled clone), tags
the run with ``sharinghub.datasets``; the server turns that tag into MLflow dataset inputs and,
once a model of the run is registered, into ``derived_from`` links from the model's item to
the exact dataset versions.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

MANIFEST = ".sharinghub-pull.json"
DATASETS_TAG = "sharinghub.datasets"
#: how deep below the working directory manifests are looked for, and how many folders at most
MAX_DEPTH = 3
MAX_DIRS = 2000
#: how many folders above the working directory are looked at, at most (one file check each)
MAX_UP = 32
#: MLflow's limit on a tag value
_TAG_MAX = 8000


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("item") else None


def _tops() -> set[Path]:
    """Folders an upward look stops at (included): the home folder and, when known
    without asking anything, the Jupyter root (of the server this kernel is connected to,
    or ``SHARINGHUB_ROOT``)."""
    tops = set()
    for folder in (os.environ.get("HOME"), os.environ.get("SHARINGHUB_ROOT"),
                   getattr(getattr(sys.modules.get("sharinghub_lab.client"), "_current",
                                   None), "root_dir", None)):
        if folder:
            tops.add(Path(folder).resolve())
    return tops


def manifests_above(start: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(folder, manifest) for each folder above ``start`` that holds a pull manifest: a
    notebook inside a pulled clone. One file check per folder, up to the first of the
    filesystem root, the home folder, the Jupyter root, or :data:`MAX_UP` folders."""
    tops = _tops()
    folder = Path(start).resolve()
    found = []
    for _ in range(MAX_UP):
        if folder in tops or folder.parent == folder:
            break
        folder = folder.parent
        data = _read(folder / MANIFEST)
        if data is not None:
            found.append((str(folder), data))
    return found


def find_manifests(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Pull manifests in ``root`` (default: the working directory) and its subfolders, up to
    :data:`MAX_DEPTH` levels, hidden folders skipped, and in the folders above it (see
    :func:`manifests_above`); ordered by path."""
    start = Path(root or os.getcwd())
    found: list[tuple[str, dict[str, Any]]] = manifests_above(start)
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
                data = _read(Path(entry.path))
                if data is not None:
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


class _PulledDatasets:
    """Tags runs with the datasets pulled into the working directory (or the clone it is
    in). MLflow asks :meth:`in_context` then :meth:`tags` for each new run: the folders are
    scanned once."""

    def __init__(self) -> None:
        self._found: list[dict[str, Any]] = []

    def in_context(self) -> bool:
        self._found = find_manifests()
        return bool(self._found)

    def tags(self) -> dict[str, str]:
        found, self._found = self._found or find_manifests(), []
        return {DATASETS_TAG: datasets_tag(found)} if found else {}


def __getattr__(name: str) -> Any:
    """``PulledDatasetsContext``, MLflow's provider class with :class:`_PulledDatasets`'
    behaviour, made on first use: mlflow loads its providers (this one) while it is first
    imported, so importing mlflow at this module's import would be circular whenever this
    module is imported first, and MLflow would then run without it."""
    if name != "PulledDatasetsContext":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from mlflow.tracking.context.abstract_context import RunContextProvider

    cls = type(name, (_PulledDatasets, RunContextProvider),
               {"__module__": __name__, "__doc__": _PulledDatasets.__doc__})
    globals()[name] = cls
    return cls
