"""Tests of the real-git test fixtures: git clones through the GitLab test server (git
http-backend), DVC dataset repositories (tests/support/git_repos.py) and the SeaweedFS S3
server (tests/support/s3.py), with real git and DVC."""

from __future__ import annotations

import base64
import gzip
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import yaml

from tests.support.git_repos import (
    DEFAULT_VERSIONS,
    DatasetRepo,
    configure_remote,
    make_big_dataset,
    make_dataset_repo,
    run_dvc,
    run_git,
    tool_env,
)
from tests.support.gitlab_server import FakeProject, GitLabTestServer
from tests.support.s3 import SeaweedS3, seaweed_fixture

TOKEN = "secret-token"
BASIC = "Basic " + base64.b64encode(f"oauth2:{TOKEN}".encode()).decode()
LOCAL_ID, S3_ID, PUBLIC_ID, FAKE_ID = 501, 502, 503, 504
UTC = timezone.utc

s3 = seaweed_fixture(scope="module")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("git-fixtures")


@pytest.fixture(scope="module")
def env(workdir: Path) -> dict[str, str]:
    return tool_env(workdir / "home")


@pytest.fixture(scope="module")
def local_ds(workdir: Path, env: dict[str, str]) -> DatasetRepo:
    return make_dataset_repo(workdir, "local-ds", str(workdir / "remote"), env=env,
                             title="Local dataset")


@pytest.fixture(scope="module")
def s3_ds(workdir: Path, env: dict[str, str], s3: SeaweedS3) -> DatasetRepo:
    return make_dataset_repo(workdir, "s3-ds", s3.url("datasets/s3-ds"),
                             remote_config=s3.dvc_config(), env=env, title="S3 dataset")


@pytest.fixture
def server(local_ds: DatasetRepo, s3_ds: DatasetRepo):
    with GitLabTestServer() as srv:
        srv.add_git_project(FakeProject(id=LOCAL_ID, path_with_namespace="eo/local-ds",
                                        visibility="private", topics=["sharinghub:dataset"]),
                            local_ds.bare)
        srv.add_git_project(FakeProject(id=S3_ID, path_with_namespace="eo/s3-ds",
                                        visibility="internal", topics=["sharinghub:dataset"]),
                            s3_ds.bare)
        srv.add_project(FakeProject(id=FAKE_ID, path_with_namespace="eo/no-git",
                                    files={"README.md": "# fake\n"}))
        yield srv
        assert srv.errors == []


def git(cwd: Path, *args: str, env: dict[str, str], check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=check)


