"""``import sharinghub_lab as sh`` against a live Jupyter server with the extension (a
subprocess): connection, search, items, DVC pulls, MLflow tracking and registration, the
index. Real git, real DVC, the embedded MLflow server and the real MLflow client."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import requests

import sharinghub_lab as sh
from sharinghub_lab.client import find_runtime_server
from tests.support.notebook_site import (
    BIG,
    DATASET,
    EXAMPLE_DATASET,
    HOSTILE,
    MODEL,
    TOKEN,
    notebook_site,
)
from tests.support.polling import poll
from tests.support.threaded import free_port


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with notebook_site(tmp_path_factory.mktemp("notebook-api"), big=True) as site:
        yield site


@pytest.fixture
def connected(site, monkeypatch):
    """Configured the way a kernel outside Jupyter is: environment variables."""
    site.configure_kernel(monkeypatch)
    client = sh.connect()
    assert client.url == site.url and client.root_dir == site.root.resolve()
    return client


def _ids(items) -> set[str]:
    return {i.id for i in items}


# --- connection ------------------------------------------------------------------------------

def test_a_kernel_started_by_the_server_finds_it_without_configuration(site):
    """A real kernel, started by the server through its REST API, connects with no
    SHARINGHUB_* variables: from the server's runtime file matched to its parent process."""
    from jupyter_client import BlockingKernelClient

    auth = {"Authorization": f"token {TOKEN}"}
    kernel = requests.post(f"{site.url}api/kernels", headers=auth, json={"name": "python3"},
                           timeout=30).json()
    try:
        runtime = site.root / "data" / "runtime"
        connection_file = runtime / f"kernel-{kernel['id']}.json"
        poll(connection_file.exists, "the kernel's connection file")
        client = BlockingKernelClient(connection_file=str(connection_file))
        client.load_connection_file()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            out: list[str] = []
            code = ("import os\nfor k in ('SHARINGHUB_URL', 'SHARINGHUB_TOKEN'):\n"
                    "    os.environ.pop(k, None)\n"
                    "import sharinghub_lab as sh\nc = sh.connect()\n"
                    "print(c.url, c.root_dir, len(sh.search(max_items=3)))")
            reply = client.execute_interactive(
                code, timeout=60, output_hook=lambda msg: out.append(
                    msg["content"].get("text", "") if msg["msg_type"] == "stream" else ""))
            assert reply["content"]["status"] == "ok", reply["content"]
            assert "".join(out).split() == [site.url, str(site.root.resolve()), "3"]
        finally:
            client.stop_channels()
    finally:
        requests.delete(f"{site.url}api/kernels/{kernel['id']}", headers=auth, timeout=30)


def test_the_runtime_file_matches_the_server_and_its_descendants_only(site):
    runtime = site.root / "data" / "runtime"
    info = find_runtime_server(site.server.proc.pid, runtime)
    assert info is not None and info["url"] == site.url and info["token"] == TOKEN
    # this test process started the server: it is its parent, not a descendant
    assert find_runtime_server(os.getpid(), runtime) is None


