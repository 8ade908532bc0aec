"""Registered MLflow model versions → what an item gains: ``mlflow:model`` links, a
``mlflow:tracking-uri`` link, a model asset per version and, for items declaring ``mlm``, the
``mlm:model`` role and ``mlm:input``/``mlm:output`` from the model signature.

Pure functions over plain dicts. The registry sync (``tracking.registry``) describes each
version as a :class:`ModelVersion`; the index stores them as an item *overlay* and the service
merges it into the item each time it is served, so a registration shows at once and survives
any crawl.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from .assets import MODEL_ARTIFACT_TYPES
from .hrefs import item_href
from .validate import MLM_SCHEMA

#: overlay key of registered models in the index
OVERLAY_KEY = "mlflow"

#: flavour → (file inside the model directory, or the MLmodel key naming it; media type;
#: mlm:artifact_type), most specific first
_FLAVOURS: tuple[tuple[str, str, str, str], ...] = (
    ("onnx", "data", "application/onnx", "onnx"),
    ("pytorch", "model_data", "application/octet-stream; framework=pytorch", "torch.save"),
    ("keras", "data", "application/octet-stream; framework=tensorflow",
     "tf.keras.Model.save"),
    ("tensorflow", "saved_model_dir", "application/octet-stream; framework=tensorflow",
     "tf.saved_model"),
    ("sklearn", "pickled_model", "application/octet-stream", "mlflow.sklearn.save_model"),
    ("xgboost", "data", "application/octet-stream", "xgboost.Booster.save_model"),
    ("lightgbm", "data", "application/octet-stream", "lightgbm.Booster.save_model"),
)

#: the sklearn flavour's ``serialization_format`` → mlm:artifact_type (mlm 1.4 names an
#: artifact by the call that wrote it: ``torch.save``, ...)
_SKLEARN_FORMATS = {"skops": "skops.io.dump", "cloudpickle": "cloudpickle.dump",
                    "pickle": "pickle.dump"}

#: what mlm 1.4 requires of an item's properties
_MLM_REQUIRED = ("mlm:name", "mlm:architecture", "mlm:tasks", "mlm:input", "mlm:output")

#: MLflow signature types → mlm (raster) data types
_DATA_TYPES = {
    "float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
    "float16": "float16", "int8": "int8", "int16": "int16", "int32": "int32",
    "integer": "int32", "int64": "int64", "long": "int64", "uint8": "uint8",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
}

_DIM_NAMES = {1: ["batch"], 2: ["batch", "channel"], 3: ["batch", "height", "width"],
              4: ["batch", "channel", "height", "width"]}


@dataclass
class ModelFile:
    """The file (or folder) that holds a version's model, and how to name its type."""

    path: str  # inside the model's artifact directory
    media_type: str
    artifact_type: str


@dataclass
class ModelVersion:
    """One registered version, as the registry sync read it."""

    name: str
    version: str
    aliases: list[str] = field(default_factory=list)
    run_id: str | None = None
    created: str | None = None  # ISO 8601
    description: str = ""
    #: href of the model's artifact directory (relative to the API root, or absolute)
    artifacts_href: str | None = None
    flavors: list[str] = field(default_factory=list)
    model_file: ModelFile | None = None
    #: MLflow signature: {"inputs": [...], "outputs": [...]} (decoded JSON), if logged
    signature: dict[str, Any] | None = None
    #: datasets the run was trained on: {"item", "collection", "rev", "commit", "digests"}
    #: (digests: the DVC md5s of the pulled outputs)
    datasets: list[dict[str, str]] = field(default_factory=list)
    #: the tracking root it was read from ("" or "<project path>/tracking")
    base: str = ""

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelVersion:
        """From :meth:`to_json`; keys it does not know (an older or newer layout) are
        ignored, so a stored overlay never breaks serving its item."""
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        if isinstance(data.get("model_file"), dict):
            file_keys = {f.name for f in dataclasses.fields(ModelFile)}
            data["model_file"] = ModelFile(**{k: v for k, v in data["model_file"].items()
                                              if k in file_keys})
        return cls(**data)


def model_file(mlmodel: dict[str, Any]) -> ModelFile | None:
    """The main file of a logged model, from its ``MLmodel`` document."""
    flavors = mlmodel.get("flavors") or {}
    for flavor, key, media_type, artifact_type in _FLAVOURS:
        conf = flavors.get(flavor)
        if isinstance(conf, dict):
            path = conf.get(key)
            if isinstance(path, str) and path:
                if flavor == "sklearn":
                    artifact_type = _sklearn_artifact_type(conf, path, artifact_type)
                return ModelFile(path, media_type, artifact_type)
    return None


