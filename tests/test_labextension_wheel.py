"""The wheel carries the prebuilt JupyterLab extension: installed (no dependencies, under
its own prefix, beside this environment's packages) with no Node on PATH, JupyterLab lists
it enabled and OK, and the server extension (imported from that prefix) validates OK."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARE = "share/jupyter/labextensions/sharinghub-lab"


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # no colours


def test_wheel_ships_the_labextension_and_jupyter_lists_it(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT))
    (wheel,) = wheels.glob("sharinghub_lab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    assert f"{SHARE}/package.json" in data
    assert f"{SHARE}/install.json" in data
    assert any(n.startswith(f"{SHARE}/static/remoteEntry.") for n in data)
    assert not [n for n in names if n.startswith("sharinghub_lab/labextension/")]  # once only
    config = "etc/jupyter/jupyter_server_config.d/sharinghub_server.json"
    assert config in data

    prefix = tmp_path / "prefix"
    # --ignore-installed: never uninstall this environment's (editable) sharinghub-lab
    _run(sys.executable, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q",
         "--prefix", str(prefix), str(wheel))
    site = sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)})
    bindir = Path(sys.executable).parent
    # a machine without Node: PATH holds only this Python's folder and the system's
    env = {**os.environ, "PATH": f"{bindir}:/usr/sbin:/sbin", "PYTHONPATH": site,
           "JUPYTER_PATH": str(prefix / "share/jupyter"),
           "JUPYTER_CONFIG_PATH": str(prefix / "etc/jupyter"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    assert shutil.which("node", path=env["PATH"]) is None

    labextensions = _run(str(bindir / "jupyter"), "labextension", "list", env=env)
    line = next(x for x in labextensions.splitlines() if "sharinghub-lab" in x)
    assert "enabled" in line and "OK" in line, labextensions
    assert str(prefix / "share/jupyter/labextensions") in labextensions

    servers = _run(str(bindir / "jupyter"), "server", "extension", "list", env=env)
    assert re.search(r"sharinghub_server enabled\s+- Validating sharinghub_server\.\.\.\s+"
                     r"sharinghub_server\s*\S*\s*OK", servers), servers
