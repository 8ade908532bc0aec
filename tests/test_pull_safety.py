"""Pulls of repositories that try to make the server write outside the destination, through
a real Jupyter server (local git projects, real DVC, a local remote); destinations that are
refused at once; a job's final state against what is on disk; the git token kept to the
clone URL's host across a real redirect to another server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import tornado.httpserver
import tornado.web

from sharinghub_server.datasets import gitops
from tests.conftest import TOKEN, wait_for_crawl
from tests.support.git_repos import (
    ATTACKS,
    make_dataset_repo,
    make_hostile_repo,
    make_legacy_repo,
    tool_env,
)
from tests.support.gitlab_server import FakeProject, GitLabTestServer
from tests.support.threaded import ThreadedServer
from tests.test_dvc_local import api, refused, wait_job

HOSTILE = ("symlink", "cache", "dotdot")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("pull-safety")


@pytest.fixture(scope="module")
def outside(workdir) -> Path:
    """Where the hostile repositories point: must stay empty."""
    path = workdir / "outside"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def projects(workdir, outside) -> Path:
    """A local-projects folder with one repository per attack (item ``repos/<attack>``) and
    one of DVC 2 (``repos/legacy``)."""
    env = tool_env(workdir / "home")
    folder = workdir / "repos"
    for attack in ATTACKS:
        make_hostile_repo(folder, attack, str(workdir / f"remote-{attack}"), attack=attack,
                          outside=outside, env=env)
    make_legacy_repo(folder, "legacy", str(workdir / "remote-legacy"), env=env)
    return folder


@pytest.fixture
def jp_server_config(projects, tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"sharinghub_server": True}},
        "SharingHub": {"local_projects": [str(projects)],
                       "index_url": f"sqlite://{tmp_path / 'index.sqlite'}",
                       "crawl_interval": 0,
                       "mlflow_warmup": False},  # (see conftest.py)
    }


async def pull(jp_fetch, item: str, rev: str, dest: str) -> dict:
    code, started = await api(jp_fetch, "dvc", "pull", method="POST",
                              body={"item": item, "rev": rev, "dest": dest})
    assert code == 202
    return await wait_job(jp_fetch, started["job"])


def tree(path: Path) -> list[str]:
    """Every path under ``path`` (symlinks not followed)."""
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def files(path: Path) -> dict[str, bytes]:
    """The working files (not git's or DVC's own state) and their content."""
    return {p: (path / p).read_bytes() for p in tree(path)
            if (path / p).is_file() and not p.startswith((".git/", ".dvc/tmp/"))}


def commit(path: Path, rev: str = "HEAD") -> str:
    return subprocess.run(["git", "rev-parse", f"{rev}^{{commit}}"], cwd=path,
                          capture_output=True, text=True, check=True).stdout.strip()


def assert_refused(job: dict, root: Path) -> None:
    assert job["state"] == "failed", job
    assert job["error"].startswith("refused: ") and "\n" not in job["error"], job["error"]
    assert str(root) not in job["error"]


@pytest.mark.parametrize("attack", HOSTILE)
async def test_a_fresh_pull_of_a_hostile_version_is_refused_and_leaves_nothing(
        jp_fetch, jp_root_dir, outside, attack):
    await wait_for_crawl(jp_fetch)
    root = Path(jp_root_dir)
    before = tree(root)
    job = await pull(jp_fetch, f"repos/{attack}", "v2.0", attack)
    assert_refused(job, root)
    assert tree(outside) == []
    assert tree(root) == before  # no clone left, nothing next to it (``../escape.txt``)


@pytest.mark.parametrize("attack", HOSTILE)
async def test_an_update_to_a_hostile_version_is_refused_and_restores_the_previous_one(
        jp_fetch, jp_root_dir, outside, projects, attack):
    await wait_for_crawl(jp_fetch)
    root = Path(jp_root_dir)
    job = await pull(jp_fetch, f"repos/{attack}", "v1.0", "ds")
    assert job["state"] == "done", job["error"]
    dest = root / "ds"
    before = files(dest)
    job = await pull(jp_fetch, f"repos/{attack}", "v2.0", "ds")
    assert_refused(job, root)
    assert tree(outside) == []
    assert commit(dest) == commit(projects / attack, "v1.0")
    assert files(dest) == before
    assert (dest / "payload.txt").read_bytes() == b"payload, version 1.0\n"


async def test_an_output_dvc_never_wrote_fails_the_job_with_the_measured_progress(
        jp_fetch, jp_root_dir):
    await wait_for_crawl(jp_fetch)
    job = await pull(jp_fetch, "repos/ignored", "v2.0", "ignored")
    assert job["state"] == "failed", job
    assert "'payload.txt'" in job["error"] and "\n" not in job["error"]
    assert (job["files_done"], job["files_total"]) == (0, 1)
    assert not (Path(jp_root_dir) / "ignored").exists()


async def test_progress_is_measured_in_the_cache_for_dvc_2_pointer_files_too(jp_fetch,
                                                                           jp_root_dir):
    await wait_for_crawl(jp_fetch)
    job = await pull(jp_fetch, "repos/legacy", "v1.0", "legacy")
    assert job["state"] == "done", job["error"]
    assert (job["files_done"], job["bytes_done"]) == (3, 2860)
    assert (job["files_total"], job["bytes_total"]) == (3, 2860)
    assert (Path(jp_root_dir) / "legacy" / "d" / "y.bin").read_bytes() == b"\x02\x03" * 50


@pytest.mark.parametrize("dest", [".ssh/keys", ".jupyter", ".ipython/profile_default/startup",
                                  "work/.hidden/data", "notes.txt", "notes.txt/data"])
async def test_hidden_and_file_destinations_are_refused_at_once(jp_fetch, jp_root_dir, dest):
    await wait_for_crawl(jp_fetch)
    root = Path(jp_root_dir)
    (root / "notes.txt").write_text("my notes\n")
    before = tree(root)
    code, body = await refused(jp_fetch, "dvc", "pull", method="POST",
                               body={"item": "repos/ignored", "rev": "v1.0", "dest": dest})
    assert code == 400 and body["code"] == "InvalidParameterValue"
    assert "\n" not in body["description"] and str(root) not in body["description"]
    assert tree(root) == before


# --- the git token and redirects ---------------------------------------------------------


class Redirector(ThreadedServer):
    """Answers every request with a redirect to the same path on ``target``, recording the
    ``Authorization`` header it got."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.authorizations: list[str | None] = []

    def http_server(self) -> tornado.httpserver.HTTPServer:
        outer = self

        class Redirect(tornado.web.RequestHandler):
            def get(self, *_: str) -> None:
                outer.authorizations.append(self.request.headers.get("Authorization"))
                self.redirect(outer.target + self.request.uri, status=302)

            post = get

        return tornado.httpserver.HTTPServer(tornado.web.Application([(r"/.*", Redirect)]))


