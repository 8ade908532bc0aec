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
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..catalog.models import OVERLAY_KEY, apply_overlays
from ..index.query import Compare, Prop, Query
from .api import MlflowApi, MlflowError, Transport, http_transport, wsgi_transport
from .hooks import observed
from .lineage import dataset_inputs
from .registry import RegistrySync, Scope

if TYPE_CHECKING:
    from ..service import CatalogService

log = logging.getLogger(__name__)

AIMODEL_TOPIC = "sharinghub:aimodel"
PROJECT_TAG = "project"
_TRACKING_SUFFIX = "/tracking"
#: ``<project path>/tracking/<what MLflow serves>``: the project is the shortest prefix
#: followed by ``/tracking`` and one of MLflow's own paths (a group may be called "tracking")
_PROJECT_ROOT = re.compile(
    r"^(?P<project>.+?)/tracking(?:/(?:(?:ajax-)?api/|static-files/|get-artifact|"
    r"model-versions/get-artifact|graphql|health|version|server-info|#|$)|$)")
#: an item's experiment name: ``<project name> (<project id>)``
_EXPERIMENT_NAME = re.compile(r"^.+ \((?P<id>[^()]+)\)$")
#: the experiments the sync makes (one per model item) are made in slices of about this many
#: seconds of the tracking thread, each followed by a rest ``_REST`` times as long: made in
#: one go, 40,000 items' experiments took the embedded server ~35 ms of Python each (23
#: minutes), beside every search of the server (searches took 60% longer, some 0.7 s), and
#: held up the registry syncs queued behind them. A client's own lookup makes its item's
#: experiment at once (:meth:`TrackingService.ensure_experiment`), so none waits for the sync.
_SLICE_S = 0.25
_REST = 4.0
#: ...and only once the catalog has not been read for this many seconds: beside a slice (the
#: GIL held by MLflow's Python but for its I/O), a search waits for the GIL at each return
#: from SQLite. With slices alone, searches at 100,000 items still took 60% longer at p50.
_QUIET_S = 1.0


