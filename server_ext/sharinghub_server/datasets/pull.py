"""A pull job: clone (or update) a project's repository at a revision into the workspace,
then ``dvc pull`` its data, reporting files and bytes as they land in the DVC cache.

On failure or cancel the destination is left as it was: a fresh clone is removed, an
updated working copy goes back to its previous commit and data (and manifest). A pull that
cannot clean up (its server was killed) leaves the destination marked incomplete
(:data:`INCOMPLETE`, and no manifest): the next pull into it completes it. A fresh clone
lands in a hidden folder of the destination and its ``.git`` moves into place whole, so a
half clone is never taken for a working copy. Nothing the repository says
may make the pull write outside the destination (:mod:`.safety`, :mod:`.worker`); a job is
done only when every output it expects is in the workspace and the cache.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import posixpath
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import yaml

from ..catalog import dvc_outputs
from ..catalog.timeutil import iso
from ..jobs import Cancelled, Job, JobError
from . import gitops
from .processes import stop_group
from .safety import check_tree

MANIFEST = ".sharinghub-pull.json"
#: in a destination while a pull is under way (removed when it ends): what it is pulling, and
#: the manifest the destination had before, to put back if the pull fails
INCOMPLETE = ".sharinghub-pull.incomplete"
#: where a fresh clone is made, inside the destination, before its ``.git`` moves into place
_CLONING = ".sharinghub-cloning"
_POLL = 0.5


@dataclass
class PullPlan:
    item: str
    rev: str | None
    dest: Path  # absolute, inside the Jupyter root
    repo_url: str  # a URL or a local path; never with credentials in it
    token: str | None = None
    #: DVC remote settings from ``c.SharingHub.dvc_remotes``: by remote name or URL prefix
    remote_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: int | None = None


def resolve_dest(root: Path, dest: str | None, item_id: str) -> Path:
    """The destination of a pull, inside the Jupyter root and under no hidden folder (a pull
    into ``.ipython/profile_default/startup`` would run code in every new kernel), not an
    existing file; ValueError if it would not be."""
    name = dest if dest not in (None, "") else item_id.rstrip("/").rsplit("/", 1)[-1]
    target = inside_root(root, name, "dest")
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"dest {name!r} is an existing file or inside one; choose a folder")
    return target


def inside_root(root: Path, name: str, what: str) -> Path:
    """``name`` (relative to the Jupyter root) as an absolute real path, when it is below the
    root (symlinks followed) and under no hidden folder; ValueError naming ``what`` if not."""
    if "\x00" in name or os.path.isabs(name) or name.startswith("~"):
        raise ValueError(f"{what} {name!r} must be a path relative to the Jupyter root")
    root = root.resolve()
    target = (root / name).resolve()  # follows symlinks of the parts that exist
    if target == root or not target.is_relative_to(root):
        raise ValueError(f"{what} {name!r} is outside the Jupyter root")
    if any(part.startswith(".") for part in target.relative_to(root).parts):
        raise ValueError(f"{what} {name!r} is a hidden folder or inside one; choose another")
    return target


def remotes_for(dest: Path, settings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The settings to merge into each remote the project's ``.dvc/config`` names."""
    config = dest / dvc_outputs.DVC_CONFIG
    _, remotes = dvc_outputs.parse_config(config.read_text() if config.exists() else "")
    merged: dict[str, dict[str, Any]] = {}
    for name, url in remotes.items():
        extra = settings.get(name)
        if extra is None:
            prefixes = [k for k in settings if "://" in k and url.startswith(k)]
            extra = settings[max(prefixes, key=len)] if prefixes else None
        if extra:
            merged[name] = dict(extra)
    return merged


def expected_outputs(dest: Path) -> list[dvc_outputs.DvcOutput]:
    """The outputs a pull must bring: those of every pointer file, less ``cache: false`` ones
    (DVC neither stores nor pulls them)."""
    files: dict[str, str] = {}
    for path in _dvc_files(dest):
        rel = path.relative_to(dest).as_posix()
        try:
            files[rel] = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
    outputs, _ = dvc_outputs.parse_outputs(files)
    uncached = {posixpath.normpath(posixpath.join(posixpath.dirname(rel), str(out.get("path"))))
                for rel, text in files.items() for out in _outs(text) if out.get("cache") is False}
    return [o for o in outputs if o.path not in uncached]


