"""MLflow glue for the catalog: where an item's runs go, its experiment, registry → overlays,
lineage. Core code (no Jupyter import); the extension owns one and wires it to the embedded
server or to the external-mode proxy.

Which MLflow server: the embedded one (``mlflow_tracking_uri`` empty), reached through
``sharinghub/mlflow/``; or an external one proxied there. An MLflow SharingHub server serves each
project at ``<uri>/<project path>/tracking/`` and creates its experiments itself; a plain
MLflow server is one tracking root for every item.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..catalog.models import apply_models
from ..index.query import Query
from .api import MlflowApi, Transport, http_transport, wsgi_transport
from .hooks import observed
from .lineage import dataset_inputs
from .registry import RegistrySync

if TYPE_CHECKING:
    from ..service import CatalogService

log = logging.getLogger(__name__)

AIMODEL_TOPIC = "sharinghub:aimodel"
PROJECT_TAG = "project"
_TRACKING_SUFFIX = "/tracking"


class TrackingService:
    def __init__(self, catalog: CatalogService, *, external_uri: str = "", token: str = "",
                 per_project: bool = True) -> None:
        """``external_uri`` empty: the embedded server (attach it with :meth:`attach`);
        ``token``: the GitLab token an external server gets as ``Authorization: Bearer``;
        ``per_project``: the external server is an MLflow SharingHub server."""
        self.catalog = catalog
        self.external_uri = external_uri.rstrip("/")
        self.per_project = bool(external_uri) and per_project
        self._token = token
        self._apis: dict[str, MlflowApi] = {}
        self._embedded: Transport | None = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sharinghub-mlflow")
        self.registry = RegistrySync(catalog.store, tracking_href=self.tracking_href,
                                     experiment_name=self._experiment_of,
                                     collection_of=self._collection_of)

    # --- what the catalog shows -----------------------------------------------------------

    @property
    def model_collections(self) -> list[str]:
        return [c.id for c in self.catalog.categories if c.gitlab_topic == AIMODEL_TOPIC]

    def tracking_href(self, item_id: str) -> str:
        """The item's tracking root, relative to the API root (``.../sharinghub/api/``)."""
        if self.per_project:
            return f"../mlflow/{quote(item_id)}{_TRACKING_SUFFIX}/"
        return "../mlflow/"

    @staticmethod
    def experiment_name(name: str, project_id: Any) -> str:
        """MLflow SharingHub's convention: ``<project name> (<GitLab project id>)``."""
        return f"{name} ({project_id})"

    def decorate(self, item: dict[str, Any]) -> dict[str, Any]:
        """Every ai-model item links its tracking root and names its experiment."""
        if item.get("collection") not in self.model_collections or any(
                link.get("rel") == "mlflow:tracking-uri" for link in item.get("links", [])):
            return item
        return apply_models(item, [], self.tracking_href(item["id"]), _experiment(item))

    # --- where requests go ----------------------------------------------------------------

    def base_of(self, path: str) -> str:
        """The tracking root a proxied path belongs to ("" or ``<project>/tracking``)."""
        if not self.per_project:
            return ""
        head, sep, _ = path.lstrip("/").partition(_TRACKING_SUFFIX.lstrip("/") + "/")
        return head + _TRACKING_SUFFIX.lstrip("/") if sep else ""

    def upstream_headers(self) -> dict[str, str]:
        """What the external server gets instead of the user's Jupyter credentials."""
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def api(self, base: str = "") -> MlflowApi | None:
        """The REST API of one tracking root (None: the embedded server is not loaded yet)."""
        with self._lock:
            if base not in self._apis:
                if self.external_uri:
                    url = f"{self.external_uri}/{base}" if base else self.external_uri
                    transport = http_transport(url, self.upstream_headers())
                elif self._embedded is not None:
                    transport = self._embedded
                else:
                    return None
                self._apis[base] = MlflowApi(transport, base)
            return self._apis[base]

    def attach(self, app: Any, prefix: str) -> Any:
        """The embedded server's app is loaded: read the registry through it, ensure the
        experiments; returns the app to serve, reporting its requests."""
        self._embedded = wsgi_transport(app, prefix)
        self.refresh_later()
        return observed(app, prefix, lambda *event: self.on_request("", *event))

    # --- reacting to requests, crawls -----------------------------------------------------

    def on_request(self, base: str, method: str, path: str, body: bytes, status: int,
                   response: bytes) -> None:
        """A watched request went through ``sharinghub/mlflow/`` (see ``hooks.watched``)."""
        if status >= 400:
            return
        request = _json(body)
        if path.endswith("runs/create"):
            datasets = dataset_inputs(request.get("tags"))
            run_id = (_json(response).get("run") or {}).get("info", {}).get("run_id")
            if datasets and run_id:
                self._submit(self._log_inputs, base, run_id, datasets)
            return
        names = [n for n in (request.get("name"), request.get("new_name"))
                 if isinstance(n, str) and n]
        for name in names:
            self._submit(self._sync_model, base, name)
        if not names:
            self._submit(self._sync_root, base)

    def refresh_later(self) -> None:
        """A full registry sync (and the experiments), in the background."""
        self._submit(self.refresh)

    def refresh(self) -> None:
        """Every tracking root: experiments ensured (where we own them), registry read."""
        for base, items in self._roots():
            api = self.api(base)
            if api is None:
                return
            if not self.per_project:
                self._ensure_experiments(api)
            self.registry.sync_all(api, items)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- work, on the one tracking thread (in order of arrival) ---------------------------

    def _submit(self, fn, *args: Any) -> None:
        def guarded() -> None:
            try:
                fn(*args)
            except Exception:  # a failed sync must not stop the next ones
                log.exception("sharinghub: MLflow %s failed", getattr(fn, "__name__", fn))

        with contextlib.suppress(RuntimeError):  # shut down
            self._executor.submit(guarded)

    def _log_inputs(self, base: str, run_id: str, datasets: list[dict]) -> None:
        api = self.api(base)
        if api is not None:
            api.log_inputs(run_id, datasets)

    def _sync_model(self, base: str, name: str) -> None:
        api = self.api(base)
        if api is not None:
            self.registry.sync_model(api, name)

    def _sync_root(self, base: str) -> None:
        api = self.api(base)
        if api is not None:
            self.registry.sync_all(api, self._items_of(base))

    def _roots(self) -> Iterator[tuple[str, set[str] | None]]:
        if not self.per_project:
            yield "", None
            return
        for item in self._model_items():
            yield f"{item['id']}{_TRACKING_SUFFIX}", {item["id"]}

    def _items_of(self, base: str) -> set[str] | None:
        return {base[: -len(_TRACKING_SUFFIX)]} if base else None

    def _ensure_experiments(self, api: MlflowApi) -> None:
        for item in self._model_items():
            name = _experiment(item)
            path = item["properties"].get("sharinghub:path", item["id"])
            found = api.experiment_by_name(name)
            if found is None:
                api.create_experiment(name, {PROJECT_TAG: path})
                continue
            tags = {t.get("key"): t.get("value") for t in found.get("tags") or []}
            if tags.get(PROJECT_TAG) != path and found.get("lifecycle_stage") != "deleted":
                api.set_experiment_tag(found["experiment_id"], PROJECT_TAG, path)

    def _model_items(self) -> Iterator[dict[str, Any]]:
        collections = self.model_collections
        if not collections:
            return
        seen: set[str] = set()
        token = None
        while True:
            page = self.catalog.store.search(Query(collections=collections, limit=1000,
                                                   token=token))
            for item in page.items:
                if item["id"] not in seen:
                    seen.add(item["id"])
                    yield item
            token = page.next_token
            if not token:
                return

    def _experiment_of(self, item_id: str) -> str | None:
        found = self.catalog.store.project(item_id)
        if found is None:
            return None
        record = found[1].get("record") or {}
        pid = record.get("gitlab_id") if record.get("gitlab_id") is not None else item_id
        return self.experiment_name(record.get("name") or item_id.rsplit("/", 1)[-1], pid)

    def _collection_of(self, item_id: str) -> str | None:
        page = self.catalog.store.search(Query(ids=[item_id], limit=10))
        collections = [i["collection"] for i in page.items]
        return next((c for c in collections if c == "dataset"),
                    collections[0] if collections else None)


def _experiment(item: dict[str, Any]) -> str:
    props = item.get("properties", {})
    name = props.get("sharinghub:name") or item["id"].rsplit("/", 1)[-1]
    return TrackingService.experiment_name(name, props.get("sharinghub:id", item["id"]))


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
