"""Lineage without a server: the ``derived_from`` links say which model versions each dataset
version was used for, and a run started inside a pulled clone finds the clone's manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sharinghub_lab.lineage import MANIFEST, MAX_UP, find_manifests
from sharinghub_server.catalog.models import apply_models
from sharinghub_server.catalog.validate import validate
from tests.test_tracking_core import model_item, onnx_version

DATASET = "sharinghub-test/sen1floods11-dataset"


def _dataset(rev: str, digest: str) -> dict:
    return {"item": DATASET, "rev": rev, "commit": f"c-{rev}", "digests": [digest],
            "collection": "dataset"}


def _derived(item: dict) -> list[dict]:
    return [lk for lk in item["links"] if lk["rel"] == "derived_from"]


def test_each_derived_from_link_names_the_model_versions_trained_on_it():
    base = model_item("sharinghub-test/flood-model")  # its card's `related` names the dataset
    v1 = onnx_version("1", datasets=[_dataset("v1.0", "a" * 32)])
    v2 = onnx_version("2", datasets=[_dataset("v1.0", "a" * 32), _dataset("v1.1", "b" * 32)])
    other = onnx_version("1", name="flood-lite", datasets=[_dataset("v1.1", "b" * 32)])
    item = apply_models(base, [v1, v2, other], "../mlflow/", "flood-model (1)")
    links = {lk["sharinghub:rev"]: lk for lk in _derived(item)}
    assert sorted(links) == ["v1.0", "v1.1"]  # one link per dataset version, not per model
    assert links["v1.0"]["mlflow:models"] == [
        {"name": "flood-unet", "version": "1", "uri": "models:/flood-unet/1"},
        {"name": "flood-unet", "version": "2", "uri": "models:/flood-unet/2"}]
    assert links["v1.1"]["mlflow:models"] == [
        {"name": "flood-unet", "version": "2", "uri": "models:/flood-unet/2"},
        {"name": "flood-lite", "version": "1", "uri": "models:/flood-lite/1"}]
    assert links["v1.1"]["sharinghub:digests"] == ["b" * 32]
    # each named version is one of the item's mlflow:model links
    model_uris = {lk["mlflow:uri"] for lk in item["links"] if lk["rel"] == "mlflow:model"}
    assert {m["uri"] for lk in links.values() for m in lk["mlflow:models"]} <= model_uris
    # the card's related link became the first dataset version's, not a second link
    assert all(lk["href"].endswith(f"/items/{DATASET}") for lk in links.values())
    assert len(_derived(item)) == 2
    validate(item)
    # the same versions in another order say the same
    again = apply_models(base, [other, v2, v1], "../mlflow/", "flood-model (1)")
    assert {lk["sharinghub:rev"]: sorted(m["uri"] for m in lk["mlflow:models"])
            for lk in _derived(again)} == {
        rev: sorted(m["uri"] for m in lk["mlflow:models"]) for rev, lk in links.items()}


def test_a_model_item_without_related_links_gets_one_link_per_dataset_version():
    base = model_item("sharinghub-test/flood-model")
    base["links"] = [lk for lk in base["links"] if lk["rel"] != "derived_from"]
    item = apply_models(base, [onnx_version("3", datasets=[_dataset("v2", "c" * 32)])], None)
    (link,) = _derived(item)
    assert (link["sharinghub:rev"], link["mlflow:models"]) == (
        "v2", [{"name": "flood-unet", "version": "3", "uri": "models:/flood-unet/3"}])
    assert link["type"] == "application/geo+json"
    validate(item)


def _manifest(folder: Path, item: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text(json.dumps({
        "item": item, "rev": "v1", "commit": "abc",
        "outputs": [{"path": "data", "md5": "0" * 32 + ".dir"}]}))


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SHARINGHUB_ROOT", raising=False)
    return home


def test_a_run_started_inside_a_pulled_clone_finds_the_clones_manifest(home, monkeypatch):
    from sharinghub_lab.lineage import DATASETS_TAG, PulledDatasetsContext

    clone = home / "work" / "floods"
    _manifest(clone, "g/floods")
    _manifest(clone / "labels", "g/labels")  # a pull inside the clone, below the notebook's
    notebooks = clone / "notebooks" / "training"
    notebooks.mkdir(parents=True)
    assert [m["item"] for m in find_manifests(notebooks)] == ["g/floods"]
    assert [m["item"] for m in find_manifests(clone / "labels")] == ["g/floods", "g/labels"]
    # what MLflow asks at each start_run, from the notebook's folder
    monkeypatch.chdir(notebooks)
    ctx = PulledDatasetsContext()
    assert ctx.in_context()
    assert [m["item"] for m in json.loads(ctx.tags()[DATASETS_TAG])] == ["g/floods"]
    # a folder elsewhere in the home still has none
    (home / "elsewhere").mkdir()
    assert find_manifests(home / "elsewhere") == []


def test_the_upward_look_stops_at_the_home_and_the_jupyter_root(home, tmp_path, monkeypatch):
    _manifest(tmp_path, "above/home")  # above the home folder: not this user's workspace
    inside = home / "a" / "b"
    inside.mkdir(parents=True)
    assert find_manifests(inside) == []
    _manifest(home, "at/home")  # the home folder itself is looked at
    assert [m["item"] for m in find_manifests(inside)] == ["at/home"]

    root = home / "jupyter"  # a Jupyter root below the home: the look stops there
    _manifest(root / "pull", "in/root")
    (root / "pull" / "nb").mkdir()
    monkeypatch.setenv("SHARINGHUB_ROOT", str(root))
    assert [m["item"] for m in find_manifests(root / "pull" / "nb")] == ["in/root"]
    (root / "x").mkdir()
    assert find_manifests(root / "x") == []  # the home's manifest is above the root


def test_the_upward_look_is_bounded_outside_any_known_root(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    monkeypatch.delenv("SHARINGHUB_ROOT", raising=False)
    _manifest(tmp_path, "top/pull")
    deep = tmp_path.joinpath(*[f"d{i}" for i in range(MAX_UP + 2)])
    deep.mkdir(parents=True)
    assert find_manifests(deep) == []  # further up than MAX_UP folders
    near = tmp_path / "d0" / "d1"
    assert [m["item"] for m in find_manifests(near)] == ["top/pull"]
    assert os.path.isdir(near)
