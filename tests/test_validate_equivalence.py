"""The fast validation path gives jsonschema's verdicts and errors.

Items are validated on every crawl with schemas compiled to Python (fastjsonschema), falling
back to jsonschema's Draft7Validator for the errors of what the compiled code rejects. Here
plain jsonschema (a validator built from the shipped schemas, as the catalog used to do) is
the reference: on the test corpus, on synthetic projects and on thousands of deterministic
mutations of them (wrong types, bad patterns, trailing newlines, NaN, duplicates, missing
keys, every field the extension schemas define set to hostile values), the compiled verdict
of each schema, the verdict and the list of errors all match the reference.
"""

from __future__ import annotations

import copy
import math
import random
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from sharinghub_server.catalog import validate as v
from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
from sharinghub_server.catalog.collection import build_collection
from sharinghub_server.catalog.dvc_outputs import is_dvc_file
from sharinghub_server.catalog.item import project_items
from sharinghub_server.index.store import CollectionSummary
from sharinghub_server.sources.records import ProjectRecord, Release
from tests.support.corpus import PROJECTS, record_of
from tests.support.gitlab_server import FakeProject, make_synthetic_projects

EXTENSIONS = sorted(u for u in v.known_schemas() if "stac-extensions" in u)


# --- the reference: plain jsonschema over the shipped schemas ------------------------------


def _reference_registry() -> Registry:
    """The shipped schemas (loaded up front, as retrieving them on each ``$ref`` would only
    make this test slower, not different)."""
    return Registry().with_resources(
        (url, Resource.from_contents(v._contents(url))) for url in v.known_schemas()).crawl()


_REGISTRY = _reference_registry()
_REFERENCE: dict[str, jsonschema.Draft7Validator] = {}


def reference(url: str) -> jsonschema.Draft7Validator:
    if url not in _REFERENCE:
        _REFERENCE[url] = jsonschema.Draft7Validator(v._contents(url), registry=_REGISTRY)
    return _REFERENCE[url]


def described(errors: list[tuple[str, jsonschema.ValidationError]]) -> list[tuple]:
    return [(url, e.message, list(e.absolute_path), e.validator, list(e.schema_path))
            for url, e in errors]


def reference_errors(obj: dict) -> list[tuple]:
    return described([(url, e) for url in v._schema_urls(obj)
                      for e in reference(url).iter_errors(obj)])


def reference_by_schema(obj: dict) -> list[tuple[str, list[tuple]]]:
    return [(url, described([(url, e) for e in reference(url).iter_errors(obj)]))
            for url in v._schema_urls(obj)]


def assert_same(obj: dict, label: str) -> bool | None:
    """Fast path == reference for ``obj``; returns the verdict (None when the object
    declares schemas that cannot be validated: unknown, or not a list of URLs)."""
    try:
        v._schema_urls(obj)
    except (v.UnknownSchema, TypeError, AttributeError) as exc:
        with pytest.raises(type(exc)):
            v.schema_errors(obj)
        return None
    by_schema = reference_by_schema(obj)
    expected = [e for _, errors in by_schema for e in errors]
    for url, errors in by_schema:
        compiled = v._fast_valid(url, obj)
        assert compiled == (not errors), f"{label}: compiled verdict {compiled} for {url}"
    assert described(v.schema_errors(obj)) == expected, label
    assert v.is_valid(obj) == (not expected), label
    return not expected


# --- objects to validate --------------------------------------------------------------------


def _synthetic_record(p: FakeProject) -> ProjectRecord:
    files = {k: (c if isinstance(c, str) else c.decode(errors="replace"))
             for k, c in p.files.items()}
    lic = p.license if isinstance(p.license, dict) else {}
    return ProjectRecord(
        source="gitlab:https://gitlab.example.com", id=p.path_with_namespace, name=p.name,
        topics=list(p.topics), created_at=p.created_at.isoformat(),
        last_activity_at=p.last_activity_at.isoformat(), description=p.description or "",
        web_url=f"https://gitlab.example.com/{p.path_with_namespace}",
        host_name="GitLab (https://gitlab.example.com)", host_url="https://gitlab.example.com",
        gitlab_id=p.id, star_count=p.star_count, readme=files.get("README.md"),
        files=sorted(files), license_id=(lic.get("key") or "").upper() or None,
        releases=[Release(tag_name=r["tag_name"], name=r.get("name") or "",
                          released_at=r["released_at"].isoformat(),
                          description=r.get("description") or "") for r in p.releases],
        dvc_files={k: c for k, c in files.items() if is_dvc_file(k)})


