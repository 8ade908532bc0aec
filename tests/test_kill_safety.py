"""What a kill, a crash or a GitLab outage leaves behind, and that the next run mends it.

* ``sharinghub-lab index`` SIGKILLed early, mid-listing, mid-fetch and inside an index write
  (points chosen by holding the GitLab test server's requests, or by catching the index's write
  lock with the process stopped): the previous index opens with every project as it was or as
  the new crawl made it, and the next crawl ends at the fault-free index.
* GitLab going away under a running server: the catalog keeps serving the last good index and
  ``GET sharinghub/api/index`` says the last crawl failed and why.
* A pull cancelled half-way, or whose server is SIGKILLed half-way (a DVC HTTP remote holds
  its downloads at half): the destination is as it was or marked incomplete, and the next pull
  completes it byte for byte.
* A server SIGKILLed in the middle of a crawl and of MLflow writes, restarted on the same
  files: the index opens with each project's previous or new state, MLflow has every run
  and metric it acknowledged.

The kill-at-random-points loop is ``benchmarks/faults.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import wait_for_crawl
from tests.support.faults import (
    TOKEN,
    change_projects,
    differences,
    index_command,
    kill_in_write,
    project_errors,
    snapshot,
    start_index,
)
from tests.support.gitlab_server import GitLabTestServer, make_synthetic_projects
from tests.support.polling import poll

N_PROJECTS = 400

# ---- sharinghub-lab index, killed ----------------------------------------------------------


@pytest.fixture(scope="module")
def crawl_world(tmp_path_factory):
    """A GitLab whose projects changed since ``prev.sqlite`` was crawled; ``want.sqlite`` is
    the fault-free crawl of the new state."""
    tmp = tmp_path_factory.mktemp("kill-crawl")
    projects = make_synthetic_projects(N_PROJECTS, seed=13)
    with GitLabTestServer(projects) as server:
        run_index(server, tmp / "prev.sqlite", tmp / "log.txt")
        changes = change_projects(server, projects, seed=4)
        run_index(server, tmp / "want.sqlite", tmp / "log.txt")
        yield {"server": server, "tmp": tmp, "changes": changes,
               "prev": snapshot(tmp / "prev.sqlite"), "want": snapshot(tmp / "want.sqlite")}


def run_index(server: GitLabTestServer, index: Path, log: Path) -> None:
    done = subprocess.run(index_command(server, index), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def copy_index(source: Path, target: Path) -> None:
    """A consistent copy (SQLite's backup), as the previous index of a crawl to kill."""
    with contextlib.closing(sqlite3.connect(source)) as src, \
            contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def assert_each_project_old_or_new(got, prev, want) -> None:
    """Every project holds exactly its previous items or exactly its new ones."""
    assert got.integrity == "ok" and got.duplicates == []
    g, p, w = got.by_project(), prev.by_project(), want.by_project()
    mixed = [project for project in set(g) | set(p) | set(w)
             if g.get(project, {}) not in (p.get(project, {}), w.get(project, {}))]
    assert mixed == []


def kill_points(world) -> dict:
    """How each kill point is reached: a hold on the GitLab test server's requests."""
    server: GitLabTestServer = world["server"]
    n_changed = len(world["changes"]["changed"])
    trees = iter(range(10**9))
    return {
        "early": lambda: server.hold(None),
        "mid-listing": lambda: server.hold(
            lambda r: r.endpoint == "projects" and r.query.get("page") == "2"),
        "mid-fetch": lambda: server.hold(
            lambda r: r.endpoint == "tree" and next(trees) >= n_changed // 2),
    }


@pytest.mark.parametrize("point", ["early", "mid-listing", "mid-fetch"])
def test_a_crawl_killed_at_a_held_request_leaves_the_previous_index(crawl_world, tmp_path,
                                                                   point):
    server: GitLabTestServer = crawl_world["server"]
    index = tmp_path / "index.sqlite"
    copy_index(crawl_world["tmp"] / "prev.sqlite", index)
    hold = kill_points(crawl_world)[point]()
    try:
        proc = start_index(server, index, tmp_path / "log.txt")
        poll(lambda: hold.waiting > 0 or proc.poll() is not None,
             f"the crawl to reach the {point} point", timeout=120)
        assert proc.poll() is None, "the crawl ended before the kill point"
        proc.kill()
        proc.wait(30)
    finally:
        server.release_all()
    got = snapshot(index)
    # nothing was written before these points: the index is the previous one, exactly
    assert differences(got.items, crawl_world["prev"].items) == {
        "lost": [], "extra": [], "changed": []}
    assert got.status == crawl_world["prev"].status
    run_index(server, index, tmp_path / "log.txt")
    again = snapshot(index)
    assert differences(again.items, crawl_world["want"].items) == {
        "lost": [], "extra": [], "changed": []}
    assert project_errors(again.status) == project_errors(crawl_world["want"].status)


def test_a_crawl_killed_inside_an_index_write_leaves_old_or_new_projects(crawl_world,
                                                                        tmp_path):
    server: GitLabTestServer = crawl_world["server"]
    index = tmp_path / "index.sqlite"
    copy_index(crawl_world["tmp"] / "prev.sqlite", index)
    server.reset_requests()
    proc = start_index(server, index, tmp_path / "log.txt")
    try:
        # fetching has begun (the index was opened before): the next write is the crawl's
        poll(lambda: server.count("tree") > 0 or proc.poll() is not None,
             "the crawl to fetch", timeout=120)
        assert kill_in_write(proc, index), "the crawl ended before it was caught writing"
    finally:
        if proc.poll() is None:
            proc.kill()
    got = snapshot(index)
    assert_each_project_old_or_new(got, crawl_world["prev"], crawl_world["want"])
    assert got.status in (crawl_world["prev"].status, crawl_world["want"].status) or (
        project_errors(got.status) == project_errors(crawl_world["want"].status))
    run_index(server, index, tmp_path / "log.txt")
    again = snapshot(index)
    assert differences(again.items, crawl_world["want"].items) == {
        "lost": [], "extra": [], "changed": []}


# ---- GitLab goes away under a running server -----------------------------------------------


@pytest.fixture
def jp_server_config(jp_server_config):
    """conftest's server (GitLab test server + local examples), without MLflow's warm-up."""
    return {**jp_server_config,
            "SharingHub": {**jp_server_config["SharingHub"], "mlflow_warmup": False}}


async def api_json(jp_fetch, *parts, **kw):
    response = await jp_fetch("sharinghub", "api", *parts, **kw)
    return json.loads(response.body)


async def all_features(jp_fetch) -> list[dict]:
    body = await api_json(jp_fetch, "stac", "search", method="POST",
                          body=json.dumps({"limit": 1000}))
    return sorted(body["features"], key=lambda f: (f["collection"], f["id"]))


async def crawl_again(jp_fetch, before: dict) -> dict:
    """POST a crawl and poll until it has finished (a new ``started``)."""
    await api_json(jp_fetch, "index", method="POST", body="")
    deadline = asyncio.get_running_loop().time() + 90
    while asyncio.get_running_loop().time() < deadline:
        status = await api_json(jp_fetch, "index")
        last = status["last_crawl"] or {}
        if (status["state"] == "idle" and last.get("finished")
                and last.get("started") != before["last_crawl"]["started"]):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError("the crawl did not finish in time")


async def test_gitlab_gone_keeps_the_last_good_index_and_says_why(jp_fetch, gitlab):
    first = await wait_for_crawl(jp_fetch)
    assert first["last_crawl"]["ok"]
    served = await all_features(jp_fetch)
    assert any(f["id"] == "sharinghub-test/flood-model" for f in served)
    gitlab.stop()  # connection refused from now on
    status = await crawl_again(jp_fetch, first)
    last = status["last_crawl"]
    assert last["ok"] is False
    (why,) = [e for e in last["errors"] if e["project"] == ""]
    assert "unreachable" in why["message"] and gitlab.url in why["message"]
    assert last["items"] == first["last_crawl"]["items"]
    assert await all_features(jp_fetch) == served


async def test_gitlab_answering_502_keeps_the_index_and_says_so(jp_fetch, gitlab):
    first = await wait_for_crawl(jp_fetch)
    served = await all_features(jp_fetch)
    gitlab.fault_statuses = (502,)
    gitlab.fault_rate = 1.0
    status = await crawl_again(jp_fetch, first)
    last = status["last_crawl"]
    assert last["ok"] is False
    (why,) = [e for e in last["errors"] if e["project"] == ""]
    assert "502" in why["message"]
    assert await all_features(jp_fetch) == served


async def test_a_502_page_is_reported_as_one_short_line(jp_fetch, gitlab):
    first = await wait_for_crawl(jp_fetch)
    gitlab.fault_statuses = (502,)
    gitlab.fault_rate = 1.0
    status = await crawl_again(jp_fetch, first)
    (why,) = [e for e in status["last_crawl"]["errors"] if e["project"] == ""]
    assert "<html" not in why["message"] and "b'" not in why["message"]
    assert why["message"].endswith("GitLab answered 502 Bad Gateway")


# ---- pulls cancelled, and killed with their server ------------------------------------------

JUPYTER_TOKEN = "kill-safety-token"
DATASET = "repos/big"


@pytest.fixture(scope="module")
def pull_world(tmp_path_factory):
    """A local dataset project (60 files) whose DVC remote is served over HTTP by a remote
    that can hold downloads half-way; the server's config points the project's remote there."""
    from tests.support.faults_remote import HoldingRemote
    from tests.support.git_repos import make_big_dataset, tool_env

    tmp = tmp_path_factory.mktemp("kill-pull")
    folder = tmp / "repos"
    ds = make_big_dataset(folder, "big", str(tmp / "remote"), n_files=60,
                          total_bytes=3_000_000, files_per_dir=20, env=tool_env(tmp / "home"))
    with HoldingRemote(tmp / "remote") as remote:
        config = tmp / "config.py"
        config.write_text(f"c.SharingHub.dvc_remotes = {{'storage': {{'url': {remote.url!r}}}}}\n"
                          f"c.SharingHub.local_projects = [{str(folder)!r}]\n"
                          "c.SharingHub.crawl_interval = 0\n")
        yield {"ds": ds, "remote": remote, "config": config, "tmp": tmp}


def call(server, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    import requests

    response = requests.request(method, f"{server.url}sharinghub/api/{path}", timeout=30,
                                headers={"Authorization": f"token {server.token}"},
                                data=None if body is None else json.dumps(body))
    return response.status_code, response.json()


def crawled(server) -> dict:
    def done() -> dict | None:
        _, status = call(server, "GET", "index")
        last = status["last_crawl"] or {}
        return status if status["state"] == "idle" and last.get("finished") else None

    return poll(done, "the server's first crawl", timeout=120)


def start_pull(server, dest: str) -> str:
    code, body = call(server, "POST", "dvc/pull", {"item": DATASET, "dest": dest})
    assert code == 202, body
    return body["job"]


def job_state(server, job: str) -> dict:
    return call(server, "GET", f"dvc/jobs/{job}")[1]


def ended(server, job: str) -> dict:
    return poll(lambda: (lambda j: j if j["state"] in ("done", "failed", "cancelled") else None)(
        job_state(server, job)), f"job {job} to end", timeout=180)


def processes_in(folder: Path) -> dict[int, str]:
    """Live processes whose working directory is in ``folder`` (pid -> name)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path((entry / "cwd").readlink())
            comm, _, rest = (entry / "stat").read_text().rpartition(")")
        except (OSError, ValueError):
            continue
        if rest.split()[0] != "Z" and cwd.is_relative_to(folder):
            found[int(entry.name)] = comm.partition("(")[2]
    return found


def half_way(server, job: str, remote) -> dict:
    """Poll until the remote has sent some files and holds the rest."""
    seen: list[dict] = []

    def there() -> dict | None:
        state = job_state(server, job)
        seen.append(state)
        assert state["state"] not in ("done", "failed", "cancelled"), state
        # (the job's files_done stays 0 until DVC writes a directory's listing, at its end)
        return state if remote.waiting > 0 and remote.served > 0 else None

    try:
        return poll(there, "the pull to be half-way", timeout=120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {seen[-1:]}, remote served {remote.served}, "
                             f"waiting {remote.waiting}") from None


def test_a_pull_cancelled_or_killed_half_way_is_undone_or_marked_and_then_completed(
        pull_world, tmp_path):
    from sharinghub_server.datasets.pull import INCOMPLETE, MANIFEST
    from tests.support.jupyter_proc import jupyter_server

    ds, remote = pull_world["ds"], pull_world["remote"]
    root = tmp_path / "root"
    args = [f"--config={pull_world['config']}"]
    with jupyter_server(root, token=JUPYTER_TOKEN, args=args) as server:
        crawled(server)
        # cancelled half-way: the fresh clone goes, nothing is left
        remote.hold_again(30)
        job = start_pull(server, "cancelled")
        half_way(server, job, remote)
        assert remote.served == 30
        assert call(server, "DELETE", f"dvc/jobs/{job}")[0] == 200
        assert ended(server, job)["state"] == "cancelled"
        remote.release()
        assert not (root / "cancelled").exists()
        # the next pull completes it
        again = ended(server, start_pull(server, "cancelled"))
        assert again["state"] == "done", again["error"]
        assert ds.diff_workspace(root / "cancelled", ds.latest) == []

        # killed half-way with its server
        remote.hold_again(30)
        job = start_pull(server, "killed")
        half_way(server, job, remote)
        server.proc.kill()
        server.proc.wait(30)
    dest = root / "killed"
    assert (dest / INCOMPLETE).is_file() and not (dest / MANIFEST).exists()
    marker = json.loads((dest / INCOMPLETE).read_text())
    assert marker["incomplete"] is True and marker["item"] == DATASET
    # nothing of the killed server goes on writing there (its DVC worker stopped with it)
    poll(lambda: not processes_in(dest), "the killed server's DVC worker to stop", timeout=15)
    remote.release()
    with jupyter_server(root, token=JUPYTER_TOKEN, args=args) as server:
        crawled(server)
        again = ended(server, start_pull(server, "killed"))
        assert again["state"] == "done", again["error"]
        assert again["files_done"] == again["files_total"] == 60
    assert ds.diff_workspace(dest, ds.latest) == []
    assert not (dest / INCOMPLETE).exists()
    assert json.loads((dest / MANIFEST).read_text())["item"] == DATASET
    clean = subprocess.run(["git", "status", "--porcelain"], cwd=dest, capture_output=True,
                           text=True, check=True).stdout
    assert clean == ""


# ---- a server killed in the middle of a crawl and of MLflow writes ---------------------------


class MlflowWriter:
    """Logs runs and metrics through the server's ``sharinghub/mlflow/`` from a thread,
    remembering what the server acknowledged, until the server goes away."""

    def __init__(self, tracking: str, token: str) -> None:
        import threading

        self.tracking, self.token = tracking, token
        self.acked: dict[str, list[int]] = {}  # run id -> steps of "loss" acknowledged
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> MlflowWriter:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(60)

    @property
    def writes(self) -> int:
        return sum(len(steps) for steps in self.acked.values())

    def _run(self) -> None:
        import mlflow

        client = mlflow.MlflowClient(self.tracking)
        try:
            experiment = client.create_experiment("kill-safety")
            while True:
                run = client.create_run(experiment).info.run_id
                self.acked[run] = []
                for step in range(10):
                    client.log_metric(run, "loss", 1.0 / (step + 1), step=step)
                    self.acked[run].append(step)
                client.set_terminated(run)
        except Exception as exc:  # the server was killed: what was acknowledged is known
            self.error = type(exc).__name__


def test_a_killed_server_keeps_its_index_and_every_acknowledged_mlflow_write(
        tmp_path, monkeypatch):
    from tests.support.jupyter_proc import jupyter_server

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", JUPYTER_TOKEN)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "180")  # (a first request loads MLflow)
    projects = make_synthetic_projects(300, seed=21)
    root = tmp_path / "root"
    index = root / "index.sqlite"
    with GitLabTestServer(projects) as gitlab:
        args = [f"--SharingHub.gitlab_url={gitlab.url}",
                f"--SharingHub.gitlab_token={TOKEN}", "--SharingHub.crawl_interval=0"]
        with jupyter_server(root, token=JUPYTER_TOKEN, args=args) as server:
            crawled(server)
            prev = snapshot(index)
            change_projects(gitlab, projects, seed=8)
            run_index(gitlab, tmp_path / "want.sqlite", tmp_path / "log.txt")
            want = snapshot(tmp_path / "want.sqlite")
            writer = MlflowWriter(server.tracking, JUPYTER_TOKEN).start()
            poll(lambda: writer.writes >= 20 or writer.error, "MLflow writes", timeout=120)
            assert writer.error is None, writer.error
            gitlab.reset_requests()
            assert call(server, "POST", "index")[0] == 202
            poll(lambda: gitlab.count("tree") > 0, "the crawl to fetch", timeout=60)
            assert kill_in_write(server.proc, index), "the crawl was not caught writing"
            writer.join()
        assert writer.error is not None  # its server was killed under it
        acked = {run: list(steps) for run, steps in writer.acked.items()}
        got = snapshot(index)  # what a restarted server opens
        assert_each_project_old_or_new(got, prev, want)
        # restarted on the same files, GitLab held: it serves the index as the kill left it
        hold = gitlab.hold(None)
        with jupyter_server(root, token=JUPYTER_TOKEN, args=args) as server:
            code, found = call(server, "GET", "stac/search?limit=1000")
            assert code == 200
            assert found["numberMatched"] == len(got.items)
            import mlflow

            client = mlflow.MlflowClient(server.tracking)
            for run, steps in acked.items():
                history = client.get_metric_history(run, "loss")
                assert {m.step for m in history} >= set(steps), run
            hold.release()
            gitlab.release_all()

            def recrawled() -> dict | None:
                _, status = call(server, "GET", "index")
                last = status["last_crawl"] or {}
                return status if (status["state"] == "idle" and last.get("finished")
                                  and last.get("started") != (got.status or {}).get("started")
                                  ) else None

            assert poll(recrawled, "the restarted server's crawl", timeout=120)[
                "last_crawl"]["ok"]
            again = snapshot(index)
        assert differences(again.items, want.items) == {"lost": [], "extra": [], "changed": []}