def test_no_server_is_one_line_naming_the_variables(site, monkeypatch, tmp_path):
    for name in ("SHARINGHUB_URL", "SHARINGHUB_TOKEN", "SHARINGHUB_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(sh.SharingHubError) as info:
        sh.connect()
    message = str(info.value)
    assert "\n" not in message
    assert "SHARINGHUB_URL" in message and "SHARINGHUB_TOKEN" in message


def test_unreachable_server_wrong_token_and_no_extension_are_one_line(site):
    cases = [(f"http://127.0.0.1:{free_port()}/", TOKEN, "cannot reach"),
             (site.url, "wrong-token", "refused"),
             (f"{site.url}nothing/", TOKEN, "does not run the sharinghub extension")]
    for url, token, expected in cases:
        with pytest.raises(sh.SharingHubError) as info:
            sh.connect(url, token)
        assert expected in str(info.value) and "\n" not in str(info.value), url


# --- search and items ------------------------------------------------------------------------

def test_search_by_text_bbox_datetime_and_cql2(connected):
    everything = sh.search(max_items=None)
    assert _ids(everything) == {DATASET, EXAMPLE_DATASET, MODEL, HOSTILE, BIG}
    assert all(type(i).__name__ == "Item" for i in everything)
    assert _ids(sh.search("two versions")) == {DATASET}
    assert _ids(sh.search(["two versions", "UNet"])) == {DATASET, MODEL}
    assert _ids(sh.search(bbox=[9.9, 9.9, 10.5, 10.5])) == {HOSTILE}
    assert _ids(sh.search(bbox="-1,42,1,43")) == {EXAMPLE_DATASET, MODEL}
    assert _ids(sh.search(datetime="2019-06-01/2019-06-30")) == {EXAMPLE_DATASET}
    assert _ids(sh.search(filter="collection = 'ai-model'")) == {MODEL}
    assert _ids(sh.search(filter={"op": "=", "args": [{"property": "collection"}, "ai-model"]})
                ) == {MODEL}
    assert _ids(sh.search(collections="dataset", sortby="-datetime", limit=1,
                          max_items=None)) == {DATASET, EXAMPLE_DATASET, HOSTILE, BIG}
    assert len(sh.search(limit=1, max_items=2)) == 2


def test_bad_search_input_is_one_line(connected):
    for kwargs, expected in (({"bbox": [1, 2, 3]}, "bbox"), ({"bbox": "1,x,3,4"}, "bbox"),
                             ({"filter": "title ==== 3"}, "filter"),
                             ({"datetime": "yesterday"}, "datetime")):
        with pytest.raises(sh.SharingHubError) as info:
            sh.search(**kwargs)
        assert expected in str(info.value).lower() and "\n" not in str(info.value), kwargs


def test_item_and_an_unknown_item(connected):
    item = sh.item(MODEL)
    assert item.id == MODEL and item.properties["title"] == "Flood detection model"
    with pytest.raises(sh.SharingHubError, match="no item 'no/such'"):
        sh.item("no/such")


def test_download_an_asset_and_follow_the_items_links(connected, tmp_path):
    """Project files come through the server with its token; a pystac item's links resolve
    through it too (its collection, its root), which plain pystac could not do."""
    path = sh.download(MODEL, "flood-unet.onnx", to=tmp_path / "models")
    assert path == tmp_path / "models" / "flood-unet.onnx"
    assert path.read_bytes() == b"\x08\x07onnx-demo-weights"
    assert [p.name for p in path.parent.iterdir()] == ["flood-unet.onnx"]  # no partial file
    item = sh.item(MODEL)
    assert item.get_collection().id == "ai-model"
    assert all(link.get_href().startswith(connected.url) for link in item.links
               if link.rel in ("self", "root", "collection", "parent"))
    with pytest.raises(sh.SharingHubError, match=r"has no asset 'nope' \(its assets: .*"
                                                 r"flood-unet.onnx"):
        sh.download(MODEL, "nope", to=tmp_path)


# --- datasets --------------------------------------------------------------------------------

def test_versions(connected, site):
    found = sh.versions(DATASET)
    assert [(v["rev"], v["kind"]) for v in found][:2] == [("main", "branch"), ("v1.1", "tag")]
    assert {v["rev"] for v in found} == {"main", "v1.1", "v1.0"}
    with pytest.raises(sh.SharingHubError, match="no/such"):
        sh.versions("no/such")


def test_pull_two_versions_into_the_same_folder(connected, site, monkeypatch):
    work = site.root / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    path = sh.pull(DATASET, rev="v1.0", to="floods")
    assert path == site.root.resolve() / "work" / "floods"
    assert site.dataset.diff_workspace(path, "v1.0") == []
    job = sh.pull(DATASET, rev="v1.1", to="floods", wait=False)
    assert isinstance(job, sh.PullJob)
    assert job.status()["dest"] == "work/floods"
    seen: list[dict] = []
    assert job.wait(progress=False, on_status=seen.append) == path
    assert seen[-1]["state"] == "done" and seen[-1]["files_done"] == seen[-1]["files_total"]
    assert site.dataset.diff_workspace(path, "v1.1") == []
    assert job.status()["state"] == "done"
    with pytest.raises(sh.SharingHubError) as info:
        job.cancel()
    assert info.value.status == 409


def test_ctrl_c_while_a_pull_waits_cancels_it_on_the_server(connected, site, monkeypatch):
    """Ctrl-C (KeyboardInterrupt, here raised where a progress callback runs) while the job
    pulls a dataset that takes seconds: the job is cancelled on the server and the
    destination, half pulled when the key was pressed, is gone."""
    monkeypatch.chdir(site.root)
    job = sh.pull(BIG, to="interrupted", wait=False)
    dest = site.root / "interrupted"
    seen: list[dict] = []

    def press_ctrl_c(state: dict) -> None:
        seen.append(state)
        if state["state"] == "pulling" and dest.exists():
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job.wait(progress=False, on_status=press_ctrl_c)
    assert seen[-1]["state"] == "pulling"
    final = poll(lambda: (lambda s: s if s["state"] in ("done", "failed", "cancelled")
                          else None)(job.status()), "the job to end", 60)
    assert final["state"] == "cancelled", final
    assert not dest.exists()


def test_a_failed_pull_is_one_line_and_leaves_nothing(connected, site, monkeypatch):
    monkeypatch.chdir(site.root)
    with pytest.raises(sh.SharingHubError) as info:
        sh.pull(DATASET, rev="v9.9", to="nope")
    assert "v9.9" in str(info.value) and "failed" in str(info.value)
    assert "\n" not in str(info.value)
    assert not (site.root / "nope").exists()
    with pytest.raises(sh.SharingHubError, match="outside the Jupyter root"):
        sh.pull(DATASET, to=str(site.root.parent / "elsewhere"))
    assert not (site.root.parent / "elsewhere").exists()


# --- MLflow ----------------------------------------------------------------------------------

def test_track_run_register_and_the_catalog_link(connected, site, monkeypatch, tmp_path):
    """Registering goes through the server (the only way a registration reaches the
    catalog), even in a kernel that inherited a registry URI from its environment."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    elsewhere = tmp_path / "elsewhere.db"
    mlflow.set_registry_uri(f"sqlite:///{elsewhere}")  # (as MLFLOW_REGISTRY_URI would)
    experiment = sh.track(MODEL)
    assert experiment.name == f"flood-model ({MODEL})"
    assert os.environ["MLFLOW_TRACKING_URI"] == f"{site.url}sharinghub/mlflow"
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == TOKEN
    import mlflow
    import mlflow.sklearn

    monkeypatch.chdir(site.root)
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        for step, value in enumerate((0.5, 0.7, 0.9)):
            mlflow.log_metric("accuracy", value, step=step)
        mlflow.sklearn.log_model(model, name="model")
    assert run.info.experiment_id == experiment.experiment_id

    frame = sh.runs(MODEL)
    row = frame[frame["run_id"] == run.info.run_id].iloc[0]
    assert row["metrics.accuracy"] == 0.9 and row["params.C"] == "1.0"

    version = sh.register_model(run.info.run_id, "flood-clf", item=MODEL)
    assert version.name == "flood-clf"
    links = [lk for lk in sh.item(MODEL).links if lk.rel == "mlflow:model"]
    assert [(lk.extra_fields["mlflow:name"], str(lk.extra_fields["mlflow:version"]))
            for lk in links] == [("flood-clf", str(version.version))]
    tags = mlflow.MlflowClient().get_registered_model("flood-clf").tags
    assert tags["sharinghub:item"] == MODEL
    assert not elsewhere.exists()


def test_an_mlflow_client_of_the_server_whatever_mlflow_points_at(connected, tmp_path):
    """The panels' MLflow client: the item's tracking server, without relying on a call
    that happened to point MLflow there first, and without moving the kernel's MLflow."""
    import mlflow

    elsewhere = (tmp_path / "mlruns").as_uri()
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(elsewhere)
    try:
        client = sh.mlflow_client(MODEL)
        experiment = client.get_experiment_by_name(f"flood-model ({MODEL})")
        assert experiment is not None
        assert mlflow.get_tracking_uri() == elsewhere
    finally:
        mlflow.set_tracking_uri(before)
    with pytest.raises(sh.SharingHubError, match="has no MLflow experiment"):
        sh.mlflow_client(DATASET)


def test_mlflow_errors_are_one_line(connected):
    with pytest.raises(sh.SharingHubError, match="has no MLflow experiment"):
        sh.track(DATASET)
    with pytest.raises(sh.SharingHubError) as info:
        sh.register_model("0" * 32, "nothing", item=MODEL)
    assert str(info.value).startswith("MLflow:") and "\n" not in str(info.value)


# --- the index -------------------------------------------------------------------------------

def test_index_status_and_crawl_now(connected):
    status = sh.index()
    assert status["state"] == "idle" and status["last_crawl"]["ok"]
    assert status["last_crawl"]["items"]["dataset"] == 4
    started = sh.crawl()["last_crawl"]["started"]
    poll(lambda: (lambda s: s["state"] == "idle" and s["last_crawl"]["started"] >= started
                  and s["last_crawl"]["finished"])(sh.index()), "the crawl")


def test_import_loads_no_heavy_module():
    code = ("import sys, sharinghub_lab\n"
            "heavy = {'requests', 'pystac', 'pystac_client', 'mlflow', 'pandas', 'ipywidgets',"
            " 'folium'}\nprint(sorted(heavy & set(sys.modules)))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent).stdout
    assert out.strip() == "[]"
