"""A mixed load against a real ``jupyter server`` with the extension, shared by
``benchmarks/load.py`` (50 clients, 60 s) and ``tests/test_load_short.py`` (a short run).

The world (:func:`load_world`): the GitLab API test server in a child process of its own (so
its CPU is not the clients'), serving ``projects`` synthetic projects with ``latency`` seconds
per answer and one private dataset project (``load/big-ds``, id 1: listed first) backed by a
real git repository whose DVC outputs live in a local-folder remote; the example local
projects; ``jupyter server`` in a subprocess with the extension and the test-only
:mod:`tests.support.loop_watch` extension, which measures the event loop's lateness inside
the server.

The load (:func:`run_load`), started as soon as the server answers, so that its start-up
crawl runs under it: ``clients`` concurrent clients, each sending one request after the other
(keep-alive), drawn from a mix of ``/search`` GET (varied parameters) and POST (varied bodies),
``next`` links of earlier pages, single items and downloads (local files and GitLab files),
for ``duration`` seconds; beside them a crawl is kept running (a new one asked for whenever the
last ended) and a DVC pull of ``load/big-ds`` is kept in progress (the next one into a new
folder once one ends). Every answer is checked (status and shape, downloads byte for byte
where the bytes are known); the figures are returned as a :class:`LoadResult`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp  # dvc-s3's s3fs brings it; keep-alive clients that cost the load little CPU

from tests.support.jupyter_proc import JupyterProcess, jupyter_server
from tests.support.loop_watch import percentile

ROOT = Path(__file__).resolve().parents[2]
GITLAB_TOKEN = "load-gitlab-token"
DATASET = "load/big-ds"
#: request kinds, in report order
KINDS = ("search_get", "search_post", "search_next", "item", "download_local",
         "download_gitlab")
_MIX = (("search_get", 30), ("search_post", 25), ("search_next", 8), ("item", 22),
        ("download_local", 7), ("download_gitlab", 8))
_WORDS = ("flood", "water", "forest", "urban", "crop", "snow", "fire", "cloud", "sentinel",
          "landsat", "segmentation", "detection", "classification", "dataset", "model",
          "change detection", "land cover")
_COLLECTIONS = ("ai-model", "dataset", "processor", "tools", "dashboard")


# --- the GitLab test server, in a process of its own ---------------------------------------


def serve(argv: list[str]) -> int:
    """Child process: serve the projects, print the URL, stop when stdin closes."""
    p = argparse.ArgumentParser()
    p.add_argument("--projects", type=int, required=True)
    p.add_argument("--latency", type=float, required=True)
    p.add_argument("--recent", type=float, required=True)
    p.add_argument("--git-repo", required=True)
    args = p.parse_args(argv)
    from tests.support.gitlab_server import (
        FakeProject,
        GitLabTestServer,
        make_synthetic_projects,
    )

    projects = make_synthetic_projects(args.projects, seed=7, id_start=2,
                                       active_recently_fraction=args.recent)
    with GitLabTestServer(projects, tokens={GITLAB_TOKEN: "user"},
                          latency=args.latency) as server:
        server.add_git_project(FakeProject(id=1, path_with_namespace=DATASET,
                                           visibility="private",
                                           topics=["sharinghub:dataset"]), args.git_repo)
        print(json.dumps({"url": server.url}), flush=True)
        sys.stdin.read()  # until the parent closes it (or dies)
    return 0


@contextlib.contextmanager
def gitlab_process(projects: int, latency: float, recent: float, git_repo: Path
                   ) -> Iterator[str]:
    """The GitLab test server (:func:`serve`) in a child process; yields its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.load", "--serve",
                             "--projects", str(projects), "--latency", str(latency),
                             "--recent", str(recent), "--git-repo", str(git_repo)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the GitLab test server did not start")
        yield json.loads(line)["url"]
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- the world ------------------------------------------------------------------------------


@dataclass
class World:
    server: JupyterProcess
    #: (item id, file path in the project, expected bytes) of local example files
    local_files: list[tuple[str, str, bytes]]
    token: str
    #: seconds the start-up crawl (every project, nothing indexed before) took
    first_crawl_s: float
    #: items in the index after it
    items: int


def wait_for_first_crawl(server: JupyterProcess, token: str, timeout: float) -> dict:
    """Bounded polling of the crawl status until the start-up crawl has finished."""
    import requests

    from tests.support.polling import poll

    def finished() -> dict | None:
        status = requests.get(f"{server.url}sharinghub/api/index", timeout=10,
                              headers={"Authorization": f"token {token}"}).json()
        done = status["state"] == "idle" and (status["last_crawl"] or {}).get("finished")
        return status if done else None

    return poll(finished, "the start-up crawl", timeout=timeout, every=0.2)


