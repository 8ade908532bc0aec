"""Publishing to GitLab through the server's HTTP API: the GitLab test server (project
creation, pushes over smart HTTP behind token auth, a read-only user), real git, real DVC with
a local folder remote and a real S3 server (SeaweedFS), and a second Jupyter server (another
user's root) pulling what was published.

Each refusal and each failure is checked to leave GitLab (refs, project JSON), the DVC remote
(its files) and the workspace as they were; no secret reaches the workspace, a log or a job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import TOKEN
from tests.support.git_repos import run_git
from tests.support.gitlab_server import GitLabTestServer
from tests.support.jupyter_proc import jupyter_server
from tests.support.polling import poll
from tests.support.s3 import seaweed_fixture
from tests.test_dvc_gitlab import job_processes
from tests.test_dvc_local import api, refused, wait_job
from tests.test_publish import data_files, grep_tree, tree_digest, workspace_state, write_data

s3 = seaweed_fixture(scope="module")

ITEM = "user/floods"
READER = "read-token"


@pytest.fixture
def remote_kind() -> str:
    """Where new datasets keep their data: "local" (a folder) or "s3" (parametrize it)."""
    return "local"


@pytest.fixture
def gitlab():
    with GitLabTestServer(tokens={TOKEN: "user", READER: "reader"}, readers=["reader"]) as server:
        yield server
        assert server.errors == []


@pytest.fixture
def remote_url(remote_kind, s3, tmp_path) -> str:
    return s3.url(f"published-{tmp_path.name}") if remote_kind == "s3" else str(
        tmp_path / "remote")


@pytest.fixture
def jp_server_config(gitlab, s3, remote_url, tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"sharinghub_server": True}},
        "SharingHub": {
            "gitlab_url": gitlab.url,
            "gitlab_token": TOKEN,
            "index_url": f"sqlite://{tmp_path / 'index.sqlite'}",
            "crawl_interval": 0,
            "mlflow_warmup": False,  # (see conftest.py)
            "dvc_default_remote": remote_url,
            "dvc_remotes": {f"s3://{s3.bucket}": s3.dvc_config()},
        },
    }


@pytest.fixture
def server_log(jp_serverapp):
    """Every log record of the server process while the test runs (for secrets)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger(), jp_serverapp.log, logging.getLogger("sharinghub_server"),
               logging.getLogger("tornado")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
    logging.getLogger("sharinghub_server").setLevel(logging.DEBUG)
    yield lines
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


def remote_state(remote_kind: str, s3, remote_url: str) -> object:
    if remote_kind == "s3":
        return sorted(s3.list_keys(remote_url.removeprefix(f"s3://{s3.bucket}/")))
    return tree_digest(Path(remote_url))


def gitlab_state(gitlab: GitLabTestServer, item: str = ITEM) -> tuple[str, dict]:
    """The project's refs (its bare repository) and its JSON as GitLab serves it."""
    refs = run_git(gitlab.git_project_repo(item), "for-each-ref",
                   "--format=%(refname) %(objectname)").decode()
    project = requests.get(f"{gitlab.api_url}/projects/{gitlab.project(item).id}",
                           headers={"PRIVATE-TOKEN": TOKEN}, timeout=30).json()
    return refs, project


def show(gitlab: GitLabTestServer, rev: str, path: str, item: str = ITEM) -> str:
    return run_git(gitlab.git_project_repo(item), "show", f"{rev}:{path}").decode()


async def new_project(jp_fetch, **body) -> dict:
    code, item = await api(jp_fetch, "publish", "new", method="POST", body={
        "category": "dataset", "name": "floods", "title": "Floods",
        "description": "Flood chips from Sentinel-1, hand-labelled.", **body})
    assert code == 201
    return item


async def publish(jp_fetch, path: str, version: str, item: str = ITEM, **extra) -> dict:
    code, started = await api(jp_fetch, "publish", "dataset", method="POST",
                              body={"item": item, "path": path, "version": version, **extra})
    assert code == 202
    return await wait_job(jp_fetch, started["job"])


async def versions(jp_fetch, item: str = ITEM) -> dict[str, dict]:
    _, found = await api(jp_fetch, "dvc", "versions", params={"item": item})
    return {v["rev"]: v for v in found["versions"]}


