"""Hypothesis strategies for bad project metadata: READMEs whose YAML front matter is broken,
mistyped, huge, deeply nested, self-referential or an alias bomb, in bytes that are not always
UTF-8; and the projects (local folders, GitLab test-server projects) that carry them.

Real front matter is written by hand, copied between projects and edited by tools that know
nothing of STAC: every SharingHub key (``title``, ``license``, ``extent``, ``providers``,
``links``, ``related``, ``assets``, ``extensions`` and their blocks, ``mlm:*``,
``sharinghub``, ``topics``, ``keywords``, ``preview``, anything else) gets plausible values,
plausible mistakes and values of every other type. The front matter is then written by a YAML
emitter, mutated as text (lines cut, swapped, re-indented, hostile snippets inserted), fenced
in the ways people fence it, and encoded with the bytes editors and copy-paste leave behind.

Sizes are parameters: the CI tests keep alias bombs and big READMEs small enough that code
which expands them still ends (and fails the size properties), ``benchmarks/bad_metadata.py``
uses the real sizes (a billion laughs, 10 MB READMEs).
"""

from __future__ import annotations

import dataclasses
import functools
import string
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
from sharinghub_server.catalog.validate import known_schemas
from sharinghub_server.sources.records import ProjectRecord

T = TypeVar("T")

CATEGORY_TOPICS: tuple[str, ...] = tuple(c.gitlab_topic for c in DEFAULT_CATEGORIES)
MLM_URL = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"
#: extension schemas the package ships (declaring one makes its block validated)
KNOWN_EXTENSIONS: tuple[str, ...] = tuple(
    sorted(u for u in known_schemas() if "stac-extensions.github.io" in u))


@dataclasses.dataclass(frozen=True)
class Limits:
    """How big generated hostile values may get. The CI defaults keep code that expands
    them (or scans them quadratically) within seconds; the benchmark raises them."""

    #: alias bombs: width ** depth at most this many leaves once expanded
    bomb_leaves: int = 50_000
    #: nesting depth of flow/block collections
    max_depth: int = 2_000
    #: bytes of a README, body included (code whose time is quadratic in the body's size
    #: still takes seconds, not hours, at the CI size)
    max_bytes: int = 32 * 1024


CI_LIMITS = Limits()
#: the sizes of the issue: a billion laughs, deep nesting, 10 MB READMEs
FULL_LIMITS = Limits(bomb_leaves=10**9, max_depth=100_000, max_bytes=10 * 1024 * 1024)


# --- scalars and values -------------------------------------------------------------------

#: strings that mean something to some parser on the way (YAML, dates, URLs, templates)
_TRICKY_STRINGS = [
    "", " ", "..", "null", "~", "None", "true", "no", "0", "-0", "1e999", ".nan", "NaN",
    "{path}", "{key}", "{path}{key}", "*.tif", "**", "[", "]", "{", "}", "#", "---", "...",
    "2020-13-45", "2020-02-30T00:00:00Z", "0000-01-01", "9999-12-31T23:59:59Z", "yesterday",
    "2024-06-01T12:30:00Z", "2024-06-01", "1.2.3", "2.7", "MIT", "proprietary", "CC-BY-4.0",
    "http://", "https://", "https://doi.org/10.1000/xyz", "//evil.example/x", "../../etc/passwd",
    "/abs/path.png", "C:\\win\\path", "javascript:alert(1)", "\x00", "a\x00b", "\ud800",
    "\udfff x", "\u202e", "\ufeff", "\u0085", "\t", "\r\n", "é", "💥", "ℌ",
    "POINT (1 2)", "POLYGON EMPTY", "sharinghub:aimodel", "mlm:model",
]


@functools.cache
def _offsets() -> st.SearchStrategy[timezone]:
    return st.builds(lambda m: timezone(timedelta(minutes=m)),
                     st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1))


@functools.cache
def dates() -> st.SearchStrategy[date]:
    return st.one_of(st.dates(), st.sampled_from([date(1, 1, 1), date(9999, 12, 31)]))


@functools.cache
def datetimes() -> st.SearchStrategy[datetime]:
    """Naive and aware, extreme years included (offsets that push them out of range)."""
    extreme = st.builds(lambda y, tz: datetime(y, 1 if y == 1 else 12, 1 if y == 1 else 31,
                                               0 if y == 1 else 23, tzinfo=tz),
                        st.sampled_from([1, 9999]), _offsets())
    return st.one_of(st.datetimes(), st.datetimes(timezones=_offsets()), extreme)


@functools.cache
def numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**400, -(10**400)]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=-200, max_value=200),
    )


