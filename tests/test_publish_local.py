"""Publishing through the server's HTTP API with only local projects (the embedded default):
the new project is a git repository in the first ``local_projects`` folder, versions are
pushed into it, the front matter is edited there."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.git_repos import run_git
from tests.test_dvc_local import api, refused, wait_job
from tests.test_publish import data_files, tree_digest, write_data

ITEM = "local/floods"


@pytest.fixture
def projects(tmp_path) -> Path:
    folder = tmp_path / "projects" / "local"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def jp_server_config(projects, tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"sharinghub_server": True}},
        "SharingHub": {
            "local_projects": [str(projects), str(tmp_path / "more")],
            "index_url": f"sqlite://{tmp_path / 'index.sqlite'}",
            "crawl_interval": 0,
            "mlflow_warmup": False,  # (see conftest.py)
            "dvc_default_remote": str(tmp_path / "remote"),
        },
    }


async def test_new_project_publish_and_edit_in_local_mode(jp_fetch, jp_root_dir, projects,
                                                        tmp_path):
    code, item = await api(jp_fetch, "publish", "new", method="POST", body={
        "category": "dataset", "name": "floods", "description": "Chips of floods."})
    assert code == 201
    assert (item["id"], item["collection"]) == (ITEM, "dataset")
    assert item["properties"]["title"] == "floods"  # the name, without a title
    folder = projects / "floods"
    assert run_git(folder, "log", "--format=%s").decode().strip() == "New dataset: floods"
    assert (folder / ".dvc" / "config").read_text().endswith(f"url = {tmp_path / 'remote'}\n")
    _, page = await api(jp_fetch, "stac", "search", params={"q": "chips"})
    assert [f["id"] for f in page["features"]] == [ITEM]
    _, allowed = await api(jp_fetch, "publish", "permissions", params={"item": ITEM})
    assert allowed == {"item": ITEM, "can_publish": True, "reason": None}

    # the same name again, a namespace that is no local folder: refused, nothing created
    before = tree_digest(projects)
    code, answer = await refused(jp_fetch, "publish", "new", method="POST",
                                 body={"category": "dataset", "name": "floods"})
    assert code == 409 and "exists" in answer["description"]
    code, answer = await refused(jp_fetch, "publish", "new", method="POST",
                                 body={"category": "dataset", "name": "x", "namespace": "eo"})
    assert code == 400 and "local, more" in answer["description"]
    assert tree_digest(projects) == before
    # a namespace naming another local projects folder puts it there
    code, other = await api(jp_fetch, "publish", "new", method="POST",
                            body={"category": "processor", "name": "tiler", "namespace": "more"})
    assert code == 201 and other["id"] == "more/tiler"
    assert (tmp_path / "more" / "tiler" / ".git").is_dir()

    # a version from the workspace, then versions and the project itself
    work = Path(jp_root_dir) / "data" / "floods"
    v1 = data_files(5)
    write_data(work, v1)
    code, started = await api(jp_fetch, "publish", "dataset", method="POST",
                              body={"item": ITEM, "path": "data/floods", "version": "v1.0",
                                    "message": "First chips"})
    assert code == 202
    job = await wait_job(jp_fetch, started["job"])
    assert job["state"] == "done", job["error"]
    assert job["result"]["rev"] == "v1.0" and len(job["result"]["commit"]) == 40
    _, found = await api(jp_fetch, "dvc", "versions", params={"item": ITEM})
    assert {v["rev"] for v in found["versions"]} == {"main", "v1.0"}
    assert run_git(folder, "tag").decode().split() == ["v1.0"]
    assert subprocess.run(["git", "status", "--porcelain"], cwd=folder, capture_output=True,
                          text=True).stdout == ""
    assert (folder / "images.dvc").is_file()  # the project's files followed the push

    # the same version again: 409 at once
    code, answer = await refused(jp_fetch, "publish", "dataset", method="POST",
                                 body={"item": ITEM, "path": "data/floods", "version": "v1.0"})
    assert code == 409 and "v1.0" in answer["description"]

    # the front matter, edited and committed in the project
    code, edited = await api(jp_fetch, "publish", "metadata", method="PATCH", body={
        "item": ITEM, "front_matter": {"title": "Floods (local)",
                                       "topics": ["sharinghub:dataset", "flood"]}})
    assert code == 200 and edited["properties"]["title"] == "Floods (local)"
    assert edited["properties"]["keywords"] == ["flood"]
    assert run_git(folder, "log", "-1", "--format=%s").decode().strip() == "Update metadata"
    code, answer = await refused(jp_fetch, "publish", "metadata", method="PATCH", body={
        "item": ITEM, "front_matter": {"title": "no topics"}})
    assert code == 400 and "category topic" in answer["description"]
    code, _ = await refused(jp_fetch, "publish", "metadata", method="PATCH",
                            body={"item": "no/such", "front_matter": {}})
    assert code == 404
