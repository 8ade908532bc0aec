"""The download route under pressure (issue 9): GitLab redirects to other hosts, files beyond
tornado's 100 MB client limit, upstreams that break off, clients that stop reading, and local
projects' files that only make sense (or hold secrets) on this machine.

The Jupyter server runs on the test's event loop (pytest-jupyter), so every synchronous client
here runs in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
import requests
import tornado.httpserver
import tornado.web

from tests.conftest import TOKEN, wait_for_crawl
from tests.support.gitlab_server import StreamedFile
from tests.support.polling import poll
from tests.support.threaded import ThreadedServer

DATASET = "sharinghub-test/sen1floods11-dataset"
MiB = 1 << 20


class _Storage(tornado.web.RequestHandler):
    def initialize(self, server: ObjectStorage) -> None:
        self.server = server

    def get(self, path: str) -> None:
        self.server.seen.append((self.request.uri, dict(self.request.headers)))
        if path == "bucket/notes.txt":  # one more hop, relative, as storage gateways do
            self.redirect("/objects/notes.txt?signature=abc")
        elif path == "objects/notes.txt":
            self.finish(b"notes from the object storage")
        else:
            self.send_error(404)


class ObjectStorage(ThreadedServer):
    """Another host, as GitLab's LFS object storage: records every request's headers."""

    thread_name = "object-storage"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, dict[str, str]]] = []

    def http_server(self) -> tornado.httpserver.HTTPServer:
        return tornado.httpserver.HTTPServer(tornado.web.Application(
            [(r"/(.*)", _Storage, {"server": self})], log_function=lambda _h: None))


@pytest.fixture
def storage():
    with ObjectStorage() as server:
        yield server


@pytest.fixture
def download_url(jp_http_port, jp_base_url):
    def url(item: str, path: str) -> str:
        return (f"http://localhost:{jp_http_port}{jp_base_url}sharinghub/api/download/"
                f"{item}/-/{path}")
    return url


def _get(url: str, headers: dict, **kw) -> requests.Response:
    return requests.get(url, headers=headers, timeout=60, **kw)


async def test_a_redirect_to_another_host_carries_no_gitlab_credentials(
        jp_fetch, gitlab, storage, download_url, jp_auth_header):
    await wait_for_crawl(jp_fetch)
    gitlab.raw_redirects["docs/notes.txt"] = f"{storage.url}/bucket/notes.txt?X-Amz-Date=1"
    gitlab.reset_requests()
    answer = await asyncio.to_thread(_get, download_url(DATASET, "docs/notes.txt"),
                                     jp_auth_header)
    assert answer.status_code == 200 and answer.content == b"notes from the object storage"
    # GitLab got the token; both hops on the other host got no credential of any kind
    (asked,) = [r for r in gitlab.requests if r.endpoint == "file_raw"]
    assert asked.token == TOKEN
    assert [uri for uri, _ in storage.seen] == ["/bucket/notes.txt?X-Amz-Date=1",
                                                "/objects/notes.txt?signature=abc"]
    for _, headers in storage.seen:
        assert not {"Private-Token", "Authorization", "Cookie"} & set(headers)
        assert TOKEN not in str(headers)


async def test_a_redirect_within_gitlab_keeps_the_credentials(jp_fetch, gitlab, download_url,
                                                              jp_auth_header):
    await wait_for_crawl(jp_fetch)
    private = gitlab.project("secret/private-model")
    gitlab.raw_redirects["alias.md"] = (f"/api/v4/projects/{private.id}/repository/files/"
                                        "README.md/raw?ref=main")
    answer = await asyncio.to_thread(_get, download_url("secret/private-model", "alias.md"),
                                     jp_auth_header)
    assert answer.status_code == 200 and b"Private model" in answer.content
    assert {r.token for r in gitlab.requests if r.endpoint == "file_raw"} == {TOKEN}


async def test_endless_redirects_end_in_one_error_line(jp_fetch, gitlab, download_url,
                                                       jp_auth_header):
    await wait_for_crawl(jp_fetch)
    pid = gitlab.project(DATASET).id
    gitlab.raw_redirects["loop.txt"] = (f"/api/v4/projects/{pid}/repository/files/loop.txt/raw"
                                        "?ref=main")
    answer = await asyncio.to_thread(_get, download_url(DATASET, "loop.txt"), jp_auth_header)
    assert answer.status_code == 502
    assert "redirect" in answer.json()["description"]
    assert "\n" not in answer.json()["description"]
    assert 1 < gitlab.count(lambda r: "loop.txt" in r.path) <= 10


async def test_a_file_over_100_mib_arrives_whole(jp_fetch, gitlab, download_url,
                                                 jp_auth_header):
    """tornado's client stops at 100 MiB; a chunked answer was then cut with status 200."""
    await wait_for_crawl(jp_fetch)
    big = gitlab.raw_streams["weights.bin"] = StreamedFile(101 * MiB + 12345, sized=False)

    def fetch() -> tuple[int, int, str]:
        digest, size = hashlib.sha256(), 0
        with _get(download_url(DATASET, "weights.bin"), jp_auth_header, stream=True) as r:
            for chunk in r.iter_content(MiB):
                digest.update(chunk)
                size += len(chunk)
        return r.status_code, size, digest.hexdigest()

    status, size, digest = await asyncio.to_thread(fetch)
    assert (status, size) == (200, big.size)
    assert digest == big.sha256()


