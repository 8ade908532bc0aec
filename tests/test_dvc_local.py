"""DVC through the server with the embedded default: local git projects, a local remote."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from tests.conftest import wait_for_crawl

DATASET = "local/sen1floods11-sample"


async def api(jp_fetch, *parts, method="GET", body=None, params=None):
    response = await jp_fetch("sharinghub", "api", *parts, method=method, params=params,
                              body=json.dumps(body) if body is not None else None)
    return response.code, json.loads(response.body)


async def refused(jp_fetch, *parts, **kw):
    with pytest.raises(HTTPClientError) as info:
        await api(jp_fetch, *parts, **kw)
    return info.value.code, json.loads(info.value.response.body)


async def wait_job(jp_fetch, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, job = await api(jp_fetch, "dvc", "jobs", job_id)
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


def dvc(*args: str, cwd: Path) -> str:
    exe = Path(sys.executable).parent / "dvc"
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout


async def test_versions_of_a_local_dataset(jp_fetch):
    await wait_for_crawl(jp_fetch)
    _, found = await api(jp_fetch, "dvc", "versions", params={"item": DATASET})
    assert found["item"] == DATASET
    revs = {(v["rev"], v["kind"]) for v in found["versions"]}
    assert revs == {("main", "branch"), ("v1.0", "tag")}
    outputs = found["versions"][0]["outputs"]
    assert {o["path"] for o in outputs} == {f"data/chip_{i}.tif" for i in range(3)}
    assert all(len(o["md5"]) == 32 and o["size"] > 0 for o in outputs)
    code, body = await refused(jp_fetch, "dvc", "versions", params={"item": "no/such"})
    assert code == 404 and body["code"] == "NotFound"
    code, body = await refused(jp_fetch, "dvc", "versions")
    assert code == 400 and "item" in body["description"]


async def test_pull_into_the_workspace(jp_fetch, jp_root_dir):
    await wait_for_crawl(jp_fetch)
    code, started = await api(jp_fetch, "dvc", "pull", method="POST",
                              body={"item": DATASET, "rev": "v1.0", "dest": "data/floods"})
    assert code == 202
    job = await wait_job(jp_fetch, started["job"])
    assert job["state"] == "done", job["error"]
    assert (job["kind"], job["item"], job["rev"], job["dest"]) == (
        "pull", DATASET, "v1.0", "data/floods")
    assert job["files_done"] == job["files_total"] == 3
    assert job["bytes_done"] == job["bytes_total"] == 1024 + 2048 + 3072
    dest = Path(jp_root_dir) / "data" / "floods"
    assert (dest / "data" / "chip_2.tif").read_bytes() == bytes([2]) * 3072
    assert "up to date" in dvc("status", cwd=dest)
    assert subprocess.run(["git", "status", "--porcelain"], cwd=dest, capture_output=True,
                          text=True).stdout == ""
    manifest = json.loads((dest / ".sharinghub-pull.json").read_text())
    assert manifest["item"] == DATASET and manifest["rev"] == "v1.0"
    assert len(manifest["commit"]) == 40
    assert {o["md5"] for o in manifest["outputs"]} == {
        o["md5"] for o in job["result"]["outputs"]}
    # an ended job cannot be cancelled
    code, body = await refused(jp_fetch, "dvc", "jobs", job["job"], method="DELETE")
    assert code == 409 and body["code"] == "Conflict"


@pytest.mark.parametrize("dest", ["../outside", "/tmp/absolute", "a/../../outside", "."])
async def test_destinations_outside_the_root_are_refused(jp_fetch, jp_root_dir, dest):
    await wait_for_crawl(jp_fetch)
    before = sorted(p.name for p in Path(jp_root_dir).parent.iterdir())
    code, body = await refused(jp_fetch, "dvc", "pull", method="POST",
                               body={"item": DATASET, "dest": dest})
    assert code == 400 and "root" in body["description"]
    assert sorted(p.name for p in Path(jp_root_dir).parent.iterdir()) == before


async def test_symlinks_out_of_the_root_are_refused(jp_fetch, jp_root_dir, tmp_path):
    await wait_for_crawl(jp_fetch)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (Path(jp_root_dir) / "link").symlink_to(outside)
    code, _ = await refused(jp_fetch, "dvc", "pull", method="POST",
                            body={"item": DATASET, "dest": "link/ds"})
    assert code == 400
    assert list(outside.iterdir()) == []


async def test_bad_requests(jp_fetch):
    await wait_for_crawl(jp_fetch)
    for body in ([1], {"rev": "v1"}, {"item": DATASET, "dest": 5}, {"item": DATASET, "rev": ""}):
        code, answer = await refused(jp_fetch, "dvc", "pull", method="POST", body=body)
        assert code == 400 and answer["description"], body
    code, _ = await refused(jp_fetch, "dvc", "pull", method="POST", body={"item": "no/such"})
    assert code == 404
    code, _ = await refused(jp_fetch, "dvc", "jobs", "0123abcd")
    assert code == 404


async def test_unknown_revision_fails_cleanly(jp_fetch, jp_root_dir):
    await wait_for_crawl(jp_fetch)
    _, started = await api(jp_fetch, "dvc", "pull", method="POST",
                           body={"item": DATASET, "rev": "v9.9", "dest": "nope"})
    job = await wait_job(jp_fetch, started["job"])
    assert job["state"] == "failed" and "v9.9" in job["error"]
    assert not (Path(jp_root_dir) / "nope").exists()
