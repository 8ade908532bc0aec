"""Server start-up with and without the sharinghub extension.

Starts ``jupyter server`` in a subprocess, times until ``/api/status`` answers, alternating
with the extension enabled and disabled; reports medians and the difference (target: the
extension adds < 0.3 s). ``--before DIR`` adds a third kind, in turn with the others: the
extension from another checkout (e.g. ``git worktree add /tmp/before HEAD``), first on
``PYTHONPATH``, so that a change's cost is measured in the same run.

    .venv/bin/python benchmarks/startup.py [--runs 5] [--before DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_once(enabled: bool, workdir: Path, code: Path | None = None) -> float:
    port = free_port()
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
    cmd = [jupyter, "server", "--no-browser", f"--port={port}",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={workdir}",
           f"--ServerApp.jpserver_extensions={{'sharinghub_server': {enabled}}}",
           f"--SharingHub.index_url=sqlite://{workdir / 'index.sqlite'}",
           "--SharingHub.crawl_interval=0"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(code / "server_ext"), str(code), *filter(None, [env.get("PYTHONPATH")])])
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            cwd=workdir)
    try:
        deadline = started + 60
        while time.perf_counter() < deadline:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/api/status",
                                 headers={"Authorization": f"token {TOKEN}"}, timeout=1)
                if r.status_code == 200:
                    elapsed = time.perf_counter() - started
                    # the extension must really be there, or really not
                    s = requests.get(f"http://127.0.0.1:{port}/sharinghub/api/stac",
                                     headers={"Authorization": f"token {TOKEN}"}, timeout=5)
                    assert s.status_code == (200 if enabled else 404), s.status_code
                    return elapsed
            except requests.ConnectionError:
                pass
            time.sleep(0.01)
        raise RuntimeError("the server did not start: " + proc.stderr.read().decode()[-2000:])
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--before", type=Path, help="another checkout, started in turn too")
    args = p.parse_args()
    kinds: dict[str, tuple[bool, Path | None]] = {"without": (False, None),
                                                  "with": (True, None)}
    if args.before:
        kinds["before"] = (True, args.before.resolve())
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        # one folder each: checkouts may disagree on the index's schema
        dirs = {kind: Path(tmp) / kind for kind in kinds}
        for kind, (enabled, code) in kinds.items():
            dirs[kind].mkdir()
            start_once(enabled, dirs[kind], code)  # warm the file cache, create the index
        for _ in range(args.runs):
            for kind, (enabled, code) in kinds.items():
                times[kind].append(start_once(enabled, dirs[kind], code))
    median = {kind: statistics.median(t) for kind, t in times.items()}
    without, with_ext = median["without"], median["with"]
    print(f"server start-up, median of {args.runs}: without the extension {without:.3f} s, "
          f"with it {with_ext:.3f} s, added {with_ext - without:+.3f} s (target < 0.3 s)")
    if "before" in median:
        print(f"  with {args.before}'s extension: {median['before']:.3f} s, added "
              f"{median['before'] - without:+.3f} s")
    return 0 if with_ext - without < 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
