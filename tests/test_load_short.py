"""The load benchmark's short version (``benchmarks/load.py`` runs 50 clients for 60 s):
10 clients for 8 s against a real ``jupyter server`` while crawls run (300 projects behind
the GitLab test server, 20 ms per answer) and a DVC pull is in progress.

Asserted: no error, every answer well-formed (status, shape, downloads byte for byte), every
kind of request answered, the crawl and the pull really ran during the load, the event loop
was watched. Not asserted: any time. The event loop's lateness (measured inside the server by
``tests/support/loop_watch.py``) is printed only: on a shared 2-core machine it is mostly
waiting for a CPU or for the GIL (seconds when the machine is loaded), not the loop blocking,
so no bound on it is robust.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.load import KINDS, load_world, run_load


@pytest.fixture
def world(tmp_path):
    with load_world(tmp_path, projects=300, latency=0.02, recent=0.2, pull_files=200,
                    pull_mb=20, mlflow_warmup=False, crawl_timeout=180) as world:
        yield world


def test_mixed_load_while_crawling_and_pulling(world, capsys):
    result = asyncio.run(run_load(world, clients=10, duration=8))
    with capsys.disabled():
        print(f"\nshort load (start-up crawl {world.first_crawl_s:.1f} s, {world.items} "
              f"items):\n{result.table()}")
    assert result.errors == []
    for kind in KINDS:
        assert result.kinds[kind].latencies, f"no {kind} request was answered"
    assert result.crawls_started >= 1 and result.crawl_running > 0
    assert result.pull_running > 0
    assert result.loop["ticks"] > 0
    log = world.server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


def test_geometry_searches_sent_at_start_up_all_succeed(tmp_path):
    """Clients that search by geometry as soon as the server answers, while its start-up
    crawl runs (the first use of shapely in the process), then once more later. The server's
    threads switch every 10 us instead of 5 ms (a ``sitecustomize`` of this test's), so that
    what one start-up in four or so hits on this machine happens at (nearly) every start."""
    import json
    import os
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from sharinghub_server.examples import make_examples
    from tests.support.git_repos import make_dataset_repo, tool_env
    from tests.support.jupyter_proc import jupyter_server
    from tests.support.load import GITLAB_TOKEN, gitlab_process

    dataset = make_dataset_repo(tmp_path / "repos", "ds", str(tmp_path / "remote"),
                                env=tool_env(tmp_path / "home"))
    examples, _ = make_examples(tmp_path / "examples")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.setswitchinterval(1e-5)\n")
    polygon = {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10],
                                                   [0, 0]]]}
    with gitlab_process(300, 0.02, 0.0, dataset.bare) as gitlab_url:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"SharingHub": {
            "gitlab_url": gitlab_url, "gitlab_token": GITLAB_TOKEN, "crawl_interval": 0,
            "local_projects": [str(examples)], "mlflow_warmup": False}}))
        with jupyter_server(tmp_path / "root", token="t", args=[f"--config={config}"],
                            env={"PYTHONPATH": os.pathsep.join(
                                [str(site), os.environ.get("PYTHONPATH", "")])}) as s:
            def search(_: int) -> list[tuple[int, str]]:
                answers = []
                for _ in range(4):
                    r = requests.post(f"{s.url}sharinghub/api/stac/search", timeout=60,
                                      headers={"Authorization": "token t"},
                                      json={"intersects": polygon, "limit": 5})
                    answers.append((r.status_code, r.text[:200]))
                return answers

            with ThreadPoolExecutor(12) as pool:
                answers = [a for batch in pool.map(search, range(12)) for a in batch]
            later = search(0)
    assert [a for a in answers + later if a[0] != 200] == []
