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

    # --- registry -------------------------------------------------------------------------

    def registered_models(self) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            page = self.call("GET", "api/2.0/mlflow/registered-models/search",
                             {"max_results": 1000, **({"page_token": token} if token else {})})
            yield from page.get("registered_models", [])
            token = page.get("next_page_token")
            if not token:
                return

    def registered_model(self, name: str) -> dict[str, Any] | None:
        try:
            return self.call("GET", "api/2.0/mlflow/registered-models/get",
                             {"name": name}).get("registered_model")
        except MlflowError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST" or exc.status == 404:
                return None
            raise

    def model_versions(self, name: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = None
        escaped = name.replace("'", "\\'")
        while True:
            page = self.call("GET", "api/2.0/mlflow/model-versions/search",
                             {"filter": f"name='{escaped}'", "max_results": 1000,
                              **({"page_token": token} if token else {})})
            out += page.get("model_versions", [])
            token = page.get("next_page_token")
            if not token:
                return out

    def download_uri(self, name: str, version: str) -> str | None:
        try:
            return self.call("GET", "api/2.0/mlflow/model-versions/get-download-uri",
                             {"name": name, "version": version}).get("artifact_uri")
        except MlflowError:
            return None

    def run(self, run_id: str) -> dict[str, Any] | None:
        try:
            return self.call("GET", "api/2.0/mlflow/runs/get", {"run_id": run_id}).get("run")
        except MlflowError:
            return None

    # --- experiments and runs -------------------------------------------------------------

    def experiment_by_name(self, name: str) -> dict[str, Any] | None:
        try:
            return self.call("GET", "api/2.0/mlflow/experiments/get-by-name",
                             {"experiment_name": name}).get("experiment")
        except MlflowError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST" or exc.status == 404:
                return None
            raise

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

    client = Client(app)
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
