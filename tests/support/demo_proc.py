"""``sharinghub-lab demo`` as a user runs it, for the tests and ``benchmarks/demo.py``: a
real process (its own session, Jupyter's data and runtime folders of the caller's), its
printed URL and token, bounded waits; and notebooks run top to bottom against it by nbclient,
as a kernel outside the server finds it (``SHARINGHUB_URL``/``_TOKEN``/``_ROOT``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
import requests

from tests.support.polling import poll

CLI = str(Path(sys.executable).with_name("sharinghub-lab"))
URL_LINE = re.compile(r"JupyterLab: (http://127\.0\.0\.1:(\d+)/)\S*\?token=(\w+)")


@dataclass
class Demo:
    root: Path
    url: str
    port: int
    token: str
    proc: subprocess.Popen[str]
    log: Path

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, headers={"Authorization": f"token {self.token}"},
                            timeout=30)


def isolated_env(tmp: Path) -> dict[str, str]:
    """This process's environment with Jupyter's data and runtime folders in ``tmp`` and no
    inherited server settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("JUPYTER_TOKEN", "SHARINGHUB_URL", "SHARINGHUB_TOKEN",
                        "SHARINGHUB_ROOT", "JUPYTER_CONFIG_PATH")}
    env.update(JUPYTER_DATA_DIR=str(tmp / "jupyter-data"),
               JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"))
    return env


def start_demo(root: Path, tmp: Path, port: int, command: Sequence[str] | None = None,
               timeout: float = 90, cwd: Path | None = None) -> Demo:
    """Start the demo (``command``, default ``sharinghub-lab demo``, given ``--no-browser
    --port --dir``), read its URL line, wait until JupyterLab answers."""
    log = tmp / f"demo-{port}.log"
    args = [*(command or [CLI, "demo"]), "--no-browser", "--port", str(port), "--dir",
            str(root)]
    with log.open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True,
                                env=isolated_env(tmp), cwd=cwd or tmp,
                                start_new_session=True)
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:  # the demo prints its URL before JupyterLab starts
        printed.append(line)
        found = URL_LINE.search(line)
        if found:
            break
    else:
        raise AssertionError("the demo printed no URL:\n" + "".join(printed)
                             + log.read_text()[-3000:])
    assert int(found.group(2)) == port
    demo = Demo(root, found.group(1), port, found.group(3), proc, log)

    def answers() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return demo.get("api/status").status_code == 200
        except requests.ConnectionError:
            return False

    poll(answers, "the demo's JupyterLab to answer", timeout=timeout, every=0.05)
    return demo


def stop_demo(demo: Demo, timeout: float = 30) -> None:
    """SIGTERM, as a user's Ctrl-C or a service manager would; SIGKILL to the session after
    ``timeout`` (the tests then fail on what is left)."""
    if demo.proc.poll() is None:
        demo.proc.terminate()
        try:
            demo.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(demo.proc.pid, signal.SIGKILL)
            demo.proc.wait(10)


def run_notebook(demo: Demo, name: str, timeout: float = 300
                 ) -> tuple[nbformat.NotebookNode, float]:
    """Run ``name`` of the demo's workspace top to bottom (in the workspace, as JupyterLab
    would); the executed notebook and the seconds it took."""
    from nbclient import NotebookClient

    notebook = nbformat.read(demo.root / name, as_version=4)
    env = {"SHARINGHUB_URL": demo.url, "SHARINGHUB_TOKEN": demo.token,
           "SHARINGHUB_ROOT": str(demo.root)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel's environment: nbclient starts it from ours
    started = time.perf_counter()
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(demo.root)}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook, time.perf_counter() - started
