"""A user's first ``mlflow.set_experiment(<item's experiment>)`` gets the item's experiment
every time, even while the server's background sync is making that same experiment.

The race is forced, not hoped for: a scenario runs the real embedded MLflow server (its WSGI
app, served over loopback HTTP, wrapped by the real tracking service) and the real MLflow
client in one child process (MLflow configures its server once per process), with gates around
the MLflow app that hold requests until the other side has reached a given point:

* ``client-first`` (what went wrong once in four fresh starts): the client's lookup answers
  first, the background's creation is held until then, and the client's own creation is held
  until the background's has been answered. MLflow 3.17's ``set_experiment`` answers an
  "already exists" by returning the experiment without making it active: the run lands in
  Default (or in the previously active experiment).
* ``background-first``: the background has looked the experiment up, found it missing, and its
  creation is held until the client's lookup has arrived; the client's lookup reaches MLflow
  only once the background's creation has been answered.

The first round is a fresh server (the client's first call loads MLflow, whose load starts the
background sync); the next ones are items that a crawl has just indexed (the sync after a
crawl). Each round checks where the run landed and the experiment's project tag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROUNDS = 8
#: a gate holds a request at most this long (a deadlock shows as "timeout", not a hang)
GATE_TIMEOUT = 20.0
PROJECT_FOLDER = "local"
README = """---
title: Race model {i}
topics: [sharinghub:aimodel]
---
# Race model {i}
"""


def _clean_env() -> dict[str, str]:
    """This environment without what an MLflow server loaded in this process left in it
    (its configuration, ``MLFLOW_TRACKING_URI`` of its store): children start clean."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("_MLFLOW_", "MLFLOW_SERVER_")) and k != "MLFLOW_TRACKING_URI"}


