"""The JupyterLab extension in a real browser: headless Debian chromium driven by Playwright
against a Jupyter server (with JupyterLab) in a subprocess, fed by the GitLab test server
holding the example projects (real git repositories, cloned over HTTP for pulls) plus one
with a hostile README.

One JupyterLab session walks what a user does: open the sidebar, search, open an item,
insert a snippet into the open notebook, pull a DVC version and see its folder in the
file browser, publish a new version from it, open a hostile README (its script and
``onerror`` must not run: checked in the page), open MLflow from the launcher.
Screenshots of the sidebar, the item view and the publish form go to
``tests/output/labextension/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import TOKEN as GITLAB_TOKEN
from tests.support.git_repos import tool_env
from tests.support.gitlab_server import FakeProject, GitLabTestServer
from tests.support.jupyter_proc import JupyterProcess, jupyter_server
from tests.support.polling import poll

TOKEN = "browser-test-token"
OUTPUT = Path(__file__).parent / "output" / "labextension"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DATASET = "local/sen1floods11-sample"

HOSTILE_README = """---
title: Hostile README
topics: [sharinghub:tools]
---
# Hostile README

Nothing to see here.

<script>window.__pwned = "script";</script>
<img src="does-not-exist.png" onerror="window.__pwned = 'onerror'">
<a href="#" onclick="window.__pwned = 'onclick'">click</a>
"""

SCRATCH_NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "id": "first", "metadata": {},
               "outputs": [], "source": "# scratch"}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def _labextension_installed() -> bool:
    """The bundle is where JupyterLab looks (the wheel's shared data, or the link that
    scripts/setup-env.sh makes for an editable install)."""
    import sys

    return (Path(sys.prefix) / "share/jupyter/labextensions/sharinghub-lab/package.json").is_file()


@pytest.fixture(scope="module")
def gitlab(tmp_path_factory) -> Iterator[GitLabTestServer]:
    """The example projects as a team keeps them: private GitLab projects ``local/...``
    backed by their git repositories, topics as their README says; the hostile README's
    project holds just its README."""
    from sharinghub_server.examples import make_examples

    root = tmp_path_factory.mktemp("gitlab")
    projects, _ = make_examples(root / "examples")
    with GitLabTestServer() as server:
        for pid, folder in enumerate(sorted(p for p in projects.iterdir() if p.is_dir()), 801):
            bare = root / "bare" / f"{folder.name}.git"
            subprocess.run(["git", "clone", "-q", "--bare", str(folder), str(bare)], check=True,
                           env=tool_env(root / "home"))
            front = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
            server.add_git_project(FakeProject(id=pid, visibility="private",
                                               path_with_namespace=f"local/{folder.name}",
                                               topics=front["topics"]), bare)
        server.add_project(FakeProject(id=899, path_with_namespace="local/hostile-readme",
                                       topics=["sharinghub:tools"],
                                       files={"README.md": HOSTILE_README}))
        yield server


@pytest.fixture(scope="module")
def lab(tmp_path_factory, gitlab: GitLabTestServer) -> Iterator[JupyterProcess]:
    """A Jupyter server with JupyterLab and the extension, its first crawl finished."""
    assert _labextension_installed(), "the labextension is not installed: run scripts/setup-env.sh"
    root = tmp_path_factory.mktemp("lab")
    (root / "scratch.ipynb").write_text(json.dumps(SCRATCH_NOTEBOOK))
    # JupyterLab's own settings and workspaces stay in the test's folder; no news prompt
    settings = root / "lab-settings"
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}))
    # two results a page: the three example items need the API's `next` link
    ours = settings / "sharinghub-lab" / "plugin.jupyterlab-settings"
    ours.parent.mkdir(parents=True)
    ours.write_text(json.dumps({"pageSize": 2}))
    # GitLab's address and token from the environment (a token never goes on a command line)
    env = {"JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / "lab-workspaces"),
           "SHARINGHUB_GITLAB_URL": gitlab.url, "SHARINGHUB_GITLAB_TOKEN": GITLAB_TOKEN}
    args = ["--SharingHub.crawl_interval=0", "--LabApp.expose_app_in_browser=True"]
    with jupyter_server(root, token=TOKEN, args=args, env=env) as server:
        def crawled() -> dict | None:
            status = _index_status(server)
            finished = status["state"] == "idle" and (status["last_crawl"] or {}).get("finished")
            return status if finished else None

        poll(crawled, "the first crawl", timeout=60)
        yield server


@pytest.fixture
def page(lab: JupyterProcess):
    """A chromium page logged into JupyterLab with ``scratch.ipynb`` open (per test:
    Playwright's own event loop must end before pytest-jupyter closes the test's loop)."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: scripts/test.sh installs it"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{lab.url}lab/tree/scratch.ipynb?token={TOKEN}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        try:
            yield page
        finally:
            context.close()
            browser.close()


