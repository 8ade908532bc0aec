"""The MLflow glue's core, without Jupyter or a tracking server: registered versions → item
(links, assets, mlm), overlays in the index across crawls, lineage inputs, watched requests."""

from __future__ import annotations

import io
import json

from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
from sharinghub_server.catalog.item import project_items
from sharinghub_server.catalog.models import (
    OVERLAY_KEY,
    ModelFile,
    ModelVersion,
    apply_models,
    apply_overlays,
    mlm_io,
    model_file,
    signature_of,
)
from sharinghub_server.catalog.validate import MLM_SCHEMA, validate
from sharinghub_server.index.store import ProjectUpdate, open_store
from sharinghub_server.tracking.hooks import observed, watched
from sharinghub_server.tracking.lineage import DATASET_SOURCE_TYPE, dataset_inputs
from tests.support.corpus import by_path, record_of

TENSOR_SIG = {
    "inputs": '[{"name": "x", "type": "tensor", "tensor-spec": {"dtype": "float32", '
              '"shape": [-1, 3, 64, 64]}}]',
    "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": [-1, 64, 64]}}]',
}


def model_item(path: str) -> dict:
    (item,) = [i for i in project_items(record_of(by_path(path)), DEFAULT_CATEGORIES).items
               if i["collection"] == "ai-model"]
    return item


def onnx_version(version: str = "1", **changes) -> ModelVersion:
    data = {"name": "flood-unet", "version": version, "aliases": ["champion"],
            "run_id": "r1", "artifacts_href": "../mlflow/api/2.0/mlflow-artifacts/artifacts/1/m",
            "flavors": ["onnx", "python_function"],
            "model_file": ModelFile("model.onnx", "application/onnx", "onnx"),
            "signature": signature_of({"signature": TENSOR_SIG}),
            "datasets": [{"item": "sharinghub-test/sen1floods11-dataset", "rev": "v1.1",
                          "commit": "abc", "digests": ["d" * 32], "collection": "dataset"}]}
    return ModelVersion(**{**data, **changes})


def test_flavours_name_the_model_file_and_its_type():
    assert model_file({"flavors": {"onnx": {"data": "model.onnx"},
                                   "python_function": {}}}).media_type == "application/onnx"
    sk = model_file({"flavors": {"sklearn": {"pickled_model": "model.pkl"}}})
    assert (sk.path, sk.artifact_type) == ("model.pkl", "pickle.dump")
    assert model_file({"flavors": {"python_function": {"loader_module": "x"}}}) is None


def test_a_scikit_learn_model_names_the_format_its_file_is_in():
    """MLflow 3 writes ``model.skops`` with skops unless told otherwise: the artifact type
    follows ``serialization_format`` (mlm 1.4: the call that wrote it), else the suffix."""
    def sklearn(**conf):
        return model_file({"flavors": {"sklearn": conf, "python_function": {}}})

    skops = sklearn(pickled_model="model.skops", serialization_format="skops")
    assert (skops.path, skops.artifact_type) == ("model.skops", "skops.io.dump")
    assert sklearn(pickled_model="model.pkl",
                   serialization_format="cloudpickle").artifact_type == "cloudpickle.dump"
    assert sklearn(pickled_model="model.pkl",
                   serialization_format="pickle").artifact_type == "pickle.dump"
    # older MLmodel files say no format: the suffix tells
    assert sklearn(pickled_model="model.skops").artifact_type == "skops.io.dump"
    assert sklearn(pickled_model="model.joblib").artifact_type == "joblib.dump"
    assert sklearn(pickled_model="model.bin").artifact_type == "mlflow.sklearn.save_model"


def test_signatures_become_mlm_inputs_and_outputs():
    sig = signature_of({"signature": TENSOR_SIG})
    inputs, outputs = mlm_io(sig, ["semantic-segmentation"])
    assert inputs == [{"name": "x", "bands": [], "input": {
        "shape": [-1, 3, 64, 64], "dim_order": ["batch", "channel", "height", "width"],
        "data_type": "float32"}}]
    assert outputs == [{"name": "output", "tasks": ["semantic-segmentation"], "result": {
        "shape": [-1, 64, 64], "dim_order": ["batch", "height", "width"],
        "data_type": "uint8"}}]
    # no tasks: an output cannot be described
    assert mlm_io(sig, None)[1] == []
    columns = [{"type": "double", "name": "a"}, {"type": "double", "name": "b"}]
    (col,) = mlm_io({"inputs": columns}, None)[0]
    assert col["input"] == {"shape": [-1, 2], "dim_order": ["batch", "channel"],
                            "data_type": "float64"}
    assert col["description"] == "columns: a, b"