def pull_elsewhere(root: Path, gitlab: GitLabTestServer, s3, item: str, rev: str,
                   dest: str) -> tuple[dict, Path]:
    """Another user's Jupyter server (its own root, index and process) pulls ``rev`` through
    the pull API; returns the job and the server's log."""
    config = root / "config"
    config.mkdir(parents=True)
    (config / "jupyter_server_config.json").write_text(json.dumps({"SharingHub": {
        "gitlab_url": gitlab.url, "gitlab_token": TOKEN, "crawl_interval": 0,
        "dvc_remotes": {f"s3://{s3.bucket}": s3.dvc_config()}}}))
    token = "second-server"
    with jupyter_server(root / "root", token=token,
                        env={"JUPYTER_CONFIG_DIR": str(config)}) as server:
        session = requests.Session()
        session.headers["Authorization"] = f"token {token}"
        api_url = f"{server.url}sharinghub/api"

        def crawled() -> bool:
            status = session.get(f"{api_url}/index", timeout=30).json()
            return status["state"] == "idle" and bool((status["last_crawl"] or {}).get(
                "finished"))

        poll(crawled, "the second server's first crawl", timeout=120)
        started = session.post(f"{api_url}/dvc/pull", timeout=30,
                               json={"item": item, "rev": rev, "dest": dest})
        assert started.status_code == 202, started.text
        job_id = started.json()["job"]

        def ended() -> dict | None:
            job = session.get(f"{api_url}/dvc/jobs/{job_id}", timeout=30).json()
            return job if job["state"] in ("done", "failed", "cancelled") else None

        return poll(ended, "the pull on the second server", timeout=180), server.log_path


@pytest.mark.parametrize("remote_kind", ["local", "s3"])
async def test_new_publish_pull_elsewhere_publish_again(jp_fetch, jp_root_dir, gitlab, s3,
                                                       remote_kind, remote_url, tmp_path,
                                                       server_log):
    root = Path(jp_root_dir)
    started = time.monotonic()
    item = await new_project(jp_fetch)
    assert (item["id"], item["collection"]) == (ITEM, "dataset")
    assert item["properties"]["title"] == "Floods"
    assert item["properties"]["sharinghub:dvc-remote"] == remote_url
    # found by search at once (the POST indexed it)
    _, page = await api(jp_fetch, "stac", "search", params={"q": "hand-labelled"})
    assert [f["id"] for f in page["features"]] == [ITEM]
    found_after = time.monotonic() - started
    project = gitlab.project(ITEM)
    assert project.topics == ["sharinghub:dataset"] and project.visibility == "private"
    readme = show(gitlab, "main", "README.md")
    assert readme.startswith("---\ntitle: Floods\n") and "license: CC-BY-4.0" in readme
    assert readme.rstrip().endswith("Flood chips from Sentinel-1, hand-labelled.")
    assert f"url = {remote_url}" in show(gitlab, "main", ".dvc/config")

    # v1.0 from a folder of the workspace, which becomes a working copy
    work = root / "work" / "floods"
    v1 = data_files(1, n=8)
    write_data(work, v1)
    job = await publish(jp_fetch, "work/floods", "v1.0")
    assert job["state"] == "done", job["error"]
    assert (job["kind"], job["item"], job["rev"], job["dest"]) == (
        "publish", ITEM, "v1.0", "work/floods")
    assert job["files_done"] == job["files_total"] == len(v1)
    assert job["bytes_done"] == job["bytes_total"] == sum(map(len, v1.values()))
    found = await versions(jp_fetch)
    assert set(found) == {"main", "v1.0"}
    assert found["v1.0"]["commit"] == job["result"]["commit"]
    assert {o["path"] for o in found["v1.0"]["outputs"]} == {"images", "labels.csv"}
    # the item's assets are the new outputs, on the remote
    _, served = await api(jp_fetch, "stac", "collections", "dataset", "items", ITEM)
    assert served["assets"]["labels.csv"]["file:size"] == len(v1["labels.csv"])

    # another user's Jupyter root pulls v1.0 and gets the same bytes
    elsewhere = tmp_path / "elsewhere"
    pulled, second_log = await asyncio.to_thread(pull_elsewhere, elsewhere, gitlab, s3, ITEM,
                                                 "v1.0", "copy")
    assert pulled["state"] == "done", pulled["error"]
    copy = elsewhere / "root" / "copy"
    assert {p: (copy / p).read_bytes() for p in v1} == v1

    # v1.1: one chip changed, one more, new labels
    v2 = dict(v1, **{"images/chip-0.bin": b"changed" * 300, "images/chip-9.bin": b"9" * 4000,
                     "labels.csv": b"chip,label\nchip-9,land\n"})
    write_data(work, v2)
    job2 = await publish(jp_fetch, "work/floods", "v1.1", message="One chip more")
    assert job2["state"] == "done", job2["error"]
    found = await versions(jp_fetch)
    assert set(found) == {"main", "v1.0", "v1.1"}
    assert found["main"]["commit"] == found["v1.1"]["commit"] == job2["result"]["commit"]
    assert found["v1.0"]["outputs"] != found["v1.1"]["outputs"]
    assert run_git(gitlab.git_project_repo(ITEM), "log", "-1", "--format=%s",
                   "v1.1").decode().strip() == "One chip more"

    # no secret in either workspace (.git and .dvc included), a log or a job
    secrets = [TOKEN, s3.secret_access_key, s3.access_key_id]
    second = second_log.read_text(errors="replace")
    for secret in secrets:
        assert grep_tree(root, secret.encode()) == [], secret
        assert grep_tree(elsewhere / "root", secret.encode()) == [], secret
        for shown in (job, job2, pulled, item, served):
            assert secret not in json.dumps(shown)
        assert not [line for line in server_log if secret in line]
        assert secret not in second
    assert not (work / ".dvc" / "config.local").exists()
    assert "url = http" in (work / ".git" / "config").read_text()  # origin, no credentials
    assert gitlab.git_errors == []
    print(f"\nnew project found by search {found_after:.2f} s after the request")