def clone(server: GitLabTestServer, key: int, dest: Path, env: dict[str, str], *,
          auth: str | None = f"Authorization: {BASIC}", ref: str | None = None,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    args = ["-c", f"http.extraHeader={auth}"] if auth else []
    args += ["clone", "-q", *(["--branch", ref] if ref else []), server.clone_url(key),
             str(dest)]
    return git(dest.parent, *args, env=env, check=check)


def api(server: GitLabTestServer, path: str, **params: str) -> requests.Response:
    resp = requests.get(f"{server.api_url}/projects/{LOCAL_ID}{path}", params=params,
                        headers={"PRIVATE-TOKEN": TOKEN}, timeout=10)
    resp.raise_for_status()
    return resp


# ---- cloning through the test server -------------------------------------------------------


@pytest.mark.parametrize("auth", [f"Authorization: {BASIC}", f"Authorization: Bearer {TOKEN}",
                                  f"PRIVATE-TOKEN: {TOKEN}"], ids=["basic", "bearer", "header"])
def test_clone_private_project_with_token(server, local_ds, env, tmp_path, auth):
    dest = tmp_path / "clone"
    clone(server, LOCAL_ID, dest, env, auth=auth)
    assert git(dest, "rev-parse", "HEAD", env=env).stdout.strip() == local_ds.commits["v1.1"]
    assert git(dest, "tag", env=env).stdout.split() == ["v1.0", "v1.1"]
    checkout = {p: (dest / p).read_bytes()
                for p in git(dest, "ls-files", env=env).stdout.split()}
    assert checkout == local_ds.git_files["v1.1"]
    records = [r for r in server.requests if r.endpoint == "git"]
    assert records and all(r.project == LOCAL_ID and r.token == TOKEN and r.status == 200
                           for r in records)
    assert {r.path for r in records} >= {"/eo/local-ds.git/info/refs",
                                         "/eo/local-ds.git/git-upload-pack"}


def test_clone_refused_without_valid_credentials(server, env, tmp_path):
    bad = "Authorization: Basic " + base64.b64encode(b"oauth2:wrong").decode()
    result = clone(server, LOCAL_ID, tmp_path / "bad", env, auth=bad, check=False)
    assert result.returncode != 0  # git then wants a user name: prompts are disabled
    result = git(tmp_path, "clone", "-q", server.clone_url(LOCAL_ID, "wrong"),
                 str(tmp_path / "bad"), env=env, check=False)
    assert result.returncode != 0 and "Authentication failed" in result.stderr
    result = clone(server, LOCAL_ID, tmp_path / "anon", env, auth=None, check=False)
    assert result.returncode != 0
    assert not (tmp_path / "bad").exists() and not (tmp_path / "anon").exists()
    assert server.count("git", status=401) >= 2

    refs = server.url + "/eo/local-ds.git/info/refs"
    params = {"service": "git-upload-pack"}
    for headers in ({}, {"Authorization": bad[len("Authorization: "):]},
                    {"PRIVATE-TOKEN": "wrong"}, {"Authorization": "Bearer wrong"}):
        resp = requests.get(refs, params=params, headers=headers, timeout=10)
        assert resp.status_code == 401, headers
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="GitLab"'
    ok = requests.get(refs, params=params, headers={"Authorization": BASIC}, timeout=10)
    assert ok.status_code == 200
    assert ok.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"
    assert ok.content.startswith(b"001e# service=git-upload-pack\n0000")
    # unknown projects: 401 for anonymous users (GitLab hides what exists), 404 otherwise
    missing = server.url + "/eo/missing.git/info/refs"
    assert requests.get(missing, params=params, timeout=10).status_code == 401
    assert requests.get(missing, params=params, headers={"Authorization": BASIC},
                        timeout=10).status_code == 404
    no_git = server.url + "/eo/no-git.git/info/refs"
    assert requests.get(no_git, params=params, timeout=10).status_code == 404
    assert requests.get(refs, headers={"Authorization": BASIC},  # dumb HTTP
                        timeout=10).status_code == 403


def test_public_project_clones_anonymously_but_push_needs_a_token(server, local_ds, env,
                                                                   tmp_path):
    server.update_project(LOCAL_ID, visibility="public")
    dest = tmp_path / "anon"
    clone(server, LOCAL_ID, dest, env, auth=None)
    assert (dest / "data.dvc").read_bytes() == local_ds.git_files["v1.1"]["data.dvc"]
    git(dest, "commit", "-q", "--allow-empty", "-m", "anonymous", env=env)
    result = git(dest, "push", "-q", "origin", "main", env=env, check=False)
    assert result.returncode != 0
    assert server.count("git", status=401) >= 1


# ---- the API reads the repository ----------------------------------------------------------


def _git_tree(repo: Path, ref: str) -> list[dict[str, str]]:
    out = run_git(repo, "ls-tree", "-r", "-t", "-z", "--full-tree", ref).decode()
    entries = []
    for item in filter(None, out.split("\0")):
        meta, path = item.split("\t", 1)
        mode, kind, sha = meta.split()
        entries.append({"id": sha, "name": path.rsplit("/", 1)[-1], "type": kind,
                        "path": path, "mode": mode})
    return entries


@pytest.mark.parametrize("tag", ["v1.0", "v1.1"])
def test_api_tree_and_files_match_the_repository_at_a_tag(server, local_ds, tag):
    bare = local_ds.bare
    tree = api(server, "/repository/tree", ref=tag, recursive="true", per_page="100").json()
    assert tree == _git_tree(bare, tag)
    sha = local_ds.commits[tag]
    assert api(server, "/repository/tree", ref=sha, recursive="true",
               per_page="100").json() == tree
    for path, data in local_ds.git_files[tag].items():
        quoted = requests.utils.quote(path, safe="")
        assert api(server, f"/repository/files/{quoted}/raw", ref=tag).content == data
        assert run_git(bare, "show", f"{tag}:{path}") == data
    meta = api(server, "/repository/files/data.dvc", ref=tag).json()
    assert meta["commit_id"] == sha and meta["ref"] == tag
    outs = yaml.safe_load(base64.b64decode(meta["content"]))["outs"][0]
    assert outs == local_ds.outs[tag]["data"]
    assert outs["nfiles"] == 4 and outs["md5"].endswith(".dir")


def test_api_refs_and_project_follow_the_repository(server, local_ds):
    tags = {t["name"]: t for t in api(server, "/repository/tags").json()}
    assert set(tags) == {"v1.0", "v1.1"}
    for name, tag in tags.items():
        assert tag["commit"]["id"] == local_ds.commits[name]
        assert tag["message"] == f"Dataset version {name[1:]}"
        assert tag["target"] == run_git(local_ds.bare, "rev-parse", name).decode().strip()
    assert tags["v1.1"]["commit"]["committed_date"] == "2024-04-02T14:30:00.000+00:00"
    assert tags["v1.1"]["commit"]["author_name"] == "Dataset Bot"
    branches = api(server, "/repository/branches").json()
    assert [(b["name"], b["default"], b["commit"]["id"]) for b in branches] == [
        ("main", True, local_ds.commits["v1.1"])]
    commits = api(server, "/repository/commits").json()
    assert [c["id"] for c in commits] == [local_ds.commits["v1.1"], local_ds.commits["v1.0"]]
    assert [c["id"] for c in api(server, "/repository/commits", ref_name="v1.0").json()] == [
        local_ds.commits["v1.0"]]
    project = api(server, "").json()
    assert project["http_url_to_repo"] == server.clone_url(LOCAL_ID)
    assert project["default_branch"] == "main" and project["empty_repo"] is False
    assert project["readme_url"].endswith("/-/blob/main/README.md")
    readme = api(server, "/repository/files/README.md/raw").text
    front = yaml.safe_load(readme.split("---")[1])
    assert front["title"] == "Local dataset" and front["topics"] == ["sharinghub:dataset"]
    live = server.project(LOCAL_ID)
    assert live.head_commit == local_ds.commits["v1.1"]
    assert set(live.files) == set(local_ds.git_files["v1.1"])


def test_changes_to_the_repository_show_in_the_api(server, local_ds, env, tmp_path):
    bare = tmp_path / "pushable.git"
    run_git(tmp_path, "clone", "-q", "--bare", str(local_ds.bare), str(bare), env=env)
    old = datetime(2024, 1, 1, tzinfo=UTC)
    server.add_git_project(FakeProject(id=PUBLIC_ID, path_with_namespace="eo/pushable",
                                       last_activity_at=old), bare)
    work = tmp_path / "work"
    clone(server, PUBLIC_ID, work, env)
    (work / "README.md").write_text("---\ntitle: Pushed\n---\n")
    git(work, "commit", "-q", "-am", "Edit the README", env=env)
    git(work, "tag", "-a", "v2.0", "-m", "Version 2", env=env)
    git(work, "-c", f"http.extraHeader=Authorization: {BASIC}", "push", "-q", "origin", "main",
        "v2.0", env=env)
    head = git(work, "rev-parse", "HEAD", env=env).stdout.strip()
    assert server.count("git", method="POST", status=200) >= 2  # upload-pack and receive-pack

    def get(path: str, **params: str) -> requests.Response:
        return requests.get(f"{server.api_url}/projects/{PUBLIC_ID}{path}", params=params,
                            timeout=10)

    assert get("/repository/files/README.md/raw").text == "---\ntitle: Pushed\n---\n"
    assert get("/repository/tags/v2.0").json()["commit"]["id"] == head
    assert get("/repository/files/README.md/raw", ref="v1.1").content == \
        local_ds.git_files["v1.1"]["README.md"]
    activity = datetime.fromisoformat(get("").json()["last_activity_at"].replace("Z", "+00:00"))
    assert activity > datetime.now(UTC) - timedelta(minutes=5)  # a push is activity

    # git commands on the repository itself, then the server's helpers, which commit for real
    run_git(work, "push", "-q", str(bare), "HEAD:refs/heads/feature", env=env)
    assert [b["name"] for b in get("/repository/branches").json()] == ["feature", "main"]
    sha = server.push(PUBLIC_ID, {"notes/new.txt": "new\n"}, removed=["labels.csv.dvc"],
                      message="Helper commit")
    server.add_tag(PUBLIC_ID, "v3.0", message="Version 3")
    git(work, "-c", f"http.extraHeader=Authorization: {BASIC}", "pull", "-q", "--tags",
        "origin", "main", env=env)
    assert git(work, "rev-parse", "HEAD", env=env).stdout.strip() == sha
    assert (work / "notes/new.txt").read_text() == "new\n"
    assert not (work / "labels.csv.dvc").exists()
    assert git(work, "rev-parse", "v3.0^{commit}", env=env).stdout.strip() == sha
    assert get("/repository/tags/v3.0").json()["message"] == "Version 3"


def test_raw_smart_http_gzip_and_chunked_bodies(server, local_ds):
    url = server.url + "/eo/local-ds.git/git-upload-pack"
    want = local_ds.commits["v1.0"]
    line = f"want {want} ofs-delta\n".encode()
    body = b"%04x%s0000" % (len(line) + 4, line) + b"0009done\n"
    headers = {"Authorization": BASIC, "Content-Type": "application/x-git-upload-pack-request",
               "Accept": "application/x-git-upload-pack-result"}
    gz = requests.post(url, data=gzip.compress(body), timeout=10,
                       headers={**headers, "Content-Encoding": "gzip"})
    assert gz.status_code == 200
    assert gz.headers["Content-Type"] == "application/x-git-upload-pack-result"
    assert gz.headers.get("Transfer-Encoding") == "chunked"  # streamed as it comes
    assert gz.content.startswith(b"0008NAK\n") and b"PACK" in gz.content
    chunked = requests.post(url, data=iter([body[:20], body[20:]]), headers=headers,
                            timeout=10)
    assert chunked.status_code == 200 and chunked.content == gz.content
    assert server.git_errors == []


def test_git_requests_are_faulted_and_delayed_like_api_ones(server, env, tmp_path):
    server.fail_next("git", 503)
    assert clone(server, LOCAL_ID, tmp_path / "a", env, check=False).returncode != 0
    assert server.count("git", status=503) == 1
    server.latency = 0.05
    clone(server, LOCAL_ID, tmp_path / "b", env)
    assert (tmp_path / "b" / "data.dvc").exists()


# ---- DVC ------------------------------------------------------------------------------------


def test_dataset_repo_layout(local_ds, s3_ds, s3):
    assert local_ds.tags == ["v1.0", "v1.1"] == [v.tag for v in DEFAULT_VERSIONS]
    v10, v11 = (local_ds.contents[t] for t in local_ds.tags)
    assert {k for k in v10 if k.startswith("data/")} - set(v11) == {"data/images/scene-002.bin"}
    assert set(v11) - set(v10) == {"data/images/scene-003.bin"}
    assert v10["data/README.txt"] != v11["data/README.txt"]
    assert v10["labels.csv"] != v11["labels.csv"]
    for tag in local_ds.tags:
        assert local_ds.outs[tag]["labels.csv"]["size"] == len(local_ds.contents[tag]["labels.csv"])
        assert local_ds.outs[tag]["data"]["size"] == sum(
            len(d) for p, d in local_ds.contents[tag].items() if p.startswith("data/"))
    assert local_ds.outs["v1.0"]["data"]["md5"] != local_ds.outs["v1.1"]["data"]["md5"]
    assert local_ds.diff_workspace(local_ds.path, "v1.1") == []
    assert local_ds.diff_workspace(local_ds.path, "v1.0") != []
    # the committed config names the remote, the credentials stay in config.local
    committed = s3_ds.git_files["v1.1"][".dvc/config"].decode()
    assert "s3://dvc/datasets/s3-ds" in committed
    assert s3.secret_access_key not in committed and "endpointurl" not in committed
    assert s3.secret_access_key in (s3_ds.path / ".dvc" / "config.local").read_text()
    assert not (s3_ds.bare / "config.local").exists()
    assert any(k.startswith("datasets/s3-ds/files/md5/") for k in s3.list_keys("datasets/"))


def test_dataset_repos_are_deterministic(local_ds, env, tmp_path):
    again = make_dataset_repo(tmp_path, "local-ds", str(tmp_path / "remote"), env=env,
                              title="Local dataset")
    assert again.outs == local_ds.outs and again.md5s == local_ds.md5s
    # the remote path is in the committed config: same remote, same commits
    same = make_dataset_repo(tmp_path, "other", str(local_ds.remote_url), env=env,
                             title="Local dataset")
    assert same.commits == local_ds.commits


@pytest.mark.parametrize("tag", ["v1.0", "v1.1"])
def test_dvc_pull_from_local_remote_in_a_fresh_clone(server, local_ds, env, tmp_path, tag):
    dest = tmp_path / "clone"
    clone(server, LOCAL_ID, dest, env, ref=tag)
    assert not (dest / "data").exists()
    run_dvc(dest, ["pull", "-q"], env=env)
    assert local_ds.diff_workspace(dest, tag) == []
    for path, data in local_ds.contents[tag].items():
        assert (dest / path).read_bytes() == data


@pytest.mark.parametrize("tag", ["v1.0", "v1.1"])
def test_dvc_pull_from_s3_remote_in_a_fresh_clone(server, s3_ds, s3, env, tmp_path, tag):
    dest = tmp_path / "clone"
    clone(server, S3_ID, dest, env, ref=tag)
    configure_remote(dest, s3.dvc_config(), env=env)
    run_dvc(dest, ["pull", "-q"], env=env)
    assert s3_ds.diff_workspace(dest, tag) == []
    for path, data in s3_ds.contents[tag].items():
        assert (dest / path).read_bytes() == data


def test_dvc_checkout_between_versions(local_ds, env, tmp_path):
    dest = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(local_ds.bare), str(dest), env=env)
    run_dvc(dest, ["pull", "-q"], env=env)
    assert local_ds.diff_workspace(dest, "v1.1") == []
    run_git(dest, "checkout", "-q", "v1.0", env=env)
    run_dvc(dest, ["pull", "-q"], env=env)  # fetches v1.0's objects, then checks them out
    assert local_ds.diff_workspace(dest, "v1.0") == []  # scene-003 gone, scene-002 back
    run_git(dest, "checkout", "-q", "main", env=env)
    run_dvc(dest, ["checkout", "-q"], env=env)  # both versions are in the cache now
    assert local_ds.diff_workspace(dest, "v1.1") == []


