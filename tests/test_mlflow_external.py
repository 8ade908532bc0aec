"""External MLflow mode: ``c.SharingHub.mlflow_tracking_uri`` names an MLflow SharingHub server
(here a real ``mlflow server`` behind tests/support/mlflow_servers.py's SharingHub imitation,
which checks GitLab tokens against the GitLab API test server). ``sharinghub/mlflow/`` proxies
to it with the GitLab token as ``Authorization: Bearer``; each item's runs go to its project's
tracking URI; registered models reach the catalog as in the embedded mode.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import TOKEN as GITLAB_TOKEN
from tests.support.gitlab_server import FakeProject, GitLabTestServer
from tests.support.jupyter_proc import jupyter_server
from tests.support.mlflow_servers import gateway_factory_fixture, mlflow_fixture
from tests.support.polling import poll

mlflow_upstream = mlflow_fixture(scope="module")
sharinghub_gateway = gateway_factory_fixture()

JUPYTER_TOKEN = "jupyter-side-token"
AUTH = {"Authorization": f"token {JUPYTER_TOKEN}"}
MODEL_README = """---
title: Flood model
extensions:
  mlm: https://stac-extensions.github.io/mlm/v1.4.0/schema.json
mlm:
  name: flood
  architecture: logistic regression
  tasks: [classification]
  framework: scikit-learn
---
# Flood model
"""
FLOOD = FakeProject(id=4242, path_with_namespace="eo-lab/flood-model", name="Flood Model",
                    topics=["sharinghub:aimodel"], files={"README.md": MODEL_README})
CROP = FakeProject(id=4343, path_with_namespace="eo-lab/crop-model", name="Crop Model",
                   topics=["sharinghub:aimodel"], files={"README.md": MODEL_README})


@pytest.fixture
def setup(sharinghub_gateway, tmp_path):
    with GitLabTestServer([FLOOD, CROP], tokens={GITLAB_TOKEN: "alice"}) as gitlab:
        gateway = sharinghub_gateway(gitlab.url, strict_names=True)
        with jupyter_server(tmp_path / "root", token=JUPYTER_TOKEN, args=[
                f"--SharingHub.gitlab_url={gitlab.url}",
                f"--SharingHub.gitlab_token={GITLAB_TOKEN}",
                f"--SharingHub.mlflow_tracking_uri={gateway.url}"]) as server:
            poll(lambda: (requests.get(f"{server.url}sharinghub/api/index", headers=AUTH,
                                        timeout=10).json().get("last_crawl") or {})
                  .get("finished"), "the first crawl", 60)
            yield server, gateway


def _item(server, project: FakeProject = FLOOD) -> dict:
    r = requests.get(f"{server.url}sharinghub/api/stac/collections/ai-model/items/"
                     f"{project.path_with_namespace}", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _track(server, monkeypatch) -> dict:
    """Point the MLflow client at the flood item's tracking URI and experiment, as a notebook
    would: it authenticates to Jupyter only. Returns the item's tracking link."""
    import mlflow

    (link,) = [lk for lk in _item(server)["links"] if lk["rel"] == "mlflow:tracking-uri"]
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", JUPYTER_TOKEN)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(link["href"])
    mlflow.set_experiment(link["mlflow:experiment"])
    return link


def test_runs_and_models_go_to_the_project_tracking_uri(setup, monkeypatch, tmp_path):
    import mlflow
    from mlflow.exceptions import MlflowException
    from sklearn.linear_model import LogisticRegression

    server, gateway = setup
    link = _track(server, monkeypatch)
    assert link["href"] == f"{server.url}sharinghub/mlflow/eo-lab/flood-model/tracking/"
    assert link["mlflow:experiment"] == "Flood Model (4242)"  # the name, not the path
    x = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0]], dtype=float)
    notes = tmp_path / "notes v1?.txt"  # a space and a '?' travel percent-encoded
    notes.write_text("trained on floods\n")
    with mlflow.start_run() as run:
        mlflow.log_param("c", 1.0)
        mlflow.log_artifact(str(notes))
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, [0, 1, 0, 1]),
                                        name="clf", input_example=x[:2])
    version = mlflow.register_model(info.model_uri, "flood-clf",
                                    tags={"sharinghub:item": FLOOD.path_with_namespace})

    def linked():
        found = _item(server)
        return found if any(lk["rel"] == "mlflow:model" for lk in found["links"]) else None

    item = poll(linked, "the registered model in the catalog")
    (model,) = [lk for lk in item["links"] if lk["rel"] == "mlflow:model"]
    assert model["mlflow:uri"] == f"models:/flood-clf/{version.version}"
    asset = item["assets"][f"mlflow-model-flood-clf-v{version.version}"]
    assert asset["href"].startswith(f"{server.url}sharinghub/mlflow/eo-lab/flood-model/"
                                    "tracking/api/2.0/mlflow-artifacts/artifacts/")
    assert "mlm:model" in asset["roles"]
    download = requests.get(asset["href"], headers=AUTH, timeout=30)
    assert download.status_code == 200 and len(download.content) > 100
    back = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                               artifact_path=notes.name,
                                               dst_path=str(tmp_path / "back"))
    assert Path(back).read_text() == "trained on floods\n"

    # the SharingHub server refuses experiments that are not the project's
    with pytest.raises(MlflowException):
        mlflow.MlflowClient().create_experiment("somewhere else")

    # upstream saw the GitLab token as Bearer, never the Jupyter token or a cookie
    seen = gateway.requests
    assert seen and all(r.headers.get("Authorization") == f"Bearer {GITLAB_TOKEN}"
                        for r in seen)
    assert not any(JUPYTER_TOKEN in str(r.headers) or "Cookie" in r.headers for r in seen)
    assert all(r.path.startswith("/eo-lab/") for r in seen)