@functools.cache
def texts(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=max_size), st.sampled_from(_TRICKY_STRINGS),
                     st.text(string.ascii_letters + string.digits + "-_:./", max_size=max_size))


@functools.cache
def scalars() -> st.SearchStrategy[Any]:
    """What a YAML scalar can load as with the safe loader (bytes: ``!!binary``)."""
    return st.one_of(st.none(), st.booleans(), numbers(), texts(), dates(), datetimes(),
                     st.binary(max_size=8))


@functools.cache
def values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any YAML value: scalars, lists, mappings (string and other keys), sets."""
    keys = st.one_of(texts(12), st.integers(), st.booleans(), st.none(), st.floats())
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(keys, inner, max_size=4),
            st.sets(texts(8), max_size=3),
        ),
        max_leaves=max_leaves,
    )


def maybe(good: st.SearchStrategy[Any], weight_bad: int = 1) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, else any value at all."""
    return st.one_of(*([good] * 3), *([values()] * weight_bad))


# --- SharingHub keys ----------------------------------------------------------------------

_LON = st.one_of(st.floats(min_value=-180, max_value=180), numbers(), st.booleans(), texts(6))
_LAT = st.one_of(st.floats(min_value=-90, max_value=90), numbers(), st.booleans(), texts(6))


@functools.cache
def bboxes() -> st.SearchStrategy[Any]:
    """Valid boxes, out-of-range ones, wrong lengths and types, a box in a list."""
    good = st.tuples(st.floats(-180, 180), st.floats(-90, 90), st.floats(-180, 180),
                     st.floats(-90, 90)).map(lambda b: [min(b[0], b[2]), min(b[1], b[3]),
                                                        max(b[0], b[2]), max(b[1], b[3])])
    return st.one_of(
        good,
        st.lists(_LON, min_size=4, max_size=4),
        st.tuples(_LON, _LAT, _LON, _LAT).map(list),
        st.lists(numbers(), max_size=7),
        good.map(lambda b: [b]),
        st.lists(good, min_size=2, max_size=3),
    )


def _coord_text(x: Any) -> str:
    return x if isinstance(x, str) else repr(x)


@functools.cache
def wkts() -> st.SearchStrategy[str]:
    """WKT: valid points and polygons, unclosed rings, out-of-range and non-finite
    coordinates, wrong keywords, empty geometries, plain text."""
    pair = st.tuples(_LON, _LAT).map(lambda p: f"{_coord_text(p[0])} {_coord_text(p[1])}")
    ring = st.lists(pair, min_size=1, max_size=8)
    return st.one_of(
        pair.map(lambda p: f"POINT ({p})"),
        ring.map(lambda r: f"POLYGON (({', '.join([*r, r[0]])}))"),
        ring.map(lambda r: f"POLYGON (({', '.join(r)}))"),
        ring.map(lambda r: f"LINESTRING ({', '.join(r)})"),
        ring.map(lambda r: f"MULTIPOINT ({', '.join(r)})"),
        st.sampled_from(["POINT EMPTY", "POLYGON EMPTY", "GEOMETRYCOLLECTION EMPTY",
                         "POINT (nan nan)", "POINT (inf 0)", "POINT (1e400 0)",
                         "POINT (1 2 3 4 5)", "POLYGON ((0 0, 1 1))", "POINT(",
                         "SRID=4326;POINT (1 2)", "CIRCLE (0 0 1)",
                         "GEOMETRYCOLLECTION (POINT (1 2), GEOMETRYCOLLECTION (POINT (3 4)))",
                         "POLYGON ((0 0, 0 0, 0 0, 0 0))", "POINT (200 100)"]),
        texts(),
    )


@functools.cache
def geojsons() -> st.SearchStrategy[Any]:
    """GeoJSON-ish geometries: right and wrong types, coordinates of every shape."""
    coords = st.recursive(st.one_of(_LON, _LAT), lambda c: st.lists(c, max_size=5), max_leaves=10)
    kinds = st.one_of(st.sampled_from(["Point", "LineString", "Polygon", "MultiPoint",
                                       "MultiPolygon", "GeometryCollection", "Feature",
                                       "point", "Nope", ""]), values(3))
    return st.fixed_dictionaries({}, optional={
        "type": kinds, "coordinates": st.one_of(coords, values(4)),
        "geometries": st.lists(st.fixed_dictionaries({"type": kinds, "coordinates": coords}),
                               max_size=2),
        "bbox": bboxes()})


@functools.cache
def spatial() -> st.SearchStrategy[Any]:
    return st.one_of(bboxes(), wkts(), geojsons(), values())


