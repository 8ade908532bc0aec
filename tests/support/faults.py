"""Helpers of the fault and kill tests (and ``benchmarks/faults.py``): snapshots of an index
compared item by item, the fault mixes, crawls repeated until they converge, a probe of
SQLite's write lock, and a ``sharinghub-lab index`` process to kill at a chosen point."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.gitlab_server import DROP, TIMEOUT, TRUNCATE, FakeProject, GitLabTestServer

#: fault mixes for ``GitLabTestServer(fault_statuses=...)``: each entry equally likely
MIXES: dict[str, tuple[int | str, ...]] = {
    "http": (500, 502, 503, 429),
    "network": (DROP, TIMEOUT, TRUNCATE),
    "all": (500, 502, 503, 429, DROP, TIMEOUT, TRUNCATE),
}
TOKEN = "secret-token"


@dataclass
class Snapshot:
    """What an index holds, read through the store as the server reads it."""

    items: dict[tuple[str, str], dict]  # (collection, id) -> item
    duplicates: list[tuple[str, str, int]]  # (collection, id, rows) held more than once
    status: dict[str, Any] | None  # the last crawl's report
    integrity: str  # PRAGMA integrity_check
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # project -> state

    def by_project(self) -> dict[str, dict[tuple[str, str], dict]]:
        """project (item id) -> its items."""
        found: dict[str, dict[tuple[str, str], dict]] = {}
        for key, item in self.items.items():
            found.setdefault(key[1], {})[key] = item
        return found


def snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Open the index at ``path`` (as a restarted server would) and read all of it."""
    from sharinghub_server.index.query import Query
    from sharinghub_server.index.store import open_store

    with contextlib.closing(sqlite3.connect(path, timeout=60)) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    store = open_store(f"sqlite://{path}")
    try:
        items: dict[tuple[str, str], dict] = {}
        listed = 0
        token = None
        while True:
            page = store.search(Query(limit=500, token=token))
            for item in page.items:
                items[(item["collection"], item["id"])] = item
            listed += len(page.items)
            token = page.next_token
            if not token:
                break
        status = store.get_meta("crawl_status")
        states: dict[str, dict[str, Any]] = {}
        for source in {s["source"] for s in (status or {}).get("sources", [])}:
            states.update(store.project_states(source))
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(path, timeout=60)) as conn:
        duplicates = conn.execute(
            "SELECT collection, id, count(*) FROM items GROUP BY collection, id "
            "HAVING count(*) > 1").fetchall()
    if listed != len(items):  # the same item served twice by paging
        duplicates.append(("<paging>", "", listed - len(items)))
    return Snapshot(items, [tuple(d) for d in duplicates], status, integrity, states)


def differences(got: Mapping[tuple[str, str], dict],
                want: Mapping[tuple[str, str], dict]) -> dict[str, list[tuple[str, str]]]:
    """Items lost, extra and changed between two indexes (empty lists: identical)."""
    return {
        "lost": sorted(set(want) - set(got)),
        "extra": sorted(set(got) - set(want)),
        "changed": sorted(k for k in set(got) & set(want) if got[k] != want[k]),
    }


def project_errors(status: Mapping[str, Any] | Any) -> list[tuple[str, str]]:
    """The (project, message) problems of a crawl status (a CrawlStatus or its JSON)."""
    errors = status["errors"] if isinstance(status, Mapping) else [
        {"project": e.project, "message": e.message} for e in status.errors]
    return sorted((e["project"], e["message"]) for e in errors)


def is_transient(message: str) -> bool:
    """A problem of reading GitLab (this crawl), not of a project's metadata."""
    return ("GitLab answered" in message or "unreachable" in message
            or "(not indexed)" in message or "(kept the previously indexed version)" in message)


def crawl_until_converged(crawl: Callable[[], Any], *, limit: int,
                          after_each: Callable[[Any], None] | None = None) -> list[Any]:
    """Run ``crawl()`` (returning a CrawlStatus) until one finishes with no GitLab problem,
    at most ``limit`` times; returns every status (the last converged, unless ``limit``)."""
    statuses = []
    for _ in range(limit):
        status = crawl()
        statuses.append(status)
        if after_each is not None:
            after_each(status)
        if status.ok and not any(is_transient(m) for _, m in project_errors(status)):
            break
    return statuses


def write_locked(path: str | os.PathLike[str]) -> bool:
    """Whether a connection holds the SQLite write lock of ``path`` right now (a write
    transaction is open): ``BEGIN IMMEDIATE`` without waiting fails then."""
    if not Path(path).exists():
        return False
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc) or "busy" in str(exc)
    finally:
        conn.close()


def kill_in_write(proc: subprocess.Popen, index: str | os.PathLike[str],
                  timeout: float = 60) -> bool:
    """SIGKILL ``proc`` while it holds the index's write lock: poll for the lock, stop the
    process (SIGSTOP) and check the lock is still held (else let it go on and poll again),
    then kill it. Returns False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if write_locked(index):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGSTOP)
            if write_locked(index):
                proc.kill()
                proc.wait(30)
                return True
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.002)
    return False


def index_command(server: GitLabTestServer, index: str | os.PathLike[str], *,
                  workers: int = 4, retries: int = 6) -> list[str]:
    """``sharinghub-lab index`` of ``server`` into ``index`` (this environment's)."""
    exe = Path(sys.executable).parent / "sharinghub-lab"
    return [str(exe), "index", "--gitlab-url", server.url, "--token", TOKEN,
            "--index", f"sqlite://{index}", "--quiet", "--workers", str(workers),
            "--retries", str(retries)]


def start_index(server: GitLabTestServer, index: str | os.PathLike[str], log: Path,
                **kw: Any) -> subprocess.Popen:
    """The crawl as a process of its own (what the kill tests kill)."""
    with log.open("ab") as out:
        return subprocess.Popen(index_command(server, index, **kw), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def change_projects(server: GitLabTestServer, projects: Iterable[FakeProject], *,
                    seed: int = 0) -> dict[str, list[str]]:
    """A new state of GitLab for a re-crawl: a third of the projects get a new README
    (and activity), a tenth are removed; returns the paths changed and removed."""
    import random
    from datetime import datetime, timedelta, timezone

    rng = random.Random(seed)
    changed, removed = [], []
    for p in list(projects):
        roll = rng.random()
        if roll < 0.1:
            server.remove_project(p.id)
            removed.append(p.path_with_namespace)
        elif roll < 0.43:
            readme = server.project(p.id).files.get("README.md", b"")
            text = (readme.decode() if isinstance(readme, bytes) else str(readme))
            server.push(p.id, {"README.md": text + f"\nUpdated ({rng.random():.6f}).\n"},
                        when=datetime.now(timezone.utc)
                        - timedelta(days=1, minutes=rng.randint(1, 600)))
            changed.append(p.path_with_namespace)
    return {"changed": changed, "removed": removed}