def _index_status(lab: JupyterProcess) -> dict:
    """The server's crawl status (``GET sharinghub/api/index``)."""
    return requests.get(f"{lab.url}sharinghub/api/index", timeout=5,
                        headers={"Authorization": f"token {TOKEN}"}).json()


def _open_sidebar(page) -> None:
    tab = page.locator('.jp-SideBar [data-id="sharinghub-sidebar"]')
    if tab.get_attribute("aria-selected") != "true":
        tab.click()
    page.locator("#sharinghub-sidebar").wait_for(state="visible")


def _cards(page) -> list[str]:
    return page.eval_on_selector_all(
        "#sharinghub-sidebar .jp-SharingHub-card", "cards => cards.map(c => c.dataset.item)")


def _search(page, text: str) -> list[str]:
    """Types ``text`` into the search box; the cards once the server's answer is drawn."""
    def sent(response) -> bool:
        request = response.request
        return ("/sharinghub/api/stac/search" in response.url and request.method == "POST"
                and json.loads(request.post_data or "{}").get("q") == [text])

    with page.expect_response(sent):
        page.fill("#sharinghub-sidebar .jp-SharingHub-search", text)
    count = page.locator("#sharinghub-sidebar .jp-SharingHub-count")
    poll(lambda: "result" in count.inner_text(), f"results for {text!r} drawn")
    return _cards(page)


