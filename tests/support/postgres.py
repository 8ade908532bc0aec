"""A throwaway PostgreSQL cluster for tests, on a free loopback TCP port.

:func:`postgres_server` runs Debian's ``initdb`` and ``pg_ctl`` (found in
``/usr/lib/postgresql/<version>/bin``, the highest version there, else on the ``PATH``;
``PG_BINDIR`` overrides) in a fresh temporary directory, as the ``postgres`` user when the
tests run as root (PostgreSQL refuses to run as root), listening on ``127.0.0.1:<free port>``
only, its unix socket in that directory.  Clients on 127.0.0.1 log in with a password
(scram-sha-256), local socket connections are trusted.  One database is created and its URL
(``postgresql://USER:PASSWORD@127.0.0.1:PORT/DBNAME``) yielded; on exit the cluster is
stopped with ``pg_ctl stop -m immediate`` (the postmaster is killed by PID if that fails) and
the directory removed.  Durability is off (``fsync``, ``synchronous_commit``): it takes about
a second.

When the binaries are missing :func:`postgres_server` raises :class:`PostgresUnavailable`
(``apt-get install -y postgresql`` brings them); tests should let that fail, not skip.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.threaded import free_port

__all__ = ["PostgresUnavailable", "find_pg_bindir", "postgres_server"]

_INSTALL_HINT = ("PostgreSQL server binaries (initdb, pg_ctl) were not found in "
                 "/usr/lib/postgresql/*/bin nor on the PATH: install them "
                 "(apt-get install -y postgresql) or set PG_BINDIR")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def find_pg_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: ``$PG_BINDIR``, else the highest
    ``/usr/lib/postgresql/<version>/bin``, else the ``PATH``'s."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in ("initdb", "pg_ctl")):
            return folder
    return None


class _Cluster:
    def __init__(self, bindir: Path, workdir: Path, user: str, password: str,
                 as_user: str | None) -> None:
        self.bindir = bindir
        self.workdir = workdir
        self.data = workdir / "data"
        self.sockets = workdir / "sockets"
        self.log = workdir / "postgres.log"
        self.user = user
        self.password = password
        self.as_user = as_user
        self.port = 0

    def run(self, *argv: str, timeout: float = 60, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``bindir/argv[0] argv[1:]`` as the cluster's owner, in the work directory."""
        kwargs: dict[str, Any] = {}
        if self.as_user is not None:
            kwargs.update(user=self.as_user, group=self.as_user, extra_groups=[])
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8",
                    "LANG": "C.UTF-8", "HOME": str(self.workdir), **(env or {})}
        result = subprocess.run([str(self.bindir / argv[0]), *argv[1:]], cwd=self.workdir,
                                env=full_env, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, check=False, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited with status {result.returncode}:\n"
                               f"{result.stdout}{result.stderr}\n{self.log_tail()}")
        return result

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def init(self) -> None:
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown(pwfile)
        self.sockets.mkdir()
        self._chown(self.sockets)
        self.run("initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                 "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                 "--locale=C", "--no-sync")
        pwfile.unlink()

    def start(self, timeout: float) -> None:
        for _attempt in range(3):
            self.port = free_port()
            options = " ".join([
                "-c listen_addresses=127.0.0.1", f"-c port={self.port}",
                f"-c unix_socket_directories={self.sockets}", "-c fsync=off",
                "-c synchronous_commit=off", "-c full_page_writes=off",
                "-c max_connections=50", "-c shared_buffers=32MB"])
            result = self.run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log),
                              "-w", "-t", str(int(timeout)), "-o", options,
                              timeout=timeout + 10, check=False)
            if result.returncode == 0:
                return
            tail = self.log_tail()
            if "already in use" not in tail:
                raise RuntimeError(f"pg_ctl start failed ({result.returncode}):\n"
                                   f"{result.stdout}{result.stderr}\n{tail}")
            self.stop()
        raise RuntimeError(f"PostgreSQL found no free port:\n{self.log_tail()}")

    def create_database(self, name: str) -> None:
        self.run("createdb", "-h", str(self.sockets), "-p", str(self.port), "-U", self.user,
                 name)

    def stop(self) -> None:
        pid = self._postmaster_pid()
        if pid is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w",
                     "-t", "10", timeout=20, check=False)
        if self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self._alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def _postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    @staticmethod
    def _alive(pid: int) -> bool:
        """Running: a zombie has exited (the postmaster is reparented to PID 1 when pg_ctl
        exits, which may reap it only later)."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return False
        except OSError:  # no procfs: ask the kernel
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        return stat.rpartition(")")[2].split()[0] not in ("Z", "X")

    def _chown(self, path: Path) -> None:
        if self.as_user is not None:
            shutil.chown(path, self.as_user, self.as_user)


@contextlib.contextmanager
def postgres_server(tmp_path: str | os.PathLike[str] | None = None, *, dbname: str = "mlflow",
                    user: str = "sharinghub", password: str = "sharinghub-test-pw",
                    os_user: str = "postgres", startup_timeout: float = 30) -> Iterator[str]:
    """``with postgres_server(tmp_path) as url:`` a running cluster with database
    ``dbname``, as ``postgresql://user:password@127.0.0.1:PORT/dbname``.

    The cluster lives in a new directory: under ``tmp_path`` when not root; when root in the
    system's temporary directory (pytest's ``tmp_path`` is private to root), owned by
    ``os_user``.  It is removed on exit; the server log is ``<workdir>/postgres.log``.
    """
    bindir = find_pg_bindir()
    if bindir is None:
        raise PostgresUnavailable(_INSTALL_HINT)
    as_user = os_user if os.geteuid() == 0 else None
    parent = None if as_user is not None or tmp_path is None else Path(tmp_path)
    workdir = Path(tempfile.mkdtemp(prefix="pg-", dir=parent))
    try:
        if as_user is not None:
            shutil.chown(workdir, as_user, as_user)
            workdir.chmod(0o700)
        cluster = _Cluster(bindir, workdir, user, password, as_user)
        cluster.init()
        try:
            cluster.start(startup_timeout)
            cluster.create_database(dbname)
            yield f"postgresql://{user}:{password}@127.0.0.1:{cluster.port}/{dbname}"
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
