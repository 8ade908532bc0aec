"""Asset rules (SharingHub's syntax) → STAC assets, media types, and mlm model files."""

from __future__ import annotations

import mimetypes
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from . import hrefs

#: SharingHub's ``type-as`` shortcuts
MEDIA_TYPES = {
    "text": "text/plain",
    "json": "application/json",
    "xml": "application/xml",
    "yaml": "text/x-yaml",
    "zip": "application/zip",
    "geotiff": "image/tiff; application=geotiff",
    "cog": "image/tiff; application=geotiff; profile=cloud-optimized",
    "geojson": "application/geo+json",
    "compose": "text/x-yaml; application=compose",
    "notebook": "application/x-ipynb+json",
}

_EXTRA_TYPES = {
    ".onnx": "application/onnx",
    ".ipynb": "application/x-ipynb+json",
    ".geojson": "application/geo+json",
    ".yaml": "text/x-yaml",
    ".yml": "text/x-yaml",
    ".md": "text/markdown",
    ".tif": "image/tiff; application=geotiff",
    ".tiff": "image/tiff; application=geotiff",
    ".parquet": "application/vnd.apache.parquet",
    ".safetensors": "application/octet-stream",
    ".pt": "application/octet-stream; framework=pytorch",
    ".pth": "application/octet-stream; framework=pytorch",
}

#: model weight files and the ``mlm:artifact_type`` they usually are
MODEL_ARTIFACT_TYPES = {
    ".onnx": "onnx",
    ".pt": "torch.save",
    ".pth": "torch.save",
    ".safetensors": "safetensors",
    ".h5": "tf.keras.Model.save",
    ".keras": "tf.keras.Model.save",
    ".joblib": "joblib.dump",
    ".pkl": "pickle.dump",
    ".skops": "skops.io.dump",
}

_PREFIXED = re.compile(r"^[a-z][a-z0-9-]*:[A-Za-z0-9_:-]+$")
_RULE_FIELDS = {"glob", "path", "key", "href", "type", "type-as", "title", "description", "roles"}


def guess_type(path: str) -> str | None:
    suffix = PurePosixPath(urlsplit(path).path).suffix.lower()
    if suffix in _EXTRA_TYPES:
        return _EXTRA_TYPES[suffix]
    return mimetypes.guess_type(urlsplit(path).path)[0]


def normalise_rules(rules: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Rules as dicts (a plain string is a glob), and problems with the ones that are neither."""
    if rules is None:
        return [], []
    if not isinstance(rules, list):
        return [], [f"assets must be a list, not {type(rules).__name__}"]
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for rule in rules:
        if isinstance(rule, str):
            out.append({"glob": rule})
        elif isinstance(rule, dict):
            out.append({str(k): v for k, v in rule.items()})
        else:
            problems.append(f"asset rule {rule!r} is neither a glob nor a mapping")
    return out, problems


def _asset(rule: dict[str, Any], key: str, path: str, href: str) -> dict[str, Any]:
    asset: dict[str, Any] = {"href": href}

    def fill(template: Any) -> str:
        return str(template).replace("{key}", key).replace("{path}", path)

    if rule.get("title"):
        asset["title"] = fill(rule["title"])
    if rule.get("description"):
        asset["description"] = fill(rule["description"])
    media_type = MEDIA_TYPES.get(str(rule.get("type-as", "")), rule.get("type")) or guess_type(
        path or href)
    if media_type:
        asset["type"] = str(media_type)
    roles = rule.get("roles")
    if roles is not None:
        asset["roles"] = [str(r) for r in roles] if isinstance(roles, list) else [str(roles)]
    for field, value in rule.items():
        if field not in _RULE_FIELDS and _PREFIXED.match(field):
            asset[field] = value
    return asset


def apply_rules(rules: list[dict[str, Any]], files: list[str], *, item_id: str,
                ref: str | None) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Assets for the repository files the rules match (globs anchored at the right, like
    ``PurePath.match``), plus the assets rules give with an explicit ``href``; and the keys
    whose rule chose the roles."""
    assets: dict[str, dict[str, Any]] = {}
    chosen_roles: set[str] = set()
    paths = [PurePosixPath(f) for f in files]
    for rule in rules:
        glob = rule.get("glob", rule.get("path"))
        if glob:
            for p in paths:
                try:
                    matched = p.match(str(glob))
                except ValueError:
                    matched = False
                if matched:
                    path = str(p)
                    key = str(rule.get("key") or "{path}").replace("{path}", path)
                    href = hrefs.resolve(str(rule["href"]), item_id, ref) if rule.get(
                        "href") else hrefs.download_href(item_id, path, ref)
                    asset = _asset(rule, key, path, href)
                    _keep(assets, chosen_roles, key, asset, rule)
        elif rule.get("href") and rule.get("key"):
            key = str(rule["key"])
            asset = _asset(rule, key, "", hrefs.resolve(str(rule["href"]), item_id, ref))
            _keep(assets, chosen_roles, key, asset, rule)
    return assets, chosen_roles


def _keep(assets: dict, chosen_roles: set[str], key: str, asset: dict, rule: dict) -> None:
    if "roles" in rule:
        chosen_roles.add(key)
    else:
        asset["roles"] = ["data"]
    assets[key] = asset


def mark_model_assets(assets: dict[str, dict[str, Any]], chosen_roles: set[str]) -> None:
    """Give model weight files the ``mlm:model`` role and an ``mlm:artifact_type`` (for items
    that declare mlm), unless their rule set them."""
    for key, asset in assets.items():
        suffix = PurePosixPath(key).suffix.lower()
        if suffix not in MODEL_ARTIFACT_TYPES:
            suffix = PurePosixPath(urlsplit(asset["href"]).path).suffix.lower()
        if suffix not in MODEL_ARTIFACT_TYPES:
            continue
        if key not in chosen_roles and "mlm:model" not in asset.get("roles", []):
            asset["roles"] = ["mlm:model", *[r for r in asset.get("roles", []) if r != "mlm:model"]]
        if "mlm:model" in asset.get("roles", []):
            asset.setdefault("mlm:artifact_type", MODEL_ARTIFACT_TYPES[suffix])
