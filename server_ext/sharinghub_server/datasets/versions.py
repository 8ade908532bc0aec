"""A dataset's versions: its tags and its default branch's head, each with the DVC outputs
its pointer files declare, newest first."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any

from ..catalog import dvc_outputs
from ..catalog.timeutil import iso, parse_datetime
from ..sources.records import ProjectRecord


class VersionReader:
    """Reads versions through a source; what a commit holds never changes, so outputs are
    cached by commit."""

    def __init__(self, max_cached: int = 2048) -> None:
        self._cache: OrderedDict[tuple[str, str], list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_cached

    def versions(self, source: Any, record: ProjectRecord) -> list[dict[str, Any]]:
        versions = []
        for ref in source.refs(record):
            if not ref.commit:
                continue
            outputs = self._outputs(source, record, ref.commit)
            versions.append({"rev": ref.rev, "kind": ref.kind, "commit": ref.commit,
                             "date": _iso(ref.date), "outputs": outputs})
        versions.sort(key=lambda v: (v["date"] or "", v["kind"] == "branch",
                                     _natural(v["rev"])), reverse=True)
        return versions

    def _outputs(self, source: Any, record: ProjectRecord, commit: str) -> list[dict[str, Any]]:
        key = (record.id, commit)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        outputs, _ = dvc_outputs.parse_outputs(source.dvc_files_at(record, commit))
        found = [{"path": o.path, "md5": o.md5, "size": o.size, "nfiles": o.nfiles}
                 for o in outputs]
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return found


def _natural(rev: str) -> tuple[tuple[int, int | str], ...]:
    """``v1.10`` after ``v1.9``: tags made in the same second are ordered as versions."""
    return tuple((0, int(part)) if part.isdigit() else (1, part)
                 for part in re.split(r"(\d+)", rev) if part)


def _iso(value: str | None) -> str | None:
    try:
        return iso(parse_datetime(value))
    except ValueError:
        return value
