"""What the server serves is the state asked for (issue 15, defects 4 and 5).

* A local git project's file downloaded with ``?ref=`` is the file as committed at that ref
  (old bytes at an old tag, files deleted since still there, the working tree's uncommitted
  edits not), streamed, with the path safety of working-tree downloads; a bad ref is a JSON
  error and never reaches git as an option.
* The crawl status lists the problems of items as served: once a model is registered for an
  item, "mlm: no model asset" is gone without waiting for a crawl (and comes back when the
  model goes).

Downloads run through pytest-jupyter's server; registrations through a Jupyter subprocess
(the embedded MLflow server configures itself once per process).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
from tornado.httpclient import HTTPClientError

from tests.conftest import wait_for_crawl
from tests.support.jupyter_proc import jupyter_server
from tests.support.polling import poll

ITEM = "local/model-card"
PLAIN = "local/plain-folder"
MiB = 1 << 20

CARD = """---
title: Model card
topics: [sharinghub:aimodel]
---
# Model card

Weights in several versions.
"""

# big enough to take several chunks of the download handler (1 MiB each)
OLD_WEIGHTS = bytes(range(256)) * (3 * MiB // 256) + b"old-tail"
NEW_WEIGHTS = b"new weights\n" * 1000
LFS_CONTENT = b"\x08\x07onnx weights kept by git-lfs"


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def projects(tmp_path) -> Path:
    """``local/model-card``: v1.0 (old weights, ``removed.txt``, a symlink to the weights,
    links that leave the tree or reach a local-only file), then main (new weights, those
    gone, ``gone.txt`` added), then a working tree with uncommitted edits (weights
    changed again, ``gone.txt`` deleted). And ``local/plain-folder``, not a git repository."""
    folder = tmp_path / "projects" / "local"
    repo = folder / "model-card"
    repo.mkdir(parents=True)
    (tmp_path / "projects" / "outside.txt").write_text("outside the project\n")
    (repo / "README.md").write_text(CARD)
    (repo / "weights.bin").write_bytes(OLD_WEIGHTS)
    (repo / "removed.txt").write_text("only in v1.0\n")
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / "config.local").write_text("secret_access_key = s3cr3t\n")
    (repo / "current.bin").symlink_to("weights.bin")
    (repo / "escape.txt").symlink_to("../../outside.txt")
    (repo / "creds").symlink_to(".dvc/config.local")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A", "-f")
    _git(repo, "commit", "-q", "-m", "v1.0")
    _git(repo, "tag", "v1.0")
    (repo / "weights.bin").write_bytes(NEW_WEIGHTS)
    _git(repo, "rm", "-q", "removed.txt", "current.bin", "escape.txt", "creds")
    (repo / "gone.txt").write_text("committed on main\n")
    # an LFS pointer (as git-lfs commits one), its object in the repository's LFS store
    oid = hashlib.sha256(LFS_CONTENT).hexdigest()
    (repo / "model.onnx").write_text(f"version https://git-lfs.github.com/spec/v1\n"
                                     f"oid sha256:{oid}\nsize {len(LFS_CONTENT)}\n")
    store = repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4]
    store.mkdir(parents=True)
    (store / oid).write_bytes(LFS_CONTENT)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "v2")
    (repo / "weights.bin").write_bytes(b"uncommitted edit\n")
    (repo / "gone.txt").unlink()
    plain = folder / "plain-folder"
    plain.mkdir()
    (plain / "README.md").write_text(CARD)
    (plain / "notes.txt").write_text("plain notes\n")
    return folder


@pytest.fixture
def jp_server_config(projects, tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"sharinghub_server": True}},
        "SharingHub": {
            "local_projects": [str(projects)],
            "index_url": f"sqlite://{tmp_path / 'index.sqlite'}",
            "crawl_interval": 0,
            "mlflow_warmup": False,  # (see conftest.py)
        },
    }


async def _download(jp_fetch, item: str, path: str, ref: str | None = None, **kw):
    params = {"ref": ref} if ref is not None else {}
    return await jp_fetch("sharinghub", "api", "download", item, "-", path, params=params,
                          **kw)


async def _error(jp_fetch, item: str, path: str, ref: str | None = None) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await _download(jp_fetch, item, path, ref)
    body = json.loads(info.value.response.body)
    assert set(body) >= {"code", "description"} and "\n" not in body["description"], body
    return info.value.code, body


@pytest.fixture
def shas(projects) -> dict[str, str]:
    repo = projects / "model-card"
    return {ref: _git(repo, "rev-parse", f"{ref}^{{commit}}") for ref in ("v1.0", "main")}


async def test_an_old_tag_gives_the_old_bytes_streamed_with_ranges(jp_fetch, shas):
    await wait_for_crawl(jp_fetch)
    old = await _download(jp_fetch, ITEM, "weights.bin", "v1.0")
    assert len(old.body) == len(OLD_WEIGHTS)
    assert hashlib.sha256(old.body).digest() == hashlib.sha256(OLD_WEIGHTS).digest()
    assert old.headers["Content-Length"] == str(len(OLD_WEIGHTS))
    assert 'filename="weights.bin"' in old.headers["Content-Disposition"]
    # a range of the old blob, across a chunk boundary
    ranged = await _download(jp_fetch, ITEM, "weights.bin", "v1.0",
                             headers={"Range": f"bytes={MiB - 3}-{MiB + 4}"})
    assert ranged.code == 206 and ranged.body == OLD_WEIGHTS[MiB - 3:MiB + 5]
    # the tag's commit, by its sha, is the same revision
    assert (await _download(jp_fetch, ITEM, "weights.bin", shas["v1.0"])).body == OLD_WEIGHTS


async def test_the_branch_head_gives_the_committed_bytes_not_the_uncommitted_edit(jp_fetch,
                                                                                  shas):
    await wait_for_crawl(jp_fetch)
    for ref in ("main", "HEAD", shas["main"]):
        assert (await _download(jp_fetch, ITEM, "weights.bin", ref)).body == NEW_WEIGHTS, ref
    # without a ref: the working tree, as before
    assert (await _download(jp_fetch, ITEM, "weights.bin")).body == b"uncommitted edit\n"


async def test_a_file_deleted_since_downloads_at_a_ref_where_it_exists(jp_fetch):
    await wait_for_crawl(jp_fetch)
    removed = await _download(jp_fetch, ITEM, "removed.txt", "v1.0")
    assert removed.body == b"only in v1.0\n"
    # deleted in the working tree, committed on main
    assert (await _download(jp_fetch, ITEM, "gone.txt", "main")).body == b"committed on main\n"
    code, _ = await _error(jp_fetch, ITEM, "gone.txt")
    assert code == 404
    # and absent where it is absent
    for path, ref in (("removed.txt", "main"), ("gone.txt", "v1.0")):
        code, body = await _error(jp_fetch, ITEM, path, ref)
        assert (code, body["code"]) == (404, "NotFound"), (path, ref)


async def test_an_lfs_pointer_at_a_ref_gives_the_file_it_points_to(jp_fetch):
    await wait_for_crawl(jp_fetch)
    answer = await _download(jp_fetch, ITEM, "model.onnx", "main")
    assert answer.body == LFS_CONTENT
    assert 'filename="model.onnx"' in answer.headers["Content-Disposition"]


async def test_committed_symlinks_are_followed_inside_the_project_only(jp_fetch):
    await wait_for_crawl(jp_fetch)
    # a link to a file of the tree: that file as committed at the ref
    linked = await _download(jp_fetch, ITEM, "current.bin", "v1.0")
    assert linked.body == OLD_WEIGHTS
    # a link out of the project, one to a local-only file, the local-only file itself
    for path in ("escape.txt", "creds", ".dvc/config.local", ".git/config", "."):
        code, body = await _error(jp_fetch, ITEM, path, "v1.0")
        assert code in (400, 404), path
        assert "s3cr3t" not in json.dumps(body) and "outside the project" not in json.dumps(body)


async def test_a_bad_ref_is_a_json_error_and_an_option_is_never_one(jp_fetch, projects,
                                                                    tmp_path):
    await wait_for_crawl(jp_fetch)
    repo = projects / "model-card"
    before = (_git(repo, "status", "--porcelain", "--ignored"), sorted(os.listdir(repo)),
              sorted(os.listdir(Path.cwd())), sorted(os.listdir(tmp_path)))
    code, body = await _error(jp_fetch, ITEM, "weights.bin", "no-such-tag")
    assert (code, body["code"]) == (404, "NotFound")
    assert "no-such-tag" in body["description"]
    for ref in ("--output=x", "-p", "--output=/tmp/x", "v1.0:README.md", "main~1", "a b",
                "v1.0^{tree}"):
        code, body = await _error(jp_fetch, ITEM, "weights.bin", ref)
        assert code in (400, 404), ref
    after = (_git(repo, "status", "--porcelain", "--ignored"), sorted(os.listdir(repo)),
             sorted(os.listdir(Path.cwd())), sorted(os.listdir(tmp_path)))
    assert after == before
    assert not (repo / "x").exists() and not Path("x").exists()


async def test_a_folder_that_is_not_a_git_repository_has_only_its_working_tree(jp_fetch):
    await wait_for_crawl(jp_fetch)
    assert (await _download(jp_fetch, PLAIN, "notes.txt")).body == b"plain notes\n"
    # its asset hrefs name its one "branch": that is the working tree
    assert (await _download(jp_fetch, PLAIN, "notes.txt", "main")).body == b"plain notes\n"
    code, body = await _error(jp_fetch, PLAIN, "notes.txt", "v1.0")
    assert (code, body["code"]) == (404, "NotFound")


# --- the crawl status of an item with a registered model ----------------------------------

TOKEN = "served-state-token"
AUTH = {"Authorization": f"token {TOKEN}"}
TINY = "local/tiny-classifier"
TINY_README = """---
title: Tiny classifier
topics: [sharinghub:aimodel]
extensions:
  mlm: https://stac-extensions.github.io/mlm/v1.4.0/schema.json
