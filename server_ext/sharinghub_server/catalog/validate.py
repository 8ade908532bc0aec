"""Offline validation against the STAC JSON schemas shipped as package data, and the repair
of messy metadata: a value that would make an item invalid is normalised when the fix is
unambiguous, else left out, and each change is reported."""

from __future__ import annotations

import copy
import functools
import json
import re
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

STAC_VERSION = "1.1.0"
ITEM_SCHEMA = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"
COLLECTION_SCHEMA = "https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json"
CATALOG_SCHEMA = "https://schemas.stacspec.org/v1.1.0/catalog-spec/json-schema/catalog.json"
MLM_SCHEMA = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"
FILE_SCHEMA = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
SCI_SCHEMA = "https://stac-extensions.github.io/scientific/v1.0.0/schema.json"

_SCHEMAS = resources.files(__package__) / "schemas"


@functools.cache
def _index() -> dict[str, str]:
    return json.loads((_SCHEMAS / "index.json").read_text())


def known_schemas() -> frozenset[str]:
    """The schema URLs this package can validate against offline."""
    return frozenset(_index())


@functools.cache
def _contents(url: str) -> Any:
    path = _index().get(url.rstrip("#"))
    if path is None:
        raise NoSuchResource(ref=url)
    node = _SCHEMAS
    for part in path.split("/"):
        node = node / part
    return json.loads(node.read_text())


def _retrieve(uri: str) -> Resource:
    return Resource.from_contents(_contents(uri))


_REGISTRY: Registry = Registry(retrieve=_retrieve)  # type: ignore[call-arg]


@functools.cache
def _validator(url: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_contents(url), registry=_REGISTRY)


class UnknownSchema(ValueError):
    """An object declares a schema that is not shipped with the package."""


def schema_errors(obj: dict) -> list[tuple[str, jsonschema.ValidationError]]:
    """(schema URL, error) for everything wrong with a STAC object, offline."""
    kind = obj.get("type")
    core = {"Feature": ITEM_SCHEMA, "Collection": COLLECTION_SCHEMA}.get(kind, CATALOG_SCHEMA)
    errors: list[tuple[str, jsonschema.ValidationError]] = []
    for url in [core, *obj.get("stac_extensions", [])]:
        if url.rstrip("#") not in _index():
            raise UnknownSchema(f"no offline copy of schema {url}")
        errors.extend((url, e) for e in _validator(url).iter_errors(obj))
    return errors


def validate(obj: dict) -> None:
    """Raise ``jsonschema.ValidationError`` if the object is invalid (for tests and tools)."""
    for _url, error in schema_errors(obj):
        raise error


def error_lines(obj: dict) -> list[str]:
    """Every schema error of a STAC object as one line: where (``properties.mlm:tasks``) and
    what, from the most specific error inside ``anyOf``/``oneOf``."""
    lines = []
    for _url, error in schema_errors(obj):
        leaf = max([error, *error.context], key=lambda e: len(e.absolute_path))
        where = ".".join(str(p) for p in leaf.absolute_path) or "item"
        line = f"{where}: {_message(leaf)}"
        if line not in lines:
            lines.append(line)
    return lines


# --- repair -------------------------------------------------------------------------------

_SEMVER_PREFIX = re.compile(r"^(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?$")


def _normalise(value: Any, error: jsonschema.ValidationError) -> tuple[bool, Any]:
    """An unambiguous fix for a rejected value, if there is one."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "pattern" and isinstance(value, str | int | float):
        text = str(value).strip()
        m = _SEMVER_PREFIX.match(text)
        if m and "(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)" in str(schema.get("pattern", "")):
            return True, f"{m[1]}.{m[2] or 0}.0"
    if error.validator == "type":
        wanted = schema.get("type")
        if wanted == "string" and isinstance(value, int | float) and not isinstance(value, bool):
            return True, str(value)
        if wanted == "array" and isinstance(value, str):
            return True, [value]
    return False, None


def _owner(obj: dict, path: list) -> tuple[Any, Any, int] | None:
    """(container, key, depth of key in path) of the value an error points at, for fields we
    may change: properties, asset fields, link fields. Structural places (type, geometry,
    stac_version) are not ours."""
    container: Any
    if len(path) >= 2 and path[0] == "properties":
        depth, container = 1, obj.get("properties")
    elif len(path) >= 3 and path[0] == "assets":
        depth, container = 2, obj.get("assets", {}).get(path[1])
    elif len(path) >= 3 and path[0] == "links" and isinstance(path[1], int):
        links = obj.get("links", [])
        depth, container = 2, links[path[1]] if path[1] < len(links) else None
    else:
        return None
    key = path[depth]
    if not isinstance(container, dict) or key not in container or key in ("href", "datetime"):
        return None
    return container, key, depth


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "pattern":
        return f"{error.instance!r} does not have the required form ({error.schema_path[-2]})" \
            if len(error.schema_path) > 1 else f"{error.instance!r} does not have the required form"
    text = error.message
    return text if len(text) <= 160 else text[:157] + "..."


def repair(obj: dict, *, max_rounds: int = 25) -> tuple[dict, list[str]]:
    """A copy of ``obj`` that validates, and what was changed to get there.

    Rejected fields are normalised when unambiguous (``"2.7"`` → ``"2.7.0"`` where semver is
    required) or removed; a declared extension whose schema still fails is undeclared.
    """
    obj = copy.deepcopy(obj)
    problems: list[str] = []
    for _ in range(max_rounds):
        errors = schema_errors(obj)
        if not errors:
            return obj, problems
        changed = False
        for _url, error in errors:
            # the deepest error says most about what is wrong inside anyOf/oneOf
            leaf = max([error, *error.context], key=lambda e: len(e.absolute_path))
            path = list(leaf.absolute_path)
            owner = _owner(obj, path)
            if owner is None:
                continue
            container, key, depth = owner
            where = ".".join(str(p) for p in path[: depth + 1])
            value = container[key]
            # only a value rejected as a whole can be normalised; deeper errors drop the field
            fixable, fixed = _normalise(value, leaf) if len(path) == depth + 1 else (False, None)
            if fixable:
                container[key] = fixed
                problems.append(f"{where}: {value!r} normalised to {fixed!r} ({_message(leaf)})")
            else:
                del container[key]
                problems.append(f"{where} left out: {_message(leaf)}")
            changed = True
            break  # errors were computed on the old object: validate again
        if not changed:
            # nothing field-level to fix: undeclare the failing extension (never the core)
            url, error = errors[0]
            if url in obj.get("stac_extensions", []):
                obj["stac_extensions"] = [u for u in obj["stac_extensions"] if u != url]
                problems.append(f"extension {url} not declared: {_message(error)}")
                continue
            raise jsonschema.ValidationError(f"cannot repair: {error.message}")
    raise jsonschema.ValidationError("cannot repair: too many problems")
