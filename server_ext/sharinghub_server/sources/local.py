"""Local project folders, the embedded default: each subfolder with a README is a project.

Item id ``<folder name>/<subfolder name>``, topics from the front-matter key ``topics``. A
project that is a git repository reports its commits and tags like a GitLab project would.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path, PurePath

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


def front_matter_topics(meta: dict) -> list[str]:
    """A local project's topics: its front matter's ``topics`` (a list, or one string)."""
    raw = meta.get("topics") or []
    return [str(t) for t in raw] if isinstance(raw, list) else [str(raw)]


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(timezone.utc)