async def publish_first(jp_fetch, jp_root_dir) -> Path:
    """A GitLab dataset project with v1.0 published from ``work/floods`` (a working copy)."""
    await new_project(jp_fetch)
    work = Path(jp_root_dir) / "work" / "floods"
    write_data(work, data_files(1))
    job = await publish(jp_fetch, "work/floods", "v1.0")
    assert job["state"] == "done", job["error"]
    return work


@pytest.mark.parametrize("case", ["existing tag", "outside the root", "hidden", "reader",
                                  "unrelated changes", "empty folder"])
async def test_refusals_leave_gitlab_the_remote_and_the_workspace_unchanged(
        jp_fetch, jp_root_dir, gitlab, s3, remote_url, case):
    published = await publish_first(jp_fetch, jp_root_dir)
    root = Path(jp_root_dir)
    write_data(published, {"images/new.bin": b"new" * 1000})  # something to publish
    (root / "empty" / "sub").mkdir(parents=True)
    write_data(root / ".hidden" / "data", {"x.bin": b"x"})
    body = {"item": ITEM, "path": "work/floods", "version": "v1.1"}
    expected = 400
    if case == "existing tag":
        body["version"], expected = "v1.0", 409
    elif case == "outside the root":
        body["path"] = "../outside"
        (root.parent / "outside").mkdir(exist_ok=True)
    elif case == "hidden":
        body["path"] = ".hidden/data"
    elif case == "reader":
        gitlab.readers.add("user")  # the server's token loses its push rights
        expected = 403
    elif case == "unrelated changes":
        with (published / "README.md").open("a") as fh:
            fh.write("an edit of mine\n")
        expected = 409
    elif case == "empty folder":
        body["path"] = "empty"

    def snapshot() -> tuple:
        return (gitlab_state(gitlab), remote_state("local", s3, remote_url),
                tree_digest(root))

    before = await asyncio.to_thread(snapshot)
    code, answer = await refused(jp_fetch, "publish", "dataset", method="POST", body=body)
    assert code == expected, answer
    assert answer["description"] and "\n" not in answer["description"]
    if case == "reader":
        assert "Reporter" in answer["description"]
    assert await asyncio.to_thread(snapshot) == before
    if case == "reader":  # the sidebar's button asks first
        _, allowed = await api(jp_fetch, "publish", "permissions", params={"item": ITEM})
        assert allowed["can_publish"] is False and "Developer" in allowed["reason"]