def corpus_items() -> list[dict]:
    items = []
    for entry in PROJECTS:
        items.extend(project_items(record_of(entry), DEFAULT_CATEGORIES).items)
    return items


def synthetic_items(n: int = 40) -> list[dict]:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    items = []
    for p in make_synthetic_projects(n, seed=7, now=now):
        items.extend(project_items(_synthetic_record(p), DEFAULT_CATEGORIES).items)
    return items


def rich_items() -> list[dict]:
    """Items declaring every shipped extension, with plausible fields of each, so that the
    mutations reach deep into the extension schemas."""
    base = copy.deepcopy(corpus_items()[1])
    base["stac_extensions"] = list(EXTENSIONS)
    props = base["properties"]
    props.update({
        "mlm:name": "model-x", "mlm:architecture": "UNet", "mlm:tasks": ["segmentation"],
        "mlm:framework": "PyTorch", "mlm:framework_version": "2.7.0",
        "mlm:input": [{"name": "x", "bands": [], "input": {
            "shape": [-1, 3, 64, 64], "dim_order": ["batch", "channel", "height", "width"],
            "data_type": "float32"}}],
        "mlm:output": [{"name": "y", "tasks": ["segmentation"], "result": {
            "shape": [-1, 1, 64, 64], "dim_order": ["batch", "channel", "height", "width"],
            "data_type": "uint8"}}],
        "mlm:pretrained": True, "mlm:pretrained_source": "ImageNet",
        "eo:cloud_cover": 12.5, "eo:snow_cover": 1,
        "label:properties": ["class"], "label:classes": [{"name": "class", "classes": [1, 2]}],
        "label:description": "d", "label:type": "raster", "label:tasks": ["segmentation"],
        "label:methods": ["manual"],
        "processing:level": "L2", "processing:lineage": "x",
        "version": "1.0.0", "deprecated": False,
        "sci:doi": "10.1000/xyz", "sci:citation": "c",
        "classification:classes": [{"value": 1, "name": "water"}],
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 10}],
    })
    base["assets"]["weights"] = {"href": "w.onnx", "roles": ["mlm:model"],
                                 "mlm:artifact_type": "onnx", "file:size": 10,
                                 "file:checksum": "d50110" + "0" * 32, "eo:bands": []}
    variants = [base]
    for url in EXTENSIONS:  # and each extension alone
        one = copy.deepcopy(base)
        one["stac_extensions"] = [url]
        variants.append(one)
    return variants


def collections() -> list[dict]:
    summary = CollectionSummary(count=3, bbox=(-10.5, 35.0, 30.25, 60.0),
                                start="2019-01-01T00:00:00Z", end="2024-06-01T12:30:00Z")
    return [build_collection(c, s) for c in DEFAULT_CATEGORIES for s in (summary, None)]


# --- mutations ------------------------------------------------------------------------------


