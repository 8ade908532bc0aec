"""Registry → catalog and lineage, end to end: a real Jupyter server with the embedded MLflow,
a real DVC pull, the real MLflow client training and registering (scikit-learn and ONNX
models), and the items served by ``/search`` and read with pystac-client.

One Jupyter process for the module: MLflow configures its server once per process.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests

from sharinghub_server.catalog.validate import MLM_SCHEMA, validate
from tests.support.jupyter_proc import jupyter_server
from tests.support.polling import poll

TOKEN = "catalog-mlflow-token"
AUTH = {"Authorization": f"token {TOKEN}"}
FLOOD = "local/flood-model"
TINY = "local/tiny-classifier"
DATASET = "local/sen1floods11-sample"

TINY_README = """---
title: Tiny classifier
topics: [sharinghub:aimodel, demo]
extensions:
  mlm: https://stac-extensions.github.io/mlm/v1.4.0/schema.json
mlm:
  name: tiny-classifier
  architecture: logistic regression
  tasks: [classification]
  framework: scikit-learn
---
# Tiny classifier

A logistic regression on four numbers.
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from sharinghub_server.examples import make_examples

    tmp = tmp_path_factory.mktemp("mlflow-catalog")
    projects, _ = make_examples(tmp / "examples")
    tiny = projects / "tiny-classifier"
    tiny.mkdir()
    (tiny / "README.md").write_text(TINY_README)
    with jupyter_server(tmp / "root", token=TOKEN, base_url="/a%40b/",
                        args=[f"--SharingHub.local_projects={projects}"]) as proc:
        api = f"{proc.url}sharinghub/api/"
        poll(lambda: (requests.get(f"{api}index", headers=AUTH, timeout=10).json()
                       .get("last_crawl") or {}).get("finished"), "the first crawl", 60)
        yield proc


def _search(server, ids: list[str]) -> dict[str, dict]:
    r = requests.post(f"{server.url}sharinghub/api/stac/search", headers=AUTH, timeout=10,
                      json={"ids": ids, "collections": ["ai-model"]})
    assert r.status_code == 200, r.text
    return {f["id"]: f for f in r.json()["features"]}


def _links(item: dict, rel: str) -> list[dict]:
    return [link for link in item["links"] if link["rel"] == rel]


@pytest.fixture(scope="module")
def mlflow_client(server):
    import mlflow

    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)
    mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    yield mlflow
    mp.undo()


@pytest.fixture(scope="module")
def pulled(server):
    """The example dataset pulled into the Jupyter root through the server (real DVC)."""
    api = f"{server.url}sharinghub/api/"
    r = requests.post(f"{api}dvc/pull", headers=AUTH, timeout=10,
                      json={"item": DATASET, "rev": "v1.0", "dest": "work/floods"})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    state = poll(lambda: (lambda s: s if s["state"] in ("done", "failed") else None)(
        requests.get(f"{api}dvc/jobs/{job}", headers=AUTH, timeout=10).json()),
        "the pull", 120)
    assert state["state"] == "done", state
    manifest = json.loads((server.root / "work" / "floods" / ".sharinghub-pull.json")
                          .read_text())
    return manifest


def test_every_model_item_names_its_tracking_root_and_experiment(server, mlflow_client):
    items = _search(server, [FLOOD, TINY])
    for item_id in (FLOOD, TINY):
        (link,) = _links(items[item_id], "mlflow:tracking-uri")
        assert link["href"] == f"{server.url}sharinghub/mlflow/"
        assert link["mlflow:experiment"] == f"{item_id.rsplit('/', 1)[1]} ({item_id})"
    # the embedded server made each experiment, tagged with its project, when it loaded
    mlflow_client.set_tracking_uri(server.tracking)
    client = mlflow_client.MlflowClient()

    def tagged():
        exp = client.get_experiment_by_name(f"flood-model ({FLOOD})")
        return exp if exp is not None and exp.tags.get("project") == FLOOD else None

    poll(tagged, "the item's experiment")