def test_sidebar_item_view_pull_snippet_and_mlflow(lab: JupyterProcess, page,
                                                   gitlab: GitLabTestServer) -> None:
    searches: list[dict] = []
    page.on("request", lambda r: searches.append(json.loads(r.post_data or "{}"))
            if "/sharinghub/api/stac/search" in r.url and r.method == "POST" else None)
    _open_sidebar(page)
    sidebar = page.locator("#sharinghub-sidebar")

    # first results (pages of 2 from the settings, the next one through the `next` link
    # as the list's end scrolls into view), collection tabs and the crawl status line
    poll(lambda: len(_cards(page)) == 3, "the three example items in the sidebar")
    assert searches[0] == {"limit": 2}
    assert any(body.get("token") for body in searches[1:]), searches
    assert sidebar.locator(".jp-SharingHub-more").is_hidden()
    tabs = sidebar.locator(".jp-SharingHub-tab")
    assert {tabs.nth(i).get_attribute("data-collection") for i in range(tabs.count())} >= {
        "", "dataset", "ai-model", "tools"}
    status = sidebar.locator(".jp-SharingHub-statusText")
    # the crawl counts entries per collection (a project in two collections is in both)
    counts = [n for n in _index_status(lab)["last_crawl"]["items"].values() if n]
    indexed = f"{sum(counts)} entries in {len(counts)} collections"
    assert status.inner_text().startswith(indexed), status.inner_text()

    # "Refresh Catalog" from the palette: the status line follows the crawl to its end,
    # as the sidebar's button does
    # (not awaited: the command's promise ends with the crawl)
    page.evaluate("() => { window.jupyterapp.commands.execute('sharinghub:refresh-catalog'); }")
    poll(lambda: status.inner_text().startswith("crawling"), "the status line to show the crawl")
    poll(lambda: status.inner_text().startswith(indexed), "the status line after the crawl")

    # free text goes to the server (the README body matches too): one dataset
    assert _search(page, "tiny slice") == [DATASET]
    card = sidebar.locator(f'.jp-SharingHub-card[data-item="{DATASET}"]')
    assert "Sen1Floods11 sample" in card.inner_text()
    assert "flood" in card.locator(".jp-SharingHub-keyword").all_inner_texts()
    page.screenshot(path=str(OUTPUT / "sidebar.png"))

    # the item view: README rendered, versions listed
    card.click()
    view = page.locator(".jp-SharingHub-item:visible")
    view.locator(".jp-SharingHub-itemHeader h1", has_text="Sen1Floods11 sample").wait_for()
    view.locator(".jp-SharingHub-readme h1", has_text="Sen1Floods11 sample").wait_for()
    row = view.locator('tr[data-rev="v1.0"]')
    row.wait_for()
    assert view.locator(".jp-SharingHub-dest").input_value() == "sen1floods11-sample"
    assert view.locator(".jp-SharingHub-assets a").count() >= 1
    page.screenshot(path=str(OUTPUT / "item-view.png"))

    # "Insert snippet" adds the %sharinghub call to the open notebook: a version's row
    # pulls that version, the header the newest one
    newest = view.locator("tr[data-rev]").first.get_attribute("data-rev")
    row.locator(".jp-SharingHub-snippet").click()
    snippet = f"%sharinghub pull {DATASET} --rev v1.0"
    page.locator(".jp-Notebook .jp-Cell", has_text=snippet).wait_for()
    dataset_tab = page.locator(".lm-TabBar-tab", has_text="Sen1Floods11 sample")
    dataset_tab.click()
    view.locator(".jp-SharingHub-itemHeader .jp-SharingHub-snippet").click()
    newest_line = re.compile(rf"pull {DATASET} --rev {re.escape(newest)}(\s|$)")
    newest_cell = page.locator(".jp-Notebook .jp-Cell", has_text=newest_line)
    poll(lambda: newest_cell.count() == (2 if newest == "v1.0" else 1),
         "the header's snippet with the newest version")

    # "Pull into workspace": the job runs to the end, the folder opens in the file browser
    dataset_tab.click()
    row.locator(".jp-SharingHub-pull").click()
    job = row.locator(".jp-SharingHub-job")
    poll(lambda: job.get_attribute("data-state") in ("done", "failed", "cancelled"),
         "the pull job to end", timeout=120, every=0.2)
    assert job.get_attribute("data-state") == "done", job.inner_text()
    assert (lab.root / "sen1floods11-sample" / "data" / "chip_0.tif").read_bytes() == bytes(1024)
    browser = page.locator("#filebrowser")
    browser.wait_for(state="visible")
    browser.locator(".jp-BreadCrumbs", has_text="sen1floods11-sample").wait_for()
    browser.locator(".jp-DirListing-item", has_text="data").first.wait_for()

    # "Publish a new version" from the pulled working copy: new labels become v1.1 on
    # GitLab (branch and tag pushed) and the versions list shows it
    labels = lab.root / "sen1floods11-sample" / "labels"
    labels.mkdir()
    (labels / "mask_0.tif").write_bytes(bytes(range(256)) * 8)
    dataset_tab.click()
    publish = view.locator(".jp-SharingHub-publish")
    assert publish.locator(".jp-SharingHub-publishVersion").input_value() == "v1.1"
    publish.locator(".jp-SharingHub-publishPath").fill("sen1floods11-sample")
    publish.locator(".jp-SharingHub-publishMessage").fill("hand-drawn masks")
    publish.locator(".jp-SharingHub-publishButton").click()
    published = publish.locator(".jp-SharingHub-job")
    poll(lambda: published.get_attribute("data-state") in ("done", "failed", "cancelled"),
         "the publish job to end", timeout=120, every=0.2)
    assert published.get_attribute("data-state") == "done", published.inner_text()
    view.locator('tr[data-rev="v1.1"]').wait_for()
    assert publish.locator(".jp-SharingHub-publishVersion").input_value() == "v1.2"
    # listing the versions again keeps the pull destination as it was
    assert view.locator(".jp-SharingHub-dest").input_value() == "sen1floods11-sample"
    tags = subprocess.run(["git", "tag", "-n1"], capture_output=True, text=True, check=True,
                          cwd=gitlab.git_project_repo(DATASET)).stdout
    assert re.search(r"^v1\.1\s+hand-drawn masks", tags, re.M), tags
    page.screenshot(path=str(OUTPUT / "publish.png"))

    # a hostile README: its <script> and onerror never run in the page
    _open_sidebar(page)
    assert _search(page, "Hostile") == ["local/hostile-readme"]
    # and GitLab refuses to list its branches: the item view still opens
    gitlab.fail_next(lambda r: r.project == 899 and r.endpoint == "branch", 403,
                     body='{"message": "403 Forbidden"}')
    sidebar.locator('.jp-SharingHub-card[data-item="local/hostile-readme"]').click()
    readme = page.locator(".jp-SharingHub-item:visible .jp-SharingHub-readme")
    readme.locator("h1", has_text="Hostile README").wait_for()
    # the image has failed to load by now (so an onerror handler would have run)
    page.wait_for_function("""() => [...document.querySelectorAll(
        '.jp-SharingHub-readme img')].every(img => img.complete)""")
    readme.locator("a", has_text="click").click()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert readme.locator("script").count() == 0
    # the server's one line about its versions is a notification
    page.locator(".jp-toast-message", has_text=re.compile(
        r"^reading the versions of local/hostile-readme: GitLab answered 403")).wait_for()

    # the model card shows its preview (through api/download); its related dataset
    # link opens the dataset's view again
    _open_sidebar(page)
    assert _search(page, "UNet") == ["local/flood-model"]
    model_card = sidebar.locator('.jp-SharingHub-card[data-item="local/flood-model"]')
    poll(lambda: model_card.locator("img.jp-SharingHub-thumb").evaluate(
        "img => img.complete && img.naturalWidth > 0"), "the model's thumbnail")
    model_card.click()
    header = ".jp-SharingHub-item:visible .jp-SharingHub-itemHeader h1"
    page.locator(header, has_text="Flood detection model").wait_for()
    # a model's snippet tracks it in MLflow
    page.locator(".jp-SharingHub-item:visible .jp-SharingHub-itemHeader .jp-SharingHub-snippet"
                 ).click()
    page.locator(".jp-Notebook .jp-Cell",
                 has_text="%sharinghub track local/flood-model").wait_for()
    # the snippet went to the notebook, which is in front now: back to the model's tab
    page.locator(".lm-TabBar-tab", has_text="Flood detection model").click()
    page.locator(".jp-SharingHub-item:visible .jp-SharingHub-links button",
                 has_text=DATASET).click()
    page.locator(header, has_text="Sen1Floods11 sample").wait_for()

    # MLflow from the launcher (and in the palette): its UI in a main-area tab
    page.evaluate("window.jupyterapp.commands.execute('launcher:create')")
    page.locator(".jp-LauncherCard", has_text="Open MLflow").click()
    frame = page.frame_locator(".jp-SharingHub-mlflow iframe")
    frame.locator("text=Experiments").first.wait_for(timeout=90_000)
    assert page.evaluate(
        "window.jupyterapp.commands.hasCommand('sharinghub:open-mlflow')")
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette")
    palette.locator("input").fill("Open MLflow")
    palette.locator(".lm-CommandPalette-item", has_text="Open MLflow").first.wait_for()
    page.screenshot(path=str(OUTPUT / "mlflow.png"))
