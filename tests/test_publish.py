"""Publishing on its own (no Jupyter): the core with local projects (the embedded default) —
new projects, dataset versions in place, in a working copy and in the project itself, the
refusals, a failure after the upload, metadata edits — and a re-index that a concurrent crawl
does not undo. Real git, real DVC, a local folder remote."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
from sharinghub_server.catalog.frontmatter import parse_readme
from sharinghub_server.catalog.item import metadata_errors, project_items
from sharinghub_server.crawler import Crawler
from sharinghub_server.index.query import Query
from sharinghub_server.index.store import DirectUpdates, open_store
from sharinghub_server.jobs import Job, JobConflict
from sharinghub_server.publish import templates
from sharinghub_server.service import BadRequest, CatalogService, Conflict, Forbidden
from sharinghub_server.sources.local import LocalSource
from sharinghub_server.sources.records import ProjectRecord
from tests.support.git_repos import run_git
from tests.support.polling import poll

ITEM = "local/floods"


# --- helpers (the other publish tests use them too) ----------------------------------------

def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones, ``.git`` and ``.dvc`` included) → a digest of
    its content (symlinks: their target), so that "unchanged" means byte for byte."""
    found: dict[str, str] = {}
    if not root.exists():
        return found
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = f"-> {os.readlink(path)}"
            else:
                found[rel] = hashlib.sha1(path.read_bytes()).hexdigest()
    return found


def workspace_state(root: Path) -> dict[str, str]:
    """What a user sees of a workspace: every file but git's and DVC's bookkeeping (``.git``,
    DVC's cache and ``tmp``), and of each git repository in it its HEAD, refs, index and
    status (what a failed or cancelled publish must leave as it was)."""
    found = {rel: digest for rel, digest in tree_digest(root).items()
             if not _bookkeeping(rel)}
    for git_dir in sorted(p for p in root.rglob(".git") if p.is_dir()):
        repo = git_dir.parent
        rel = repo.relative_to(root).as_posix()
        for name, args in (("HEAD", ["rev-parse", "HEAD"]),
                           ("refs", ["for-each-ref", "--format=%(refname) %(objectname)"]),
                           ("index", ["ls-files", "--stage"]),
                           ("status", ["status", "--porcelain"])):
            found[f"{rel}//git {name}"] = run_git(repo, *args).decode()
    return found


def _bookkeeping(rel: str) -> bool:
    parts = rel.split("/")
    if ".git" in parts:
        return True
    return any(a == ".dvc" and b in ("cache", "tmp") for a, b in itertools.pairwise(parts))


def grep_tree(root: Path, needle: bytes) -> list[str]:
    """Files under ``root`` (everything, hidden included) holding ``needle``."""
    return [str(Path(d) / n) for d, _dirs, names in os.walk(root) for n in names
            if not (Path(d) / n).is_symlink() and needle in (Path(d) / n).read_bytes()]


