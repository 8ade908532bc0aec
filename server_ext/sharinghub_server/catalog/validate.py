"""Offline validation against the STAC JSON schemas shipped as package data, and the repair
of messy metadata: a value that would make an item invalid is normalised when the fix is
unambiguous, else left out, and each change is reported.

Every item the crawler indexes is validated, so validation is on the crawl's hot path. Two
validators share the work: each schema is compiled once into Python code (fastjsonschema)
that answers "valid or not" in a fraction of a millisecond, and jsonschema (with every
shipped schema loaded and crawled once) reports the errors. The compiled verdict is only
trusted when it says "valid"; an object it rejects is checked again by jsonschema, whose
errors (possibly none) are the answer. ``tests/test_validate_equivalence.py`` shows that the
two give the same verdicts on the test corpus and on thousands of mutated items.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
import reprlib
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema
from fastjsonschema.draft07 import CodeGeneratorDraft07
from fastjsonschema.ref_resolver import RefResolver
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

log = logging.getLogger(__name__)


@functools.cache
def _index() -> dict[str, str]:
    return json.loads((_SCHEMAS / "index.json").read_text())


def known_schemas() -> frozenset[str]:
    """The schema URLs this package can validate against offline."""
    return _known()


@functools.cache
def _known() -> frozenset[str]:
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


#: schemas are loaded and compiled once per process, by the first thread that needs them
_LOCK = threading.RLock()


def _once(build: Callable[..., Any]) -> Callable[..., Any]:
    """A cache whose first build runs under a lock: crawl workers start together, and
    compiling a schema in each of them would waste seconds of CPU. Hits take no lock."""
    built: dict[tuple, Any] = {}

    @functools.wraps(build)
    def get(*args: Any) -> Any:
        try:
            return built[args]
        except KeyError:
            with _LOCK:
                if args not in built:
                    built[args] = build(*args)
                return built[args]

    return get


@_once
def _registry() -> Registry:
    """Every shipped schema, loaded and crawled once: a ``$ref`` is then a lookup, not a
    retrieval and a crawl of the referenced schema each time it is met."""
    registry: Registry = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    return registry.with_resources(
        (url, Resource.from_contents(_contents(url))) for url in _index()).crawl()


@_once
def _validator(url: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_contents(url), registry=_registry())


# --- the compiled verdict -----------------------------------------------------------------


class _Draft7Generator(CodeGeneratorDraft07):
    """fastjsonschema's draft-07 code, made to agree with jsonschema's Draft7Validator
    (the reference): arrays are lists only (not tuples), and ``pattern`` is searched as
    written (fastjsonschema turns ``$`` into ``\\Z``, which rejects a trailing newline
    that ``re.search`` accepts)."""

    def generate_type(self) -> None:
        types = self._definition["type"]
        types = types if isinstance(types, list) else [types]
        python = {"array": "list", "boolean": "bool", "integer": "int", "null": "NoneType",
                  "number": "int, float, Decimal", "object": "dict", "string": "str"}
        unknown = [t for t in types if t not in python]
        if unknown:
            raise fastjsonschema.JsonSchemaDefinitionException(f"unknown type {unknown}")
        var, extra = self._variable, ""
        if "integer" in types:
            extra += f" and not (isinstance({var}, float) and {var}.is_integer())"
        if ("number" in types or "integer" in types) and "boolean" not in types:
            extra += f" or isinstance({var}, bool)"
        with self.l("if not isinstance({variable}, ({})){}:",
                    ", ".join(python[t] for t in types), extra):
            self.exc("{name} must be {}", " or ".join(types), rule="type")

    def generate_pattern(self) -> None:
        with self.l("if isinstance({variable}, str):"):
            pattern = self._definition["pattern"]
            self._compile_regexps[pattern] = re.compile(pattern)
            with self.l("if not REGEX_PATTERNS[{}].search({variable}):", repr(pattern)):
                self.exc("{name} must match pattern {}", self.e(pattern), rule="pattern")

    def create_variable_is_list(self) -> None:
        name = f"{self._variable}_is_list"
        if self._is_variable_in_scope(name):
            return
        self._variables[name] = tuple(self._scope_stack)
        self.l("{variable}_is_list = isinstance({variable}, list)")


def _handler(uri: str) -> Any:
    """References resolve to the shipped copies only: never a download."""
    return _contents(uri)


@_once
def _compiled(url: str) -> Callable[[Any], Any] | None:
    """The schema at ``url`` compiled to a Python function that raises on invalid data.
    Formats are not asserted and defaults not filled in, as with jsonschema's validator.
    None if it cannot be compiled (the generator subclass leans on fastjsonschema's
    internals): jsonschema then validates alone, slower but the same."""
    definition = _contents(url)
    try:
        resolver = RefResolver.from_schema(definition, handlers={"http": _handler,
                                                                 "https": _handler}, store={})
        generator = _Draft7Generator(definition, resolver=resolver, use_default=False,
                                     use_formats=False)
        state = generator.global_state
        exec(generator.func_code, state)  # the code fastjsonschema generated from the schema
        return state[resolver.get_scope_name()]
    except Exception as exc:  # any failure only costs speed
        log.warning("schema %s not compiled (%s: %s): validating it with jsonschema only",
                    url, type(exc).__name__, exc)
        return None


def _fast_valid(url: str, obj: Any) -> bool:
    """True only when the compiled schema accepts ``obj``; anything else (a rejection, a
    schema that did not compile, an object the generated code chokes on) leaves the
    verdict to jsonschema."""
    check = _compiled(url)
    if check is None:
        return False
    try:
        check(obj)
    except Exception:  # JsonSchemaValueException, or data no JSON parser would give
        return False
    return True


class UnknownSchema(ValueError):
    """An object declares a schema that is not shipped with the package."""


def _schema_urls(obj: dict) -> list[str]:
    kind = obj.get("type")
    core = {"Feature": ITEM_SCHEMA, "Collection": COLLECTION_SCHEMA}.get(kind, CATALOG_SCHEMA)
    urls = [core, *obj.get("stac_extensions", [])]
    for url in urls:
        if url.rstrip("#") not in _known():
            raise UnknownSchema(f"no offline copy of schema {url}")
    return urls


def schema_errors(obj: dict) -> list[tuple[str, jsonschema.ValidationError]]:
    """(schema URL, error) for everything wrong with a STAC object, offline: what
    jsonschema's Draft7Validator reports, with the compiled verdict as a shortcut for the
    schemas the object satisfies."""
    errors: list[tuple[str, jsonschema.ValidationError]] = []
    for url in _schema_urls(obj):
        if not _fast_valid(url, obj):
            errors.extend((url, e) for e in _validator(url).iter_errors(obj))
    return errors


def reference_errors(obj: dict) -> list[tuple[str, jsonschema.ValidationError]]:
    """:func:`schema_errors` by jsonschema alone (no compiled shortcut), to check the
    shortcut against and for tools that want the slow, plain path."""
    return [(url, e) for url in _schema_urls(obj) for e in _validator(url).iter_errors(obj)]


def is_valid(obj: dict) -> bool:
    """Whether a STAC object validates against every schema it declares."""
    return not schema_errors(obj)

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


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 4
_short.maxlevel = 2


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "pattern":
        return f"{_short.repr(error.instance)} does not have the required form " \
            f"({error.schema_path[-2]})" if len(error.schema_path) > 1 else \
            f"{_short.repr(error.instance)} does not have the required form"
    text = error.message
    return text if len(text) <= 160 else text[:157] + "..."


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors to fix for ``error``: the deepest one (it says most about what is wrong
    inside anyOf/oneOf) first, then the other plain errors of the same anyOf/oneOf branch
    (each a field of its own: the same branch would be chosen again for each of them)."""
    leaf = max([error, *error.context], key=lambda e: len(e.absolute_path))
    if leaf is error or not leaf.relative_schema_path:
        return [leaf]
    branch = leaf.relative_schema_path[0]
    return [leaf, *(e for e in error.context if e is not leaf and not e.context
                    and e.relative_schema_path and e.relative_schema_path[0] == branch)]


