"""The GitLab test server's fault injection itself: the network's faults (a dropped
connection, a timeout, a body cut short), a random mix of them at a given rate, GitLab's
rate limit (429 with ``Retry-After``) and held requests, each as a client sees it, so that the
crawl fault tests (``test_crawl_faults.py``, ``test_kill_safety.py``) rest on faults that
really happen."""

from __future__ import annotations

import threading
import time
from collections import Counter

import gitlab
import pytest
import requests

from tests.support.gitlab_server import (
    CONNECTION_FAULTS,
    DROP,
    TIMEOUT,
    TRUNCATE,
    GitLabTestServer,
    make_synthetic_projects,
)
from tests.support.polling import poll

TOKEN = "secret-token"
AUTH = {"PRIVATE-TOKEN": TOKEN}
ALL_KINDS = (500, 502, 503, 429, DROP, TIMEOUT, TRUNCATE)


@pytest.fixture(scope="module")
def projects():
    return make_synthetic_projects(120, seed=5)


@pytest.fixture
def server(projects):
    with GitLabTestServer(projects, fault_hang=0.5) as srv:
        yield srv


def listing(server: GitLabTestServer) -> str:
    return f"{server.api_url}/projects?per_page=100&order_by=id&sort=asc"


def test_a_dropped_connection_gets_no_answer_and_the_next_request_does(server):
    server.fail_next("projects", DROP)
    with pytest.raises(requests.ConnectionError) as info:
        requests.get(listing(server), headers=AUTH, timeout=5)
    assert "without response" in str(info.value)
    assert requests.get(listing(server), headers=AUTH, timeout=5).status_code == 200
    dropped, answered = server.requests
    assert (dropped.fault, dropped.status, dropped.faulted) == (DROP, None, True)
    assert (answered.fault, answered.status, answered.faulted) == (None, 200, False)
    assert server.errors == []


def test_a_timeout_keeps_the_client_waiting_then_drops(server):
    server.fail_next("projects", TIMEOUT)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(listing(server), headers=AUTH, timeout=0.1)
    # a patient client waits for the whole hang (fault_hang) and then loses the connection
    server.fail_next("projects", TIMEOUT)
    with pytest.raises(requests.ConnectionError):
        requests.get(listing(server), headers=AUTH, timeout=30)
    hung = [r for r in server.requests if r.fault == TIMEOUT]
    assert len(hung) == 2 and all(r.status is None for r in hung)
    assert requests.get(listing(server), headers=AUTH, timeout=5).status_code == 200


def test_a_truncated_body_announces_the_whole_length_and_sends_half(server):
    whole = requests.get(listing(server), headers=AUTH, timeout=5)
    server.fail_next("projects", TRUNCATE)
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as info:
        requests.get(listing(server), headers=AUTH, timeout=5)
    assert f"{len(whole.content) // 2} bytes read" in str(info.value)
    record = server.requests[-1]
    assert (record.fault, record.status) == (TRUNCATE, 200)  # the status line was sent


def test_unknown_fault_kinds_are_refused(server):
    server.fail_next("projects", "explode")
    requests.get(listing(server), headers=AUTH, timeout=5)
    assert any("unknown fault" in e for e in server.errors)


def test_a_random_mix_at_twenty_percent(projects):
    """Every kind shows up, about a fifth of the requests fault, and a seed repeats it."""

    def run() -> list[str | None]:
        with GitLabTestServer(projects, fault_rate=0.2, fault_seed=11, fault_hang=0.2,
                              fault_statuses=ALL_KINDS) as srv:
            session = requests.Session()
            for _ in range(400):
                try:
                    session.get(f"{srv.api_url}/projects/1", headers=AUTH, timeout=0.05)
                except requests.RequestException:
                    session = requests.Session()  # as a client does after a broken connection
            assert srv.errors == []
            return [r.fault for r in srv.requests]

    first = run()
    kinds = Counter(f for f in first if f is not None)
    assert set(kinds) == {str(k) for k in ALL_KINDS}
    # binomial(400, 0.2): mean 80, standard deviation 8; this range is over five of them
    assert 40 <= sum(kinds.values()) <= 120
    assert run() == first


