"""Local project folders, the embedded default: each subfolder with a README is a project.

Item id ``<folder name>/<subfolder name>``, topics from the front-matter key ``topics``. A
project that is a git repository reports its commits and tags like a GitLab project would.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePath, PurePosixPath
from typing import IO, cast

from ..catalog.dvc_outputs import is_dvc_file
from ..catalog.frontmatter import parse_readme
from ..catalog.timeutil import iso
from .base import SourceError, repo_fingerprint
from .records import ProjectRecord, Ref, Tag

_README_NAMES = ("README.md", "readme.md", "Readme.md")
_SKIP_DIRS = {".git", ".dvc/cache", ".dvc/tmp", "__pycache__", ".ipynb_checkpoints",
              "node_modules", ".venv"}
_MAX_FILES = 20000
#: files that hold credentials by convention, wherever they are
_CREDENTIAL_FILES = {".env", ".netrc", "_netrc", ".git-credentials"}
#: what ``.dvc/`` shares through git; the rest (``config.local``, ``tmp/``, ``cache/``) is
#: this machine's
_DVC_SHARED = (("config",), (".gitignore",))


def served(path: PurePath) -> bool:
    """Whether a local project's file (``path`` relative to the project) may be downloaded:
    what the project shares, not what only this machine has. Nothing under ``.git``; under
    ``.dvc`` only ``config`` and ``.gitignore`` (``config.local`` is where DVC keeps
    credentials); no credential file anywhere."""
    parts = path.parts
    if ".git" in parts or not _CREDENTIAL_FILES.isdisjoint(parts):
        return False
    return all(parts[i + 1:] in _DVC_SHARED for i, part in enumerate(parts) if part == ".dvc")


#: what a ``ref`` may be (a branch, a tag, a commit: as GitLab's ``ref``), after git's own
#: ref name rules: never an option (``-...``), a revision expression (``~ ^ : @{``) or a
#: pathspec (``? * [``)
_BAD_REF = re.compile(r"^-|[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^/|/$|\.$|\.lock$|^@$")
_SYMLINK_HOPS = 8
_LFS_POINTER = re.compile(
    rb"^version https://git-lfs\.github\.com/spec/v1\n(?:[a-z0-9.-]+ [^\n]*\n)*?"
    rb"oid sha256:([0-9a-f]{64})\n(?:[a-z0-9.-]+ [^\n]*\n)*?size (\d+)\n")


class RevisionNotFound(LookupError):
    """No such revision in a local project, or no such file at it (404)."""


def valid_ref(ref: str) -> bool:
    """Whether ``ref`` can name a branch, tag or commit (and nothing else) for git."""
    return 0 < len(ref) <= 255 and not _BAD_REF.search(ref)


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                             timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def project_dirs(folder: Path) -> list[tuple[Path, str]]:
    """The projects of ``folder``: its subfolders (not hidden) with a README, and the
    README's name."""
    found = []
    for sub in sorted(folder.iterdir()):
        if sub.is_dir() and not sub.name.startswith("."):
            readme = next((n for n in _README_NAMES if (sub / n).is_file()), None)
            if readme:
                found.append((sub, readme))
    return found


def folders_with_projects(folder: Path, depth: int = 3) -> list[Path]:
    """Folders below ``folder`` (at most ``depth`` levels, hidden ones skipped) that hold
    projects: what a user who pointed at ``folder`` probably meant."""
    found, level = [], [folder]
    for _ in range(depth):
        level = [sub for parent in level for sub in sorted(parent.iterdir())
                 if sub.is_dir() and not sub.name.startswith(".") and sub.name not in
                 _SKIP_DIRS]
        found += [sub for sub in level if project_dirs(sub)]
        if found:
            return found
    return found