def write_data(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def data_files(seed: int, n: int = 6) -> dict[str, bytes]:
    import random

    rng = random.Random(seed)
    files = {f"images/chip-{i}.bin": rng.randbytes(2000 + 500 * i) for i in range(n)}
    files["labels.csv"] = b"chip,label\n" + b"".join(f"chip-{i},water\n".encode()
                                                     for i in range(n))
    return files


def wait(job: Job, timeout: float = 120) -> Job:
    poll(lambda: job.ended, f"job {job.id} to end", timeout=timeout, every=0.02)
    return job


def git(repo: Path, *args: str) -> str:
    return run_git(repo, *args).decode().strip()


def tags(repo: Path) -> list[str]:
    return git(repo, "tag", "--list").split()


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def hub(tmp_path):
    """A catalog service over one local projects folder (empty), a Jupyter root, a DVC
    folder remote for new datasets."""
    projects = tmp_path / "projects" / "local"
    projects.mkdir(parents=True)
    root = tmp_path / "root"
    root.mkdir()
    remote = tmp_path / "remote"
    svc = CatalogService(open_store(f"sqlite://{tmp_path / 'index.sqlite'}"), DEFAULT_CATEGORIES,
                         [LocalSource(projects)], crawl_interval=0, root_dir=root,
                         dvc_default_remote=str(remote))
    yield SimpleNamespace(svc=svc, pub=svc.publisher, root=root, projects=projects,
                          remote=remote, tmp=tmp_path)
    svc.close()


def state(hub, git_aware: bool = False) -> tuple[dict, dict, dict]:
    """The workspace, the local projects (GitLab's stand-in) and the DVC remote: byte for
    byte, or (``git_aware``) as their users see them (see :func:`workspace_state`)."""
    digest = workspace_state if git_aware else tree_digest
    return digest(hub.root), digest(hub.projects), tree_digest(hub.remote)


def new_dataset(hub, name: str = "floods") -> dict:
    return hub.pub.new_project({"category": "dataset", "name": name, "title": "Floods",
                                "description": "Flood chips.\n\nSentinel-1, labelled."})


def publish(hub, path: str, version: str, **extra) -> Job:
    return wait(hub.pub.start_publish({"item": ITEM, "path": path, "version": version,
                                       **extra}))


# --- templates ------------------------------------------------------------------------------

@pytest.mark.parametrize("category", DEFAULT_CATEGORIES, ids=lambda c: c.id)
def test_every_template_makes_a_valid_item(category):
    files = templates.project_files(category, name="floods", title="Floods: a test",
                                    description="Line one.\n\nLine two.",
                                    producer={"name": "eo", "url": "https://g.example/eo"},
                                    remote="s3://bucket/prefix", topics=[category.gitlab_topic])
    record = ProjectRecord(source="local:x", id="local/floods", name="floods",
                           topics=[category.gitlab_topic], readme=files["README.md"],
                           files=sorted(files), dvc_files={k: v for k, v in files.items()
                                                           if k == ".dvc/config"})
    assert metadata_errors(record, DEFAULT_CATEGORIES) == []
    built = project_items(record, DEFAULT_CATEGORIES)
    props = built.items[0]["properties"]
    assert props["title"] == "Floods: a test"
    assert props["description"] == "Line one.\n\nLine two."
    assert props["license"] and props["providers"][0]["name"] == "eo"
    if category.id == "ai-model":  # mlm fields, served without the schema until a model comes
        assert props["mlm:name"] == "floods" and "mlm:tasks" in props
        assert built.problems == [p for p in built.problems if p.startswith("mlm: no model")]
    else:
        assert built.problems == []
    if category.id == "dataset":
        assert props["sharinghub:dvc-remote"] == "s3://bucket/prefix"
        assert files[".dvc/config"] == ("[core]\n    remote = storage\n['remote \"storage\"']\n"
                                        "    url = s3://bucket/prefix\n")


# --- new projects ---------------------------------------------------------------------------

def test_a_new_local_dataset_is_a_git_repository_indexed_at_once(hub):
    item = new_dataset(hub)
    assert (item["id"], item["collection"]) == (ITEM, "dataset")
    assert item["properties"]["title"] == "Floods"
    folder = hub.projects / "floods"
    assert git(folder, "log", "--format=%s") == "New dataset: Floods"
    assert git(folder, "status", "--porcelain") == ""
    meta, body, problem = parse_readme((folder / "README.md").read_text())
    assert problem is None and body == "Flood chips.\n\nSentinel-1, labelled."
    assert meta["topics"] == ["sharinghub:dataset"] and meta["license"] == "CC-BY-4.0"
    assert meta["extent"]["spatial"] is None and len(meta["extent"]["temporal"]) == 2
    assert meta["sharinghub"] == {"dvc-remote": str(hub.remote)}
    assert f"url = {hub.remote}" in (folder / ".dvc" / "config").read_text()
    assert (folder / ".dvc" / ".gitignore").read_text() == "/config.local\n/tmp\n/cache\n"
    # the index has it now: free text, the item, the project (versions)
    page = hub.svc.search(Query(q=["sentinel-1"]))
    assert [i["id"] for i in page.items] == [ITEM]
    assert hub.svc.get_item("dataset", ITEM) is not None
    versions = hub.svc.dvc_versions(ITEM)["versions"]
    assert [(v["rev"], v["kind"]) for v in versions] == [("main", "branch")]

    model = hub.pub.new_project({"category": "ai-model", "name": "flood-model"})
    assert model["collection"] == "ai-model"
    assert model["properties"]["mlm:name"] == "flood-model"
    assert not (hub.projects / "flood-model" / ".dvc").exists()


@pytest.mark.parametrize("body, error", [
    ({"category": "nope", "name": "x"}, BadRequest),
    ({"category": "dataset", "name": "../x"}, BadRequest),
    ({"category": "dataset", "name": ".hidden"}, BadRequest),
    ({"category": "dataset", "name": "a/b"}, BadRequest),
    ({"category": "dataset", "name": ""}, BadRequest),
    ({"category": "dataset", "name": "x.git"}, BadRequest),
    ({"category": "dataset", "name": "x", "namespace": "elsewhere"}, BadRequest),
    ({"category": "dataset", "name": "x", "title": "two\nlines"}, BadRequest),
    ({"category": "dataset", "name": "x", "visibility": "secret"}, BadRequest),
    ({"category": "dataset"}, BadRequest),
    ([1], BadRequest),
    ({"category": "dataset", "name": "floods"}, Conflict),
])
def test_bad_new_projects_are_refused_and_create_nothing(hub, body, error):
    new_dataset(hub)
    before = state(hub)
    with pytest.raises(error) as info:
        hub.pub.new_project(body)
    assert "\n" not in str(info.value) and str(info.value)
    assert state(hub) == before


def test_no_writable_source(tmp_path):
    svc = CatalogService(open_store(f"sqlite://{tmp_path / 'i.sqlite'}"), DEFAULT_CATEGORIES, [],
                         crawl_interval=0, root_dir=tmp_path, dvc_default_remote="x")
    try:
        with pytest.raises(BadRequest, match="no writable source"):
            svc.publisher.new_project({"category": "dataset", "name": "x"})
    finally:
        svc.close()


# --- dataset versions -----------------------------------------------------------------------

def test_publish_in_place_then_from_the_same_folder(hub):
    new_dataset(hub)
    work = hub.root / "work" / "floods"
    v1 = data_files(1)
    write_data(work, v1)
    (work / ".ipynb_checkpoints").mkdir()  # hidden entries are not published
    job = publish(hub, "work/floods", "v1.0")
    assert job.state == "done", job.error
    assert (job.kind, job.item, job.rev, job.dest) == ("publish", ITEM, "v1.0", "work/floods")
    assert job.files_done == job.files_total == len(v1)
    assert job.bytes_done == job.bytes_total == sum(map(len, v1.values()))
    assert {o["path"] for o in job.result["outputs"]} == {"images", "labels.csv"}
    # the folder became a working copy at v1.0; the data is untouched
    assert git(work, "describe", "--tags") == "v1.0"
    assert git(work, "status", "--porcelain") == ""
    assert all((work / p).read_bytes() == d for p, d in v1.items())
    assert not (work / ".dvc" / "config.local").exists()
    # the project (the origin) has the commit, the tag and the pointer files
    project = hub.projects / "floods"
    assert tags(project) == ["v1.0"] and (project / "images.dvc").is_file()
    assert git(project, "status", "--porcelain") == ""
    # every object on the remote
    stored = {p.name for p in hub.remote.rglob("*") if p.is_file()}
    md5s = {hashlib.md5(d).hexdigest()[2:] for d in v1.values()}
    assert md5s <= stored
    versions = {v["rev"]: v for v in hub.svc.dvc_versions(ITEM)["versions"]}
    assert set(versions) == {"main", "v1.0"}
    assert {o["path"] for o in versions["v1.0"]["outputs"]} == {"images", "labels.csv"}

    v2 = dict(v1, **{"labels.csv": b"chip,label\n", "images/chip-9.bin": b"new" * 100})
    write_data(work, v2)
    job = publish(hub, "work/floods", "v1.1", message="One chip more")
    assert job.state == "done", job.error
    assert job.files_total == len(v2) and job.files_done == len(v2)
    assert git(project, "log", "-1", "--format=%s") == "One chip more"
    versions = [v["rev"] for v in hub.svc.dvc_versions(ITEM)["versions"]]
    assert set(versions) == {"main", "v1.0", "v1.1"}
    # the item was re-indexed: its DVC assets are the new version's
    item = hub.svc.get_item("dataset", ITEM)
    assert item["assets"]["labels.csv"]["file:size"] == len(b"chip,label\n")


def test_publish_a_subfolder_of_a_pulled_working_copy_and_in_the_project_itself(hub, tmp_path):
    new_dataset(hub)
    write_data(hub.root / "first", data_files(1))
    assert publish(hub, "first", "v1.0").state == "done"
    # a working copy made as a pull makes it (a clone), a new output in a subfolder
    clone = hub.root / "copy"
    run_git(hub.root, "clone", "-q", str(hub.projects / "floods"), str(clone))
    write_data(clone / "extra", {"a.txt": b"a" * 100, "b/c.txt": b"c" * 50})
    job = publish(hub, "copy/extra", "v1.1")
    assert job.state == "done", job.error
    assert job.dest == "copy" and [o["path"] for o in job.result["outputs"]] == ["extra"]
    assert (hub.projects / "floods" / "extra.dvc").is_file()
    assert tags(clone) == ["v1.0", "v1.1"]

    # projects inside the Jupyter root: the project folder is its own working copy
    svc = CatalogService(open_store(f"sqlite://{tmp_path / 'own.sqlite'}"), DEFAULT_CATEGORIES,
                         [LocalSource(hub.projects)], crawl_interval=0, root_dir=hub.tmp,
                         dvc_default_remote=str(hub.remote))
    try:
        svc.reindex(next(iter(svc.sources.values())), ITEM)
        write_data(hub.projects / "floods" / "more", {"m.bin": b"m" * 1000})
        job = wait(svc.publisher.start_publish(
            {"item": ITEM, "path": "projects/local/floods/more", "version": "v1.2"}))
        assert job.state == "done", job.error
        assert job.dest == "projects/local/floods"
        project = hub.projects / "floods"
        assert tags(project) == ["v1.0", "v1.1", "v1.2"]
        assert git(project, "status", "--porcelain") == ""
    finally:
        svc.close()


def _dirty_readme(hub) -> None:
    with (hub.root / "first" / "README.md").open("a") as fh:
        fh.write("local edit\n")


@pytest.mark.parametrize("case", ["existing tag", "outside the root", "absolute", "hidden",
                                  "empty folder", "missing", "unrelated changes",
                                  "behind the branch", "another repository", "file outside",
                                  "bad version", "no DVC remote", "inside an output",
                                  "tracked by git"])
def test_refusals_are_immediate_and_change_nothing(hub, case):
    new_dataset(hub)
    write_data(hub.root / "first", data_files(1))
    assert publish(hub, "first", "v1.0").state == "done"
    write_data(hub.root / "empty" / "sub", {})
    (hub.root / ".secret").mkdir()
    write_data(hub.root / ".secret", {"x.bin": b"x"})
    write_data(hub.root / "loose", {"one.bin": b"1"})
    other = hub.root / "other"
    write_data(other / "data", {"d.bin": b"d"})
    run_git(other, "init", "-q")
    body = {"item": ITEM, "path": "first/images", "version": "v2.0"}
    error: type[Exception] = BadRequest
    if case == "existing tag":
        body["version"], error = "v1.0", Conflict
    elif case == "outside the root":
        body["path"] = "../projects"
    elif case == "absolute":
        body["path"] = str(hub.projects)
    elif case == "hidden":
        body["path"] = ".secret"
    elif case == "empty folder":
        body["path"] = "empty"
    elif case == "missing":
        body["path"] = "nothing-here"
    elif case == "unrelated changes":
        _dirty_readme(hub)
        error = Conflict
    elif case == "behind the branch":  # someone published since this working copy was made
        write_data(hub.root / "second", data_files(2))
        assert publish(hub, "second", "v1.1").state == "done"
        error = Conflict
    elif case == "another repository":
        body["path"] = "other/data"
    elif case == "file outside":
        body["path"] = "loose/one.bin"
    elif case == "bad version":
        body["version"] = "v 2..0"
    elif case == "no DVC remote":
        hub.pub.new_project({"category": "processor", "name": "tool"})
        body["item"] = "local/tool"
    elif case == "inside an output":
        body["path"] = "first/images/chip-1.bin"
    elif case == "tracked by git":
        body["path"] = "first/README.md"
    before = state(hub)
    with pytest.raises(error) as info:
        hub.pub.start_publish(body)
    message = str(info.value)
    assert message and "\n" not in message
    assert state(hub) == before
    assert hub.svc.jobs._jobs == {k: j for k, j in hub.svc.jobs._jobs.items() if j.ended}


def test_clashing_names_fail_the_job_and_leave_the_folder_as_it_was(hub):
    new_dataset(hub)
    folder = hub.root / "clash"
    write_data(folder, {"README.md": b"mine", "data/a.bin": b"a" * 10})
    before = state(hub)
    job = publish(hub, "clash", "v1.0")  # (no DVC cache nor git yet: byte for byte)
    assert job.state == "failed" and "README.md" in job.error and "\n" not in job.error
    assert state(hub) == before


def test_a_push_refused_after_the_upload_restores_the_remote_and_the_workspace(hub):
    new_dataset(hub)
    write_data(hub.root / "first", data_files(1))
    assert publish(hub, "first", "v1.0").state == "done"
    hook = hub.projects / "floods" / ".git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'refused by policy' >&2\nexit 1\n")
    hook.chmod(0o755)
    write_data(hub.root / "first", {"images/new.bin": b"n" * 5000, "labels.csv": b"changed"})
    before = state(hub, git_aware=True)
    job = publish(hub, "first", "v1.1")
    assert job.state == "failed" and "git push failed" in job.error, job.error
    assert job.files_done > 0  # the upload had happened
    assert job.state == "failed"
    assert state(hub, git_aware=True) == before  # the remote, pointer files, index, refs
    assert git(hub.root / "first", "status", "--porcelain") == ""
    assert tags(hub.root / "first") == ["v1.0"]