@pytest.mark.parametrize("sized", [True, False], ids=["content-length", "chunked"])
async def test_a_truncated_upstream_ends_the_download_in_error(jp_fetch, gitlab, download_url,
                                                               jp_auth_header, sized):
    await wait_for_crawl(jp_fetch)
    gitlab.raw_streams["cut.bin"] = StreamedFile(8 * MiB, sized=sized, cut_after=3 * MiB)

    def fetch() -> bytes:
        return _get(download_url(DATASET, "cut.bin"), jp_auth_header).content

    with pytest.raises(requests.exceptions.RequestException):
        await asyncio.to_thread(fetch)


async def test_a_client_that_stops_reading_stops_the_upstream_download(
        jp_fetch, gitlab, download_url, jp_auth_header):
    """The server reads from GitLab only as fast as its client reads: a paused client leaves
    the upstream writer waiting after a few socket buffers (about 10 MiB measured here), and
    a client that leaves ends the upstream download. (Below tornado's 100 MB limit, so that
    a server without backpressure reads it all.)"""
    await wait_for_crawl(jp_fetch)
    big = gitlab.raw_streams["paused.bin"] = StreamedFile(96 * MiB, sized=False)
    seen: dict[str, int] = {}

    def paused_client() -> None:
        with _get(download_url(DATASET, "paused.bin"), jp_auth_header, stream=True) as r:
            assert r.status_code == 200
            first = r.raw.read(MiB)
            assert first == next(big.chunks())
            # the client reads nothing more: the upstream writer ends up waiting for it
            poll(lambda: big.state != "sending" or (
                big.waiting_since is not None and time.monotonic() - big.waiting_since > 1),
                "the upstream writer to wait for the paused client", 60)
            seen["sent"] = big.sent
            assert big.state == "sending"
        poll(lambda: big.state == "closed", "the upstream download to stop", 30)

    await asyncio.to_thread(paused_client)
    assert seen["sent"] < 32 * MiB, seen


SECRET = "s3cr3t-access-key"


async def test_local_only_files_are_not_served(jp_fetch, local_projects, download_url,
                                               jp_auth_header):
    """``.dvc/config.local`` is where DVC keeps credentials; ``.dvc`` serves only ``config``
    and ``.gitignore``; no ``.git`` and no credential file anywhere."""
    await wait_for_crawl(jp_fetch)
    project = local_projects / "sen1floods11-sample"
    hidden = {".dvc/config.local": f"['remote \"local\"']\n    secret_access_key = {SECRET}\n",
              ".dvc/tmp/lock": SECRET, ".dvc/cache/files/md5/ab/cdef": SECRET,
              ".dvc/plots/x.json": SECRET, ".env": f"AWS_SECRET_ACCESS_KEY={SECRET}\n",
              "data/.netrc": f"machine s3 password {SECRET}\n",
              ".git-credentials": f"https://u:{SECRET}@example.com\n"}
    for path, text in hidden.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)
    (project / "notes").symlink_to(project / ".dvc" / "config.local")
    item = "local/sen1floods11-sample"

    def fetch_all() -> dict[str, requests.Response]:
        paths = [*hidden, ".git/config", ".git/HEAD", "notes", ".dvc/config", ".dvc/.gitignore",
                 "README.md"]
        return {p: _get(download_url(item, p), jp_auth_header) for p in paths}

    answers = await asyncio.to_thread(fetch_all)
    for path in (*hidden, ".git/config", ".git/HEAD", "notes"):
        answer = answers[path]
        assert answer.status_code == 404, path
        assert SECRET not in answer.text and "\n" not in answer.json()["description"]
    for path in (".dvc/config", ".dvc/.gitignore", "README.md"):
        assert answers[path].status_code == 200, path
    assert b"url = " in answers[".dvc/config"].content

