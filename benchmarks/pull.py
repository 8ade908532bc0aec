"""Pull benchmark: a 200 MB dataset of 2,000 files on a real S3 server (weed mini), pulled
by our pull job and by the ``dvc pull`` command line, each into a fresh clone of the same
repository with an empty cache. Target: our job within 10% of the command line.

    .venv/bin/python benchmarks/pull.py [--files 2000] [--mb 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sharinghub_server.datasets.pull import PullPlan, run_pull
from sharinghub_server.jobs import Job
from tests.support.git_repos import configure_remote, make_big_dataset, tool_env
from tests.support.s3 import SeaweedS3


def ours(repo, work: Path, settings: dict) -> float:
    dest = work / "ours"
    job = Job(kind="pull", item="bench/big", rev=None, dest="ours")
    t0 = time.perf_counter()
    run_pull(job, PullPlan(item="bench/big", rev=None, dest=dest, repo_url=str(repo.bare),
                           remote_settings=settings))
    elapsed = time.perf_counter() - t0
    assert repo.diff_workspace(dest, repo.latest) == [], "our pull is incomplete"
    return elapsed


def command_line(repo, work: Path, env: dict) -> float:
    dest = work / "cli"
    dvc = str(Path(sys.executable).parent / "dvc")
    t0 = time.perf_counter()
    subprocess.run(["git", "clone", "--quiet", str(repo.bare), str(dest)], check=True, env=env)
    configure_remote(dest, repo.remote_config, remote_name=repo.remote_name, env=env)
    subprocess.run([dvc, "pull", "--quiet"], cwd=dest, check=True, env=env)
    elapsed = time.perf_counter() - t0
    assert repo.diff_workspace(dest, repo.latest) == [], "dvc pull is incomplete"
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SeaweedS3(Path(tmp) / "s3") as s3:
        env = tool_env(Path(tmp) / "home")
        t0 = time.perf_counter()
        repo = make_big_dataset(Path(tmp) / "repos", "big", s3.url("bench/big"),
                                n_files=args.files, total_bytes=args.mb * 1_000_000,
                                remote_config=s3.dvc_config(), env=env)
        print(f"dataset: {args.files} files, {args.mb} MB on S3 "
              f"(built in {time.perf_counter() - t0:.1f} s)")
        settings = {f"s3://{s3.bucket}": s3.dvc_config()}
        times: dict[str, list[float]] = {"ours": [], "cli": []}
        for run in range(args.runs):
            for kind in ("cli", "ours") if run % 2 else ("ours", "cli"):
                work = Path(tmp) / f"run-{run}-{kind}"
                work.mkdir()
                took = ours(repo, work, settings) if kind == "ours" else command_line(
                    repo, work, env)
                times[kind].append(took)
                shutil.rmtree(work)
                print(f"  run {run + 1}: {kind:4s} {took:6.2f} s")
    mine, cli = statistics.median(times["ours"]), statistics.median(times["cli"])
    print(f"median of {args.runs}: our job {mine:.2f} s, dvc pull (clone + pull) {cli:.2f} s, "
          f"ratio {mine / cli:.2f} (target <= 1.10)")
    return 0 if mine <= cli * 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
