"""Bad metadata by the thousand (issue 15): generated and mutated READMEs through the mapping,
the crawler (local folders and the GitLab API test server) and a running Jupyter server.

Properties, over READMEs from ``tests/support/readme_gen.py`` (broken YAML, every SharingHub key
mistyped, huge values, deep nesting, alias and merge bombs, invalid WKT, out-of-range boxes,
bytes that are not UTF-8, big bodies): the mapping never raises and every README gives a STAC
item that validates (with the package's validator and, independently, with jsonschema against
the shipped schemas), is strict JSON and is not much bigger than the README (an alias bomb or a
template must not expand), its problems reported; a crawl of a few hundred such projects, with
the issue's worst cases at full size (a billion laughs, 10 MB READMEs, nesting 100,000 deep),
finishes with each project an item or a reported problem; a real server answers every search
while it crawls them. Deterministic: ``derandomize``, no example database, fixed corpus seeds.

Time and memory per project are bounded by what the code does (a README is read up to
``MAX_README_CHARS``, front matter parsed up to ``MAX_FRONT_MATTER_CHARS``, an alias bomb
refused before it is built), asserted here on the outcome; the timings themselves (seconds
per project, RSS, search latency during a crawl) are ``benchmarks/bad_metadata.py``'s.

The explicit cases after the properties are what hypothesis found, shrunk to a minimal README.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import tracemalloc
from importlib import resources
from typing import Any

import jsonschema
import pystac
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource

from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
from sharinghub_server.catalog.frontmatter import (
    MAX_FRONT_MATTER_CHARS,
    MAX_README_CHARS,
    parse_readme,
)
from sharinghub_server.catalog.item import project_items
from sharinghub_server.catalog.validate import schema_errors
from sharinghub_server.crawler import Crawler, CrawlStatus
from sharinghub_server.index.store import ProjectUpdate, open_store
from sharinghub_server.sources.gitlab import GitLabSource
from sharinghub_server.sources.local import LocalSource
from sharinghub_server.sources.records import ProjectRecord
from tests.support import readme_gen as gen
from tests.support.gitlab_server import GitLabTestServer
from tests.support.jupyter_proc import jupyter_server
from tests.support.polling import poll

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

TOKEN = "secret-token"
TOPICS = [c.gitlab_topic for c in DEFAULT_CATEGORIES]
CATEGORY_OF_TOPIC = {c.gitlab_topic: c.id for c in DEFAULT_CATEGORIES}

#: deterministic (the same examples on every run), no example database, no deadline: the
#: time per project is the benchmark's to measure. The main property maps 2,000 READMEs
#: (about 25 s on one core); the others fewer.
PROPERTY = settings(max_examples=2000, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example], print_blob=True,
                    report_multiple_bugs=False)

#: a mapped project's items and problems, as JSON, at most this many times its README
#: (plus a constant for what every item carries): more means something expanded
AMPLIFICATION = 10
AMPLIFICATION_BASE = 64 * 1024
#: Python heap allocated while one project is mapped (tracemalloc peak): generous (the CI
#: READMEs are at most 32 KB; a full-size one, 10 MB, is read up to 512 K characters)
PEAK_BYTES = 64 * 1024 * 1024
#: hang guards (a crash or a hang must fail the test, not block the run)
CRAWL_GUARD_S = 300

# --- checks -------------------------------------------------------------------------------


@functools.cache
def _shipped() -> tuple[dict[str, str], Registry]:
    """The schemas the package ships, read here without the package's validator code."""
    root = resources.files("sharinghub_server.catalog") / "schemas"
    index = json.loads((root / "index.json").read_text())

    def read(rel: str) -> Any:
        node = root
        for part in rel.split("/"):
            node = node / part
        return json.loads(node.read_text())

    resources_ = [(url, Resource.from_contents(read(rel))) for url, rel in index.items()]
    return index, Registry().with_resources(resources_)


@functools.cache
def _reference_validator(url: str) -> jsonschema.Draft7Validator:
    _, registry = _shipped()
    schema = registry.contents(url)
    return jsonschema.Draft7Validator(schema, registry=registry)