def test_only_one_publish_of_an_item_at_a_time(hub):
    new_dataset(hub)
    write_data(hub.root / "a", data_files(1, n=40))
    write_data(hub.root / "b", data_files(2))
    first = hub.pub.start_publish({"item": ITEM, "path": "a", "version": "v1.0"})
    try:
        if not first.ended:
            with pytest.raises(JobConflict, match="running"):  # (a 409 too)
                hub.pub.start_publish({"item": ITEM, "path": "b", "version": "v2.0"})
    finally:
        wait(first)


def test_permissions_of_local_projects(hub):
    new_dataset(hub)
    assert hub.pub.permissions(ITEM) == {"item": ITEM, "can_publish": True, "reason": None}
    hub.pub.new_project({"category": "ai-model", "name": "model"})
    found = hub.pub.permissions("local/model")
    assert not found["can_publish"] and "DVC remote" in found["reason"]
    plain = hub.projects / "plain"
    plain.mkdir()
    (plain / "README.md").write_text("---\ntopics: [sharinghub:dataset]\n---\nplain\n")
    hub.svc.reindex(next(iter(hub.svc.sources.values())), "local/plain")
    found = hub.pub.permissions("local/plain")
    assert not found["can_publish"] and "not a git repository" in found["reason"]
    with pytest.raises(Forbidden):
        hub.pub.start_publish({"item": "local/plain", "path": "x", "version": "v1"})