def _schema_facts() -> tuple[list[str], list[Any]]:
    """Every property name the shipped schemas define, and every enum/const/example value
    they mention: what the mutations try."""
    names: set[str] = set()
    values: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("properties", "patternProperties") and isinstance(value, dict):
                    names.update(k for k in value if key == "properties")
                    for sub in value.values():
                        walk(sub)
                elif key == "enum" and isinstance(value, list):
                    values.extend(value)
                elif key in ("const", "default"):
                    values.append(value)
                elif key == "examples" and isinstance(value, list):
                    values.extend(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for x in node:
                walk(x)

    for url in sorted(v.known_schemas()):  # (a set: in hash order, which varies by process)
        walk(v._contents(url))
    unique: list[Any] = []
    for x in values:
        if not any(type(x) is type(y) and x == y for y in unique):
            unique.append(x)
    return sorted(names), unique


NAMES, SCHEMA_VALUES = _schema_facts()

HOSTILE: list[Any] = [
    None, True, False, 0, -1, 1, 1.0, 2.5, -0.0, 1e308, -1e308, 10**30, float("nan"),
    float("inf"), float("-inf"), "", " ", "x", "x\n", "\n", "2.7", "2.7.0", "2.7.0\n", "v1",
    "MIT", "MIT\n", "CC-BY-4.0", "not an id", "d50110" + "0" * 32, "d50110" + "0" * 32 + "\n",
    "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z\n", "not a date", "ü" * 3, "a" * 5000,
    "https://example.org/x", "10.1000/xyz", [], [None], [1], [1, 1.0], [1, True], ["a", "a"],
    ["a"], [[]], [{}], [{"a": 1}, {"a": 1}], [{"a": 1, "b": 2}, {"b": 2, "a": 1}], {},
    {"a": 1}, {"href": "x"}, {"name": "x"}, {"href": "x", "roles": ["mlm:model"]},
    {"type": "Point", "coordinates": [0, 0]}, {"type": "Point", "coordinates": [0]},
]


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _get(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _value(rng: random.Random) -> Any:
    pool = HOSTILE if rng.random() < 0.6 else SCHEMA_VALUES
    value = copy.deepcopy(rng.choice(pool))
    if rng.random() < 0.1:
        value = [value]
    return value


def mutate(obj: dict, rng: random.Random) -> dict:
    """``obj`` changed in one to three random ways."""
    obj = copy.deepcopy(obj)
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(obj))
        path = rng.choice(paths[1:]) if len(paths) > 1 else ()
        parent, key = _get(obj, path[:-1]), path[-1] if path else None
        op = rng.randrange(9)
        if op == 0 and key is not None:  # delete
            del parent[key]
        elif op == 1 and key is not None:  # replace
            parent[key] = _value(rng)
        elif op == 2 and isinstance(parent, list) and key is not None:  # duplicate
            parent.append(copy.deepcopy(parent[key]))
        elif op == 3 and key is not None and isinstance(parent[key], str):  # near miss
            parent[key] = rng.choice([parent[key] + "\n", " " + parent[key],
                                      parent[key].upper(), parent[key][:-1]])
        elif op == 4 and key is not None and isinstance(parent[key], int | float) \
                and not isinstance(parent[key], bool):  # number edges
            parent[key] = rng.choice([float(parent[key]), -parent[key], parent[key] + 0.5,
                                      bool(parent[key]), str(parent[key])])
        elif op == 5:  # a field some schema defines, somewhere
            # (an earlier mutation may have made assets or links anything)
            assets, links = obj.get("assets"), obj.get("links")
            where = rng.choice([
                obj, obj.get("properties"),
                *[a for a in (assets.values() if isinstance(assets, dict) else ())
                  if isinstance(a, dict)],
                *[x for x in (links if isinstance(links, list) else ()) if isinstance(x, dict)]])
            if isinstance(where, dict):
                where[rng.choice(NAMES)] = _value(rng)
        elif op == 6:  # declare another extension
            exts = obj.get("stac_extensions")
            if isinstance(exts, list):
                exts.append(rng.choice([*EXTENSIONS, *exts] if exts else EXTENSIONS))
        elif op == 7 and isinstance(obj.get("properties"), dict):  # time fields
            props = obj["properties"]
            field = rng.choice(["datetime", "start_datetime", "end_datetime", "created"])
            if rng.random() < 0.5:
                props.pop(field, None)
            else:
                props[field] = rng.choice([None, "2020-01-01T00:00:00Z", 5, ""])
        elif op == 8 and key is not None and isinstance(parent[key], dict | list):  # empty
            parent[key] = type(parent[key])()
    return obj


BASES = [*corpus_items(), *synthetic_items(), *rich_items(), *collections()]


# --- tests ----------------------------------------------------------------------------------


def test_every_base_object_is_valid_both_ways():
    verdicts = [assert_same(obj, obj["id"]) for obj in BASES]
    # the corpus, the synthetic items and the collections are valid; the rich items probe
    # the extension schemas, valid or not, and must only agree
    assert all(verdicts[: len(BASES) - len(rich_items()) - len(collections())])
    assert all(verdicts[-len(collections()):])


@pytest.mark.parametrize("chunk", range(6))
def test_mutated_objects_get_the_same_verdicts_and_errors(chunk):
    rng = random.Random(1000 + chunk)
    invalid = valid = 0
    for n in range(400):
        base = BASES[(chunk * 400 + n) % len(BASES)]
        obj = mutate(base, rng)
        verdict = assert_same(obj, f"{base['id']} mutation {chunk}/{n}")
        valid += verdict is True
        invalid += verdict is False
    # the mutations explore both sides of the verdict
    assert invalid > 50 and valid > 20


def test_hostile_values_in_every_defined_field():
    """Each property name the schemas define, with each hostile value, in properties and in
    an asset of an item that declares every extension."""
    (rich, *_) = rich_items()
    checked = 0
    for i, name in enumerate(NAMES):
        for j, value in enumerate(HOSTILE):
            if (i + j) % 20:  # a deterministic twentieth of the grid keeps this quick
                continue
            obj = copy.deepcopy(rich)
            obj["properties"][name] = copy.deepcopy(value)
            obj["assets"]["weights"][name] = copy.deepcopy(value)
            assert_same(obj, f"{name}={value!r}")
            checked += 1
    assert checked > 300


def test_trailing_newlines_and_tuples_are_judged_like_jsonschema():
    """fastjsonschema's own quirks, fixed: ``$`` in a pattern accepts a trailing newline
    (``re.search``), and a tuple is not a JSON array."""
    (item, *_) = corpus_items()
    for value in ("MIT\n", "CC-BY-4.0\n"):
        obj = copy.deepcopy(item)
        obj["properties"]["license"] = value
        assert_same(obj, repr(value))
    obj = copy.deepcopy(item)
    obj["bbox"] = tuple(obj.get("bbox") or (0, 0, 1, 1))
    obj["properties"]["keywords"] = ("a", "b")
    assert_same(obj, "tuples")
    assert not v.is_valid(obj)


def test_not_json_numbers_and_strings():
    (item, *_) = corpus_items()
    for value in (float("nan"), float("inf"), -0.0, 2**70, "\x00", "\ud800x"):
        for field in ("gsd", "eo:cloud_cover", "title", "license", "mlm:framework_version"):
            obj = copy.deepcopy(item)
            obj["properties"][field] = value
            obj["stac_extensions"] = [*EXTENSIONS]
            assert_same(obj, f"{field}={value!r}")


def test_repaired_items_validate_with_plain_jsonschema():
    """What the crawl serves after repair is valid for the reference too."""
    rng = random.Random(7)
    repaired = 0
    for n in range(300):
        base = BASES[n % (len(BASES) - len(collections()))]
        if base["type"] != "Feature":
            continue
        obj = mutate(base, rng)
        try:
            fixed, _ = v.repair(obj)
        except jsonschema.ValidationError:
            continue  # structural damage (geometry, type) is not ours to repair
        assert reference_errors(fixed) == [], f"mutation {n}"
        repaired += 1
    assert repaired > 100


def test_first_use_from_many_threads_compiles_once_and_agrees():
    objs = [mutate(BASES[i % len(BASES)], random.Random(i)) for i in range(64)]
    expected = [reference_errors(o) for o in objs]
    results: list[list[tuple] | None] = [None] * len(objs)

    def work(i: int) -> None:
        results[i] = described(v.schema_errors(objs[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(objs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == expected


def test_unknown_schemas_are_refused_the_same_way():
    (item, *_) = corpus_items()
    obj = {**item, "stac_extensions": ["https://example.org/unknown/schema.json"]}
    with pytest.raises(v.UnknownSchema):
        v.schema_errors(obj)
    with pytest.raises(v.UnknownSchema):
        v.reference_errors(obj)


def test_nan_is_not_equal_to_itself_but_still_judged_alike():
    (item, *_) = corpus_items()
    obj = copy.deepcopy(item)
    obj["properties"]["keywords"] = [float("nan"), float("nan")]
    assert math.isnan(obj["properties"]["keywords"][0])
    assert_same(obj, "nan keywords")
