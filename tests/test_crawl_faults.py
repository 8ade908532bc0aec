"""The crawl against a failing GitLab converges to exactly the index a fault-free crawl gives:
a fifth of the requests fail (HTTP 500/502/503/429, dropped connections, timeouts, bodies cut
short), or GitLab throttles (429 with ``Retry-After``); the two indexes are compared item by
item (none lost, none extra, none changed, none held twice). The long version, at 2,000
projects and several fault mixes, is ``benchmarks/faults.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
from sharinghub_server.crawler import Crawler
from sharinghub_server.index.store import open_store
from sharinghub_server.sources.gitlab import GitLabSource
from tests.support.faults import (
    MIXES,
    TOKEN,
    change_projects,
    crawl_until_converged,
    differences,
    is_transient,
    project_errors,
    snapshot,
)
from tests.support.gitlab_server import GitLabTestServer, make_synthetic_projects

N_PROJECTS = 150


@pytest.fixture(scope="module")
def projects():
    return make_synthetic_projects(N_PROJECTS, seed=7)


def crawl(server: GitLabSource | GitLabTestServer, index: Path, *, retries: int = 6,
          timeout: float = 0.5):
    """One crawl of ``server`` into ``index`` with the source as the server builds it (a
    short timeout, so that a hung request is retried soon)."""
    store = open_store(f"sqlite://{index}")
    try:
        source = GitLabSource(server.url, TOKEN, workers=8, timeout=timeout,
                              max_retries=retries)
        return Crawler(store, [source], DEFAULT_CATEGORIES).crawl()
    finally:
        store.close()


def clean_index(server: GitLabTestServer, index: Path):
    rate, server.fault_rate = server.fault_rate, 0.0
    try:
        status = crawl(server, index)
    finally:
        server.fault_rate = rate
    assert status.ok and not any(is_transient(m) for _, m in project_errors(status))
    return snapshot(index)


def assert_same_index(got, want) -> None:
    assert got.integrity == "ok"
    assert got.duplicates == []
    assert differences(got.items, want.items) == {"lost": [], "extra": [], "changed": []}
    assert project_errors(got.status) == project_errors(want.status)


@pytest.mark.parametrize("mix", ["all", "network"])
def test_a_fifth_of_requests_failing_gives_the_fault_free_index(projects, tmp_path, mix):
    with GitLabTestServer(projects, fault_seed=3, fault_hang=1.0,
                          fault_statuses=MIXES[mix]) as server:
        want = clean_index(server, tmp_path / "clean.sqlite")
        assert len(want.items) > N_PROJECTS * 0.9
        server.reset_requests()
        server.fault_rate = 0.2
        statuses = crawl_until_converged(lambda: crawl(server, tmp_path / "faulty.sqlite"),
                                         limit=5)
        server.fault_rate = 0.0
        faulted = [r for r in server.requests if r.faulted]
        assert 0.1 < len(faulted) / len(server.requests) < 0.3
        assert {r.fault for r in faulted} == {str(k) for k in MIXES[mix]}
        assert statuses[-1].ok
        assert_same_index(snapshot(tmp_path / "faulty.sqlite"), want)
        assert server.errors == []


def test_with_few_retries_every_crawl_loses_nothing_and_they_converge(projects, tmp_path):
    """One retry only: a crawl fails to list or to fetch some projects; each crawl keeps
    what the previous ones indexed, holds only items identical to the fault-free ones, and
    the crawls end at the fault-free index."""
    with GitLabTestServer(projects, fault_seed=5, fault_hang=1.0,
                          fault_statuses=MIXES["all"]) as server:
        want = clean_index(server, tmp_path / "clean.sqlite")
        server.fault_rate = 0.2
        seen: list[set] = []

        def check(status) -> None:
            got = snapshot(tmp_path / "faulty.sqlite")
            assert got.integrity == "ok" and got.duplicates == []
            diff = differences(got.items, want.items)
            assert diff["extra"] == [] and diff["changed"] == []
            if seen:
                assert seen[-1] <= set(got.items)  # nothing indexed is lost again
            seen.append(set(got.items))

        statuses = crawl_until_converged(
            lambda: crawl(server, tmp_path / "faulty.sqlite", retries=1), limit=25,
            after_each=check)
        server.fault_rate = 0.0
        assert len(statuses) > 1  # the faults did make crawls fail
        assert any(not s.ok or any(is_transient(m) for _, m in project_errors(s))
                   for s in statuses[:-1])
        assert_same_index(snapshot(tmp_path / "faulty.sqlite"), want)


def test_a_recrawl_of_changed_projects_under_faults_matches_a_clean_crawl(projects, tmp_path):
    """Changed, removed and unchanged projects, a previous index, a fifth of requests
    failing: the re-crawl ends where a fresh fault-free crawl of the new state does."""
    with GitLabTestServer(projects, fault_seed=9, fault_hang=1.0,
                          fault_statuses=MIXES["all"]) as server:
        clean_index(server, tmp_path / "faulty.sqlite")  # the previous index
        changes = change_projects(server, projects, seed=2)
        assert changes["changed"] and changes["removed"]
        want = clean_index(server, tmp_path / "clean.sqlite")
        server.fault_rate = 0.2
        statuses = crawl_until_converged(
            lambda: crawl(server, tmp_path / "faulty.sqlite", retries=2), limit=15)
        server.fault_rate = 0.0
        assert statuses[-1].ok
        got = snapshot(tmp_path / "faulty.sqlite")
        assert_same_index(got, want)
        assert not {i for _, i in got.items} & set(changes["removed"])


def test_gitlab_rate_limiting_is_waited_out(projects, tmp_path):
    """GitLab throttles (429 + ``Retry-After``): the crawl waits as told and ends with the
    fault-free index; every retry of a throttled request came no sooner than asked."""
    few = projects[:40]
    with GitLabTestServer(few) as server:
        want = clean_index(server, tmp_path / "clean.sqlite")
        server.reset_requests()
        server.rate_limit = (60, 1.0)
        status = crawl(server, tmp_path / "limited.sqlite")
        server.rate_limit = None
        assert status.ok
        log = server.requests
        limited = [i for i, r in enumerate(log) if r.fault == "rate-limit"]
        assert limited
        for i in limited:
            retry = next(r for r in log[i + 1:]
                         if r.path == log[i].path and r.query == log[i].query)
            assert retry.received - log[i].received >= 0.99  # Retry-After: 1 at least
        assert_same_index(snapshot(tmp_path / "limited.sqlite"), want)
