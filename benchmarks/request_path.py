"""The request path of a STAC search: what a real ``jupyter server`` adds to the store's own
time, where that goes, before and after a change, in one run.

The corpus, index and request mix come from ``search.py`` (100,000 synthetic items, the index
cached in ``--workdir``): every request of its mix is sent as ``POST sharinghub/api/stac/search``
with ``limit`` 10 and a ``sortby`` (its own, else ``-datetime``), and the ``next`` links of its
deep-page chains are followed; every ``numberMatched`` is checked against the brute-force count.

Server variants: ``--before DIR`` (a checkout such as ``git worktree add /tmp/before HEAD``),
``--after DIR`` (this checkout by default) and any ``--also LABEL=DIR``, each run on the same
index file (their index code must agree on its schema):

1. in process: the same bodies parsed and searched by the variant's own code with no HTTP
   (``search_from_post`` + ``store.search``), in a child process;
2. through Jupyter: ``jupyter server`` in a subprocess (the variant's code first on
   ``PYTHONPATH``), one keep-alive ``requests`` session (the client ``search.py`` uses);
   p50/p95 over all rounds. Each round starts fresh servers and children for every variant,
   all running at once, and sends each search to each of them in turn (alternating which goes
   first): on a machine shared with other work, every variant sees the same load;
3. breakdown: a last round with instrumented servers (timers wrapped around tornado's
   request, Jupyter's ``prepare``, the handler's thread hops, parsing, ``store.search``, the
   overlays, building and encoding the page, ``finish``), mean milliseconds per request;
4. repeats: 50 searches of the mix sent twice in a row to those servers, the second timed
   (a repeated read: the sidebar retyping a query, a client re-reading a page);
5. the CPU time each server process used for the plain rounds' requests (all its threads):
   the work done, which the machine's load does not change.

Answers of the variants must be the same JSON (compared parsed, the servers' URLs aside).
Target (issue 14): through Jupyter, p50 < 4 ms and p95 < 12 ms. Exits non-zero when the last
variant misses it, a count is wrong or the answers differ.

    .venv/bin/python benchmarks/request_path.py [--before DIR] [--after DIR]
        [--also LABEL=DIR ...] [--rounds 3] [--workdir DIR] [--requests 200] [--seed 1]
        [--no-check]
"""

from __future__ import annotations

import argparse
import atexit
import contextvars
import functools
import json
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
P50_TARGET_MS, P95_TARGET_MS = 4.0, 12.0
LIMIT = 10
DEFAULT_SORT = [{"field": "datetime", "direction": "desc"}]
REPEATS = 50
RECORDS_ENV = "REQUEST_PATH_RECORDS"

# --- the instrumented server (runs in the server's process) -----------------------------------

_CURRENT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("request_record",
                                                                        default=None)
_LOCAL = threading.local()


def _record() -> dict | None:
    """The timing record of the request this code works for (pool threads: set by ``run``)."""
    return getattr(_LOCAL, "record", None) or _CURRENT.get()


def _add(record: dict, what: str, seconds: float) -> None:
    record[what] = record.get(what, 0.0) + seconds * 1000


def _leaf(name: str, fn: Callable) -> Callable:
    """``fn`` timed as ``name (loop)`` or ``name (pool)``, for requests being recorded."""

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        record = _record()
        if record is None:
            return fn(*args, **kwargs)
        where = "loop" if threading.current_thread() is threading.main_thread() else "pool"
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(record, f"{name} ({where})", time.perf_counter() - started)

    return timed


def _async_leaf(name: str, fn: Callable) -> Callable:
    @functools.wraps(fn)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        record = _record()
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            if record is not None:
                _add(record, f"{name} (loop)", time.perf_counter() - started)

    return timed


