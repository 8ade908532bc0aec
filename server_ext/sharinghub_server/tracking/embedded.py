"""MLflow's tracking server (REST API, artifacts, UI) as a WSGI app inside this process.

MLflow reads its server configuration from environment variables when ``mlflow.server`` is
first imported and fixes its routes then: one embedded server per process, configured once.
Loading takes seconds (6-12 s on 2 cores), so it happens in the background: on the first
request, or before it (:meth:`EmbeddedMLflow.warm_up`, once the server has settled); every
request that arrives meanwhile waits for the same load.

The load runs on a daemon thread of its own, not on a pool: a server stopped during a load
exits at once instead of waiting for the import to finish (pools' threads are joined at exit).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any
from urllib.parse import unquote

log = logging.getLogger(__name__)


#: MLflow's server settings read only when ``mlflow.server`` is imported (routes, middleware)
_IMPORT_ONLY = ("_MLFLOW_STATIC_PREFIX", "MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE")


class Stopped(RuntimeError):
    """The server stopped before the embedded MLflow server was loaded."""


class EmbeddedMLflow:
    def __init__(self, *, backend_store_uri: str, artifacts_destination: str,
                 static_prefix: str, executor: Executor | None = None,
                 on_load: Callable[[Any, str], Any] | None = None,
                 logger: logging.Logger | logging.LoggerAdapter | None = None) -> None:
        """``static_prefix`` is the URL path the server lives under, as the browser sends it
        (percent-encoded, like Jupyter's base_url); WSGI sees it decoded. ``on_load(app,
        prefix)`` returns the app to serve (the tracking service wraps it to watch it).
        ``executor`` is accepted for older callers and not used: the load has its own
        thread. ``logger``: where the load is reported (the Jupyter server's log)."""
        self.on_load = on_load
        self.log = logger or log
        self.backend_store_uri = backend_store_uri
        self.artifacts_destination = artifacts_destination
        self.static_prefix = unquote(static_prefix).rstrip("/")
        self._lock = threading.Lock()
        self._future: Future | None = None
        self._closed = False

    def wsgi_app(self) -> Future:
        """A future of the Flask app; the first call starts loading it."""
        return self._start("first request")

    def warm_up(self) -> Future:
        """Load the app now, in the background, if nothing has asked for it yet."""
        return self._start("warm-up")

    @property
    def loaded(self) -> bool:
        """Whether the app is loaded (and did not fail to)."""
        future = self._future
        return future is not None and future.done() and future.exception() is None

    def close(self) -> None:
        """The server stops: a load not started yet never starts, one under way does not
        call ``on_load`` (the tracking service is closed)."""
        with self._lock:
            self._closed = True
            if self._future is None:
                self._future = Future()
                self._future.set_exception(Stopped("the server is stopping"))

    def _start(self, why: str) -> Future:
        with self._lock:
            if self._future is None:
                self._future = Future()
                threading.Thread(target=self._run, args=(self._future, why), daemon=True,
                                 name="sharinghub-mlflow-load").start()
            return self._future

    def _run(self, future: Future, why: str) -> None:
        if not future.set_running_or_notify_cancel():
            return
        started = time.perf_counter()
        self.log.info("sharinghub: loading the embedded MLflow server (%s)", why)
        try:
            app = self._load()
        except Stopped as exc:
            self.log.info("sharinghub: the embedded MLflow server was not loaded: %s", exc)
            future.set_exception(exc)
        except BaseException as exc:
            self.log.exception("sharinghub: the embedded MLflow server failed to load")
            with self._lock:
                if self._future is future and not self._closed:
                    self._future = None  # (the requests waiting fail; the next one retries)
            future.set_exception(exc)
        else:
            self.log.info("sharinghub: embedded MLflow server loaded in %.1f s (%s)",
                     time.perf_counter() - started, why)
            future.set_result(app)

    def _load(self) -> Any:
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
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        })
        # read only by the import (the routes, the middleware): not left to the processes
        # this server starts later (kernels, terminals), where an `mlflow server` would serve
        # under our prefix, without its security checks
        with _environment_kept(_IMPORT_ONLY):
            os.environ.update({
                "_MLFLOW_STATIC_PREFIX": self.static_prefix,
                # Jupyter authenticates and checks origins; MLflow's own host/CORS checks
                # would refuse the proxied requests
                "MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE": "true",
            })
            from mlflow.server import app

        if self._closed:  # (stopped during the import: touch no store, no closed service)
            raise Stopped("the server stopped during the load")
        # MLflow exports the store's URIs when it opens the stores: left there, every kernel
        # started after the load (the warm-up comes before most) would inherit
        # MLFLOW_TRACKING_URI=sqlite:///... and log and register straight into the store,
        # past this server, so that no registration reached the catalog. (MLflow's globals,
        # which the server in this process uses, keep them.)
        with _environment_kept(_CLIENT_URIS):
            _open_stores(app, self.static_prefix)
        return self.on_load(app, self.static_prefix) if self.on_load else app


#: what ``mlflow.set_tracking_uri``/``set_registry_uri`` export "so that subprocesses inherit
#: it" (MLflow's server calls them with the backend store when it opens its stores)
_CLIENT_URIS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextlib.contextmanager
def _environment_kept(names: tuple[str, ...]) -> Iterator[None]:
    """This process's environment variables ``names`` as they were before, afterwards."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _open_stores(app: Any, prefix: str) -> None:
    """Open (create, migrate) the tracking and registry stores now, in this one thread:
    MLflow opens them on first use, and two first uses at once race in its migrations."""
    from werkzeug.test import Client

    client = Client(app)
    for path in ("api/2.0/mlflow/experiments/search", "api/2.0/mlflow/registered-models/search"):
        client.get(f"{prefix}/{path}", query_string={"max_results": 1}).close()

