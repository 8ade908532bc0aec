"""Real git repositories of DVC datasets, for tests and benchmarks.

:func:`make_dataset_repo` builds a small dataset project with real ``git`` and ``dvc`` commands:
``dvc init``, a remote (a local folder or ``s3://bucket/prefix``), two tagged versions of a
directory output (``data/``) and a file output (``labels.csv``), each ``dvc add``-ed and
``dvc push``-ed, and a bare clone to serve with
:meth:`tests.support.gitlab_server.GitLabTestServer.add_git_project`.  :func:`make_big_dataset`
builds one version of many files (benchmarks).  The returned :class:`DatasetRepo` tells what a
pulled workspace must contain at each tag.

Commits are deterministic (fixed author, committer and dates; the content is fixed or drawn
from a seeded RNG), so for a given git and DVC version the shas are too.  The committed
``.dvc/config`` only names the remote URL; ``remote_config`` (endpoint, credentials...) goes to
the untracked ``.dvc/config.local`` (as ``dvc remote modify --local`` does), so neither the
bare clone nor a clone of it holds credentials.

The ``dvc`` CLI of the running interpreter's environment is used; several DVC commands run in
one interpreter (:func:`run_dvc`), which keeps a dataset repository under ~2 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ATTACKS",
    "DEFAULT_VERSIONS",
    "DVC",
    "CommandError",
    "DatasetRepo",
    "Version",
    "configure_remote",
    "make_big_dataset",
    "make_dataset_repo",
    "make_hostile_repo",
    "make_legacy_repo",
    "run_dvc",
    "run_git",
    "tool_env",
]

#: The DVC command-line tool of this environment.
DVC = Path(sys.executable).parent / "dvc"

AUTHOR = ("Dataset Bot", "dataset.bot@example.com")

# Runs several DVC CLI invocations (``dvc.cli.main``, what the ``dvc`` script runs) in one
# interpreter, stopping at the first failure.
_DVC_BATCH = """
import json, sys
from dvc.cli import main
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    if code:
        sys.stderr.write("dvc %s failed with exit status %s\\n" % (" ".join(argv), code))
        sys.exit(code)
"""


class CommandError(subprocess.CalledProcessError):
    """A failed git or DVC command; its message includes the command's output."""

    def __str__(self) -> str:
        def text(value: bytes | str | None) -> str:
            if isinstance(value, bytes):
                return value.decode(errors="replace")
            return value or ""

        return (f"{super().__str__()}\n--- stdout:\n{text(self.stdout).strip()}"
                f"\n--- stderr:\n{text(self.stderr).strip()}")


@dataclass(frozen=True)
class Version:
    """One version of a dataset: its tag, commit date and the DVC-tracked files.

    ``files`` maps paths to contents; the first component of each path is a DVC output (a
    directory output when the path has more components, e.g. ``data/a.csv`` -> ``data``).
    """

    tag: str
    files: Mapping[str, bytes]
    date: str = "2024-03-01T10:00:00+00:00"
    message: str = ""


def _default_versions() -> tuple[Version, ...]:
    rng = random.Random(1234)
    v1 = {
        "data/images/scene-001.bin": rng.randbytes(3000),
        "data/images/scene-002.bin": rng.randbytes(2048),
        "data/metadata.json": b'{"sensor": "sentinel-2", "bands": ["B02", "B03", "B04"]}\n',
        "data/README.txt": b"Training tiles, version 1.0\n",
        "labels.csv": b"tile,label\nscene-001,water\nscene-002,forest\n",
    }
    v2 = dict(v1)
    v2["data/README.txt"] = b"Training tiles, version 1.1: one scene more, one less\n"  # modified
    v2["data/images/scene-003.bin"] = rng.randbytes(1500)  # added
    del v2["data/images/scene-002.bin"]  # removed
    v2["labels.csv"] = b"tile,label\nscene-001,water\nscene-003,urban\n"  # changed
    return (
        Version("v1.0", v1, "2024-03-01T10:00:00+00:00", "Dataset version 1.0"),
        Version("v1.1", v2, "2024-04-02T14:30:00+00:00", "Dataset version 1.1"),
    )


#: ``v1.0``: ``data/`` (4 files, 2 in ``data/images/``) and ``labels.csv``; ``v1.1`` changes
#: ``data/README.txt``, adds ``data/images/scene-003.bin``, removes ``data/images/scene-002.bin``
#: and changes ``labels.csv``.
DEFAULT_VERSIONS: tuple[Version, ...] = _default_versions()


