"""Load benchmark: 50 concurrent clients for 60 s against a real ``jupyter server`` with the
extension, while crawls run and a DVC pull is in progress (issue 15, "Load").

The world and the load are :mod:`tests.support.load`'s (the CI's short run is
``tests/test_load_short.py``): the GitLab API test server in a child process with
``--projects`` synthetic projects, ``--latency`` seconds per answer and ``--recent`` of them
active within the hour (each re-crawl checks those directly, so re-crawls keep working), plus a
private DVC dataset of ``--pull-files`` files (``--pull-mb`` MB, a local-folder remote) served
over git smart HTTP; the server's start-up crawl is waited for (its time is printed), then the
clients mix ``/search`` GET (varied parameters) and POST (varied bodies), ``next`` links, items
and downloads (local files, byte for byte, and GitLab files through the server's token), while
a crawl is asked for whenever the last one ended and a pull of the dataset is always running.

The event loop's lateness is measured inside the server (``tests/support/loop_watch.py``, a
10 ms tick on its IOLoop) and split into the loop thread running (the loop blocked by a
callback), waiting for a CPU (the machine is overloaded: 2 cores shared by the server, the
clients, the GitLab test server, git and DVC) and waiting for the GIL (another of the server's
threads holds it).

Targets: no errors, every answer well-formed; the event loop never blocked more than 100 ms
(the loop thread's longest run in one tick). The lateness itself (max, p99) is printed beside
it. Exits non-zero when a target is missed.

``--variants`` runs the same load against differently configured servers, one after the
other in this run (each with a fresh server, index and crawl; the order is reversed with
``--reverse``), and prints them side by side: ``default``; ``switch1ms``, the server's
threads switching every 1 ms instead of Python's 5 ms (``sys.setswitchinterval`` in a
``sitecustomize`` of this run's); ``search2``, ``SharingHub.search_threads=2`` instead of 4
(on 2 cores more threads only contend for the GIL); ``both``.

    .venv/bin/python benchmarks/load.py [--clients 50] [--duration 60] [--projects 3000]
        [--latency 0.02] [--recent 0.2] [--pull-files 1000] [--pull-mb 100]
        [--no-mlflow-warmup] [--json FILE] [--stalls N]
        [--variants default,switch1ms,search2,both] [--reverse]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.load import KINDS, LoadResult, load_world, run_load  # noqa: E402

BLOCK_TARGET_MS = 100.0
#: name -> (server arguments, switch interval in seconds or None)
VARIANTS: dict[str, tuple[list[str], float | None]] = {
    "default": ([], None),
    "switch1ms": ([], 0.001),
    "search2": (["--SharingHub.search_threads=2"], None),
    "both": (["--SharingHub.search_threads=2"], 0.001),
}


def run_variant(name: str, args: argparse.Namespace, tmp: Path
                ) -> tuple[LoadResult, dict, str]:
    """One server configured as variant ``name``, loaded: (result, world figures, log)."""
    server_args, switch = VARIANTS[name]
    python_path: list[str] = []
    if switch is not None:
        site = tmp / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(f"import sys\nsys.setswitchinterval({switch})\n")
        python_path.append(str(site))
    t0 = time.perf_counter()
    with load_world(tmp, projects=args.projects, latency=args.latency, recent=args.recent,
                    pull_files=args.pull_files, pull_mb=args.pull_mb,
                    mlflow_warmup=not args.no_mlflow_warmup, server_args=server_args,
                    python_path=python_path) as world:
        print(f"[{name}] world ready in {time.perf_counter() - t0:.0f} s: start-up crawl of "
              f"{args.projects} projects at {args.latency * 1000:.0f} ms latency took "
              f"{world.first_crawl_s:.1f} s, {world.items} items", flush=True)
        result = asyncio.run(run_load(world, clients=args.clients, duration=args.duration))
        log = world.server.log_path.read_text(errors="replace")
        exited = world.server.proc.poll()
        if exited is not None:  # it died under the load: how, and its last words
            result.background_errors.append(f"the server exited with status {exited}")
            print(f"[{name}] THE SERVER EXITED with status {exited}; its log ends with:\n"
                  f"{log[-4000:]}", flush=True)
    return result, {"first_crawl_s": world.first_crawl_s, "items": world.items}, log


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--projects", type=int, default=3000)
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--recent", type=float, default=0.2)
    p.add_argument("--pull-files", type=int, default=1000)
    p.add_argument("--pull-mb", type=float, default=100)
    p.add_argument("--no-mlflow-warmup", action="store_true",
                   help="do not load the embedded MLflow server in the background (it "
                        "loads once the start-up crawl ended, by default, as in production)")
    p.add_argument("--json", help="write every figure to this file")
    p.add_argument("--stalls", type=int, default=3,
                   help="print the loop thread's stack for this many of the worst stalls")
    p.add_argument("--variants", default="default",
                   help=f"comma-separated, run one after the other: {', '.join(VARIANTS)}")
    p.add_argument("--reverse", action="store_true", help="run the variants in reverse order")
    args = p.parse_args()

    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; known: {sorted(VARIANTS)}")
    if args.reverse:
        names.reverse()
    results: dict[str, LoadResult] = {}
    figures: dict[str, dict] = {}
    ok = True
    for name in names:
        with tempfile.TemporaryDirectory(prefix="sharinghub-load-") as tmp:
            result, world, log = run_variant(name, args, Path(tmp))
        results[name] = result
        print(f"[{name}]")
        print(result.table())
        tracebacks = log.count("Traceback")
        print(f"server log: {tracebacks} tracebacks, "
              f"{sum(' 500 ' in line for line in log.splitlines())} lines with 500")
        for kind in KINDS:
            for error in result.kinds[kind].errors[:3]:
                print(f"  {kind}: {error[:300]}")
        for error in result.background_errors[:5]:
            print(f"  background: {error[:300]}")
        for stall in result.loop["stalls"][:args.stalls]:
            print(f"stall {stall['ms']} ms (running {stall.get('running_ms')} ms, waiting for "
                  f"a CPU {stall.get('cpu_wait_ms')} ms, for the GIL "
                  f"{stall.get('gil_wait_ms')} ms); loop thread at:")
            for frame in stall["stack"][-5:]:
                print(f"    {frame}")
        blocked = result.loop["running_max_ms"]
        met = not result.errors and blocked < BLOCK_TARGET_MS
        ok = ok and met
        print(f"targets: errors {len(result.errors)} (0), loop blocked at most {blocked} ms "
              f"(< {BLOCK_TARGET_MS:.0f}); lateness max {result.loop['max_ms']} ms, "
              f"p99 {result.loop['p99_ms']} ms: {'met' if met else 'MISSED'}", flush=True)
        figures[name] = {
            **world, "kinds": {k: result.kinds[k].summary() for k in KINDS},
            "requests": result.requests, "duration": result.duration, "loop": result.loop,
            "crawl_running": result.crawl_running, "crawls_started": result.crawls_started,
            "pull_running": result.pull_running, "pulls_done": result.pulls_done,
            "background_errors": result.background_errors, "server_tracebacks": tracebacks}
    if len(results) > 1:
        print("\nvariant      req/s  search p50/p95 ms  item p50/p95 ms  lateness p50/p99/max ms"
              "  blocked ms")
        for name, r in results.items():
            search = r.kinds["search_get"].summary()
            item = r.kinds["item"].summary()
            print(f"{name:10s} {r.requests / r.duration:7.0f}  {search['p50_ms']:7.0f} "
                  f"{search['p95_ms']:7.0f}    {item['p50_ms']:6.0f} {item['p95_ms']:6.0f}"
                  f"     {r.loop['p50_ms']:6.0f} {r.loop['p99_ms']:6.0f} {r.loop['max_ms']:6.0f}"
                  f"   {r.loop['running_max_ms']:6.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "variants": figures},
                                              indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
