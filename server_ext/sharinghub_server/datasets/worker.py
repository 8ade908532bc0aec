"""The DVC worker process: ``python -m sharinghub_server.datasets.worker`` reads a JSON
request on stdin and runs ``dvc pull`` (or checkout) through DVC's Python API.

A separate process keeps ``import dvc`` out of the server, lets the job be cancelled by
killing it, and receives remote credentials on stdin: never in argv, the environment of
other processes, or a file in the workspace.

Before DVC writes anything, the worker refuses what would make it write outside the
repository's root (answer ``{"refused": "one line"}``), as DVC itself reads it: a cache or
site cache directory set by the repository's config, an output that is not a plain path in
the root (``..``, absolute, through a symlink) or that lands in ``.git``/``.dvc``. The cache
is ``<root>/.dvc/cache`` whatever the config says.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

#: remote settings naming a file DVC writes (the others are read, or are the remote itself:
#: a pull only reads from its remote, wherever it is)
_WRITTEN_REMOTE_FILES = ("gdrive_user_credentials_file",)


def main() -> int:
    request = json.load(sys.stdin)
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    root = os.path.realpath(request["repo"])
    try:
        refused = config_refusal(root, request.get("config_levels") or ["repo"])
        if refused:
            print(json.dumps({"refused": refused}), flush=True)
            return 2
        config = {"remote": request.get("remotes") or {},
                  "cache": {"dir": os.path.join(root, ".dvc", "cache")}}
        with Repo(root, config=config) as repo:
            refused = outputs_refusal(root, repo.index.outs)
            if refused:
                print(json.dumps({"refused": refused}), flush=True)
                return 2
            if request.get("action") == "checkout":
                repo.checkout(force=True)
            else:
                repo.pull(jobs=request.get("jobs"), force=True)
    except DvcException as exc:
        print(json.dumps({"error": _line(exc)}), flush=True)
        return 1
    except Exception as exc:  # the parent turns this into the job's one-line error
        print(json.dumps({"error": f"{type(exc).__name__}: {_line(exc)}"}), flush=True)
        return 1
    print(json.dumps({"ok": True}), flush=True)
    return 0


def inside(root: str, path: str) -> bool:
    """``path`` (symlinks followed) is in ``root`` (a real path), and not in its
    ``.git`` or ``.dvc`` folder."""
    rel = os.path.relpath(os.path.realpath(path), root)
    first = rel.split(os.sep, 1)[0]
    return rel != os.curdir and first not in (os.pardir, ".git", ".dvc")


def config_refusal(root: str, levels: list[str]) -> str | None:
    """Why the repository's own DVC config (``repo``: ``.dvc/config``; ``local``: a committed
    ``.dvc/config.local``) would make DVC write outside ``root``, if it would."""
    from dvc.config import Config

    config = Config(dvc_dir=os.path.join(root, ".dvc"), validate=False)
    for level in levels:
        conf: dict[str, Any] = config.load_one(level)
        paths = {"cache.dir": conf.get("cache", {}).get("dir"),
                 "core.site_cache_dir": conf.get("core", {}).get("site_cache_dir")}
        for name, remote in conf.get("remote", {}).items():
            for key in _WRITTEN_REMOTE_FILES:
                paths[f"remote.{name}.{key}"] = remote.get(key)
        for key, value in paths.items():
            if not value:
                continue
            path = os.path.join(root, os.path.expanduser(str(value)))
            if not os.path.realpath(path).startswith(root + os.sep):
                return f"the repository's DVC config sets {key} outside the destination"
    return None


def outputs_refusal(root: str, outs: Any) -> str | None:
    """Why an output of the repository would be written outside ``root``, if one would."""
    for out in outs:
        if out.fs.protocol != "local" or not inside(root, out.fs_path):
            return (f"the repository's DVC output {str(out.def_path)[:100]!r} would be written "
                    "outside the destination")
    return None


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f": {' '.join(str(cause).split())}"
    return text[:400]


if __name__ == "__main__":
    sys.exit(main())