def test_a_registered_model_shows_in_the_catalog_with_its_data_lineage(
        server, mlflow_client, pulled, monkeypatch, tmp_path):
    import mlflow.onnx
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec
    from onnx import TensorProto, helper, numpy_helper

    mlflow = mlflow_client
    item = _search(server, [FLOOD])[FLOOD]
    (tracking,) = _links(item, "mlflow:tracking-uri")
    mlflow.set_tracking_uri(tracking["href"])
    mlflow.set_experiment(tracking["mlflow:experiment"])
    # a training run started in the workspace that holds the pulled dataset
    monkeypatch.chdir(server.root)
    weights = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "flood-head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    signature = ModelSignature(Schema([TensorSpec(np.dtype("float32"), (-1, 4), "x")]),
                               Schema([TensorSpec(np.dtype("float32"), (-1, 2), "y")]))
    with mlflow.start_run() as run:
        mlflow.log_metric("iou", 0.71)
        info = mlflow.onnx.log_model(model, name="flood-head", signature=signature)
    # the run names the pulled data as dataset inputs: item, DVC md5, rev
    inputs = mlflow.MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert {(i.dataset.name, i.dataset.digest) for i in inputs} == {
        (DATASET, o["md5"]) for o in pulled["outputs"]}
    source = json.loads(inputs[0].dataset.source)
    assert (source["item"], source["rev"], source["commit"]) == (
        DATASET, "v1.0", pulled["commit"])

    started = time.monotonic()
    version = mlflow.register_model(info.model_uri, "flood-head",
                                    tags={"sharinghub:item": FLOOD})

    def linked():
        found = _search(server, [FLOOD])[FLOOD]
        return found if _links(found, "mlflow:model") else None

    served = poll(linked, "the mlflow:model link")
    print(f"register -> link in /search: {time.monotonic() - started:.3f} s")

    (model_link,) = _links(served, "mlflow:model")
    assert model_link["mlflow:uri"] == f"models:/flood-head/{version.version}"
    asset = served["assets"][f"mlflow-model-flood-head-v{version.version}"]
    assert asset["type"] == "application/onnx"
    assert "mlm:model" in asset["roles"] and asset["mlm:artifact_type"] == "onnx"
    # the asset downloads the registered ONNX file through the server
    r = requests.get(asset["href"], headers=AUTH, timeout=30)
    assert r.status_code == 200 and onnx.load_from_string(r.content) == model
    # mlm:input/output were empty in the front matter: filled from the signature
    props = served["properties"]
    assert props["mlm:input"] == [{"name": "x", "bands": [], "input": {
        "shape": [-1, 4], "dim_order": ["batch", "channel"], "data_type": "float32"}}]
    assert props["mlm:output"][0]["result"]["shape"] == [-1, 2]
    assert props["mlm:output"][0]["tasks"] == ["semantic-segmentation"]
    # lineage: the exact dataset version the model was trained on
    (derived,) = [lk for lk in _links(served, "derived_from") if "sharinghub:rev" in lk]
    assert derived["href"].endswith(f"stac/collections/dataset/items/{DATASET}")
    assert (derived["sharinghub:rev"], derived["sharinghub:commit"]) == ("v1.0",
                                                                         pulled["commit"])
    # ... and which model version it was used for
    assert derived["mlflow:models"] == [{"name": "flood-head", "version": version.version,
                                         "uri": f"models:/flood-head/{version.version}"}]
    validate(served)

    # an alias shows at once too
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("flood-head", "champion", version.version)
    poll(lambda: _links(_search(server, [FLOOD])[FLOOD], "mlflow:model")[0]
          ["mlflow:aliases"] == ["champion"], "the alias")

    # a crawl rebuilds the item from its project: the registered model stays
    r = requests.post(f"{server.url}sharinghub/api/index", headers=AUTH, timeout=10)
    assert r.status_code == 202
    poll(lambda: requests.get(f"{server.url}sharinghub/api/index", headers=AUTH,
                               timeout=10).json()["state"] == "idle", "the crawl")
    assert _links(_search(server, [FLOOD])[FLOOD], "mlflow:model")


