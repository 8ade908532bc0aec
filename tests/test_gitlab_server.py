"""Tests of the GitLab API test server (tests/support/gitlab_server.py), over real HTTP."""

from __future__ import annotations

import base64
import io
import subprocess
import threading
import zipfile
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import gitlab
import pytest
import requests
import yaml

from tests.support.git_repos import run_git, tool_env
from tests.support.gitlab_server import (
    CATEGORY_TOPICS,
    FakeProject,
    GitLabTestServer,
    make_synthetic_projects,
)
from tests.support.polling import poll

UTC = timezone.utc
TOKEN = "secret-token"
AUTH = {"PRIVATE-TOKEN": TOKEN}
BIG_ID, PRIVATE_ID, INTERNAL_ID = 9001, 9002, 9003


def _big_project() -> FakeProject:
    files: dict[str, bytes | str] = {
        "README.md": "---\ntitle: Big\n---\n# Big project\n",
        "docs/README.md": "# Docs\n",
        ".dvc/config": "[core]\n    remote = storage\n['remote \"storage\"']\n"
                       "    url = s3://bucket/big\n",
        "data.dvc": "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 42\n"
                    "  hash: md5\n  path: data\n",
        "LICENSE": "MIT License\n",
        "weights.bin": bytes(range(256)),
    }
    for i in range(130):
        files[f"src/pkg{i // 20}/mod_{i}.py"] = f"X = {i}\n"
    return FakeProject(
        id=BIG_ID,
        path_with_namespace="group/sub/proj",
        name="Big project",
        description="A project with many files",
        topics=["sharinghub:dataset", "sharinghub:aimodel"],
        files=files,
        license="mit",
        created_at=datetime(2023, 1, 1, tzinfo=UTC),
        last_activity_at=datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC),
        tags=[{"name": "v1.0.0", "message": "Release 1.0",
               "created_at": datetime(2024, 5, 1, tzinfo=UTC)}],
        releases=[{"tag_name": "v1.0.0", "name": "First", "description": "Notes",
                   "released_at": datetime(2024, 5, 1, tzinfo=UTC)}],
        star_count=5,
    )


@pytest.fixture(scope="module")
def corpus() -> list[FakeProject]:
    return [
        *make_synthetic_projects(240, seed=7, active_recently_fraction=0.1),
        _big_project(),
        FakeProject(id=PRIVATE_ID, path_with_namespace="secret/private-proj",
                    visibility="private", topics=["sharinghub:dataset"],
                    files={"README.md": "# Private\n"}),
        FakeProject(id=INTERNAL_ID, path_with_namespace="corp/internal-proj",
                    visibility="internal", topics=["sharinghub:dataset"],
                    files={"README.md": "# Internal\n"}),
    ]


@pytest.fixture
def server(corpus: list[FakeProject]):
    with GitLabTestServer(corpus) as srv:
        yield srv
        assert srv.errors == []


@pytest.fixture
def gl(server: GitLabTestServer) -> gitlab.Gitlab:
    return gitlab.Gitlab(server.url, private_token=TOKEN)


@pytest.fixture
def anon(server: GitLabTestServer) -> gitlab.Gitlab:
    return gitlab.Gitlab(server.url)


# ---- listing and pagination --------------------------------------------------------------


def test_list_all_projects_exactly_once(server, gl, corpus):
    ids = [p.id for p in gl.projects.list(iterator=True, per_page=100)]
    assert len(ids) == len(corpus) > 200
    assert sorted(ids) == sorted(p.id for p in corpus)
    assert server.count("projects") == 3


