"""External MLflow mode: ``c.SharingHub.mlflow_tracking_uri`` names an MLflow SharingHub server
(here a real ``mlflow server`` behind tests/support/mlflow_servers.py's SharingHub imitation,
which checks GitLab tokens against the GitLab API test server). ``sharinghub/mlflow/`` proxies
to it with the GitLab token as ``Authorization: Bearer``; each item's runs go to its project's
tracking URI; registered models reach the catalog as in the embedded mode.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests

from tests.conftest import TOKEN as GITLAB_TOKEN
from tests.support.gitlab_server import FakeProject, GitLabTestServer
from tests.support.jupyter_proc import jupyter_server
from tests.support.mlflow_servers import gateway_factory_fixture, mlflow_fixture

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
FLOOD = FakeProject(id=4242, path_with_namespace="eo-lab/flood-model", name="flood-model",
                    topics=["sharinghub:aimodel"], files={"README.md": MODEL_README})


def _poll(fn, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = fn()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def setup(sharinghub_gateway, tmp_path):
    with GitLabTestServer([FLOOD], tokens={GITLAB_TOKEN: "alice"}) as gitlab:
        gateway = sharinghub_gateway(gitlab.url)
        with jupyter_server(tmp_path / "root", token=JUPYTER_TOKEN, args=[
                f"--SharingHub.gitlab_url={gitlab.url}",
                f"--SharingHub.gitlab_token={GITLAB_TOKEN}",
                f"--SharingHub.mlflow_tracking_uri={gateway.url}"]) as server:
            _poll(lambda: (requests.get(f"{server.url}sharinghub/api/index", headers=AUTH,
                                        timeout=10).json().get("last_crawl") or {})
                  .get("finished"), "the first crawl", 60)
            yield server, gateway


def _item(server) -> dict:
    r = requests.get(f"{server.url}sharinghub/api/stac/collections/ai-model/items/"
                     f"{FLOOD.path_with_namespace}", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_runs_and_models_go_to_the_project_tracking_uri(setup, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException
    from sklearn.linear_model import LogisticRegression

    server, gateway = setup
    (link,) = [lk for lk in _item(server)["links"] if lk["rel"] == "mlflow:tracking-uri"]
    assert link["href"] == f"{server.url}sharinghub/mlflow/eo-lab/flood-model/tracking/"
    assert link["mlflow:experiment"] == "flood-model (4242)"

    # the notebook's MLflow client authenticates to Jupyter only
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", JUPYTER_TOKEN)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(link["href"])
    mlflow.set_experiment(link["mlflow:experiment"])
    x = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0]], dtype=float)
    with mlflow.start_run():
        mlflow.log_param("c", 1.0)
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, [0, 1, 0, 1]),
                                        name="clf", input_example=x[:2])
    version = mlflow.register_model(info.model_uri, "flood-clf",
                                    tags={"sharinghub:item": FLOOD.path_with_namespace})

    def linked():
        found = _item(server)
        return found if any(lk["rel"] == "mlflow:model" for lk in found["links"]) else None

    item = _poll(linked, "the registered model in the catalog")
    (model,) = [lk for lk in item["links"] if lk["rel"] == "mlflow:model"]
    assert model["mlflow:uri"] == f"models:/flood-clf/{version.version}"
    asset = item["assets"][f"mlflow-model-flood-clf-v{version.version}"]
    assert asset["href"].startswith(f"{server.url}sharinghub/mlflow/eo-lab/flood-model/"
                                    "tracking/api/2.0/mlflow-artifacts/artifacts/")
    assert "mlm:model" in asset["roles"]
    download = requests.get(asset["href"], headers=AUTH, timeout=30)
    assert download.status_code == 200 and len(download.content) > 100

    # the SharingHub server refuses experiments that are not the project's
    with pytest.raises(MlflowException):
        mlflow.MlflowClient().create_experiment("somewhere else")

    # upstream saw the GitLab token as Bearer, never the Jupyter token or a cookie
    seen = gateway.requests
    assert seen and all(r.headers.get("Authorization") == f"Bearer {GITLAB_TOKEN}"
                        for r in seen)
    assert not any(JUPYTER_TOKEN in str(r.headers) or "Cookie" in r.headers for r in seen)
    assert all(r.path.startswith("/eo-lab/flood-model/tracking/") for r in seen)


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
