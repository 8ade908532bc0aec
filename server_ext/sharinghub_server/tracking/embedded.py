"""MLflow's tracking server (REST API, artifacts, UI) as a WSGI app inside this process.

MLflow reads its server configuration from environment variables when ``mlflow.server`` is
first imported and fixes its routes then: one embedded server per process, configured once.
Loading takes seconds, so it happens on the first request, in a thread, and every request
that arrives meanwhile waits for the same load.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any
from urllib.parse import unquote


class EmbeddedMLflow:
    def __init__(self, *, backend_store_uri: str, artifacts_destination: str,
                 static_prefix: str, executor: Executor,
                 on_load: Callable[[Any, str], Any] | None = None) -> None:
        """``static_prefix`` is the URL path the server lives under, as the browser sends it
        (percent-encoded, like Jupyter's base_url); WSGI sees it decoded. ``on_load(app,
        prefix)`` returns the app to serve (the tracking service wraps it to watch it)."""
        self.on_load = on_load
        self.backend_store_uri = backend_store_uri
        self.artifacts_destination = artifacts_destination
        self.static_prefix = unquote(static_prefix).rstrip("/")
        self.executor = executor
        self._lock = threading.Lock()
        self._future: Future | None = None

    def wsgi_app(self) -> Future:
        """A future of the Flask app; the first call starts loading it."""
        with self._lock:
            if self._future is None:
                self._future = self.executor.submit(self._load)
            return self._future

    def _load(self):
        backend = self.backend_store_uri
        if backend.startswith("sqlite:///"):
            Path(backend[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        if "://" not in self.artifacts_destination:
            Path(self.artifacts_destination).mkdir(parents=True, exist_ok=True)
        # mlflow.server reads these when first imported (importing even its constants
        # module would import it), so they are spelled out here: see mlflow/server/constants.py
        os.environ.update({
            "_MLFLOW_SERVER_FILE_STORE": backend,
            "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
            "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
            "_MLFLOW_SERVER_ARTIFACT_DESTINATION": self.artifacts_destination,
            "_MLFLOW_STATIC_PREFIX": self.static_prefix,
            # Jupyter authenticates and checks origins; MLflow's own host/CORS checks would
            # refuse the proxied requests
            "MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        })
        from mlflow.server import app

        _open_stores(app, self.static_prefix)
        return self.on_load(app, self.static_prefix) if self.on_load else app


def _open_stores(app: Any, prefix: str) -> None:
    """Open (create, migrate) the tracking and registry stores now, in this one thread:
    MLflow opens them on first use, and two first uses at once race in its migrations."""
    from werkzeug.test import Client

    client = Client(app)
    for path in ("api/2.0/mlflow/experiments/search", "api/2.0/mlflow/registered-models/search"):
        client.get(f"{prefix}/{path}", query_string={"max_results": 1}).close()