# --- metadata -------------------------------------------------------------------------------

def test_a_project_made_without_a_description_takes_metadata_edits(hub):
    item = hub.pub.new_project({"category": "dataset", "name": "bare", "title": "Bare"})
    assert item["properties"]["description"] == "# Bare"
    meta = parse_readme((hub.projects / "bare" / "README.md").read_text())[0]
    edited = hub.pub.update_metadata({"item": item["id"],
                                      "front_matter": {**meta, "title": "Bare, edited"}})
    assert edited["properties"]["title"] == "Bare, edited"


def test_metadata_edits_are_validated_then_committed(hub):
    new_dataset(hub)
    project = hub.projects / "floods"
    readme = (project / "README.md").read_text()
    meta = parse_readme(readme)[0]
    meta.update({"title": "Floods, checked", "license": "MIT",
                 "extent": {"spatial": [-5.5, 41.0, 9.8, 51.3], "temporal": [
                     "2019-01-01", "2019-12-31"]}})
    item = hub.pub.update_metadata({"item": ITEM, "front_matter": meta})
    assert item["properties"]["title"] == "Floods, checked"
    assert item["bbox"] == [-5.5, 41.0, 9.8, 51.3]
    assert git(project, "log", "-1", "--format=%s") == "Update metadata"
    assert git(project, "status", "--porcelain") == ""
    text = (project / "README.md").read_text()
    assert parse_readme(text)[1] == parse_readme(readme)[1]  # the body is kept
    assert [i["id"] for i in hub.svc.search(Query(q=["checked"])).items] == [ITEM]

    before = state(hub)
    head = git(project, "rev-parse", "HEAD")
    for bad, words in [
        ({**meta, "extensions": {"mlm": "https://stac-extensions.github.io/mlm/v1.4.0/"
                                         "schema.json"},
          "mlm": {"name": "m", "framework_version": "2.7"}}, "mlm:"),
        ({**meta, "extent": {"spatial": [200, 0, 1, 1]}}, "extent.spatial"),
        ({**meta, "topics": ["flood"]}, "category topic"),
        ("title: [unclosed", "not valid YAML"),
        (["a list"], "mapping"),
        ({**meta, "providers": [{"roles": ["host"]}]}, "provider"),
    ]:
        with pytest.raises(BadRequest) as info:
            hub.pub.update_metadata({"item": ITEM, "front_matter": bad})
        assert words in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert git(project, "rev-parse", "HEAD") == head
    assert state(hub) == before

    with (project / "README.md").open("a") as fh:  # an uncommitted edit: not overwritten
        fh.write("mine\n")
    with pytest.raises(Conflict):
        hub.pub.update_metadata({"item": ITEM, "front_matter": {**meta, "title": "x"}})
    assert (project / "README.md").read_text().endswith("mine\n")


