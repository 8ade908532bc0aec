"""A Jupyter server (subprocess) for the notebook-side tests: the example projects, a DVC
dataset with two versions (``v1.0``, ``v1.1``) on a local remote, and a hostile project whose
title, README and links hold ``<script>``, ``onerror=`` and ``javascript:``; on request, a
dataset too big to pull quickly (for cancelling a pull while it runs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.git_repos import DatasetRepo, make_big_dataset, make_dataset_repo, tool_env
from tests.support.jupyter_proc import JupyterProcess, jupyter_server
from tests.support.polling import poll

TOKEN = "notebook-side-token"
DATASET = "local/floods"  # v1.0 and v1.1
EXAMPLE_DATASET = "local/sen1floods11-sample"
MODEL = "local/flood-model"
HOSTILE = "local/hostile"
BIG = "local/big"  # only with notebook_site(..., big=True)

HOSTILE_README = """---
title: "<script>alert('title')</script><img src=x onerror=alert('img')>`${alert('tpl')}`"
topics: [sharinghub:dataset, "<b onmouseover=alert('kw')>kw</b>"]
preview: "javascript:alert('preview')"
extent:
  spatial: [10.0, 10.0, 11.0, 11.0]
links:
  - rel: related
    href: "javascript:alert('link')"
    title: "<img src=x onerror=alert('linktitle')>"
  - rel: about
    href: "JaVaScRiPt:alert('case')"
---
# Hostile <script>alert('heading')</script>

<img src="x" onerror="alert('body')">
<a href="javascript:alert('a')">click</a> and [click](javascript:alert('md'))
"""


@dataclass
class Site:
    server: JupyterProcess
    dataset: DatasetRepo
    big: DatasetRepo | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def root(self) -> Path:
        return self.server.root

    def configure_kernel(self, monkeypatch) -> None:
        """The environment of a kernel started outside Jupyter, pointed at this server (and
        not at any MLflow the test machine has configured)."""
        monkeypatch.setenv("SHARINGHUB_URL", self.url)
        monkeypatch.setenv("SHARINGHUB_TOKEN", TOKEN)
        monkeypatch.setenv("SHARINGHUB_ROOT", str(self.root))
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN"):
            monkeypatch.delenv(name, raising=False)


@contextlib.contextmanager
def notebook_site(tmp: Path, big: bool = False) -> Iterator[Site]:
    """``with notebook_site(tmp) as site:`` the server, its first crawl finished; ``big``
    adds :data:`BIG`: 400 files, 40 MB (its pull takes seconds)."""
    from sharinghub_server.examples import make_examples

    projects, _ = make_examples(tmp / "examples")
    dataset = make_dataset_repo(projects, "floods", str(tmp / "floods-remote"),
                                env=tool_env(tmp / "home"), title="Floods in two versions")
    big_dataset = make_big_dataset(projects, "big", str(tmp / "big-remote"), n_files=400,
                                   total_bytes=40_000_000, env=tool_env(tmp / "home")
                                   ) if big else None
    hostile = projects / "hostile"
    hostile.mkdir()
    (hostile / "README.md").write_text(HOSTILE_README)
    with jupyter_server(tmp / "root", token=TOKEN, base_url="/a%40b/",
                        args=[f"--SharingHub.local_projects={projects}",
                              "--SharingHub.crawl_interval=0"]) as server:
        auth = {"Authorization": f"token {TOKEN}"}
        poll(lambda: (requests.get(f"{server.url}sharinghub/api/index", headers=auth,
                                   timeout=10).json().get("last_crawl") or {}).get("finished"),
             "the first crawl", 60)
        yield Site(server, dataset, big_dataset)
