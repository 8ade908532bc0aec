"""The model registry → catalog: registered versions tagged ``sharinghub:item=<item id>`` (on
the registered model or on a version) become an overlay of that item in the index.

Two ways in, both ending in :meth:`RegistrySync.sync_model` / :meth:`RegistrySync.sync_all`:
every registry write that passes through ``sharinghub/mlflow/`` (MLflow UI, plain client, our
helpers) triggers a sync of that model at once; a full sync runs when the embedded server
loads and after every crawl (or on a timer), for writes made elsewhere.

A tracking root (the embedded server, or one project's root on an MLflow SharingHub server) may
only hold models for the items it serves: a model tagged for another project's item there is
ignored, so one project cannot decorate another's item.

Runs on the tracking service's one thread: no locking here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import posixpath
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

import yaml

from ..catalog.models import OVERLAY_KEY, ModelVersion, model_file, signature_of
from ..index.store import IndexStore
from .api import MlflowApi, MlflowError
from .lineage import DATASET_SOURCE_TYPE, DATASETS_TAG, parse_manifests

log = logging.getLogger(__name__)

ITEM_TAG = "sharinghub:item"

#: which items a tracking root may hold: None = any
Scope = set[str] | None


class RegistrySync:
    def __init__(self, store: IndexStore, *,
                 collection_of: Callable[[str], str | None]) -> None:
        """``collection_of(item)``: the collection a dataset item is served in (None: the
        item is not in the catalog, and is not linked)."""
        self.store = store
        self.collection_of = collection_of
        #: (base, name, version, created) -> what the version is made of (never changes)
        self._details: dict[tuple, ModelVersion] = {}

    # --- entry points ---------------------------------------------------------------------

    def sync_model(self, api: MlflowApi, name: str, scope: Scope = None) -> list[str]:
        """Re-read one registered model; returns the item ids whose overlay changed."""
        model = api.registered_model(name)
        fresh = self._by_item(api, [model] if model else [], scope)
        current = self._current()
        touched = {item for item, models in current.items()
                   if any(m.name == name and m.base == api.base for m in models)}
        changed = []
        for item in touched | set(fresh):
            kept = [m for m in current.get(item, [])
                    if not (m.name == name and m.base == api.base)]
            if self._write(item, kept + fresh.get(item, [])):
                changed.append(item)
        return changed

    def sync_all(self, api: MlflowApi, scope: Scope = None) -> list[str]:
        """Re-read every registered model of this tracking root."""
        fresh = self._by_item(api, api.registered_models(), scope)
        current = self._current()
        changed = []
        for item in set(current) | set(fresh):  # out of scope: this root's entries go
            others = [m for m in current.get(item, []) if m.base != api.base]
            if self._write(item, others + fresh.get(item, [])):
                changed.append(item)
        return changed

    # --- reading the registry -------------------------------------------------------------

    def _by_item(self, api: MlflowApi, models: Iterable[dict[str, Any]],
                 scope: Scope) -> dict[str, list[ModelVersion]]:
        found: dict[str, list[ModelVersion]] = {}
        for model in models:
            try:
                for item, version in self._versions(api, model):
                    if scope is None or item in scope:
                        found.setdefault(item, []).append(version)
            except (MlflowError, OSError, ValueError, KeyError, TypeError) as exc:
                # one unreadable model must not hide the others
                log.warning("sharinghub: registered model %r not read: %s",
                            model.get("name"), exc)
        return found

    def _versions(self, api: MlflowApi, model: dict[str, Any]) -> list[tuple[str, ModelVersion]]:
        name = model["name"]
        model_item = _tags(model).get(ITEM_TAG)
        aliases: dict[str, list[str]] = {}
        for entry in model.get("aliases") or []:
            aliases.setdefault(str(entry.get("version")), []).append(str(entry.get("alias")))
        out = []
        for v in api.model_versions(name):
            item = (_tags(v).get(ITEM_TAG) or model_item or "").strip()
            if not item or v.get("status", "READY") == "FAILED_REGISTRATION":
                continue
            out.append((item, self._version(api, v, sorted(aliases.get(str(v["version"]),
                                                                       [])))))
        return out

    def _version(self, api: MlflowApi, v: dict[str, Any], aliases: list[str]) -> ModelVersion:
        """A version as the catalog shows it. What a version is made of (its files, signature,
        run inputs) never changes: read once, so a model with many versions stays quick to
        sync; aliases, the description and where its datasets are served are fresh."""
        key = (api.base, v["name"], str(v["version"]), v.get("creation_timestamp"))
        details = self._details.get(key)
        if details is None:
            details = self._read_version(api, v)
            # cached once complete: ready, and its MLmodel read if it has one to read
            if v.get("status", "READY") == "READY" and (details.flavors
                                                        or not details.artifacts_href):
                self._details[key] = details
        datasets = []
        for ds in details.datasets:
            collection = self.collection_of(ds["item"])
            if collection is not None:
                datasets.append({**ds, "collection": collection})
        return dataclasses.replace(details, aliases=aliases, datasets=datasets,
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
            mlmodel = _yaml(api.raw(f"{api_path}/MLmodel"))
            if mlmodel:
                version.flavors = sorted((mlmodel.get("flavors") or {}).keys())
                found = model_file(mlmodel)
                if found is not None and _inside(found.path):
                    version.model_file = found
                version.signature = signature_of(mlmodel)
        if version.run_id:
            run = api.run(version.run_id)
            if run:
                version.datasets = _datasets(run)
        return version

    # --- the index ------------------------------------------------------------------------

    def _current(self) -> dict[str, list[ModelVersion]]:
        out: dict[str, list[ModelVersion]] = {}
        for item, overlays in self.store.overlays().items():
            models = (overlays.get(OVERLAY_KEY) or {}).get("models") or []
            out[item] = [ModelVersion.from_json(m) for m in models]
        return out

    def _write(self, item: str, versions: list[ModelVersion]) -> bool:
        versions.sort(key=lambda v: (v.base, v.name, _number(v.version)))
        value = {"models": [v.to_json() for v in versions]} if versions else None
        before = self.store.overlays([item]).get(item, {}).get(OVERLAY_KEY)
        if before == value:
            return False
        self.store.set_overlay(item, OVERLAY_KEY, value)
        return True


def _datasets(run: dict[str, Any]) -> list[dict[str, str]]:
    """The pulled datasets a run was trained on (item, rev, commit, digests): its dataset
    inputs logged from pull manifests, else the tag the lineage context provider set."""
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def add(source: dict[str, Any], digest: Any) -> None:
        item, rev = str(source["item"]), str(source.get("rev") or "")
        entry = found.setdefault((item, rev), {"item": item, "rev": rev,
                                               "commit": str(source.get("commit") or ""),
                                               "digests": []})
        if isinstance(digest, str) and digest and digest not in entry["digests"]:
            entry["digests"].append(digest)

    for entry in (run.get("inputs") or {}).get("dataset_inputs") or []:
        ds = entry.get("dataset") or {}
        if ds.get("source_type") != DATASET_SOURCE_TYPE:
            continue
        try:
            source = json.loads(ds.get("source") or "{}")
        except ValueError:
            continue
        if isinstance(source, dict) and source.get("item"):
            add(source, ds.get("digest"))
    if not found:
        tags = {t.get("key"): t.get("value") for t in (run.get("data") or {}).get("tags") or []}
        for manifest in parse_manifests(tags.get(DATASETS_TAG)):
            for output in manifest["outputs"] or [{}]:
                add(manifest, output.get("md5"))
    return list(found.values())


def _inside(path: str) -> bool:
    """A file path inside the model's directory (MLmodel is the model author's text)."""
    clean = posixpath.normpath(path)
    return not (clean.startswith(("..", "/")) or "\\" in path)


def _yaml(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _number(version: str) -> int:
    return int(version) if version.isdigit() else 0


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


__all__ = ["ITEM_TAG", "RegistrySync", "Scope"]