async def test_a_push_refused_by_gitlab_restores_the_remote_and_the_workspace(
        jp_fetch, jp_root_dir, gitlab, s3, remote_url):
    published = await publish_first(jp_fetch, jp_root_dir)
    root = Path(jp_root_dir)
    write_data(published, {"images/new.bin": b"new" * 3000, "labels.csv": b"changed\n"})

    def snapshot() -> tuple:
        return gitlab_state(gitlab), remote_state("local", s3, remote_url), workspace_state(root)

    before = await asyncio.to_thread(snapshot)
    gitlab.fail_next(lambda r: r.endpoint == "git" and r.method == "POST"
                     and r.path.endswith("/git-receive-pack"), 500)
    job = await publish(jp_fetch, "work/floods", "v1.1")
    assert job["state"] == "failed" and job["error"].startswith("git push failed"), job
    assert job["files_done"] > 0  # it failed after the upload
    assert await asyncio.to_thread(snapshot) == before
    # and it can be published once GitLab takes it
    job = await publish(jp_fetch, "work/floods", "v1.1")
    assert job["state"] == "done", job["error"]


@pytest.mark.parametrize("remote_kind", ["s3"])  # (slow enough to cancel midway)
async def test_cancel_during_the_upload_leaves_everything_as_it_was(
        jp_fetch, jp_root_dir, gitlab, s3, remote_url, remote_kind):
    root = Path(jp_root_dir)
    await new_project(jp_fetch)
    big = root / "big"
    import random

    rng = random.Random(7)
    write_data(big, {f"part-{i // 50}/file-{i:04d}.bin": rng.randbytes(200_000)
                     for i in range(400)})  # 80 MB

    def snapshot() -> tuple:
        return (gitlab_state(gitlab), remote_state(remote_kind, s3, remote_url),
                tree_digest(big))

    before = await asyncio.to_thread(snapshot)
    _, started = await api(jp_fetch, "publish", "dataset", method="POST",
                           body={"item": ITEM, "path": "big", "version": "v1.0"})
    job_id = started["job"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # bounded polling until part of it is uploaded
        _, job = await api(jp_fetch, "dvc", "jobs", job_id)
        if job["state"] in ("done", "failed", "cancelled") or (
                job["state"] == "pushing" and job["bytes_done"] > 0):
            break
        await asyncio.sleep(0.01)
    assert job["state"] == "pushing" and 0 < job["bytes_done"] < job["bytes_total"], job
    code, _ = await api(jp_fetch, "dvc", "jobs", job_id, method="DELETE")
    assert code == 200
    job = await wait_job(jp_fetch, job_id)
    assert job["state"] == "cancelled", job
    assert await asyncio.to_thread(snapshot) == before  # byte for byte: no .git, no .dvc
    found = await versions(jp_fetch)
    assert set(found) == {"main"}


async def test_cancel_while_git_pushes_leaves_gitlab_as_it_was(
        jp_fetch, jp_root_dir, gitlab, s3, remote_url):
    published = await publish_first(jp_fetch, jp_root_dir)
    root = Path(jp_root_dir)
    write_data(published, {"images/new.bin": b"new" * 3000})

    def snapshot() -> tuple:
        return gitlab_state(gitlab), remote_state("local", s3, remote_url), workspace_state(root)

    before = await asyncio.to_thread(snapshot)
    workdir = published.resolve()
    _, started = await api(jp_fetch, "publish", "dataset", method="POST",
                           body={"item": ITEM, "path": "work/floods", "version": "v1.1"})
    hung = time.monotonic()
    gitlab.latency = 3600  # GitLab hangs: the push waits (DVC's upload does not need GitLab)
    try:
        def pushing() -> bool:
            """git push runs, and one of its requests waits inside GitLab: a process alone
            may not have sent its request yet, which would then find GitLab answering again
            once the cancel is sent, and the push could go through before git is stopped."""
            return "git-remote-http" in job_processes(workdir).values() and gitlab.count(
                lambda r: r.endpoint == "git" and r.received >= hung and r.status is None) > 0

        await asyncio.to_thread(poll, pushing, "git push to wait for GitLab", 120)
        code, _ = await api(jp_fetch, "dvc", "jobs", started["job"], method="DELETE")
        assert code == 200
    finally:
        gitlab.latency = 0.0
    job = await wait_job(jp_fetch, started["job"])
    assert job["state"] == "cancelled", job
    assert job_processes(workdir) == {}
    assert await asyncio.to_thread(snapshot) == before


async def test_metadata_patch(jp_fetch, jp_root_dir, gitlab):
    await new_project(jp_fetch)
    readme = show(gitlab, "main", "README.md")
    from sharinghub_server.catalog.frontmatter import parse_readme

    meta, body, _ = parse_readme(readme)
    meta.update({"title": "Floods of 2019", "keywords": ["flood", "sar"],
                 "extent": {"spatial": [-5.5, 41.0, 9.8, 51.3],
                            "temporal": ["2019-01-01", "2019-12-31"]}})
    code, item = await api(jp_fetch, "publish", "metadata", method="PATCH",
                           body={"item": ITEM, "front_matter": meta})
    assert code == 200
    assert item["properties"]["title"] == "Floods of 2019"
    assert item["bbox"] == [-5.5, 41.0, 9.8, 51.3]
    assert item["properties"]["start_datetime"].startswith("2019-01-01")
    changed = show(gitlab, "main", "README.md")
    assert "title: Floods of 2019" in changed and parse_readme(changed)[1] == body
    _, page = await api(jp_fetch, "stac", "search", params={"q": "Floods of 2019"})
    assert [f["id"] for f in page["features"]] == [ITEM]

    refs = await asyncio.to_thread(gitlab_state, gitlab)
    for bad, words in [
        ({**meta, "extensions": {"mlm": "https://stac-extensions.github.io/mlm/v1.4.0/"
                                         "schema.json"}, "mlm": {"name": "x"}}, "mlm:"),
        ({**meta, "extent": {"spatial": "POLYGON((0 0, 1"}}, "extent.spatial"),
        ("title: [unclosed", "not valid YAML"),
        ([1, 2], "mapping"),
    ]:
        code, answer = await refused(jp_fetch, "publish", "metadata", method="PATCH",
                                     body={"item": ITEM, "front_matter": bad})
        assert code == 400 and words in answer["description"], answer
        assert "\n" not in answer["description"]
    assert await asyncio.to_thread(gitlab_state, gitlab) == refs  # nothing committed

    gitlab.readers.add("user")  # (its permissions in the project JSON say so)
    refs = await asyncio.to_thread(gitlab_state, gitlab)
    code, answer = await refused(jp_fetch, "publish", "metadata", method="PATCH",
                                 body={"item": ITEM, "front_matter": meta})
    assert code == 403 and "Reporter" in answer["description"]
    assert await asyncio.to_thread(gitlab_state, gitlab) == refs


async def test_new_project_refusals_and_permissions(jp_fetch, gitlab):
    await new_project(jp_fetch)
    projects = len(gitlab.projects)
    for body, expected in [
        ({"category": "dataset", "name": "floods"}, 409),
        ({"category": "dataset", "name": "x", "namespace": "nobody"}, 400),
        ({"category": "nope", "name": "x"}, 400),
        ({"category": "dataset", "name": "a b"}, 400),
        ({"name": "x"}, 400),
    ]:
        code, answer = await refused(jp_fetch, "publish", "new", method="POST", body=body)
        assert code == expected, (body, answer)
        assert "\n" not in answer["description"]
    assert len(gitlab.projects) == projects
    _, allowed = await api(jp_fetch, "publish", "permissions", params={"item": ITEM})
    assert allowed == {"item": ITEM, "can_publish": True, "reason": None}
    code, _ = await refused(jp_fetch, "publish", "permissions", params={"item": "no/such"})
    assert code == 404
    code, _ = await refused(jp_fetch, "publish", "permissions")
    assert code == 400
    # a model project: its topic, the mlm template
    item = await new_project(jp_fetch, category="ai-model", name="flood-model")
    assert item["collection"] == "ai-model" and item["properties"]["mlm:name"] == "flood-model"
    assert gitlab.project("user/flood-model").topics == ["sharinghub:aimodel"]
