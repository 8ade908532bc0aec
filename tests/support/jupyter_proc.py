"""``jupyter server`` in a subprocess, for tests of what is configured once per process
(the embedded MLflow server reads its configuration when first imported).

:func:`jupyter_server` starts this environment's ``jupyter server`` on a free loopback port
(another, up to three times, when that one was taken before the server bound it) with a
token, waits (bounded polling of ``api/status``) until it answers, and stops it (SIGTERM,
SIGKILL after a timeout).  Its output goes to ``<root>/server.log``, whose tail is
in the error when it does not start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.threaded import free_port

__all__ = ["JupyterProcess", "jupyter_server"]


@dataclass
class JupyterProcess:
    url: str  # ends with the base URL's "/"
    root: Path  # the server's root_dir; JUPYTER_DATA_DIR is root/"data"
    token: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def tracking(self) -> str:
        """The embedded MLflow server's tracking URI."""
        return f"{self.url}sharinghub/mlflow"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@contextlib.contextmanager
def jupyter_server(root: Path, *, token: str, base_url: str = "/",
                   args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                   startup_timeout: float = 60,
                   stop_timeout: float = 15) -> Iterator[JupyterProcess]:
    """``with jupyter_server(tmp, token=..., args=["--SharingHub.x=y"]) as server:``.

    ``root`` is the root dir (created); ``env`` is added to this process's environment;
    the index is ``root/index.sqlite`` unless ``args`` say otherwise.
    """
    root.mkdir(parents=True, exist_ok=True)
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
    full_env = {**os.environ, "JUPYTER_DATA_DIR": str(root / "data"), **(env or {})}
    log_path = root / "server.log"
    for _attempt in range(3):  # (a free port may be taken before the server binds it)
        port = free_port()
        cmd = [jupyter, "server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               "--ServerApp.port_retries=0",  # (taken: exit, and the next attempt picks)
               f"--ServerApp.base_url={base_url}", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}",
               f"--SharingHub.index_url=sqlite://{root / 'index.sqlite'}", *args]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=full_env, cwd=root)
        server = JupyterProcess(f"http://127.0.0.1:{port}{base_url}", root, token, log_path,
                                proc)
        try:
            if _answers(server, startup_timeout):
                break
        except BaseException:
            _stop(proc, stop_timeout)
            raise
    else:
        raise AssertionError(f"jupyter server found no free port:\n{server.log_tail()}")
    try:
        yield server
    finally:
        _stop(proc, stop_timeout)


def _answers(server: JupyterProcess, timeout: float) -> bool:
    """Wait until the server answers (True); False if it exited because its port was taken."""
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            if "is already in use" in server.log_tail():
                return False
            raise AssertionError(f"jupyter server exited with status "
                                 f"{server.proc.returncode}:\n{server.log_tail()}")
        try:
            status = requests.get(f"{server.url}api/status", timeout=1,
                                  headers={"Authorization": f"token {server.token}"}
                                  ).status_code
        except (requests.ConnectionError, requests.Timeout):  # (or whoever took the port)
            status = None
        if status == 200:
            return True
        if time.monotonic() > deadline:
            raise AssertionError(f"jupyter server did not answer in {timeout}s:\n"
                                 f"{server.log_tail()}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