@dataclass
class DatasetRepo:
    """A dataset repository built by :func:`make_dataset_repo` or :func:`make_big_dataset`.

    ``path`` is the working copy (with ``.dvc/config.local`` and a filled DVC cache), ``bare``
    a bare clone of it (no ``config.local``: what a server would hold).  Per tag:
    ``commits`` the commit sha, ``contents`` the DVC-tracked files (``{path: bytes}``; empty
    when ``make_big_dataset(keep_contents=False)``), ``md5s`` their md5 hex digests (always),
    ``outs`` the ``outs`` entry of each ``.dvc`` file (``{output: {"md5", "size", "nfiles"?,
    "hash", "path"}}``) and ``git_files`` every file committed to git (``{path: bytes}``).
    """

    name: str
    path: Path
    bare: Path
    remote_url: str
    remote_name: str
    remote_config: dict[str, str]
    tags: list[str]
    commits: dict[str, str]
    contents: dict[str, dict[str, bytes]]
    md5s: dict[str, dict[str, str]]
    outs: dict[str, dict[str, dict[str, Any]]]
    git_files: dict[str, dict[str, bytes]]
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def latest(self) -> str:
        return self.tags[-1]

    def outputs(self, tag: str) -> list[str]:
        """The DVC outputs (``data``, ``labels.csv``) at ``tag``."""
        return sorted(self.outs[tag])

    def diff_workspace(self, workspace: str | os.PathLike[str], tag: str) -> list[str]:
        """How the DVC outputs in ``workspace`` differ from ``tag`` (empty: identical, byte
        for byte; extra files in a directory output count)."""
        root = Path(workspace)
        expected = self.md5s[tag]
        problems: list[str] = []
        actual: dict[str, str] = {}
        for out in self.outputs(tag):
            target = root / out
            if target.is_dir():
                for file in sorted(p for p in target.rglob("*") if p.is_file()):
                    actual[file.relative_to(root).as_posix()] = _md5_file(file)
            elif target.is_file():
                actual[out] = _md5_file(target)
        for path in sorted(expected.keys() | actual.keys()):
            if path not in actual:
                problems.append(f"missing {path}")
            elif path not in expected:
                problems.append(f"unexpected {path}")
            elif actual[path] != expected[path]:
                problems.append(f"different {path}")
        return problems


def tool_env(home: str | os.PathLike[str], extra: Mapping[str, str] | None = None
             ) -> dict[str, str]:
    """An environment isolating git and DVC from the user's configuration: no global or
    system git config, no prompts, fixed author and committer, DVC's global/system config and
    site cache under ``home`` (created), no analytics nor update checks."""
    home = Path(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DVC_"))}
    dvc_global = home / "dvc-global"
    dvc_global.mkdir(parents=True, exist_ok=True)
    config = dvc_global / "config"
    if not config.exists():
        config.write_text("[core]\n    analytics = false\n    check_update = false\n")
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME=AUTHOR[0],
        GIT_AUTHOR_EMAIL=AUTHOR[1],
        GIT_COMMITTER_NAME=AUTHOR[0],
        GIT_COMMITTER_EMAIL=AUTHOR[1],
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(dvc_global),
        DVC_SYSTEM_CONFIG_DIR=str(home / "dvc-system"),
        DVC_SITE_CACHE_DIR=str(home / "dvc-site-cache"),
    )
    env.update(extra or {})
    return env


