"""The model registry → catalog: registered versions tagged ``sharinghub:item=<item id>`` (on
the registered model or on a version) become an overlay of that item in the index.

Two ways in, both ending in :meth:`RegistrySync.sync_model` / :meth:`RegistrySync.sync_all`:
every registry write that passes through ``sharinghub/mlflow/`` (MLflow UI, plain client, our
helpers) triggers a sync of that model at once; a full sync runs when the embedded server
loads and after every crawl, for writes made elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import yaml

from ..catalog.models import OVERLAY_KEY, ModelVersion, model_file, overlay, signature_of
from ..index.store import IndexStore
from .api import MlflowApi, MlflowError
from .lineage import DATASET_SOURCE_TYPE, DATASETS_TAG

log = logging.getLogger(__name__)

ITEM_TAG = "sharinghub:item"


class RegistrySync:
    def __init__(self, store: IndexStore, *, tracking_href: Callable[[str], str],
                 experiment_name: Callable[[str], str | None],
                 collection_of: Callable[[str], str | None]) -> None:
        """``tracking_href(item)``: the item's tracking root (href relative to the API root);
        ``experiment_name(item)``; ``collection_of(item)``: a dataset item's collection."""
        self.store = store
        self.tracking_href = tracking_href
        self.experiment_name = experiment_name
        self.collection_of = collection_of
        self._lock = threading.Lock()
        #: (base, name, version, created) -> the version's immutable details
        self._details: dict[tuple, ModelVersion] = {}

    # --- entry points ---------------------------------------------------------------------

    def sync_model(self, api: MlflowApi, name: str) -> list[str]:
        """Re-read one registered model; returns the item ids whose overlay changed."""
        with self._lock:
            model = api.registered_model(name)
            versions = self._versions(api, model) if model else []
            current = self.store.overlays()
            touched = {item for item, ov in current.items()
                       if any(m["name"] == name and _base(m) == api.base
                              for m in ov.get(OVERLAY_KEY, {}).get("models", []))}
            by_item: dict[str, list[ModelVersion]] = {}
            for item, version in versions:
                by_item.setdefault(item, []).append(version)
            changed = []
            for item in touched | set(by_item):
                kept = [ModelVersion.from_json(m) for m in
                        current.get(item, {}).get(OVERLAY_KEY, {}).get("models", [])
                        if not (m["name"] == name and _base(m) == api.base)]
                if self._write(item, kept + by_item.get(item, [])):
                    changed.append(item)
            return changed

    def sync_all(self, api: MlflowApi, items: set[str] | None = None) -> list[str]:
        """Re-read every registered model of this tracking root; ``items``: the only items
        this root may hold (a per-project server), else any."""
        with self._lock:
            by_item: dict[str, list[ModelVersion]] = {}
            for model in api.registered_models():
                for item, version in self._versions(api, model):
                    if items is None or item in items:
                        by_item.setdefault(item, []).append(version)
            current = self.store.overlays()
            changed = []
            for item in set(current) | set(by_item):
                if items is not None and item not in items:
                    continue
                others = [ModelVersion.from_json(m) for m in
                          current.get(item, {}).get(OVERLAY_KEY, {}).get("models", [])
                          if _base(m) != api.base]
                if self._write(item, others + by_item.get(item, [])):
                    changed.append(item)
            return changed

    # --- reading the registry -------------------------------------------------------------

    def _versions(self, api: MlflowApi, model: dict[str, Any]) -> list[tuple[str, ModelVersion]]:
        name = model["name"]
        model_item = _tags(model).get(ITEM_TAG)
        aliases: dict[str, list[str]] = {}
        for entry in model.get("aliases") or []:
            aliases.setdefault(str(entry.get("version")), []).append(entry.get("alias"))
        out = []
        for v in api.model_versions(name):
            item = _tags(v).get(ITEM_TAG) or model_item
            if not item or v.get("status", "READY") == "FAILED_REGISTRATION":
                continue
            out.append((item.strip(), self._version(api, v, sorted(aliases.get(
                str(v["version"]), [])))))
        return out

    def _version(self, api: MlflowApi, v: dict[str, Any], aliases: list[str]) -> ModelVersion:
        """A version as the catalog shows it. What a version is made of (its files, signature,
        run) never changes: read once, so a model with many versions stays quick to sync;
        aliases and the description are read each time."""
        key = (api.base, v["name"], str(v["version"]), v.get("creation_timestamp"))
        cached = self._details.get(key)
        if cached is None:
            cached = self._read_version(api, v)
            # cached once complete: ready, and its MLmodel read if it has one to read
            if v.get("status", "READY") == "READY" and (cached.flavors
                                                        or not cached.artifacts_href):
                self._details[key] = cached
        return dataclasses.replace(cached, aliases=aliases,
                                   description=v.get("description") or "")

    def _read_version(self, api: MlflowApi, v: dict[str, Any]) -> ModelVersion:
        version = ModelVersion(name=v["name"], version=str(v["version"]),
                               run_id=v.get("run_id") or None,
                               created=_iso(v.get("creation_timestamp")), base=api.base)
        uri = api.download_uri(v["name"], version.version)
        if uri and uri.startswith("mlflow-artifacts:"):
            path = uri[len("mlflow-artifacts:"):].lstrip("/")
            api_path = f"api/2.0/mlflow-artifacts/artifacts/{path}"
            root = f"../mlflow/{api.base}/" if api.base else "../mlflow/"
            version.artifacts_href = root + api_path
            raw = api.raw(f"{api_path}/MLmodel")
            if raw:
                try:
                    mlmodel = yaml.safe_load(raw) or {}
                except yaml.YAMLError:
                    mlmodel = {}
                if isinstance(mlmodel, dict):
                    version.flavors = sorted((mlmodel.get("flavors") or {}).keys())
                    version.model_file = model_file(mlmodel)
                    version.signature = signature_of(mlmodel)
        if version.run_id:
            run = api.run(version.run_id)
            if run:
                version.datasets = self._datasets(run)
        return version

    def _datasets(self, run: dict[str, Any]) -> list[dict[str, str]]:
        """The pulled datasets a run was trained on: its dataset inputs logged from pull
        manifests, else the tag the lineage context provider set."""
        found: dict[tuple[str, str], dict[str, str]] = {}
        for entry in (run.get("inputs") or {}).get("dataset_inputs") or []:
            ds = entry.get("dataset") or {}
            if ds.get("source_type") != DATASET_SOURCE_TYPE:
                continue
            try:
                source = json.loads(ds.get("source") or "{}")
            except ValueError:
                continue
            if isinstance(source, dict) and source.get("item"):
                self._add_dataset(found, source, ds.get("digest"))
        if not found:
            tags = {t["key"]: t["value"] for t in (run.get("data") or {}).get("tags") or []}
            for manifest in _manifests(tags.get(DATASETS_TAG)):
                for out in manifest.get("outputs") or [{}]:
                    self._add_dataset(found, manifest, out.get("md5"))
        return list(found.values())

    def _add_dataset(self, found: dict, source: dict, digest: str | None) -> None:
        item = str(source["item"])
        rev = str(source.get("rev") or "")
        entry = found.setdefault((item, rev), {
            "item": item, "rev": rev, "commit": str(source.get("commit") or ""),
            "digest": digest or "", "collection": self.collection_of(item) or "dataset"})
        if digest and digest not in entry["digest"].split(","):
            entry["digest"] = ",".join(d for d in (entry["digest"], digest) if d)

    # --- the index ------------------------------------------------------------------------

    def _write(self, item: str, versions: list[ModelVersion]) -> bool:
        versions.sort(key=lambda v: (v.name, int(v.version) if v.version.isdigit() else 0))
        value = (overlay(versions, self.tracking_href(item), self.experiment_name(item))
                 if versions else None)
        before = self.store.overlays([item]).get(item, {}).get(OVERLAY_KEY)
        if before == value:
            return False
        self.store.set_overlay(item, OVERLAY_KEY, value)
        return True


def _base(model: dict[str, Any]) -> str:
    return str(model.get("base") or "")


def _tags(obj: dict[str, Any]) -> dict[str, str]:
    tags = obj.get("tags") or []
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t.get("key")): str(t.get("value")) for t in tags if isinstance(t, dict)}


def _iso(millis: Any) -> str | None:
    try:
        return datetime.fromtimestamp(int(millis) / 1000, timezone.utc).isoformat()
    except (TypeError, ValueError):
        return None


def _manifests(value: str | None) -> list[dict[str, Any]]:
    if not value:
        return []
    try:
        data = json.loads(value)
    except ValueError:
        return []
    return [m for m in data if isinstance(m, dict) and m.get("item")] if isinstance(
        data, list) else []


__all__ = ["ITEM_TAG", "MlflowError", "RegistrySync"]
