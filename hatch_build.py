"""Hatch build hook: builds the JupyterLab extension (``labextension/``) when its prebuilt
bundle is missing, and ships it in the wheel as ``share/jupyter/labextensions/sharinghub-lab``.

A wheel built once carries the bundle, so ``pip install sharinghub-lab`` needs no Node.
Building needs Node 20 and npm's registry: yarn (jlpm, from ``jupyter-builder``) is pointed
at ``npm config get registry`` unless ``YARN_NPM_REGISTRY_SERVER`` is set.  Yarn's output
goes to ``labextension/build.log``; only its tail is shown when the build fails.
Rebuild after changing the frontend with ``jlpm build`` in ``labextension/`` (or delete
``sharinghub_lab/labextension``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

LABEXTENSION = "sharinghub-lab"
SOURCE = "labextension"
OUTPUT = "sharinghub_lab/labextension"


def bundle_ready(output: Path) -> bool:
    """A finished build has its package.json and a module-federation entry point."""
    return (output / "package.json").is_file() and any(output.glob("static/remoteEntry.*.js"))


class LabextensionBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        output = root / OUTPUT
        if not bundle_ready(output):
            build_frontend(root / SOURCE)
            if not bundle_ready(output):
                raise RuntimeError(f"sharinghub-lab: the frontend build left no bundle in "
                                   f"{output}; see {root / SOURCE / 'build.log'}")
        if version == "editable":
            # a development install: JupyterLab finds the bundle through a link to
            # OUTPUT (scripts/setup-env.sh), so rebuilds show without reinstalling
            return
        share = f"share/jupyter/labextensions/{LABEXTENSION}"
        build_data["shared_data"][OUTPUT] = share
        build_data["shared_data"][f"{SOURCE}/install.json"] = f"{share}/install.json"


def build_frontend(source: Path) -> None:
    """``jlpm install`` then ``jlpm build`` (tsc + @jupyter/builder) in ``source``."""
    if shutil.which("node") is None:
        raise RuntimeError(
            "sharinghub-lab: the JupyterLab extension is not built and Node.js is not on "
            "PATH; install Node 20 (and npm) or use a released wheel, which carries it")
    env = dict(os.environ)
    # jlpm and jupyter-builder live beside this interpreter (build isolation included)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if "YARN_NPM_REGISTRY_SERVER" not in env and shutil.which("npm"):
        registry = subprocess.run(["npm", "config", "get", "registry"], capture_output=True,
                                  text=True, check=False).stdout.strip()
        if registry.startswith("http"):
            env["YARN_NPM_REGISTRY_SERVER"] = registry
    env.setdefault("YARN_ENABLE_PROGRESS_BARS", "0")
    jlpm = [sys.executable, "-c", "from jupyter_builder.jlpm import main; main()"]
    log_path = source / "build.log"
    started = time.monotonic()
    print(f"sharinghub-lab: building the JupyterLab extension (log: {log_path})", flush=True)
    with log_path.open("w") as log:
        for step in (["install"], ["build"]):
            log.write(f"$ jlpm {' '.join(step)}\n")
            log.flush()
            done = subprocess.run([*jlpm, *step], cwd=source, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, check=False)
            if done.returncode:
                log.close()
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
                raise RuntimeError(f"sharinghub-lab: `jlpm {' '.join(step)}` failed "
                                   f"(exit {done.returncode}); last lines of {log_path}:\n{tail}")
    print(f"sharinghub-lab: JupyterLab extension built in {time.monotonic() - started:.0f} s",
          flush=True)