def independent_errors(item: dict) -> list[str]:
    """jsonschema's verdict on the item schema and every extension the item declares, each
    of which must be one the package ships (it is validated offline)."""
    index, _ = _shipped()
    errors = []
    item_schema = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"
    for url in [item_schema, *item.get("stac_extensions", [])]:
        if url not in index:
            errors.append(f"declares {url}, which is not shipped")
            continue
        errors += [f"{url}: {e.json_path}: {e.message[:200]}"
                   for e in _reference_validator(url).iter_errors(item)]
    return errors


def assert_strict_json(value: Any) -> None:
    """A STAC item is a JSON document: no NaN or infinities, no bytes or sets, text that
    encodes as UTF-8, numbers a JSON reader can hold (RFC 8259 §6: doubles), and the same
    value back after a round trip."""
    text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogates

    def numbers_fit(v: Any) -> None:
        if isinstance(v, int) and not isinstance(v, bool):
            float(v)  # OverflowError beyond a double's range
        elif isinstance(v, dict):
            for x in v.values():
                numbers_fit(x)
        elif isinstance(v, list):
            for x in v:
                numbers_fit(x)

    numbers_fit(value)
    assert json.loads(text) == value


def json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=repr).encode("utf-8",
                                                                         "surrogatepass"))


def assert_item_is_valid(item: dict) -> None:
    assert_strict_json(item)
    assert schema_errors(item) == []
    assert independent_errors(item) == []
    assert pystac.Item.from_dict(item).id == item["id"]


