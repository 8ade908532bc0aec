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
#: ``{path}``/``{key}`` placeholders a rule's key, title or description may hold: a title of
#: ``{key}`` x 200 whose key is ``{path}`` x 200 would be 40,000 paths long, per file
MAX_PLACEHOLDERS = 8
_PLACEHOLDER = re.compile(r"\{(?:path|key)\}")


def guess_type(path: str) -> str | None:
    try:
        url_path = urlsplit(path).path
    except ValueError:  # "http://[": not a URL, maybe a file name
        url_path = path
    suffix = PurePosixPath(url_path).suffix.lower()
    if suffix in _EXTRA_TYPES:
        return _EXTRA_TYPES[suffix]
    return mimetypes.guess_type(url_path)[0]


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
            text = repr(rule)
            problems.append(f"asset rule {text if len(text) <= 80 else text[:77] + '...'} "
                            "is neither a glob nor a mapping")
    return out, problems


def _templates(rule: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The rule with its templates (``key``, ``title``, ``description``) as strings, those
    with more than :data:`MAX_PLACEHOLDERS` placeholders left out (and reported)."""
    out = dict(rule)
    for field in ("key", "title", "description"):
        if not out.get(field):
            continue
        text = str(out[field])
        n = len(_PLACEHOLDER.findall(text))
        if n > MAX_PLACEHOLDERS:
            problems.append(f"asset rule {field} left out: {n} {{path}}/{{key}} placeholders, "
                            f"at most {MAX_PLACEHOLDERS}")
            del out[field]
        else:
            out[field] = text
    return out


def _fill(template: str, key: str, path: str) -> str:
    """``{key}`` and ``{path}`` replaced in one pass (a key holding ``{path}`` stays so)."""
    if "{" not in template:
        return template
    return _PLACEHOLDER.sub(lambda m: key if m.group(0) == "{key}" else path, template)


def _asset(rule: dict[str, Any], key: str, path: str, href: str) -> dict[str, Any]:
    asset: dict[str, Any] = {"href": href}
    if rule.get("title"):
        asset["title"] = _fill(rule["title"], key, path)
    if rule.get("description"):
        asset["description"] = _fill(rule["description"], key, path)
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
                ref: str | None, problems: list[str] | None = None,
                limit: int | None = None) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Assets for the repository files the rules match (globs anchored at the right, like
    ``PurePath.match``), plus the assets rules give with an explicit ``href``; and the keys
    whose rule chose the roles. What cannot be used of a rule goes to ``problems``; at most
    ``limit`` assets are given (the rest is reported there too)."""
    assets: dict[str, dict[str, Any]] = {}
    chosen_roles: set[str] = set()
    paths = [PurePosixPath(f) for f in files]
    problems = [] if problems is None else problems
    full = False
    for rule in rules:
        rule = _templates(rule, problems)
        glob = rule.get("glob", rule.get("path"))
        if glob:
            for p in paths:
                try:
                    matched = p.match(str(glob))
                except (ValueError, TypeError, re.error):
                    matched = False
                if matched:
                    path = str(p)
                    key = str(rule.get("key") or "{path}").replace("{path}", path)
                    if limit is not None and len(assets) >= limit and key not in assets:
                        full = True
                        break
                    href = hrefs.resolve(str(rule["href"]), item_id, ref) if rule.get(
                        "href") else hrefs.download_href(item_id, path, ref)
                    asset = _asset(rule, key, path, href)
                    _keep(assets, chosen_roles, key, asset, rule)
        elif rule.get("href") and rule.get("key"):
            key = str(rule["key"])
            if limit is not None and len(assets) >= limit and key not in assets:
                full = True
            else:
                asset = _asset(rule, key, "", hrefs.resolve(str(rule["href"]), item_id, ref))
                _keep(assets, chosen_roles, key, asset, rule)
        if full:
            problems.append(f"assets: the rules give more than {limit:,} assets, only the "
                            f"first {limit:,} are kept")
            break
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