def test_a_registered_version_adds_links_assets_and_mlm_and_stays_valid():
    base = model_item("sharinghub-test/flood-model")  # the EOEPCA card: mlm, no model file
    assert MLM_SCHEMA not in base["stac_extensions"]
    item = apply_models(base, [onnx_version()], "../mlflow/", "flood-model (1)")
    assert item is not base and MLM_SCHEMA not in base["stac_extensions"]
    assert MLM_SCHEMA in item["stac_extensions"]
    (link,) = [lk for lk in item["links"] if lk["rel"] == "mlflow:model"]
    assert (link["mlflow:uri"], link["mlflow:aliases"]) == ("models:/flood-unet/1",
                                                            ["champion"])
    (tracking,) = [lk for lk in item["links"] if lk["rel"] == "mlflow:tracking-uri"]
    assert tracking["mlflow:experiment"] == "flood-model (1)"
    asset = item["assets"]["mlflow-model-flood-unet-v1"]
    assert asset["href"].endswith("/artifacts/1/m/model.onnx")
    assert asset["roles"] == ["mlm:model", "data"] and asset["mlm:artifact_type"] == "onnx"
    assert item["properties"]["mlm:input"][0]["input"]["shape"] == [-1, 3, 64, 64]
    # the card's related dataset link gains the version instead of being repeated
    derived = [lk for lk in item["links"] if lk["rel"] == "derived_from"]
    assert len(derived) == 1 and derived[0]["sharinghub:rev"] == "v1.1"
    validate(item)


def test_an_unsigned_model_on_an_item_without_mlm_inputs_keeps_the_item_valid():
    """mlm 1.4 requires mlm:input/mlm:output: with no signature to fill them from, the item
    is served as one without a model asset is, its mlm:* fields undeclared."""
    base = model_item("sharinghub-test/flood-model")
    for key in ("mlm:input", "mlm:output"):
        base["properties"].pop(key, None)
    item = apply_models(base, [onnx_version(signature=None)], None)
    assert "mlm:model" in item["assets"]["mlflow-model-flood-unet-v1"]["roles"]
    assert MLM_SCHEMA not in item["stac_extensions"]
    validate(item)
    signed = apply_models(base, [onnx_version()], None)  # the signature fills them in
    assert MLM_SCHEMA in signed["stac_extensions"] and signed["properties"]["mlm:input"]
    validate(signed)


def test_front_matter_inputs_win_and_plain_items_get_plain_assets():
    base = model_item("sharinghub-test/flood-model")
    declared = [{"name": "vv", "bands": [], "input": {"shape": [1], "dim_order": ["batch"],
                                                      "data_type": "float32"}}]
    base["properties"]["mlm:input"] = declared
    assert apply_models(base, [onnx_version()], None)["properties"]["mlm:input"] == declared
    plain = {**base, "properties": {k: v for k, v in base["properties"].items()
                                    if not k.startswith("mlm:")}}
    item = apply_models(plain, [onnx_version()], None)
    asset = item["assets"]["mlflow-model-flood-unet-v1"]
    assert asset["roles"] == ["data"] and "mlm:artifact_type" not in asset
    assert MLM_SCHEMA not in item["stac_extensions"]