def test_a_plain_client_registration_is_picked_up_and_deletion_removes_it(
        server, mlflow_client, tmp_path):
    """What the MLflow UI does: create the registered model (tagged with the item), then a
    version from a run's model; no sharinghub code on the client side."""
    from sklearn.linear_model import LogisticRegression

    mlflow = mlflow_client
    mlflow.set_tracking_uri(server.tracking)
    mlflow.set_experiment(f"tiny-classifier ({TINY})")
    x = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0]], dtype=float)
    y = np.array([0, 1, 0, 1])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, y), name="clf",
                                        input_example=x[:2])
    client = mlflow.MlflowClient()
    client.create_registered_model("tiny", tags={"sharinghub:item": TINY})
    version = client.create_model_version("tiny", info.model_uri, run_id=info.run_id,
                                          model_id=info.model_id)

    def linked():
        found = _search(server, [TINY])[TINY]
        return found if _links(found, "mlflow:model") else None

    served = poll(linked, "the plain client's registration")
    asset = served["assets"][f"mlflow-model-tiny-v{version.version}"]
    assert "mlm:model" in asset["roles"]
    # MLflow's default serialization is skops: the asset says so, and the file is one
    assert asset["href"].endswith("/model.skops")
    assert asset["mlm:artifact_type"] == "skops.io.dump"
    _assert_skops_model(asset["href"], tmp_path, x)
    # the item had no model file: with the registered one it now declares mlm
    assert MLM_SCHEMA in served["stac_extensions"]
    assert served["properties"]["mlm:input"][0]["input"]["shape"] == [-1, 4]
    assert served["properties"]["mlm:output"][0]["tasks"] == ["classification"]
    validate(served)

    client.delete_model_version("tiny", version.version)
    poll(lambda: not _links(_search(server, [TINY])[TINY], "mlflow:model"),
          "the deletion")
    gone = _search(server, [TINY])[TINY]
    assert MLM_SCHEMA not in gone["stac_extensions"]
    assert not [a for a in gone["assets"] if a.startswith("mlflow-model-")]


def _assert_skops_model(href: str, tmp_path: Path, x: np.ndarray) -> None:
    """The asset's file, downloaded through the server, is a skops file that predicts."""
    import skops.io

    r = requests.get(href, headers=AUTH, timeout=30)
    assert r.status_code == 200
    path = tmp_path / "model.skops"
    path.write_bytes(r.content)
    assert zipfile.is_zipfile(path) and "schema.json" in zipfile.ZipFile(path).namelist()
    model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    assert len(model.predict(x)) == len(x)


def test_a_cloudpickled_scikit_learn_model_says_cloudpickle(server, mlflow_client, tmp_path):
    import pickle

    from sklearn.linear_model import LogisticRegression

    mlflow = mlflow_client
    mlflow.set_tracking_uri(server.tracking)
    mlflow.set_experiment(f"tiny-classifier ({TINY})")
    x = np.array([[0, 1, 0, 1], [1, 0, 1, 0]], dtype=float)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, [0, 1]), name="cp",
                                        serialization_format="cloudpickle")
    version = mlflow.register_model(info.model_uri, "tiny-cloudpickle",
                                    tags={"sharinghub:item": TINY})
    key = f"mlflow-model-tiny-cloudpickle-v{version.version}"
    asset = poll(lambda: _search(server, [TINY])[TINY]["assets"].get(key),
                 "the cloudpickled model's asset")
    assert asset["href"].endswith("/model.pkl")
    assert asset["mlm:artifact_type"] == "cloudpickle.dump"
    r = requests.get(asset["href"], headers=AUTH, timeout=30)
    assert r.status_code == 200 and list(pickle.loads(r.content).predict(x)) == [0, 1]


def test_a_run_started_inside_the_pulled_clone_links_the_dataset_to_the_model_version(
        server, mlflow_client, pulled, monkeypatch):
    """The notebook lives in the pulled clone (below its manifest), not above it."""
    from sklearn.linear_model import LogisticRegression

    mlflow = mlflow_client
    mlflow.set_tracking_uri(server.tracking)
    mlflow.set_experiment(f"tiny-classifier ({TINY})")
    notebooks = server.root / "work" / "floods" / "notebooks"
    notebooks.mkdir(exist_ok=True)
    monkeypatch.chdir(notebooks)
    x = np.array([[0, 1, 0, 1], [1, 0, 1, 0]], dtype=float)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, [0, 1]), name="clone")
    inputs = mlflow.MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert {(i.dataset.name, i.dataset.digest) for i in inputs} == {
        (DATASET, o["md5"]) for o in pulled["outputs"]}
    version = mlflow.register_model(info.model_uri, "tiny-in-clone",
                                    tags={"sharinghub:item": TINY})
    entry = {"name": "tiny-in-clone", "version": version.version,
             "uri": f"models:/tiny-in-clone/{version.version}"}

    def derived():
        item = _search(server, [TINY])[TINY]
        return [lk for lk in _links(item, "derived_from")
                if entry in (lk.get("mlflow:models") or [])]

    (link,) = poll(derived, "the derived_from link of the model version")
    assert link["href"].endswith(f"stac/collections/dataset/items/{DATASET}")
    assert (link["sharinghub:rev"], link["sharinghub:commit"]) == ("v1.0", pulled["commit"])
    validate(_search(server, [TINY])[TINY])