def run_git(cwd: str | os.PathLike[str], *args: str, env: Mapping[str, str] | None = None,
            stdin: bytes | None = None) -> bytes:
    """``git args`` in ``cwd``; its stdout (:class:`CommandError` on failure)."""
    proc = subprocess.run(["git", *args], cwd=cwd, env=dict(env) if env else None,
                          input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise CommandError(proc.returncode, ["git", *args], proc.stdout, proc.stderr)
    return proc.stdout


def run_dvc(cwd: str | os.PathLike[str], *commands: Sequence[str],
            env: Mapping[str, str] | None = None) -> str:
    """Run DVC commands (each an argv without ``dvc``) in ``cwd``, in one interpreter; returns
    their output (:class:`CommandError` on the first failure).  A single command runs the ``dvc``
    script itself."""
    if len(commands) == 1:
        argv = [str(DVC), *commands[0]]
    else:
        argv = [sys.executable, "-c", _DVC_BATCH, json.dumps([list(c) for c in commands])]
    proc = subprocess.run(argv, cwd=cwd, env=dict(env) if env else None, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise CommandError(proc.returncode, argv, proc.stdout, proc.stderr)
    return proc.stdout + proc.stderr


def _remote_commands(remote_name: str, config: Mapping[str, Any] | None,
                     *, local: bool) -> list[list[str]]:
    flag = ["--local"] if local else []
    return [["remote", "modify", *flag, remote_name, key, str(value)]
            for key, value in (config or {}).items()]


def configure_remote(workspace: str | os.PathLike[str], remote_config: Mapping[str, Any],
                     *, remote_name: str = "storage",
                     env: Mapping[str, str] | None = None) -> None:
    """``dvc remote modify --local`` each setting (e.g. an S3 endpoint and credentials) in a
    clone, which lacks the untracked ``config.local``."""
    commands = _remote_commands(remote_name, remote_config, local=True)
    if commands:
        run_dvc(workspace, *commands, env=env)


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _readme(title: str, description: str) -> bytes:
    return (f"---\ntitle: {json.dumps(title)}\ndescription: {json.dumps(description)}\n"
            f"topics: [sharinghub:dataset]\nkeywords: [dvc, test]\n---\n\n# {title}\n\n"
            f"{description}\n\nVersioned with DVC: `dvc pull` fetches `data/` and "
            f"`labels.csv`.\n").encode()


class _Builder:
    """The steps shared by :func:`make_dataset_repo` and :func:`make_big_dataset`."""

    def __init__(self, workdir: str | os.PathLike[str], name: str, remote_url: str,
                 remote_name: str, remote_config: Mapping[str, Any] | None,
                 committed_remote_config: Mapping[str, Any] | None,
                 env: Mapping[str, str] | None) -> None:
        self.workdir = Path(workdir).resolve()
        self.name = name
        self.path = self.workdir / name
        if self.path.exists() and any(self.path.iterdir()):
            raise FileExistsError(f"{self.path} exists and is not empty")
        self.path.mkdir(parents=True, exist_ok=True)
        if "://" not in remote_url:  # a local folder: absolute, so that clones find it too
            remote_url = str(Path(remote_url).resolve())
        self.remote_url = remote_url
        self.remote_name = remote_name
        self.remote_config = {k: str(v) for k, v in (remote_config or {}).items()}
        self.committed_remote_config = dict(committed_remote_config or {})
        self.env = dict(env) if env is not None else tool_env(self.workdir / ".tool-home")
        self.outputs: set[str] = set()
        self.repo = DatasetRepo(name, self.path, self.workdir / f"{name}.git", remote_url,
                                remote_name, dict(self.remote_config), [], {}, {}, {}, {}, {},
                                self.env)
        run_git(self.path, "init", "-q", "-b", "main", env=self.env)

    def git(self, *args: str, date: str | None = None) -> bytes:
        env = self.env if date is None else {**self.env, "GIT_AUTHOR_DATE": date,
                                             "GIT_COMMITTER_DATE": date}
        return run_git(self.path, *args, env=env)

    def first_commands(self) -> list[list[str]]:
        return [["init", "-q"], ["remote", "add", "-d", self.remote_name, self.remote_url],
                *_remote_commands(self.remote_name, self.committed_remote_config, local=False),
                *_remote_commands(self.remote_name, self.remote_config, local=True)]

    def track(self, outputs: Iterable[str], before: Sequence[Sequence[str]] = ()) -> None:
        """``dvc add`` the outputs (``dvc remove`` the vanished ones) and ``dvc push``."""
        outputs = set(outputs)
        commands = [list(c) for c in before]
        commands += [["remove", f"{out}.dvc"] for out in sorted(self.outputs - outputs)]
        commands += [["add", "-q", *sorted(outputs)], ["push", "-q", "-r", self.remote_name]]
        run_dvc(self.path, *commands, env=self.env)
        self.outputs = outputs

    def commit(self, version: Version, md5s: dict[str, str],
               contents: dict[str, bytes]) -> None:
        tag = version.tag
        self.git("add", "-A")
        self.git("commit", "-q", "-m", version.message or f"Dataset {tag}", date=version.date)
        self.git("tag", "-a", tag, "-m", version.message or f"Dataset {tag}", date=version.date)
        repo = self.repo
        repo.tags.append(tag)
        repo.commits[tag] = self.git("rev-parse", "HEAD").decode().strip()
        repo.md5s[tag] = md5s
        repo.contents[tag] = contents
        listed = self.git("ls-files", "-z").decode().split("\0")
        repo.git_files[tag] = {p: (self.path / p).read_bytes() for p in listed if p}
        repo.outs[tag] = {}
        for out in sorted(self.outputs):
            entry = yaml.safe_load((self.path / f"{out}.dvc").read_text())["outs"][0]
            repo.outs[tag][out] = entry

    def finish(self) -> DatasetRepo:
        run_git(self.workdir, "clone", "-q", "--bare", str(self.path), str(self.repo.bare),
                env=self.env)
        return self.repo


def _clear_outputs(root: Path, outputs: Iterable[str]) -> None:
    for out in outputs:
        target = root / out
        if target.is_dir():
            for file in sorted(target.rglob("*"), reverse=True):
                file.rmdir() if file.is_dir() else file.unlink()
            target.rmdir()
        elif target.exists():
            target.unlink()


def make_dataset_repo(
    workdir: str | os.PathLike[str],
    name: str,
    remote_url: str,
    *,
    versions: Sequence[Version] = DEFAULT_VERSIONS,
    remote_config: Mapping[str, Any] | None = None,
    committed_remote_config: Mapping[str, Any] | None = None,
    remote_name: str = "storage",
    title: str | None = None,
    description: str = "A small DVC-versioned test dataset.",
    env: Mapping[str, str] | None = None,
) -> DatasetRepo:
    """A git + DVC dataset repository ``workdir/name`` (and its bare clone
    ``workdir/name.git``), one annotated tag per version, every version pushed to
    ``remote_url`` (a local folder or ``s3://bucket/prefix``).

    ``remote_config`` (e.g. ``{"endpointurl": ..., "access_key_id": ...,
    "secret_access_key": ...}``) is written to ``.dvc/config.local``, not committed;
    ``committed_remote_config`` settings are committed.  ``env`` defaults to
    :func:`tool_env` with its home in ``workdir/.tool-home``.  The README has YAML front matter
    (``title``, ``description``, ``topics: [sharinghub:dataset]``).
    """
    builder = _Builder(workdir, name, remote_url, remote_name, remote_config,
                       committed_remote_config, env)
    (builder.path / "README.md").write_bytes(_readme(title or name, description))
    for i, version in enumerate(versions):
        _clear_outputs(builder.path, builder.outputs)
        files = {p.strip("/"): bytes(c) for p, c in version.files.items()}
        for path, data in files.items():
            target = builder.path / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        builder.track({p.split("/", 1)[0] for p in files},
                      before=builder.first_commands() if i == 0 else ())
        builder.commit(version, {p: hashlib.md5(d).hexdigest() for p, d in files.items()},
                       files)
    return builder.finish()


def make_big_dataset(
    workdir: str | os.PathLike[str],
    name: str,
    remote_url: str,
    *,
    n_files: int = 2000,
    total_bytes: int = 200_000_000,
    files_per_dir: int = 100,
    seed: int = 0,
    tag: str = "v1.0",
    keep_contents: bool = False,
    remote_config: Mapping[str, Any] | None = None,
    committed_remote_config: Mapping[str, Any] | None = None,
    remote_name: str = "storage",
    env: Mapping[str, str] | None = None,
) -> DatasetRepo:
    """A dataset repository like :func:`make_dataset_repo` with one version (``tag``) whose
    ``data/`` output holds ``n_files`` seeded-random files (``data/part-NNN/file-NNNNNN.bin``,
    ``files_per_dir`` per directory) of ``total_bytes`` in all (sizes vary ±50% around the
    mean), pushed to ``remote_url``.  File contents are kept in ``contents`` only with
    ``keep_contents``; ``md5s`` always lists them."""
    if n_files < 1 or total_bytes < 0:
        raise ValueError("need n_files >= 1 and total_bytes >= 0")
    builder = _Builder(workdir, name, remote_url, remote_name, remote_config,
                       committed_remote_config, env)
    (builder.path / "README.md").write_bytes(
        _readme(name, f"{n_files} files, {total_bytes} bytes of DVC-tracked data."))
    rng = random.Random(seed)
    mean = total_bytes / n_files
    sizes = [int(mean * rng.uniform(0.5, 1.5)) for _ in range(n_files)]
    scale = total_bytes / max(1, sum(sizes))
    sizes = [int(s * scale) for s in sizes]
    sizes[-1] += total_bytes - sum(sizes)
    md5s: dict[str, str] = {}
    contents: dict[str, bytes] = {}
    for i, size in enumerate(sizes):
        path = f"data/part-{i // files_per_dir:03d}/file-{i:06d}.bin"
        data = rng.randbytes(size)
        target = builder.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        md5s[path] = hashlib.md5(data).hexdigest()
        if keep_contents:
            contents[path] = data
    builder.track({"data"}, before=builder.first_commands())
    builder.commit(Version(tag, {}, message=f"{n_files} files"), md5s, contents)
    return builder.finish()


#: what :func:`make_hostile_repo` can make a version do
ATTACKS = ("symlink", "cache", "dotdot", "ignored")


def make_hostile_repo(
    workdir: str | os.PathLike[str],
    name: str,
    remote_url: str,
    *,
    attack: str,
    outside: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
) -> DatasetRepo:
    """A dataset repository (README with ``topics: [sharinghub:dataset]``, a DVC remote at
    ``remote_url``) whose ``v1.0`` is benign (a file output ``payload.txt``) and whose ``v2.0``
    tries to make a pull write outside the working copy, by ``attack``:

    - ``symlink``: a committed symlink ``lnk -> outside`` and an output ``lnk/payload.txt``;
    - ``cache``: the committed ``.dvc/config`` sets ``[cache] dir = <outside>`` (absolute);
    - ``dotdot``: an output ``../escape.txt``;
    - ``ignored``: not hostile: ``.dvcignore`` hides ``payload.txt.dvc`` from DVC, so a pull
      succeeds without writing the output its pointer file declares.

    Every object is pushed to the remote, so only the repository's content is at fault.
    ``contents`` gives the workspace's ``payload.txt`` at ``v1.0``."""
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}")
    builder = _Builder(workdir, name, remote_url, "storage", None, None, env)
    path, outside = builder.path, Path(outside).resolve()
    (path / "README.md").write_bytes(_readme(name, f"A repository that tries {attack!r}."))
    v1 = b"payload, version 1.0\n"
    (path / "payload.txt").write_bytes(v1)
    builder.track({"payload.txt"}, before=builder.first_commands())
    builder.commit(Version("v1.0", {"payload.txt": v1}),
                   {"payload.txt": hashlib.md5(v1).hexdigest()}, {"payload.txt": v1})
    v2 = f"payload of a hostile version ({attack})\n".encode()
    (path / "payload.txt").write_bytes(v2)
    builder.track({"payload.txt"})
    pointer = yaml.safe_load((path / "payload.txt.dvc").read_text())
    if attack in ("symlink", "dotdot"):
        pointer["outs"][0]["path"] = "lnk/payload.txt" if attack == "symlink" else "../escape.txt"
        (path / "payload.txt.dvc").unlink()
        (path / "payload.txt").unlink()
        (path / "payload.dvc").write_text(yaml.safe_dump(pointer, sort_keys=False))
        if attack == "symlink":
            (path / "lnk").symlink_to(outside, target_is_directory=True)
    elif attack == "cache":
        with (path / ".dvc" / "config").open("a") as fh:
            fh.write(f"[cache]\n    dir = {outside}\n")
    else:
        (path / ".dvcignore").write_text("payload.txt.dvc\n")
    builder.outputs = set()  # the pointer files are the attack's: commit them as they are
    builder.git("add", "-A")
    builder.git("commit", "-q", "-m", f"v2.0: {attack}", date="2024-04-01T10:00:00+00:00")
    builder.git("tag", "v2.0")
    builder.repo.tags.append("v2.0")
    builder.repo.commits["v2.0"] = builder.git("rev-parse", "HEAD").decode().strip()
    return builder.finish()


def make_legacy_repo(
    workdir: str | os.PathLike[str],
    name: str,
    remote_url: str,
    *,
    env: Mapping[str, str] | None = None,
) -> DatasetRepo:
    """A dataset repository as DVC 2 left it: pointer files without ``hash: md5`` and the
    remote in DVC 2's layout (``<remote>/xx/rest``), a file output ``a.bin`` and a directory
    output ``d`` (2 files), tagged ``v1.0``; ``remote_url`` must be a local folder."""
    builder = _Builder(workdir, name, remote_url, "storage", None, None, env)
    path, remote = builder.path, Path(builder.remote_url)
    (path / "README.md").write_bytes(_readme(name, "Pointer files written by DVC 2."))
    files = {"a.bin": bytes(range(256)) * 10, "d/x.bin": b"\x00\x01" * 100,
             "d/y.bin": b"\x02\x03" * 50}
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    builder.track({"a.bin", "d"}, before=builder.first_commands())
    for pointer in ("a.bin.dvc", "d.dvc"):
        data = yaml.safe_load((path / pointer).read_text())
        data["outs"][0].pop("hash")
        (path / pointer).write_text(yaml.safe_dump(data, sort_keys=False))
    new_layout = remote / "files" / "md5"
    for obj in sorted(p for p in new_layout.rglob("*") if p.is_file()):
        target = remote / obj.relative_to(new_layout)
        target.parent.mkdir(parents=True, exist_ok=True)
        obj.rename(target)
    md5s = {p: hashlib.md5(d).hexdigest() for p, d in files.items()}
    builder.commit(Version("v1.0", files), md5s, files)
    return builder.finish()
