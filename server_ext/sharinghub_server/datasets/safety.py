"""What a checked-out repository may not do to a pull, checked before DVC runs (the parent's
half; the worker checks outputs and DVC config as DVC reads them): hold a symlink that leads
out of the destination or into its ``.git`` (git itself never writes through one, but DVC and
the pull manifest would)."""

from __future__ import annotations

from pathlib import Path

from ..jobs import JobError
from . import gitops

_SYMLINK = "120000"
LOCAL_CONFIG = ".dvc/config.local"


def check_tree(dest: Path) -> list[str]:
    """Refuse (JobError, one line) a tracked symlink that resolves outside ``dest`` (a real
    path) or into ``dest/.git``; return the levels of DVC config the repository provides
    (``repo``, and ``local`` when ``.dvc/config.local`` is committed) for the worker to check."""
    listing = gitops.run_git(["ls-files", "--stage", "-z"], cwd=dest, token=None)
    levels = ["repo"]
    for entry in filter(None, listing.split("\0")):
        meta, _, path = entry.partition("\t")
        if path == LOCAL_CONFIG:
            levels.append("local")
        if meta.split(" ", 1)[0] != _SYMLINK:
            continue
        target = (dest / path).resolve()
        if not target.is_relative_to(dest) or target.relative_to(dest).parts[:1] == (".git",):
            raise JobError(f"refused: the repository's symlink {path[:100]!r} leads outside "
                           "the destination; nothing was pulled")
    return levels