def instrument() -> None:
    """Wrap timers around the request path (whatever of it the variant's code has), and
    write the records to ``$REQUEST_PATH_RECORDS`` when the server exits."""
    import jupyter_server.base.handlers as jhandlers
    from tornado import httputil, web

    import sharinghub_server.handlers.base as base
    import sharinghub_server.handlers.stac as stac
    import sharinghub_server.service as service
    from sharinghub_server.index.sqlite import SQLiteStore
    from sharinghub_server.stac import responses

    records: list[dict] = []
    init = httputil.HTTPServerRequest.__init__

    @functools.wraps(init)
    def request_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._bench_start = time.perf_counter()

    httputil.HTTPServerRequest.__init__ = request_init  # type: ignore[method-assign]
    execute = web.RequestHandler._execute

    async def timed_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.method != "POST" or not request.path.endswith("/stac/search"):
            return await execute(self, *args, **kwargs)
        record: dict = {}
        _CURRENT.set(record)  # (this task's own context)
        try:
            return await execute(self, *args, **kwargs)
        finally:
            record["server"] = (time.perf_counter() - request._bench_start) * 1000
            records.append(record)

    web.RequestHandler._execute = timed_execute  # type: ignore[method-assign]
    jhandlers.APIHandler.prepare = _async_leaf("auth and checks: prepare()",
                                               jhandlers.APIHandler.prepare)
    web.RequestHandler.finish = _leaf("finish: headers, socket write, log",
                                      web.RequestHandler.finish)
    run = base.SharingHubHandler.run

    async def timed_run(self: Any, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        record = _CURRENT.get()
        if record is None:
            return await run(self, fn, *args, **kwargs)
        marks: dict[str, float] = {}

        def in_pool() -> Any:
            marks["start"] = time.perf_counter()
            cpu = time.thread_time()
            _LOCAL.record = record
            try:
                return fn(*args, **kwargs)
            finally:
                _LOCAL.record = None
                marks["end"] = time.perf_counter()
                _add(record, "pool thread CPU", time.thread_time() - cpu)

        submitted = time.perf_counter()
        try:
            return await run(self, in_pool)
        finally:
            resumed = time.perf_counter()
            record["hops"] = record.get("hops", 0) + 1
            _add(record, "thread hops", (marks["start"] - submitted) + (resumed - marks["end"]))
            _add(record, "in the pool", marks["end"] - marks["start"])

    base.SharingHubHandler.run = timed_run  # type: ignore[method-assign]
    for name in ("load_json", "search_from_post", "search_from_get"):
        if hasattr(stac, name):
            setattr(stac, name, _leaf("parse", getattr(stac, name)))
    SQLiteStore.search = _leaf("store.search", SQLiteStore.search)  # type: ignore[method-assign]
    service.CatalogService._with_overlays = _leaf(  # type: ignore[method-assign]
        "overlays", service.CatalogService._with_overlays)
    responses.item_collection = _leaf("build the page", responses.item_collection)
    if hasattr(base, "encode_json"):
        encode = _leaf("JSON encode", base.encode_json)
        for module in (base, stac):
            if hasattr(module, "encode_json"):
                module.encode_json = encode
    else:  # (json.dumps in write_json)
        import json as std_json
        import types

        shim = types.ModuleType("json")
        shim.__dict__.update(vars(std_json))
        shim.dumps = _leaf("JSON encode", std_json.dumps)
        base.json = shim  # type: ignore[attr-defined]

    def dump() -> None:
        Path(os.environ[RECORDS_ENV]).write_text(json.dumps(records))

    atexit.register(dump)


def serve(argv: list[str], instrumented: bool) -> None:
    if instrumented:
        instrument()
    from jupyter_server.serverapp import main as server_main

    sys.argv = ["jupyter-server", *argv]
    server_main()


# --- in process (runs in a child with the variant's code) --------------------------------------


def in_process_child(index: str) -> None:
    """Searches the index for each chain read from stdin (one JSON line: [body, follow]),
    writing its times back (one JSON line): the variant's own code, no HTTP."""
    from sharinghub_server.index.sqlite import SCHEMA_VERSION
    from sharinghub_server.index.store import open_store
    from sharinghub_server.stac.params import search_from_post

    known = ("ai-model", "dataset", "processor", "tools", "dashboard")
    store = open_store(f"sqlite://{index}")
    print(json.dumps({"schema": SCHEMA_VERSION}), flush=True)
    try:
        for line in sys.stdin:
            first, follow = json.loads(line)
            body: dict | None = first
            times = []
            for _depth in range(follow + 1):
                if body is None:
                    break
                started = time.perf_counter()
                page = store.search(search_from_post(body, known_collections=known))
                times.append((time.perf_counter() - started) * 1000)
                body = {**first, "token": page.next_token} if page.next_token else None
            print(json.dumps(times), flush=True)
    finally:
        store.close()


# --- the driver -------------------------------------------------------------------------------


def post_body(request: Any) -> dict[str, Any]:
    """A request of the mix as a POST /search body, limit 10 and sorted."""
    from sharinghub_server.stac.params import split_terms

    body: dict[str, Any] = {}
    if request.path.startswith("collections/"):
        body["collections"] = [request.path.split("/")[1]]
    for key, value in request.args.items():
        if key == "limit":
            continue
        if request.method == "POST":
            body[key] = value
        elif key == "q":
            body["q"] = split_terms(value)
        elif key == "bbox":
            body["bbox"] = [float(v) for v in value.split(",")]
        elif key == "collections":
            body["collections"] = value.split(",")
        elif key == "sortby":
            body["sortby"] = [{"field": f.lstrip("+-"),
                               "direction": "desc" if f.startswith("-") else "asc"}
                              for f in value.split(",")]
        else:
            body[key] = value
    body.setdefault("sortby", DEFAULT_SORT)
    body["limit"] = LIMIT
    return body


class Variant:
    def __init__(self, label: str, checkout: Path) -> None:
        self.label = label
        self.checkout = checkout.resolve()
        if not (self.checkout / "server_ext" / "sharinghub_server").is_dir():
            raise SystemExit(f"{checkout}: no server_ext/sharinghub_server in it")
        self.http: list[float] = []
        self.in_process: list[float] = []
        self.cpu_s = 0.0  # server CPU over the plain rounds' mixes
        self.cpu_requests = 0
        self.records: list[dict] = []
        self.client: list[float] = []  # the instrumented run's client times
        self.client_answers: list[Any] = []
        self.repeats: list[float] = []
        self.answers: list[Any] = []
        self.reads: list[Any] = []  # the GET endpoints' answers

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHARINGHUB_")}
        paths = [str(self.checkout / "server_ext"), str(self.checkout)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env


class Server:
    """``jupyter server`` on the index with a variant's code, in a subprocess."""

    def __init__(self, variant: Variant, index: Path, workdir: Path,
                 instrumented: bool = False) -> None:
        self.variant = variant
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.workdir = workdir / f"server-{self.port}"
        self.workdir.mkdir(parents=True)
        self.records_path = self.workdir / "records.json"
        cmd = [sys.executable, str(Path(__file__).resolve()),
               "--serve-instrumented" if instrumented else "--serve", "--",
               "--no-browser", f"--port={self.port}", "--ServerApp.port_retries=0",
               "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.workdir}",
               f"--SharingHub.index_url=sqlite://{index}", "--SharingHub.crawl_interval=0",
               "--SharingHub.gitlab_url=", "--SharingHub.local_projects=[]",
               "--SharingHub.mlflow_warmup=False"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        env = variant.env()
        env["JUPYTER_RUNTIME_DIR"] = str(self.workdir / "runtime")
        env[RECORDS_ENV] = str(self.records_path)
        self.log_path = self.workdir / "server.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         cwd=self.workdir)
        import requests

        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = f"token {self.token}"
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the server did not start:\n"
                                 + self.log_path.read_text(errors="replace")[-3000:])
            try:
                if self.session.get(f"{self.url}sharinghub/api/stac/",
                                    timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        # the connection and the server's first request, no query
        self.session.get(f"{self.url}api/status").raise_for_status()

    def post(self, body: dict) -> tuple[float, dict]:
        started = time.perf_counter()
        r = self.session.post(f"{self.url}sharinghub/api/stac/search", json=body)
        content = r.content
        ms = (time.perf_counter() - started) * 1000
        if r.status_code != 200:
            raise SystemExit(f"{self.variant.label}: HTTP {r.status_code}: {content[:300]!r}")
        return ms, json.loads(content)

    def chain(self, first: dict, follow: int) -> tuple[list[float], list[Any]]:
        """A search and the ``next`` links of its chain; (ms, answers)."""
        times, answers = [], []
        body: dict | None = first
        for _depth in range(follow + 1):
            if body is None:
                break
            ms, page = self.post(body)
            times.append(ms)
            answers.append(page)
            link = next((x for x in page["links"] if x["rel"] == "next"), None)
            body = link["body"] if link else None
        return times, answers

    def reads(self, ids: list[tuple[str, str]]) -> list[Any]:
        """The other endpoints' answers (GET), with this server's URL replaced."""
        stac = f"{self.url}sharinghub/api/stac"
        urls = [stac, f"{stac}/conformance", f"{stac}/collections", f"{stac}/queryables",
                f"{stac}/collections/dataset", f"{stac}/collections/ai-model/queryables",
                f"{stac}/search?q=flood,water&limit=5&bbox=-20,-20,40,40",
                f"{stac}/collections/dataset/items?limit=7&datetime=2020-01-01T00:00:00Z/..",
                *(f"{stac}/collections/{cid}/items/{iid}" for cid, iid in ids)]
        out = []
        for url in urls:
            r = self.session.get(url)
            if r.status_code != 200:
                raise SystemExit(f"{self.variant.label}: HTTP {r.status_code} for {url}")
            out.append(_normal(r.json(), self.url))
        return out

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (all its threads): its work, whatever the
        machine's load does to the wall-clock figures."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> list[dict]:
        self.session.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.records_path.exists():
            return json.loads(self.records_path.read_text())
        return []


class InProcess:
    """A child process with the variant's code searching the index itself (a fresh store:
    one per round, as each round's servers are fresh)."""

    def __init__(self, variant: Variant, index: Path) -> None:
        self.variant = variant
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--in-process-child", str(index)],
            env=variant.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self.proc.stdout.readline() if self.proc.stdout else ""
        if not hello:
            raise SystemExit(f"{variant.label}: the in-process child did not start")
        self.schema = json.loads(hello)["schema"]

    def chain(self, first: dict, follow: int) -> list[float]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps([first, follow]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.variant.label}: the in-process child failed")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(30)


def answers_ids(answers: list[Any], n: int = 10) -> list[tuple[str, str]]:
    """(collection, id) of a few items found by the mix."""
    found = [(f["collection"], f["id"]) for a in answers for f in a["features"]]
    return sorted(set(found))[:n]


def _normal(answer: Any, url: str) -> Any:
    """An answer with the server's own URL replaced (each server has its port)."""
    return json.loads(json.dumps(answer).replace(url, "http://server/"))


BREAKDOWN = (
    ("auth and checks: prepare() (loop)", "authentication and checks (Jupyter's prepare)"),
    ("thread hops", "thread hops (to the pool and back)"),
    ("parse (loop)", "parse body + query, on the event loop"),
    ("parse (pool)", "parse body + query, in the pool"),
    ("store.search (pool)", "store.search (the in-process figure's part)"),
    ("overlays (pool)", "overlays (registered models) merged in"),
    ("build the page (loop)", "build the page, on the event loop"),
    ("build the page (pool)", "build the page, in the pool"),
    ("JSON encode (loop)", "JSON encoding, on the event loop"),
    ("JSON encode (pool)", "JSON encoding, in the pool"),
    ("pool other", "other work in the pool (links, service)"),
    ("pool thread CPU", "  (CPU time of the pool thread for the above)"),
    ("finish: headers, socket write, log (loop)",
     "finish(): headers, socket write, access log"),
    ("loop other", "tornado dispatch, handler, coroutine steps"),
)


def breakdown(variant: Variant) -> dict[str, float]:
    """Mean ms per request of each part (the records' leaves; the rest as 'other')."""
    n = len(variant.records)
    sums: dict[str, float] = defaultdict(float)
    for record, client in zip(variant.records, variant.client, strict=False):
        pool_leaves = sum(v for k, v in record.items() if k.endswith("(pool)"))
        loop_leaves = sum(v for k, v in record.items() if k.endswith("(loop)"))
        for key, value in record.items():
            if key.endswith(("(pool)", "(loop)")) or key in ("thread hops", "hops", "server",
                                                              "in the pool", "pool thread CPU"):
                sums[key] += value
        sums["pool other"] += record.get("in the pool", 0.0) - pool_leaves
        sums["loop other"] += (record["server"] - record.get("thread hops", 0.0)
                               - record.get("in the pool", 0.0) - loop_leaves)
        sums["client"] += client
        sums["outside"] += client - record["server"]
    return {k: v / n for k, v in sums.items()} if n else {}


def pct(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, as search.py)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report(variants: list[Variant], rounds: int, n_distinct: int, n_requests: int) -> None:
    width = 50
    head = "".join(f" | {v.label:^17}" for v in variants)
    print(f"\nPOST /search at 100,000 items: {n_distinct} distinct searches and the next "
          f"pages of the deep ones, {n_requests} requests a round (limit {LIMIT}, sorted, "
          f"exact counts), {rounds} round(s) per variant")
    print(f"{'':<{width}}{head}")
    print(f"{'':<{width}}" + " | {:>8} {:>8}".format("p50 ms", "p95 ms") * len(variants))

    def line(what: str, values: list[list[float]]) -> None:
        print(f"{what:<{width}}" + "".join(f" | {pct(v, 50):8.2f} {pct(v, 95):8.2f}"
                                           for v in values))

    line("in process: parse + store.search", [v.in_process for v in variants])
    line("through Jupyter (requests, keep-alive)", [v.http for v in variants])
    print(f"{'  difference':<{width}}" + "".join(
        f" | {pct(v.http, 50) - pct(v.in_process, 50):8.2f} "
        f"{pct(v.http, 95) - pct(v.in_process, 95):8.2f}" for v in variants))
    line(f"a repeated request ({REPEATS} searches, twice in a row)",
         [v.repeats for v in variants])
    print(f"{'server CPU per request, mean ms (all threads)':<{width}}" + "".join(
        f" | {v.cpu_s * 1000 / max(v.cpu_requests, 1):17.2f}" for v in variants))

    parts = [breakdown(v) for v in variants]
    print(f"\nbreakdown: mean ms per request, one instrumented server per variant"
          f"\n{'':<{width}}" + "".join(f" | {v.label:^17}" for v in variants))

    def row(what: str, values: list[float | None], fmt: str = "{:17.3f}") -> None:
        print(f"{what:<{width}}" + "".join(
            " | " + (fmt.format(x) if x is not None else f"{'-':>17}") for x in values))

    row("client: the whole request", [p.get("client") for p in parts])
    row("  outside the handler (client library, kernel,", [p.get("outside") for p in parts])
    print("   HTTP parsing before the handler)")
    row("  in the server (request read -> finished)", [p.get("server") for p in parts])
    for key, what in BREAKDOWN:
        values = [p.get(key) for p in parts]
        if any(v is not None and abs(v) >= 0.0005 for v in values):
            row(f"    {what}", values)
    row("    thread hops per request", [p.get("hops") for p in parts], "{:17.1f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, help="a checkout to run as the 'before' server")
    p.add_argument("--after", type=Path, default=ROOT,
                   help="the checkout to run as the 'after' server (default: this one)")
    p.add_argument("--also", action="append", default=[], metavar="LABEL=DIR",
                   help="another checkout to run beside them (a variant of a change)")
    p.add_argument("--rounds", type=int, default=3, help="servers per variant, alternating")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where indexes are cached (default: search.py's)")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-check", action="store_true",
                   help="skip the brute-force numberMatched checks")
    args = p.parse_args()

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import search

    mix = getattr(search, "Plan", None) or search.RequestMix  # (the mix class)
    workdir = args.workdir or Path(tempfile.gettempdir()) / "sharinghub-search-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    corpus = search.Corpus(100_000, seed=args.seed)
    index, built = search.cached_index(corpus, workdir)
    plan = mix(corpus, args.requests, args.seed)
    # distinct bodies only (GET requests that differed by their limit alone are one POST
    # now): a repeat would be a cache's answer, measured apart
    chains, requests, seen = [], [], set()
    for request in plan.requests:
        body = post_body(request)
        key = json.dumps(body, sort_keys=True)
        if key not in seen:
            seen.add(key)
            chains.append((body, request.follow))
            requests.append(request)
    print(f"index {index} ({'built' if built is not None else 'cached'}), corpus and mix "
          f"ready in {time.perf_counter() - started:.0f} s", flush=True)

    variants = []
    if args.before:
        variants.append(Variant("before", args.before))
    for spec in args.also:
        label, _, checkout = spec.partition("=")
        variants.append(Variant(label[:17], Path(checkout)))
    variants.append(Variant("after" if args.before else "this checkout", args.after))
    run_dir = Path(tempfile.mkdtemp(prefix="request-path-"))
    try:
        import gc

        gc.collect()
        gc.freeze()  # (the corpus: millions of objects the collector need not walk)
        for round_ in range(args.rounds + 1):
            # every variant's server (and in-process child) runs at once, and each search
            # goes to one then the other (in turn first): on a machine shared with other
            # work, they all see the same load. The last round is the instrumented one.
            instrumented = round_ == args.rounds
            servers = [Server(v, index, run_dir, instrumented=instrumented) for v in variants]
            children = [] if instrumented else [InProcess(v, index) for v in variants]
            try:
                if len({c.schema for c in children}) > 1:
                    raise SystemExit("the variants have different index schemas: one index "
                                     "file cannot serve both")
                cpu = [server.cpu_seconds() for server in servers]
                for i, (first, follow) in enumerate(chains):
                    order = list(range(len(variants)))
                    if i % 2:
                        order.reverse()
                    for k in order:
                        variant, server = variants[k], servers[k]
                        times, answers = server.chain(first, follow)
                        if instrumented:
                            variant.client += times
                            variant.client_answers += answers
                            continue
                        variant.http += times
                        if round_ == 0:
                            variant.answers += [_normal(a, server.url) for a in answers]
                        variant.in_process += children[k].chain(first, follow)
                if not instrumented:
                    for k, (variant, server) in enumerate(zip(variants, servers, strict=True)):
                        variant.cpu_s += server.cpu_seconds() - cpu[k]
                        variant.cpu_requests = len(variant.http)
                if instrumented:
                    for variant, server in zip(variants, servers, strict=True):
                        for first, _follow in chains[:REPEATS]:  # (twice, the second timed)
                            server.post(first)
                            variant.repeats.append(server.post(first)[0])
                        variant.reads = server.reads(answers_ids(variant.client_answers))
            finally:
                for child in children:
                    child.stop()
                for variant, server in zip(variants, servers, strict=True):
                    records = server.stop()
                    if instrumented:
                        variant.records = records
        for variant in variants:
            if len(variant.records) != len(variant.client) + 2 * REPEATS:
                raise SystemExit(f"{variant.label}: {len(variant.records)} records for "
                                 f"{len(variant.client) + 2 * REPEATS} requests")
            variant.records = variant.records[:len(variant.client)]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)

    report(variants, args.rounds, len(chains), len(variants[-1].http) // args.rounds)
    ok = True
    last = variants[-1]
    if len(variants) >= 2:
        same = sum(a == b for a, b in zip(variants[0].answers, last.answers, strict=True))
        print(f"\nanswers of before and after, the same JSON: {same}/{len(last.answers)} "
              "searches", end="")
        ok &= same == len(last.answers)
        reads = sum(a == b for a, b in zip(variants[0].reads, last.reads, strict=True))
        print(f", {reads}/{len(last.reads)} other reads (landing, conformance, collections, "
              "queryables, items)")
        ok &= reads == len(last.reads)
    if not args.no_check:
        wrong, answers = 0, iter(last.answers)
        for (_first, follow), request in zip(chains, requests, strict=True):
            count = request.expect(corpus) if request.expect else None
            for _depth in range(follow + 1):
                answer = next(answers)
                wrong += count is not None and answer["numberMatched"] != count
                if not any(x["rel"] == "next" for x in answer["links"]):
                    break
        print(f"numberMatched exact: {len(last.answers) - wrong}/{len(last.answers)}")
        ok &= wrong == 0
    p50, p95 = pct(last.http, 50), pct(last.http, 95)
    hit = p50 < P50_TARGET_MS and p95 < P95_TARGET_MS
    print(f"{last.label}: through Jupyter p50 {p50:.2f} ms (target < {P50_TARGET_MS:g}), "
          f"p95 {p95:.2f} ms (target < {P95_TARGET_MS:g}): {'met' if hit else 'MISSED'}")
    return 0 if ok and hit else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--serve", "--serve-instrumented"):
        rest = sys.argv[2:]
        serve(rest[1:] if rest[:1] == ["--"] else rest, sys.argv[1] == "--serve-instrumented")
    elif len(sys.argv) > 1 and sys.argv[1] == "--in-process-child":
        in_process_child(sys.argv[2])
    else:
        sys.exit(main())