class LocalSource:
    def __init__(self, folder: str | os.PathLike[str], *, workers: int = 4) -> None:
        self.folder = Path(folder).expanduser().resolve()
        self.key = f"local:{self.folder}"
        self.workers = workers

    def __repr__(self) -> str:
        return f"LocalSource({str(self.folder)!r})"

    def _projects(self) -> list[tuple[Path, str]]:
        if not self.folder.is_dir():
            raise SourceError(f"local projects folder {self.folder} does not exist")
        return project_dirs(self.folder)

    def list_projects(self, topics: list[str]) -> list[ProjectRecord]:
        wanted = set(topics)
        records = []
        for path, readme_name in self._projects():
            readme = (path / readme_name).read_text(encoding="utf-8", errors="replace")
            project_topics = front_matter_topics(parse_readme(readme)[0])
            if not wanted.intersection(project_topics):
                continue
            records.append(self._record(path, readme, project_topics))
        return records

    def project(self, project_id: str) -> ProjectRecord | None:
        """The project ``<folder name>/<name>``, whatever its topics (None if there is no
        such folder with a README)."""
        prefix, _, name = project_id.partition("/")
        if prefix != self.folder.name or not name or "/" in name or name.startswith("."):
            return None
        path = self.folder / name
        readme_name = next((n for n in _README_NAMES if (path / n).is_file()), None)
        if readme_name is None:
            return None
        readme = (path / readme_name).read_text(encoding="utf-8", errors="replace")
        return self._record(path, readme, front_matter_topics(parse_readme(readme)[0]))

    def _record(self, path: Path, readme: str, topics: list[str]) -> ProjectRecord:
        files, newest, oldest = self._walk(path)
        is_git = (path / ".git").exists()
        created = last = None
        branch = "main"
        if is_git:
            branch = _git(path, "rev-parse", "--abbrev-ref", "HEAD") or "main"
            dates = _git(path, "log", "--format=%cI", "--reverse")
            if dates:
                lines = dates.splitlines()
                created, last = lines[0], lines[-1]
        created = created or iso(oldest)
        # the newest of commit time and file time: uncommitted edits count as activity
        last_ts = max(filter(None, [newest, _parse(last)]), default=newest)
        return ProjectRecord(
            source=self.key,
            id=f"{self.folder.name}/{path.name}",
            name=path.name,
            topics=topics,
            created_at=created,
            last_activity_at=iso(last_ts),
            web_url="",
            host_name=f"Local projects ({self.folder})",
            host_url="",
            default_branch=branch,
            visibility="private",
            repo_url=str(path) if is_git else None,
            readme=readme,
            files=files,
        )

    def _walk(self, root: Path) -> tuple[list[str], datetime, datetime]:
        files: list[str] = []
        newest = oldest = None
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
            dirnames[:] = sorted(d for d in dirnames
                                 if (f"{rel_dir}/{d}" if rel_dir else d) not in _SKIP_DIRS
                                 and d not in _SKIP_DIRS)
            for name in sorted(filenames):
                rel = f"{rel_dir}/{name}" if rel_dir else name
                try:
                    mtime = os.stat(os.path.join(dirpath, name)).st_mtime
                except OSError:
                    continue
                newest = mtime if newest is None else max(newest, mtime)
                oldest = mtime if oldest is None else min(oldest, mtime)
                if len(files) < _MAX_FILES:
                    files.append(rel)
        now = datetime.now(timezone.utc).timestamp()
        return (sorted(files), datetime.fromtimestamp(newest or now, timezone.utc),
                datetime.fromtimestamp(oldest or now, timezone.utc))

    def fetch(self, project: ProjectRecord, *, fingerprint: bool) -> ProjectRecord:
        path = self.folder / project.name
        if not path.is_dir():
            raise SourceError(f"{project.id}: folder {path} vanished")
        record = ProjectRecord.from_json(project.to_json())
        record.errors = []
        for rel in record.files:
            if is_dvc_file(rel):
                try:
                    record.dvc_files[rel] = (path / rel).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    record.errors.append(f"cannot read {rel}: {exc}")
        if record.repo_url:
            record.head_commit = _git(path, "rev-parse", "HEAD")
            record.tags = self._tags(path)
        return record

    def _tags(self, path: Path) -> list[Tag]:
        out = _git(path, "for-each-ref", "refs/tags",
                   "--format=%(refname:short)%09%(*objectname)%(objectname)%09%(creatordate:iso-strict)")
        tags = []
        for line in (out or "").splitlines():
            name, commit, date = [*line.split("\t"), "", ""][:3]
            tags.append(Tag(name=name, commit=commit[:40], date=date or None))
        return tags

    def _repo(self, project: ProjectRecord) -> Path:
        path = self.folder / project.name
        if not (path / ".git").exists():
            raise SourceError(f"{project.id} is not a git repository")
        return path

    def refs(self, project: ProjectRecord) -> list[Ref]:
        """Tags and the current branch's head of a local git project."""
        path = self._repo(project)
        branch = _git(path, "rev-parse", "--abbrev-ref", "HEAD") or project.default_branch
        head = _git(path, "log", "-1", "--format=%H%x09%cI") or ""
        commit, _, date = head.partition("\t")
        refs = [Ref(branch, "branch", commit, date or None)]
        out = _git(path, "for-each-ref", "refs/tags", "--format=%(refname:short)%09"
                   "%(*objectname)%(objectname)%09%(*committerdate:iso-strict)"
                   "%(committerdate:iso-strict)")
        for line in (out or "").splitlines():
            name, sha, date = [*line.split("\t"), "", ""][:3]
            refs.append(Ref(name, "tag", sha[:40], date[:25] or None))
        return refs

    def dvc_files_at(self, project: ProjectRecord, commit: str) -> dict[str, str]:
        path = self._repo(project)
        listing = _git(path, "ls-tree", "-r", "--name-only", commit)
        if listing is None:
            raise SourceError(f"{project.id} has no revision {commit!r}")
        files = {}
        for rel in listing.splitlines():
            if is_dvc_file(rel):
                text = _git(path, "show", f"{commit}:{rel}")
                if text is not None:
                    files[rel] = text + "\n"
        return files

    def clone_url(self, project: ProjectRecord) -> str:
        return str(self._repo(project))

    def git_token(self) -> str | None:
        return None

    def fingerprint(self, project: ProjectRecord) -> str:
        record = self.fetch(project, fingerprint=True)
        return repo_fingerprint(record.head_commit, record.tags)