@functools.cache
def temporal() -> st.SearchStrategy[Any]:
    when = st.one_of(dates(), datetimes(), texts(), st.none(), numbers(),
                     datetimes().map(lambda d: d.isoformat()))
    return st.one_of(st.lists(when, min_size=2, max_size=2), st.lists(when, max_size=4),
                     values())


_ROLES = ["producer", "licensor", "processor", "host", "data", "metadata", "thumbnail",
          "mlm:model", "source", ""]


@functools.cache
def providers() -> st.SearchStrategy[Any]:
    provider = st.fixed_dictionaries({}, optional={
        "name": maybe(texts()), "roles": maybe(st.lists(st.sampled_from(_ROLES), max_size=3)),
        "url": maybe(texts()), "description": values(3)})
    return maybe(st.lists(st.one_of(provider, values(3)), max_size=4))


@functools.cache
def hrefs() -> st.SearchStrategy[Any]:
    return maybe(st.one_of(
        st.sampled_from(["https://example.org/x", "docs/guide.md", "./img/p.png", "../../up",
                         "//host/path", "mailto:a@b", "data:,x", "?q=1", "#frag", ""]),
        texts()))


@functools.cache
def links() -> st.SearchStrategy[Any]:
    link = st.fixed_dictionaries({}, optional={
        "href": hrefs(), "rel": maybe(st.sampled_from(["related", "license", "self", "root",
                                                       "derived_from", "cite-as", ""])),
        "type": maybe(st.sampled_from(["text/html", "application/json", ""])),
        "title": values(3), "method": values(2)})
    return maybe(st.lists(st.one_of(link, values(3)), max_size=4))


@functools.cache
def related() -> st.SearchStrategy[Any]:
    url = st.one_of(st.sampled_from(["https://gitlab.example.com/g/p", "g/p", "", "https://",
                                     "https://gitlab.example.com/"]), texts())
    return maybe(st.dictionaries(texts(12), st.one_of(url, st.lists(url, max_size=3),
                                                      values(3)), max_size=3))


@functools.cache
def asset_rules() -> st.SearchStrategy[Any]:
    globs = st.one_of(st.sampled_from(["*.tif", "*.onnx", "**", "*", "weights/*.pt", "",
                                       "/abs", "a//b", "[", "*.{tif,png}", "..", "*" * 50]),
                      texts(12))
    rule = st.fixed_dictionaries({}, optional={
        "glob": maybe(globs), "path": maybe(globs), "key": maybe(texts(12)),
        "href": hrefs(), "type": maybe(texts(12)),
        "type-as": maybe(st.sampled_from(["text", "json", "geotiff", "cog", "notebook", "zip",
                                          "nope", ""])),
        "title": maybe(texts()), "description": maybe(texts()),
        "roles": maybe(st.lists(st.sampled_from(_ROLES), max_size=3)),
        "mlm:artifact_type": values(3), "file:size": values(3), "eo:bands": values(3),
        "sharinghub:x": values(2)})
    return maybe(st.lists(st.one_of(globs, rule, values(3)), max_size=4))


@functools.cache
def extensions() -> st.SearchStrategy[Any]:
    prefix = st.one_of(st.sampled_from(["mlm", "eo", "sci", "file", "label", "version",
                                        "processing", "raster", "classification", "foo",
                                        "title", "extent", "sharinghub", "mlm:x", ""]),
                       texts(8))
    url = st.one_of(st.sampled_from(KNOWN_EXTENSIONS),
                    st.sampled_from(["https://stac-extensions.github.io/mlm/v9.9.9/schema.json",
                                     "https://example.org/schema.json", ""]),
                    values(2))
    return maybe(st.dictionaries(prefix, url, max_size=3))


@functools.cache
def mlm_blocks() -> st.SearchStrategy[Any]:
    """The mlm mapping: each field plausible, mistyped or missing."""
    fields = {
        "name": texts(), "architecture": texts(),
        "tasks": st.lists(st.sampled_from(["classification", "semantic-segmentation",
                                           "segmentation", "regression", "x"]), max_size=3),
        "framework": st.sampled_from(["PyTorch", "onnxruntime", "TensorFlow", "scikit-learn",
                                      "", "x"]),
        "framework_version": st.one_of(st.sampled_from(["2.7", "1.18", "2", "1.2.3", "v1",
                                                        "01.2", ""]), numbers()),
        "memory_size": numbers(), "total_parameters": numbers(), "pretrained": st.booleans(),
        "pretrained_source": texts(), "batch_size_suggestion": numbers(),
        "accelerator": st.sampled_from(["cuda", "amd64", "xla", "x"]),
        "accelerator_constrained": st.booleans(), "accelerator_summary": texts(),
        "accelerator_count": numbers(), "hyperparameters": values(4),
        "input": st.lists(values(4), max_size=2), "output": st.lists(values(4), max_size=2),
    }
    return maybe(st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in fields.items()}))