class TrackingService:
    """Background work (registry reads, lineage, experiments) runs on one thread, in order of
    arrival: the registry sync and the API cache need no locks."""

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
        self._closed = threading.Event()
        #: (tracking root, experiment) -> the project it is known to exist tagged with: not
        #: asked again each crawl, nor at each lookup by a client
        self._ensured: dict[tuple[str, str], str] = {}
        #: tracking root -> its experiments the sync has still to make
        self._syncs: dict[str, _ExperimentSync] = {}
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sharinghub-mlflow")
        self.registry = RegistrySync(catalog.store, collection_of=self._collection_of)

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

    def decorate(self, item: dict[str, Any], overlays: dict[str, Any]) -> dict[str, Any]:
        """An item as served: its registered models; ai-model items (and any item with a
        registered model) also link their tracking root and name their experiment."""
        has_models = bool((overlays.get(OVERLAY_KEY) or {}).get("models"))
        if not has_models and item.get("collection") not in self.model_collections:
            return item
        return apply_overlays(item, overlays, self.tracking_href(item["id"]),
                              _experiment(item))

    # --- where requests go ----------------------------------------------------------------

    def base_of(self, path: str) -> str:
        """The tracking root a proxied path belongs to ("" or ``<project>/tracking``)."""
        if not self.per_project:
            return ""
        m = _PROJECT_ROOT.match(path.lstrip("/"))
        return f"{m['project']}{_TRACKING_SUFFIX}" if m else ""

    def upstream_headers(self) -> dict[str, str]:
        """What the external server gets instead of the user's Jupyter credentials."""
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def api(self, base: str = "") -> MlflowApi | None:
        """The REST API of one tracking root (None: the embedded server is not loaded yet)."""
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
        return observed(app, prefix, lambda *event: self.on_request("", *event),
                        lookup=self.ensure_experiment)

    # --- reacting to requests, crawls -----------------------------------------------------

    def on_request(self, base: str, method: str, path: str, body: bytes, status: int,
                   response: bytes) -> None:
        """A watched request went through ``sharinghub/mlflow/`` (see ``hooks.watched``);
        called on the request's thread: only queues work."""
        if status >= 400 or (self.per_project and not base):
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

    def ensure_experiment(self, name: str, base: str = "") -> None:
        """A client looks the experiment ``name`` up (``mlflow.set_experiment`` does, then
        creates it when missing): if it is a catalog item's, it is made now, before MLflow
        answers. Else the lookup could miss it while the background sync makes it, the
        client's creation then fails ("already exists") and MLflow 3's ``set_experiment``
        leaves no experiment active: the run lands in Default. Called on the request's
        thread (the embedded server's middleware; a proxy to a plain server may call it too)."""
        if self.per_project or self._closed.is_set() or (base, name) in self._ensured:
            return
        item = self._item_of_experiment(name)
        api = self.api(base) if item is not None else None
        if api is not None:
            try:
                self._ensure(api, item)
            except MlflowError as exc:  # MLflow answers the client's lookup as it can
                log.warning("sharinghub: experiment %r not ensured: %s", name, exc)

    def refresh_later(self) -> None:
        """A full registry sync (and the experiments), in the background."""
        self._submit(self.refresh)

    def refresh(self) -> None:
        """Every tracking root: experiments ensured (where we own them), registry read. A
        root that fails (unreachable, refused) is logged and the others still synced."""
        for base, scope in self._roots():
            if self._closed.is_set():
                return
            api = self.api(base)
            if api is None:
                return
            try:
                if not self.per_project:
                    self._ensure_experiments(api)
                self.registry.sync_all(api, scope)
            except (MlflowError, OSError) as exc:
                log.warning("sharinghub: MLflow registry at %r not read: %s",
                            base or "/", exc)

    def poll(self, interval: float) -> None:
        """Also refresh every ``interval`` seconds (an external server's registry changes
        without us seeing every write)."""
        def loop() -> None:
            while not self._closed.wait(interval):
                self.refresh_later()

        if interval > 0:
            threading.Thread(target=loop, name="sharinghub-mlflow-poll", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
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
            self.registry.sync_model(api, name, self._scope(base))

    def _sync_root(self, base: str) -> None:
        api = self.api(base)
        if api is not None:
            self.registry.sync_all(api, self._scope(base))

    def _roots(self) -> Iterator[tuple[str, Scope]]:
        if not self.per_project:
            yield "", None
            return
        for item in list(self._model_items()):
            yield f"{item['id']}{_TRACKING_SUFFIX}", {item["id"]}

    def _scope(self, base: str) -> Scope:
        """The items a tracking root may hold: one project's on a per-project server."""
        return {base[: -len(_TRACKING_SUFFIX)]} if self.per_project else None

    def _ensure_experiments(self, api: MlflowApi) -> None:
        """Every model item's experiment, made (or its tag set) where it is not known to be:
        the root's experiments read in one paged listing rather than one lookup per item
        (a restart with 40,000 items), then made in slices (see ``_SLICE_S``)."""
        sync = self._syncs.setdefault(api.base, _ExperimentSync())
        for item in self._model_items():
            name = _experiment(item)
            if self._ensured.get((api.base, name)) != _project_path(item):
                sync.unmade[name] = item
        if not sync.unmade:
            return
        sync.listed = {e.get("name"): e for e in api.experiments()}
        if not sync.resting:
            self._ensure_slice(api)

    def _ensure_slice(self, api: MlflowApi) -> None:
        """Make experiments for ``_SLICE_S`` seconds, then let the tracking thread's other
        work run and rest before the next slice (a timer queues it); while the catalog is
        being read, make none."""
        sync = self._syncs[api.base]
        sync.resting = False
        unmade = sync.unmade
        begun = time.monotonic()
        while unmade and not self._closed.is_set():
            quiet = time.monotonic() - self.catalog.last_read
            if quiet < _QUIET_S:  # (a user is reading the catalog: later)
                self._rest(api, _QUIET_S - quiet)
                return
            name = next(iter(unmade))
            item = unmade.pop(name)
            try:
                self._ensure(api, item, sync.listed)
            except MlflowError as exc:
                log.warning("sharinghub: experiment %r not ensured: %s", name, exc)
            if time.monotonic() - begun >= _SLICE_S:
                break
        if not unmade or self._closed.is_set():
            sync.listed = {}
            return
        self._rest(api, (time.monotonic() - begun) * _REST)

    def _rest(self, api: MlflowApi, seconds: float) -> None:
        """The next slice of ``api``'s experiments in ``seconds`` (a timer queues it)."""
        self._syncs[api.base].resting = True
        timer = threading.Timer(seconds, self._submit, (self._ensure_slice, api))
        timer.daemon = True
        timer.start()

    def _ensure(self, api: MlflowApi, item: dict[str, Any],
                listed: dict[str, dict[str, Any]] | None = None) -> None:
        """The item's experiment exists, tagged with its project. The background sync and a
        client's lookup may make it at the same time: whichever loses finds it made (by the
        other, or by a client) and only checks the tag. ``listed``: the root's experiments
        by name, as read a moment ago (else the experiment is looked up)."""
        name = _experiment(item)
        path = _project_path(item)
        if self._ensured.get((api.base, name)) == path:
            return
        found = listed.get(name) if listed is not None else api.experiment_by_name(name)
        if found is None:
            try:
                api.create_experiment(name, {PROJECT_TAG: path})
                self._ensured[(api.base, name)] = path
                return
            except MlflowError as exc:
                if exc.code != "RESOURCE_ALREADY_EXISTS":
                    raise
            found = api.experiment_by_name(name)
            if found is None:
                return
        tags = {t.get("key"): t.get("value") for t in found.get("tags") or []}
        if tags.get(PROJECT_TAG) != path and found.get("lifecycle_stage") != "deleted":
            api.set_experiment_tag(found["experiment_id"], PROJECT_TAG, path)
        self._ensured[(api.base, name)] = path

    def _item_of_experiment(self, name: str) -> dict[str, Any] | None:
        """The model item whose experiment is called ``name`` (one indexed query: the name
        ends with the project's id), or None."""
        m = _EXPERIMENT_NAME.match(name)
        collections = self.model_collections
        if m is None or not collections:
            return None
        ident: str | int = int(m["id"]) if m["id"].isdigit() else m["id"]
        page = self.catalog.store.search(Query(
            collections=collections, limit=10,
            filter=Compare("=", Prop("sharinghub:id"), ident)))
        return next((item for item in page.items if _experiment(item) == name), None)

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

    def _collection_of(self, item_id: str) -> str | None:
        page = self.catalog.store.search(Query(ids=[item_id], limit=10))
        collections = [i["collection"] for i in page.items]
        return next((c for c in collections if c == "dataset"),
                    collections[0] if collections else None)


@dataclass
class _ExperimentSync:
    """A tracking root's experiments the sync has still to make, between its slices."""

    unmade: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> model item
    #: the root's experiments by name, as listed when the sync started
    listed: dict[str, dict[str, Any]] = field(default_factory=dict)
    resting: bool = False  # the next slice is due after a rest (a timer queues it)


def _project_path(item: dict[str, Any]) -> str:
    """What an item's experiment is tagged with: its project."""
    return item["properties"].get("sharinghub:path", item["id"])


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