def test_list_by_topic_with_iterator(server, gl, corpus):
    topic = "sharinghub:dataset"
    expected = {p.id for p in corpus if topic in p.topics}
    assert len(expected) > 20  # several default-size pages
    got = [p.id for p in gl.projects.list(topic=topic, iterator=True)]
    assert len(got) == len(set(got)) and set(got) == expected
    pages = server.count("projects")
    assert pages == -(-len(expected) // 20)
    both = {p.id for p in corpus if {"sharinghub:dataset", "sharinghub:aimodel"} <= set(p.topics)}
    got = {p.id for p in gl.projects.list(topic="sharinghub:dataset,sharinghub:aimodel",
                                          get_all=True)}
    assert got == both and BIG_ID in both


def test_more_than_100_matching_a_topic(corpus):
    projects = make_synthetic_projects(130, seed=3)
    for p in projects:
        p.topics = [*p.topics, "bench"]
    with GitLabTestServer(projects) as srv:
        client = gitlab.Gitlab(srv.url, private_token=TOKEN)
        got = [p.id for p in client.projects.list(topic="bench", iterator=True, per_page=100)]
        assert sorted(got) == list(range(1, 131))
        assert srv.count("/projects") == 2


def test_pagination_headers_and_links(server, corpus):
    r = requests.get(f"{server.api_url}/projects", headers=AUTH,
                     params={"per_page": 7, "page": 2, "order_by": "id", "sort": "asc",
                             "simple": "true"})
    assert r.status_code == 200
    total = len(corpus)
    h = r.headers
    assert (h["X-Page"], h["X-Per-Page"], h["X-Prev-Page"], h["X-Next-Page"]) == ("2", "7", "1",
                                                                                  "3")
    assert h["X-Total"] == str(total) and h["X-Total-Pages"] == str(-(-total // 7))
    assert set(r.links) == {"prev", "next", "first", "last"}
    nxt = r.links["next"]["url"]
    assert nxt.startswith(server.api_url + "/projects?")
    assert "order_by=id" in nxt and "simple=true" in nxt and "page=3" in nxt
    assert [p["id"] for p in r.json()] == sorted(p.id for p in corpus)[7:14]
    assert "visibility" not in r.json()[0]  # simple representation
    last = requests.get(r.links["last"]["url"], headers=AUTH)
    assert last.headers["X-Next-Page"] == "" and "next" not in last.links
    beyond = requests.get(f"{server.api_url}/projects", headers=AUTH, params={"page": 999})
    assert beyond.json() == []


def test_ordering_and_filters(server, gl, corpus):
    rows = gl.projects.list(order_by="last_activity_at", sort="desc", get_all=True)
    stamps = [r.last_activity_at for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[0].endswith("Z") and len(stamps[0]) == len("2024-01-01T00:00:00.000Z")
    cutoff = datetime.now(UTC) - timedelta(hours=2)
    recent = {p.id for p in gl.projects.list(last_activity_after=cutoff.isoformat(),
                                             get_all=True)}
    assert recent == {p.id for p in corpus if p.last_activity_at > cutoff}
    assert len(recent) == 24  # 10% of the 240 synthetic projects
    private = gl.projects.list(visibility="private", get_all=True)
    assert [p.id for p in private] == [PRIVATE_ID]
    found = gl.projects.list(search="Big proj", get_all=True)
    assert [p.id for p in found] == [BIG_ID]
    r = requests.get(f"{server.api_url}/projects", headers=AUTH, params={"order_by": "nope"})
    assert r.status_code == 400


def test_keyset_pagination(server, gl, corpus):
    got = [p.id for p in gl.projects.list(pagination="keyset", order_by="id", sort="asc",
                                          per_page=50, iterator=True)]
    assert got == sorted(p.id for p in corpus)


# ---- auth and visibility -----------------------------------------------------------------


def test_visibility_without_and_with_token(anon, gl, corpus):
    public = {p.id for p in corpus if p.visibility == "public"}
    assert {p.id for p in anon.projects.list(get_all=True)} == public
    for pid in (PRIVATE_ID, INTERNAL_ID, "secret/private-proj"):
        with pytest.raises(gitlab.GitlabGetError) as exc:
            anon.projects.get(pid)
        assert exc.value.response_code == 404
        assert exc.value.error_message == "404 Project Not Found"
    assert anon.projects.get(BIG_ID).visibility == "public"
    assert {p.id for p in gl.projects.list(get_all=True)} == {p.id for p in corpus}
    assert gl.projects.get(PRIVATE_ID).visibility == "private"
    assert gl.projects.get("corp/internal-proj").id == INTERNAL_ID


def test_anonymous_listing_is_simple(anon):
    row = anon.projects.list(get_all=False, per_page=1)[0]
    assert "visibility" not in row.attributes and "topics" in row.attributes


def test_bad_token_is_401_everywhere(server):
    bad = gitlab.Gitlab(server.url, private_token="wrong")
    with pytest.raises(gitlab.GitlabAuthenticationError):
        bad.auth()
    with pytest.raises(gitlab.GitlabAuthenticationError) as exc:
        bad.projects.list(get_all=True)
    assert exc.value.response_code == 401
    for path in ("/projects", f"/projects/{BIG_ID}", "/version", "/nope"):
        r = requests.get(server.api_url + path, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json() == {"message": "401 Unauthorized"}
    r = requests.get(f"{server.api_url}/projects/{PRIVATE_ID}",
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200


def test_user_version_and_unknown_route(server, gl):
    gl.auth()
    assert gl.user.username == "user"
    assert gl.version()[0] != "unknown"
    r = requests.get(f"{server.api_url}/groups", headers=AUTH)
    assert r.status_code == 404 and r.json() == {"error": "404 Not Found"}
    assert requests.get(f"{server.api_url}/user").status_code == 401


# ---- project, files, tree ----------------------------------------------------------------


def test_project_shape_and_license(server, gl):
    p = gl.projects.get(BIG_ID)
    assert p.path_with_namespace == "group/sub/proj" and p.path == "proj"
    assert p.namespace["full_path"] == "group/sub" and p.namespace["kind"] == "group"
    assert p.topics == p.tag_list == ["sharinghub:dataset", "sharinghub:aimodel"]
    assert p.last_activity_at == "2024-06-01T12:00:00.123Z"
    assert p.web_url == f"{server.url}/group/sub/proj"
    assert p.readme_url == f"{server.url}/group/sub/proj/-/blob/main/README.md"
    assert p.http_url_to_repo.endswith("/group/sub/proj.git")
    assert "license" not in p.attributes
    lic = gl.projects.get(BIG_ID, license=True)
    assert lic.license["key"] == "mit" and lic.license["name"] == "MIT License"
    assert lic.license_url == f"{server.url}/group/sub/proj/-/blob/main/LICENSE"
    assert gl.projects.get("group/sub/proj").id == BIG_ID
    plain = requests.get(f"{server.api_url}/projects/group%2Fsub%2Fproj", headers=AUTH)
    assert plain.json()["id"] == BIG_ID


def test_raw_files(server, gl):
    p = gl.projects.get(BIG_ID, lazy=True)
    assert p.files.raw("README.md", ref="main").startswith(b"---\ntitle: Big")
    assert p.files.raw("docs/README.md", ref="main") == b"# Docs\n"
    assert p.files.raw(".dvc/config", ref="v1.0.0").startswith(b"[core]")
    assert p.files.raw("weights.bin") == bytes(range(256))
    assert server.count(lambda r: r.path.endswith("/.dvc%2Fconfig/raw")) == 1
    with pytest.raises(gitlab.GitlabGetError) as exc:
        p.files.raw("missing.txt", ref="main")
    assert exc.value.response_code == 404 and exc.value.error_message == "404 File Not Found"
    with pytest.raises(gitlab.GitlabGetError):
        p.files.raw("README.md", ref="no-such-branch")
    f = p.files.get("docs/README.md", ref="main")
    assert f.decode() == b"# Docs\n" and f.encoding == "base64"
    assert f.last_commit_id == f.commit_id == server.project(BIG_ID).head_commit
    blob = p.repository_raw_blob(f.blob_id)
    assert blob == b"# Docs\n"


def test_recursive_tree_over_100_files(server, gl):
    p = gl.projects.get(BIG_ID, lazy=True)
    tree = p.repository_tree(recursive=True, get_all=True)
    blobs = {e["path"] for e in tree if e["type"] == "blob"}
    trees = {e["path"] for e in tree if e["type"] == "tree"}
    assert blobs == set(server.project(BIG_ID).files)
    assert len(blobs) > 100
    assert {"docs", ".dvc", "src", "src/pkg0", "src/pkg6"} <= trees
    assert len(tree) == len({e["path"] for e in tree})
    assert server.count("tree") == -(-len(tree) // 20)
    top = p.repository_tree(get_all=True)
    assert [e["name"] for e in top][:3] == [".dvc", "docs", "src"]  # trees first
    sub = p.repository_tree(path="src/pkg0", get_all=True)
    assert len(sub) == 20 and all(e["path"].startswith("src/pkg0/") for e in sub)
    entry = next(e for e in tree if e["path"] == "docs/README.md")
    assert set(entry) == {"id", "name", "type", "path", "mode"} and entry["mode"] == "100644"


def test_tags_releases_branches_commits(server, gl):
    p = gl.projects.get(BIG_ID, lazy=True)
    head = server.project(BIG_ID).head_commit
    tags = p.tags.list(get_all=True)
    assert [t.name for t in tags] == ["v1.0.0"]
    assert tags[0].commit["id"] == head and tags[0].message == "Release 1.0"
    assert tags[0].release == {"tag_name": "v1.0.0", "description": "Notes"}
    releases = p.releases.list(get_all=True)
    assert [r.tag_name for r in releases] == ["v1.0.0"]
    rel = releases[0]
    assert rel.name == "First" and rel.released_at == "2024-05-01T00:00:00.000Z"
    assert {s["format"] for s in rel.assets["sources"]} >= {"zip", "tar.gz"}
    branch = p.branches.get("main")
    assert branch.default is True and branch.commit["id"] == head
    commits = p.commits.list(ref_name="main", get_all=False)
    assert commits[0].id == head
    assert p.commits.get(head[:10]).id == head
    with pytest.raises(gitlab.GitlabGetError):
        p.branches.get("nope")


def test_archive_zip(server, gl):
    p = gl.projects.get(BIG_ID, lazy=True)
    data = p.repository_archive(format="zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = {n.split("/", 1)[1] for n in zf.namelist()}
        assert names == set(server.project(BIG_ID).files)


def test_synthetic_project_dvc_release(server, gl, corpus):
    with_dvc = next(p for p in corpus if "data.dvc" in p.files)
    proj = gl.projects.get(with_dvc.id, lazy=True)
    dvc = yaml.safe_load(proj.files.raw("data.dvc", ref="main"))
    out = dvc["outs"][0]
    assert out["hash"] == "md5" and out["path"] == "data" and len(out["md5"]) == 32
    assert "s3://" in proj.files.raw(".dvc/config", ref="main").decode()
    released = next(p for p in corpus if p.releases)
    proj = gl.projects.get(released.id, lazy=True)
    assert [r.tag_name for r in proj.releases.list(get_all=True)] == ["v1.0.0"]
    assert [t.name for t in proj.tags.list(get_all=True)] == ["v1.0.0", "v0.1.0"]
    assert len(proj.commits.list(get_all=True)) == 2


# ---- mutations ---------------------------------------------------------------------------


def test_push_and_mutations(server, gl):
    p = gl.projects.get(BIG_ID, lazy=True)
    before = gl.projects.get(BIG_ID)
    old_head = server.project(BIG_ID).head_commit
    sha = server.push(BIG_ID, {"docs/README.md": "# Docs v2\n", "new/file.txt": b"x"},
                      removed=["weights.bin"], touch_activity=False)
    assert sha != old_head and len(sha) == 40
    assert p.files.raw("docs/README.md", ref="main") == b"# Docs v2\n"
    assert p.files.raw("docs/README.md", ref=old_head) == b"# Docs\n"
    assert p.files.raw("docs/README.md", ref="v1.0.0") == b"# Docs\n"
    with pytest.raises(gitlab.GitlabGetError):
        p.files.raw("weights.bin", ref="main")
    after = gl.projects.get(BIG_ID)
    assert after.last_activity_at == before.last_activity_at
    assert p.branches.get("main").commit["id"] == sha
    assert [c.id for c in p.commits.list(ref_name="main", get_all=True)][:2] == [sha, old_head]
    assert [c.id for c in p.commits.list(query_parameters={"path": "new/file.txt"},
                                           get_all=True)] == [sha]

    server.push(BIG_ID, {"README.md": "# touched\n"})
    touched = gl.projects.get(BIG_ID)
    assert touched.last_activity_at > before.last_activity_at

    server.add_tag(BIG_ID, "v2.0.0", message="Two")
    server.add_release(BIG_ID, "v2.0.0", description="Second")
    server.add_release(BIG_ID, "v3.0.0")  # creates its tag
    assert [r.tag_name for r in p.releases.list(get_all=True)][:2] == ["v3.0.0", "v2.0.0"]
    assert {t.name for t in p.tags.list(get_all=True)} == {"v1.0.0", "v2.0.0", "v3.0.0"}

    server.set_topics(BIG_ID, ["sharinghub:tools"])
    assert gl.projects.get(BIG_ID).topics == ["sharinghub:tools"]
    server.update_project(BIG_ID, description="changed", visibility="private")
    assert gl.projects.get(BIG_ID).description == "changed"
    with pytest.raises(gitlab.GitlabGetError):
        gitlab.Gitlab(server.url).projects.get(BIG_ID)

    server.remove_project(BIG_ID)
    with pytest.raises(gitlab.GitlabGetError):
        gl.projects.get(BIG_ID)
    assert BIG_ID not in {x.id for x in gl.projects.list(get_all=True)}
    server.add_project(FakeProject(id=5000, path_with_namespace="new/one",
                                   topics=["sharinghub:space"], files={"README.md": "hi"}))
    assert gl.projects.get("new/one").topics == ["sharinghub:space"]


def test_server_copies_projects(corpus):
    original = next(p for p in corpus if p.id == BIG_ID)
    head = original.head_commit
    with GitLabTestServer(corpus) as srv:
        srv.push(BIG_ID, {"README.md": "# changed\n"})
        srv.set_topics(BIG_ID, [])
    assert original.head_commit == head and original.topics


# ---- faults, counting, latency -----------------------------------------------------------


def test_random_faults_with_retries_complete(server, corpus):
    server.fault_rate = 0.3
    client = gitlab.Gitlab(server.url, private_token=TOKEN, retry_transient_errors=True)
    ids = [p.id for p in client.projects.list(iterator=True, per_page=20)]
    assert sorted(ids) == sorted(p.id for p in corpus)
    pages = -(-len(corpus) // 20)
    faulted = [r for r in server.requests if r.faulted]
    assert faulted and len(server.requests) == pages + len(faulted)
    assert {r.status for r in faulted} <= {500, 502, 503, 429}
    assert server.count("projects", status=200) == pages


def test_faults_are_deterministic(corpus):
    def statuses() -> list[int | None]:
        with GitLabTestServer(corpus[:5], fault_rate=0.5, fault_seed=42) as srv:
            for _ in range(20):
                requests.get(f"{srv.api_url}/projects/1", headers=AUTH)
            return [r.status for r in srv.requests]

    first = statuses()
    assert first == statuses() and 200 in first and len(set(first)) > 1


def test_fault_without_retry_raises(server, gl):
    server.fail_next("/projects", 503)
    with pytest.raises(gitlab.GitlabListError) as exc:
        gl.projects.list(get_all=True)
    assert exc.value.response_code == 503
    assert len(gl.projects.list(get_all=True)) > 0


def test_fail_next_and_retry_after(server):
    server.retry_after = 7
    server.fail_next(lambda r: r.endpoint == "file_raw" and r.project == BIG_ID, 429, times=2)
    url = f"{server.api_url}/projects/{BIG_ID}/repository/files/README.md/raw"
    for _ in range(2):
        r = requests.get(url, headers=AUTH)
        assert r.status_code == 429 and r.headers["Retry-After"] == "7"
        assert r.headers["RateLimit-Remaining"] == "0"
    assert requests.get(url, headers=AUTH).status_code == 200
    assert requests.get(f"{server.api_url}/projects/{BIG_ID}", headers=AUTH).status_code == 200
    server.fail_next("tree", 502, times=1)
    r = requests.get(f"{server.api_url}/projects/{BIG_ID}/repository/tree", headers=AUTH)
    assert r.status_code == 502
    assert [x.status for x in server.requests] == [429, 429, 200, 200, 502]


def test_python_gitlab_obeys_429(server, gl):
    server.fail_next("project", 429, times=2)
    assert gl.projects.get(BIG_ID).id == BIG_ID
    assert server.count("project") == 3 and server.count("project", status=429) == 2


def test_request_counting(server, gl):
    p = gl.projects.get(BIG_ID)
    p.files.raw("README.md", ref="main")
    p.repository_tree(get_all=True)
    gl.projects.get("group/sub/proj")
    assert server.count() == 4
    assert server.count("/projects/") == 4 and server.count("/api/v4/projects") == 4
    assert server.count(project=BIG_ID) == 4 and server.count(project="group/sub/proj") == 4
    assert server.count("project") == 2 and server.count("file_raw") == 1
    assert server.count(lambda r: r.query.get("ref") == "main") == 1
    rec = next(r for r in server.requests if r.endpoint == "file_raw")
    assert rec.method == "GET" and rec.status == 200 and rec.token == TOKEN
    assert rec.path == f"/api/v4/projects/{BIG_ID}/repository/files/README.md/raw"
    assert rec.query == {"ref": "main"}
    endpoints = Counter(r.endpoint for r in server.requests)
    assert endpoints == {"project": 2, "file_raw": 1, "tree": 1}
    server.reset_requests()
    assert server.count() == 0 and server.requests == []


def test_latency_is_concurrent(corpus):
    """Requests are served side by side, each with its latency: all ten are inside the
    server at once (held there), then all answer."""
    with GitLabTestServer(corpus[:20], latency=0.2) as srv:
        results: list[int] = []
        lock = threading.Lock()

        def fetch(pid: int) -> None:
            r = requests.get(f"{srv.api_url}/projects/{pid}", headers=AUTH, timeout=30)
            with lock:
                results.append(r.status_code)

        hold = srv.hold()
        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(1, 11)]
        try:
            for t in threads:
                t.start()
            poll(lambda: hold.waiting == 10, "ten requests in the server at once")
        finally:
            hold.release()
        for t in threads:
            t.join(30)
        assert results == [200] * 10


def test_stop_is_idempotent_and_frees_port(corpus):
    srv = GitLabTestServer(corpus[:3]).start()
    url = srv.url
    assert requests.get(f"{url}/api/v4/projects", timeout=5).status_code == 200
    srv.stop()
    srv.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/v4/projects", timeout=5)


# ---- synthetic corpus --------------------------------------------------------------------


def test_synthetic_corpus_properties():
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    projects = make_synthetic_projects(400, seed=11, active_recently_fraction=0.05, now=now)
    again = make_synthetic_projects(400, seed=11, active_recently_fraction=0.05, now=now)
    assert [(p.path_with_namespace, p.topics, p.files, p.head_commit) for p in projects] == \
        [(p.path_with_namespace, p.topics, p.files, p.head_commit) for p in again]
    assert len({p.path_with_namespace for p in projects}) == 400
    assert len({p.id for p in projects}) == 400
    no_topic = sum(1 for p in projects if not p.topics)
    assert 5 <= no_topic <= 40
    assert sum(1 for p in projects if len(set(p.topics) & set(CATEGORY_TOPICS)) == 2) > 30
    recent = [p for p in projects if p.last_activity_at > now - timedelta(hours=1)]
    assert len(recent) == 20
    assert all(p.last_activity_at < now - timedelta(days=1) for p in projects
               if p not in recent)
    assert all(p.created_at < p.last_activity_at for p in projects)
    for p in projects:
        text = p.files["README.md"]
        assert isinstance(text, str)
        meta = yaml.safe_load(text.split("---\n")[1])
        assert meta["title"] and meta["description"]
        assert len(meta["extent"]["spatial"]) == 4 and len(meta["extent"]["temporal"]) == 2
    dvc = [p for p in projects if "data.dvc" in p.files]
    assert len(dvc) > 40 and all(".dvc/config" in p.files for p in dvc)
    assert sum(1 for p in projects if p.license) > 200
    assert sum(1 for p in projects if p.releases) > 50


def test_file_json_base64_roundtrip(server):
    r = requests.get(f"{server.api_url}/projects/{BIG_ID}/repository/files/weights.bin",
                     headers=AUTH, params={"ref": "main"})
    assert r.status_code == 200
    assert base64.b64decode(r.json()["content"]) == bytes(range(256))
    assert r.headers["X-Gitlab-File-Path"] == "weights.bin"
    head = requests.head(f"{server.api_url}/projects/{BIG_ID}/repository/files/weights.bin",
                         headers=AUTH, params={"ref": "main"})
    assert head.status_code == 200 and head.headers["X-Gitlab-Size"] == "256"
    missing_ref = requests.get(f"{server.api_url}/projects/{BIG_ID}/repository/files/a.txt",
                               headers=AUTH)
    assert missing_ref.status_code == 400


# ---- writes: creating projects, pushing to them, read-only users ---------------------------

READER_TOKEN = "reader-token"
GROUP_ID, SUBGROUP_ID = 11, 12


@pytest.fixture
def wserver():
    """A writer (``user``) and a read-only user (``viewer``); groups ``eo-lab`` and
    ``eo-lab/models`` exist through their projects."""
    projects = [FakeProject(id=GROUP_ID, path_with_namespace="eo-lab/existing",
                            files={"README.md": "# Existing\n"}),
                FakeProject(id=SUBGROUP_ID, path_with_namespace="eo-lab/models/old",
                            files={"README.md": "# Old\n"})]
    with GitLabTestServer(projects, tokens={TOKEN: "user", READER_TOKEN: "viewer"},
                          readers=["viewer"]) as srv:
        yield srv
        assert srv.errors == [] and srv.git_errors == []


@pytest.fixture
def wgl(wserver: GitLabTestServer) -> gitlab.Gitlab:
    return gitlab.Gitlab(wserver.url, private_token=TOKEN)


@pytest.fixture
def reader(wserver: GitLabTestServer) -> gitlab.Gitlab:
    return gitlab.Gitlab(wserver.url, private_token=READER_TOKEN)


@pytest.fixture
def genv(tmp_path: Path) -> dict[str, str]:
    return tool_env(tmp_path / "home")


def _git(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False, timeout=60)


def _commit_and_push(server: GitLabTestServer, key: int, work: Path, env: dict[str, str],
                     files: dict[str, str], tag: str | None = None, *,
                     token: str = TOKEN) -> tuple[subprocess.CompletedProcess[str], str]:
    """Clone ``key`` into ``work`` (if not there yet), commit ``files``, tag, and push the
    commit (to ``main``) and the tag over HTTP with ``token``: (push result, commit sha)."""
    if not work.exists():
        run_git(work.parent, "clone", "-q", server.clone_url(key, token), str(work), env=env)
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    run_git(work, "add", "-A", env=env)
    run_git(work, "commit", "-q", "-m", f"Add {', '.join(files)}", env=env)
    if tag:
        run_git(work, "tag", "-a", tag, "-m", f"Version {tag}", env=env)
    sha = run_git(work, "rev-parse", "HEAD", env=env).decode().strip()
    pushed = _git(work, "push", "-q", server.clone_url(key, token), "HEAD:refs/heads/main",
                  *([tag] if tag else []), env=env)
    return pushed, sha


def test_create_project_clone_it_empty_push_and_read_it_back(wserver, wgl, genv, tmp_path):
    created = wgl.projects.create({"name": "Flood model", "path": "flood-model",
                                   "namespace_id": "eo-lab/models",
                                   "description": "A flood model",
                                   "topics": ["sharinghub:aimodel", "flood"],
                                   "visibility": "public"})
    assert wserver.count("projects", method="POST", status=201) == 1
    pid = created.id
    assert pid > SUBGROUP_ID
    assert created.path_with_namespace == "eo-lab/models/flood-model"
    assert created.name == "Flood model" and created.description == "A flood model"
    assert created.topics == ["sharinghub:aimodel", "flood"] and created.visibility == "public"
    assert created.namespace["full_path"] == "eo-lab/models"
    assert created.namespace["kind"] == "group"
    assert created.default_branch == "main" and created.empty_repo is True
    assert created.http_url_to_repo == wserver.clone_url(pid)
    assert created.permissions["project_access"]["access_level"] == 40
    assert created.readme_url is None
    same = wgl.projects.get("eo-lab/models/flood-model")
    assert same.attributes == created.attributes
    repo_dir = wserver.git_project_repo(pid)
    assert run_git(repo_dir, "rev-parse", "--is-bare-repository").strip() == b"true"
    assert run_git(repo_dir, "for-each-ref").strip() == b""

    # the repository endpoints and listings answer for the empty repository, as GitLab does
    proj = wgl.projects.get(pid, lazy=True)
    assert proj.branches.list(get_all=True) == [] and proj.tags.list(get_all=True) == []
    assert proj.commits.list(get_all=True) == []
    for call in (lambda: proj.branches.get("main"), lambda: proj.files.raw("README.md"),
                 lambda: proj.files.get("README.md", ref="main"), lambda: proj.commits.get("main"),
                 lambda: proj.repository_tree(get_all=True)):
        with pytest.raises(gitlab.GitlabError) as exc:
            call()
        assert exc.value.response_code == 404
    listed = {p.id: p for p in wgl.projects.list(get_all=True)}
    assert set(listed) == {GROUP_ID, SUBGROUP_ID, pid} and listed[pid].empty_repo is True
    assert pid in {p.id for p in wgl.projects.list(topic="flood", get_all=True)}

    # an empty clone, a commit and a tag pushed over HTTP with the token
    work = tmp_path / "work"
    clone = _git(tmp_path, "clone", created.http_url_to_repo.replace(
        "http://", f"http://oauth2:{TOKEN}@"), str(work), env=genv)
    assert clone.returncode == 0 and "empty repository" in clone.stderr
    readme = "---\ntitle: Flood model\n---\n# Flood model\n"
    pushed, sha = _commit_and_push(wserver, pid, work, genv, {"README.md": readme}, "v1.0")
    assert pushed.returncode == 0, pushed.stderr
    assert run_git(repo_dir, "rev-parse", "main").decode().strip() == sha
    assert wserver.count("git", method="POST", status=200, project=pid) >= 1

    assert proj.files.raw("README.md", ref="main").decode() == readme
    assert proj.files.raw("README.md", ref="v1.0").decode() == readme
    (tag,) = proj.tags.list(get_all=True)
    assert tag.name == "v1.0" and tag.commit["id"] == sha and tag.message == "Version v1.0"
    (branch,) = proj.branches.list(get_all=True)
    assert branch.name == "main" and branch.default is True and branch.commit["id"] == sha
    assert [c.id for c in proj.commits.list(get_all=True)] == [sha]
    assert [e["path"] for e in proj.repository_tree(get_all=True)] == ["README.md"]
    after = wgl.projects.get(pid)
    assert after.empty_repo is False and after.readme_url.endswith("/-/blob/main/README.md")
    assert wserver.project(pid).head_commit == sha


def test_create_in_a_group_by_id_and_in_the_personal_namespace(wserver, wgl, anon_w):
    group = wgl.namespaces.get("eo-lab")
    assert (group.kind, group.full_path, group.path) == ("group", "eo-lab", "eo-lab")
    assert wgl.namespaces.get(group.id).full_path == "eo-lab"
    sub = wgl.namespaces.get("eo-lab/models")
    assert sub.parent_id == group.id and sub.projects_count == 1
    by_id = wgl.projects.create({"name": "Crop Dataset 2024", "namespace_id": group.id,
                                 "tag_list": ["sharinghub:dataset"]})
    assert by_id.path_with_namespace == "eo-lab/crop-dataset-2024"
    assert by_id.topics == ["sharinghub:dataset"] and by_id.visibility == "private"
    assert by_id.namespace["id"] == group.id

    own = wgl.namespaces.get("user")
    assert (own.kind, own.full_path) == ("user", "user")
    mine = wgl.projects.create({"path": "scratch", "initialize_with_readme": True,
                                "default_branch": "trunk"})
    assert mine.path_with_namespace == "user/scratch" and mine.name == "scratch"
    assert mine.namespace["kind"] == "user" and mine.namespace["id"] == own.id
    assert mine.owner["username"] == "user"
    assert mine.empty_repo is False and mine.default_branch == "trunk"
    proj = wgl.projects.get(mine.id, lazy=True)
    assert proj.files.raw("README.md", ref="trunk") == b"# scratch\n"
    assert [b.name for b in proj.branches.list(get_all=True)] == ["trunk"]
    repo = wserver.git_project_repo(mine.id)
    assert run_git(repo, "symbolic-ref", "HEAD").strip() == b"refs/heads/trunk"

    for missing in ("nope", "eo-lab/nope", "999999"):
        with pytest.raises(gitlab.GitlabGetError) as exc:
            wgl.namespaces.get(missing)
        assert exc.value.response_code == 404
    with pytest.raises(gitlab.GitlabCreateError) as exc:
        wgl.projects.create({"name": "x", "namespace_id": "nope"})
    assert exc.value.response_code == 404
    with pytest.raises(gitlab.GitlabCreateError) as exc:
        wgl.projects.create({"name": "x", "namespace_id": "viewer"})  # someone else's
    assert exc.value.response_code == 404
    with pytest.raises(gitlab.GitlabAuthenticationError) as exc:
        anon_w.namespaces.get("eo-lab")
    assert exc.value.response_code == 401
    with pytest.raises(ValueError):
        wserver.git_project_repo(GROUP_ID)  # not git-backed


@pytest.fixture
def anon_w(wserver: GitLabTestServer) -> gitlab.Gitlab:
    return gitlab.Gitlab(wserver.url)


def test_create_errors_duplicate_path_form_data_and_auth(wserver, wgl, anon_w):
    wgl.projects.create({"name": "dup", "namespace_id": "eo-lab"})
    with pytest.raises(gitlab.GitlabCreateError) as exc:
        wgl.projects.create({"name": "dup", "namespace_id": "eo-lab"})
    assert exc.value.response_code == 400
    assert exc.value.error_message == {"path": ["has already been taken"],
                                       "name": ["has already been taken"]}
    with pytest.raises(gitlab.GitlabCreateError) as exc:
        wgl.projects.create({"name": "Other name", "path": "DUP", "namespace_id": "eo-lab"})
    assert exc.value.error_message == {"path": ["has already been taken"]}
    dup_elsewhere = wgl.projects.create({"name": "dup", "namespace_id": "eo-lab/models"})
    assert dup_elsewhere.path_with_namespace == "eo-lab/models/dup"
    with pytest.raises(gitlab.GitlabCreateError) as exc:
        wgl.projects.create({"description": "no name"})
    assert exc.value.response_code == 400
    with pytest.raises(gitlab.GitlabCreateError) as exc:
        wgl.projects.create({"name": "bad", "visibility": "secret"})
    assert exc.value.response_code == 400
    with pytest.raises(gitlab.GitlabAuthenticationError) as exc:
        anon_w.projects.create({"name": "anonymous"})
    assert exc.value.response_code == 401

    form = requests.post(f"{wserver.api_url}/projects", headers=AUTH, timeout=10,
                         data=[("name", "Form made"), ("namespace_id", "eo-lab"),
                               ("topics[]", "a"), ("topics[]", "b"), ("visibility", "internal")])
    assert form.status_code == 201, form.text
    made = form.json()
    assert (made["path_with_namespace"], made["topics"], made["visibility"]) == (
        "eo-lab/form-made", ["a", "b"], "internal")
    assert wserver.count("projects", method="POST") == 8
    assert wserver.count("projects", method="POST", status=201) == 3
    assert wserver.count("projects", method="POST", status=400) == 4
    assert len(wgl.projects.list(get_all=True)) == 5


def test_put_edits_a_project_and_topics_show_in_listings(wserver, wgl, anon_w):
    created = wgl.projects.create({"name": "Sea ice", "namespace_id": "eo-lab",
                                   "topics": ["sharinghub:dataset"], "visibility": "public"})
    old = datetime(2024, 1, 1, tzinfo=UTC)
    wserver.update_project(created.id, last_activity_at=old)
    proj = wgl.projects.get(created.id)
    proj.topics = ["sharinghub:aimodel", "ice"]
    proj.description = "Sea ice model"
    proj.save()
    assert wserver.count("project", method="PUT", status=200) == 1
    fresh = wgl.projects.get(created.id)
    assert fresh.topics == fresh.tag_list == ["sharinghub:aimodel", "ice"]
    assert fresh.description == "Sea ice model"
    assert fresh.last_activity_at > "2024-01-01T00:00:00.000Z"
    for topic, expected in (("ice", {created.id}), ("sharinghub:dataset", set()),
                            ("sharinghub:aimodel,ice", {created.id})):
        assert {p.id for p in wgl.projects.list(topic=topic, get_all=True)} == expected
        assert {p.id for p in anon_w.projects.list(topic=topic, get_all=True)} == expected

    updated = wgl.projects.update("eo-lab/sea-ice", {"name": "Sea ice v2",
                                                     "tag_list": ["x"], "visibility": "private"})
    assert updated["name"] == "Sea ice v2" and updated["topics"] == ["x"]
    assert updated["path_with_namespace"] == "eo-lab/sea-ice"
    r = requests.put(f"{wserver.api_url}/projects/eo-lab%2Fsea-ice", headers=AUTH, timeout=10,
                     json={"description": None})
    assert r.status_code == 200 and r.json()["description"] is None
    assert r.json()["permissions"]["project_access"]["access_level"] == 40
    with pytest.raises(gitlab.GitlabGetError):
        anon_w.projects.get(created.id)  # private now

    for key, body, status in ((999, {"description": "x"}, 404),
                              ("eo-lab%2Fnope", {"description": "x"}, 404),
                              (created.id, {"visibility": "secret"}, 400),
                              (created.id, {"default_branch": "no-such-branch"}, 400)):
        r = requests.put(f"{wserver.api_url}/projects/{key}", headers=AUTH, json=body,
                         timeout=10)
        assert r.status_code == status, (key, body, r.text)
    r = requests.put(f"{wserver.api_url}/projects/{created.id}", json={"name": "anon"},
                     timeout=10)
    assert r.status_code == 401
    assert wgl.projects.get(created.id).name == "Sea ice v2"


def test_first_push_of_another_branch_makes_it_the_default(wserver, wgl, genv, tmp_path):
    created = wgl.projects.create({"name": "branchy", "namespace_id": "eo-lab"})
    work = tmp_path / "work"
    run_git(tmp_path, "clone", "-q", wserver.clone_url(created.id, TOKEN), str(work), env=genv)
    (work / "a.txt").write_text("a\n")
    run_git(work, "add", "a.txt", env=genv)
    run_git(work, "commit", "-q", "-m", "a", env=genv)
    run_git(work, "push", "-q", "origin", "HEAD:refs/heads/develop", env=genv)
    assert wgl.projects.get(created.id).default_branch == "develop"
    assert wgl.projects.get(created.id, lazy=True).files.raw("a.txt") == b"a\n"
    run_git(work, "push", "-q", "origin", "HEAD:refs/heads/main", env=genv)
    assert wgl.projects.update(created.id, {"default_branch": "main"})["default_branch"] == "main"
    repo = wserver.git_project_repo(created.id)
    assert run_git(repo, "symbolic-ref", "HEAD").strip() == b"refs/heads/main"
    branches = wgl.projects.get(created.id, lazy=True).branches.list(get_all=True)
    assert [(b.name, b.default) for b in branches] == [("develop", False), ("main", True)]


def _refs(repo: Path) -> bytes:
    return run_git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


def test_reader_clones_but_cannot_push_nor_write_the_api(wserver, wgl, reader, anon_w, genv,
                                                         tmp_path):
    created = wgl.projects.create({"name": "Shared", "namespace_id": "eo-lab",
                                   "topics": ["sharinghub:dataset"], "visibility": "public"})
    pid = created.id
    pushed, sha = _commit_and_push(wserver, pid, tmp_path / "writer", genv,
                                   {"README.md": "# Shared\n"}, "v1")
    assert pushed.returncode == 0, pushed.stderr
    repo = wserver.git_project_repo(pid)
    refs = _refs(repo)
    before = requests.get(f"{wserver.api_url}/projects/{pid}", headers=AUTH, timeout=10).json()

    # the access levels: Maintainer, Reporter for the reader, nothing anonymously
    seen = reader.projects.get(pid)
    assert seen.permissions == {"project_access": {"access_level": 20, "notification_level": 3},
                                "group_access": None}
    assert wgl.projects.get(pid).permissions["project_access"]["access_level"] == 40
    listed = {p.id: p for p in reader.projects.list(get_all=True)}
    assert listed[pid].permissions["project_access"]["access_level"] == 20
    assert "permissions" not in anon_w.projects.get(pid).attributes
    assert all("permissions" not in p.attributes for p in anon_w.projects.list(get_all=True))

    # git: the clone works, the push is refused with a 403, nothing changed
    work = tmp_path / "reader"
    pushed, _ = _commit_and_push(wserver, pid, work, genv, {"notes.txt": "mine\n"}, "v2",
                                 token=READER_TOKEN)
    assert (work / "README.md").read_text() == "# Shared\n"
    assert pushed.returncode != 0 and "403" in pushed.stderr, pushed.stderr
    assert wserver.count("git", status=403, project=pid) == 1  # the receive-pack advertisement
    basic = base64.b64encode(f"oauth2:{READER_TOKEN}".encode()).decode()
    raw = requests.post(f"{wserver.url}/eo-lab/shared.git/git-receive-pack", timeout=10,
                        headers={"Authorization": f"Basic {basic}",
                                 "Content-Type": "application/x-git-receive-pack-request"},
                        data=b"0000")
    assert raw.status_code == 403
    assert raw.text == "You are not allowed to push code to this project.\n"
    assert _refs(repo) == refs

    # the API: every write answers 403
    with pytest.raises(gitlab.GitlabCreateError) as exc:
        reader.projects.create({"name": "Mine", "namespace_id": "eo-lab"})
    assert exc.value.response_code == 403 and exc.value.error_message == "403 Forbidden"
    seen.topics = ["hijacked"]
    with pytest.raises(gitlab.GitlabUpdateError) as exc:
        seen.save()
    assert exc.value.response_code == 403
    r = requests.delete(f"{wserver.api_url}/projects/{pid}",
                        headers={"PRIVATE-TOKEN": READER_TOKEN}, timeout=10)
    assert r.status_code == 403 and r.json() == {"message": "403 Forbidden"}
    r = requests.patch(f"{wserver.api_url}/projects/{pid}", json={"name": "x"},
                       headers={"PRIVATE-TOKEN": READER_TOKEN}, timeout=10)
    assert r.status_code == 403
    after = requests.get(f"{wserver.api_url}/projects/{pid}", headers=AUTH, timeout=10).json()
    assert after == before
    assert len(wgl.projects.list(get_all=True)) == 3
    assert [t.name for t in wgl.projects.get(pid, lazy=True).tags.list(get_all=True)] == ["v1"]
    assert wserver.count("projects", method="POST", status=403) == 1

    # the same token may write once the user is no longer a reader
    wserver.readers.discard("viewer")
    pushed, sha2 = _commit_and_push(wserver, pid, work, genv, {"more.txt": "more\n"})
    assert pushed.returncode == 0, pushed.stderr
    assert run_git(repo, "rev-parse", "main").decode().strip() == sha2 != sha


def test_created_repositories_are_removed_on_stop(tmp_path):
    with GitLabTestServer() as srv:
        client = gitlab.Gitlab(srv.url, private_token=TOKEN)
        pid = client.projects.create({"name": "temporary"}).id
        repo = srv.git_project_repo(pid)
        assert repo.is_dir() and not str(repo).startswith(str(tmp_path))
    assert not repo.exists() and not repo.parent.exists()