@functools.cache
def ext_block() -> st.SearchStrategy[Any]:
    """The mapping of another declared prefix (``eo:``, ``sci:``...)."""
    return maybe(st.dictionaries(st.sampled_from(["cloud_cover", "bands", "doi", "citation",
                                                  "publications", "snow_cover", "version",
                                                  "deprecated", "size", "x"]),
                                 values(4), max_size=3))


@functools.cache
def sharinghub_overrides() -> st.SearchStrategy[Any]:
    return maybe(st.dictionaries(
        st.one_of(st.sampled_from(["id", "path", "stars", "default-branch", "dvc-init",
                                   "map-viewer", "store-s3", "name", "mlm-probe"]), texts(8)),
        values(3), max_size=3))


@functools.cache
def topics() -> st.SearchStrategy[Any]:
    return maybe(st.lists(st.one_of(st.sampled_from(CATEGORY_TOPICS), texts(12)), max_size=4))


#: top-level keys a README may set beside SharingHub's: STAC fields the mapping computes, core
#: common metadata, and names that are nobody's
PASSTHROUGH_KEYS = ["datetime", "start_datetime", "end_datetime", "created", "updated", "type",
                    "id", "stac_version", "geometry", "bbox", "properties", "assets", "links",
                    "collection", "description", "keywords", "gsd", "platform", "instruments",
                    "constellation", "mission", "license", "title", "providers", "eo:bands",
                    "mlm:name", "sharinghub:stars", "1", "", " ", "null"]


@functools.cache
def front_matters() -> st.SearchStrategy[dict[str, Any]]:
    """A front-matter mapping over every SharingHub key, each present or not."""
    known = st.fixed_dictionaries({}, optional={
        "title": maybe(texts()), "description": maybe(texts()),
        "license": maybe(st.sampled_from(["MIT", "CC-BY-4.0", "Apache-2.0", "proprietary",
                                          "other", "not a license", ""])),
        "license-url": maybe(texts()),
        "extent": maybe(st.fixed_dictionaries({}, optional={"spatial": spatial(),
                                                             "temporal": temporal()})),
        "providers": providers(), "links": links(), "related": related(),
        "assets": asset_rules(), "extensions": extensions(), "mlm": mlm_blocks(),
        "eo": ext_block(), "sci": ext_block(), "foo": ext_block(),
        "sharinghub": sharinghub_overrides(), "topics": topics(),
        "keywords": maybe(st.lists(texts(12), max_size=4)),
        "preview": maybe(st.one_of(st.sampled_from(["preview.png", "img/p.jpg",
                                                    "https://example.org/p.png", ""]),
                                   texts())),
    })
    extra = st.dictionaries(st.one_of(st.sampled_from(PASSTHROUGH_KEYS), texts(12)), values(),
                            max_size=3)
    return st.builds(lambda k, e: {**e, **k}, known, extra)


# --- YAML text ----------------------------------------------------------------------------


def dump(data: Any, *, flow: bool | None = None, unicode: bool = True) -> str:
    """YAML as an emitter writes it (safe types only: ``!!binary``, ``!!set``, dates)."""
    return yaml.safe_dump(data, default_flow_style=flow, allow_unicode=unicode,
                          sort_keys=False, width=80)


def alias_bomb(width: int, depth: int, key: str = "lol", *, mapping: bool = False,
               pairs: bool = False) -> str:
    """Billion laughs: ``depth`` anchored levels, each ``width`` aliases of the one before,
    the last one under ``key`` (``width ** depth`` leaves once expanded; ``pairs``: twice,
    inside ``!!pairs``, which loads as tuples)."""
    lines = []
    if mapping:
        lines.append(f"l0: &l0 {{{', '.join(f'k{i}: lol' for i in range(width))}}}")
        for level in range(1, depth):
            lines.append(f"l{level}: &l{level} {{"
                         + ", ".join(f"k{i}: *l{level - 1}" for i in range(width)) + "}")
    else:
        lines.append(f"l0: &l0 [{', '.join(['lol'] * width)}]")
        for level in range(1, depth):
            lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    last = f"*l{depth - 1}"
    lines.append(f"{key}: !!pairs [a: {last}, b: {last}]" if pairs else f"{key}: {last}")
    return "\n".join(lines) + "\n"


