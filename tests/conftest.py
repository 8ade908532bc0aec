"""Shared fixtures: pytest-jupyter's server, the GitLab API test server with the corpus, the
example local projects, and a running sharinghub extension fed by both."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import pytest

from tests.support.corpus import PROJECTS
from tests.support.gitlab_server import GitLabTestServer

pytest_plugins = ["pytest_jupyter.jupyter_server"]

TOKEN = "secret-token"


@pytest.fixture
def gitlab():
    from tests.test_crawler import fake

    with GitLabTestServer([fake(e, i + 1) for i, e in enumerate(PROJECTS)]) as server:
        yield server


@pytest.fixture
def local_projects(tmp_path):
    from sharinghub_server.examples import make_examples

    projects, _ = make_examples(tmp_path / "examples")
    return projects


@pytest.fixture
def jp_server_config(gitlab, local_projects, tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"sharinghub_server": True}},
        "SharingHub": {
            "gitlab_url": gitlab.url,
            "gitlab_token": TOKEN,
            "local_projects": [str(local_projects)],
            "index_url": f"sqlite://{tmp_path / 'index.sqlite'}",
            "crawl_interval": 0,
            # no background MLflow load: it would configure MLflow in this test process (once
            # per process) for whichever server warmed up first; the MLflow tests load it
            # when they ask, and tests/test_warmup.py tests the warm-up in subprocesses
            "mlflow_warmup": False,
        },
    }


async def wait_for_crawl(jp_fetch, timeout: float = 60) -> dict:
    """Bounded polling of the crawl status until a crawl has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await jp_fetch("sharinghub", "api", "index")
        status = json.loads(response.body)
        if status["state"] == "idle" and (status["last_crawl"] or {}).get("finished"):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError("the crawl did not finish in time")


@pytest.fixture(autouse=True)
def _mlflow_registry_follows_tracking():
    """Each test starts with MLflow's registry URI following its tracking URI, as in a fresh
    process: an embedded MLflow loaded in this process by an earlier test (a Jupyter server
    running here) left MLflow's registry pointing at that test's store, and a client made
    with only a tracking URI would register there."""
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_registry_uri(None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    yield