def test_the_mlflow_ui_registering_through_ajax_api_is_picked_up(server, mlflow_client):
    """The UI's calls: cookie session, same origin, ``ajax-api``, no XSRF token."""
    from sklearn.linear_model import LogisticRegression

    mlflow = mlflow_client
    mlflow.set_tracking_uri(server.tracking)
    mlflow.set_experiment(f"tiny-classifier ({TINY})")
    x = np.array([[0, 1, 0, 1], [1, 0, 1, 0]], dtype=float)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LogisticRegression().fit(x, [0, 1]), name="ui")
    session = requests.Session()
    session.get(f"{server.url}login", timeout=10)
    session.post(f"{server.url}login", timeout=10, allow_redirects=False,
                 data={"password": TOKEN, "_xsrf": session.cookies.get("_xsrf")})
    ajax = f"{server.tracking}/ajax-api/2.0/mlflow/"
    origin = {"Origin": "http://" + server.url.split("/")[2]}
    r = session.post(ajax + "registered-models/create", headers=origin, timeout=30,
                     json={"name": "from-the-ui",
                           "tags": [{"key": "sharinghub:item", "value": TINY}]})
    assert r.status_code == 200, r.text
    r = session.post(ajax + "model-versions/create", headers=origin, timeout=30,
                     json={"name": "from-the-ui", "source": info.model_uri,
                           "run_id": info.run_id, "model_id": info.model_id})
    assert r.status_code == 200, r.text
    poll(lambda: any(lk.get("mlflow:name") == "from-the-ui"
                     for lk in _search(server, [TINY])[TINY]["links"]), "the UI's model")


def test_registrations_made_elsewhere_show_after_the_next_crawl(server, mlflow_client):
    """Straight into the backend store, past the hook: the full sync after a crawl."""
    mlflow = mlflow_client
    store = f"sqlite:///{server.root / 'data' / 'sharinghub' / 'mlflow' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    client.create_registered_model("elsewhere", tags={"sharinghub:item": TINY})
    client.create_model_version("elsewhere", "s3://bucket/elsewhere/model")
    requests.post(f"{server.url}sharinghub/api/index", headers=AUTH, timeout=10)
    poll(lambda: any(lk.get("mlflow:name") == "elsewhere"
                     for lk in _search(server, [TINY])[TINY]["links"]),
         "the model registered past Jupyter", 60)


def test_pystac_client_reads_registered_model_links(server, mlflow_client):
    from pystac_client import Client

    catalog = Client.open(f"{server.url}sharinghub/api/stac", headers=AUTH)
    (item,) = catalog.search(ids=[FLOOD], collections=["ai-model"]).items()
    rels = {link.rel for link in item.links}
    assert {"mlflow:tracking-uri", "mlflow:model"} <= rels
    assert any(a.media_type == "application/onnx" and "mlm:model" in (a.roles or [])
               for a in item.assets.values())


def test_lineage_tags_come_from_the_pull_manifests(tmp_path):
    from sharinghub_lab.lineage import DATASETS_TAG, PulledDatasetsContext, find_manifests

    ctx = PulledDatasetsContext()
    assert not find_manifests(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    manifest = {"item": "g/d", "rev": "v2", "commit": "abc",
                "outputs": [{"path": "data", "md5": "0" * 32 + ".dir", "size": 3, "nfiles": 2}]}
    (tmp_path / "a" / "b" / ".sharinghub-pull.json").write_text(json.dumps(manifest))
    (tmp_path / ".hidden" / ".sharinghub-pull.json").write_text(json.dumps(
        {**manifest, "item": "hidden/x"}))
    found = find_manifests(tmp_path)
    assert [m["item"] for m in found] == ["g/d"]
    cwd = Path.cwd()
    try:
        import os

        os.chdir(tmp_path)
        assert ctx.in_context()
        tag = json.loads(ctx.tags()[DATASETS_TAG])
    finally:
        os.chdir(cwd)
    assert tag == [{"item": "g/d", "rev": "v2", "commit": "abc",
                    "outputs": [{"path": "data", "md5": "0" * 32 + ".dir"}]}]
