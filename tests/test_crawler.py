"""The crawler against the GitLab API test server: real HTTP, python-gitlab, real SQLite."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
from sharinghub_server.catalog.validate import validate
from sharinghub_server.crawler import Crawler, last_status
from sharinghub_server.index.query import Query
from sharinghub_server.index.store import open_store
from sharinghub_server.sources.gitlab import GitLabSource
from tests.support.corpus import PROJECTS
from tests.support.gitlab_server import FakeProject, GitLabTestServer, make_synthetic_projects

TOKEN = "secret-token"
TOPICS = [c.gitlab_topic for c in DEFAULT_CATEGORIES]
LONG_AGO = datetime(2024, 6, 1, 12, 30, tzinfo=timezone.utc)


def fake(entry: dict, pid: int) -> FakeProject:
    files = dict(entry.get("files", {}))
    if entry.get("readme") is not None:
        files["README.md"] = entry["readme"]
    return FakeProject(
        id=pid, path_with_namespace=entry["path"], topics=list(entry["topics"]),
        visibility=entry.get("visibility", "public"), description=entry.get("description"),
        star_count=entry.get("star_count", 0), files=files,
        releases=[{**r, "released_at": datetime.fromisoformat(r["released_at"].replace(
            "Z", "+00:00"))} for r in entry.get("releases", [])],
        license=entry.get("license"),
        created_at=datetime(2023, 5, 1, 8, tzinfo=timezone.utc), last_activity_at=LONG_AGO)


@pytest.fixture
def gitlab():
    with GitLabTestServer([fake(e, i + 1) for i, e in enumerate(PROJECTS)]) as server:
        yield server


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite://{tmp_path / 'index.sqlite'}")
    yield s
    s.close()


def crawler(store, server, token=TOKEN, **kw):
    source = GitLabSource(server.url, token, workers=kw.pop("workers", 4),
                          max_retries=kw.pop("max_retries", 10))
    return Crawler(store, [source], DEFAULT_CATEGORIES, **kw)


def all_items(store) -> dict[tuple[str, str], dict]:
    page = store.search(Query(limit=1000))
    return {(i["collection"], i["id"]): i for i in page.items}


def list_requests(server) -> int:
    return server.count("projects")


def test_full_crawl_indexes_every_tagged_project(gitlab, store):
    progress = []
    status = crawler(store, gitlab).crawl(lambda done, total: progress.append((done, total)))
    assert status.ok
    items = all_items(store)
    ids = {i for _, i in items}
    assert "misc/untagged" not in ids
    assert {"secret/private-model", "sharinghub-test/flood-model", "big/many-tiles"} <= ids
    assert ("dashboard", "big/many-tiles") in items and ("dataset", "big/many-tiles") in items
    assert status.items == {"ai-model": 3, "dataset": 2, "processor": 1, "tools": 3,
                            "dashboard": 1}
    for item in items.values():
        validate(item)
    # progress reached the end, counting up
    assert progress[-1][0] == progress[-1][1] == 9
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    # the tree of a project with more than 100 files was paged through
    tiles = items[("dataset", "big/many-tiles")]["assets"]
    assert len([k for k in tiles if k.endswith(".tif")]) == 130
    assert gitlab.count(lambda r: r.endpoint == "tree" and r.query.get("page") == "2") >= 1
    # DVC pointer files were read
    dataset = items[("dataset", "sharinghub-test/sen1floods11-dataset")]
    assert dataset["assets"]["data"]["href"].startswith("s3://eo-datasets/sen1floods11/")
    # GitLab's detected license when the front matter names none
    assert items[("tools", "plain/no-front-matter")]["properties"]["license"] == "MIT"


def test_crawl_status_records_per_project_problems(gitlab, store):
    status = crawler(store, gitlab).crawl()
    by_project = {}
    for e in status.errors:
        by_project.setdefault(e.project, []).append(e.message)
    assert any("not valid YAML" in m for m in by_project["broken/bad-yaml"])
    assert any("2.7.0" in m for m in by_project["sharinghub-test/flood-model"])
    assert any("no model asset" in m for m in by_project["sharinghub-test/flood-model"])
    saved = last_status(store)
    assert saved["ok"] is True and saved["finished"]
    assert {"project": "broken/bad-yaml",
            "message": by_project["broken/bad-yaml"][0]} in saved["errors"]


def test_without_token_private_projects_stay_out(gitlab, store):
    crawler(store, gitlab, token="").crawl()
    ids = {i for _, i in all_items(store)}
    assert "secret/private-model" not in ids
    assert "sharinghub-test/flood-model" in ids


def test_bad_token_fails_the_crawl_with_a_clear_error_and_deletes_nothing(gitlab, store):
    crawler(store, gitlab).crawl()
    before = all_items(store)
    status = crawler(store, gitlab, token="wrong").crawl()
    assert not status.ok
    assert "refused the token" in status.sources[0].error
    assert "wrong" not in status.sources[0].error
    assert all_items(store) == before


def test_recrawl_with_nothing_changed_only_lists(gitlab, store):
    c = crawler(store, gitlab)
    c.crawl()
    gitlab.reset_requests()
    status = c.crawl()
    n = len(PROJECTS)
    assert status.ok and status.sources[0].fetched == 0
    total = gitlab.count()
    assert total == list_requests(gitlab) == len(TOPICS)  # one page per topic here
    assert total <= math.ceil(n / 100) + 5


def test_recently_active_projects_get_a_cheap_check_that_catches_silent_pushes(gitlab, store):
    now = datetime.now(timezone.utc)
    gitlab.update_project("geo/alps/footprint-processor", last_activity_at=now - timedelta(
        minutes=10))
    c = crawler(store, gitlab)
    c.crawl()
    gitlab.reset_requests()
    status = c.crawl()
    assert status.sources[0].probed == 1 and status.sources[0].fetched == 0
    assert gitlab.count() - list_requests(gitlab) <= 2
    # a push that does not move last_activity_at (GitLab updates it at most hourly)
    readme = gitlab.project("geo/alps/footprint-processor").files["README.md"]
    text = readme.decode() if isinstance(readme, bytes) else readme
    gitlab.push("geo/alps/footprint-processor",
                {"README.md": text.replace("Alps footprint processor", "Alps v2")},
                touch_activity=False)
    status = c.crawl()
    assert status.sources[0].fetched == 1
    item = store.get_item("processor", "geo/alps/footprint-processor")
    assert item["properties"]["title"] == "Alps v2"
    # a new tag alone is caught too
    gitlab.add_tag("geo/alps/footprint-processor", "v9")
    assert c.crawl().sources[0].fetched == 1


def test_activity_change_refetches_only_that_project(gitlab, store):
    c = crawler(store, gitlab)
    c.crawl()
    gitlab.push("plain/no-readme", {"README.md": "---\ntitle: Now with README\n---\n"},
                touch_activity=True)
    gitlab.update_project("plain/no-readme", last_activity_at=LONG_AGO + timedelta(days=1))
    gitlab.reset_requests()
    status = c.crawl()
    assert status.sources[0].fetched == 1
    assert {r.project for r in gitlab.requests if r.project} == {
        gitlab.project("plain/no-readme").id}
    assert store.get_item("tools", "plain/no-readme")["properties"]["title"] == "Now with README"


def test_list_level_changes_remap_without_fetching(gitlab, store):
    c = crawler(store, gitlab)
    c.crawl()
    gitlab.update_project("big/many-tiles", star_count=42)
    gitlab.reset_requests()
    status = c.crawl()
    assert status.sources[0].fetched == 0 and status.sources[0].remapped == 1
    assert gitlab.count() == list_requests(gitlab)
    assert store.get_item("dataset", "big/many-tiles")["properties"]["sharinghub:stars"] == 42


def test_vanished_and_untagged_projects_are_removed(gitlab, store, tmp_path):
    c = crawler(store, gitlab)
    c.crawl()
    gitlab.remove_project("plain/no-readme")
    gitlab.set_topics("big/many-tiles", ["sharinghub:space"])  # left the dataset category
    gitlab.set_topics("sharinghub-test/flood-model", ["flood"])  # left every category
    status = c.crawl()
    assert status.ok
    items = all_items(store)
    assert ("tools", "plain/no-readme") not in items
    assert ("dataset", "big/many-tiles") not in items
    assert ("dashboard", "big/many-tiles") in items
    assert not any(i == "sharinghub-test/flood-model" for _, i in items)
    assert status.sources[0].deleted == 2


def test_a_crawl_of_one_source_leaves_other_sources_alone(gitlab, store, tmp_path):
    from sharinghub_server.examples import make_examples
    from sharinghub_server.sources.local import LocalSource

    projects, _ = make_examples(tmp_path / "demo")
    Crawler(store, [LocalSource(projects)], DEFAULT_CATEGORIES).crawl()
    crawler(store, gitlab).crawl()
    gitlab.remove_project("plain/no-readme")
    crawler(store, gitlab).crawl()
    ids = {i for _, i in all_items(store)}
    assert {"local/flood-model", "local/sen1floods11-sample"} <= ids
    assert "plain/no-readme" not in ids


def test_listing_failure_never_deletes(gitlab, store):
    c = crawler(store, gitlab, max_retries=1)
    c.crawl()
    before = all_items(store)
    gitlab.remove_project("plain/no-readme")
    gitlab.fail_next(
        lambda r: r.endpoint == "projects" and r.query.get("topic") == "sharinghub:tools",
        503, times=10)
    status = c.crawl()
    assert not status.ok
    assert all_items(store).keys() == before.keys()


def test_a_project_that_fails_to_fetch_keeps_its_previous_items(gitlab, store):
    c = crawler(store, gitlab, max_retries=1)
    c.crawl()
    pid = gitlab.project("geo/alps/footprint-processor").id
    gitlab.update_project(pid, last_activity_at=LONG_AGO + timedelta(days=2))
    gitlab.fail_next(lambda r: r.endpoint == "tree" and r.project == pid, 500, times=10)
    status = c.crawl()
    assert status.ok
    (error,) = [e for e in status.errors if e.project == "geo/alps/footprint-processor"]
    assert "kept the previously indexed version" in error.message
    assert store.get_item("processor", "geo/alps/footprint-processor") is not None
    # next crawl, GitLab healthy again: fetched and up to date
    gitlab.clear_faults()
    assert c.crawl().sources[0].fetched == 1


def test_crawl_converges_with_twenty_percent_of_requests_failing(gitlab, store, tmp_path):
    crawler(store, gitlab).crawl()
    clean = all_items(store)
    flaky_store = open_store(f"sqlite://{tmp_path / 'flaky.sqlite'}")
    gitlab.fault_rate = 0.2
    gitlab.reset_requests()
    status = crawler(flaky_store, gitlab).crawl()
    gitlab.fault_rate = 0.0
    assert status.ok
    assert gitlab.count(lambda r: r.faulted) >= 3  # ~20% of about 40 requests
    assert all_items(flaky_store) == clean
    flaky_store.close()


def test_429_retry_after_is_honoured(gitlab, store):
    gitlab.fail_next("projects", 429, times=1, headers={"Retry-After": "1"})
    status = crawler(store, gitlab).crawl()
    assert status.ok
    assert gitlab.count(status=429) == 1
    # the same request came back no sooner than asked (the server's own clock, as received)
    log = gitlab.requests
    limited = next(i for i, r in enumerate(log) if r.status == 429)
    retry = next(r for r in log[limited + 1:]
                 if (r.path, r.query) == (log[limited].path, log[limited].query))
    assert retry.received - log[limited].received >= 1.0 - 0.01


def test_paging_through_many_projects(store):
    projects = make_synthetic_projects(260, seed=3)
    with GitLabTestServer(projects) as server:
        status = crawler(store, server, workers=8).crawl()
        assert status.ok
        tagged = [p for p in projects if set(p.topics) & set(TOPICS)]
        ids = {i for _, i in all_items(store)}
        assert ids == {p.path_with_namespace for p in tagged}
        server.reset_requests()
        crawler(store, server).crawl()
        assert server.count() <= math.ceil(len(projects) / 100) + 5


def test_token_never_lands_in_the_index(gitlab, store, tmp_path):
    crawler(store, gitlab).crawl()
    store.close()
    for path in tmp_path.glob("index.sqlite*"):
        assert TOKEN.encode() not in path.read_bytes()


def test_the_server_defaults_crawl_in_parallel_to_the_same_index(gitlab, store, tmp_path):
    """GitLabSource's defaults (what the extension uses) give the index a single worker
    gives: parallel fetching changes nothing but the time."""
    assert GitLabSource(gitlab.url, TOKEN).workers >= 16
    defaults = Crawler(store, [GitLabSource(gitlab.url, TOKEN)], DEFAULT_CATEGORIES).crawl()
    serial_store = open_store(f"sqlite://{tmp_path / 'serial.sqlite'}")
    serial = crawler(serial_store, gitlab, workers=1).crawl()
    assert defaults.ok and serial.ok
    assert all_items(store) == all_items(serial_store)
    assert sorted((e.project, e.message) for e in defaults.errors) == sorted(
        (e.project, e.message) for e in serial.errors)
    serial_store.close()


def test_proxy_settings_of_the_environment_are_still_honoured(gitlab, store, monkeypatch):
    """The source reads proxies from the environment once per session, not per request:
    a proxy still applies, and ``no_proxy`` still exempts the GitLab host."""
    from tests.support.threaded import free_port

    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
                 "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")  # nothing listens
    status = crawler(store, gitlab, max_retries=0).crawl()
    assert not status.ok
    assert "unreachable" in status.sources[0].error
    assert gitlab.count() == 0  # nothing reached GitLab but through the (dead) proxy

    monkeypatch.setenv("no_proxy", "127.0.0.1")
    status = crawler(store, gitlab, max_retries=0).crawl()
    assert status.ok
    assert status.items["ai-model"] == 3


def test_a_ca_bundle_from_the_environment_is_used_for_tls(gitlab, monkeypatch, tmp_path):
    """``REQUESTS_CA_BUNDLE`` (then ``CURL_CA_BUNDLE``) keeps deciding which certificates
    a GitLab over https is checked against, as requests does when it reads the
    environment itself."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
    assert GitLabSource(gitlab.url, TOKEN)._gl.ssl_verify == str(bundle)
    monkeypatch.delenv("CURL_CA_BUNDLE")
    assert GitLabSource(gitlab.url, TOKEN)._gl.ssl_verify is True