def map_project(readme: bytes, files: list[str], *, universal_newlines: bool = False,
                trace: bool = False) -> tuple[Any, int]:
    """The project's items and problems, and (``trace``) the Python heap's peak while
    mapping it."""
    record = gen.record_for(gen.decode(readme, universal_newlines=universal_newlines),
                            files=files)
    if not trace:
        return project_items(record, DEFAULT_CATEGORIES), 0
    tracemalloc.start()
    try:
        built = project_items(record, DEFAULT_CATEGORIES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return built, peak


# --- properties of the mapping ------------------------------------------------------------


@PROPERTY
@given(gen.readmes(), gen.project_files(), st.booleans())
def test_every_readme_gives_a_valid_item_and_never_raises(readme, files, universal):
    built, _ = map_project(readme, files, universal_newlines=universal)
    (item,) = built.items  # the project is in one category: one item, whatever its README
    assert item["id"] == "bad/project" and item["collection"] == "ai-model"
    assert_item_is_valid(item)
    assert all(isinstance(p, str) and p for p in built.problems)
    assert_strict_json(built.problems)
    # the mapping's last resort (an item from GitLab's metadata alone) hides a bug
    assert not any(p.startswith("the mapping failed") for p in built.problems), built.problems


@settings(PROPERTY, max_examples=300)  # tracemalloc makes each example slower
@given(gen.readmes(), gen.project_files())
def test_mapping_does_not_amplify_its_input(readme, files):
    built, peak = map_project(readme, files, trace=True)
    out = json_size(built.items) + json_size(built.problems)
    assert out <= AMPLIFICATION * len(readme) + AMPLIFICATION_BASE
    assert peak <= PEAK_BYTES


@settings(PROPERTY, max_examples=500)
@given(gen.dvc_file_sets(), st.sampled_from(["title: x\n", "extensions: {mlm: " + gen.MLM_URL
                                              + "}\nmlm: {name: m}\n"]))
def test_every_set_of_dvc_files_gives_a_valid_item(dvc_files, front_matter):
    """DVC files (``*.dvc``, ``dvc.lock``, ``.dvc/config``) come from the repository too."""
    record = gen.record_for(f"---\n{front_matter}---\n# x\n", dvc_files=dvc_files)
    built = project_items(record, DEFAULT_CATEGORIES)
    (item,) = built.items
    assert_item_is_valid(item)
    assert_strict_json(built.problems)
    assert not any(p.startswith("the mapping failed") for p in built.problems), built.problems


@settings(PROPERTY, max_examples=1000)
@given(gen.readmes())
def test_front_matter_parsing_never_raises(readme):
    meta, body, problem = parse_readme(gen.decode(readme))
    assert isinstance(meta, dict) and isinstance(body, str)
    assert problem is None or isinstance(problem, str)
    assert len(body) <= MAX_README_CHARS


@settings(PROPERTY, max_examples=60)  # a fifth of them are megabytes
@given(gen.readmes(gen.FULL_LIMITS))
def test_readmes_at_full_size_are_mapped_within_bounds(readme):
    """The issue's sizes (READMEs up to 10 MB, a billion laughs, nesting 100,000 deep):
    the same properties, and the heap while mapping stays far below the README's size
    times anything."""
    built, peak = map_project(readme, list(gen.PROJECT_FILES[:6]), trace=True)
    (item,) = built.items
    assert_item_is_valid(item)
    assert json_size(built.items) <= AMPLIFICATION * min(len(readme), 4 * MAX_README_CHARS) \
        + AMPLIFICATION_BASE
    assert peak <= PEAK_BYTES


# --- crawls of generated projects ---------------------------------------------------------

N_PROJECTS = 150


@functools.cache
def corpus(n: int = N_PROJECTS, seed: int = 15, local: bool = False) -> list[bytes]:
    """``n`` generated READMEs, the same for the same seed; local ones name their topics
    (a local project takes them from its front matter)."""
    if local:
        strategy = st.sampled_from(TOPICS).flatmap(lambda t: gen.readmes(topics=[t]))
    else:
        strategy = gen.readmes()
    return gen.collect(strategy, n, seed_=seed)


def crawl_with_guard(crawler: Crawler) -> CrawlStatus:
    """The crawl on a thread, joined for at most :data:`CRAWL_GUARD_S`: a crash is raised
    here, a hang fails."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["status"] = crawler.crawl()
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="bad-metadata-crawl", daemon=True)
    thread.start()
    thread.join(CRAWL_GUARD_S)
    assert not thread.is_alive(), f"the crawl did not end within {CRAWL_GUARD_S} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["status"]


def assert_every_project_accounted_for(store, status: CrawlStatus,
                                       expected: dict[str, list[str]]) -> None:
    """Each expected project (id → its collections) has a valid item in each collection, or
    a problem under its id in the crawl status."""
    assert status.ok and status.finished
    reported = {e.project for e in status.errors}
    missing = []
    for pid, collections in expected.items():
        items = [store.get_item(c, pid) for c in collections]
        if all(items):
            for item in items:
                assert_item_is_valid(item)
        elif pid not in reported:
            missing.append(pid)
    assert missing == [], f"projects neither indexed nor reported: {missing[:10]}"


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite://{tmp_path / 'index.sqlite'}")
    yield s
    s.close()


def test_crawl_of_generated_local_projects_accounts_for_each(tmp_path, store):
    root = tmp_path / "bad"
    ids = gen.write_local_projects(root, corpus(local=True))
    source = LocalSource(root)
    status = crawl_with_guard(Crawler(store, [source], DEFAULT_CATEGORIES))
    # a local project's topics are in its front matter: a README that loses them is no
    # project; the others must be there
    listed = {r.id: [CATEGORY_OF_TOPIC[t] for t in r.topics if t in CATEGORY_OF_TOPIC]
              for r in source.list_projects(TOPICS)}
    assert set(listed) <= set(ids) and len(listed) >= len(ids) // 5
    assert_every_project_accounted_for(store, status, listed)


def test_crawl_of_generated_gitlab_projects_accounts_for_each(store):
    projects = gen.fake_projects(corpus())
    with GitLabTestServer(projects) as gitlab:
        source = GitLabSource(gitlab.url, TOKEN, workers=8, max_retries=2)
        status = crawl_with_guard(Crawler(store, [source], DEFAULT_CATEGORIES))
        assert gitlab.errors == []
    expected = {p.path_with_namespace: [CATEGORY_OF_TOPIC[t] for t in p.topics]
                for p in projects}
    assert_every_project_accounted_for(store, status, expected)


@pytest.mark.parametrize("name", list(gen.full_size_attacks()))
def test_full_size_attacks_are_refused_or_cut_with_a_problem(name):
    """Each gives a valid item and a problem; nothing of it is expanded (the item is small)
    and the heap while mapping stays small (the 10 MB README is already in memory: it is
    read up to MAX_README_CHARS, not copied whole)."""
    readme = gen.full_size_attacks()[name]
    built, peak = map_project(readme, ["data/a.tif", "data/b.tif"], trace=True)
    (item,) = built.items
    assert_item_is_valid(item)
    assert built.problems
    assert json_size(item) <= 4 * MAX_README_CHARS + AMPLIFICATION_BASE  # U+FFFD: 3 bytes
    assert peak <= PEAK_BYTES


def test_a_stored_record_maps_again_to_the_same_item():
    """The crawler keeps each project's record to re-map it without fetching it again; a
    10 MB README is kept up to what the mapping reads (plus one character, so that it is
    still reported as too long), and gives the same item and problems."""
    readme = "---\ntitle: big\n---\n" + "lorem ipsum " * 1_000_000
    record = gen.record_for(readme)
    update, problems = Crawler(None, [], DEFAULT_CATEGORIES)._update(record, None)
    stored = update.state["record"]
    assert len(stored["readme"]) == MAX_README_CHARS + 1
    again = project_items(ProjectRecord.from_json(stored), DEFAULT_CATEGORIES)
    assert again.items == update.items and again.problems == problems
    assert any("longer than" in p for p in problems)


def test_server_answers_searches_while_crawling_generated_projects(tmp_path):
    """A real ``jupyter server`` crawls 120 generated projects and the full-size attacks
    behind the GitLab test server (100 ms a request, so the crawl lasts seconds) and
    answers every STAC search meanwhile (their latencies are printed; the target is the
    benchmark's)."""
    projects = gen.fake_projects([*corpus(120, seed=16), *gen.full_size_attacks().values()])
    with GitLabTestServer(projects, latency=0.1) as gitlab, jupyter_server(
            tmp_path / "server", token=TOKEN,
            args=[f"--SharingHub.gitlab_url={gitlab.url}", f"--SharingHub.gitlab_token={TOKEN}",
                  "--SharingHub.crawl_interval=0", "--SharingHub.mlflow_warmup=False"],
            env={"SHARINGHUB_LOCAL_PROJECTS": ""}) as server:
        headers = {"Authorization": f"token {TOKEN}"}

        def index_state() -> str:
            r = requests.get(f"{server.url}sharinghub/api/index", headers=headers, timeout=30)
            assert r.status_code == 200
            return r.json()["state"]

        poll(lambda: index_state() == "running", "the first crawl to start", timeout=60)
        latencies = []
        for _ in range(5000):  # bounded: the crawl ends long before
            if index_state() != "running":
                break
            t0 = time.perf_counter()
            r = requests.get(f"{server.url}sharinghub/api/stac/search", headers=headers,
                             params={"limit": 5, "q": "x"}, timeout=60)
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text[:300]
            assert isinstance(r.json()["features"], list)
        assert len(latencies) >= 3, "the crawl ended before the server was asked"
        print(f"{len(latencies)} searches during the crawl, max latency "
              f"{max(latencies) * 1000:.0f} ms")
        poll(lambda: index_state() == "idle", "the crawl to end", timeout=CRAWL_GUARD_S)
        r = requests.get(f"{server.url}sharinghub/api/index", headers=headers, timeout=30)
        last = r.json()["last_crawl"]
        assert last["ok"] and last["finished"]
        reported = {e["project"] for e in last["errors"]}
        r = requests.get(f"{server.url}sharinghub/api/stac/search", headers=headers,
                         params={"limit": 200}, timeout=30)
        assert r.status_code == 200
        indexed = {f["id"] for f in r.json()["features"]}
        lost = [p.path_with_namespace for p in projects
                if p.path_with_namespace not in indexed | reported]
        assert lost == []
        assert server.proc.poll() is None


# --- what hypothesis found, shrunk: regression tests --------------------------------------


def mapped(front_matter: str, *, files: tuple[str, ...] = (), body: str = "# x\n") -> Any:
    """The project whose README has this front matter (and body): its items and problems."""
    record = gen.record_for(f"---\n{front_matter}\n---\n{body}", files=files)
    return project_items(record, DEFAULT_CATEGORIES)


def assert_item_with_problem(front_matter: str, needle: str = "", **kw: Any) -> None:
    built = mapped(front_matter, **kw)
    (item,) = built.items
    assert_item_is_valid(item)
    assert built.problems, "the bad value was neither used nor reported"
    assert needle.lower() in " ".join(built.problems).lower()


@pytest.mark.parametrize("line", [
    "created: 2020-02-30", "foo: 0000-01-01", "foo: 2020-01-01 25:00:00",
    "foo: 2020-01-01T00:00:00+99:00", "foo: !!int abc", "foo: !!float x", "foo: !!bool maybe",
    "foo: !!timestamp soon", "foo: 0b_",
])
def test_values_no_yaml_constructor_accepts_are_a_problem_not_a_crash(line):
    assert_item_with_problem(line, "front matter")


@pytest.mark.parametrize("line", [
    "deep: " + "[" * 5000 + "]" * 5000,  # the YAML parser's recursion
    "deep: " + "[" * 900 + "]" * 900,  # loads, then the mapping's recursion
    'a: "\\ud83d"\ndeep: ' + "[" * 5000 + "]" * 5000,  # libyaml refuses the escape first
    "me: &me [*me]",  # a list that contains itself
    "me: &me {self: *me}",
])
def test_deep_and_self_referential_yaml_is_a_problem_not_a_crash(line):
    assert_item_with_problem(line, "front matter")


@pytest.mark.parametrize("bomb", [
    gen.alias_bomb(9, 5), gen.alias_bomb(9, 5, mapping=True), gen.alias_bomb(9, 5, pairs=True),
    gen.scalar_bomb(1000, 1000), gen.merge_bomb(9, 5),
], ids=["lists", "mappings", "pairs", "scalar", "merge"])
def test_alias_bomb_does_not_expand(bomb):
    # 59,049 leaves once expanded, 250 bytes of YAML; a million characters from 5 KB
    built = mapped(bomb)
    (item,) = built.items
    assert json_size(item) < 16 * 1024  # 400 KB before the fix; a billion laughs: hours
    assert any("alias" in p for p in built.problems) or "merge" in bomb


def test_aliases_people_use_still_work():
    built = mapped("base: &b {platform: s2, gsd: 10}\nfoo: {<<: *b, gsd: 20}\nbar: [*b, *b]")
    (item,) = built.items
    assert item["properties"]["foo"] == {"platform": "s2", "gsd": 20}
    assert item["properties"]["bar"] == [{"platform": "s2", "gsd": 10}] * 2
    assert built.problems == []


def test_front_matter_beyond_its_limit_is_not_parsed():
    built = mapped("".join(f"key{i}: value {i}\n" for i in range(MAX_FRONT_MATTER_CHARS // 14)))
    (item,) = built.items
    assert "key0" not in item["properties"]
    assert any("more than 256 KiB" in p for p in built.problems)


@pytest.mark.parametrize("body", [
    "![a](" * 100_000, "[x](" * 100_000, "<img " * 100_000, "![" * 100_000, "[" * 100_000,
    "<img " + "a" * 500_000,
])
def test_markdown_that_never_closes_is_read_in_linear_time(body):
    """Images, links and DOIs are read with regular expressions; on these bodies the old
    ones backtracked quadratically (hours at 500 KB; 5 s at 32 KB). A 500 KB body here is
    read in milliseconds: a quadratic scan would take far longer than the guard."""
    guard = threading.Thread(target=mapped, args=("title: x",), kwargs={"body": body},
                             daemon=True)
    guard.start()
    guard.join(30)
    assert not guard.is_alive(), "reading the README body did not end within 30 s"
    built = mapped("title: x", body=body)
    assert_item_is_valid(built.items[0])


def test_links_with_parentheses_keep_them():
    body = ("[DOI: Someone 2020](https://doi.org/10.1002/(SICI)1097-4636)\n"
            "![preview](img/p(1).png)")
    (item,) = mapped("title: x", body=body).items
    assert item["properties"]["sci:doi"] == "10.1002/(SICI)1097-4636"
    assert item["assets"]["preview"]["href"].split("?")[0].endswith("/-/img/p%281%29.png")


@pytest.mark.parametrize(("front_matter", "needle"), [
    ("extent: {spatial: 'GEOMETRYCOLLECTION (POINT (1 2), GEOMETRYCOLLECTION (POINT (3 4)))'}",
     "extent.spatial"),
    ("extent: {spatial: 'LINEARRING (0 0, 1 0, 1 1, 0 0)'}", "extent.spatial"),
    ("extent: {spatial: 'GEOMETRYCOLLECTION (POINT EMPTY, POINT (1 2))'}", "extent.spatial"),
    ("extent: {spatial: 'LINESTRING (0 0, nan 1, 2 2)'}", "extent.spatial"),
    ("extent: {spatial: [0, 0, 1e999, 1]}", "extent.spatial"),
    ("extent: {spatial: [0, 0, 200, 1]}", "extent.spatial"),
    ("extent: 5", "extent"),
    ("related: {dataset: 'https://['}", "related"),
    ("links: [{href: 'https://[x'}]\npreview: 'http://[::1'", ""),
    ("assets: [{glob: '*.tif', href: 'http://[x', key: k}]", ""),
])
def test_geometries_and_urls_no_item_may_have_are_a_problem_not_a_crash(front_matter, needle):
    built = mapped(front_matter, files=("data/a.tif",))
    (item,) = built.items
    assert_item_is_valid(item)
    assert needle in " ".join(built.problems)


def test_asset_templates_do_not_multiply():
    front_matter = ("assets:\n  - glob: '*.tif'\n    key: '" + "{path}" * 200
                    + "'\n    title: '" + "{key}" * 200 + "'")
    files = tuple(f"data/f{i}.tif" for i in range(5))
    built = mapped(front_matter, files=files)
    (item,) = built.items
    assert json_size(item) < 256 * 1024  # 2.5 KB of README; 20 MB of item before the fix
    assert any("{path}" in p or "placeholder" in p for p in built.problems)



@pytest.mark.parametrize(("front_matter", "needle"), [
    ("links: 5", "links"),
    ("providers: [{name: a, roles: 5}]", "providers"),
    ("providers: [{name: a, roles: [[1]]}]", "providers"),
    ("extensions: {mlm: [1]}", "extension"),
    ("extensions: {mlm: {a: b}}", "extension"),
    ("extent: {spatial: {coordinates: [1, 2]}}", "extent.spatial"),
    ("extent: {temporal: [0001-01-01T00:00:00+05:00, null]}", "extent.temporal"),
])
def test_mistyped_keys_are_a_problem_not_a_crash(front_matter, needle):
    assert_item_with_problem(front_matter, needle)


def test_a_datetime_out_of_range_in_utc_is_kept_as_written():
    built = mapped("foo: 0001-01-01T00:00:00+05:00")
    (item,) = built.items
    assert_item_is_valid(item)
    assert item["properties"]["foo"] == "0001-01-01T00:00:00+05:00"


@pytest.mark.parametrize("front_matter", [
    "datetime: garbage", "start_datetime: garbage", "end_datetime: 2020-01-01",
    "datetime: null",
])
def test_front_matter_cannot_break_the_items_times(front_matter):
    assert_item_with_problem(front_matter, front_matter.split(":")[0])



def assert_indexed(built: Any, store: Any) -> dict:
    (item,) = built.items
    assert_item_is_valid(item)
    store.apply("gitlab:test", [ProjectUpdate(project=item["id"], state={}, items=built.items)],
                [])
    indexed = store.get_item("ai-model", item["id"])
    assert indexed["properties"] == item["properties"]
    return indexed


@pytest.mark.parametrize(("front_matter", "where"), [
    ("foo: .nan", "properties.foo"), ("foo: -.inf", "properties.foo"),
    ("foo: " + "9" * 400, "properties.foo"), ("foo: !!binary aGVsbG8=", "properties.foo"),
    ("foo: [1, {bar: .inf}]", "properties.foo.1.bar"),
])
def test_values_json_cannot_hold_are_left_out_reported_and_indexed(front_matter, where, store):
    built = mapped(front_matter)
    assert any(p.startswith(f"{where} left out") for p in built.problems), built.problems
    assert_indexed(built, store)


@pytest.mark.parametrize(("front_matter", "key", "value"), [
    ("foo: !!set {b, a}", "foo", ["a", "b"]),
    ('title: "\\ud800 x"', "title", "\ufffd x"),
    ('title: "\\ud83d\\ude00"', "title", "\U0001f600"),  # a JSON-style escaped pair
])
def test_values_json_can_hold_once_converted_are_indexed(front_matter, key, value, store):
    assert assert_indexed(mapped(front_matter), store)["properties"][key] == value


@pytest.mark.parametrize("dvc_files", [
    {"data.dvc": "outs: [{path: data, size: !!bool maybe}]"},  # KeyError in the constructor
    {"data.dvc": "outs: 5"}, {"dvc.lock": "stages: [1]"}, {"dvc.lock": "stages: {a: {outs: 3}}"},
    {"data.dvc": "me: &me [*me]"},
])
def test_dvc_files_no_mapping_expects_are_a_problem_not_a_crash(dvc_files):
    record = gen.record_for("---\ntitle: x\n---\n", dvc_files=dvc_files)
    built = project_items(record, DEFAULT_CATEGORIES)
    (item,) = built.items
    assert_item_is_valid(item)
    assert not any(p.startswith("the mapping failed") for p in built.problems), built.problems


def test_a_readme_without_body_gives_no_description_and_no_problem():
    built = mapped("title: x", body="")
    assert "description" not in built.items[0]["properties"] and built.problems == []


def test_thousands_of_links_are_cut_to_what_is_validated_quickly():
    """20,000 links (200 KB of front matter) made an item whose every round of repair ran
    jsonschema over 20,000 links: 7 s a round. The mapping keeps the first 100."""
    built = mapped("links: [" + ", ".join(["{href: x}"] * 20_000) + "]\nkeywords: 5")
    (item,) = built.items
    assert_item_is_valid(item)
    assert len(item["links"]) < 120
    assert any(p.startswith("links: 20,000 given") for p in built.problems)


def test_a_huge_readme_body_is_cut_and_reported():
    body = "# Big\n\n![preview](early.png)\n" + "lorem ipsum " * 200_000  # 2.4 MB
    built = mapped("title: big", body=body)
    (item,) = built.items
    assert_item_is_valid(item)
    assert 0 < len(item["properties"]["description"]) <= MAX_README_CHARS
    assert "/-/early.png" in item["assets"]["preview"]["href"]  # read from the part kept
    assert any("description" in p for p in built.problems)


def test_many_invalid_fields_are_all_repaired():
    front_matter = ("extensions: {file: https://stac-extensions.github.io/file/v2.1.0/schema"
                    ".json}\nassets:\n  - glob: '*.tif'\n    'file:size': twelve MB")
    files = tuple(f"data/f{i:02d}.tif" for i in range(30))
    built = mapped(front_matter, files=files)
    (item,) = built.items
    assert_item_is_valid(item)
    assert sum("file:size" in p for p in built.problems) == 30
    assert all("file:size" not in a for a in item["assets"].values())


def test_a_mapping_bug_gives_an_item_from_the_projects_metadata(monkeypatch):
    """The last resort: whatever the mapping of a README raises, the project still gets a
    valid item (from what GitLab says of it) and the error is its problem."""
    from sharinghub_server.catalog import item as item_module

    real = item_module.markdown.citations

    def broken(body):
        if body:  # the last resort maps no README: it has no body
            raise RuntimeError("a bug")
        return real(body)

    monkeypatch.setattr(item_module.markdown, "citations", broken)
    built = mapped("title: x", files=("data/a.tif",))
    (item,) = built.items
    assert_item_is_valid(item)
    assert built.problems[0].startswith("the mapping failed (RuntimeError: a bug)")


def test_a_crawler_bug_is_one_projects_problem(store, monkeypatch):
    """Whatever fetching or mapping one project raises, the crawl goes on, finishes ``ok``
    and reports it under the project."""
    from sharinghub_server import crawler as crawler_module

    real = crawler_module.project_items

    def sometimes_broken(record, categories):
        if record.id.endswith("p0001"):
            raise RuntimeError("a bug")
        return real(record, categories)

    monkeypatch.setattr(crawler_module, "project_items", sometimes_broken)
    projects = gen.fake_projects([b"# a\n", b"# b\n", b"# c\n"])
    with GitLabTestServer(projects) as gitlab:
        source = GitLabSource(gitlab.url, TOKEN, workers=2, max_retries=2)
        status = crawl_with_guard(Crawler(store, [source], DEFAULT_CATEGORIES))
    assert status.ok
    assert [(e.project, e.message) for e in status.errors] == [
        ("bad/p0001", "RuntimeError: a bug (not indexed)")]
    assert store.get_item(CATEGORY_OF_TOPIC[projects[0].topics[0]], "bad/p0000")


def test_one_bad_project_does_not_stop_the_crawl(store):
    good = "---\ntitle: Good\n---\n# Good\n"
    readmes = [good.encode(), b"---\nlinks: 5\n---\n", good.encode(),
               b"---\ncreated: 2020-02-30\n---\n", good.encode()]
    projects = gen.fake_projects(readmes)
    with GitLabTestServer(projects) as gitlab:
        source = GitLabSource(gitlab.url, TOKEN, workers=2, max_retries=2)
        status = crawl_with_guard(Crawler(store, [source], DEFAULT_CATEGORIES))
    assert status.ok
    expected = {p.path_with_namespace: [CATEGORY_OF_TOPIC[t] for t in p.topics]
                for p in projects}
    assert_every_project_accounted_for(store, status, expected)
    for p in projects[::2]:
        assert store.get_item(CATEGORY_OF_TOPIC[p.topics[0]], p.path_with_namespace)


def test_one_bad_local_readme_does_not_stop_the_listing(tmp_path):
    bomb = gen.alias_bomb(9, 5, key="topics")
    readmes = [b"---\ntopics: [sharinghub:dataset]\n---\n# ok\n",
               b"---\ntopics: [sharinghub:dataset]\ncreated: 2020-02-30\n---\n",
               f"---\n{bomb}---\n".encode()]
    root = tmp_path / "bad"
    gen.write_local_projects(root, readmes)
    records = LocalSource(root).list_projects(TOPICS)
    assert "bad/p0000" in [r.id for r in records]
    assert all(len(t) < 100 for r in records for t in r.topics)  # the bomb was not expanded


def test_generated_corpus_covers_the_hostile_kinds():
    """The CI corpus holds each kind of attack the issue names (the generator is not
    silently narrowed)."""
    texts = [gen.decode(r) for r in corpus()]
    kinds = {
        "alias bomb": lambda t: "&l0" in t, "merge bomb": lambda t: "&m0" in t,
        "scalar bomb": lambda t: "&s " in t, "deep nesting": lambda t: "[[[[[[[[" in t,
        "bad tag or date": lambda t: "!!" in t or "-02-30" in t or "0000-01-01" in t,
        "replacement char": lambda t: "\ufffd" in t, "no front matter fence": lambda t:
        not t.lstrip("\ufeff\n ").startswith("---"), "big": lambda t: len(t) > 16 * 1024,
        "extent": lambda t: "extent" in t, "mlm": lambda t: "mlm" in t,
        "assets": lambda t: "assets" in t, "providers": lambda t: "providers" in t,
    }
    missing = [k for k, test in kinds.items() if not any(test(t) for t in texts)]
    assert missing == []