def test_yaml_text_is_accepted_as_front_matter(hub):
    new_dataset(hub)
    meta = yaml.safe_dump({"title": "From text", "topics": ["sharinghub:dataset"]})
    item = hub.pub.update_metadata({"item": ITEM, "front_matter": meta})
    assert item["properties"]["title"] == "From text"


# --- a re-index outside a crawl survives a crawl running meanwhile --------------------------

class _SlowSource(LocalSource):
    """A local source whose crawl fetch waits until told (after it has read the project)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.fetched = threading.Event()
        self.go = threading.Event()
        self.hold = False

    def fetch(self, project: ProjectRecord, *, fingerprint: bool) -> ProjectRecord:
        record = super().fetch(project, fingerprint=fingerprint)
        if self.hold:
            self.fetched.set()
            assert self.go.wait(30)
        return record


def test_a_direct_reindex_survives_a_concurrent_crawl(tmp_path):
    projects = tmp_path / "local"
    project = projects / "floods"
    project.mkdir(parents=True)
    (project / "README.md").write_text("---\ntitle: Old\ntopics: [sharinghub:dataset]\n---\n")
    store = open_store(f"sqlite://{tmp_path / 'i.sqlite'}")
    source = _SlowSource(projects)
    direct = DirectUpdates()
    crawler = Crawler(store, [source], DEFAULT_CATEGORIES, direct=direct)
    crawler.crawl()
    assert store.get_item("dataset", ITEM)["properties"]["title"] == "Old"
    (project / "README.md").write_text("---\ntitle: Middle\ntopics: [sharinghub:dataset]\n---\n")
    source.hold = True
    crawl = threading.Thread(target=crawler.crawl)
    crawl.start()
    try:
        assert source.fetched.wait(30)  # the crawl has read "Middle"
        source.hold = False
        (project / "README.md").write_text(
            "---\ntitle: New\ntopics: [sharinghub:dataset]\n---\n")
        Crawler(store, [source], DEFAULT_CATEGORIES, direct=direct).index_project(source, ITEM)
        assert store.get_item("dataset", ITEM)["properties"]["title"] == "New"
    finally:
        source.go.set()
        crawl.join(30)
    assert store.get_item("dataset", ITEM)["properties"]["title"] == "New"
    # a later crawl reads the project afresh
    crawler.crawl()
    assert store.get_item("dataset", ITEM)["properties"]["title"] == "New"
    store.close()


def test_a_git_identity_is_found_without_configuration(hub, monkeypatch):
    """git refuses to commit for nobody: without a configured name, a fixed one."""
    monkeypatch.setenv("HOME", str(hub.tmp / "no-home"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    new_dataset(hub)
    assert git(hub.projects / "floods", "log", "-1", "--format=%an <%ae>") == \
        "SharingHub Lab <sharinghub-lab@localhost>"


def test_dvc_never_turns_published_files_into_links(hub):
    """The repository may ask DVC for symlinks to its cache: a publish copies anyway, so the
    user's files stay theirs (and an undone in-place clone can remove the cache)."""
    new_dataset(hub)
    project = hub.projects / "floods"
    with (project / ".dvc" / "config").open("a") as fh:
        fh.write("[cache]\n    type = symlink\n")
    run_git(project, "commit", "-qam", "symlinks please", env={
        **os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"})
    hub.svc.reindex(next(iter(hub.svc.sources.values())), ITEM)
    write_data(hub.root / "first", data_files(3))
    assert publish(hub, "first", "v1.0").state == "done"
    assert not any(p.is_symlink() for p in (hub.root / "first").rglob("*"))
    shutil.rmtree(hub.root / "first" / ".dvc" / "cache")
    assert (hub.root / "first" / "labels.csv").read_bytes().startswith(b"chip,label")
