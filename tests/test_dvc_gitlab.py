"""DVC pulls of GitLab projects through the server: real git over HTTP (git http-backend
behind the GitLab test server, token auth), real DVC, a local remote and a real S3 server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TOKEN, wait_for_crawl
from tests.support.git_repos import make_big_dataset, make_dataset_repo, tool_env
from tests.support.gitlab_server import FakeProject, GitLabTestServer
from tests.support.polling import poll
from tests.support.s3 import seaweed_fixture
from tests.test_dvc_local import api, wait_job

s3 = seaweed_fixture(scope="module")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("dvc-gitlab")


@pytest.fixture(scope="module")
def env(workdir):
    return tool_env(workdir / "home")


@pytest.fixture(scope="module")
def s3_ds(workdir, env, s3):
    return make_dataset_repo(workdir, "s3-ds", s3.url("datasets/s3-ds"),
                             remote_config=s3.dvc_config(), env=env, title="Floods on S3")


@pytest.fixture(scope="module")
def big_ds(workdir, env, s3):
    return make_big_dataset(workdir, "big-ds", s3.url("datasets/big-ds"), n_files=600,
                            total_bytes=90_000_000, remote_config=s3.dvc_config(), env=env)


@pytest.fixture
def local_ds(tmp_path, env):
    """Its own remote folder per test: tests may break it."""
    return make_dataset_repo(tmp_path / "repos", "local-ds", str(tmp_path / "remote"), env=env,
                             title="Floods on a folder")


@pytest.fixture
def gitlab(s3_ds, big_ds, local_ds):
    with GitLabTestServer() as server:
        for pid, path, repo in ((601, "eo/s3-ds", s3_ds), (602, "eo/local-ds", local_ds),
                                (603, "eo/big-ds", big_ds)):
            server.add_git_project(FakeProject(id=pid, path_with_namespace=path,
                                               visibility="private",
                                               topics=["sharinghub:dataset"]), repo.bare)
        yield server


@pytest.fixture
def jp_server_config(gitlab, s3, tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"sharinghub_server": True}},
        "SharingHub": {
            "gitlab_url": gitlab.url,
            "gitlab_token": TOKEN,
            "index_url": f"sqlite://{tmp_path / 'index.sqlite'}",
            "crawl_interval": 0,
            "mlflow_warmup": False,  # (see conftest.py)
            "dvc_remotes": {f"s3://{s3.bucket}": s3.dvc_config()},
        },
    }


def dvc_status(dest: Path) -> str:
    exe = Path(sys.executable).parent / "dvc"
    return subprocess.run([str(exe), "status"], cwd=dest, capture_output=True, text=True,
                          env=tool_env(dest.parent / ".home")).stdout


def grep_tree(root: Path, needle: bytes) -> list[str]:
    hits = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink() and needle in path.read_bytes():
                hits.append(str(path))
    return hits


async def pull(jp_fetch, **body) -> dict:
    code, started = await api(jp_fetch, "dvc", "pull", method="POST", body=body)
    assert code == 202
    return await wait_job(jp_fetch, started["job"])


async def test_versions_from_gitlab(jp_fetch, s3_ds):
    await wait_for_crawl(jp_fetch)
    _, found = await api(jp_fetch, "dvc", "versions", params={"item": "eo/s3-ds"})
    versions = {v["rev"]: v for v in found["versions"]}
    assert set(versions) == {"main", "v1.0", "v1.1"}
    assert [v["rev"] for v in found["versions"]][-1] == "v1.0"  # newest first
    for tag in ("v1.0", "v1.1"):
        assert versions[tag]["kind"] == "tag"
        assert versions[tag]["commit"] == s3_ds.commits[tag]
        got = {o["path"]: o["md5"] for o in versions[tag]["outputs"]}
        assert got == {path: out["md5"] for path, out in s3_ds.outs[tag].items()}
    assert versions["main"]["commit"] == s3_ds.commits["v1.1"]


async def test_pull_v1_then_v2_in_place_from_s3(jp_fetch, jp_root_dir, s3_ds):
    await wait_for_crawl(jp_fetch)
    job = await pull(jp_fetch, item="eo/s3-ds", rev="v1.0")
    assert job["state"] == "done", job["error"]
    dest = Path(jp_root_dir) / "s3-ds"
    assert s3_ds.diff_workspace(dest, "v1.0") == []
    assert "up to date" in dvc_status(dest)
    unchanged = next(p for p, c in s3_ds.contents["v1.0"].items()
                     if s3_ds.contents["v1.1"].get(p) == c)
    before = (dest / unchanged).stat().st_mtime_ns

    job = await pull(jp_fetch, item="eo/s3-ds", rev="v1.1")
    assert job["state"] == "done", job["error"]
    assert s3_ds.diff_workspace(dest, "v1.1") == []
    assert "up to date" in dvc_status(dest)
    assert (dest / unchanged).stat().st_mtime_ns == before  # only what changed was touched
    assert job["files_done"] == job["files_total"] and job["bytes_done"] == job["bytes_total"]
    manifest = json.loads((dest / ".sharinghub-pull.json").read_text())
    assert (manifest["rev"], manifest["commit"]) == ("v1.1", s3_ds.commits["v1.1"])
    # no secret anywhere in the workspace (git config, DVC config, manifest) or the job
    for secret in (TOKEN, s3_ds.remote_config["secret_access_key"]):
        assert grep_tree(dest, secret.encode()) == []
        assert secret not in json.dumps(job)
    assert not (dest / ".dvc" / "config.local").exists()


async def test_pull_from_a_local_remote_and_missing_objects(jp_fetch, jp_root_dir, local_ds):
    await wait_for_crawl(jp_fetch)
    job = await pull(jp_fetch, item="eo/local-ds", dest="ok")
    assert job["state"] == "done", job["error"]
    assert local_ds.diff_workspace(Path(jp_root_dir) / "ok", local_ds.latest) == []
    # a remote that lost an object: a clear error, nothing left behind
    shutil.rmtree(local_ds.remote_url)
    job = await pull(jp_fetch, item="eo/local-ds", dest="broken")
    assert job["state"] == "failed"
    assert job["error"].startswith("dvc pull failed") and "\n" not in job["error"]
    assert not (Path(jp_root_dir) / "broken").exists()


async def test_wrong_token_is_a_clear_error_and_leaves_nothing(jp_fetch, jp_root_dir, gitlab):
    await wait_for_crawl(jp_fetch)
    gitlab.tokens.clear()  # GitLab no longer knows the server's token
    job = await pull(jp_fetch, item="eo/s3-ds", dest="denied")
    assert job["state"] == "failed"
    assert "refused the credentials" in job["error"] and TOKEN not in job["error"]
    assert not (Path(jp_root_dir) / "denied").exists()


async def test_cancel_a_fresh_pull_removes_it(jp_fetch, jp_root_dir):
    await wait_for_crawl(jp_fetch)
    _, started = await api(jp_fetch, "dvc", "pull", method="POST",
                           body={"item": "eo/big-ds", "dest": "big"})
    for _ in range(2000):  # bounded polling until the data transfer runs
        _, job = await api(jp_fetch, "dvc", "jobs", started["job"])
        if job["state"] == "pulling" or job["state"] in ("done", "failed"):
            break
        await asyncio.sleep(0.01)
    assert job["state"] == "pulling", job
    # a second pull of the same item and destination joins the running job
    _, again = await api(jp_fetch, "dvc", "pull", method="POST",
                         body={"item": "eo/big-ds", "dest": "big"})
    assert again["job"] == started["job"]
    code, _ = await api(jp_fetch, "dvc", "jobs", started["job"], method="DELETE")
    assert code == 200
    job = await wait_job(jp_fetch, started["job"])
    assert job["state"] == "cancelled"
    assert not (Path(jp_root_dir) / "big").exists()


def job_processes(dest: Path) -> dict[tuple[int, str], str]:
    """Live processes working in ``dest`` (git and its remote helper run there), by (pid,
    start time) so that a reused pid is another process, with their command names."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            comm, _, rest = (entry / "stat").read_text().rpartition(")")
        except (OSError, ValueError):  # not a process, gone, or not ours to look at
            continue
        fields = rest.split()
        if fields[0] != "Z" and cwd.is_relative_to(dest):  # a zombie has stopped already
            found[(int(entry.name), fields[19])] = comm.partition("(")[2]
    return found