@pytest.fixture(scope="module")
def dataset(workdir):
    return make_dataset_repo(workdir / "git", "ds", str(workdir / "git-remote"),
                             env=tool_env(workdir / "home"))


@pytest.mark.parametrize("visibility", ["public", "private"])
def test_the_git_token_does_not_follow_a_redirect_to_another_host(tmp_path, dataset,
                                                                  visibility):
    with GitLabTestServer() as other, Redirector(other.url) as gitlab:
        other.add_git_project(FakeProject(id=1, path_with_namespace="eo/ds",
                                          visibility=visibility), dataset.bare)
        url = f"{gitlab.url}/eo/ds.git"
        if visibility == "public":  # the other host serves it: the clone works, anonymously
            gitops.clone(url, tmp_path / "clone", token=TOKEN)
            assert gitops.head(tmp_path / "clone") == dataset.commits[dataset.latest]
        else:  # the other host wants credentials: it gets none, and the clone fails
            with pytest.raises(gitops.JobError, match="refused the credentials"):
                gitops.clone(url, tmp_path / "clone", token=TOKEN)
        git_requests = [r for r in other.requests if r.endpoint == "git"]
    assert git_requests and all(r.token in (None, "") for r in git_requests)
    assert all(a is None for a in gitlab.authorizations)


def test_the_git_token_reaches_the_clone_urls_host(tmp_path, dataset):
    with GitLabTestServer() as gitlab:
        gitlab.add_git_project(FakeProject(id=1, path_with_namespace="eo/ds",
                                           visibility="private"), dataset.bare)
        gitops.clone(gitlab.clone_url(1), tmp_path / "clone", token=TOKEN)
        gitops.fetch(tmp_path / "clone", gitlab.clone_url(1), token=TOKEN)
        assert TOKEN in {r.token for r in gitlab.requests if r.endpoint == "git"}
    assert gitops.head(tmp_path / "clone") == dataset.commits[dataset.latest]
    config = (tmp_path / "clone" / ".git" / "config").read_text()
    assert TOKEN not in config