def _outs(text: str) -> list[dict[str, Any]]:
    """The ``outs`` of a pointer file, or of every stage of a ``dvc.lock``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    if not isinstance(data, dict):
        return []
    stages = data.get("stages")
    if isinstance(stages, dict):
        found = [o for st in stages.values() if isinstance(st, dict) for o in st.get("outs") or []]
    else:
        found = data.get("outs") or []
    return [o for o in found if isinstance(o, dict)]


def _dvc_files(dest: Path):
    for dirpath, dirnames, filenames in os.walk(dest):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".dvc")]
        for name in filenames:
            if name.endswith(".dvc") or name == "dvc.lock":
                yield Path(dirpath) / name


class CacheProgress:
    """Files and bytes of a revision's outputs already in the DVC cache: what a pull has
    fetched so far (objects already there from an earlier version count as done)."""

    def __init__(self, dest: Path, outputs: list[dvc_outputs.DvcOutput]) -> None:
        self.cache = dest / ".dvc" / "cache"
        self.outputs = outputs
        self.files_total = sum((o.nfiles or 0) if o.is_dir else 1 for o in outputs)
        self.bytes_total = sum(o.size or 0 for o in outputs)
        self._dir_entries: dict[str, list[str]] = {}
        self._found: dict[str, int] = {}

    def _object(self, md5: str, legacy: bool) -> Path:
        """DVC 3 keeps md5 objects in ``files/md5/`` and DVC 2's (``legacy_hash``) at the top."""
        return (self.cache if legacy else self.cache / "files" / "md5") / md5[:2] / md5[2:]

    def measure(self) -> tuple[int, int]:
        """Files and bytes of the outputs whose objects are in the cache (two files with the
        same content are one object but two files). Objects found once stay found: each poll
        only looks for the missing ones."""
        files = size = 0
        for out in self.outputs:
            if not out.md5:
                continue
            for md5 in self._entries(out) if out.is_dir else [out.md5]:
                if md5 not in self._found:
                    n = _size(self._object(md5, out.legacy_hash))
                    if n is None:
                        continue
                    self._found[md5] = n
                files += 1
                size += self._found[md5]
        return files, size

    def missing(self, dest: Path) -> list[str]:
        """Outputs absent from the workspace or whose object (a file's, a directory's
        listing) is not in the cache: what DVC did not bring, whatever it answered."""
        return [o.path for o in self.outputs if not (dest / o.path).exists() or not o.md5
                or _size(self._object(o.md5, o.legacy_hash)) is None]

    def _entries(self, out: dvc_outputs.DvcOutput) -> list[str]:
        """The md5s of a directory output's files, from its listing once it is in the cache."""
        dir_md5 = str(out.md5)
        if dir_md5 not in self._dir_entries:
            try:
                listing = json.loads(self._object(dir_md5, out.legacy_hash).read_text())
            except (OSError, ValueError):
                return []
            self._dir_entries[dir_md5] = [e["md5"] for e in listing if "md5" in e]
        return self._dir_entries[dir_md5]


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def run_pull(job: Job, plan: PullPlan) -> dict[str, Any]:
    dest = plan.dest
    # checked when the pull was asked for (resolved, inside the root) and again now that it
    # runs: a queued pull's destination may have been replaced by a symlink meanwhile
    if Path(os.path.realpath(dest)) != dest:
        raise JobError(f"{job.dest} is now a symbolic link (or below one); pulls never "
                       "follow links: choose another dest")
    resumed = _resumable(dest)  # an earlier pull here was stopped before it could clean up
    fresh = not (dest / ".git").exists()
    if not fresh and not _same_repo(dest, plan.repo_url):
        raise JobError(f"{job.dest} holds another repository; choose another dest")
    if fresh and dest.exists() and any(dest.iterdir()) and not resumed:
        raise JobError(f"{job.dest} exists and is not a working copy of {plan.item}")
    previous = None if fresh else gitops.head(dest)
    marker_before = _read(dest / INCOMPLETE) if resumed else None
    try:
        job.state = "cloning"
        if fresh:
            dest.mkdir(parents=True, exist_ok=True)
            _mark_incomplete(dest, plan, None)
            _clone(plan, dest, job)
        else:
            # a clone never checked out (its pull was killed) has nothing of the user's
            if (dest / ".git" / "index").exists() and gitops.is_dirty(dest):
                raise JobError(f"{job.dest} has uncommitted changes; commit or discard them")
            _mark_incomplete(dest, plan, _read(dest / MANIFEST))
            (dest / MANIFEST).unlink(missing_ok=True)  # (no longer what the copy holds)
            gitops.fetch(dest, plan.repo_url, token=plan.token, cancel=job.cancel_event)
        job.check_cancelled()
        commit = gitops.resolve(dest, plan.rev or gitops.default_branch(dest))
        gitops.checkout(dest, commit)
        levels = check_tree(dest)
        for name in (MANIFEST, INCOMPLETE, _CLONING):
            gitops.exclude(dest, f"/{name}")
        job.check_cancelled()

        job.state = "pulling"
        outputs = expected_outputs(dest)
        progress = CacheProgress(dest, outputs)
        job.files_total, job.bytes_total = progress.files_total, progress.bytes_total
        run_worker(job, dest, remotes_for(dest, plan.remote_settings), progress, plan.jobs,
                    config_levels=levels)
        job.files_done, job.bytes_done = progress.measure()
        missing = progress.missing(dest)
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise JobError(f"dvc pull did not bring the output {missing[0][:100]!r}{more}")
        manifest = {
            "item": plan.item, "rev": plan.rev or gitops.default_branch(dest), "commit": commit,
            "source": plan.repo_url, "pulled_at": iso(datetime.now(timezone.utc)),
            "outputs": [{"path": o.path, "md5": o.md5, "size": o.size, "nfiles": o.nfiles}
                        for o in outputs],
        }
        _write_atomic(dest / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        (dest / INCOMPLETE).unlink(missing_ok=True)
        return {"commit": commit, "outputs": manifest["outputs"]}
    except JobError as exc:
        _restore(dest, fresh, previous, plan, marker_before)
        # the user knows the destination by its path in the Jupyter root, not the server's
        raise JobError(str(exc).replace(str(dest), job.dest)) from None
    except BaseException:
        _restore(dest, fresh, previous, plan, marker_before)
        raise


def _resumable(dest: Path) -> bool:
    """Whether ``dest`` holds what a pull stopped midway left: its marker, and apart from a
    ``.git`` nothing but ours when no clone got into place."""
    if not (dest / INCOMPLETE).is_file():
        return False
    if (dest / ".git").exists():
        return True
    return {p.name for p in dest.iterdir()} <= {INCOMPLETE, _CLONING}


def _clone(plan: PullPlan, dest: Path, job: Job) -> None:
    """Clone into a hidden folder of ``dest``, then move its ``.git`` into place at once."""
    staging = dest / _CLONING
    shutil.rmtree(staging, ignore_errors=True)  # a clone a killed pull left
    gitops.clone(plan.repo_url, staging, token=plan.token, cancel=job.cancel_event)
    os.replace(staging / ".git", dest / ".git")
    shutil.rmtree(staging, ignore_errors=True)


def _mark_incomplete(dest: Path, plan: PullPlan, previous_manifest: str | None) -> None:
    """Say in ``dest`` that a pull is under way (kept from a pull that was stopped: the
    manifest to put back is the one before that pull)."""
    marker = dest / INCOMPLETE
    earlier = _read(marker)
    if earlier is not None:
        with contextlib.suppress(ValueError, AttributeError):
            previous_manifest = json.loads(earlier).get("previous_manifest")
    _write_atomic(marker, json.dumps({
        "incomplete": True, "item": plan.item, "rev": plan.rev,
        "started": iso(datetime.now(timezone.utc)), "previous_manifest": previous_manifest,
        "note": "a pull into this folder did not finish: pull again to complete it",
    }, indent=2) + "\n")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that a reader (or a kill) sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _same_repo(dest: Path, url: str) -> bool:
    try:
        origin = gitops.run_git(["remote", "get-url", "origin"], cwd=dest, token=None)
    except JobError:
        return False
    return origin.rstrip("/").removesuffix(".git") == url.rstrip("/").removesuffix(".git")


def run_worker(job: Job, dest: Path, remotes: dict, progress: CacheProgress | None,
                jobs: int | None, action: str = "pull",
                config_levels: list[str] | None = None, *,
                extra: dict[str, Any] | None = None,
                on_message: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """DVC in a worker process (see :mod:`.worker`), stopped with its group on cancel.
    ``on_message`` gets each JSON line the worker prints as it prints it (a publish's plan
    and upload progress); the last one, the result, is returned."""
    request = json.dumps({"repo": str(dest), "remotes": remotes, "jobs": jobs, "action": action,
                          "config_levels": config_levels or ["repo"], **(extra or {})})
    # no usage report from DVC: a server's pulls are not a person's commands
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sharinghub_server.datasets.worker"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=dest, text=True, env=env,
                            start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    messages: list[dict[str, Any]] = []
    errors: collections.deque[str] = collections.deque(maxlen=50)

    def read_out(stream: IO[str]) -> None:  # both pipes drained as they fill
        for line in stream:
            value = _json_line(line)
            if value is not None:
                messages.append(value)
                if on_message is not None:
                    on_message(value)

    readers = [threading.Thread(target=read_out, args=(proc.stdout,), daemon=True),
               threading.Thread(target=errors.extend, args=(proc.stderr,), daemon=True)]
    for reader in readers:
        reader.start()
    proc.stdin.write(request)
    proc.stdin.close()
    while True:
        try:
            proc.wait(_POLL)
            break
        except subprocess.TimeoutExpired:
            if job.cancel_event.is_set():
                stop_group(proc)
                raise Cancelled from None
            if progress is not None:
                job.files_done, job.bytes_done = progress.measure()
    for reader in readers:
        reader.join()
    result = messages[-1] if messages else {}
    done = "published" if action == "publish" else "pulled"
    if result.get("refused"):
        raise JobError(f"refused: {result['refused']}; nothing was {done}")
    if proc.returncode != 0 or not result.get("ok"):
        message = result.get("error") or next(
            (ln.strip() for ln in reversed(errors) if ln.strip()), "DVC failed")
        raise JobError(f"dvc {action} failed: {message}")
    return result


def _json_line(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _restore(dest: Path, fresh: bool, previous: str | None, plan: PullPlan,
             marker_before: str | None = None) -> None:
    """Leave the destination as it was before the job: still marked incomplete when an
    earlier pull had left it so (``marker_before``), else with its previous manifest."""
    if fresh:
        shutil.rmtree(dest, ignore_errors=True)
        return
    marker = _read(dest / INCOMPLETE)
    if previous is not None and gitops.head(dest) != previous:
        with contextlib.suppress(JobError):
            gitops.checkout(dest, previous)
        dummy = Job(kind="pull", item=plan.item, rev=None, dest=str(dest))
        with contextlib.suppress(JobError):  # the previous version's data is still in the cache
            run_worker(dummy, dest, remotes_for(dest, plan.remote_settings), None, plan.jobs,
                        action="checkout")
    if marker_before is not None:
        _write_atomic(dest / INCOMPLETE, marker_before)
        return
    if marker is None:
        return
    with contextlib.suppress(ValueError, AttributeError):
        manifest = json.loads(marker).get("previous_manifest")
        if manifest:
            _write_atomic(dest / MANIFEST, manifest)
        (dest / INCOMPLETE).unlink(missing_ok=True)
