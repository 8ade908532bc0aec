"""The embedded default: local project folders → records → items, with real git."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request

import pytest

from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES
from sharinghub_server.catalog.validate import validate
from sharinghub_server.crawler import Crawler
from sharinghub_server.examples import make_examples
from sharinghub_server.index.query import Query
from sharinghub_server.index.store import open_store
from sharinghub_server.sources.base import SourceError
from sharinghub_server.sources.local import LocalSource


@pytest.fixture
def examples(tmp_path):
    projects, remote = make_examples(tmp_path / "demo")
    return projects, remote


def test_local_projects_are_listed_with_topics_from_front_matter(examples, tmp_path):
    projects, _ = examples
    (projects / "no-readme").mkdir()
    (projects / "untagged").mkdir()
    (projects / "untagged" / "README.md").write_text("---\ntopics: [misc]\n---\n# x\n")
    source = LocalSource(projects)
    listed = {r.id: r for r in source.list_projects([c.gitlab_topic for c in DEFAULT_CATEGORIES])}
    assert set(listed) == {"local/sen1floods11-sample", "local/flood-model"}
    dataset = listed["local/sen1floods11-sample"]
    assert dataset.topics == ["sharinghub:dataset", "flood", "sentinel-1"]
    assert dataset.default_branch == "main"
    assert "data/chip_0.tif.dvc" in dataset.files
    assert not any(f.startswith(".git/") for f in dataset.files)


def test_local_git_project_reports_commits_and_tags(examples):
    projects, _ = examples
    source = LocalSource(projects)
    (listed,) = [r for r in source.list_projects(["sharinghub:dataset"])]
    full = source.fetch(listed, fingerprint=True)
    head = subprocess.run(["git", "-C", str(projects / "sen1floods11-sample"), "rev-parse",
                           "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert full.head_commit == head
    assert [(t.name, t.commit) for t in full.tags] == [("v1.0", head)]
    assert set(full.dvc_files) >= {".dvc/config", "data/chip_0.tif.dvc"}
    before = source.fingerprint(listed)
    subprocess.run(["git", "-C", str(projects / "sen1floods11-sample"), "tag", "v1.1"],
                   check=True)
    assert source.fingerprint(listed) != before


def test_crawl_of_local_projects_gives_valid_items_with_dvc_assets(examples, tmp_path):
    projects, remote = examples
    store = open_store(f"sqlite://{tmp_path / 'index.sqlite'}")
    status = Crawler(store, [LocalSource(projects)], DEFAULT_CATEGORIES).crawl()
    assert status.ok
    assert status.items == {"dataset": 1, "ai-model": 1}
    dataset = store.get_item("dataset", "local/sen1floods11-sample")
    validate(dataset)
    chip = dataset["assets"]["data/chip_1.tif"]
    assert chip["href"].startswith(f"{remote.resolve().as_uri()}/files/md5/")
    assert chip["file:size"] == 2048
    # the remote holds exactly what the pointer says, where the href says
    with urllib.request.urlopen(chip["href"]) as f:
        assert f.read() == bytes([1]) * 2048
    model = store.get_item("ai-model", "local/flood-model")
    validate(model)
    assert model["properties"]["mlm:framework_version"] == "2.7.0"
    assert model["assets"]["flood-unet.onnx"]["roles"][0] == "mlm:model"
    assert model["assets"]["preview"]["roles"] == ["thumbnail"]
    assert any(link["rel"] == "derived_from" for link in model["links"])
    page = store.search(Query(q=["flood"]))
    assert page.matched == 2
    store.close()


def test_edits_are_picked_up_and_removed_projects_deleted(examples, tmp_path):
    projects, _ = examples
    store = open_store(f"sqlite://{tmp_path / 'index.sqlite'}")
    crawler = Crawler(store, [LocalSource(projects)], DEFAULT_CATEGORIES)
    crawler.crawl()
    readme = projects / "flood-model" / "README.md"
    text = readme.read_text().replace("title: Flood detection model", "title: Flood UNet v2")
    readme.write_text(text)
    later = time.time() + 5
    os.utime(readme, (later, later))
    status = crawler.crawl()
    assert store.get_item("ai-model", "local/flood-model")["properties"]["title"] == "Flood UNet v2"
    assert status.sources[0].fetched >= 1
    subprocess.run(["rm", "-rf", str(projects / "flood-model")], check=True)
    status = crawler.crawl()
    assert status.ok and status.sources[0].deleted == 1
    assert store.get_item("ai-model", "local/flood-model") is None
    assert store.get_item("dataset", "local/sen1floods11-sample") is not None
    store.close()


def test_missing_folder_is_a_clear_source_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        LocalSource(tmp_path / "nope").list_projects(["sharinghub:dataset"])