# --- files at a revision (downloads) ---------------------------------------------------------


@dataclass(frozen=True)
class CommittedFile:
    """A file of a local git project as committed at a revision: its blob, and a file on
    this machine that already holds its content, if any: ``here``, the working tree's copy
    when git finds it unchanged; ``lfs``, the local LFS object the blob points to when the
    blob is an LFS pointer (the content that GitLab's ``lfs=true`` would serve)."""

    repo: Path
    path_in_repo: str  # the file finally read (symlinks in the tree followed)
    blob: str
    size: int
    here: Path | None = None
    lfs: Path | None = None


def committed_file(repo: Path, ref: str, path: str,
                   allowed: Callable[[PurePath], bool]) -> CommittedFile:
    """The file ``path`` (normalised, relative) of the git repository ``repo`` at ``ref``.

    Symlinks committed in the tree are followed inside it (``allowed(PurePosixPath)`` must
    accept every path on the way); a tree, a submodule, a link leaving the tree or too many
    hops are not files. Raises :class:`RevisionNotFound` for an unknown ref or path."""
    if not valid_ref(ref):
        raise ValueError(f"bad ref {ref!r}: a branch, tag or commit")
    commit = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options",
                  f"{ref}^{{commit}}")
    if not commit:
        raise RevisionNotFound(f"no revision {ref!r}")
    current = path
    for _hop in range(_SYMLINK_HOPS):
        if not allowed(PurePosixPath(current)):
            break
        entry = _tree_entry(repo, commit, current)
        if entry is None:
            break
        mode, kind, blob, size = entry
        if kind != "blob":
            break
        if mode != "120000":
            lfs = _lfs_object(repo, blob, size)
            here = None if lfs else _unchanged_here(repo, commit, current, size)
            return CommittedFile(repo, current, blob, size, here=here, lfs=lfs)
        target = _git_bytes(repo, "cat-file", "blob", blob, limit=4096)
        if target is None:
            break
        name = target.decode("utf-8", errors="replace")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(current), name))
        if name.startswith("/") or resolved == ".." or resolved.startswith("../"):
            break
        current = resolved
    raise RevisionNotFound(f"no file {path!r} at {ref!r}")


def _tree_entry(repo: Path, commit: str, path: str) -> tuple[str, str, str, int] | None:
    """mode, type, object and size of ``path`` in ``commit``'s tree (None if absent)."""
    out = _git_bytes(repo, "--literal-pathspecs", "ls-tree", "-z", "-l", "--full-tree",
                     commit, "--", path)
    for record in (out or b"").split(b"\0"):
        meta, _, name = record.partition(b"\t")
        if name.decode("utf-8", errors="surrogateescape") != path:
            continue
        mode, kind, blob, size = meta.decode().split()
        return mode, kind, blob, int(size) if size.isdigit() else 0
    return None


