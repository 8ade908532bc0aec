"""The MLflow SharingHub imitation (tests/support/mlflow_servers.py) driven by the real MLflow
client, as a notebook pointed at a project's tracking URI would: the external-MLflow tests rely
on it refusing and accepting what the real server does."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.conftest import TOKEN
from tests.support.gitlab_server import FakeProject
from tests.support.mlflow_servers import gateway_factory_fixture, mlflow_fixture

mlflow_upstream = mlflow_fixture(scope="module")
sharinghub_gateway = gateway_factory_fixture()

FLOOD = FakeProject(id=4242, path_with_namespace="eo-lab/flood-model", name="Flood model")
CROP = FakeProject(id=4343, path_with_namespace="eo-lab/crop-model", name="Crop model")


@pytest.fixture
def gateway(gitlab, sharinghub_gateway):
    gitlab.add_project(FLOOD)
    return sharinghub_gateway(gitlab.url)


def client_for(gateway, monkeypatch, project: str = FLOOD.path_with_namespace,
               token: str | None = TOKEN):
    """An MLflow client on the project's tracking URI, authenticated as MLflow documents."""
    from mlflow import MlflowClient

    uri = gateway.tracking_uri(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    if token is None:
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    return MlflowClient(tracking_uri=uri)


def test_a_gitlab_token_is_required(gateway, gitlab, monkeypatch):
    from mlflow.exceptions import MlflowException

    search = gateway.tracking_uri(FLOOD.path_with_namespace) + "/api/2.0/mlflow/experiments/search"
    refused = requests.get(search, params={"max_results": 5}, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="mlflow"'
    wrong = requests.get(search, params={"max_results": 5}, timeout=10,
                         headers={"Authorization": "Bearer not-a-gitlab-token"})
    assert wrong.status_code == 401
    ok = requests.get(search, params={"max_results": 5}, timeout=10,
                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    # health is open, and nothing is served outside /<project path>/tracking/
    assert requests.get(gateway.tracking_uri("a/b") + "/health", timeout=10).status_code == 200
    assert requests.get(f"{gateway.url}/api/2.0/mlflow/experiments/search",
                        timeout=10).status_code == 404
    with pytest.raises(MlflowException, match="401"):
        client_for(gateway, monkeypatch, token=None).search_experiments()
    # the project was looked up in GitLab with the caller's token
    assert TOKEN in {r.token for r in gitlab.requests if r.project == FLOOD.id}


def test_the_project_experiment_round_trip(gateway, monkeypatch, tmp_path):
    client = client_for(gateway, monkeypatch)
    exp_id = client.create_experiment("Flood model (4242)")
    assert client.get_experiment(exp_id).tags["project"] == FLOOD.path_with_namespace
    run_id = client.create_run(exp_id).info.run_id
    client.log_param(run_id, "epochs", 3)
    for step, value in enumerate((0.9, 0.5)):
        client.log_metric(run_id, "loss", value, step=step)
    (tmp_path / "notes.txt").write_text("trained on v1.1")
    client.log_artifact(run_id, str(tmp_path / "notes.txt"), artifact_path="reports")
    client.set_terminated(run_id)

    run = client.get_run(run_id)
    assert run.data.params == {"epochs": "3"}
    assert run.data.metrics == {"loss": 0.5}
    assert [f.path for f in client.list_artifacts(run_id, "reports")] == ["reports/notes.txt"]
    (tmp_path / "down").mkdir()
    local = client.download_artifacts(run_id, "reports/notes.txt", str(tmp_path / "down"))
    assert Path(local).read_text() == "trained on v1.1"
    # the upstream's untagged Default experiment is filtered out of searches
    assert [e.name for e in client.search_experiments()] == ["Flood model (4242)"]
    assert [r.info.run_id for r in client.search_runs([exp_id])] == [run_id]

    seen = gateway.requests
    assert any(r.method == "PUT" and "/mlflow-artifacts/artifacts/" in r.path for r in seen)
    assert {r.headers.get("Authorization") for r in seen} == {f"Bearer {TOKEN}"}
    assert {r.status for r in seen} == {200}


def test_other_experiments_and_projects_are_refused(gateway, mlflow_upstream, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = client_for(gateway, monkeypatch)
    for name in ("baseline", "baseline (999)", "Flood model"):
        with pytest.raises(MlflowException, match="403"):
            client.create_experiment(name)

    # experiments of another project, or of none (Default), are out of reach
    upstream = MlflowClient(tracking_uri=mlflow_upstream.url)
    foreign = upstream.create_experiment("other (7)", tags={"project": "eo-lab/other"})
    foreign_run = upstream.create_run(foreign).info.run_id
    for refused in (lambda: client.get_experiment(foreign), lambda: client.get_experiment("0"),
                    lambda: client.get_experiment_by_name("other (7)"),
                    lambda: client.create_run(foreign),
                    lambda: client.log_param(foreign_run, "epochs", 1),
                    lambda: client.list_artifacts(foreign_run)):
        with pytest.raises(MlflowException, match="403"):
            refused()
    assert {"other (7)", "Default"}.isdisjoint(e.name for e in client.search_experiments())
    assert client.get_experiment_by_name("missing (4242)") is None  # upstream's 404 comes back

    # the project tag is the server's, and renaming keeps the suffix
    own = client.create_experiment("baseline (4242)")
    with pytest.raises(MlflowException, match="403"):
        client.set_experiment_tag(own, "project", "eo-lab/other")
    with pytest.raises(MlflowException, match="403"):
        client.rename_experiment(own, "renamed")
    client.rename_experiment(own, "renamed (4242)")

    # a project GitLab does not show the token: nothing to see, nothing to create
    ghost = client_for(gateway, monkeypatch, project="eo-lab/ghost")
    with pytest.raises(MlflowException, match="403"):
        ghost.create_experiment("baseline (4242)")
    assert ghost.search_experiments() == []


def test_strict_names_want_the_project_name(gitlab, sharinghub_gateway, monkeypatch):
    from mlflow.exceptions import MlflowException

    gitlab.add_project(CROP)
    client = client_for(sharinghub_gateway(gitlab.url, strict_names=True), monkeypatch,
                        project=CROP.path_with_namespace)
    with pytest.raises(MlflowException, match="403"):
        client.create_experiment("anything (4343)")
    assert client.get_experiment(client.create_experiment("Crop model (4343)")).name \
        == "Crop model (4343)"