def merge_bomb(width: int, depth: int) -> str:
    """Merge keys (``<<``) over aliases: each level merges ``width`` copies of the one
    before (a mapping node list ``width ** depth`` long for a loader that flattens merges
    naively)."""
    lines = [f"m0: &m0 {{{', '.join(f'k{i}: lol' for i in range(width))}}}"]
    for level in range(1, depth):
        lines.append(f"m{level}: &m{level} {{<<: [" + ", ".join([f"*m{level - 1}"] * width)
                     + f"], x{level}: 1}}")
    return "\n".join(lines) + "\n"


def scalar_bomb(length: int, count: int, key: str = "lol") -> str:
    """One long anchored string, aliased ``count`` times (``length * count`` characters once
    expanded, from ``length + 4 * count`` of YAML)."""
    return f"s: &s {'x' * length}\n{key}: [" + ", ".join(["*s"] * count) + "]\n"


@functools.cache
def bomb_shape(max_leaves: int) -> st.SearchStrategy[tuple[int, int]]:
    """(width, depth) whose expansion has at most ``max_leaves`` leaves, bigger ones likelier."""
    def fit(width: int) -> tuple[int, int]:
        depth = 1
        while width ** (depth + 1) <= max_leaves:
            depth += 1
        return width, depth

    return st.integers(min_value=2, max_value=12).map(fit)


@functools.cache
def _bomb_target() -> st.SearchStrategy[str]:
    return st.sampled_from(["lol", "title", "topics", "keywords", "links", "providers",
                            "assets", "mlm", "description", "related"])


_BAD_SCALARS = [
    "0000-01-01", "2020-02-30", "2020-01-01 25:00:00", "2020-01-01T00:00:00+99:00",
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "!!int abc", "!!float x",
    "!!bool maybe", "!!timestamp soon", "!!binary '###'", "!!binary aGVsbG8=", "!!null x",
    "!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!local thing",
    "!!set {a, b}", "!!omap [a: 1, b: 2]", "!!pairs [a: 1]", "!!str {a: 1}", "!!map [1]",
    "*undefined", "&anchor", "0b_", "0x", "0o9", "1e999999", ".nan", "-.inf", "9" * 400,
    "190:20:30", '"\\ud800"', '"\\x00"', '"\\uFFFF"', "'unclosed", '"unclosed', "[1, 2",
    "{a: 1", "{<<: 5}", "{<<: [5]}", "|\n  literal", ">-\n  folded", "? [1, 2]\n: x",
    "@reserved", "`backtick", "%percent",
]


@functools.cache
def bad_scalar_lines() -> st.SearchStrategy[str]:
    """One front-matter line whose value no constructor expects."""
    return st.builds(lambda k, v: f"{k}: {v}",
                     st.sampled_from(["title", "license", "foo", "created", "datetime",
                                      "keywords", "preview", "x"]),
                     st.sampled_from(_BAD_SCALARS))


@functools.cache
def deep_nesting(limits: Limits) -> st.SearchStrategy[str]:
    depth = st.one_of(st.integers(min_value=30, max_value=200),
                      st.integers(min_value=200, max_value=limits.max_depth))
    #: block nesting costs depth² bytes of indentation
    block = min(limits.max_depth, 300 if limits.max_bytes < 2**20 else 1500)
    return st.one_of(
        depth.map(lambda n: "deep: " + "[" * n + "]" * n),
        depth.map(lambda n: "deep: " + "{a: " * n + "1" + "}" * n),
        st.integers(min_value=30, max_value=block).map(
            lambda n: "".join(" " * i + f"k{i}:\n" for i in range(n)) + " " * n + "x\n"),
        depth.map(lambda n: "deep: " + "- " * min(n, 1500) + "x"),
    )