def _unchanged_here(repo: Path, commit: str, path: str, size: int) -> Path | None:
    """The working tree's ``path`` if it holds the committed bytes (a regular file inside
    the project that git finds unchanged since ``commit``): no copy of the blob needed."""
    here = repo / path
    try:
        if (here.is_file() and not here.is_symlink() and here.stat().st_size == size
                and here.resolve().is_relative_to(repo.resolve())):
            unchanged = subprocess.run(
                ["git", "-C", str(repo), "-c", "core.fsmonitor=false", "--literal-pathspecs",
                 "diff", "--quiet",
                 "--no-ext-diff", "--no-textconv", commit, "--", path],
                capture_output=True, timeout=60)
            if unchanged.returncode == 0:
                return here
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def _lfs_object(repo: Path, blob: str, size: int) -> Path | None:
    """The local LFS object of a blob that is an LFS pointer (None: not one, or not here)."""
    if size > 1024:
        return None
    m = _LFS_POINTER.match(_git_bytes(repo, "cat-file", "blob", blob, limit=1024) or b"")
    common = _git(repo, "rev-parse", "--git-common-dir") if m else None
    if not m or not common:
        return None
    oid = m[1].decode()
    obj = repo / common / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    try:
        return obj if obj.is_file() and obj.stat().st_size == int(m[2]) else None
    except OSError:
        return None


def _git_bytes(repo: Path, *args: str, limit: int | None = None) -> bytes | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                             timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if limit is None or len(out.stdout) <= limit else None


class BlobCache:
    """Blobs written out to files, so that the download endpoint streams (and serves ranges
    of) a file committed at an old revision as it does a working-tree file: copied from
    ``git cat-file`` in chunks (never whole in memory), kept by blob id and name in a private
    temporary folder, reused, the least recently used removed beyond ``limit`` bytes (never
    one used in the last ``keep_for`` seconds, which a download may be about to open)."""

    def __init__(self, limit: int = 1 << 30, keep_for: float = 120) -> None:
        self.limit = limit
        self.keep_for = keep_for
        self._folder: Path | None = None
        self._lock = threading.Lock()

    def _slot(self, key: str, found: CommittedFile) -> Path:
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="sharinghub-blobs-"))
            folder = self._folder / key
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / (posixpath.basename(found.path_in_repo) or "file")

    def alias(self, found: CommittedFile, path: Path) -> Path:
        """``path`` under the file's own name (a link in the cache), so that the download
        is named and typed after the file, not after an object id."""
        target = self._slot(f"link-{found.blob}", found)
        if target.is_symlink() and target.resolve() == path.resolve():
            return target
        part = target.with_name(_part_name())
        part.symlink_to(path.resolve())
        os.replace(part, target)
        return target

    def file(self, found: CommittedFile) -> Path:
        """The blob's content in a file named as the committed file."""
        target = self._slot(found.blob, found)
        folder = target.parent
        try:
            if target.stat().st_size == found.size:
                os.utime(target)  # recently used
                return target
        except OSError:
            pass
        part = folder / _part_name()
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                proc = subprocess.Popen(
                    ["git", "-C", str(found.repo), "cat-file", "blob", found.blob],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
                stdout = cast(IO[bytes], proc.stdout)
                try:
                    shutil.copyfileobj(stdout, out, 1 << 20)
                finally:
                    stdout.close()
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            if proc.returncode != 0 or part.stat().st_size != found.size:
                raise SourceError(f"git could not read {found.path_in_repo}")
            os.replace(part, target)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SourceError(f"git could not read {found.path_in_repo}: {exc}") from None
        finally:
            part.unlink(missing_ok=True)
        self._evict(target)
        return target

    def _evict(self, keep: Path) -> None:
        with self._lock:
            if self._folder is None:
                return
            files = []
            for path in self._folder.glob("*/*"):
                try:
                    st = path.lstat()
                except OSError:
                    continue
                if not _PART.match(path.name):  # (being written)
                    files.append((st.st_mtime, st.st_size, path))
            total = sum(size for _, size, _ in files)
            recent = time.time() - self.keep_for
            for mtime, size, path in sorted(files):
                if total <= self.limit:
                    break
                if path != keep and mtime < recent:
                    path.unlink(missing_ok=True)
                    total -= size
                    with contextlib.suppress(OSError):  # (if it was the last one)
                        path.parent.rmdir()

    def close(self) -> None:
        with self._lock:
            folder, self._folder = self._folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


_PART = re.compile(r"^\.[0-9a-f]{32}\.part$")


def _part_name() -> str:
    return f".{uuid.uuid4().hex}.part"


def front_matter_topics(meta: dict) -> list[str]:
    """A local project's topics: its front matter's ``topics`` (a list, or one string)."""
    raw = meta.get("topics") or []
    return [str(t) for t in raw] if isinstance(raw, list) else [str(raw)]


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(timezone.utc)