def _touches_geometry(error: jsonschema.ValidationError) -> bool:
    return any(path and path[0] in ("geometry", "bbox")
               for path in [error.absolute_path, *(e.absolute_path for e in error.context)])


def repair(obj: dict, *, max_rounds: int = 25,
           in_place: bool = False) -> tuple[dict, list[str]]:
    """A copy of ``obj`` that validates, and what was changed to get there.

    Rejected fields are normalised when unambiguous (``"2.7"`` → ``"2.7.0"`` where semver is
    required) or removed; a declared extension whose schema still fails is undeclared; a
    geometry (from ``extent.spatial``) the core schema rejects is left out with its bbox.
    ``in_place``: repair ``obj`` itself, for a caller that owns it (the crawl builds each
    item once: copying it only to validate it would cost more than validating it).

    Each round fixes the first field-level error and every other one that is a plain error
    on a field of its own (not inside ``anyOf``/``oneOf``, where one fix may settle others),
    then validates again: an asset rule that gives a thousand files a bad field costs one
    round, not a thousand.
    """
    if not in_place:
        obj = copy.deepcopy(obj)
    problems: list[str] = []
    for _ in range(max_rounds):
        errors = schema_errors(obj)
        if not errors:
            return obj, problems
        changed = False
        fixed_here: set[tuple[int, Any]] = set()
        for _url, error in errors:
            if changed and error.context:
                continue  # inside anyOf/oneOf: may be settled already, see the next round
            for leaf in _leaves(error):
                path = list(leaf.absolute_path)
                owner = _owner(obj, path)
                if owner is None:
                    continue
                container, key, depth = owner
                if (id(container), key) in fixed_here or key not in container:
                    continue
                fixed_here.add((id(container), key))
                where = ".".join(str(p) for p in path[: depth + 1])
                value = container[key]
                # only a value rejected as a whole can be normalised; deeper errors drop it
                fixable, fixed = (_normalise(value, leaf) if len(path) == depth + 1
                                  else (False, None))
                if fixable:
                    container[key] = fixed
                    problems.append(f"{where}: {_short.repr(value)} normalised to "
                                    f"{_short.repr(fixed)} ({_message(leaf)})")
                else:
                    del container[key]
                    problems.append(f"{where} left out: {_message(leaf)}")
                changed = True
        if not changed:
            # nothing field-level to fix: undeclare the failing extension (never the core)
            url, error = errors[0]
            if url in obj.get("stac_extensions", []):
                obj["stac_extensions"] = [u for u in obj["stac_extensions"] if u != url]
                problems.append(f"extension {url} not declared: {_message(error)}")
                continue
            geometric = next((e for _u, e in errors if _touches_geometry(e)), None)
            if geometric is not None and (obj.get("geometry") is not None or "bbox" in obj):
                obj["geometry"] = None
                obj.pop("bbox", None)
                problems.append(f"extent.spatial ignored: the geometry is not one a STAC item "
                                f"may have ({_message(geometric)})")
                continue
            raise jsonschema.ValidationError(f"cannot repair: {error.message}")
    raise jsonschema.ValidationError("cannot repair: too many problems")
