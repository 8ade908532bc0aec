"""``sharinghub/mlflow/`` keeps Jupyter's credentials and framing to itself (issue 9): the proxy
to an external MLflow forwards no ``?token=`` (nor ``_xsrf``), and every answer, embedded or
proxied, may be framed by this origin only, with an admin's own Content-Security-Policy kept.

Jupyter runs in subprocesses (the embedded MLflow server is configured once per process); the
external server is a real ``mlflow server`` behind the MLflow SharingHub imitation.
"""

from __future__ import annotations

import pytest
import requests

from tests.conftest import TOKEN as GITLAB_TOKEN
from tests.support.gitlab_server import FakeProject, GitLabTestServer
from tests.support.jupyter_proc import jupyter_server
from tests.support.mlflow_servers import gateway_factory_fixture, mlflow_fixture
from tests.support.polling import poll

mlflow_upstream = mlflow_fixture(scope="module")
sharinghub_gateway = gateway_factory_fixture()

JUPYTER_TOKEN = "jupyter-side-token"
AUTH = {"Authorization": f"token {JUPYTER_TOKEN}"}
#: what an admin may have set in ``c.ServerApp.tornado_settings["headers"]``
ADMIN_CSP = "img-src 'self' data:"
FLOOD = FakeProject(id=4242, path_with_namespace="eo-lab/flood-model", name="Flood Model",
                    topics=["sharinghub:aimodel"], files={"README.md": "# Flood model\n"})
TRACKING = "sharinghub/mlflow/eo-lab/flood-model/tracking"


def _admin_config(folder) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "admin_config.py"
    config.write_text("c.ServerApp.tornado_settings = {'headers': "
                      f"{{'Content-Security-Policy': {ADMIN_CSP!r}}}}}\n")
    return f"--config={config}"


@pytest.fixture
def proxy(sharinghub_gateway, tmp_path):
    with GitLabTestServer([FLOOD], tokens={GITLAB_TOKEN: "alice"}) as gitlab:
        gateway = sharinghub_gateway(gitlab.url)
        with jupyter_server(tmp_path / "root", token=JUPYTER_TOKEN, args=[
                _admin_config(tmp_path / "etc"),
                f"--SharingHub.gitlab_url={gitlab.url}",
                f"--SharingHub.gitlab_token={GITLAB_TOKEN}",
                f"--SharingHub.mlflow_tracking_uri={gateway.url}"]) as server:
            poll(lambda: (requests.get(f"{server.url}sharinghub/api/index", headers=AUTH,
                                        timeout=10).json().get("last_crawl") or {})
                  .get("finished"), "the first crawl", 60)
            yield server, gateway


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedded-csp")
    with jupyter_server(root / "root", token=JUPYTER_TOKEN,
                        args=[_admin_config(root / "etc")]) as server:
        yield server


def _framed_by_self_only(answer: requests.Response) -> None:
    policy = answer.headers.get("Content-Security-Policy", "")
    directives = [d.strip() for d in policy.split(";")]
    assert "frame-ancestors 'self'" in directives, policy
    assert ADMIN_CSP in directives, policy  # the admin's policy holds too


def test_the_jupyter_token_in_a_query_never_reaches_the_mlflow_server(proxy):
    server, gateway = proxy
    gateway.reset_requests()
    query = ("max_results=5&filter=name%20LIKE%20%27Flood%25%27&order_by=name+ASC"
             "&view_type=ACTIVE_ONLY")
    # Jupyter takes its token from the query too: this request authenticates that way
    url = (f"{server.url}{TRACKING}/api/2.0/mlflow/experiments/search?max_results=5"
           f"&token={JUPYTER_TOKEN}&filter=name%20LIKE%20%27Flood%25%27&_xsrf=2%7Cabc"
           "&order_by=name+ASC&view_type=ACTIVE_ONLY")
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200, answer.text
    (seen,) = [r for r in gateway.requests if r.path.endswith("/experiments/search")]
    assert seen.query == query  # everything else as sent, in order, encoding kept
    assert seen.headers["Authorization"] == f"Bearer {GITLAB_TOKEN}"
    assert not any(JUPYTER_TOKEN in f"{r.path}?{r.query} {r.headers}" or "_xsrf" in r.query
                   for r in gateway.requests)


def test_proxied_answers_may_be_framed_by_this_origin_only(proxy):
    server, _ = proxy
    ui = requests.get(f"{server.url}{TRACKING}/", headers=AUTH, timeout=60)
    assert ui.status_code == 200 and b"<html" in ui.content.lower()
    api = requests.get(f"{server.url}{TRACKING}/api/2.0/mlflow/experiments/search",
                       params={"max_results": 1}, headers=AUTH, timeout=30)
    assert api.status_code == 200, api.text
    for answer in (ui, api):
        _framed_by_self_only(answer)


def test_embedded_answers_may_be_framed_by_this_origin_only(embedded):
    ui = requests.get(f"{embedded.tracking}/", headers=AUTH, timeout=60)
    assert ui.status_code == 200 and b"<html" in ui.content.lower()
    api = requests.get(f"{embedded.tracking}/api/2.0/mlflow/experiments/search",
                       params={"max_results": 1}, headers=AUTH, timeout=30)
    assert api.status_code == 200, api.text
    for answer in (ui, api):
        _framed_by_self_only(answer)


def test_an_admins_own_frame_ancestors_wins():
    from sharinghub_server.handlers.mlflow import framed_by_self

    portal = "default-src 'self'; frame-ancestors 'self' https://portal.example"
    assert framed_by_self(portal) == portal
    assert framed_by_self("default-src 'self';") == "default-src 'self'; frame-ancestors 'self'"