async def test_cancel_an_update_restores_the_previous_version(jp_fetch, jp_root_dir, s3_ds,
                                                              gitlab):
    await wait_for_crawl(jp_fetch)
    job = await pull(jp_fetch, item="eo/s3-ds", rev="v1.0", dest="restore")
    assert job["state"] == "done"
    dest = (Path(jp_root_dir) / "restore").resolve()
    gitlab.latency = 3600  # git's requests hang: only stopping git can end the job
    try:
        _, started = await api(jp_fetch, "dvc", "pull", method="POST",
                               body={"item": "eo/s3-ds", "rev": "v1.1", "dest": "restore"})

        def fetching() -> dict | None:
            found = job_processes(dest)
            return found if "git-remote-http" in found.values() else None

        running = await asyncio.to_thread(poll, fetching, "git's HTTP helper to wait for GitLab")
        assert {"git", "git-remote-http"} <= set(running.values())
        code, _ = await api(jp_fetch, "dvc", "jobs", started["job"], method="DELETE")
        assert code == 200
        job = await wait_job(jp_fetch, started["job"], timeout=60)
    finally:
        gitlab.latency = 0.0
    assert job["state"] == "cancelled"
    alive = job_processes(dest)
    assert [running[key] for key in running if key in alive] == []  # git and its helper
    assert alive == {}
    assert s3_ds.diff_workspace(dest, "v1.0") == []