@contextlib.contextmanager
def load_world(workdir: Path, *, projects: int, latency: float, recent: float,
               pull_files: int, pull_mb: float, mlflow_warmup: bool = True,
               crawl_timeout: float = 600, server_args: Sequence[str] = (),
               python_path: Sequence[str] = ()) -> Iterator[World]:
    """Everything :func:`run_load` needs, stopped on exit (see the module's docstring); the
    start-up crawl has finished when it is yielded. ``server_args`` are added to ``jupyter
    server``'s, ``python_path`` goes before this repository on its ``PYTHONPATH`` (e.g. a
    benchmark's ``sitecustomize``)."""
    from sharinghub_server.examples import make_examples
    from tests.support.git_repos import make_big_dataset, tool_env

    env = tool_env(workdir / "home")
    dataset = make_big_dataset(workdir / "repos", "big-ds", str(workdir / "dvc-remote"),
                               n_files=pull_files, total_bytes=int(pull_mb * 1_000_000),
                               env=env)
    examples, _ = make_examples(workdir / "examples")
    local_files = [
        (f"local/{p.parent.name}", p.name, p.read_bytes())
        for p in (examples / "flood-model" / "preview.png",
                  examples / "flood-model" / "flood-unet.onnx",
                  examples / "sen1floods11-sample" / "footprint.geojson")]
    token = secrets.token_hex(16)
    with gitlab_process(projects, latency, recent, dataset.bare) as gitlab_url:
        config = workdir / "jupyter_server_config.json"
        config.write_text(json.dumps({
            "ServerApp": {"jpserver_extensions": {"sharinghub_server": True,
                                                  "tests.support.loop_watch": True}},
            "SharingHub": {"gitlab_url": gitlab_url, "gitlab_token": GITLAB_TOKEN,
                           "local_projects": [str(examples)], "crawl_interval": 0,
                           "mlflow_warmup": mlflow_warmup},
        }))
        with jupyter_server(workdir / "root", token=token,
                            args=[f"--config={config}", *server_args],
                            env={"PYTHONPATH": os.pathsep.join([*python_path, str(ROOT)]),
                                 "HOME": str(workdir / "home"),
                                 # a crash under load leaves every thread's stack in the log
                                 "PYTHONFAULTHANDLER": "1"}) as server:
            t0 = time.monotonic()
            status = wait_for_first_crawl(server, token, crawl_timeout)
            items = sum(status["last_crawl"]["items"].values())
            yield World(server, local_files, token, time.monotonic() - t0, items)


# --- the load -------------------------------------------------------------------------------


@dataclass
class KindStats:
    latencies: list[float] = field(default_factory=list)  # seconds, answers that passed
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ms = [v * 1000 for v in self.latencies]
        return {"ok": len(ms), "errors": len(self.errors), "p50_ms": percentile(ms, 0.5),
                "p95_ms": percentile(ms, 0.95), "max_ms": max(ms, default=0.0),
                "first_errors": self.errors[:5]}


@dataclass
class LoadResult:
    duration: float
    clients: int
    kinds: dict[str, KindStats]
    loop: dict[str, Any]  # loop_watch's report
    crawl_running: float  # share of the run's status samples that saw a crawl running
    crawls_started: int
    pull_running: float  # share of the run's samples with a pull job in progress
    pulls_done: int
    background_errors: list[str]

    @property
    def requests(self) -> int:
        return sum(len(k.latencies) + len(k.errors) for k in self.kinds.values())

    @property
    def errors(self) -> list[str]:
        return [e for k in self.kinds.values() for e in k.errors] + self.background_errors

    def table(self) -> str:
        lines = [f"{'kind':16s} {'ok':>7s} {'errors':>6s} {'p50 ms':>8s} {'p95 ms':>8s} "
                 f"{'max ms':>8s}"]
        for kind in KINDS:
            s = self.kinds[kind].summary()
            lines.append(f"{kind:16s} {s['ok']:7d} {s['errors']:6d} {s['p50_ms']:8.1f} "
                         f"{s['p95_ms']:8.1f} {s['max_ms']:8.1f}")
        lines.append(f"{self.requests} requests in {self.duration:.0f} s "
                     f"({self.requests / self.duration:.0f}/s) by {self.clients} clients")
        lines.append(f"event loop lateness (10 ms tick, {self.loop['ticks']} ticks): "
                     f"p50 {self.loop['p50_ms']} ms, p99 {self.loop['p99_ms']} ms, "
                     f"max {self.loop['max_ms']} ms, {self.loop['over_100ms']} ticks > 100 ms")
        w = self.loop["worst"]
        lines.append(f"  worst tick {w['ms']} ms late = loop thread running {w['running_ms']} ms"
                     f" + waiting for a CPU {w['cpu_wait_ms']} ms + waiting for the GIL "
                     f"{w['gil_wait_ms']} ms; longest the loop thread ran in one tick: "
                     f"{self.loop['running_max_ms']} ms")
        lines.append(f"crawl running in {self.crawl_running:.0%} of the run "
                     f"({self.crawls_started} crawls asked for); a pull in progress in "
                     f"{self.pull_running:.0%} "
                     f"({self.pulls_done} pulls done)")
        return "\n".join(lines)


