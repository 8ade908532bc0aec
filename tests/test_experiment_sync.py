"""The background sync's experiments (one per model item), on a real ``mlflow server``: made
in slices that let the tracking thread's other work run between them, and after a restart read
in one listing instead of one lookup per item (a catalog of 40,000 models made a fresh server
spend 23 minutes of Python beside its searches, and a restart 40,000 lookups)."""

from __future__ import annotations

import copy
import os
import time

import pytest

N = 12


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("_MLFLOW_", "MLFLOW_SERVER_")) and k != "MLFLOW_TRACKING_URI"}


@pytest.fixture
def catalog(tmp_path):
    from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
    from sharinghub_server.catalog.item import project_items
    from sharinghub_server.index.store import ProjectUpdate, open_store
    from sharinghub_server.service import CatalogService
    from tests.support.corpus import by_path, record_of

    (model,) = [i for i in project_items(record_of(by_path("sharinghub-test/flood-model")),
                                         DEFAULT_CATEGORIES).items
                if i["collection"] == "ai-model"]
    store = open_store(f"sqlite:///{tmp_path / 'index.sqlite'}")
    updates = []
    for k in range(N):
        item = copy.deepcopy(model)
        item["id"] = path = f"sync-test/model-{k}"
        item["properties"].update({"sharinghub:id": 5000 + k, "sharinghub:name": f"model-{k}",
                                   "sharinghub:path": path})
        updates.append(ProjectUpdate(path, {"v": 1}, [item]))
    store.apply("gitlab", updates, [])
    service = CatalogService(store, DEFAULT_CATEGORIES, [])
    yield service
    service.close()


def _experiments(api) -> dict[str, str]:
    """name -> project tag, of the server's experiments made for the test's items."""
    return {e["name"]: {t["key"]: t["value"] for t in e.get("tags") or []}.get("project")
            for e in api.experiments() if e["name"].startswith("model-")}


def test_experiments_are_made_in_slices_and_a_restart_looks_none_up(tmp_path, catalog,
                                                                    monkeypatch):
    from sharinghub_server.tracking import service as tracking_service
    from sharinghub_server.tracking.api import MlflowApi, http_transport

    calls: list[tuple[str, str]] = []

    def counting(url, headers, **kwargs):
        real = http_transport(url, headers, **kwargs)

        def call(method, path, params, body):
            calls.append((method, path.rsplit("/mlflow/", 1)[-1]))
            return real(method, path, params, body)
        return call

    monkeypatch.setattr(tracking_service, "http_transport", counting)
    monkeypatch.setattr(tracking_service, "_SLICE_S", 0.0)  # one experiment per slice
    monkeypatch.setattr(tracking_service, "_REST", 0.0)
    for key in set(os.environ) - set(_clean_env()):
        monkeypatch.delenv(key)  # (inherited by the server below)
    from tests.support.mlflow_servers import MLflowServer

    with MLflowServer(tmp_path / "mlflow") as server:
        api = MlflowApi(http_transport(server.url, {}))
        expected = {f"model-{k} ({5000 + k})": f"sync-test/model-{k}" for k in range(N)}
        tracking = tracking_service.TrackingService(catalog, external_uri=server.url,
                                                    per_project=False)
        try:
            tracking.refresh_later()
            deadline = time.monotonic() + 120
            while _experiments(api) != expected and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _experiments(api) == expected
        finally:
            tracking.close()
        creates = [i for i, c in enumerate(calls) if c == ("POST", "experiments/create")]
        assert len(creates) == N
        # the refresh's registry read came after the first slice, not after the last one
        registry = calls.index(("GET", "registered-models/search"))
        assert creates[0] < registry < creates[-1], calls
        assert ("GET", "experiments/get-by-name") not in calls  # (the listing told)

        # a restart: one listing, no lookup or creation; a changed tag is set back
        (first, *_), wrong = sorted(expected), "someone/else"
        experiment = api.experiment_by_name(first)
        api.set_experiment_tag(experiment["experiment_id"], "project", wrong)
        monkeypatch.setattr(tracking_service, "_SLICE_S", 0.25)
        calls.clear()
        again = tracking_service.TrackingService(catalog, external_uri=server.url,
                                                 per_project=False)
        try:
            again.refresh()
        finally:
            again.close()
        assert _experiments(api) == expected
        asked = [c for c in calls if c[1].startswith("experiments/")]
        assert asked == [("GET", "experiments/search"),
                         ("POST", "experiments/set-experiment-tag")], calls


def test_no_experiment_is_made_while_the_catalog_is_being_read(tmp_path, catalog, monkeypatch):
    """A search a moment ago: the sync lists the experiments and reads the registry, and
    makes none until the catalog has been quiet for ``_QUIET_S`` (beside a slice, searches
    wait for the GIL)."""
    from sharinghub_server.index.query import Query
    from sharinghub_server.tracking import service as tracking_service
    from sharinghub_server.tracking.api import MlflowApi, http_transport

    monkeypatch.setattr(tracking_service, "_QUIET_S", 3600.0)
    for key in set(os.environ) - set(_clean_env()):
        monkeypatch.delenv(key)
    from tests.support.mlflow_servers import MLflowServer

    with MLflowServer(tmp_path / "mlflow") as server:
        api = MlflowApi(http_transport(server.url, {}))
        tracking = tracking_service.TrackingService(catalog, external_uri=server.url,
                                                    per_project=False)
        try:
            assert catalog.search(Query(limit=1)).matched == N
            tracking.refresh()
            assert _experiments(api) == {}
            # a client's own lookup still gets its item's experiment at once
            tracking.ensure_experiment("model-3 (5003)")
            assert _experiments(api) == {"model-3 (5003)": "sync-test/model-3"}
        finally:
            tracking.close()