def test_a_project_cannot_put_models_on_another_projects_item(setup, monkeypatch, tmp_path):
    import mlflow
    from sklearn.linear_model import LogisticRegression

    server, _ = setup
    _track(server, monkeypatch)
    x = np.array([[0, 1], [1, 0]], dtype=float)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, [0, 1]), name="m")
    # registered in the flood project's root, claiming the crop project's item
    mlflow.register_model(info.model_uri, "intruder",
                          tags={"sharinghub:item": CROP.path_with_namespace})
    mlflow.register_model(info.model_uri, "own", tags={"sharinghub:item":
                                                       FLOOD.path_with_namespace})
    # the second registration is synced after the first (one queue): once it shows...
    poll(lambda: any(lk.get("mlflow:name") == "own" for lk in _item(server)["links"]),
         "the project's own model")
    # ...the first was read and refused
    assert not [lk for lk in _item(server, CROP)["links"] if lk["rel"] == "mlflow:model"]
    assert not [lk for lk in _item(server)["links"] if lk.get("mlflow:name") == "intruder"]


def test_proxied_paths_stay_below_the_server_uri(setup):
    server, gateway = setup
    gateway.reset_requests()
    for path in ("eo-lab/%2e%2e/%2e%2e/api/v4/user", "eo-lab/..%2F..%2Fsecret",
                 "%2e%2e/x", "eo-lab/flood-model/tracking/a%2Fb"):
        r = requests.get(f"{server.url}sharinghub/mlflow/{path}", headers=AUTH, timeout=10)
        assert r.status_code == 400, (path, r.status_code)
    # none reached upstream (the server's own registry and model-file reads may have)
    assert not [r for r in gateway.requests if not re.match(
        r"^/eo-lab/[a-z-]+/tracking/api/2\.0/mlflow(-artifacts)?/", r.path)]


def test_large_artifacts_stream_through_the_proxy(setup, monkeypatch, tmp_path):
    """Beyond tornado's 100 MB client limit, and byte for byte."""
    import hashlib

    import mlflow

    server, _ = setup
    _track(server, monkeypatch)
    big = tmp_path / "weights.bin"
    chunk = hashlib.sha256(b"proxy").digest() * (1 << 15)  # 1 MiB
    with big.open("wb") as f:
        for i in range(101):
            f.write(chunk[i:] + chunk[:i])
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(big))
    back = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                               artifact_path="weights.bin",
                                               dst_path=str(tmp_path / "back"))
    digest = [hashlib.md5(Path(p).read_bytes()).hexdigest() for p in (big, back)]
    assert digest[0] == digest[1]


def test_cookie_sessions_need_the_same_origin_and_their_cookies_stay_here(setup):
    server, gateway = setup
    session = requests.Session()
    session.get(f"{server.url}login", timeout=10)
    session.post(f"{server.url}login", timeout=10, allow_redirects=False,
                 data={"password": JUPYTER_TOKEN, "_xsrf": session.cookies.get("_xsrf")})
    assert any(c.name.startswith("username") for c in session.cookies)
    gateway.reset_requests()
    search = (f"{server.url}sharinghub/mlflow/eo-lab/flood-model/tracking/"
              "ajax-api/2.0/mlflow/experiments/search")
    evil = session.post(search, json={"max_results": 5}, timeout=30,
                        headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    host = server.url.split("/")[2]
    same = session.post(search, json={"max_results": 5}, timeout=30,
                        headers={"Origin": f"http://{host}"})
    assert same.status_code == 200, same.text
    assert "Set-Cookie" not in same.headers or "username" not in same.headers["Set-Cookie"]
    (seen,) = [r for r in gateway.requests if r.path.endswith("experiments/search")]
    assert "Cookie" not in seen.headers and JUPYTER_TOKEN not in str(seen.headers)
    assert seen.headers["Authorization"] == f"Bearer {GITLAB_TOKEN}"


def test_the_proxy_refuses_unauthenticated_requests(setup):
    server, gateway = setup
    gateway.reset_requests()
    base = f"{server.url}sharinghub/mlflow/eo-lab/flood-model/tracking/"
    for method, path in (("GET", "api/2.0/mlflow/experiments/search"),
                         ("POST", "api/2.0/mlflow/experiments/create"),
                         ("GET", "ajax-api/2.0/mlflow/experiments/search"),
                         ("GET", "api/2.0/mlflow-artifacts/artifacts/x"),
                         ("GET", "get-artifact?path=x&run_uuid=y")):
        r = requests.request(method, base + path, timeout=10, allow_redirects=False,
                             json={} if method == "POST" else None)
        assert r.status_code in (302, 401, 403), (method, path, r.status_code)
        assert GITLAB_TOKEN not in r.text
    # none reached the MLflow server (the server's own registry reads may have)
    probed = ("experiments/search", "experiments/create", "artifacts/x", "get-artifact")
    assert not [r for r in gateway.requests if r.path.endswith(probed)]