@pytest.mark.parametrize("kind", CONNECTION_FAULTS)
def test_python_gitlab_retries_through_each_network_fault(server, projects, kind):
    client = gitlab.Gitlab(server.url, private_token=TOKEN, retry_transient_errors=True,
                           timeout=0.2)
    server.fail_next(lambda r: r.endpoint == "projects" and r.query.get("page") == "2", kind,
                     times=2)
    ids = [p.id for p in client.projects.list(iterator=True, per_page=50, order_by="id",
                                              sort="asc")]
    assert ids == sorted(p.id for p in projects)
    assert server.count(lambda r: r.fault == kind) == 2


def test_the_rate_limit_answers_429_with_retry_after_past_n_requests(server):
    server.rate_limit = (5, 2.0)
    answers = [requests.get(f"{server.api_url}/projects/1", headers=AUTH, timeout=5)
               for _ in range(8)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    limited = answers[-1]
    assert 1 <= int(limited.headers["Retry-After"]) <= 2
    assert limited.headers["RateLimit-Limit"] == "5"
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert int(limited.headers["RateLimit-Reset"]) >= int(time.time())
    assert server.count(lambda r: r.fault == "rate-limit") == 3
    # the next window answers again
    poll(lambda: requests.get(f"{server.api_url}/projects/1", headers=AUTH,
                              timeout=5).status_code == 200, "the next rate-limit window")


def test_python_gitlab_waits_as_retry_after_says(server, projects):
    """After each 429, the same request comes back no sooner than ``Retry-After`` asked."""
    server.rate_limit = (2, 1.0)
    client = gitlab.Gitlab(server.url, private_token=TOKEN, retry_transient_errors=True)
    ids = [p.id for p in client.projects.list(iterator=True, per_page=20, order_by="id",
                                              sort="asc")]
    assert ids == sorted(p.id for p in projects)
    log = server.requests
    limited = [i for i, r in enumerate(log) if r.fault == "rate-limit"]
    assert limited
    for i in limited:
        retry = next(r for r in log[i + 1:] if r.path == log[i].path and r.query == log[i].query)
        assert retry.received - log[i].received >= 1.0 - 0.01  # Retry-After: 1 (monotonic)


def test_held_requests_wait_until_released(server):
    hold = server.hold("projects", times=1)
    got: list[int] = []
    client = threading.Thread(target=lambda: got.append(
        requests.get(listing(server), headers=AUTH, timeout=30).status_code))
    client.start()
    poll(lambda: hold.waiting == 1, "the request to be held")
    # another endpoint is not held, nor a second listing (times=1)
    assert requests.get(f"{server.api_url}/projects/1", headers=AUTH, timeout=5).ok
    assert requests.get(listing(server), headers=AUTH, timeout=5).ok
    assert got == [] and hold.waiting == 1
    hold.release()
    client.join(10)
    assert got == [200] and hold.waiting == 0 and hold.held == 1
    assert server.requests[0].held and not server.requests[1].held


def test_stopping_the_server_ends_held_and_hanging_requests(projects):
    srv = GitLabTestServer(projects, fault_hang=3600).start()
    hold = srv.hold("project")
    srv.fail_next("projects", TIMEOUT)
    failures: list[str] = []

    def call(url: str) -> None:
        try:
            requests.get(url, headers=AUTH, timeout=60)
        except requests.RequestException as exc:
            failures.append(type(exc).__name__)

    clients = [threading.Thread(target=call, args=(f"{srv.api_url}/projects/1",)),
               threading.Thread(target=call, args=(listing(srv),))]
    for c in clients:
        c.start()
    poll(lambda: hold.waiting == 1 and srv.count(lambda r: r.fault == TIMEOUT) == 1,
         "a held and a hanging request")
    srv.stop()
    for c in clients:
        c.join(30)
    assert not any(c.is_alive() for c in clients)
