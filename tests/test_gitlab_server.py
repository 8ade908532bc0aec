"""Tests of the GitLab API test server (tests/support/gitlab_server.py), over real HTTP."""

from __future__ import annotations

import base64
import io
import threading
import time
import zipfile
from collections import Counter
from datetime import datetime, timedelta, timezone

import gitlab
import pytest
import requests
import yaml

from tests.support.gitlab_server import (
    CATEGORY_TOPICS,
    FakeProject,
    GitLabTestServer,
    make_synthetic_projects,
)

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
    with GitLabTestServer(corpus[:20], latency=0.2) as srv:
        results: list[int] = []
        lock = threading.Lock()

        def fetch(pid: int) -> None:
            r = requests.get(f"{srv.api_url}/projects/{pid}", headers=AUTH, timeout=10)
            with lock:
                results.append(r.status_code)

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(1, 11)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        elapsed = time.monotonic() - start
        assert results == [200] * 10
        assert 0.2 <= elapsed < 1.5  # serial would take 2 s


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
