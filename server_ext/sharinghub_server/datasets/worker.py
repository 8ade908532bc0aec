"""The DVC worker process: ``python -m sharinghub_server.datasets.worker`` reads a JSON
request on stdin and runs ``dvc pull`` (or checkout), or for a publish ``dvc add`` + ``dvc
push`` (or the removal of objects a cancelled publish pushed), through DVC's Python API.
It answers with JSON lines on stdout; the last one is the result.

A separate process keeps ``import dvc`` out of the server, lets the job be cancelled by
killing it, and receives remote credentials on stdin: never in argv, the environment of
other processes, or a file in the workspace.

Before DVC writes anything, the worker refuses what would make it write outside the
repository's root (answer ``{"refused": "one line"}``), as DVC itself reads it: a cache or
site cache directory set by the repository's config, an output that is not a plain path in
the root (``..``, absolute, through a symlink) or that lands in ``.git``/``.dvc``. The cache
is ``<root>/.dvc/cache`` whatever the config says.

The worker runs in a session of its own (a cancel stops its whole group), so a server killed
outright (SIGKILL, the OOM killer) could not stop it: it then stops by itself, within
:data:`_ORPHAN_POLL` seconds, rather than write on into a destination that the next pull (of
a restarted server) is working in.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from fsspec.callbacks import Callback

#: seconds between two checks that the server that started the worker is still alive
_ORPHAN_POLL = 0.2

#: remote settings naming a file DVC writes (the others are read, or are the remote itself:
#: a pull only reads from its remote, wherever it is)
_WRITTEN_REMOTE_FILES = ("gdrive_user_credentials_file",)


def exit_with_parent(poll: float = _ORPHAN_POLL) -> None:
    """End this process (at once, whatever DVC is doing) when its parent is gone: once
    orphaned, a process is given another parent."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="sharinghub-orphan-watch", daemon=True).start()


def main() -> int:
    exit_with_parent()
    request = json.load(sys.stdin)
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    root = os.path.realpath(request["repo"])
    try:
        refused = config_refusal(root, request.get("config_levels") or ["repo"])
        if refused:
            print(json.dumps({"refused": refused}), flush=True)
            return 2
        action = request.get("action")
        cache: dict[str, Any] = {"dir": os.path.join(root, ".dvc", "cache")}
        if action == "publish":  # never turn the user's files into links to the cache
            cache["type"] = "reflink,copy"
        config = {"remote": request.get("remotes") or {}, "cache": cache}
        result: dict[str, Any] = {"ok": True}
        with Repo(root, config=config) as repo:
            refused = outputs_refusal(root, repo.index.outs)
            if refused:
                print(json.dumps({"refused": refused}), flush=True)
                return 2
            if action == "checkout":
                repo.checkout(force=True)
            elif action == "publish":
                result["outputs"] = publish(repo, root, request)
            elif action == "forget":
                forget(repo, request.get("oids") or [])
            else:
                repo.pull(jobs=request.get("jobs"), force=True)
    except DvcException as exc:
        print(json.dumps({"error": _line(exc)}), flush=True)
        return 1
    except Exception as exc:  # the parent turns this into the job's one-line error
        print(json.dumps({"error": f"{type(exc).__name__}: {_line(exc)}"}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


_LEGACY = ("md5-dos2unix",)


def emit(message: dict[str, Any]) -> None:
    """One JSON line to the parent (progress, the plan, the result)."""
    with _EMIT:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


_EMIT = threading.Lock()


def publish(repo: Any, root: str, request: dict[str, Any]) -> list[dict[str, Any]]:
    """``dvc add`` the targets, then push their objects to the default remote: first a
    ``plan`` line naming the objects the remote lacks (what a cancel must remove again),
    then ``progress`` lines (files and bytes on the remote) as they upload."""
    from dvc.exceptions import DvcException
    from dvc_data.hashfile.db import get_index

    stages = repo.add(request["targets"])
    refused = outputs_refusal(root, [out for stage in stages for out in stage.outs])
    if refused:
        raise DvcException(f"refused: {refused}")
    used = repo.used_objs(targets=[stage.path for stage in stages], push=True)
    objs = set().union(*used.values()) if used else set()
    status = repo.cloud.status(objs, jobs=request.get("jobs"))
    if status.missing:
        raise DvcException(f"{len(status.missing)} object(s) are missing from the cache")
    cache = repo.cache.local

    def size(h: Any) -> int:
        odb = repo.cache.legacy if h.name in _LEGACY else cache
        try:
            return os.path.getsize(odb.oid_to_path(h.value))
        except OSError:
            return 0

    files = [h for h in objs if not h.isdir]
    new = {h for h in status.new if not h.isdir}
    reporter = _Uploads(len(files) - len(new), sum(size(h) for h in files if h not in new))
    emit({"plan": {"new": sorted(h.value for h in status.new if h.name not in _LEGACY),
                   "files_total": len(files), "bytes_total": sum(size(h) for h in files),
                   "files_done": reporter.files, "bytes_done": reporter.bytes}})
    default = {h for h in objs if h.name not in _LEGACY}
    failed = set()
    if default:  # as ``dvc push`` does it (DataCloud._push), with our progress callback
        odb = repo.cloud.get_remote_odb(None, "push")
        failed |= repo.cloud.transfer(cache, odb, default, jobs=request.get("jobs"),
                                      dest_index=get_index(odb), cache_odb=cache,
                                      callback=reporter).failed
    legacy = objs - default
    if legacy:
        failed |= repo.cloud.push(legacy, jobs=request.get("jobs")).failed
    if failed:
        raise DvcException(f"{len(failed)} object(s) could not be uploaded to the remote")
    reporter.report(force=True)
    return [{"path": str(out.def_path), "md5": out.hash_info.value, "size": out.meta.size,
             "nfiles": out.meta.nfiles} for stage in stages for out in stage.outs]


class _Uploads(Callback):
    """Counts the files (and their bytes) that reach the remote and reports them, at most
    five times a second; directory listings (``.dir`` objects) are not files."""

    def __init__(self, files: int, size: int) -> None:
        super().__init__()
        self.files, self.bytes = files, size
        self._lock = threading.Lock()
        self._last = 0.0

    def branched(self, path_1: Any, path_2: Any, **kwargs: Any) -> Callback:
        try:
            size = os.path.getsize(path_1) if isinstance(path_1, str) else 0
        except OSError:
            size = 0
        return _Done(self, size, str(path_2).endswith(".dir"))

    def done(self, size: int, listing: bool) -> None:
        with self._lock:
            if not listing:
                self.files += 1
                self.bytes += size
        self.report()

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= 0.2:
            self._last = now
            emit({"progress": [self.files, self.bytes]})


class _Done(Callback):
    def __init__(self, parent: _Uploads, size: int, listing: bool) -> None:
        super().__init__()
        self._parent, self._size, self._listing = parent, size, listing

    def close(self) -> None:
        self._parent.done(self._size, self._listing)


def forget(repo: Any, oids: list[str]) -> None:
    """Remove objects from the default remote (those a cancelled publish pushed and the
    remote did not have), directory listings first, and drop the remote's local index,
    which may say a directory is complete there."""
    import contextlib

    from dvc_data.hashfile.db import get_index

    odb = repo.cloud.get_remote_odb(None, "push")
    for oid in sorted(oids, key=lambda o: not o.endswith(".dir")):
        with contextlib.suppress(FileNotFoundError):
            odb.delete(oid)
    get_index(odb).clear()


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
