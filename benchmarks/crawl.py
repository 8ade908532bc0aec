"""Crawl benchmark: 2,000 projects behind the GitLab API test server with 20 ms latency.

Reports the full crawl (time, requests), then an incremental re-crawl with nothing changed
(time, requests), against the targets of the catalog-core issue:
full < 60 s; re-crawl < 3 s and <= ceil(N/100) + 5 requests + 2 per recently active project.

    .venv/bin/python benchmarks/crawl.py [--projects 2000] [--latency 0.02] [--recent 0.01]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
from sharinghub_server.crawler import Crawler
from sharinghub_server.index.store import open_store
from sharinghub_server.sources.gitlab import GitLabSource
from tests.support.gitlab_server import GitLabTestServer, make_synthetic_projects


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--projects", type=int, default=2000)
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--recent", type=float, default=0.01,
                   help="share of projects active within the last hour")
    p.add_argument("--workers", type=int, default=16)
    args = p.parse_args()

    projects = make_synthetic_projects(args.projects, seed=1,
                                       active_recently_fraction=args.recent)
    recent = round(args.projects * args.recent)
    with tempfile.TemporaryDirectory() as tmp, GitLabTestServer(
            projects, latency=args.latency) as server:
        store = open_store(f"sqlite://{Path(tmp) / 'index.sqlite'}")
        source = GitLabSource(server.url, "secret-token", workers=args.workers)
        crawler = Crawler(store, [source], DEFAULT_CATEGORIES)

        t0 = time.perf_counter()
        full = crawler.crawl()
        full_s = time.perf_counter() - t0
        full_requests = server.count()

        server.reset_requests()
        t0 = time.perf_counter()
        again = crawler.crawl()
        re_s = time.perf_counter() - t0
        re_requests = server.count()
        store.close()

    budget = math.ceil(args.projects / 100) + 5 + 2 * recent
    items = sum(full.items.values())
    print(f"projects: {args.projects} ({recent} active within the last hour), "
          f"latency {args.latency * 1000:.0f} ms, {args.workers} workers")
    print(f"full crawl:  {full_s:6.2f} s, {full_requests} requests, {items} items, "
          f"ok={full.ok}  (target < 60 s)")
    print(f"re-crawl:    {re_s:6.2f} s, {re_requests} requests "
          f"({again.sources[0].probed} probed, {again.sources[0].fetched} fetched), "
          f"ok={again.ok}  (target < 3 s, <= {budget} requests)")
    met = full.ok and again.ok and full_s < 60 and re_s < 3 and re_requests <= budget
    print("targets met" if met else "TARGETS MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
