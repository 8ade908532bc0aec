"""Server start-up with and without the sharinghub extension.

Starts ``jupyter server`` in a subprocess, times until ``/api/status`` answers, alternating
with the extension enabled and disabled; reports medians and the difference (target: the
extension adds < 0.3 s).

    .venv/bin/python benchmarks/startup.py [--runs 5]
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


def start_once(enabled: bool, workdir: Path) -> float:
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
    args = p.parse_args()
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        start_once(True, Path(tmp))  # warm the file cache and create the index
        for _ in range(args.runs):
            for enabled in (False, True):
                times[enabled].append(start_once(enabled, Path(tmp)))
    without, with_ext = statistics.median(times[False]), statistics.median(times[True])
    print(f"server start-up, median of {args.runs}: without the extension {without:.3f} s, "
          f"with it {with_ext:.3f} s, added {with_ext - without:+.3f} s (target < 0.3 s)")
    return 0 if with_ext - without < 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
