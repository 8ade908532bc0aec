"""MLflow's REST API, the few calls the catalog needs, over two transports: HTTP to an external
server, or the embedded server's WSGI app called in this process (no network, no token).

Plain REST rather than ``mlflow.MlflowClient``: the external mode then imports no mlflow at
all, and the same code reads both kinds of server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

#: (method, path below the tracking root, query params, JSON body) -> (status, body bytes)
Transport = Callable[[str, str, dict[str, Any] | None, Any], tuple[int, bytes]]


class MlflowError(RuntimeError):
    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(f"MLflow answered {status}: {message}")
        self.status = status
        self.code = code


class MlflowApi:
    def __init__(self, transport: Transport, base: str = "") -> None:
        """``base``: where this tracking root lives under ``sharinghub/mlflow/`` ("" or
        ``<project path>/tracking``); hrefs to its artifacts are built from it."""
        self._transport = transport
        self.base = base.strip("/")

    def call(self, method: str, path: str, params: dict[str, Any] | None = None,
             body: Any = None) -> dict[str, Any]:
        status, data = self._transport(method, path, params, body)
        try:
            doc = json.loads(data or b"{}")
        except ValueError:
            doc = {}
        if status >= 400:
            raise MlflowError(status, str(doc.get("message") or data[:200]),
                              str(doc.get("error_code") or ""))
        return doc if isinstance(doc, dict) else {}

    def raw(self, path: str) -> bytes | None:
        status, data = self._transport("GET", path, None, None)
        return data if status == 200 else None

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every entry of a paged search (``page_token`` / ``next_page_token``)."""
        token = None
        while True:
            page = self.call("GET", path, {**params, "max_results": 1000,
                                           **({"page_token": token} if token else {})})
            yield from page.get(key, [])
            token = page.get("next_page_token")
            if not token:
                return

    def _get(self, path: str, key: str, params: dict[str, Any], *,
             missing_only: bool = True) -> Any:
        """``key`` of a GET's answer; None when the resource does not exist (or, with
        ``missing_only=False``, on any MLflow error)."""
        try:
            return self.call("GET", path, params).get(key)
        except MlflowError as exc:
            if not missing_only or exc.code == "RESOURCE_DOES_NOT_EXIST" or exc.status == 404:
                return None
            raise

    # --- registry -------------------------------------------------------------------------

    def registered_models(self) -> Iterator[dict[str, Any]]:
        return self._pages("api/2.0/mlflow/registered-models/search", "registered_models", {})

    def registered_model(self, name: str) -> dict[str, Any] | None:
        return self._get("api/2.0/mlflow/registered-models/get", "registered_model",
                         {"name": name})

    def model_versions(self, name: str) -> list[dict[str, Any]]:
        escaped = name.replace("'", "\\'")
        return list(self._pages("api/2.0/mlflow/model-versions/search", "model_versions",
                                {"filter": f"name='{escaped}'"}))

    def download_uri(self, name: str, version: str) -> str | None:
        return self._get("api/2.0/mlflow/model-versions/get-download-uri", "artifact_uri",
                         {"name": name, "version": version}, missing_only=False)

    def run(self, run_id: str) -> dict[str, Any] | None:
        return self._get("api/2.0/mlflow/runs/get", "run", {"run_id": run_id},
                         missing_only=False)

    # --- experiments and runs -------------------------------------------------------------

    def experiments(self) -> Iterator[dict[str, Any]]:
        """Every experiment, deleted ones too (their names are taken)."""
        return self._pages("api/2.0/mlflow/experiments/search", "experiments",
                           {"view_type": "ALL"})

    def experiment_by_name(self, name: str) -> dict[str, Any] | None:
        return self._get("api/2.0/mlflow/experiments/get-by-name", "experiment",
                         {"experiment_name": name})

    def create_experiment(self, name: str, tags: dict[str, str]) -> str:
        doc = self.call("POST", "api/2.0/mlflow/experiments/create", None, {
            "name": name, "tags": [{"key": k, "value": v} for k, v in tags.items()]})
        return str(doc.get("experiment_id"))

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self.call("POST", "api/2.0/mlflow/experiments/set-experiment-tag", None,
                  {"experiment_id": experiment_id, "key": key, "value": value})

    def log_inputs(self, run_id: str, datasets: list[dict[str, Any]]) -> None:
        self.call("POST", "api/2.0/mlflow/runs/log-inputs", None,
                  {"run_id": run_id, "datasets": datasets})


def http_transport(base_url: str, headers: dict[str, str], timeout: float = 30) -> Transport:
    """Requests to an external server; ``headers`` carry its credentials."""
    import requests

    session = requests.Session()
    session.headers.update(headers)
    root = base_url.rstrip("/") + "/"

    def call(method: str, path: str, params: dict[str, Any] | None,
             body: Any) -> tuple[int, bytes]:
        r = session.request(method, root + path.lstrip("/"), params=params,
                            json=body, timeout=timeout)
        return r.status_code, r.content

    return call


def wsgi_transport(app: Any, prefix: str) -> Transport:
    """Calls into the embedded server's WSGI app; ``prefix`` is its static prefix."""
    from werkzeug.test import Client

    client = Client(app, use_cookies=False)  # no state: the calls come from several threads
    root = prefix.rstrip("/") + "/"

    def call(method: str, path: str, params: dict[str, Any] | None,
             body: Any) -> tuple[int, bytes]:
        r = client.open(root + path.lstrip("/"), method=method, query_string=params,
                        json=body)
        try:
            return r.status_code, r.get_data()
        finally:
            r.close()

    return call