mlm:
  name: tiny-classifier
  architecture: logistic regression
  tasks: [classification]
  framework: scikit-learn
---
# Tiny classifier
"""
NO_MODEL = "mlm: no model asset"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served-status")
    projects = tmp / "projects" / "local"
    (projects / "tiny-classifier").mkdir(parents=True)
    (projects / "tiny-classifier" / "README.md").write_text(TINY_README)
    with jupyter_server(tmp / "root", token=TOKEN,
                        args=[f"--SharingHub.local_projects={projects}",
                              "--SharingHub.crawl_interval=0"]) as proc:
        poll(lambda: (_status(proc).get("last_crawl") or {}).get("finished"), "the crawl", 60)
        yield proc


def _status(server) -> dict:
    r = requests.get(f"{server.url}sharinghub/api/index", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _problems(server, item: str) -> list[str]:
    return [e["message"] for e in _status(server)["last_crawl"]["errors"]
            if e["project"] == item]


def _model_links(server, item: str) -> list[dict]:
    r = requests.post(f"{server.url}sharinghub/api/stac/search", headers=AUTH, timeout=10,
                      json={"ids": [item]})
    assert r.status_code == 200, r.text
    (found,) = r.json()["features"]
    return [link for link in found["links"] if link["rel"] == "mlflow:model"]


def test_a_registered_model_clears_the_mlm_problem_without_a_crawl(mlflow_server,
                                                                   monkeypatch):
    import mlflow
    from sklearn.linear_model import LogisticRegression

    server = mlflow_server
    assert any(p.startswith(NO_MODEL) for p in _problems(server, TINY))
    finished = _status(server)["last_crawl"]["finished"]

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(server.tracking)
    mlflow.set_experiment(f"tiny-classifier ({TINY})")
    x = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0]], dtype=float)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, [0, 1, 0, 1]),
                                        name="clf", input_example=x[:2])
    client = mlflow.MlflowClient()
    client.create_registered_model("tiny", tags={"sharinghub:item": TINY})
    version = client.create_model_version("tiny", info.model_uri, run_id=info.run_id,
                                          model_id=info.model_id)
    poll(lambda: _model_links(server, TINY), "the registered model in the item")

    # no crawl since: the status shows the item as served, with its model asset
    assert _status(server)["last_crawl"]["finished"] == finished
    assert not [p for p in _problems(server, TINY) if p.startswith("mlm")]

    # a crawl rebuilds the item from its project (no model there): still none
    requests.post(f"{server.url}sharinghub/api/index", headers=AUTH, timeout=10)
    poll(lambda: (lambda s: s["state"] == "idle" and s["last_crawl"]["finished"] != finished
                  )(_status(server)), "the crawl")
    assert not [p for p in _problems(server, TINY) if p.startswith("mlm")]

    # the model deleted: the item has no model asset again, and the status says so
    client.delete_model_version("tiny", version.version)
    poll(lambda: not _model_links(server, TINY), "the deletion")
    assert any(p.startswith(NO_MODEL) for p in _problems(server, TINY))
