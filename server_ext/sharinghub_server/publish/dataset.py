"""A dataset version published from the workspace, as a job: ``dvc add`` the data, ``dvc
push`` it to the project's default remote, commit the pointer files, tag the version, push
commit and tag in one ``git push --atomic``, then re-index the item.

Where it happens (the rule; :func:`locate` applies it before the job starts):

- ``path`` inside a working copy of the item (walking up from ``path`` to the Jupyter root,
  the first folder holding ``.git``, whose ``origin`` is the item's repository): that working
  copy. ``path`` below its top is one DVC output; ``path`` at its top publishes every
  top-level entry git does not track (not hidden): the outputs it had, updated, and new ones.
  An output missing from the folder keeps its pointer file (delete ``X.dvc`` to drop it).
- ``path`` inside a local project's own folder: the same, in that folder, which is its own
  origin: commit and tag there, nothing to push.
- ``path`` in no working copy: ``path`` (a folder) becomes one, in place: the item's
  repository is cloned into it (``git init`` + fetch + checkout of the default branch;
  refused if the repository has a file or folder of the same name), and every top-level
  entry of ``path`` (not hidden) is an output. The next publish from ``path`` finds it.

The working copy must be at the head of the item's default branch and have no uncommitted
changes but the outputs' pointer files and ``.gitignore`` files. A local project reached
through a clone takes the push into its checked-out branch (``receive.denyCurrentBranch =
updateInstead``: its files follow, if it has no uncommitted changes).

A failure or a cancel leaves everything as it was: the workspace (pointer files, index, HEAD,
an in-place clone removed; the data itself is never touched, DVC copies it into its cache),
the DVC remote (the objects it lacked and received are removed again) and GitLab (the atomic
push moved both refs or neither). A cancel that comes while git pushes, once the push went
through, changes nothing: the version is complete and the job ends ``done``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..catalog.timeutil import iso
from ..datasets import gitops
from ..datasets.pull import MANIFEST, expected_outputs, remotes_for, run_worker
from ..datasets.safety import check_tree
from ..jobs import Cancelled, Job, JobError
from ..service import BadRequest, Conflict

log = logging.getLogger(__name__)


@dataclass
class Place:
    """Where a publish works (see the module's rule)."""

    workdir: Path
    targets: list[str]
    fresh: bool  # clone the item into ``workdir`` first
    push: bool  # False: ``workdir`` is the local project itself


def locate(root: Path, path: Path, *, repo_url: str, project_dir: Path | None,
           branch: str, head: str | None) -> Place:
    """Apply the rule to ``path`` (absolute, resolved, inside ``root``), checking what can
    be checked at once: BadRequest (400) or Conflict (409) with one line, nothing changed.
    ``project_dir`` is a local project's folder, ``head`` the default branch's commit."""
    shown = path.relative_to(root).as_posix()
    found = next((p for p in (path, *path.parents)
                  if p.is_relative_to(root) and (p / ".git").exists()), None)
    if found is None:
        if not path.is_dir():
            raise BadRequest(f"{shown} is a file outside any working copy: put it in a folder "
                             "of its own and publish the folder")
        if path == root:
            raise BadRequest("the Jupyter root itself cannot be published: choose a folder")
        targets = sorted(n for n in os.listdir(path)
                         if not n.startswith(".") and not _dvc_metadata(n))
        if not _has_files(path, targets):
            raise BadRequest(f"{shown} is empty: nothing to publish")
        return Place(path, targets, fresh=True, push=True)

    workdir = found
    own = project_dir is not None and workdir == project_dir.resolve()
    if not own and not _same_origin(workdir, repo_url):
        raise BadRequest(f"{shown} is inside {_rel(root, workdir)}, a working copy of another "
                         "repository: publish from a folder outside it")
    if path == workdir:
        tracked = {p.split("/", 1)[0] for p in _git_lines(workdir, "ls-files", "-z")}
        targets = sorted(n for n in os.listdir(path) if not n.startswith(".")
                         and n not in tracked and not _dvc_metadata(n))
    else:
        rel = path.relative_to(workdir).as_posix()  # (no hidden part: checked in the root)
        outer = next((o.path for o in expected_outputs(workdir)
                      if rel.startswith(o.path.rstrip("/") + "/")), None)
        if outer is not None:
            raise BadRequest(f"{shown} is inside the DVC output {outer!r} of "
                             f"{_rel(root, workdir)}: publish {_rel(root, workdir / outer)}")
        if _git_lines(workdir, "ls-files", "-z", "--", rel):
            raise BadRequest(f"{shown} holds files tracked by git: DVC publishes data git "
                             "does not track")
        targets = [rel]
    if not _has_files(workdir, targets):
        raise BadRequest(f"{shown} is empty: nothing to publish")
    allowed = set(related_files(targets))
    dirty = [p for p in _changed(workdir) if p not in allowed]
    if dirty:
        more = f" (and {len(dirty) - 1} more)" if len(dirty) > 1 else ""
        raise Conflict(f"{_rel(root, workdir)} has uncommitted changes to {dirty[0]!r}{more}: "
                       "commit or discard them first")
    if not own:
        current = gitops.head(workdir)
        if head is not None and current != head:
            raise Conflict(f"{_rel(root, workdir)} is not at the head of {branch} "
                           f"({(current or 'no commit')[:12]} instead of {head[:12]}): pull "
                           "the latest version first")
    return Place(workdir, targets, fresh=False, push=not own)


def _dvc_metadata(name: str) -> bool:
    """DVC's own files, never outputs."""
    return name.endswith(".dvc") or name in ("dvc.yaml", "dvc.lock")


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else "the Jupyter root"


def _git_lines(workdir: Path, *args: str) -> list[str]:
    out = gitops.run_git(list(args), cwd=workdir, token=None)
    return [p for p in out.split("\0") if p] if "-z" in args else out.splitlines()


def _changed(workdir: Path) -> list[str]:
    """Tracked files with uncommitted changes (staged or not)."""
    out = gitops.run_git(["diff", "HEAD", "--name-only", "--no-renames", "-z"], cwd=workdir,
                         token=None)
    return [p for p in out.split("\0") if p]


def _same_origin(workdir: Path, url: str) -> bool:
    try:
        origin = gitops.run_git(["remote", "get-url", "origin"], cwd=workdir, token=None)
    except JobError:
        return False
    if "://" not in url:  # a local project: compare folders
        return Path(origin).expanduser().resolve() == Path(url).resolve()
    return origin.rstrip("/").removesuffix(".git") == url.rstrip("/").removesuffix(".git")


def _has_files(workdir: Path, targets: list[str]) -> bool:
    for target in targets:
        path = workdir / target
        if path.is_file():
            return True
        for _dirpath, _dirs, names in os.walk(path):
            if names:
                return True
    return False


@dataclass
class PublishPlan:
    item: str
    version: str  # the new tag
    message: str
    workdir: Path  # the working copy (absolute; an in-place clone when ``fresh``)
    targets: list[str]  # the outputs, relative to ``workdir``
    repo_url: str  # origin: the project's clone URL (never with credentials) or folder
    branch: str  # the project's default branch
    fresh: bool = False  # clone the item into ``workdir`` first
    push: bool = True  # False: ``workdir`` is the local project itself
    token: str | None = None
    remote_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` when git's config names nobody
    identity: dict[str, str] = field(default_factory=dict)
    reindex: Callable[[], Any] | None = None
    jobs: int | None = None

    @property
    def local_origin(self) -> bool:
        return "://" not in self.repo_url


@dataclass
class _Before:
    """What the workspace was before the job, to put back on failure or cancel."""

    entries: set[str] | None = None  # an in-place clone: the folder's entries
    head: str | None = None
    head_ref: str | None = None  # the branch HEAD was on (None: detached)
    index: bytes | None = None
    files: dict[str, bytes | None] = field(default_factory=dict)


def related_files(targets: list[str]) -> list[str]:
    """The files a publish of ``targets`` writes in git: each output's pointer file and the
    ``.gitignore`` next to it (the only uncommitted changes a working copy may have)."""
    found: list[str] = []
    for target in targets:
        for path in (f"{target}.dvc", posixpath.join(posixpath.dirname(target), ".gitignore")):
            if path not in found:
                found.append(path)
    return found


def run_publish(job: Job, plan: PublishPlan) -> dict[str, Any]:
    before = _snapshot(plan)
    pushed_objects: list[str] = []
    try:
        if plan.fresh:
            job.state = "cloning"
            _clone_in_place(job, plan, before.entries or set())
        levels = check_tree(plan.workdir)
        job.check_cancelled()

        job.files_total, job.bytes_total = _measure(plan.workdir, plan.targets)
        job.state = "pushing"

        def on_message(message: dict[str, Any]) -> None:
            if isinstance(message.get("plan"), dict):
                found = message["plan"]
                pushed_objects[:] = found.get("new") or []
                job.files_total, job.bytes_total = found["files_total"], found["bytes_total"]
                job.files_done, job.bytes_done = found["files_done"], found["bytes_done"]
            elif isinstance(message.get("progress"), list):
                job.files_done, job.bytes_done = message["progress"]

        result = run_worker(job, plan.workdir, remotes_for(plan.workdir, plan.remote_settings),
                             None, plan.jobs, action="publish", config_levels=levels,
                             extra={"targets": plan.targets}, on_message=on_message)
        job.check_cancelled()
        commit = _commit_and_tag(plan)
        job.check_cancelled()
        _push(job, plan, commit)
    except BaseException as exc:
        _undo(plan, before, pushed_objects)
        if isinstance(exc, JobError):
            # the user knows the folder by its path in the Jupyter root
            raise JobError(str(exc).replace(str(plan.workdir), job.dest)) from None
        raise
    indexed = True
    if plan.reindex is not None:
        try:
            plan.reindex()
        except Exception:  # the version is out: a failed re-index waits for the next crawl
            log.exception("sharinghub: re-indexing %s after its publish failed", plan.item)
            indexed = False
    _update_manifest(plan, commit)
    return {"item": plan.item, "rev": plan.version, "commit": commit,
            "outputs": result.get("outputs") or [], "indexed": indexed}


# --- steps ----------------------------------------------------------------------------------

def _git(plan: PublishPlan, *args: str, **kwargs: Any) -> str:
    return gitops.run_git(list(args), cwd=plan.workdir, token=None, **kwargs)


def _snapshot(plan: PublishPlan) -> _Before:
    if plan.fresh:
        return _Before(entries=set(os.listdir(plan.workdir)))
    index = Path(plan.workdir, _git(plan, "rev-parse", "--git-path", "index"))
    files: dict[str, bytes | None] = {}
    for rel in related_files(plan.targets):
        path = plan.workdir / rel
        files[rel] = path.read_bytes() if path.is_file() else None
    head_ref = None
    with contextlib.suppress(JobError):
        head_ref = _git(plan, "symbolic-ref", "-q", "HEAD")
    return _Before(head=gitops.head(plan.workdir), head_ref=head_ref,
                   index=index.read_bytes() if index.is_file() else None, files=files)


def _clone_in_place(job: Job, plan: PublishPlan, entries: set[str]) -> None:
    """Make ``workdir`` a working copy of the item at its default branch's head, keeping
    what is in it; refused when the repository has an entry of the same name."""
    _git(plan, "init", "-q")
    _git(plan, "remote", "add", "origin", plan.repo_url)
    gitops.fetch(plan.workdir, plan.repo_url, token=plan.token, cancel=job.cancel_event)
    start = f"origin/{plan.branch}"
    tracked = set(_git(plan, "ls-tree", "--name-only", "-z", start).split("\0")) - {""}
    clash = sorted(tracked & entries)
    if clash:
        raise JobError(f"{job.dest} holds {clash[0]!r}, which {plan.item}'s repository has "
                       "too: move it away, or publish from a working copy of the item")
    _git(plan, "checkout", "-q", "-B", plan.branch, start)


def _measure(workdir: Path, targets: list[str]) -> tuple[int, int]:
    """Files and bytes of the outputs, before DVC counts them."""
    files = size = 0
    for target in targets:
        path = workdir / target
        walked = [(str(path.parent), [], [path.name])] if path.is_file() else os.walk(path)
        for dirpath, _dirs, names in walked:
            for name in names:
                with contextlib.suppress(OSError):
                    size += os.stat(os.path.join(dirpath, name)).st_size
                    files += 1
    return files, size


def _commit_and_tag(plan: PublishPlan) -> str:
    """Commit the pointer files (nothing to commit when the data did not change: the tag
    then names the current commit) and tag the version."""
    paths = [rel for rel in related_files(plan.targets) if (plan.workdir / rel).is_file()]
    _git(plan, "add", "--", *paths)
    if _git(plan, "diff", "--cached", "--name-only"):
        _git(plan, "commit", "-q", "-m", plan.message, extra_env=plan.identity)
    commit = _git(plan, "rev-parse", "HEAD")
    _git(plan, "tag", "-a", plan.version, "-m", plan.message, commit, extra_env=plan.identity)
    return commit


def _push(job: Job, plan: PublishPlan, commit: str) -> None:
    """Branch and tag in one atomic push: GitLab gets both or neither."""
    if not plan.push:
        return
    # a local project takes the push into its checked-out branch, files included (git keeps
    # environment config from the receiving side of a local push: the option it runs with)
    local = (["--receive-pack=git -c receive.denyCurrentBranch=updateInstead receive-pack"]
             if plan.local_origin else [])
    try:
        gitops.run_git(["push", "--atomic", "--porcelain", *local, "origin",
                        f"{commit}:refs/heads/{plan.branch}", f"refs/tags/{plan.version}"],
                       cwd=plan.workdir, token=plan.token, url=plan.repo_url,
                       cancel=job.cancel_event)
    except Cancelled:
        if not _published(plan):
            raise
        log.info("sharinghub: %s %s was complete when its publish was cancelled", plan.item,
                 plan.version)


def _published(plan: PublishPlan) -> bool:
    """Whether the origin has the tag as pushed (a cancel that came too late)."""
    try:
        local = _git(plan, "rev-parse", f"refs/tags/{plan.version}")
        remote = gitops.run_git(["ls-remote", "origin", f"refs/tags/{plan.version}"],
                                cwd=plan.workdir, token=plan.token, url=plan.repo_url,
                                timeout=60)
    except JobError:
        return False
    return any(line.split("\t")[0] == local for line in remote.splitlines())


def _undo(plan: PublishPlan, before: _Before, pushed_objects: list[str]) -> None:
    """Put the remote and the workspace back as they were."""
    if pushed_objects:  # (while the repository's DVC config is still there)
        quiet = Job(kind="publish", item=plan.item, rev=None, dest=str(plan.workdir))
        try:
            run_worker(quiet, plan.workdir, remotes_for(plan.workdir, plan.remote_settings),
                        None, plan.jobs, action="forget", extra={"oids": pushed_objects})
        except JobError as exc:
            log.warning("sharinghub: objects pushed for %s %s stay on the remote: %s",
                        plan.item, plan.version, exc)
    if before.entries is not None:  # an in-place clone: remove what it added
        for name in set(os.listdir(plan.workdir)) - before.entries:
            path = plan.workdir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        return
    with contextlib.suppress(JobError):
        _git(plan, "tag", "-d", plan.version)
    for rel, data in before.files.items():
        path = plan.workdir / rel
        with contextlib.suppress(OSError):
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
    if before.head is not None:
        with contextlib.suppress(JobError):
            if before.head_ref:
                _git(plan, "update-ref", before.head_ref, before.head)
            else:
                _git(plan, "update-ref", "--no-deref", "HEAD", before.head)
    if before.index is not None:
        with contextlib.suppress(JobError, OSError):
            index = Path(plan.workdir, _git(plan, "rev-parse", "--git-path", "index"))
            index.write_bytes(before.index)


def _update_manifest(plan: PublishPlan, commit: str) -> None:
    """A working copy made by a pull says which version it holds (MLflow lineage reads it):
    now the published one."""
    path = plan.workdir / MANIFEST
    if not path.is_file():
        return
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    manifest.update({
        "rev": plan.version, "commit": commit,
        "published_at": iso(datetime.now(timezone.utc)),
        "outputs": [{"path": o.path, "md5": o.md5, "size": o.size, "nfiles": o.nfiles}
                    for o in expected_outputs(plan.workdir)]})
    with contextlib.suppress(OSError):
        path.write_text(json.dumps(manifest, indent=2) + "\n")
