"""``sharinghub-lab index``, run as a real command against the GitLab test server."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import sys

import pytest

from tests.support.gitlab_server import GitLabTestServer
from tests.test_crawler import PROJECTS, TOKEN, fake


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("sharinghub-lab") or ""
    cmd = [exe] if exe else [sys.executable, "-m", "sharinghub_server.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def gitlab():
    with GitLabTestServer([fake(e, i + 1) for i, e in enumerate(PROJECTS)]) as server:
        yield server


def test_index_command_crawls_and_summarises(gitlab, tmp_path):
    index = tmp_path / "idx.sqlite"
    result = run_cli("index", "--gitlab-url", gitlab.url, "--token", TOKEN,
                     "--index", f"sqlite://{index}")
    assert result.returncode == 0, result.stderr
    assert "ai-model: 3 items" in result.stdout
    assert "dataset: 2 items" in result.stdout
    assert "broken/bad-yaml: README front matter is not valid YAML" in result.stdout
    assert "crawling" in result.stderr  # the progress bar
    assert TOKEN not in result.stdout + result.stderr
    with sqlite3.connect(index) as db:
        (count,) = db.execute("select count(*) from items").fetchone()
    assert count == 10


def test_index_command_takes_the_token_from_the_environment(gitlab, tmp_path):
    import os

    env = {**os.environ, "GITLAB_TOKEN": TOKEN}
    env.pop("SHARINGHUB_GITLAB_TOKEN", None)
    result = run_cli("index", "--gitlab-url", gitlab.url, "--index",
                     f"sqlite://{tmp_path / 'i.sqlite'}", "--quiet", env=env)
    assert result.returncode == 0
    assert "secret/private-model" not in result.stdout  # no problem with it
    assert "ai-model: 3 items" in result.stdout  # the private one counted


def test_index_command_local_folder(tmp_path):
    from sharinghub_server.examples import make_examples

    projects, _ = make_examples(tmp_path / "demo")
    result = run_cli("index", "--local", str(projects), "--index",
                     f"sqlite://{tmp_path / 'i.sqlite'}", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "dataset: 1 item" in result.stdout and "ai-model: 1 item" in result.stdout


def test_unreachable_gitlab_exits_non_zero_with_one_clear_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("index", "--gitlab-url", f"http://127.0.0.1:{port}", "--token", "t0k3n",
                     "--index", f"sqlite://{tmp_path / 'i.sqlite'}", "--quiet", "--retries", "1")
    assert result.returncode == 1
    assert "FAILED" in result.stdout and "unreachable" in result.stdout
    assert "Traceback" not in result.stderr
    assert "t0k3n" not in result.stdout + result.stderr


def test_usage_errors():
    result = run_cli("index")
    assert result.returncode == 2
    assert "--gitlab-url URL or --local DIR" in result.stderr


def test_index_prints_a_total_and_refuses_a_folder_without_projects(tmp_path):
    from sharinghub_server.examples import make_examples

    projects, _ = make_examples(tmp_path / "demo")
    index = tmp_path / "i.sqlite"
    result = run_cli("index", "--local", str(projects), "--index", f"sqlite://{index}",
                     "--quiet")
    assert result.returncode == 0, result.stderr
    assert "  total: 2 items" in result.stdout.splitlines()

    # the parent of the projects folder: one line saying so, pointing at it; no index made
    parent = projects.parent
    result = run_cli("index", "--local", str(parent), "--index",
                     f"sqlite://{tmp_path / 'other.sqlite'}", "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: --local {parent}: no project found there (a project is a subfolder with a "
        f"README.md); did you mean --local {projects}?")
    assert not (tmp_path / "other.sqlite").exists()
    missing = run_cli("index", "--local", str(tmp_path / "nope"), "--quiet")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: --local {tmp_path / 'nope'}: no such folder"
