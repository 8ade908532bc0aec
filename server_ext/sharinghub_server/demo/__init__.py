"""``sharinghub-lab demo``: the flood-detection scenario on the embedded default.

Prepares the workspace (:mod:`.workspace`: example projects, notebooks, settings), indexes
it, then *becomes* JupyterLab (``exec``): a SIGTERM or Ctrl-C reaches JupyterLab itself,
which shuts its kernels down and frees the port; nothing is left waiting on a child.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

from .workspace import NOTEBOOKS, Workspace, prepare

__all__ = ["Workspace", "lab_command", "prepare", "run_demo"]

DEFAULT_PORT = 8888


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(port: int | None) -> int:
    """``port`` if free (else SystemExit with one line); with none given, the first free
    port from 8888 on, as Jupyter would pick, but known before it starts so that the URL
    printed is the one it serves."""
    if port is not None:
        if not _port_free(port):
            raise SystemExit(f"error: port {port} is in use (choose another with --port)")
        return port
    for candidate in range(DEFAULT_PORT, DEFAULT_PORT + 50):
        if _port_free(candidate):
            return candidate
    raise SystemExit(f"error: no free port from {DEFAULT_PORT} to {DEFAULT_PORT + 49}")


def index(ws: Workspace) -> dict[str, int]:
    """Crawl the workspace's projects into its index (incremental: quick when nothing
    changed); items per collection."""
    from ..catalog.categories import DEFAULT_CATEGORIES
    from ..crawler import Crawler
    from ..index.store import open_store
    from ..sources.local import LocalSource

    store = open_store(ws.index_url)
    try:
        status = Crawler(store, [LocalSource(ws.projects)], DEFAULT_CATEGORIES).crawl()
    finally:
        store.close()
    return dict(status.items)


def lab_command(ws: Workspace, port: int, open_browser: bool) -> list[str]:
    cmd = [sys.executable, "-m", "jupyterlab", f"--port={port}", "--ServerApp.port_retries=0",
           f"--ServerApp.root_dir={ws.root}", f"--LabApp.default_url=/lab/tree/{NOTEBOOKS[0]}"]
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def lab_environment(ws: Workspace, token: str) -> dict[str, str]:
    """The environment JupyterLab runs in: the workspace's config folder first on
    ``JUPYTER_CONFIG_PATH`` (the extension's settings), the token in ``JUPYTER_TOKEN`` (not
    on the command line, where ``ps`` would show it)."""
    paths = [str(ws.config_dir), *filter(None, os.environ.get("JUPYTER_CONFIG_PATH", "")
                                         .split(os.pathsep))]
    return {**os.environ, "JUPYTER_CONFIG_PATH": os.pathsep.join(dict.fromkeys(paths)),
            "JUPYTER_TOKEN": token}


def run_demo(*, port: int | None, open_browser: bool, folder: str | None,
             prepare_only: bool = False) -> int:
    chosen = None if prepare_only else choose_port(port)

    def say(line: str) -> None:
        print(f"sharinghub-lab demo: {line}", flush=True)

    ws = Workspace(Path(folder or "sharinghub-demo").expanduser().resolve())
    indexed = ws.index_path.exists()
    prepare(ws.root, say)
    if indexed and not prepare_only:  # JupyterLab's start-up crawl updates it, meanwhile
        say(f"{ws.root}: reusing the workspace and its index")
    else:
        counts = index(ws)
        say(f"{ws.root}: " + ", ".join(f"{n} {cid}" for cid, n in sorted(counts.items()))
            + f" indexed; DVC remote {ws.remote}")
    if prepare_only:
        say(f"Jupyter settings in {ws.config_dir} (put it first on JUPYTER_CONFIG_PATH)")
        return 0
    assert chosen is not None
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_hex(24)
    say(f"JupyterLab: http://127.0.0.1:{chosen}/lab/tree/{NOTEBOOKS[0]}?token={token}")
    cmd = lab_command(ws, chosen, open_browser)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, lab_environment(ws, token))
    return 0  # not reached