def test_big_dataset_with_tiny_numbers(env, tmp_path):
    big = make_big_dataset(tmp_path, "big", str(tmp_path / "remote"), n_files=25,
                           total_bytes=50_000, files_per_dir=10, keep_contents=True, env=env)
    assert big.tags == ["v1.0"]
    assert big.outs["v1.0"]["data"]["nfiles"] == 25
    assert big.outs["v1.0"]["data"]["size"] == 50_000
    assert sum(len(d) for d in big.contents["v1.0"].values()) == 50_000
    assert len({p.rsplit("/", 1)[0] for p in big.md5s["v1.0"]}) == 3
    dest = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(big.bare), str(dest), env=env)
    run_dvc(dest, ["pull", "-q"], env=env)
    assert big.diff_workspace(dest, "v1.0") == []


def test_seaweed_enforces_credentials(s3):
    assert s3.request("GET", f"/{s3.bucket}", sign=False)[0] == 403
    assert s3.request("GET", f"/{s3.bucket}", secret_access_key="wrong")[0] == 403
    s3.put_object("probe/hello.txt", b"hello")
    assert s3.get_object("probe/hello.txt") == b"hello"
    assert "probe/hello.txt" in s3.list_keys("probe/")
    assert s3.running and s3.endpoint_url == f"http://127.0.0.1:{s3.port}"