@functools.cache
def hostile_snippets(limits: Limits) -> st.SearchStrategy[str]:
    """Front-matter lines that attack a parser or what runs after it."""
    return st.one_of(
        st.builds(lambda s, k, m, p: alias_bomb(*s, key=k, mapping=m, pairs=p),
                  bomb_shape(limits.bomb_leaves), _bomb_target(), st.booleans(),
                  st.booleans()),
        st.builds(lambda s: merge_bomb(*s), bomb_shape(limits.bomb_leaves)),
        st.builds(lambda n, k: scalar_bomb(
            max(1, min(limits.max_bytes // 4, limits.bomb_leaves // n)), n, key=k),
                  st.integers(min_value=10, max_value=1000), _bomb_target()),
        st.sampled_from(["me: &me [*me]", "me: &me {self: *me}", "a: &a [1]\nb: [*a, *a]",
                         "merge: &m {a: 1}\nuse: {<<: *m, b: 2}", "dup: 1\ndup: 2",
                         "%YAML 1.1", "--- # a document marker inside", "...",
                         "\tindented: with a tab", "key: value: another", "- a list item",
                         "title: 'a' 'b'", ": no key", "? just a key"]),
        bad_scalar_lines(),
        deep_nesting(limits),
    )


@functools.cache
def huge_values(limits: Limits) -> st.SearchStrategy[str]:
    """One big key: a long string, a long list, many keys, a long WKT ring."""
    n = st.integers(min_value=1_000, max_value=max(1_000, limits.max_bytes // 8))
    return st.one_of(
        n.map(lambda k: "title: " + "x" * k),
        n.map(lambda k: "keywords: [" + ", ".join(["kw"] * (k // 4)) + "]"),
        n.map(lambda k: "".join(f"key{i}: {i}\n" for i in range(k // 10))),
        n.map(lambda k: "links: [" + ", ".join(["{href: x}"] * (k // 11)) + "]"),
        n.map(lambda k: "extent: {spatial: 'LINESTRING (" + ", ".join(
            f"{i % 360 - 180} {i % 180 - 90}" for i in range(k // 10)) + ")'}"),
        n.map(lambda k: "assets: [{glob: '*', title: '" + "{path}" * (k // 6) + "'}]"),
    )


@st.composite
def mutated(draw: st.DrawFn, text: str, snippets: st.SearchStrategy[str]) -> str:
    """``text`` with a few line edits: cut, duplicated, swapped, re-indented, truncated, or
    a hostile snippet inserted."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        op = draw(st.sampled_from(["cut", "dup", "swap", "indent", "truncate", "insert",
                                   "insert"]))
        i = draw(st.integers(min_value=0, max_value=max(0, len(lines) - 1)))
        if op == "insert" or not lines:
            lines[i:i] = draw(snippets).splitlines()
        elif op == "cut":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "indent":
            lines[i] = draw(st.sampled_from([" ", "  ", "\t", ""])) + lines[i].lstrip()
        else:
            lines[i] = lines[i][: draw(st.integers(min_value=0, max_value=len(lines[i])))]
    return "\n".join(lines) + "\n"


@functools.cache
def front_matter_texts(limits: Limits = CI_LIMITS) -> st.SearchStrategy[str]:
    """The YAML between the fences: emitted, emitted then mutated, or hostile."""
    snippets = st.one_of(hostile_snippets(limits), huge_values(limits))
    emitted = st.builds(lambda d, flow, uni: dump(d, flow=flow, unicode=uni), front_matters(),
                        st.sampled_from([None, False, True]), st.booleans())
    return st.one_of(
        emitted,
        emitted.flatmap(lambda t: mutated(t, snippets)),
        st.builds(lambda t, s: t + s + "\n", emitted, snippets),
        snippets.map(lambda s: s + "\n"),
    )


@functools.cache
def bodies() -> st.SearchStrategy[str]:
    """Markdown: headings, text, preview images, DOI links, and broken markup."""
    part = st.one_of(
        texts(80),
        st.sampled_from([
            "# Title", "![preview](preview.png)", "![PREVIEW](https://example.org/p.png)",
            "![preview]()", '<img src="img/p.png" alt="Preview">', "<img src=x alt=preview>",
            "[DOI: Someone 2020](https://doi.org/10.1109/CVPRW50498.2020.00113)",
            "see https://doi.org/10.5281/zenodo.1234567", "[broken](https://doi.org/10.",
            "![" * 50, "[x](" * 50, "<img " * 50, "```yaml\n---\nnot: front matter\n---\n```",
        ]),
    )
    return st.lists(part, max_size=8).map("\n\n".join)


#: bytes editors, encodings and copy-paste leave in files
_BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
              b"\x00", b"\x1b[31m", b"\r", b"\x85", b"\xe2\x80", b"\xef\xbb\xbf", b"\x80\x81"]


@st.composite
def readmes(draw: st.DrawFn, limits: Limits = CI_LIMITS,
            topics: Sequence[str] | None = None) -> bytes:
    """A README.md as bytes. ``topics`` (local projects take theirs from the front matter)
    are put first in the front matter, where the edits after them are less likely to lose
    them."""
    fm = draw(front_matter_texts(limits))
    if topics is not None:
        fm = dump({"topics": list(topics)}) + fm
    body = draw(bodies())
    fence = draw(st.sampled_from(["normal", "normal", "normal", "dots", "unclosed", "none",
                                  "bom", "indented", "blank-first", "trailing-spaces"]))
    text = {
        "normal": f"---\n{fm}---\n{body}",
        "dots": f"---\n{fm}...\n{body}",
        "unclosed": f"---\n{fm}{body}",
        "none": f"{fm}\n{body}",
        "bom": f"\ufeff---\n{fm}---\n{body}",
        "indented": f" ---\n{fm}---\n{body}",
        "blank-first": f"\n---\n{fm}---\n{body}",
        "trailing-spaces": f"---  \n{fm}--- \t\n{body}",
    }[fence]
    if draw(st.booleans()):
        text = text.replace("\n", draw(st.sampled_from(["\r\n", "\r", "\n"])))
    data = text.encode("utf-8", "surrogatepass")
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:at] + draw(st.sampled_from(_BAD_BYTES)) + data[at:]
    if draw(st.integers(min_value=0, max_value=19)) == 0:  # a big README: padded body
        size = draw(st.sampled_from([limits.max_bytes // 8, limits.max_bytes // 2,
                                     limits.max_bytes]))
        pad = draw(st.sampled_from([b"lorem ipsum ", b"\xff", b"![preview](", b"[x](",
                                    b"https://doi.org/10.1/", b"\n"]))
        data += pad * ((size - len(data)) // len(pad))
    return data


# --- DVC files ----------------------------------------------------------------------------


@functools.cache
def dvc_outs() -> st.SearchStrategy[Any]:
    """One ``outs`` entry of a ``.dvc`` file or a ``dvc.lock`` stage, each field plausible or
    mistyped."""
    md5 = st.one_of(st.sampled_from(["0123456789abcdef0123456789abcdef",
                                     "0123456789abcdef0123456789abcdef.dir", "ab", ""]),
                    texts(40))
    return maybe(st.fixed_dictionaries({"path": maybe(st.sampled_from(
        ["data", "data/a.tif", "../../escape", "/abs", "model.onnx", ""]))}, optional={
        "md5": maybe(md5), "size": maybe(numbers()), "nfiles": maybe(numbers()),
        "hash": maybe(st.sampled_from(["md5", "md5-dos2unix", ""])),
        "remote": maybe(st.sampled_from(["store", "other", ""]))}))


@functools.cache
def dvc_texts(limits: Limits = CI_LIMITS) -> st.SearchStrategy[str]:
    """A ``.dvc`` file or ``dvc.lock``: emitted, mutated, or hostile."""
    outs = st.lists(dvc_outs(), max_size=4)
    data = st.one_of(
        st.builds(lambda o: {"outs": o}, maybe(outs)),
        st.builds(lambda stages: {"schema": "2.0", "stages": stages},
                  maybe(st.dictionaries(texts(8), maybe(st.builds(lambda o: {"outs": o},
                                                                  maybe(outs))), max_size=3))),
        values())
    emitted = st.builds(lambda d: dump(d), data)
    snippets = st.one_of(hostile_snippets(limits), huge_values(limits))
    return st.one_of(emitted, emitted.flatmap(lambda t: mutated(t, snippets)),
                     snippets.map(lambda t: t + "\n"))


@functools.cache
def dvc_configs() -> st.SearchStrategy[str]:
    section = st.sampled_from(["[core]", "['remote \"store\"']", '[remote "store"]',
                               "[remote other]", "[", "]", ""])
    line = st.one_of(section, st.sampled_from(["remote = store", "url = s3://bucket/x",
                                               "url = /abs/folder", "url = relative",
                                               "url = ", "= x", "remote"]), texts(30))
    return st.lists(line, max_size=8).map("\n".join)


@functools.cache
def dvc_file_sets() -> st.SearchStrategy[dict[str, str]]:
    """A repository's DVC files: path → text."""
    paths = st.sampled_from(["data.dvc", "data/a.tif.dvc", "dvc.lock", "sub/dvc.lock",
                             "model.onnx.dvc"])
    return st.builds(lambda files, config: {**files, **({".dvc/config": config}
                                                         if config is not None else {})},
                     st.dictionaries(paths, dvc_texts(), max_size=3),
                     st.one_of(st.none(), dvc_configs()))


# --- projects -----------------------------------------------------------------------------

#: a repository's files beside the README: model weights, data, a preview, nested paths
PROJECT_FILES = ("weights/model.onnx", "model.pt", "data/a.tif", "data/sub/b.tif",
                 "footprint.geojson", "docs/guide.md", "notebook.ipynb", "preview.png",
                 "img/p.jpg", "train.py")


@functools.cache
def project_files() -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(PROJECT_FILES), unique=True, max_size=6).map(sorted)


def decode(data: bytes, *, universal_newlines: bool = False) -> str:
    """A README's text as the sources read it: UTF-8 with replacement characters (and the
    local source's universal newlines)."""
    text = data.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n") if universal_newlines else text


def record_for(readme: str, *, project_id: str = "bad/project", files: Sequence[str] = (),
               topics: Sequence[str] = ("sharinghub:aimodel",),
               dvc_files: dict[str, str] | None = None) -> ProjectRecord:
    """The record a GitLab source would give for a project with this README, files and DVC
    files (path → text)."""
    host = "https://gitlab.example.com"
    return ProjectRecord(
        source=f"gitlab:{host}", id=project_id, name=project_id.rsplit("/", 1)[-1],
        topics=list(topics), created_at="2023-05-01T08:00:00.000Z",
        last_activity_at="2024-06-01T12:30:00.000Z", web_url=f"{host}/{project_id}",
        host_name=f"GitLab ({host})", host_url=host, gitlab_id=1,
        readme=readme, files=sorted({*files, *(dvc_files or {}), "README.md"}),
        dvc_files=dict(dvc_files or {}))


def write_local_projects(root: Path, readmes_: Iterable[bytes],
                         files: Sequence[str] = PROJECT_FILES[:4]) -> list[str]:
    """One folder per README under ``root`` (a local projects folder), with a few files;
    their item ids (``<root name>/<folder>``)."""
    root.mkdir(parents=True, exist_ok=True)
    ids = []
    for i, data in enumerate(readmes_):
        folder = root / f"p{i:04d}"
        folder.mkdir()
        (folder / "README.md").write_bytes(data)
        for rel in files:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(b"x")
        ids.append(f"{root.name}/{folder.name}")
    return ids


def fake_projects(readmes_: Iterable[bytes], *, group: str = "bad",
                  files: Sequence[str] = PROJECT_FILES[:4]) -> list[Any]:
    """GitLab test-server projects, each with one category topic and one README."""
    from tests.support.gitlab_server import FakeProject

    long_ago = datetime(2024, 6, 1, 12, 30, tzinfo=timezone.utc)
    return [
        FakeProject(id=i + 1, path_with_namespace=f"{group}/p{i:04d}",
                    topics=[CATEGORY_TOPICS[i % len(CATEGORY_TOPICS)]],
                    files={"README.md": data, **{f: b"x" for f in files}},
                    created_at=datetime(2023, 5, 1, 8, tzinfo=timezone.utc),
                    last_activity_at=long_ago)
        for i, data in enumerate(readmes_)
    ]


def collect(strategy: st.SearchStrategy[T], n: int, *, seed_: int = 0,
            each: Callable[[T], None] | None = None) -> list[T]:
    """``n`` examples of ``strategy`` (fewer if it has fewer), the same ones for the same
    seed: a corpus for properties of many projects at once (a crawl), which hypothesis
    cannot draw as one example. With ``each``, every example goes to it instead (big
    corpora are written out as they come) and the list is empty."""
    found: list[T] = []

    @seed(seed_)
    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def grab(example: T) -> None:
        (each or found.append)(example)

    grab()
    return found[:n]


@functools.cache
def full_size_attacks() -> dict[str, bytes]:
    """The worst known shapes at full size, whatever the generator draws (the tests map and
    crawl each; ``benchmarks/bad_metadata.py`` adds larger ones)."""
    mb = 1024 * 1024
    fm = "---\n{}---\n# body\n"
    return {
        "billion laughs": fm.format(alias_bomb(10, 9)).encode(),
        "billion laughs (mappings) in topics": fm.format(
            alias_bomb(10, 9, key="topics", mapping=True)).encode(),
        "merge bomb": fm.format(merge_bomb(10, 9)).encode(),
        "scalar alias bomb": fm.format(scalar_bomb(10_000, 10_000)).encode(),
        "self-referential": fm.format("me: &me [*me]\n").encode(),
        "flow nesting 100,000 deep": fm.format(
            "a: " + "[" * 100_000 + "]" * 100_000 + "\n").encode(),
        "asset template bomb": fm.format(
            "assets:\n  - glob: '*.tif'\n    key: '" + "{path}" * 1000 + "'\n    title: '"
            + "{key}" * 1000 + "'\n").encode(),
        "10 MB body of '![a]('": (fm.format("title: x\n") + "![a](" * (2 * mb)).encode(),
        "10 MB body of '[x]('": (fm.format("title: x\n") + "[x](" * (2 * mb + mb // 2)).encode(),
        "10 MB body of '<img '": (fm.format("title: x\n") + "<img " * (2 * mb)).encode(),
        "10 MB title": fm.format("title: " + "x" * (10 * mb) + "\n").encode(),
        "10 MB of invalid UTF-8": b"---\ntitle: x\n---\n" + b"\xff\xfe" * (5 * mb),
    }
