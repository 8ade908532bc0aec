"""Bad metadata by the thousand (issue 15): the long run of ``tests/test_bad_metadata.py``.

Tens of thousands of generated and mutated READMEs (``tests/support/readme_gen.py`` at the
issue's sizes: alias bombs of a billion laughs, nesting 100,000 deep, READMEs up to 10 MB,
broken YAML, every SharingHub key mistyped) plus a fixed set of named attacks, then:

1. mapping: each README through ``project_items`` in a worker process of its own (address
   space capped, so an expansion fails there, not on the machine), one at a time, timed, its
   resident memory sampled every 2 ms; the item checked (schema-valid, strict JSON). A
   README that takes longer than ``--timeout`` kills the worker (counted as a timeout) and
   a new one goes on. The corpus is generated, mapped and deleted in batches of
   ``--batch`` (at full size a thousand READMEs take gigabytes of disk);
2. crawl: the named attacks and ``--crawl`` other generated READMEs as projects behind the
   GitLab API test server, crawled in a process of its own (address space capped too): does
   it finish, and is each project an item or a reported problem;
3. server (``--server N``): a real ``jupyter server`` crawling the named attacks and N other
   generated projects (GitLab test server at 100 ms a request) answers
   ``/sharinghub/api/stac/search`` meanwhile: latency of every search during the crawl.

Figures: CPU and wall time and RSS growth per README (p50, p95, max), exceptions, invalid
items, timeouts, problems by kind (``--keep-slow DIR`` keeps the slow READMEs). Targets: no
exception, every item valid, no timeout, each project < 2 s CPU and < 200 MB RSS growth; the
crawl finishes with every project accounted for;
every search during the crawl answered in < 1 s. ``--code DIR`` measures the code at DIR (a
folder holding ``server_ext/sharinghub_server``: a git worktree, or a copy with fixes
applied); ``--compare-with DIR`` runs the same corpus over the code at DIR first and prints
both (``--compare-examples N``: only the first N generated READMEs for it: code that
backtracks quadratically takes minutes on some of them).

    .venv/bin/python benchmarks/bad_metadata.py [--examples 20000] [--seed 0] [--timeout 30]
        [--batch 500] [--crawl 300] [--server 0] [--code DIR]
        [--compare-with DIR [--compare-examples N]]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "secret-token"

SECONDS_TARGET = 2.0
RSS_TARGET_MB = 200.0
SEARCH_TARGET_S = 1.0
#: seconds a crawl (alone, or in the server) may take before it counts as hung
GUARD_S = 300.0
#: the mapping worker's address space: far above the target, far below the machine
WORKER_AS_BYTES = 3 * 1024**3


# --- the corpus -----------------------------------------------------------------------------


@functools.cache
def named_attacks() -> dict[str, bytes]:
    """The worst known shapes at full size, whatever the generator draws: the tests' set
    (``readme_gen.full_size_attacks``) and larger or rarer ones."""
    sys.path.insert(0, str(ROOT))
    from tests.support.readme_gen import alias_bomb, full_size_attacks

    mb = 1024 * 1024
    fm = "---\n{}---\n# body\n"
    big_keys = "".join(f"key{i}: value {i}\n" for i in range(600_000))
    #: just under the front-matter limit (256 KiB): parsed, mapped, validated
    near_limit = "".join(f"key{i}: value {i}\n" for i in range(12_000))
    return {
        **full_size_attacks(),
        "billion laughs (mapping)": fm.format(alias_bomb(10, 9, mapping=True)).encode(),
        "billion laughs in topics": fm.format(alias_bomb(10, 9, key="topics")).encode(),
        "flow nesting 100,000 deep after a NEL": fm.format(
            "a: [\x85" + "[" * 100_000 + "]" * 100_000 + "\n").encode(),
        "flow nesting 100,000 deep after an escape libyaml refuses": fm.format(
            'a: "\\ud83d"\nb: ' + "[" * 100_000 + "]" * 100_000 + "\n").encode(),
        "block nesting 700 deep": fm.format("".join(
            " " * i + f"k{i}:\n" for i in range(700)) + " " * 700 + "x\n").encode(),
        "210 KB front matter, 12,000 keys": fm.format(near_limit).encode(),
        "210 KB front matter, invalid at the end": fm.format(near_limit + "\tbad: x\n").encode(),
        "mlm block, 3,000 invalid bands": fm.format(
            "extensions: {mlm: https://stac-extensions.github.io/mlm/v1.4.0/schema.json}\n"
            "mlm:\n  name: x\n  input: [{name: x, bands: ["
            + ", ".join(["{name: 5}"] * 3000) + "]}]\n").encode(),
        "asset rule with a bad field, 5,000 files": fm.format(
            "extensions: {file: https://stac-extensions.github.io/file/v2.1.0/schema.json}\n"
            "assets: [{glob: '*', 'file:size': twelve}]\n").encode(),
        "10 MB body of '!['": (fm.format("title: x\n") + "![" * (5 * mb)).encode(),
        "14 MB front matter, 600,000 keys": fm.format(big_keys).encode(),
        "14 MB front matter, invalid at the end": fm.format(big_keys + "\tbad: x\n").encode(),
    }


def write_corpus(folder: Path, n: int, seed: int, *, named: bool = True,
                 first: int = 0) -> list[tuple[str, Path]]:
    """The named attacks (``named``) and ``n`` generated READMEs at the issue's sizes
    (numbered from ``first``), as files (the children read them: generating takes hypothesis
    about 1 GB per 1,000 such READMEs, which a child forked after it would otherwise count
    as its own)."""
    sys.path.insert(0, str(ROOT))
    from tests.support import readme_gen as gen

    folder.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[str, Path]] = []
    for i, (name, data) in enumerate(named_attacks().items() if named else ()):
        path = folder / f"named-{i:02d}.md"
        path.write_bytes(data)
        cases.append((name, path))
    n_named = len(cases)

    def keep(data: bytes) -> None:
        number = first + len(cases) - n_named
        path = folder / f"gen-{number:06d}.md"
        path.write_bytes(data)
        cases.append((f"generated #{number}", path))

    if n:
        gen.collect(gen.readmes(gen.FULL_LIMITS), n, seed_=seed, each=keep)
    return cases


# --- the mapping worker (a child process) ------------------------------------------------------


def _hwm_mb() -> float:
    """This process's own peak RSS (``VmHWM``: unlike ``ru_maxrss``, not inherited across
    fork and exec from a big parent)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(code: str) -> int:
    """Map the README files named on stdin, one per line; one JSON line each on stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_AS_BYTES, WORKER_AS_BYTES))
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(code) / "server_ext"))
    import sharinghub_server
    from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
    from sharinghub_server.catalog.item import project_items
    from sharinghub_server.catalog.validate import schema_errors
    from tests.support import readme_gen as gen

    if not Path(sharinghub_server.__file__).resolve().is_relative_to(Path(code).resolve()):
        raise SystemExit(f"imported {sharinghub_server.__file__}, not the code at {code}")
    files = list(gen.PROJECT_FILES[:6])
    many_files = [f"data/f{i:05d}.tif" for i in range(5000)]
    # warm: schemas compiled, modules imported
    project_items(gen.record_for("---\ntitle: warm\n---\n", files=files), DEFAULT_CATEGORIES)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        data = Path(line.strip()).read_bytes()
        record = gen.record_for(gen.decode(data), files=many_files if b"glob: '*', 'file:size'"
                                in data[:200] else files)
        del data
        base = _rss()
        peak = [base]
        stop = threading.Event()

        def sample(peak: list[int] = peak, stop: threading.Event = stop) -> None:
            while not stop.wait(0.002):
                peak[0] = max(peak[0], _rss())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out: dict[str, Any] = {}
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            built = project_items(record, DEFAULT_CATEGORIES)
        except BaseException as exc:  # MemoryError included: reported, the worker goes on
            out["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            built = None
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = time.thread_time() - c0
        stop.set()
        sampler.join()
        out["rss_growth"] = max(peak[0], _rss()) - base
        if built is not None:
            out["problems"] = [problem_kind(p) for p in built.problems]
            out["invalid"] = []
            for item in built.items:
                try:
                    json.dumps(item, allow_nan=False, ensure_ascii=False).encode("utf-8")
                    if schema_errors(item):
                        out["invalid"].append("schema errors")
                except (ValueError, TypeError) as exc:
                    out["invalid"].append(f"not JSON: {type(exc).__name__}")
            out["size"] = sum(len(json.dumps(i, default=repr)) for i in built.items)
        del built, record
        out["hwm_mb"] = _hwm_mb()
        print(json.dumps(out), flush=True)
    return 0


_KINDS = [
    (r"^README front matter is not valid YAML", "front matter: not valid YAML"),
    (r"^README front matter ignored: (more than \d+ KiB|nested deeper|more values|"
     r"a value contains itself|a value cannot be read)", None),
    (r"^README front matter is a ", "front matter: not a mapping"),
    (r"^README is longer than", "README cut (description)"),
    (r"^extent(\.spatial|\.temporal)? ignored", None),
    (r"^(properties|assets|links)\.[^ ]*: .* normalised to ", "a value normalised"),
    (r"^(properties|assets|links)\.[^ ]* left out", "a value left out"),
    (r"^extension .* not declared", "an extension not declared"),
    (r"^extension .*: schema .* is unknown offline", "an unknown extension schema"),
    (r"^extension .*: schema must be a URL", "an extension schema not a URL"),
    (r"^mlm: no model asset", "mlm: no model asset"),
    (r"^(link|provider|asset rule) .*(has no|neither)", "a link/provider/rule unusable"),
    (r"^(\w[\w-]*) (must be|ignored)", None),
    (r"^related .* is not a project URL", "a related URL unusable"),
    (r"^front matter key \w+ ignored", "a front-matter key ignored"),
    (r"^asset rule \w+ left out", "an asset-rule template left out"),
    (r"^assets: \d+ rules", "asset rules beyond the limit"),
    (r"^the mapping failed", "THE MAPPING FAILED (a bug)"),
]


def problem_kind(message: str) -> str:
    """The kind of a crawl problem, values left out: what the figures count."""
    for pattern, kind in _KINDS:
        m = re.match(pattern, message)
        if m:
            return kind or m.group(0).rstrip(":")
    return " ".join(message.split()[:4])


@dataclass
class Mapped:
    name: str
    seconds: float  # wall time (a shared machine's load shows here)
    rss_mb: float
    error: str | None = None
    invalid: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    timeout: bool = False
    size: int = 0
    readme: int = 0  # bytes
    cpu: float = 0.0  # the mapping thread's CPU time

    @property
    def amplification(self) -> float:
        return self.size / max(1, self.readme)


class Worker:
    def __init__(self, code: Path) -> None:
        self.code = code
        self.proc: subprocess.Popen[str] | None = None
        self.peak_mb = 0.0  # the highest of the workers' own peaks (VmHWM)

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", str(self.code)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=ROOT)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the mapping worker for {self.code} did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def map(self, name: str, path: Path, timeout: float) -> Mapped:
        if self.proc is None:
            self.start()
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        answer: list[str] = []
        reader = threading.Thread(target=lambda: answer.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        timed_out = not answer
        if timed_out or not answer[0]:
            self.stop()
            reader.join(5)
            return Mapped(name, timeout if timed_out else 0.0, 0.0, timeout=timed_out,
                          error=None if timed_out else "the worker died")
        out = json.loads(answer[0])
        self.peak_mb = max(self.peak_mb, out["hwm_mb"])
        return Mapped(name, out["seconds"], out["rss_growth"] / 1024**2, out.get("error"),
                      out.get("invalid", []), out.get("problems", []), size=out.get("size", 0),
                      readme=path.stat().st_size, cpu=out["cpu"])


#: READMEs that take longer than this (CPU or wall) are copied to ``--keep-slow``
KEEP_SLOW_S = 0.5


def run_mapping(worker_: Worker, cases: list[tuple[str, Path]], timeout: float,
                done: int = 0, total: int | None = None,
                keep_slow: Path | None = None) -> list[Mapped]:
    """Map ``cases`` with the (running or restarted) worker; progress counts from ``done``;
    the slow READMEs are copied to ``keep_slow`` (to reproduce them)."""
    results = []
    t0 = time.perf_counter()
    for i, (name, path) in enumerate(cases):
        results.append(worker_.map(name, path, timeout))
        if keep_slow is not None and max(results[-1].cpu, results[-1].seconds) > KEEP_SLOW_S:
            keep_slow.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, keep_slow / f"{worker_.code.name}-{path.name}")
        if (done + i + 1) % 1000 == 0:
            print(f"  ... {done + i + 1}/{total or '?'} mapped by {worker_.code.name} "
                  f"({time.perf_counter() - t0:.0f} s this batch)", flush=True)
    return results


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    values = sorted(values)
    if not values:
        return 0.0, 0.0, 0.0
    at = lambda q: values[min(len(values) - 1, int(len(values) * q))]  # noqa: E731
    return at(0.5), at(0.95), values[-1]


def report_mapping(label: str, results: list[Mapped], peak_mb: float) -> bool:
    errors = [r for r in results if r.error]
    invalid = [r for r in results if r.invalid]
    timeouts = [r for r in results if r.timeout]
    times = sorted(r.seconds for r in results if not r.timeout)
    cpu = sorted(r.cpu for r in results if not r.timeout)
    slow = sorted(results, key=lambda r: r.cpu if not r.timeout else r.seconds, reverse=True)
    kinds = Counter(k for r in results for k in r.problems)
    print(f"mapping, {label}: {len(results)} READMEs, targets < {SECONDS_TARGET:.0f} s CPU "
          f"and < {RSS_TARGET_MB:.0f} MB RSS growth each, no exception, every item valid")
    print(f"  exceptions: {len(errors)}, invalid items: {len(invalid)}, timeouts: "
          f"{len(timeouts)}, total {sum(times):.1f} s mapping")
    if times:
        p50, p95, top = _percentiles(cpu)
        print(f"  CPU per README: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
              f"max {top * 1000:.0f} ms")
        p50, p95, top = _percentiles(times)
        print(f"  wall time per README: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
              f"max {top * 1000:.0f} ms (the machine's load included)")
    p50, p95, top = _percentiles([r.rss_mb for r in results if not r.timeout])
    print(f"  RSS growth per README: p50 {p50:.1f} MB, p95 {p95:.1f} MB, max {top:.1f} MB")
    print("  slowest (CPU): " + "; ".join(
        f"{r.name} " + (f">{r.seconds:.2f} s" if r.timeout else f"{r.cpu:.2f} s")
        for r in slow[:5]))
    fat = max(results, key=lambda r: r.rss_mb)
    big = max(results, key=lambda r: r.amplification)
    print(f"  most RSS growth: {fat.name} {fat.rss_mb:.0f} MB; worker peak RSS {peak_mb:.0f} MB"
          " (timed-out workers not counted);"
          f" biggest item {max(r.size for r in results) / 1024**2:.1f} MB; most amplified: "
          f"{big.name}, {big.readme / 1024:.0f} KB README -> {big.size / 1024**2:.1f} MB item")
    for title, group in (("exceptions", errors), ("invalid items", invalid)):
        if group:
            by = Counter(r.error or r.invalid[0] for r in group)
            print(f"  {title} by kind: " + "; ".join(f"{k} x{n}" for k, n in by.most_common(8)))
    print("  problems by kind: " + "; ".join(f"{k} x{n}" for k, n in kinds.most_common(14)))
    named = [r for r in results if not r.name.startswith("generated")]
    print("  named attacks: " + "; ".join(
        f"{r.name}: " + ("TIMEOUT" if r.timeout else r.error.split(":")[0] if r.error
                         else f"{r.cpu:.2f} s {r.rss_mb:.0f} MB") for r in named))
    return not errors and not invalid and not timeouts and (
        not cpu or cpu[-1] < SECONDS_TARGET) and all(
        r.rss_mb < RSS_TARGET_MB for r in results)


# --- the crawl (a child process) --------------------------------------------------------------


def crawl_child(code: str, folder: str) -> int:
    """Crawl the READMEs in ``folder`` as projects behind the GitLab test server; one JSON
    line."""
    limit = 2 * WORKER_AS_BYTES  # threads reserve stacks: more room than the worker's
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(code) / "server_ext"))
    from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
    from sharinghub_server.crawler import Crawler
    from sharinghub_server.index.store import open_store
    from sharinghub_server.sources.gitlab import GitLabSource
    from tests.support import readme_gen as gen
    from tests.support.gitlab_server import GitLabTestServer

    projects = gen.fake_projects(p.read_bytes() for p in sorted(Path(folder).iterdir()))
    category = {c.gitlab_topic: c.id for c in DEFAULT_CATEGORIES}
    out: dict[str, Any] = {"projects": len(projects)}
    with tempfile.TemporaryDirectory() as tmp, GitLabTestServer(projects) as gitlab:
        store = open_store(f"sqlite://{Path(tmp) / 'index.sqlite'}")
        crawler = Crawler(store, [GitLabSource(gitlab.url, TOKEN)], DEFAULT_CATEGORIES)
        t0 = time.perf_counter()
        try:
            status = crawler.crawl()
        except Exception as exc:
            out.update(seconds=time.perf_counter() - t0,
                       crash=f"{type(exc).__name__}: {str(exc)[:200]}")
        else:
            reported = {e.project for e in status.errors}
            indexed = sum(1 for p in projects
                          if store.get_item(category[p.topics[0]], p.path_with_namespace))
            lost = [p.path_with_namespace for p in projects
                    if p.path_with_namespace not in reported
                    and not store.get_item(category[p.topics[0]], p.path_with_namespace)]
            out.update(seconds=time.perf_counter() - t0, ok=status.ok, indexed=indexed,
                       with_problems=len(reported), lost=lost[:10], n_lost=len(lost))
        store.close()
    out["peak_rss_mb"] = _hwm_mb()  # with the READMEs, the test server and the index
    print(json.dumps(out), flush=True)
    return 0


def run_crawl(code: Path, folder: Path, timeout: float) -> dict[str, Any]:
    try:
        done = subprocess.run([sys.executable, __file__, "--crawl-child", str(code),
                               "--corpus", str(folder)], capture_output=True,
                              text=True, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"hang": timeout}
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {"crash": done.stderr[-300:]}


def report_crawl(label: str, out: dict[str, Any]) -> bool:
    if "hang" in out:
        print(f"crawl, {label}: did not end within {out['hang']:.0f} s")
        return False
    if "crash" in out and "projects" not in out:
        print(f"crawl, {label}: the crawl process failed: {out['crash']}")
        return False
    if "crash" in out:
        print(f"crawl, {label}: {out['projects']} projects: CRASHED after {out['seconds']:.1f} s"
              f" ({out['crash']}); nothing saved")
        return False
    print(f"crawl, {label}: {out['projects']} projects in {out['seconds']:.1f} s, ok="
          f"{out['ok']}: {out['indexed']} indexed, {out['with_problems']} with problems "
          f"reported, {out['n_lost']} neither {out['lost'] or ''}; peak RSS "
          f"{out['peak_rss_mb']:.0f} MB")
    return bool(out["ok"]) and out["n_lost"] == 0


# --- the server -------------------------------------------------------------------------------


def run_server(code: Path, folder: Path) -> dict[str, Any]:
    """A real jupyter server with the code at ``code`` crawling the READMEs of ``folder`` as
    projects; the latency of every search during the crawl (inf: none within a minute)."""
    import requests

    sys.path.insert(0, str(ROOT))
    from tests.support import readme_gen as gen
    from tests.support.gitlab_server import GitLabTestServer
    from tests.support.jupyter_proc import jupyter_server

    projects = gen.fake_projects(p.read_bytes() for p in sorted(folder.iterdir()))
    headers = {"Authorization": f"token {TOKEN}"}
    env = {"SHARINGHUB_LOCAL_PROJECTS": "", "PYTHONPATH": os.pathsep.join(
        filter(None, [str(code / "server_ext"), os.environ.get("PYTHONPATH")]))}
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, \
            GitLabTestServer(projects, latency=0.1) as gitlab, \
            jupyter_server(Path(tmp) / "server", token=TOKEN, env=env,
                           args=[f"--SharingHub.gitlab_url={gitlab.url}",
                                 f"--SharingHub.gitlab_token={TOKEN}",
                                 "--SharingHub.crawl_interval=0",
                                 "--SharingHub.mlflow_warmup=False"]) as server:
        # whatever the code does with a billion laughs, it does not take the machine with it
        resource.prlimit(server.proc.pid, resource.RLIMIT_AS,
                         (2 * WORKER_AS_BYTES, 2 * WORKER_AS_BYTES))

        def state() -> dict[str, Any]:
            try:
                return requests.get(f"{server.url}sharinghub/api/index", headers=headers,
                                    timeout=60).json()
            except requests.RequestException:
                return {"state": "unanswered"}

        t0 = time.monotonic()
        while state()["state"] != "running" and time.monotonic() - t0 < 60:
            time.sleep(0.02)
        t_crawl = time.monotonic()
        while (s := state())["state"] in ("running", "unanswered") \
                and time.monotonic() - t_crawl < GUARD_S:
            q0 = time.perf_counter()
            try:
                r = requests.get(f"{server.url}sharinghub/api/stac/search", headers=headers,
                                 params={"limit": 10, "q": "x"}, timeout=60)
                ok = r.status_code == 200
            except requests.RequestException:
                ok = False
            latencies.append(time.perf_counter() - q0 if ok else float("inf"))
        crawl_s = time.monotonic() - t_crawl
        last = (s.get("last_crawl") or {})
        alive = server.proc.poll() is None
    return {"latencies": latencies, "crawl_s": crawl_s, "alive": alive,
            "finished": bool(last.get("finished")), "errors": len(last.get("errors") or [])}


def report_server(label: str, n: int, out: dict[str, Any]) -> bool:
    order = out["latencies"]
    lat = sorted(order)
    if not lat:
        print(f"server, {label}: no search made during the crawl")
        return False
    p = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000  # noqa: E731
    print(f"server, {label}: {n} projects crawled in {out['crawl_s']:.1f} s (finished: "
          f"{out['finished']}, {out['errors']} problems), {len(lat)} searches meanwhile: "
          f"p50 {p(0.5):.0f} ms, p95 {p(0.95):.0f} ms, max {lat[-1] * 1000:.0f} ms "
          f"(target < {SEARCH_TARGET_S * 1000:.0f} ms each); server alive: {out['alive']}")
    worst = sorted(range(len(order)), key=order.__getitem__, reverse=True)[:3]
    print("  slowest searches (n-th during the crawl: ms): " + ", ".join(
        f"#{i + 1}: {order[i] * 1000:.0f}" for i in sorted(worst)))
    return out["alive"] and lat[-1] < SEARCH_TARGET_S


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=20000, help="generated READMEs to map")
    p.add_argument("--batch", type=int, default=500,
                   help="READMEs generated, mapped and deleted at a time")
    p.add_argument("--keep-slow", metavar="DIR", default="",
                   help=f"copy READMEs that take more than {KEEP_SLOW_S} s here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds one README may take")
    p.add_argument("--crawl", type=int, default=300,
                   help="generated projects crawled beside the named attacks (0: no crawl)")
    p.add_argument("--server", type=int, default=0,
                   help="generated projects (beside the named attacks) a real jupyter server "
                        "crawls while searched (0: skip)")
    p.add_argument("--code", default=str(ROOT), help="the code to measure")
    p.add_argument("--compare-with", metavar="DIR", help="code to measure first, as 'before'")
    p.add_argument("--compare-examples", type=int, default=None,
                   help="generated READMEs for the 'before' code (default: --examples)")
    p.add_argument("--worker", metavar="CODE", help=argparse.SUPPRESS)
    p.add_argument("--crawl-child", metavar="CODE", help=argparse.SUPPRESS)
    p.add_argument("--corpus", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.crawl_child:
        return crawl_child(args.crawl_child, args.corpus)

    code = Path(args.code).resolve()
    before = Path(args.compare_with).resolve() if args.compare_with else None
    for c in filter(None, [code, before]):
        if not (c / "server_ext" / "sharinghub_server").is_dir():
            p.error(f"{c} holds no server_ext/sharinghub_server")
    print(f"{os.cpu_count()} cores; corpus: {len(named_attacks())} named attacks + "
          f"{args.examples} generated READMEs (seed {args.seed}, full sizes, batches of "
          f"{args.batch})", flush=True)
    met = True
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        n_before = args.compare_examples if args.compare_examples is not None else args.examples
        workers = {c: Worker(c) for c in filter(None, [before, code])}
        results: dict[Path, list[Mapped]] = {c: [] for c in workers}
        sizes: list[int] = []
        generating = 0.0
        try:
            done = 0
            for batch, first in enumerate(range(0, max(args.examples, 1), args.batch)):
                folder = Path(tmp) / f"corpus-{batch}"
                g0 = time.perf_counter()
                cases = write_corpus(folder, min(args.batch, args.examples - first),
                                     args.seed * 100_003 + batch, named=batch == 0, first=first)
                generating += time.perf_counter() - g0
                sizes += [path.stat().st_size for _, path in cases]
                n_named = len(named_attacks()) if batch == 0 else 0
                for c, worker_ in workers.items():
                    todo = cases
                    if c == before:
                        todo = cases[:n_named + max(0, min(len(cases) - n_named,
                                                           n_before - first))]
                    results[c] += run_mapping(worker_, todo, args.timeout, done,
                                              len(named_attacks()) + args.examples,
                                              Path(args.keep_slow) if args.keep_slow else None)
                done += len(cases)
                shutil.rmtree(folder)
        finally:
            for worker_ in workers.values():
                worker_.stop()
        sizes.sort()
        print(f"corpus: {len(sizes)} READMEs generated in {generating:.0f} s, median "
              f"{sizes[len(sizes) // 2] / 1024:.1f} KB, p95 "
              f"{sizes[int(len(sizes) * 0.95)] / 1024:.1f} KB, max {sizes[-1] / 1024**2:.1f} MB;"
              f" {time.perf_counter() - t0:.0f} s in all", flush=True)
        if before is not None:
            report_mapping(f"before ({before})", results[before], workers[before].peak_mb)
        met &= report_mapping(f"after ({code})", results[code], workers[code].peak_mb)
        versions = [(f"before ({before})", before), (f"after ({code})", code)]
        if args.crawl:  # the named attacks and other generated READMEs, as projects
            folder = Path(tmp) / "crawl"
            n = len(write_corpus(folder, args.crawl, args.seed + 1))
            for label, c in versions:
                if c is not None:
                    ok = report_crawl(label, run_crawl(c, folder, max(GUARD_S, n * 1.0)))
                    met &= ok or c == before
        if args.server:
            folder = Path(tmp) / "server"
            n = len(write_corpus(folder, args.server, args.seed + 2))
            for label, c in versions:
                if c is not None:
                    ok = report_server(label, n, run_server(c, folder))
                    met &= ok or c == before
    print("targets met" if met else "TARGETS MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
