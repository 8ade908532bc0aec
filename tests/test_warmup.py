"""The embedded MLflow server is loaded in the background once start-up has settled
(``c.SharingHub.mlflow_warmup``), so that the first MLflow request does not wait for it; the
index reads again what it held for searches the last time (``c.SharingHub.index_warmup``).

Real ``jupyter server`` subprocesses on the example projects (MLflow configures its server
once per process). What the server did is read from its log (the load is logged with what
started it) and from the native modules mapped into its process (those of MLflow's
dependencies appear only once MLflow is imported). Last, what a load leaves in the process's
environment (inherited by the kernels and terminals started after it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import requests

from tests.support.jupyter_proc import JupyterProcess, jupyter_server
from tests.support.polling import poll

TOKEN = "warmup-token"
AUTH = {"Authorization": f"token {TOKEN}"}
LOADING = "loading the embedded MLflow server (warm-up)"
LOADED = "embedded MLflow server loaded in"
SETTLED_OFF = "start-up settled; the embedded MLflow server loads on its first request"
INDEX_WARM = "index column(s) held the last time in the background, and the items of"
#: native modules of MLflow's dependencies that the extension alone never maps
MLFLOW_MARKERS = ("/sqlalchemy/", "/google/_upb/", "/pandas/_libs/")
#: how long a load may take on a busy 2-core machine
LOAD_BOUND = 240
#: after the settle point, how long nothing may be loaded when the warm-up is off
MARGIN = 8


def log(server: JupyterProcess) -> str:
    return server.log_path.read_text(errors="replace")


def mlflow_mapped(server: JupyterProcess) -> bool:
    maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    return any(marker in maps for marker in MLFLOW_MARKERS)


def logged_at(text: str, message: str) -> datetime:
    """When the server logged ``message`` (its log lines start ``[I 2026-12-03 06:17:26.890``)."""
    for line in text.splitlines():
        if message in line:
            stamp = re.match(r"\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)", line)
            assert stamp, line
            return datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S.%f")
    raise AssertionError(f"not logged: {message}")


def first_mlflow_request(server: JupyterProcess) -> requests.Response:
    return requests.get(f"{server.tracking}/api/2.0/mlflow/experiments/search",
                        params={"max_results": 1}, headers=AUTH, timeout=LOAD_BOUND)


@pytest.fixture
def start(tmp_path, local_projects):
    def start(*args: str):
        return jupyter_server(tmp_path / "root", token=TOKEN,
                              args=[f"--SharingHub.local_projects={local_projects}", *args])

    return start


def test_mlflow_is_loaded_in_the_background_after_start_up(start):
    with start() as server:
        assert not mlflow_mapped(server)  # start-up itself loads nothing
        poll(lambda: LOADED in log(server), "the warm-up", LOAD_BOUND, every=0.2)
        assert mlflow_mapped(server)
        assert "(first request)" not in log(server)  # no request asked for it
        response = first_mlflow_request(server)
        assert response.status_code == 200 and "experiments" in response.json()
        assert log(server).count("loading the embedded MLflow server (") == 1


def test_the_warm_up_can_be_turned_off(start):
    with start("--SharingHub.mlflow_warmup=False") as server:
        poll(lambda: SETTLED_OFF in log(server), "the settle point", 120, every=0.2)
        with pytest.raises(AssertionError, match="timed out"):
            poll(lambda: "loading the embedded MLflow server (" in log(server)
                 or mlflow_mapped(server), "a load", MARGIN, every=0.2)
        # the first request loads it, as before
        response = first_mlflow_request(server)
        assert response.status_code == 200
        assert "loading the embedded MLflow server (first request)" in log(server)
        assert mlflow_mapped(server)


def test_a_request_during_the_load_waits_for_it_and_succeeds(start):
    with start() as server:
        poll(lambda: LOADING in log(server), "the warm-up to start", 120, every=0.02)
        assert LOADED not in log(server)
        sent = datetime.now()
        response = first_mlflow_request(server)
        assert response.status_code == 200, response.text
        assert "experiments" in response.json()
        text = log(server)
        # it was sent while the load was under way, and that one load served it
        assert sent < logged_at(text, LOADED)
        assert text.count("loading the embedded MLflow server (") == 1
        assert "(first request)" not in text


def test_the_server_stops_cleanly_during_the_warm_up(start):
    with start() as server:
        poll(lambda: LOADING in log(server), "the warm-up to start", 120, every=0.02)
        assert LOADED not in log(server)
        server.proc.send_signal(signal.SIGTERM)
        poll(lambda: server.proc.poll() is not None, "the server to exit", 60, every=0.05)
        text = log(server)
        assert server.proc.returncode == 0, text[-3000:]
        # nothing waited for the import to end: no load finished, none failed
        assert LOADED not in text and "was not loaded" not in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]


def test_the_index_reads_again_the_columns_it_held_once_start_up_has_settled(start, tmp_path):
    """The columns the index held (remembered beside it) are read again at the settle point,
    before MLflow's load, which then remembers what it read; off, nothing is read."""
    memory = tmp_path / "root" / "index.sqlite-columns.json"
    memory.parent.mkdir()
    memory.write_text(json.dumps({"held": ["dates", ["no:such", 1]]}))
    with start("--SharingHub.mlflow_warmup=False") as server:
        poll(lambda: SETTLED_OFF in log(server), "the settle point", 120, every=0.2)
        text = log(server)
        assert f"reading 1 {INDEX_WARM}" in text
        assert logged_at(text, INDEX_WARM) <= logged_at(text, SETTLED_OFF)
        # read: remembered again (the property no item has left out)
        poll(lambda: json.loads(memory.read_text()) == {"held": ["dates"]}, "the columns read",
             60, every=0.1)
    memory.write_text(json.dumps({"held": ["dates", ["no:such", 1]]}))
    with start("--SharingHub.mlflow_warmup=False", "--SharingHub.index_warmup=False") as server:
        poll(lambda: SETTLED_OFF in log(server), "the settle point", 120, every=0.2)
        assert INDEX_WARM not in log(server)
        assert json.loads(memory.read_text())["held"] == ["dates", ["no:such", 1]]


LOAD_IN_A_PROCESS = r"""
import json, os, sys
from sharinghub_server.tracking.embedded import EmbeddedMLflow
from werkzeug.test import Client

work = sys.argv[1]
embedded = EmbeddedMLflow(backend_store_uri=f"sqlite:///{work}/mlflow.db",
                          artifacts_destination=f"{work}/artifacts",
                          static_prefix="/x%40y/sharinghub/mlflow")
app = embedded.warm_up().result(timeout=600)
answer = Client(app).get("/x@y/sharinghub/mlflow/api/2.0/mlflow/experiments/search",
                         query_string={"max_results": 1},
                         headers={"Host": "jupyter.example.org"})
print(json.dumps({"status": answer.status_code, "loaded": embedded.loaded,
                  "env": {k: os.environ.get(k) for k in (
                      "_MLFLOW_STATIC_PREFIX", "MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE",
                      "_MLFLOW_SERVER_FILE_STORE", "MLFLOW_TRACKING_URI",
                      "MLFLOW_REGISTRY_URI")}}))
"""


def test_the_load_leaves_no_import_settings_to_the_processes_the_server_starts(tmp_path):
    """Kernels and terminals started after the load inherit the server's environment: an
    ``mlflow server`` run there must not serve under our prefix, nor without its security
    checks. The embedded server itself keeps both (a foreign Host passes, routes prefixed).
    Nor may their MLflow clients find the store's URI in ``MLFLOW_TRACKING_URI`` (MLflow
    exports it when the server opens its stores): they would log and register straight into
    the store, past the server, and no registration would reach the catalog."""
    env = {**os.environ, "_MLFLOW_STATIC_PREFIX": "/the-users-own"}
    for name in ("MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE", "MLFLOW_TRACKING_URI",
                 "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", LOAD_IN_A_PROCESS, str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=LOAD_BOUND, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["status"] == 200 and found["loaded"]
    assert found["env"]["_MLFLOW_STATIC_PREFIX"] == "/the-users-own"  # as it was
    assert found["env"]["MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE"] is None
    assert found["env"]["MLFLOW_TRACKING_URI"] is None
    assert found["env"]["MLFLOW_REGISTRY_URI"] is None
    # (what MLflow reads at each request stays)
    assert found["env"]["_MLFLOW_SERVER_FILE_STORE"] == f"sqlite:///{tmp_path}/mlflow.db"