def _sklearn_artifact_type(conf: dict[str, Any], path: str, default: str) -> str:
    """What wrote a scikit-learn model file: its ``serialization_format`` (MLflow 3 writes
    ``model.skops`` with skops by default, ``model.pkl`` with cloudpickle or pickle), else
    its suffix; ``default`` when neither says."""
    known = _SKLEARN_FORMATS.get(str(conf.get("serialization_format") or "").lower())
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    return known or MODEL_ARTIFACT_TYPES.get(suffix, default)


def signature_of(mlmodel: dict[str, Any]) -> dict[str, Any] | None:
    """The signature of an ``MLmodel`` document, its JSON strings decoded."""
    raw = mlmodel.get("signature")
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("inputs", "outputs"):
        value = raw.get(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
        if isinstance(value, list):
            out[key] = value
    return out or None


def apply_overlays(item: dict[str, Any], overlays: dict[str, Any],
                   tracking_href: str | None = None,
                   experiment: str | None = None) -> dict[str, Any]:
    """A copy of ``item`` with its registered models (its :data:`OVERLAY_KEY` overlay) and,
    if given, its tracking root merged in; the item itself is not changed."""
    data = overlays.get(OVERLAY_KEY) or {}
    versions = [ModelVersion.from_json(v) for v in data.get("models") or []]
    if not versions and not tracking_href:
        return item
    return apply_models(item, versions, tracking_href, experiment)


def apply_models(item: dict[str, Any], versions: list[ModelVersion],
                 tracking_href: str | None, experiment: str | None = None) -> dict[str, Any]:
    out = {**item, "links": list(item.get("links", [])), "assets": dict(item.get("assets", {})),
           "properties": dict(item.get("properties", {})),
           "stac_extensions": list(item.get("stac_extensions", []))}
    props = out["properties"]
    declares_mlm = any(k.startswith("mlm:") for k in props)
    if tracking_href:
        link = {"rel": "mlflow:tracking-uri", "href": tracking_href, "type": "text/html",
                "title": "MLflow tracking server"}
        if experiment:
            link["mlflow:experiment"] = experiment
        out["links"] = [lk for lk in out["links"] if lk.get("rel") != "mlflow:tracking-uri"]
        out["links"].append(link)
    for v in versions:
        title = f"{v.name} v{v.version}"
        if v.aliases:
            title += " (" + ", ".join(f"@{a}" for a in v.aliases) + ")"
        out["links"].append({"rel": "mlflow:model", "href": _model_href(v), "title": title,
                             "mlflow:uri": v.uri, "mlflow:name": v.name,
                             "mlflow:version": v.version, "mlflow:aliases": list(v.aliases),
                             **({"mlflow:run-id": v.run_id} if v.run_id else {})})
        for ds in v.datasets:
            _derive(out["links"], ds, v)
        asset = _model_asset(v, declares_mlm)
        if asset is not None:
            out["assets"][f"mlflow-model-{v.name}-v{v.version}"] = asset
    if declares_mlm and any("mlm:model" in a.get("roles", []) for a in out["assets"].values()):
        latest = _latest_signed(versions)
        if latest is not None:
            inputs, outputs = mlm_io(latest.signature or {}, props.get("mlm:tasks"))
            if inputs and not props.get("mlm:input"):
                props["mlm:input"] = inputs
            if outputs and not props.get("mlm:output"):
                props["mlm:output"] = outputs
        # mlm 1.4 requires these of an item: without them (no signature, none in the front
        # matter) it is served as one without a model asset is, its mlm:* fields undeclared
        if MLM_SCHEMA not in out["stac_extensions"] and all(k in props for k in _MLM_REQUIRED):
            out["stac_extensions"].append(MLM_SCHEMA)
    return out


def mlm_io(signature: dict[str, Any], tasks: Any) -> tuple[list[dict], list[dict]]:
    """``mlm:input``/``mlm:output`` from an MLflow signature (empty lists when it cannot say:
    outputs need the item's ``mlm:tasks``)."""
    inputs = _io_objects(signature.get("inputs") or [], "input")
    outputs: list[dict] = []
    if isinstance(tasks, list) and tasks:
        for obj in _io_objects(signature.get("outputs") or [], "output"):
            outputs.append({"name": obj["name"], "tasks": list(tasks), "result": obj["input"],
                            **({"description": obj["description"]}
                               if "description" in obj else {})})
    return inputs, outputs


def _io_objects(specs: list[dict], default_name: str) -> list[dict]:
    tensors = [s for s in specs if isinstance(s, dict) and s.get("type") == "tensor"]
    if tensors:
        out = []
        for i, spec in enumerate(tensors):
            ts = spec.get("tensor-spec") or {}
            shape = [d if isinstance(d, int) and d >= -1 else -1 for d in ts.get("shape") or []]
            if not shape:
                continue
            out.append({"name": spec.get("name") or (default_name if i == 0
                                                     else f"{default_name}_{i}"),
                        "bands": [],
                        "input": {"shape": shape, "dim_order": _dim_order(len(shape)),
                                  "data_type": _DATA_TYPES.get(str(ts.get("dtype")), "other")}})
        return out
    columns = [s for s in specs if isinstance(s, dict) and s.get("type")]
    if not columns:
        return []
    kinds = {_DATA_TYPES.get(str(c["type"]), "other") for c in columns}
    names = [str(c.get("name")) for c in columns if c.get("name")]
    obj: dict[str, Any] = {"name": default_name, "bands": [],
                           "input": {"shape": [-1, len(columns)],
                                     "dim_order": ["batch", "channel"],
                                     "data_type": kinds.pop() if len(kinds) == 1 else "other"}}
    if names:
        obj["description"] = "columns: " + ", ".join(names)
    return [obj]


def _dim_order(rank: int) -> list[str]:
    if rank in _DIM_NAMES:
        return list(_DIM_NAMES[rank])
    return ["batch", *[f"dim_{chr(ord('a') + i)}" for i in range(rank - 1)]]


def _latest_signed(versions: list[ModelVersion]) -> ModelVersion | None:
    """The most recently registered version with a signature (across model names)."""
    signed = [v for v in versions if v.signature]
    return max(signed, key=lambda v: (v.created or "", v.name, v.version)) if signed else None


def _model_href(v: ModelVersion) -> str:
    return v.artifacts_href or v.uri


def _model_asset(v: ModelVersion, declares_mlm: bool) -> dict[str, Any] | None:
    if v.model_file is not None and v.artifacts_href:
        href = f"{v.artifacts_href.rstrip('/')}/{quote(v.model_file.path)}"
        asset: dict[str, Any] = {"href": href, "type": v.model_file.media_type}
        artifact_type = v.model_file.artifact_type
    elif v.artifacts_href:
        href = f"{v.artifacts_href.rstrip('/')}/MLmodel"
        asset = {"href": href, "type": "text/x-yaml"}
        artifact_type = "mlflow.pyfunc"
    else:
        return None
    aliases = f" ({', '.join('@' + a for a in v.aliases)})" if v.aliases else ""
    asset["title"] = f"MLflow model {v.name} v{v.version}{aliases}"
    if v.flavors:
        asset["description"] = "MLflow flavours: " + ", ".join(v.flavors)
    asset["mlflow:uri"] = v.uri
    if declares_mlm:
        asset["roles"] = ["mlm:model", "data"]
        asset["mlm:artifact_type"] = artifact_type
    else:
        asset["roles"] = ["data"]
    return asset


def _derive(links: list[dict[str, Any]], ds: dict[str, str], model: ModelVersion) -> None:
    """A ``derived_from`` link to the dataset version, naming the model versions trained on
    it (``mlflow:models``: name, version and the ``mlflow:uri`` of their ``mlflow:model``
    link): one link per dataset version, however many model versions share it. A link the
    front matter already has to that item (``related``) gains the version instead of being
    repeated."""
    href = _dataset_href(ds)
    entry = {"name": model.name, "version": model.version, "uri": model.uri}
    version = {"title": f"{ds['item']} @ {ds.get('rev') or ds.get('commit', '')}".strip(),
               "sharinghub:rev": ds.get("rev"), "sharinghub:commit": ds.get("commit")}
    for i, link in enumerate(links):
        if (link.get("rel") == "derived_from" and _same_item(link.get("href", ""), href)
                and link.get("sharinghub:rev") in (None, ds.get("rev"))):
            models = list(link.get("mlflow:models") or [])
            digests = list(link.get("sharinghub:digests") or [])
            links[i] = {**link, **version,
                        "sharinghub:digests": digests + [d for d in ds.get("digests") or []
                                                         if d not in digests],
                        "mlflow:models": models + ([entry] if entry not in models else [])}
            return
    links.append({"rel": "derived_from", "href": href, "type": "application/geo+json",
                  **version, "sharinghub:digests": list(ds.get("digests") or []),
                  "mlflow:models": [entry]})


def _same_item(a: str, b: str) -> bool:
    """Relative hrefs in the index, absolute ones from elsewhere: compare their item paths."""
    return a == b or a.endswith("/" + b)


def _dataset_href(ds: dict[str, str]) -> str:
    return item_href(ds.get("collection") or "dataset", ds["item"])
