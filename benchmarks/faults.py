"""Fault benchmark: the long version of ``tests/test_crawl_faults.py`` and
``tests/test_kill_safety.py``.

1. **Fault crawls.** ``--projects`` synthetic projects behind the GitLab API test server; for
   each fault mix (``http``: 500/502/503/429; ``network``: dropped connections, timeouts,
   bodies cut short; ``all``: both) at ``--rate`` (a fifth of the requests by default), crawls
   into a fresh index until one converges (no GitLab problem left), then compares it item by
   item with a fault-free crawl: items lost, extra, changed and held twice (all must be 0).
   With ``--rate-limit N`` a throttled crawl (429 + ``Retry-After`` past N requests a second)
   is added.
2. **Kills.** ``--kills`` times: ``sharinghub-lab index`` re-crawls a changed GitLab into a
   copy of the previous index and is SIGKILLed at a random point (after a random number of
   GitLab requests, or, one time in four, inside an index write: caught holding the write
   lock with the process stopped). Each outcome is counted: the index opens (integrity), each
   project holds its previous or its new items (never a mix), and the next crawl converges to
   the fault-free index.

    .venv/bin/python benchmarks/faults.py [--projects 2000] [--mixes http,network,all]
        [--rate 0.2] [--rate-limit 200] [--kills 50] [--kill-projects 400] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "server_ext"))

from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES  # noqa: E402
from sharinghub_server.crawler import Crawler  # noqa: E402
from sharinghub_server.index.store import open_store  # noqa: E402
from sharinghub_server.sources.gitlab import GitLabSource  # noqa: E402
from tests.support.faults import (  # noqa: E402
    MIXES,
    TOKEN,
    change_projects,
    crawl_until_converged,
    differences,
    index_command,
    kill_in_write,
    snapshot,
    start_index,
)
from tests.support.gitlab_server import GitLabTestServer, make_synthetic_projects  # noqa: E402


def crawl_once(server: GitLabTestServer, index: Path, retries: int = 6):
    store = open_store(f"sqlite://{index}")
    try:
        source = GitLabSource(server.url, TOKEN, timeout=0.5, max_retries=retries)
        return Crawler(store, [source], DEFAULT_CATEGORIES).crawl()
    finally:
        store.close()


def fault_crawls(args: argparse.Namespace, tmp: Path) -> list[dict]:
    projects = make_synthetic_projects(args.projects, seed=args.seed)
    rows = []
    with GitLabTestServer(projects, latency=args.latency, fault_hang=1.0) as server:
        started = time.monotonic()
        status = crawl_once(server, tmp / "clean.sqlite")
        clean_time = time.monotonic() - started
        assert status.ok, status.sources
        want = snapshot(tmp / "clean.sqlite")
        print(f"fault-free crawl of {args.projects} projects: {clean_time:.1f} s, "
              f"{len(want.items)} items", flush=True)
        cases = [(mix, MIXES[mix], None) for mix in args.mixes]
        if args.rate_limit:
            cases.append((f"rate limit {args.rate_limit}/s", (), (args.rate_limit, 1.0)))
        for name, kinds, limit in cases:
            index = tmp / f"faulty-{len(rows)}.sqlite"
            server.reset_requests()
            server.fault_statuses = kinds or (500,)
            server.fault_rate = args.rate if kinds else 0.0
            server.rate_limit = limit
            started = time.monotonic()
            statuses = crawl_until_converged(lambda index=index: crawl_once(server, index),
                                             limit=10)
            took = time.monotonic() - started
            server.fault_rate, server.rate_limit = 0.0, None
            got = snapshot(index)
            diff = differences(got.items, want.items)
            faults = Counter(r.fault for r in server.requests if r.fault)
            row = {"case": name, "crawls": len(statuses), "seconds": took,
                   "requests": len(server.requests), "faults": dict(faults),
                   "lost": len(diff["lost"]), "extra": len(diff["extra"]),
                   "changed": len(diff["changed"]), "duplicated": len(got.duplicates),
                   "integrity": got.integrity, "converged": statuses[-1].ok}
            rows.append(row)
            print(f"  {name}: {row['crawls']} crawl(s), {took:.1f} s "
                  f"({took / clean_time:.1f}x), {row['requests']} requests, faults "
                  f"{sum(faults.values())} {dict(sorted(faults.items()))}; lost {row['lost']}, "
                  f"extra {row['extra']}, changed {row['changed']}, duplicated "
                  f"{row['duplicated']}, integrity {row['integrity']}", flush=True)
    return rows


def _copy(source: Path, target: Path) -> None:
    with contextlib.closing(sqlite3.connect(source)) as src, \
            contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _run(server: GitLabTestServer, index: Path) -> int:
    return subprocess.run(index_command(server, index), capture_output=True,
                          timeout=600).returncode


def kills(args: argparse.Namespace, tmp: Path) -> Counter:
    rng = random.Random(args.seed)
    projects = make_synthetic_projects(args.kill_projects, seed=args.seed + 1)
    outcomes: Counter = Counter()
    with GitLabTestServer(projects) as server:
        assert _run(server, tmp / "prev.sqlite") == 0
        change_projects(server, projects, seed=args.seed)
        assert _run(server, tmp / "want.sqlite") == 0
        _copy(tmp / "prev.sqlite", tmp / "measure.sqlite")
        server.reset_requests()
        assert _run(server, tmp / "measure.sqlite") == 0  # how many requests a re-crawl makes
        full = server.count()
        prev, want = snapshot(tmp / "prev.sqlite"), snapshot(tmp / "want.sqlite")
        p_items, w_items = prev.by_project(), want.by_project()
        print(f"kills: a re-crawl makes {full} GitLab requests; {args.kills} kills", flush=True)
        for n in range(args.kills):
            index = tmp / f"kill-{n}.sqlite"
            _copy(tmp / "prev.sqlite", index)
            server.reset_requests()
            in_write = rng.random() < 0.25
            target = rng.randint(1, full)
            proc = start_index(server, index, tmp / "kill.log")
            if in_write:
                while server.count("tree") == 0 and proc.poll() is None:
                    time.sleep(0.005)
                killed = kill_in_write(proc, index)
                point = "in an index write"
            else:
                while server.count() < target and proc.poll() is None:
                    time.sleep(0.002)
                killed = proc.poll() is None
                proc.kill()
                proc.wait(30)
                point = "after a random request"
            if not killed:
                outcomes[f"{point}: the crawl ended before the kill"] += 1
            got = snapshot(index)
            g = got.by_project()
            mixed = [p for p in set(g) | set(p_items) | set(w_items)
                     if g.get(p, {}) not in (p_items.get(p, {}), w_items.get(p, {}))]
            if got.integrity != "ok" or got.duplicates:
                state = "CORRUPT"
            elif mixed:
                state = f"MIXED ({len(mixed)} projects)"
            elif not differences(got.items, prev.items)["changed"] and set(got.items) == set(
                    prev.items):
                state = "previous index"
            elif not any(differences(got.items, want.items).values()):
                state = "new index"
            else:
                state = "each project previous or new"
            code = _run(server, index)
            after = snapshot(index)
            mended = code == 0 and not any(differences(after.items, want.items).values())
            outcomes[f"{point}: {state}; next crawl "
                     f"{'converged' if mended else 'DID NOT converge'}"] += 1
            if not killed:
                point += " (the crawl ended first)"
            print(f"  kill {n + 1}/{args.kills}: {point}, {state}, "
                  f"{'converged' if mended else 'NOT converged'}", flush=True)
    return outcomes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--projects", type=int, default=2000)
    p.add_argument("--mixes", default="http,network,all")
    p.add_argument("--rate", type=float, default=0.2)
    p.add_argument("--rate-limit", type=int, default=200,
                   help="requests per second for the throttled crawl (0: none)")
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--kill-projects", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.mixes = [m for m in args.mixes.split(",") if m]
    tmp = Path(tempfile.mkdtemp(prefix="sharinghub-faults-"))
    try:
        rows = fault_crawls(args, tmp) if args.projects else []
        outcomes = kills(args, tmp) if args.kills else Counter()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bad = [r for r in rows if r["lost"] or r["extra"] or r["changed"] or r["duplicated"]
           or r["integrity"] != "ok" or not r["converged"]]
    if outcomes:
        print("kill outcomes:")
        for outcome, count in sorted(outcomes.items()):
            print(f"  {count:4d}  {outcome}")
    broken = sum(c for o, c in outcomes.items() if "CORRUPT" in o or "MIXED" in o
                 or "DID NOT" in o)
    print("OK" if not bad and not broken else f"FAILED: {len(bad)} fault crawl(s), "
          f"{broken} kill(s)")
    return 0 if not bad and not broken else 1


if __name__ == "__main__":
    sys.exit(main())
