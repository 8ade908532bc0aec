"""The flood-detection demo, end to end: ``sharinghub-lab demo`` as a user starts it (a real
process, its printed URL, pystac-client on its STAC API, SIGTERM), and the three notebooks
run top to bottom by nbclient against it, their outputs checked."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest
import requests
from pystac_client import Client

from tests.support.demo_proc import Demo, isolated_env, run_notebook, start_demo, stop_demo
from tests.support.html_check import live_problems
from tests.support.polling import poll
from tests.support.threaded import free_port

DATASET = "local/sen1floods11"
MODEL = "local/flood-model"
#: the IoU the training reaches on the Po chips is ~0.85-0.9 (see 03-predict.ipynb)
IOU_FLOOR = 0.7


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("demo")
    started = start_demo(tmp / "workspace", tmp, free_port())
    try:
        yield started
    finally:
        stop_demo(started)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_demo_serves_the_catalog_and_stops_whole_on_sigterm(tmp_path: Path) -> None:
    demo = start_demo(tmp_path / "workspace", tmp_path, free_port())
    try:
        stac = Client.open(f"{demo.url}sharinghub/api/stac",
                           headers={"Authorization": f"token {demo.token}"})
        assert {c.id for c in stac.get_collections()} >= {"ai-model", "dataset", "processor"}
        found = {i.id for i in stac.search(collections=["ai-model"]).items()}
        assert found == {MODEL, "local/landcover-classifier"}
        near_po = stac.search(bbox=[9.6, 44.9, 9.8, 45.1]).items()
        assert {i.id for i in near_po} >= {DATASET, MODEL}
        dataset = stac.get_collection("dataset").get_item(DATASET)
        assert dataset is not None and dataset.properties["sharinghub:dvc-init"] == "enable"

        # JupyterLab itself is the process the demo became; a kernel is its child
        server = psutil.Process(demo.proc.pid)
        assert any("jupyterlab" in part for part in server.cmdline())
        kernel = requests.post(f"{demo.url}api/kernels", json={"name": "python3"},
                               headers={"Authorization": f"token {demo.token}"}, timeout=60)
        assert kernel.status_code == 201
        started = poll(lambda: server.children(recursive=True), "the kernel process")
        assert demo.get("lab").status_code == 200

        demo.proc.send_signal(signal.SIGTERM)
        assert demo.proc.wait(30) is not None
        assert not _port_open(demo.port)
        left = poll(lambda: [p for p in started if p.is_running()
                             and p.status() != psutil.STATUS_ZOMBIE] or [None],
                    "the kernel to stop", timeout=30)
        assert left == [None], left
    finally:
        stop_demo(demo)


def test_a_second_start_reuses_the_workspace(tmp_path: Path) -> None:
    from sharinghub_server.demo import prepare

    quiet: list[str] = []
    ws = prepare(tmp_path / "ws", quiet.append)
    assert quiet == [f"creating the {name} project" for name in
                     ("sen1floods11", "flood-model", "flood-mapper", "landcover-classifier")]
    dataset = ws.projects / "sen1floods11"
    tags = _git(dataset, "tag", "--list")
    assert tags.split() == ["v1.0", "v1.1"]
    head = _git(dataset, "rev-parse", "HEAD")
    notebook = ws.root / "01-discover.ipynb"
    notebook.write_text(notebook.read_text().replace("Discover", "Discover (my notes)"))

    again: list[str] = []
    assert prepare(tmp_path / "ws", again.append) == ws
    assert again == []  # nothing made twice
    assert _git(dataset, "rev-parse", "HEAD") == head
    assert "my notes" in notebook.read_text()  # a user's edits are kept
    assert not list(ws.state.glob("new-*"))  # no scratch folder left
    config = json.loads((ws.config_dir / "jupyter_server_config.json").read_text())
    assert config["SharingHub"]["local_projects"] == [str(ws.projects)]

    # the same data wherever it is made: chips are a function of their names
    other = prepare(tmp_path / "elsewhere", again.append)
    for rev in ("v1.0", "v1.1"):
        assert _git(other.projects / "sen1floods11", "show", f"{rev}:S1Hand.dvc") == \
            _git(dataset, "show", f"{rev}:S1Hand.dvc")


def test_the_chips_are_georeferenced_where_the_footprints_say(tmp_path: Path) -> None:
    import numpy as np
    import tifffile

    from sharinghub_server.demo import prepare

    ws = prepare(tmp_path / "ws", lambda line: None)
    dataset = ws.projects / "sen1floods11"
    footprints = json.loads((dataset / "footprints.geojson").read_text())["features"]
    assert len(footprints) == 32
    for feature in footprints[::7]:
        west, north = feature["geometry"]["coordinates"][0][3]
        with tifffile.TiffFile(dataset / "S1Hand" / f"{feature['id']}_S1Hand.tif") as tif:
            geo = tif.pages[0].geotiff_tags
            data = tif.asarray()
        assert geo["GeographicTypeGeoKey"] == 4326
        assert geo["ModelTiepoint"][3:5] == pytest.approx([west, north])
        assert data.shape == (2, 64, 64) and data.dtype == np.float32
        label = tifffile.imread(dataset / "LabelHand" / f"{feature['id']}_LabelHand.tif")
        assert set(np.unique(label)) <= {-1, 0, 1} and (label == 1).any()


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _run_notebook(demo: Demo, name: str) -> nbformat.NotebookNode:
    """Run it; no cell fails, nothing on stderr is a traceback, every HTML output is safe."""
    notebook, _ = run_notebook(demo, name)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", (name, cell.source)
            if output["output_type"] == "stream" and output["name"] == "stderr":
                assert "Traceback" not in output["text"], (name, output["text"])
            html = output.get("data", {}).get("text/html")
            if html:
                assert live_problems(html) == [], (name, cell.source)
    return notebook


def _summary(notebook: nbformat.NotebookNode) -> dict:
    cell = next(c for c in notebook.cells if "summary" in c.metadata.get("tags", []))
    return ast.literal_eval(cell.outputs[-1]["data"]["text/plain"])


def _html_of(notebook: nbformat.NotebookNode, source: str) -> str:
    cell = next(c for c in notebook.cells if c.source.strip() == source)
    return "".join(o["data"]["text/html"] for o in cell.outputs if "text/html" in
                   o.get("data", {}))


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _listed_at(project: Path, rev: str, output: str, remote: Path) -> dict[str, str]:
    """relpath -> md5 of a DVC directory output at ``rev``, from its listing on the remote."""
    pointer = _git(project, "show", f"{rev}:{output}.dvc")
    digest = re.search(r"md5: (\w+)\.dir", pointer).group(1)
    listing = json.loads((remote / "files" / "md5" / digest[:2] / f"{digest[2:]}.dir")
                         .read_text())
    return {entry["relpath"]: entry["md5"] for entry in listing}


def test_the_three_notebooks_run_top_to_bottom(demo: Demo) -> None:
    import mlflow

    # 01: search by text, box and dates; versions
    discover = _run_notebook(demo, "01-discover.ipynb")
    found = _summary(discover)
    assert set(found["flood"]) == {DATASET, MODEL, "local/flood-mapper"}
    assert {DATASET, MODEL} <= set(found["ebro_box"])
    assert found["nov_dec_2019"] == [DATASET]
    assert found["versions"] == ["main", "v1.1", "v1.0"]
    table = _html_of(discover, "%sharinghub search flood")
    assert all(item in table for item in (DATASET, MODEL, "local/flood-mapper"))

    # 02: pull v1.0 (the right bytes), train, log, register; the item links both ways
    train = _run_notebook(demo, "02-train.ipynb")
    made = _summary(train)
    pulled = Path(made["pulled"])
    project = demo.root / "projects" / "local" / "sen1floods11"
    remote = demo.root / "dvc-remote"
    for output in ("S1Hand", "LabelHand"):
        expected = _listed_at(project, "v1.0", output, remote)
        assert len(expected) == 24
        assert {p.name: _md5(p) for p in (pulled / output).iterdir()} == expected
    assert made["model"] == [("flood-water-classifier", 1)]
    assert made["derived_from"] == [
        (f"{demo.url}sharinghub/api/stac/collections/dataset/items/{DATASET}", "v1.0")]
    client = mlflow.MlflowClient(tracking_uri=f"{demo.url}sharinghub/mlflow")
    os.environ["MLFLOW_TRACKING_TOKEN"] = demo.token
    try:
        run = client.get_run(made["run_id"])
        history = client.get_metric_history(made["run_id"], "valid_iou")
        version = client.get_model_version("flood-water-classifier", "1")
    finally:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    assert run.data.params["dataset_rev"] == "v1.0"
    assert [m.step for m in history] == list(range(6))
    assert history[-1].value == pytest.approx(made["valid_iou"], abs=1e-4)
    assert json.loads(run.data.tags["sharinghub.datasets"])[0]["rev"] == "v1.0"
    assert version.tags["sharinghub:item"] == MODEL

    # 03: the ONNX asset downloaded, run on a chip only v1.1 has, scored
    predict = _run_notebook(demo, "03-predict.ipynb")
    result = _summary(predict)
    assert result["model_item"] == MODEL
    assert result["asset"] == "mlflow-model-flood-water-classifier-v1"
    assert result["chip"].startswith("Italy_Po")
    assert f"{result['chip']}_S1Hand.tif" not in _listed_at(project, "v1.0", "S1Hand", remote)
    assert result["shape"] == result["truth_shape"] == [64, 64]
    assert result["iou"] >= IOU_FLOOR and result["mean_iou_po"] >= IOU_FLOOR
    downloaded = demo.root / "models" / "model.onnx"
    stored = [p for p in (demo.root / ".sharinghub" / "mlflow" / "artifacts").rglob("model.onnx")]
    assert stored and _md5(downloaded) in {_md5(p) for p in stored}
    assert _listed_at(project, "v1.1", "S1Hand", remote) == {
        p.name: _md5(p) for p in (pulled / "S1Hand").iterdir()}


def test_binder_start_prepares_the_demo_then_runs_the_server_command(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    for script in ("postBuild", "start"):
        text = (repo / "binder" / script).read_text()
        assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
        subprocess.run(["bash", "-n", str(repo / "binder" / script)], check=True)
    env = {**isolated_env(tmp_path), "HOME": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # what Binder does: start, then the server command; --show-config loads the extension
    # with the configuration it finds, and exits
    shown = subprocess.run([str(repo / "binder" / "start"), "jupyter", "server",
                            "--show-config"], env=env, capture_output=True, text=True,
                           check=True, cwd=tmp_path)
    workspace = tmp_path / "sharinghub-demo"
    assert (workspace / "01-discover.ipynb").is_file()
    settings = workspace / ".sharinghub" / "jupyter" / "jupyter_server_config.json"
    assert str(settings) in shown.stdout
    assert f"sharinghub: index sqlite://{workspace / '.sharinghub' / 'index.sqlite'}" in \
        shown.stderr
    # showing the configuration starts no crawl, and the extension closed the index before
    # the interpreter finalized (left open, with threads running: a CI run died of SIGSEGV)
    assert "crawl" not in shown.stderr and "Traceback" not in shown.stderr
    index = workspace / ".sharinghub" / "index.sqlite"
    assert index.is_file() and not Path(f"{index}-wal").exists()