def test_the_first_set_experiment_always_gets_the_items_experiment(tmp_path):
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "tests.test_experiment_race", str(tmp_path)],
                          cwd=root, capture_output=True, text=True, timeout=600,
                          env={**_clean_env(), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    rounds = [json.loads(line[len("ROUND "):]) for line in proc.stdout.splitlines()
              if line.startswith("ROUND ")]
    assert proc.returncode == 0 and len(rounds) == ROUNDS, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    for r in rounds:
        print(json.dumps(r))
    wrong = [r for r in rounds if not r["ok"]]
    assert not wrong, "\n".join(json.dumps(r) for r in wrong)
    # each ordering was forced as described
    assert {r["ordering"] for r in rounds} == {"client-first", "background-first"}
    for r in rounds:
        log = r["requests"]
        if r["ordering"] == "background-first":  # the background was mid-creation
            assert any(e.startswith("background create") for e in log), r
        else:  # no creation by the background reached MLflow before the client's lookup
            first_get = log.index(next(e for e in log if e.startswith("client get")))
            assert not any(e.startswith("background create") for e in log[:first_get]), r


def test_a_lookup_by_name_makes_the_items_experiment_first(tmp_path, monkeypatch):
    """What the lookup hook does, on a real ``mlflow server`` (a plain external one): a
    GitLab item's experiment (``<name> (<numeric id>)``) exists, tagged, before the lookup is
    answered; names that are no item's are left to MLflow."""
    from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
    from sharinghub_server.catalog.item import project_items
    from sharinghub_server.index.store import ProjectUpdate, open_store
    from sharinghub_server.service import CatalogService
    from sharinghub_server.tracking.api import MlflowApi, http_transport
    from sharinghub_server.tracking.hooks import experiment_lookup
    from sharinghub_server.tracking.service import TrackingService
    from tests.support.corpus import by_path, record_of
    from tests.support.mlflow_servers import MLflowServer

    assert experiment_lookup("GET", "api/2.0/mlflow/experiments/get-by-name",
                             "experiment_name=flood-model+%281%29") == "flood-model (1)"
    assert experiment_lookup("GET", "ajax-api/2.0/mlflow/experiments/get-by-name",
                             "experiment_name=a") == "a"
    assert experiment_lookup("POST", "api/2.0/mlflow/experiments/create", "") is None
    assert experiment_lookup("GET", "api/2.0/mlflow/experiments/get", "experiment_id=1") is None

    (item,) = [i for i in project_items(record_of(by_path("sharinghub-test/flood-model")),
                                        DEFAULT_CATEGORIES).items
               if i["collection"] == "ai-model"]
    store = open_store(f"sqlite:///{tmp_path / 'index.sqlite'}")
    store.apply("gitlab", [ProjectUpdate(item["id"], {"v": 1}, [item])], [])
    catalog = CatalogService(store, DEFAULT_CATEGORIES, [])
    for key in set(os.environ) - set(_clean_env()):
        monkeypatch.delenv(key)  # (inherited by the server below)
    with MLflowServer(tmp_path / "mlflow") as server:
        tracking = TrackingService(catalog, external_uri=server.url, per_project=False)
        try:
            api = MlflowApi(http_transport(server.url, {}))
            props = item["properties"]
            name = f"{props.get('sharinghub:name', 'flood-model')} ({props['sharinghub:id']})"
            assert isinstance(props["sharinghub:id"], int) and api.experiment_by_name(name) is None
            tracking.ensure_experiment(name)
            made = api.experiment_by_name(name)
            assert made is not None
            assert {t["key"]: t["value"] for t in made["tags"]}["project"] == (
                props["sharinghub:path"])
            # a second lookup asks nothing more; a name that is no item's is left alone
            tracking.ensure_experiment(name)
            for other in ("floods", f"other ({props['sharinghub:id']})", "x (no/such)"):
                tracking.ensure_experiment(other)
                assert api.experiment_by_name(other) is None
        finally:
            tracking.close()
            catalog.close()


# --- the scenario (child process) ---------------------------------------------------------


class Race:
    """The gates of one round, for one experiment name."""

    def __init__(self, name: str, ordering: str) -> None:
        self.name = name
        self.ordering = ordering
        self.client_get_arrived = threading.Event()
        self.client_get_answered = threading.Event()
        self.bg_create_waiting = threading.Event()
        self.bg_create_answered = threading.Event()
        self.log: list[str] = []
        self.timeouts: list[str] = []

    def wait(self, event: threading.Event, what: str) -> None:
        if not event.wait(GATE_TIMEOUT):
            self.timeouts.append(what)


class Gates:
    """WSGI middlewares: ``outer`` (what the MLflow client's HTTP requests go through
    first) marks them; ``inner`` (right around MLflow's app, seen by every caller: the
    client, the background sync, the lookup hook) holds and records them."""

    def __init__(self) -> None:
        self.race: Race | None = None

    @staticmethod
    def _op(environ: dict, name: str) -> str | None:
        path = environ.get("PATH_INFO", "")
        if path.endswith("/experiments/get-by-name"):
            from urllib.parse import parse_qs

            asked = parse_qs(environ.get("QUERY_STRING", "")).get("experiment_name", [""])
            return "get" if asked[-1] == name else None
        if path.endswith("/experiments/create") and environ.get("REQUEST_METHOD") == "POST":
            import io

            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            try:
                asked = json.loads(body or b"{}").get("name")
            except ValueError:
                asked = None
            return "create" if asked == name else None
        return None

    def outer(self, app: Any) -> Any:
        def middleware(environ: dict, start_response: Any) -> Any:
            environ["race.client"] = True
            race = self.race
            if race is not None and self._op(environ, race.name) == "get":
                race.client_get_arrived.set()
            return app(environ, start_response)

        return middleware

    def inner(self, app: Any) -> Any:
        def middleware(environ: dict, start_response: Any) -> Any:
            race = self.race
            op = self._op(environ, race.name) if race is not None else None
            if op is None:
                return app(environ, start_response)
            if environ.get("race.client"):
                actor = "client"
            elif threading.current_thread().name.startswith("sharinghub-mlflow_"):  # its one thread
                actor = "background"
            else:
                actor = "server"  # the tracking service, on the client's request thread
            if race.ordering == "client-first":
                if (actor, op) == ("background", "create"):
                    race.wait(race.client_get_answered, "background create")
                elif (actor, op) == ("client", "create"):
                    race.wait(race.bg_create_answered, "client create")
            elif (actor, op) == ("background", "create"):
                race.bg_create_waiting.set()
                race.wait(race.client_get_arrived, "background create")
            elif (actor, op) == ("client", "get"):
                race.wait(race.bg_create_answered, "client get")
            status: list[str] = []

            def start(s: str, headers: list, exc_info: Any = None) -> Any:
                status.append(s.split(" ", 1)[0])
                return start_response(s, headers, exc_info)

            chunks = list(app(environ, start))
            code = status[0] if status else "?"
            if code == "400":
                code += " " + str(json.loads(b"".join(chunks) or b"{}").get("message"))[:300]
            race.log.append(f"{actor} {op} {code}")
            if (actor, op) == ("client", "get"):
                race.client_get_answered.set()
            elif (actor, op) == ("background", "create"):
                race.bg_create_answered.set()
            return chunks

        return middleware


def _wait(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _scenario(workdir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from werkzeug.serving import make_server

    from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
    from sharinghub_server.index.query import Query
    from sharinghub_server.index.store import open_store
    from sharinghub_server.service import CatalogService
    from sharinghub_server.sources.local import LocalSource
    from sharinghub_server.tracking.embedded import EmbeddedMLflow
    from sharinghub_server.tracking.service import TrackingService

    projects = workdir / PROJECT_FOLDER
    projects.mkdir(parents=True)
    store = open_store(f"sqlite:///{workdir / 'index.sqlite'}")
    service = CatalogService(store, DEFAULT_CATEGORIES, [LocalSource(projects)],
                             crawl_interval=0)
    tracking = TrackingService(service)
    service.scheduler.after_crawl.append(tracking.refresh_later)  # as the extension does
    gates = Gates()
    executor = ThreadPoolExecutor(4, thread_name_prefix="sharinghub")
    embedded = EmbeddedMLflow(
        backend_store_uri=f"sqlite:///{workdir / 'mlflow' / 'mlflow.db'}",
        artifacts_destination=str(workdir / "mlflow" / "artifacts"),
        static_prefix="/sharinghub/mlflow", executor=executor,
        on_load=lambda app, prefix: tracking.attach(gates.inner(app), prefix))

    def served(environ: dict, start_response: Any) -> Any:
        # the first request waits for the load, as sharinghub/mlflow/ does in Jupyter
        return gates.outer(embedded.wsgi_app().result(timeout=300))(environ, start_response)

    http = make_server("127.0.0.1", 0, served, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{http.server_port}/sharinghub/mlflow"

    import mlflow

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()

    def add_project(i: int) -> tuple[str, str]:
        """A new ai-model project, crawled (its experiment made by the sync that follows)."""
        (projects / f"model-{i}").mkdir()
        (projects / f"model-{i}" / "README.md").write_text(README.format(i=i))
        item_id = f"{PROJECT_FOLDER}/model-{i}"
        return item_id, f"model-{i} ({item_id})"

    def indexed(item_id: str) -> bool:
        return bool(store.search(Query(ids=[item_id], limit=1)).items)

    try:
        for i in range(ROUNDS):
            ordering = "client-first" if i % 2 == 0 else "background-first"
            item_id, name = add_project(i)
            race = Race(name, ordering)
            gates.race = race
            service.scheduler.trigger()
            _wait(lambda item_id=item_id: indexed(item_id), "the crawl")
            if ordering == "background-first":  # (not round 0: MLflow is not loaded yet)
                race.wait(race.bg_create_waiting, "the background's creation")
            result: dict[str, Any] = {"round": i, "ordering": ordering, "experiment": name}
            try:
                experiment = mlflow.set_experiment(name)
                # MLflow's server points this process's MLflow at its backend store when it
                # opens it (round 0, during the call): a kernel is another process
                mlflow.set_tracking_uri(uri)
                with mlflow.start_run() as run:
                    mlflow.log_param("round", i)
                landed = client.get_experiment(run.info.experiment_id)
                result["set_experiment"] = experiment.name
                result["run_landed_in"] = landed.name
                tagged = _wait(lambda name=name, item_id=item_id: (
                    client.get_experiment_by_name(name).tags.get("project") == item_id),
                    "the project tag", 10)
                result["ok"] = experiment.name == name and landed.name == name and tagged
            except Exception as exc:  # recorded: the parent reports every round
                result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                result["ok"] = False
            _wait(lambda: not service.scheduler.running, "the crawl's end")
            result["requests"] = list(race.log)
            result["timeouts"] = list(race.timeouts)
            result["ok"] = result["ok"] and not race.timeouts
            print("ROUND " + json.dumps(result), flush=True)
    finally:
        gates.race = None
        http.shutdown()
        tracking.close()
        service.close()
        executor.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    _scenario(Path(sys.argv[1]))
