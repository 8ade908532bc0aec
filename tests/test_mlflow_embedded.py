"""The embedded MLflow server behind Jupyter's authentication, used by the real MLflow client.

MLflow configures its server once per process, so this module runs Jupyter in a subprocess.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.support.jupyter_proc import jupyter_server

TOKEN = "mlflow-test-token"
BASE = "/x%40y/"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    with jupyter_server(root, token=TOKEN, base_url=BASE) as proc:
        yield {"url": proc.url, "root": root, "tracking": proc.tracking}


@pytest.fixture
def client(server, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["tracking"])
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(server["tracking"])
    return mlflow


def test_the_mlflow_client_logs_runs_artifacts_and_models(client, server, tmp_path):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    client.set_experiment("floods")
    with client.start_run() as run:
        client.log_param("epochs", 3)
        for step, value in enumerate((0.9, 0.5, 0.2)):
            client.log_metric("loss", value, step=step)
        (tmp_path / "notes.txt").write_text("trained on v1.1")
        client.log_artifact(str(tmp_path / "notes.txt"))
        model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]),
                                         np.array([0, 0, 1, 1]))
        info = client.sklearn.log_model(model, name="model",
                                        registered_model_name="flood-classifier")
    mlflow_client = client.MlflowClient()
    fetched = mlflow_client.get_run(run.info.run_id)
    assert fetched.data.params == {"epochs": "3"}
    assert [m.value for m in mlflow_client.get_metric_history(run.info.run_id, "loss")] == [
        0.9, 0.5, 0.2]
    local = client.artifacts.download_artifacts(run_id=run.info.run_id,
                                                artifact_path="notes.txt",
                                                dst_path=str(tmp_path / "dl"))
    assert Path(local).read_text() == "trained on v1.1"
    (version,) = mlflow_client.search_model_versions("name='flood-classifier'")
    mlflow_client.set_registered_model_alias("flood-classifier", "champion", version.version)
    loaded = client.pyfunc.load_model("models:/flood-classifier@champion")
    assert list(loaded.predict(np.array([[0.0], [3.0]]))) == [0, 1]
    assert info.model_uri.startswith("models:/")
    # the artifacts live in the embedded store, under the Jupyter data dir
    store = server["root"] / "data" / "sharinghub" / "mlflow"
    assert (store / "mlflow.db").exists()
    assert any(p.name == "notes.txt" for p in (store / "artifacts").rglob("*"))


@pytest.mark.parametrize("path", [
    "api/2.0/mlflow/experiments/search?max_results=1",
    "ajax-api/2.0/mlflow/experiments/search?max_results=1",
    "get-artifact?path=notes.txt&run_uuid=x",
    "api/2.0/mlflow-artifacts/artifacts",
    "graphql",
])
def test_every_mlflow_route_refuses_unauthenticated_requests(server, path):
    url = f"{server['tracking']}/{path}"
    for method in ("GET", "POST"):
        response = requests.request(method, url, allow_redirects=False, timeout=30)
        assert response.status_code in (302, 403), (method, path, response.status_code)
        assert b"experiments" not in response.content


def test_the_ui_needs_a_login_and_renders_after_it(server):
    response = requests.get(f"{server['tracking']}/", headers={"Accept": "text/html"},
                            allow_redirects=False, timeout=30)
    assert response.status_code == 403 or (
        response.status_code == 302 and "/login" in response.headers["Location"])
    assert b"mlflow" not in response.content.lower()
    ui = requests.get(f"{server['tracking']}/", headers={"Authorization": f"token {TOKEN}"},
                      timeout=60)
    assert ui.status_code == 200 and b"<html" in ui.content.lower()


def test_answers_may_be_framed_by_this_origin_only(server):
    """JupyterLab (the same origin) shows the UI in a tab; other sites may not frame it."""
    auth = {"Authorization": f"token {TOKEN}"}
    ui = requests.get(f"{server['tracking']}/", headers=auth, timeout=60)
    api = requests.get(f"{server['tracking']}/api/2.0/mlflow/experiments/search",
                       params={"max_results": 1}, headers=auth, timeout=30)
    for answer in (ui, api):
        assert answer.status_code == 200
        policy = answer.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'self'" in [d.strip() for d in policy.split(";")], policy


def test_cookie_requests_must_come_from_the_same_origin(server):
    session = requests.Session()
    login = session.get(f"{server['url']}login", timeout=10)
    xsrf = session.cookies.get("_xsrf")
    session.post(f"{server['url']}login", data={"password": TOKEN, "_xsrf": xsrf},
                 timeout=10, allow_redirects=False)
    assert login.status_code == 200 and any(c.name.startswith("username") for c in
                                            session.cookies)
    create = f"{server['tracking']}/ajax-api/2.0/mlflow/experiments/create"
    evil = session.post(create, json={"name": "from-elsewhere"}, timeout=30,
                        headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    host = server["url"].split("/")[2]
    same = session.post(create, json={"name": "from-the-ui"}, timeout=30,
                        headers={"Origin": f"http://{host}"})
    assert same.status_code == 200, same.text


def test_artifacts_beyond_tornados_default_body_limit_round_trip(client, tmp_path):
    """Uploads are bodies of one request: Jupyter raises tornado's 100 MB limit to its
    ``ServerApp.max_body_size`` (512 MiB), documented in the README."""
    import hashlib

    big = tmp_path / "weights.bin"
    chunk = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
    with big.open("wb") as f:
        for i in range(101):
            f.write(chunk[i:] + chunk[:i])
    client.set_experiment("large")
    with client.start_run() as run:
        client.log_artifact(str(big))
    back = client.artifacts.download_artifacts(run_id=run.info.run_id,
                                               artifact_path="weights.bin",
                                               dst_path=str(tmp_path / "back"))
    assert Path(back).stat().st_size == big.stat().st_size == 101 << 20
    digest = [hashlib.md5(p.read_bytes()).hexdigest() for p in (big, Path(back))]
    assert digest[0] == digest[1]