class _Load:
    def __init__(self, world: World, session: aiohttp.ClientSession, clients: int,
                 duration: float, seed: int) -> None:
        self.world = world
        self.session = session
        self.clients = clients
        self.duration = duration
        self.rng = random.Random(seed)
        self.api = f"{world.server.url}sharinghub/api"
        self.headers = {"Authorization": f"token {world.token}"}
        self.kinds = {k: KindStats() for k in KINDS}
        # (collection, item id) seen in answers
        self.items: list[tuple[str, str]] = []
        self.seen: set[tuple[str, str]] = set()
        self.gitlab_items: list[str] = []
        self.next_links: list[str] = []
        self.background_errors: list[str] = []
        self.crawl_samples: list[bool] = []
        self.pull_samples: list[bool] = []
        self.crawls_started = 0
        self.pulls_done = 0
        self.pulling = False
        self.deadline = 0.0

    # -- helpers --

    async def fetch(self, method: str, url: str, **kw: Any) -> tuple[int, bytes, Any]:
        async with self.session.request(method, url, headers=self.headers, **kw) as r:
            return r.status, await r.read(), r.headers

    def learn(self, page: dict) -> None:
        for f in page["features"]:
            key = (f["collection"], f["id"])
            if key not in self.seen:
                self.seen.add(key)
                self.items.append(key)
                if not f["id"].startswith("local/"):
                    self.gitlab_items.append(f["id"])
        for link in page.get("links", []):
            if link.get("rel") == "next" and link.get("method", "GET") == "GET":
                self.next_links.append(link["href"])
                del self.next_links[:-200]

    # -- request kinds: each returns a problem, or None when the answer is right --

    def search_params(self) -> dict[str, str]:
        r = self.rng
        params: dict[str, str] = {"limit": str(r.choice((5, 10, 10, 20, 50)))}
        for _ in range(r.randint(1, 3)):
            choice = r.randrange(7)
            if choice == 0:
                params["q"] = ",".join(r.sample(_WORDS, r.randint(1, 2)))
            elif choice == 1:
                w, s = r.uniform(-180, 150), r.uniform(-80, 50)
                params["bbox"] = f"{w:.2f},{s:.2f},{w + r.uniform(1, 30):.2f}," \
                                 f"{s + r.uniform(1, 30):.2f}"
            elif choice == 2:
                year = r.randint(2015, 2024)
                start, end = f"{year}-01-01T00:00:00Z", f"{year + 1}-01-01T00:00:00Z"
                params["datetime"] = r.choice((f"{start}/..", f"../{end}", f"{start}/{end}"))
            elif choice == 3:
                params["collections"] = ",".join(r.sample(_COLLECTIONS, r.randint(1, 2)))
            elif choice == 4:
                params["filter"] = r.choice(("\"sharinghub:stars\" > 3",
                                             "title LIKE 'S%'",
                                             "\"sharinghub:dvc-init\" = 'enable'"))
                params["filter-lang"] = "cql2-text"
            elif choice == 5:
                params["sortby"] = r.choice(("-datetime", "+id", "-sharinghub:stars", "title"))
            else:
                params["ids"] = ",".join(i for _, i in r.sample(self.items,
                                                                min(3, len(self.items))))
        return params

    def search_body(self) -> dict[str, Any]:
        r = self.rng
        body: dict[str, Any] = {"limit": r.choice((5, 10, 20, 50))}
        for _ in range(r.randint(1, 3)):
            choice = r.randrange(6)
            if choice == 0:
                body["q"] = r.sample(_WORDS, r.randint(1, 3))
            elif choice == 1:
                x, y = r.uniform(-170, 170), r.uniform(-70, 70)
                body["intersects"] = {"type": "Polygon", "coordinates": [[
                    [x, y], [x + 10, y], [x + 10, y + 10], [x, y + 10], [x, y]]]}
            elif choice == 2:
                body["filter-lang"] = "cql2-json"
                body["filter"] = r.choice((
                    {"op": ">=", "args": [{"property": "sharinghub:stars"}, r.randint(0, 9)]},
                    {"op": "like", "args": [{"property": "title"}, "%a%"]},
                    {"op": "t_intersects", "args": [{"property": "datetime"}, {
                        "interval": ["2018-01-01T00:00:00Z", "2022-01-01T00:00:00Z"]}]},
                    {"op": "in", "args": [{"property": "sharinghub:dvc-init"},
                                          ["enable", "disable"]]}))
            elif choice == 3:
                body["sortby"] = [{"field": r.choice(("datetime", "id", "sharinghub:stars")),
                                   "direction": r.choice(("asc", "desc"))}]
            elif choice == 4:
                body["collections"] = r.sample(_COLLECTIONS, r.randint(1, 3))
            else:
                body["datetime"] = r.choice(("2019-01-01T00:00:00Z/..",
                                             "../2021-01-01T00:00:00Z"))
        return body

    def check_page(self, status: int, body: bytes) -> str | None:
        if status != 200:
            return f"status {status}: {body[:200]!r}"
        page = json.loads(body)
        if page.get("type") != "FeatureCollection" or not isinstance(page.get("features"),
                                                                      list):
            return f"not a FeatureCollection: {body[:200]!r}"
        n = len(page["features"])
        if page.get("numberReturned") != n or not isinstance(page.get("numberMatched"), int) \
                or page["numberMatched"] < n:
            return f"bad counts: returned {page.get('numberReturned')}, {n} features, " \
                   f"matched {page.get('numberMatched')}"
        for f in page["features"]:
            if f.get("type") != "Feature" or not f.get("id") or not f.get("collection"):
                return f"bad feature: {json.dumps(f)[:200]}"
        self.learn(page)
        return None

    async def search_get(self) -> str | None:
        status, body, _ = await self.fetch("GET", f"{self.api}/stac/search",
                                           params=self.search_params())
        return self.check_page(status, body)

    async def search_post(self) -> str | None:
        status, body, _ = await self.fetch("POST", f"{self.api}/stac/search",
                                           json=self.search_body())
        return self.check_page(status, body)

    async def search_next(self) -> str | None:
        if not self.next_links:
            return await self.search_get()
        status, body, _ = await self.fetch("GET", self.rng.choice(self.next_links))
        return self.check_page(status, body)

    async def item(self) -> str | None:
        collection, item_id = self.rng.choice(self.items)
        status, body, _ = await self.fetch(
            "GET", f"{self.api}/stac/collections/{collection}/items/{item_id}")
        if status != 200:
            return f"item {item_id}: status {status}: {body[:200]!r}"
        item = json.loads(body)
        if (item.get("type"), item.get("id"), item.get("collection")) != (
                "Feature", item_id, collection):
            return f"item {item_id}: wrong item {body[:200]!r}"
        return None

    async def download_local(self) -> str | None:
        item_id, path, expected = self.rng.choice(self.world.local_files)
        status, body, _ = await self.fetch("GET", f"{self.api}/download/{item_id}/-/{path}")
        if status != 200 or body != expected:
            return f"download {item_id}/{path}: status {status}, {len(body)} bytes " \
                   f"(expected {len(expected)})"
        return None

    async def download_gitlab(self) -> str | None:
        if not self.gitlab_items:
            return await self.download_local()
        item_id = self.rng.choice(self.gitlab_items)
        status, body, headers = await self.fetch(
            "GET", f"{self.api}/download/{item_id}/-/README.md")
        length = headers.get("Content-Length")
        if status != 200 or not body.startswith(b"---") or (
                length is not None and int(length) != len(body)):
            return f"download {item_id}/README.md: status {status}, {body[:120]!r}"
        return None

    # -- the loops --

    async def client(self, mix: list[str]) -> None:
        while time.monotonic() < self.deadline:
            kind = self.rng.choice(mix)
            t0 = time.monotonic()
            try:
                problem = await getattr(self, kind)()
            except Exception as exc:  # every failure is a finding to report
                problem = f"{type(exc).__name__}: {exc}"
            stats = self.kinds[kind]
            if problem is None:
                stats.latencies.append(time.monotonic() - t0)
            else:
                stats.errors.append(problem)

    async def crawls(self) -> None:
        """Keep a crawl running: sample the status, ask for a new crawl once one ended."""
        while time.monotonic() < self.deadline:
            try:
                status, body, _ = await self.fetch("GET", f"{self.api}/index")
                state = json.loads(body)
                self.crawl_samples.append(state["state"] == "running")
                if state["state"] == "idle":
                    status, body, _ = await self.fetch("POST", f"{self.api}/index")
                    if status != 202:
                        self.background_errors.append(f"crawl: {status} {body[:200]!r}")
                    else:
                        self.crawls_started += 1
            except Exception as exc:  # reported, the run goes on
                self.background_errors.append(f"crawl status: {type(exc).__name__}: {exc}")
            await asyncio.sleep(0.25)

    async def pulls(self) -> None:
        """Keep a DVC pull in progress: once the dataset is indexed, pull it into a new
        folder, wait for the job, remove the folder, again."""
        n = 0
        while time.monotonic() < self.deadline:
            try:
                if not await self.pull(f"pulls/p{n}"):
                    return
            except Exception as exc:  # reported, the run goes on
                self.pulling = False
                self.background_errors.append(f"pull: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
            n += 1

    async def pull(self, dest: str) -> bool:
        """One pull into ``dest`` (False: stop pulling)."""
        while True:
            status, body, _ = await self.fetch("POST", f"{self.api}/dvc/pull",
                                               json={"item": DATASET, "dest": dest})
            if status != 404 or time.monotonic() > self.deadline:
                break
            await asyncio.sleep(0.2)  # not crawled yet
        if status != 202:
            self.background_errors.append(f"pull: {status} {body[:200]!r}")
            return False
        job_id = json.loads(body)["job"]
        self.pulling = True
        try:
            while True:
                status, body, _ = await self.fetch("GET", f"{self.api}/dvc/jobs/{job_id}")
                job = json.loads(body)
                if job["state"] in ("done", "failed", "cancelled"):
                    break
                if time.monotonic() > self.deadline:  # the run is over: stop this pull
                    await self.fetch("DELETE", f"{self.api}/dvc/jobs/{job_id}")
                await asyncio.sleep(0.2)
        finally:
            self.pulling = False
        if job["state"] == "done":
            self.pulls_done += 1
        elif job["state"] == "failed":
            self.background_errors.append(f"pull failed: {job['error']}")
        await asyncio.to_thread(shutil.rmtree, self.world.server.root / dest, True)
        return True

    async def sample_pulls(self) -> None:
        while time.monotonic() < self.deadline:
            self.pull_samples.append(self.pulling)
            await asyncio.sleep(0.25)

    async def seed(self) -> None:
        """Items and next links to start from: the first pages of a search."""
        url: str | None = f"{self.api}/stac/search?limit=100"
        for _ in range(3):
            if url is None:
                break
            status, body, _ = await self.fetch("GET", url)
            if self.check_page(status, body) is not None:
                raise AssertionError(f"the seed search failed: {status} {body[:300]!r}")
            links = json.loads(body)["links"]
            url = next((link["href"] for link in links if link["rel"] == "next"), None)

    async def run(self) -> LoadResult:
        mix = [kind for kind, weight in _MIX for _ in range(weight)]
        await self.seed()
        loop_url = f"{self.world.server.url}loop-watch"
        await self.fetch("GET", loop_url, params={"reset": "1"})
        t0 = time.monotonic()
        self.deadline = t0 + self.duration
        await asyncio.gather(*(self.client(mix) for _ in range(self.clients)),
                             self.crawls(), self.pulls(), self.sample_pulls())
        elapsed = time.monotonic() - t0
        try:
            _, body, _ = await self.fetch("GET", loop_url)
            loop = json.loads(body)
        except Exception as exc:  # the server died: what the run saw is still reported
            self.background_errors.append(f"loop-watch: {type(exc).__name__}: {exc}")
            loop = {"ticks": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "over_100ms": 0,
                    "worst": {"ms": 0, "running_ms": 0, "cpu_wait_ms": 0, "gil_wait_ms": 0},
                    "running_max_ms": 0.0, "stalls": []}

        def share(samples: list[bool]) -> float:
            return sum(samples) / len(samples) if samples else 0.0

        return LoadResult(elapsed, self.clients, self.kinds, loop,
                          share(self.crawl_samples), self.crawls_started,
                          share(self.pull_samples), self.pulls_done, self.background_errors)


async def run_load(world: World, *, clients: int, duration: float, seed: int = 1
                   ) -> LoadResult:
    """``clients`` concurrent clients for ``duration`` seconds (see the module docstring)."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return await _Load(world, session, clients, duration, seed).run()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.exit(serve(sys.argv[2:]))
    sys.exit("usage: python -m tests.support.load --serve --projects N --latency S "
             "--git-repo PATH")