def test_overlays_survive_crawls_and_merge_when_served(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/index.sqlite")
    try:
        base = model_item("sharinghub-test/flood-model")
        store.apply("gitlab", [ProjectUpdate(base["id"], {"v": 1}, [base])], [])
        store.set_overlay(base["id"], OVERLAY_KEY, {"models": [onnx_version().to_json()]})
        # a crawl replaces the project's items: the overlay stays
        store.apply("gitlab", [ProjectUpdate(base["id"], {"v": 2}, [base])], [])
        found = store.overlays([base["id"], "other/item"])
        assert list(found) == [base["id"]]
        served = apply_overlays(store.get_item("ai-model", base["id"]), found[base["id"]])
        assert any(lk["rel"] == "mlflow:model" for lk in served["links"])
        # a stored layout with keys this version does not know still serves
        store.set_overlay(base["id"], OVERLAY_KEY, {"models": [
            {**onnx_version().to_json(), "from_the_future": 1}]})
        assert apply_overlays(base, store.overlays([base["id"]])[base["id"]])["assets"]
        validate(served)
        store.set_overlay(base["id"], OVERLAY_KEY, None)
        assert store.overlays() == {}
    finally:
        store.close()


def test_pull_manifests_become_dataset_inputs():
    tag = json.dumps([{"item": "g/data", "rev": "v2", "commit": "c0ffee",
                       "outputs": [{"path": "data", "md5": "a" * 32 + ".dir"},
                                   {"path": "labels.csv", "md5": "b" * 32}]}])
    inputs = dataset_inputs([{"key": "sharinghub.datasets", "value": tag}])
    assert [(i["dataset"]["name"], i["dataset"]["digest"]) for i in inputs] == [
        ("g/data", "a" * 32 + ".dir"), ("g/data", "b" * 32)]
    assert all(i["dataset"]["source_type"] == DATASET_SOURCE_TYPE for i in inputs)
    assert json.loads(inputs[1]["dataset"]["source"]) == {
        "item": "g/data", "rev": "v2", "commit": "c0ffee", "path": "labels.csv"}
    assert dataset_inputs([{"key": "other", "value": "x"}]) == []
    # the tag is the client's text: whatever is malformed is left out, nothing raises
    for bad in ("not json", '{"item": "x"}', '[{"item": "x", "outputs": "abc"}]',
                '[{"item": "x", "outputs": [1, null]}]', '[{"item": 3}]', "[null]"):
        assert dataset_inputs([{"key": "sharinghub.datasets", "value": bad}]) == []
    assert dataset_inputs("not a list") == []


def test_registry_writes_and_new_runs_are_watched():
    assert watched("POST", "api/2.0/mlflow/model-versions/create")
    assert watched("PATCH", "ajax-api/2.0/mlflow/registered-models/update")
    assert watched("DELETE", "api/2.0/mlflow/registered-models/alias")
    assert watched("POST", "/api/2.0/mlflow/runs/create")
    assert not watched("GET", "api/2.0/mlflow/registered-models/get")
    assert not watched("POST", "api/2.0/mlflow/runs/log-metric")


def test_the_middleware_reports_watched_requests_with_bodies():
    events = []

    def app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"echo": ', body, b"}"]

    wrapped = observed(app, "/p/sharinghub/mlflow", lambda *e: events.append(e))
    payload = b'{"name": "m"}'

    def call(method: str, path: str) -> bytes:
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(
            payload), "CONTENT_LENGTH": str(len(payload))}
        return b"".join(wrapped(environ, lambda status, headers, exc=None: None))

    assert call("POST", "/p/sharinghub/mlflow/api/2.0/mlflow/registered-models/create") == (
        b'{"echo": {"name": "m"}}')
    assert call("POST", "/p/sharinghub/mlflow/api/2.0/mlflow/runs/log-batch")
    assert events == [("POST", "api/2.0/mlflow/registered-models/create", payload, 200,
                       b'{"echo": {"name": "m"}}')]


def test_the_project_of_a_proxied_path_is_found_even_when_a_group_is_called_tracking(
        tmp_path):
    from sharinghub_server.service import CatalogService
    from sharinghub_server.tracking.service import TrackingService

    store = open_store(f"sqlite:///{tmp_path}/index.sqlite")
    catalog = CatalogService(store, DEFAULT_CATEGORIES, [])
    try:
        per_project = TrackingService(catalog, external_uri="http://mlflow", token="t")
        assert per_project.base_of("g/flood/tracking/api/2.0/mlflow/runs/create") == (
            "g/flood/tracking")
        assert per_project.base_of("model-tracking/flood/tracking/ajax-api/2.0/x") == (
            "model-tracking/flood/tracking")
        assert per_project.base_of("tracking/team/flood/tracking/") == (
            "tracking/team/flood/tracking")
        assert per_project.base_of("api/2.0/mlflow/runs/create") == ""
        assert per_project.tracking_href("g/flood") == "../mlflow/g/flood/tracking/"
        plain = TrackingService(catalog, external_uri="http://mlflow", per_project=False)
        assert plain.base_of("g/flood/tracking/api/2.0/x") == ""
        assert plain.tracking_href("g/flood") == "../mlflow/"
    finally:
        catalog.close()


def test_a_failing_listener_never_fails_the_request():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"{}"]

    def broken(*event):
        raise RuntimeError("bookkeeping failed")

    wrapped = observed(app, "", broken)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/2.0/mlflow/runs/create",
               "wsgi.input": io.BytesIO(b"{}"), "CONTENT_LENGTH": "2"}
    assert b"".join(wrapped(environ, lambda status, headers, exc=None: None)) == b"{}"
