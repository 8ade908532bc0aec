"""Publish benchmark: a dataset version of 2,000 files / 200 MB published to a real S3 server
(weed mini) through the server's API (``POST sharinghub/api/publish/dataset`` on a real
``jupyter server``, GitLab played by the GitLab API test server with pushes over smart HTTP),
against the same by hand: ``git clone`` + ``dvc add`` + ``dvc push`` + ``git add/commit/tag``
+ ``git push``. Each run publishes new data (another seed) to a new project, so nothing is on
the remote yet. Target: the API within 10% of the command line.

Also measured: from a finished publish (the job's ``done`` seen by polling) to the version in
``GET sharinghub/api/dvc/versions``, and from ``POST sharinghub/api/publish/new`` to the
project in ``GET sharinghub/api/stac/search``.

    .venv/bin/python benchmarks/publish.py [--files 2000] [--mb 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.git_repos import configure_remote, tool_env
from tests.support.gitlab_server import GitLabTestServer
from tests.support.jupyter_proc import jupyter_server
from tests.support.s3 import SeaweedS3

TOKEN = "bench-token"


def make_data(folder: Path, n_files: int, total: int, seed: int) -> None:
    """``n_files`` seeded-random files of ``total`` bytes in all, 100 per subfolder."""
    rng = random.Random(seed)
    sizes = [int(total / n_files * rng.uniform(0.5, 1.5)) for _ in range(n_files)]
    sizes[-1] += total - sum(sizes)
    for i, size in enumerate(sizes):
        path = folder / f"part-{i // 100:03d}" / f"file-{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(max(size, 1)))


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.base = f"{url}sharinghub/api/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def __call__(self, method: str, path: str, **kw) -> requests.Response:
        response = self.session.request(method, self.base + path, timeout=120, **kw)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response


def new_project(api: Api, name: str) -> tuple[str, float, float]:
    """A new dataset project: its id, the seconds the request took (GitLab project, first
    push, index) and the seconds from its answer to the project found by search."""
    t0 = time.perf_counter()
    item = api("POST", "publish/new", json={"category": "dataset", "name": name,
                                            "description": f"benchmark {name}"}).json()
    t1 = time.perf_counter()
    while True:
        found = api("GET", "stac/search", params={"q": f"benchmark {name}"}).json()
        if any(f["id"] == item["id"] for f in found["features"]):
            return item["id"], t1 - t0, time.perf_counter() - t1


def wait_job(api: Api, job_id: str) -> dict:
    while True:
        job = api("GET", f"dvc/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            if job["state"] != "done":
                raise RuntimeError(f"{job['kind']} {job['state']}: {job['error']}")
            return job
        time.sleep(0.02)


def same_files(a: Path, b: Path) -> bool:
    """Every file of ``a`` (hidden ones aside) is in ``b`` with the same bytes."""
    files = [p for p in a.rglob("*") if p.is_file() and not p.relative_to(a).parts[0]
             .startswith(".") and p.suffix != ".dvc" and p.name != ".gitignore"]
    return bool(files) and all((b / p.relative_to(a)).read_bytes() == p.read_bytes()
                               for p in files)


def ours(api: Api, root: Path, item: str, args, seed: int) -> tuple[float, float, float]:
    """Our publish through the API (the folder becomes a working copy in place); returns the
    job's time, the time from its end to the version in ``versions``, and the time of a pull
    of that version into another folder (checked byte for byte)."""
    folder = root / f"ours-{seed}"
    make_data(folder, args.files, args.mb * 1_000_000, seed)
    t0 = time.perf_counter()
    wait_job(api, api("POST", "publish/dataset", json={"item": item, "path": folder.name,
                                                       "version": "v1.0"}).json()["job"])
    took = time.perf_counter() - t0
    t1 = time.perf_counter()
    while not any(v["rev"] == "v1.0" for v in api(
            "GET", "dvc/versions", params={"item": item}).json()["versions"]):
        time.sleep(0.01)
    seen = time.perf_counter() - t1
    elsewhere = f"elsewhere-{seed}"
    t2 = time.perf_counter()
    wait_job(api, api("POST", "dvc/pull", json={"item": item, "rev": "v1.0",
                                                "dest": elsewhere}).json()["job"])
    pulled = time.perf_counter() - t2
    if not same_files(folder, root / elsewhere):
        raise RuntimeError("the pulled version differs from what was published")
    shutil.rmtree(folder)
    shutil.rmtree(root / elsewhere)
    return took, seen, pulled


def by_hand(gitlab: GitLabTestServer, s3: SeaweedS3, work: Path, item: str, args,
            seed: int, env: dict) -> float:
    """The same with the command line: clone, then (data moved in) add, push, commit, tag,
    push; only the commands are timed."""
    data = work / f"data-{seed}"
    make_data(data, args.files, args.mb * 1_000_000, seed)
    clone = work / f"cli-{seed}"
    dvc = str(Path(sys.executable).parent / "dvc")
    url = gitlab.clone_url(item, token=TOKEN)
    t0 = time.perf_counter()
    subprocess.run(["git", "clone", "--quiet", url, str(clone)], check=True, env=env)
    took = time.perf_counter() - t0
    data.rename(clone / "data")
    configure_remote(clone, s3.dvc_config(), env=env)  # credentials, as a user sets them
    t0 = time.perf_counter()
    subprocess.run([dvc, "add", "--quiet", "data"], cwd=clone, check=True, env=env)
    subprocess.run([dvc, "push", "--quiet"], cwd=clone, check=True, env=env)
    for cmd in (["add", "data.dvc", ".gitignore"], ["commit", "--quiet", "-m", "v1.0"],
                ["tag", "-a", "v1.0", "-m", "v1.0"],
                ["push", "--quiet", "--atomic", "origin", "main", "v1.0"]):
        subprocess.run(["git", *cmd], cwd=clone, check=True, env=env)
    took += time.perf_counter() - t0
    shutil.rmtree(clone)
    return took


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with SeaweedS3(tmp / "s3") as s3, \
                GitLabTestServer(tokens={TOKEN: "bench"}) as gitlab:
            config = tmp / "config"
            config.mkdir()
            (config / "jupyter_server_config.json").write_text(json.dumps({"SharingHub": {
                "gitlab_url": gitlab.url, "gitlab_token": TOKEN, "crawl_interval": 0,
                "dvc_default_remote": s3.url("bench"),
                "dvc_remotes": {f"s3://{s3.bucket}": s3.dvc_config()}}}))
            env = tool_env(tmp / "home")
            with jupyter_server(tmp / "root", token="bench",
                                env={"JUPYTER_CONFIG_DIR": str(config)}) as server:
                api = Api(server.url, "bench")
                times: dict[str, list[float]] = {"ours": [], "cli": []}
                to_versions: list[float] = []
                pulls: list[float] = []
                to_search: list[float] = []
                creating: list[float] = []
                work = tmp / "work"
                work.mkdir()
                for run in range(args.runs):
                    for kind in ("cli", "ours") if run % 2 else ("ours", "cli"):
                        item, created, found = new_project(api, f"bench-{kind}-{run}")
                        creating.append(created)
                        to_search.append(found)
                        seed = run * 2 + (kind == "ours")
                        if kind == "ours":
                            took, seen, pulled = ours(api, server.root, item, args, seed)
                            to_versions.append(seen)
                            pulls.append(pulled)
                        else:
                            took = by_hand(gitlab, s3, work, item, args, seed, env)
                        times[kind].append(took)
                        print(f"  run {run + 1}: {kind:4s} {took:6.2f} s", flush=True)
    mine, cli = statistics.median(times["ours"]), statistics.median(times["cli"])
    print(f"{args.files} files, {args.mb} MB to S3, median of {args.runs}: publish through "
          f"the API {mine:.2f} s, by hand (git clone + dvc add + dvc push + git commit/tag/"
          f"push) {cli:.2f} s, ratio {mine / cli:.2f} (target <= 1.10)")
    print(f"finished publish -> version in versions: max {max(to_versions) * 1000:.0f} ms")
    print(f"then a pull of it into another folder (same bytes): median "
          f"{statistics.median(pulls):.2f} s")
    print(f"POST publish/new (GitLab project, first push, index): median "
          f"{statistics.median(creating) * 1000:.0f} ms; its answer -> project in search: "
          f"max {max(to_search) * 1000:.0f} ms")
    return 0 if mine <= cli * 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
