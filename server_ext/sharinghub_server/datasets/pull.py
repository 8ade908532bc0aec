"""A pull job: clone (or update) a project's repository at a revision into the workspace,
then ``dvc pull`` its data, reporting files and bytes as they land in the DVC cache.

On failure or cancel the destination is left as it was: a fresh clone is removed, an
updated working copy goes back to its previous commit and data.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..catalog import dvc_outputs
from ..catalog.timeutil import iso
from ..jobs import Cancelled, Job, JobError
from . import gitops

MANIFEST = ".sharinghub-pull.json"
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
    """The destination of a pull, inside the Jupyter root; ValueError if it would not be."""
    name = dest if dest not in (None, "") else item_id.rstrip("/").rsplit("/", 1)[-1]
    if "\x00" in name or os.path.isabs(name) or name.startswith("~"):
        raise ValueError(f"dest {name!r} must be a path relative to the Jupyter root")
    root = root.resolve()
    target = (root / name).resolve()  # follows symlinks of the parts that exist
    if target == root or not target.is_relative_to(root):
        raise ValueError(f"dest {name!r} is outside the Jupyter root")
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
    files: dict[str, str] = {}
    for path in _dvc_files(dest):
        rel = path.relative_to(dest).as_posix()
        try:
            files[rel] = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
    outputs, _ = dvc_outputs.parse_outputs(files)
    return outputs


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
        self.cache = dest / ".dvc" / "cache" / "files" / "md5"
        self.outputs = outputs
        self.files_total = sum((o.nfiles or 0) if o.is_dir else 1 for o in outputs)
        self.bytes_total = sum(o.size or 0 for o in outputs)
        self._dir_entries: dict[str, list[str]] = {}
        self._found: dict[str, int] = {}

    def _object(self, md5: str) -> Path:
        return self.cache / md5[:2] / md5[2:]

    def measure(self) -> tuple[int, int]:
        """Objects found once stay found: each poll only looks for the missing ones."""
        for out in self.outputs:
            if not out.md5:
                continue
            for md5 in self._entries(out.md5) if out.is_dir else [out.md5]:
                if md5 not in self._found:
                    n = _size(self._object(md5))
                    if n is not None:
                        self._found[md5] = n
        return len(self._found), sum(self._found.values())

    def _entries(self, dir_md5: str) -> list[str]:
        if dir_md5 not in self._dir_entries:
            try:
                listing = json.loads(self._object(dir_md5).read_text())
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
    fresh = not (dest / ".git").exists()
    if not fresh and not _same_repo(dest, plan.repo_url):
        raise JobError(f"{job.dest} holds another repository; choose another dest")
    if fresh and dest.exists() and any(dest.iterdir()):
        raise JobError(f"{job.dest} exists and is not a working copy of {plan.item}")
    previous = None if fresh else gitops.head(dest)
    try:
        job.state = "cloning"
        if fresh:
            dest.parent.mkdir(parents=True, exist_ok=True)
            gitops.clone(plan.repo_url, dest, token=plan.token, cancel=job.cancel_event)
        else:
            if gitops.is_dirty(dest):
                raise JobError(f"{job.dest} has uncommitted changes; commit or discard them")
            gitops.fetch(dest, token=plan.token, cancel=job.cancel_event)
        job.check_cancelled()
        commit = gitops.resolve(dest, plan.rev or gitops.default_branch(dest))
        gitops.checkout(dest, commit)
        gitops.exclude(dest, f"/{MANIFEST}")
        job.check_cancelled()

        job.state = "pulling"
        outputs = expected_outputs(dest)
        progress = CacheProgress(dest, outputs)
        job.files_total, job.bytes_total = progress.files_total, progress.bytes_total
        _run_worker(job, dest, remotes_for(dest, plan.remote_settings), progress, plan.jobs)
        job.files_done, job.bytes_done = progress.measure()
        job.files_done = max(job.files_done, job.files_total or 0)
        manifest = {
            "item": plan.item, "rev": plan.rev or gitops.default_branch(dest), "commit": commit,
            "source": plan.repo_url, "pulled_at": iso(datetime.now(timezone.utc)),
            "outputs": [{"path": o.path, "md5": o.md5, "size": o.size, "nfiles": o.nfiles}
                        for o in outputs],
        }
        (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return {"commit": commit, "outputs": manifest["outputs"]}
    except BaseException:
        _restore(dest, fresh, previous, plan)
        raise


def _same_repo(dest: Path, url: str) -> bool:
    try:
        origin = gitops.run_git(["remote", "get-url", "origin"], cwd=dest, token=None)
    except JobError:
        return False
    return origin.rstrip("/").removesuffix(".git") == url.rstrip("/").removesuffix(".git")


def _run_worker(job: Job, dest: Path, remotes: dict, progress: CacheProgress | None,
                jobs: int | None, action: str = "pull") -> None:
    request = json.dumps({"repo": str(dest), "remotes": remotes, "jobs": jobs, "action": action})
    # no usage report from DVC: a server's pulls are not a person's commands
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sharinghub_server.datasets.worker"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=dest, text=True, env=env,
                            start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(request)
    proc.stdin.close()
    while proc.poll() is None:
        if job.cancel_event.is_set():
            _kill(proc)
            raise Cancelled
        if progress is not None:
            job.files_done, job.bytes_done = progress.measure()
        time.sleep(_POLL)
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    result = _last_json(out)
    if proc.returncode != 0 or not result.get("ok"):
        message = result.get("error") or (err.strip().splitlines() or ["DVC failed"])[-1]
        raise JobError(f"dvc {action} failed: {message}")


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _restore(dest: Path, fresh: bool, previous: str | None, plan: PullPlan) -> None:
    """Leave the destination as it was before the job."""
    if fresh:
        shutil.rmtree(dest, ignore_errors=True)
        return
    if previous is None or gitops.head(dest) == previous:
        return
    gitops.checkout(dest, previous)
    dummy = Job(kind="pull", item=plan.item, rev=None, dest=str(dest))
    with contextlib.suppress(JobError):  # the previous version's data is still in the cache
        _run_worker(dummy, dest, remotes_for(dest, plan.remote_settings), None, plan.jobs,
                    action="checkout")
