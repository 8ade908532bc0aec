"""A GitLab REST API (v4) test server speaking real HTTP on loopback.

GitLab cannot run in the test environment, so the crawler is exercised against this server: a
tornado application in a background thread (with its own asyncio loop) that answers the parts
of ``/api/v4`` the catalog uses with GitLab's JSON shapes, offset pagination headers and
``Link`` header, token authentication and visibility rules.  It also records every request,
injects latency (without blocking, so concurrent clients overlap) and injects faults (random
with a seeded RNG, or forced with :meth:`GitLabTestServer.fail_next`): HTTP errors, and the
faults a network gives (:data:`DROP`, :data:`TIMEOUT`, :data:`TRUNCATE`); limits the request
rate as GitLab does (``rate_limit``: 429 with ``Retry-After``); and can hold requests until a
test releases them (:meth:`GitLabTestServer.hold`), to stop a client at a chosen point.

A project can also be backed by a real git repository (:meth:`GitLabTestServer.add_git_project`):
the server then reads the repository API (tree, files, tags, branches, commits...) from it and
serves it to git clients over smart HTTP at GitLab's URLs (``<url>/<path_with_namespace>.git``)
by running ``git http-backend``, with GitLab's authentication rules.

Clients can also write a little, as a publishing client does: create a project
(``POST /projects``, backed by a new empty repository the server creates, to push to over HTTP),
edit it (``PUT /projects/:id``) and read namespaces (``GET /namespaces/:id``).  Users named in
``readers`` may read everything and write nothing (Reporter access).

Only tornado, the standard library and the ``git`` executable are used.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import math
import os
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import tornado.httpserver
import tornado.iostream
import tornado.web

from tests.support.threaded import ThreadedServer

__all__ = [
    "CATEGORY_TOPICS",
    "CONNECTION_FAULTS",
    "DROP",
    "LICENSES",
    "TIMEOUT",
    "TRUNCATE",
    "FakeProject",
    "FaultRule",
    "GitLabTestServer",
    "Hold",
    "RequestRecord",
    "StreamedFile",
    "make_synthetic_projects",
]

UTC = timezone.utc
API_PREFIX = "/api/v4"
GITLAB_VERSION = "17.5.1"

#: GitLab topics of the SharingHub categories.
CATEGORY_TOPICS: tuple[str, ...] = (
    "sharinghub:aimodel",
    "sharinghub:dataset",
    "sharinghub:processor",
    "sharinghub:tools",
    "sharinghub:space",
)

#: GitLab's ``license`` objects (``GET /projects/:id?license=true``) by license key.
LICENSES: dict[str, dict[str, Any]] = {
    "mit": {
        "key": "mit",
        "name": "MIT License",
        "nickname": None,
        "html_url": "https://opensource.org/licenses/MIT",
        "source_url": "https://opensource.org/licenses/MIT",
    },
    "apache-2.0": {
        "key": "apache-2.0",
        "name": "Apache License 2.0",
        "nickname": None,
        "html_url": "https://www.apache.org/licenses/LICENSE-2.0",
        "source_url": "https://www.apache.org/licenses/LICENSE-2.0",
    },
    "gpl-3.0": {
        "key": "gpl-3.0",
        "name": "GNU General Public License v3.0",
        "nickname": "GNU GPLv3",
        "html_url": "https://www.gnu.org/licenses/gpl-3.0.html",
        "source_url": "https://www.gnu.org/licenses/gpl-3.0.txt",
    },
    "bsd-3-clause": {
        "key": "bsd-3-clause",
        "name": 'BSD 3-Clause "New" or "Revised" License',
        "nickname": None,
        "html_url": "https://opensource.org/licenses/BSD-3-Clause",
        "source_url": "https://opensource.org/licenses/BSD-3-Clause",
    },
    "cc-by-4.0": {
        "key": "cc-by-4.0",
        "name": "Creative Commons Attribution 4.0 International",
        "nickname": None,
        "html_url": "https://creativecommons.org/licenses/by/4.0/legalcode",
        "source_url": "https://creativecommons.org/licenses/by/4.0/legalcode",
    },
    "other": {
        "key": "other",
        "name": "Other",
        "nickname": None,
        "html_url": None,
        "source_url": None,
    },
}

#: SPDX identifiers of the license keys above (what a README's ``license:`` would say).
_SPDX = {"mit": "MIT", "apache-2.0": "Apache-2.0", "gpl-3.0": "GPL-3.0-only",
         "bsd-3-clause": "BSD-3-Clause", "cc-by-4.0": "CC-BY-4.0"}

#: fault kinds that are no HTTP answer, usable wherever a fault status is (``fault_statuses``,
#: :meth:`GitLabTestServer.fail_next`): the connection is closed without an answer
DROP = "drop"
#: no answer for ``fault_hang`` seconds, then the connection is closed (a client with a
#: shorter timeout sees a timeout)
TIMEOUT = "timeout"
#: the real answer's headers (with its full ``Content-Length``) and half its body, then the
#: connection is closed (a body cut short, as a proxy or a reset connection leaves it)
TRUNCATE = "truncate"
CONNECTION_FAULTS = (DROP, TIMEOUT, TRUNCATE)

_FAULT_BODIES: dict[int, tuple[str, bytes]] = {
    500: ("application/json", b'{"message":"500 Internal Server Error"}'),
    502: ("text/html; charset=utf-8",
          b"<html><head><title>502 Bad Gateway</title></head><body><center>"
          b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"),
    503: ("application/json", b'{"message":"503 Service Unavailable"}'),
    504: ("text/html; charset=utf-8",
          b"<html><body><h1>504 Gateway Time-out</h1></body></html>\n"),
    429: ("text/plain", b"Retry later\n"),
}


# --------------------------------------------------------------------------------------------
# helpers


def _now() -> datetime:
    """Current UTC time truncated to milliseconds (GitLab's precision)."""
    return _ms(datetime.now(UTC))


def _ms(dt: datetime) -> datetime:
    """``dt`` as an aware UTC datetime truncated to milliseconds (naive means UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def iso_ms(dt: datetime | None) -> str | None:
    """GitLab's timestamp format for records: ``2024-01-15T10:20:30.123Z``."""
    if dt is None:
        return None
    dt = _ms(dt)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _iso_git(dt: datetime | None) -> str | None:
    """GitLab's timestamp format for git dates: ``2024-01-15T10:20:30.000+00:00``."""
    if dt is None:
        return None
    return _ms(dt).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


def _parse_time(value: str) -> datetime:
    """Parse an ISO 8601 query parameter (``Z`` or offset, optional fraction, or a date)."""
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if " " in text and "T" not in text:
        text = text.replace(" ", "T", 1)
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)", text)
    if m:  # Python 3.10's fromisoformat wants exactly 3 or 6 fraction digits
        text = f"{m.group(1)}.{m.group(2)[:6].ljust(6, '0')}{m.group(3)}"
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _to_bytes(content: bytes | str) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else bytes(content)


def _sha1(*parts: object) -> str:
    return hashlib.sha1(":".join(str(p) for p in parts).encode()).hexdigest()


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _clean_path(path: str) -> str:
    clean = "/".join(part for part in path.strip().split("/") if part not in ("", "."))
    if not clean or ".." in clean.split("/"):
        raise ValueError(f"bad repository path {path!r}")
    return clean


def _normalize_files(files: Mapping[str, bytes | str]) -> dict[str, bytes]:
    """Repository files as ``{clean path: bytes}``; a path may not be both a file and a dir."""
    out = {_clean_path(p): _to_bytes(c) for p, c in files.items()}
    dirs = {p.rsplit("/", 1)[0] for p in out if "/" in p}
    dirs |= {d.rsplit("/", i)[0] for d in list(dirs) for i in range(1, d.count("/") + 1)}
    clash = dirs & out.keys()
    if clash:
        raise ValueError(f"paths used as both file and directory: {sorted(clash)}")
    return out


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on", "t")


def _hexish(value: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{7,40}", value))


# --------------------------------------------------------------------------------------------
# data model


@dataclass
class FakeProject:
    """A GitLab project; ``files`` is the repository at the head of the default branch.

    ``path``, ``name`` and ``namespace`` derive from ``path_with_namespace`` unless given;
    ``head_commit`` is derived from the content unless given.  Datetimes are UTC (naive ones
    are taken as UTC) and truncated to milliseconds.  ``license`` is GitLab's ``license``
    object (see :data:`LICENSES`) or just its key (``"mit"``).  Tags are dicts ``{name,
    commit (sha, default: head), message (None: lightweight), created_at}``; releases are
    dicts ``{tag_name, name, description, released_at, created_at}``.

    ``git_repo`` (a bare repository, see :meth:`GitLabTestServer.add_git_project`) makes the
    repository real: ``files``, ``head_commit`` and ``tags`` then come from it (leave them
    empty) and the server keeps them in sync with it.
    """

    id: int
    path_with_namespace: str
    name: str = ""
    path: str = ""
    description: str | None = None
    topics: list[str] = field(default_factory=list)
    visibility: str = "public"
    default_branch: str = "main"
    created_at: datetime = field(default_factory=lambda: _now() - timedelta(days=30))
    last_activity_at: datetime = field(default_factory=lambda: _now() - timedelta(days=2))
    star_count: int = 0
    forks_count: int = 0
    files: dict[str, bytes | str] = field(default_factory=dict)
    head_commit: str = ""
    tags: list[dict[str, Any]] = field(default_factory=list)
    releases: list[dict[str, Any]] = field(default_factory=list)
    license: dict[str, Any] | str | None = None
    readme_url: str | None = None
    avatar_url: str | None = None
    archived: bool = False
    namespace: dict[str, Any] | None = None
    git_repo: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if self.visibility not in ("public", "internal", "private"):
            raise ValueError(f"bad visibility {self.visibility!r}")
        self.path_with_namespace = self.path_with_namespace.strip("/")
        if "/" not in self.path_with_namespace:
            raise ValueError("path_with_namespace needs a namespace: 'group/project'")
        ns_path, own_path = self.path_with_namespace.rsplit("/", 1)
        self.path = self.path or own_path
        self.name = self.name or self.path
        if self.namespace is None:
            self.namespace = _namespace_of(ns_path)
        self.created_at = _ms(self.created_at)
        self.last_activity_at = _ms(self.last_activity_at)
        if isinstance(self.license, str):
            self.license = dict(LICENSES.get(self.license.lower(), {
                **LICENSES["other"], "key": self.license.lower(), "name": self.license}))
        if not self.head_commit:
            digest = sorted((p, _git_blob_sha(_to_bytes(c))) for p, c in self.files.items())
            self.head_commit = _sha1("head", self.id, self.path_with_namespace, digest)

    @property
    def namespace_path(self) -> str:
        """Full path of the project's namespace (``group/sub``)."""
        return self.path_with_namespace.rsplit("/", 1)[0]


def _namespace_id(full_path: str) -> int:
    return 1000 + int(_sha1("ns", full_path.lower())[:8], 16) % 9_000_000


def _namespace_of(full_path: str) -> dict[str, Any]:
    parent = full_path.rsplit("/", 1)[0] if "/" in full_path else None
    path = full_path.rsplit("/", 1)[-1]
    return {
        "id": _namespace_id(full_path),
        "name": path,
        "path": path,
        "kind": "group",
        "full_path": full_path,
        "parent_id": _namespace_id(parent) if parent else None,
        "avatar_url": None,
    }


@dataclass
class RequestRecord:
    """One request received by the server.

    ``path`` is the raw (still percent-encoded) path without the query; ``query`` maps each
    parameter to its last value; ``endpoint`` is the route name (``projects``, ``project``,
    ``tree``, ``file_raw``, ``file``, ``blob_raw``, ``blob``, ``archive``, ``tags``, ``tag``,
    ``releases``, ``release``, ``branches``, ``branch``, ``commits``, ``commit``, ``user``,
    ``version``, ``namespace``, ``git`` (smart HTTP: ``/<path>.git/info/refs``,
    ``/git-upload-pack``, ``/git-receive-pack``) or ``unknown``); a write keeps the endpoint
    name (``POST /projects`` is ``projects``); ``project`` is the id of the project the path
    names, when it exists; ``status`` is set once answered; ``faulted`` tells an injected fault
    (``fault`` says which).
    """

    method: str
    path: str
    query: dict[str, str]
    endpoint: str
    project: int | None = None
    token: str | None = None
    status: int | None = None
    faulted: bool = False
    received: float = 0.0
    #: the injected fault's kind: its status as text (``"500"``, ``"429"``), ``"rate-limit"``
    #: for a 429 of ``rate_limit``, or one of :data:`CONNECTION_FAULTS` (``status`` then stays
    #: ``None``, except for :data:`TRUNCATE`, whose status line was sent)
    fault: str | None = None
    #: whether a :meth:`GitLabTestServer.hold` held the request
    held: bool = False


Matcher = str | Callable[[RequestRecord], bool] | None


@dataclass
class FaultRule:
    """A forced failure: the next ``times`` requests matching ``match`` answer ``status``
    (or get one of :data:`CONNECTION_FAULTS`)."""

    match: Matcher
    status: int | str
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    hits: int = 0


class Hold:
    """Requests held by :meth:`GitLabTestServer.hold`: they wait (after being logged, before
    latency and faults) until :meth:`release`, or until the server stops."""

    def __init__(self, match: Matcher, times: int | None) -> None:
        self.match = match
        self.times = times
        #: requests held so far, and how many of them are waiting now
        self.held = 0
        self.waiting = 0
        self._released = threading.Event()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def release(self) -> None:
        """Let the held requests (and later matching ones) go on."""
        self._released.set()


def _matches(match: Matcher, record: RequestRecord) -> bool:
    """``None`` matches all; ``"/..."`` is a path prefix (``/api/v4`` optional); another
    string is an endpoint name; a callable is a predicate on the record."""
    if match is None:
        return True
    if callable(match):
        return bool(match(record))
    if match.startswith("/"):
        return record.path.startswith(match) or record.path.startswith(API_PREFIX + match)
    return record.endpoint == match


@dataclass
class _Commit:
    sha: str
    files: dict[str, bytes]
    committed_date: datetime
    title: str
    message: str
    parent_ids: list[str]
    _entries: list[dict[str, str]] | None = None
    #: real authorship of commits read from a git repository: (name, email, date) twice
    author: tuple[str, str, datetime] | None = None
    committer: tuple[str, str, datetime] | None = None

    def entries(self) -> list[dict[str, str]]:
        """Every tree entry (dirs and blobs) with real git object ids, in git order."""
        if self._entries is None:
            self._entries = _tree_entries(self.files)
        return self._entries

    def dirs(self) -> set[str]:
        return {e["path"] for e in self.entries() if e["type"] == "tree"}


def _tree_entries(files: Mapping[str, bytes]) -> list[dict[str, str]]:
    root: dict[str, Any] = {}
    for path, data in files.items():
        node = root
        *dirs, leaf = path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = data
    entries: list[dict[str, str]] = []

    def walk(node: dict[str, Any], prefix: str) -> str:
        items: list[tuple[bytes, bytes, str]] = []
        for name in sorted(node, key=lambda n: n + "/" if isinstance(node[n], dict) else n):
            value, path = node[name], prefix + name
            if isinstance(value, dict):
                entry = {"id": "", "name": name, "type": "tree", "path": path, "mode": "040000"}
                entries.append(entry)
                entry["id"] = walk(value, path + "/")
                items.append((b"40000", name.encode(), entry["id"]))
            else:
                sha = _git_blob_sha(value)
                entries.append({"id": sha, "name": name, "type": "blob", "path": path,
                                "mode": "100644"})
                items.append((b"100644", name.encode(), sha))
        body = b"".join(m + b" " + n + b"\0" + bytes.fromhex(s) for m, n, s in items)
        return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()

    walk(root, "")
    return entries


@dataclass
class _Repo:
    commits: dict[str, _Commit]
    log: list[str]  # default branch history, newest first
    blobs: dict[str, bytes]
    branches: dict[str, str] | None = None  # name -> sha; None: only the default branch

    @property
    def head(self) -> _Commit:
        return self.commits[self.log[0]]

    def add(self, commit: _Commit) -> None:
        self.commits[commit.sha] = commit
        for data in commit.files.values():
            self.blobs.setdefault(_git_blob_sha(data), data)


@dataclass
class StreamedFile:
    """A raw file made up as it is sent, for files too big to hold (in memory or on disk):
    ``size`` bytes derived from ``seed``, written in 1 MiB chunks at the reader's pace (each
    chunk once the previous one reached the socket).  ``sized`` sends ``Content-Length``
    (else the answer is chunked); ``cut_after`` drops the connection after that many bytes,
    a truncated answer.  ``sent`` counts the bytes handed to the socket so far; ``state`` is
    ``"new"``, ``"sending"``, ``"done"`` or ``"closed"`` (the reader went away or the cut);
    ``waiting_since`` is when the chunk being written started waiting for the reader (None
    when not waiting)."""

    size: int
    seed: bytes = b"sharinghub"
    sized: bool = True
    cut_after: int | None = None
    sent: int = 0
    state: str = "new"
    waiting_since: float | None = None

    def chunks(self, limit: int | None = None) -> Iterable[bytes]:
        """The content, in order (the first ``limit`` bytes only, if given)."""
        block = hashlib.sha256(self.seed).digest() * (1 << 15)  # 1 MiB
        end = self.size if limit is None else min(limit, self.size)
        position = 0
        while position < end:
            shift = (position >> 20) % 32
            chunk = block[shift:] + block[:shift]
            yield chunk[:end - position]
            position += len(chunk)

    def sha256(self) -> str:
        """The digest of the whole content."""
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.hexdigest()

    async def write_to(self, handler: tornado.web.RequestHandler) -> None:
        self.state = "sending"
        if self.sized:
            handler.set_header("Content-Length", str(self.size))
        try:
            for chunk in self.chunks(self.cut_after):
                handler.write(chunk)
                self.waiting_since = time.monotonic()
                await handler.flush()
                self.waiting_since = None
                self.sent += len(chunk)
        except tornado.iostream.StreamClosedError:
            self.state = "closed"
            return
        finally:
            self.waiting_since = None
        if self.cut_after is not None:
            handler.request.connection.close()
            self.state = "closed"
            return
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            await handler.finish()
        self.state = "done"


@dataclass
class _Resp:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: StreamedFile | None = None
    #: one of CONNECTION_FAULTS: no (whole) answer
    fault: str | None = None


class _ApiError(Exception):
    def __init__(self, status: int, message: str, key: str = "message") -> None:
        super().__init__(message)
        self.status, self.message, self.key = status, message, key


class _ApiErrors(Exception):
    """Validation errors, answered as ``{"message": {attribute: [messages]}}``."""

    def __init__(self, errors: dict[str, list[str]], status: int = 400) -> None:
        super().__init__(str(errors))
        self.errors, self.status = errors, status


_WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> _Resp:
    return _Resp(status, json.dumps(data).encode(), "application/json", headers or {})


_P = r"/projects/(?P<pid>[^/]+)"
_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern)) for name, pattern in (
        ("version", r"/version"),
        ("user", r"/user"),
        ("projects", r"/projects"),
        ("namespace", r"/namespaces/(?P<ns>[^/]+)"),
        ("project", _P),
        ("tree", _P + r"/repository/tree"),
        ("file_raw", _P + r"/repository/files/(?P<file>[^/]+)/raw"),
        ("file", _P + r"/repository/files/(?P<file>[^/]+)"),
        ("blob_raw", _P + r"/repository/blobs/(?P<sha>[^/]+)/raw"),
        ("blob", _P + r"/repository/blobs/(?P<sha>[^/]+)"),
        ("archive", _P + r"/repository/archive(?P<fmt>\.[A-Za-z0-9.]+)?"),
        ("tags", _P + r"/repository/tags"),
        ("tag", _P + r"/repository/tags/(?P<name>[^/]+)"),
        ("releases", _P + r"/releases"),
        ("release", _P + r"/releases/(?P<name>[^/]+)"),
        ("branches", _P + r"/repository/branches"),
        ("branch", _P + r"/repository/branches/(?P<name>[^/]+)"),
        ("commits", _P + r"/repository/commits"),
        ("commit", _P + r"/repository/commits/(?P<sha>[^/]+)"),
    )
)

_PROJECT_ORDER: dict[str, Callable[[FakeProject], Any]] = {
    "id": lambda p: p.id,
    "name": lambda p: p.name.lower(),
    "path": lambda p: p.path.lower(),
    "created_at": lambda p: p.created_at,
    "updated_at": lambda p: p.last_activity_at,
    "last_activity_at": lambda p: p.last_activity_at,
    "star_count": lambda p: p.star_count,
}


@dataclass
class _Ctx:
    handler: tornado.web.RequestHandler
    record: RequestRecord
    groups: dict[str, str]
    user: str | None
    project: FakeProject | None = None

    @property
    def query(self) -> dict[str, str]:
        return self.record.query

    def param(self, name: str, default: str | None = None) -> str | None:
        value = self.record.query.get(name)
        return default if value in (None, "") else value


class _Handler(tornado.web.RequestHandler):
    """Every request goes to :meth:`GitLabTestServer._handle`."""

    def initialize(self, server: GitLabTestServer) -> None:
        self._server = server

    def compute_etag(self) -> str | None:
        return None

    async def get(self, *_: str) -> None:
        await self._server._handle(self)

    head = post = put = patch = delete = options = get


# --------------------------------------------------------------------------------------------
# real git repositories

_ZERO_SHA = "0" * 40
_GIT_PATH = re.compile(r"/(?P<repo>.+?)\.git(?P<rest>/.*)")
_GIT_SERVICES = ("git-upload-pack", "git-receive-pack")
_GIT_DENIED = (b"HTTP Basic: Access denied. If a password was provided for Git authentication, "
               b"the password was incorrect or you're required to use a token instead of a "
               b"password. If a token was provided, it was either incorrect, expired, or "
               b"improperly scoped.\n")
_GIT_COMMITTER = ("Test User", "test.user@example.com")
_REF_FORMAT = ("%(refname)%00%(objecttype)%00%(objectname)%00%(*objectname)%00%(*objecttype)"
               "%00%(creatordate:iso-strict)%00%(contents)%00")
_LOG_FORMAT = "%H%n%P%n%an%n%ae%n%aI%n%cn%n%ce%n%cI%n%B"


def _git_executable() -> str:
    git = shutil.which("git")
    if git is None:
        raise RuntimeError("git is not installed")
    return git


def _git_env(config: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of the git commands the server runs: the caller's without its ``GIT_*``
    variables, no global or system configuration, every directory safe, plus ``config``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    settings = {"safe.directory": "*", **(config or {})}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0",
               GIT_CONFIG_COUNT=str(len(settings)))
    for i, (key, value) in enumerate(settings.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def _git(git_dir: Path, *args: str, stdin: bytes | None = None,
         env: Mapping[str, str] | None = None) -> bytes:
    """Run ``git --git-dir=git_dir args`` and return its stdout (RuntimeError on failure)."""
    proc = subprocess.run([_git_executable(), f"--git-dir={git_dir}", *args], input=stdin,
                          capture_output=True, env={**_git_env(), **(env or {})}, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} in {git_dir} failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


@dataclass
class _GitState:
    """A project's real repository and what was read from it."""

    root: Path  # the repository as given (a bare repository is its own git dir)
    git_dir: Path
    fingerprint: tuple[tuple[str, bytes], ...] = ()
    commits: dict[str, _Commit] = field(default_factory=dict)  # commits never change: a cache
    blobs: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> _GitState:
        root = Path(path).resolve()
        proc = subprocess.run([_git_executable(), "-C", str(root), "rev-parse",
                               "--absolute-git-dir"], capture_output=True, env=_git_env(),
                              check=False)
        if proc.returncode != 0 or not root.is_dir():
            raise ValueError(f"{path} is not a git repository")
        return cls(root, Path(proc.stdout.decode().strip()))


def _refs_fingerprint(git_dir: Path) -> tuple[tuple[str, bytes], ...]:
    """The contents of ``HEAD``, ``packed-refs`` and every loose ref: changes with any ref."""
    paths = [git_dir / "HEAD", git_dir / "packed-refs"]
    for root, _dirs, files in os.walk(git_dir / "refs"):
        paths.extend(Path(root, name) for name in files)
    items: list[tuple[str, bytes]] = []
    for path in paths:
        with contextlib.suppress(OSError):
            items.append((str(path), path.read_bytes()))
    return tuple(sorted(items))


def _read_blobs(state: _GitState, shas: Iterable[str]) -> None:
    wanted = sorted(set(shas) - state.blobs.keys())
    if not wanted:
        return
    out = _git(state.git_dir, "cat-file", "--batch", stdin="".join(f"{s}\n" for s in wanted)
               .encode())
    pos = 0
    while pos < len(out):
        eol = out.index(b"\n", pos)
        header = out[pos:eol].decode().split()
        if len(header) != 3:
            raise RuntimeError(f"git cat-file: {out[pos:eol]!r}")
        size = int(header[2])
        state.blobs[header[0]] = out[eol + 1: eol + 1 + size]
        pos = eol + 1 + size + 1


def _read_commits(state: _GitState, tips: Sequence[str]) -> list[str]:
    """Shas of every commit reachable from ``tips``, newest first; fills ``state.commits``."""
    if not tips:
        return []
    out = _git(state.git_dir, "log", "-z", f"--format={_LOG_FORMAT}", *tips, "--")
    shas: list[str] = []
    fresh: list[list[str]] = []
    for record in out.decode("utf-8", "replace").split("\0"):
        record = record.lstrip("\n")
        if not record:
            continue
        fields = record.split("\n", 8)
        fields += [""] * (9 - len(fields))
        shas.append(fields[0])
        if fields[0] not in state.commits:
            fresh.append(fields)
    entries_of: dict[str, list[dict[str, str]]] = {}
    for fields in fresh:
        entries: list[dict[str, str]] = []
        listing = _git(state.git_dir, "ls-tree", "-r", "-t", "-z", "--full-tree", fields[0])
        for item in listing.split(b"\0"):
            if not item:
                continue
            meta, raw_path = item.split(b"\t", 1)
            mode, kind, sha = meta.decode().split(" ")
            path = raw_path.decode("utf-8", "replace")
            entries.append({"id": sha, "name": path.rsplit("/", 1)[-1], "type": kind,
                            "path": path, "mode": mode})
        entries_of[fields[0]] = entries
    _read_blobs(state, (e["id"] for es in entries_of.values() for e in es if e["type"] == "blob"))
    for sha, parents, an, ae, ad, cn, ce, cd, body in fresh:
        entries = entries_of[sha]
        files = {e["path"]: state.blobs[e["id"]] for e in entries if e["type"] == "blob"}
        committed = _ms(_parse_time(cd))
        state.commits[sha] = _Commit(
            sha, files, committed, body.split("\n", 1)[0], body, parents.split(),
            _entries=entries, author=(an, ae, _ms(_parse_time(ad))), committer=(cn, ce, committed))
    return shas


def _read_git(p: FakeProject, state: _GitState) -> _Repo:
    """Read the project's repository; updates ``p.default_branch`` (when the repository lacks
    it), ``p.tags``, ``p.head_commit`` and ``p.files``."""
    state.fingerprint = _refs_fingerprint(state.git_dir)
    out = _git(state.git_dir, "for-each-ref", f"--format={_REF_FORMAT}", "refs/heads",
               "refs/tags").decode("utf-8", "replace").split("\0")
    branches: dict[str, str] = {}
    tags: list[dict[str, Any]] = []
    for i in range(0, len(out) - 6, 7):
        ref, kind, sha, peeled, peeled_kind, date, contents = out[i:i + 7]
        ref = ref.lstrip("\n")
        when = _ms(_parse_time(date)) if date else None
        if ref.startswith("refs/heads/") and kind == "commit":
            branches[ref[len("refs/heads/"):]] = sha
        elif ref.startswith("refs/tags/") and kind == "commit":
            tags.append({"name": ref[len("refs/tags/"):], "commit": sha, "message": None,
                         "created_at": when})
        elif ref.startswith("refs/tags/") and kind == "tag" and peeled_kind == "commit":
            tags.append({"name": ref[len("refs/tags/"):], "commit": peeled,
                         "message": contents.rstrip(), "created_at": when, "target": sha})
    shas = _read_commits(state, sorted(set(branches.values()) | {t["commit"] for t in tags}))
    if p.default_branch not in branches:
        with contextlib.suppress(OSError):
            head = (state.git_dir / "HEAD").read_text().strip()
            if head.startswith("ref: refs/heads/"):
                p.default_branch = head[len("ref: refs/heads/"):]
    commits = {sha: state.commits[sha] for sha in shas}
    log: list[str] = []
    current = branches.get(p.default_branch)
    while current is not None and current in commits:
        log.append(current)
        parents = commits[current].parent_ids
        current = parents[0] if parents else None
    if not log:  # an empty repository: an empty pseudo-commit stands for the missing head
        commits[_ZERO_SHA] = _Commit(_ZERO_SHA, {}, p.created_at, "", "", [], _entries=[])
        log = [_ZERO_SHA]
    blobs = {e["id"]: state.blobs[e["id"]] for c in commits.values() for e in c.entries()
             if e["type"] == "blob"}
    p.tags = tags
    p.head_commit = log[0] if log[0] != _ZERO_SHA else ""
    p.files = dict(commits[log[0]].files)
    return _Repo(commits, log, blobs, branches)


class _GitCGI:
    """A running ``git http-backend``: request body in, CGI response streamed out."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr = bytearray()
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        # stdout is drained as soon as it comes, so the CGI never blocks on a full pipe while
        # the request body is still being fed to it
        self._tasks = [asyncio.ensure_future(self._pump_stdout()),
                       asyncio.ensure_future(self._pump_stderr())]

    @classmethod
    async def start(cls, env: Mapping[str, str], cwd: Path) -> _GitCGI:
        proc = await asyncio.create_subprocess_exec(
            _git_executable(), "http-backend", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(env),
            cwd=str(cwd))
        return cls(proc)

    async def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            while chunk := await self.proc.stdout.read(1 << 16):
                self._out.put_nowait(chunk)
        finally:
            self._out.put_nowait(None)

    async def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(1 << 16):
            self.stderr += chunk

    async def feed(self, chunk: bytes) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(chunk)
            await stdin.drain()

    async def end_input(self) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await stdin.wait_closed()

    async def output(self) -> bytes | None:
        """The next chunk of the CGI's stdout (None at the end)."""
        return await self._out.get()

    async def wait(self) -> int:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return await self.proc.wait()

    def abort(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


def _parse_cgi_headers(head: bytes) -> tuple[int, str | None, list[tuple[str, str]]]:
    status, reason, headers = 200, None, []
    for line in head.decode("latin-1").splitlines():
        if not line.strip():
            continue
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            code, _, text = value.partition(" ")
            status, reason = int(code), text or None
        else:
            headers.append((name, value))
    return status, reason, headers


@tornado.web.stream_request_body
class _GitHandler(tornado.web.RequestHandler):
    """Smart HTTP git requests (``/<project path>.git/...``): see
    :meth:`GitLabTestServer._git_prepare`."""

    def initialize(self, server: GitLabTestServer) -> None:
        self._server = server
        self.cgi: _GitCGI | None = None
        self.record: RequestRecord | None = None
        self.before: tuple[tuple[str, bytes], ...] | None = None
        self.was_empty = False  # a push to a repository without branches
        self.pid: int | None = None

    def compute_etag(self) -> str | None:
        return None

    async def prepare(self) -> None:
        await self._server._git_prepare(self)

    async def data_received(self, chunk: bytes) -> None:
        if self.cgi is not None:
            await self.cgi.feed(chunk)

    async def get(self, *_: str) -> None:
        await self._server._git_respond(self)

    post = get

    def on_connection_close(self) -> None:
        if self.cgi is not None:
            self.cgi.abort()


# --------------------------------------------------------------------------------------------
# the server


class GitLabTestServer(ThreadedServer):
    """GitLab API test server on ``127.0.0.1:<free port>``, run in a background thread.

    Use as a context manager or with :meth:`start`/:meth:`stop`; :attr:`url` is the base URL
    to give python-gitlab (``http://127.0.0.1:PORT``; the API lives under ``/api/v4``).
    ``tokens`` maps valid tokens (``PRIVATE-TOKEN``, ``Authorization: Bearer`` or the
    ``private_token`` parameter) to user names; a valid token sees every project, no token
    sees public ones, an unknown token gets 401 everywhere.  ``latency`` (seconds, settable)
    is awaited before each answer.  With probability ``fault_rate`` (settable) a request
    answers one of ``fault_statuses`` (429 with ``Retry-After: retry_after``), drawn from a
    RNG seeded with ``fault_seed``; ``fault_filter`` limits which requests may fault.
    ``fault_statuses`` (and :meth:`fail_next`) may also name :data:`DROP`, :data:`TIMEOUT`
    (no answer for ``fault_hang`` seconds, then a drop) and :data:`TRUNCATE`; repeat an entry
    to weigh it.  ``rate_limit`` (settable) ``(n, seconds)`` answers 429 with ``Retry-After``
    (the seconds left in the window, rounded up) and GitLab's ``RateLimit-*`` headers to the
    requests past the ``n``-th of each fixed window of ``seconds``.  When
    ``anonymous_simple`` is true, unauthenticated ``GET /projects`` answers the simple
    representation, as GitLab does.  The projects given are copied: use :meth:`project` and
    the mutation helpers to read and change the server's state.

    Projects backed by a real repository (:meth:`add_git_project`) are also served to git
    clients at :meth:`clone_url` (smart HTTP, ``git http-backend``), authenticated like
    GitLab: public projects clone anonymously; otherwise (and to push) a valid token is needed,
    as an HTTP Basic password (any user name, GitLab uses ``oauth2``), ``Authorization:
    Bearer`` or ``PRIVATE-TOKEN``; missing or wrong credentials get 401 with ``WWW-Authenticate:
    Basic realm="GitLab"``.  These requests are logged, delayed and faulted like API ones, with
    the endpoint name ``git``.

    Writes: ``POST /projects`` creates a project (JSON or form data: ``name`` and/or ``path``,
    ``namespace_id`` as an id or a full path, default the user's personal namespace, whose path
    is the user name; ``description``, ``topics`` or ``tag_list``, ``visibility`` (default
    private), ``default_branch`` (default main), ``initialize_with_readme``) backed by a new
    empty bare repository in the server's temporary folder (removed on :meth:`stop`), which
    clients push to over HTTP (the first push makes its branch the default when the default
    branch was not pushed, as on GitLab); :meth:`git_project_repo` gives its path.  An empty
    repository answers like GitLab's: empty lists of branches, tags and commits, 404 for a
    branch, a file, a commit, an archive and the tree.  ``PUT /projects/:id`` edits ``name``,
    ``description``, ``topics``/``tag_list``, ``default_branch`` (an existing branch; HEAD
    follows) and ``visibility``, and bumps ``last_activity_at``.  Writes need a token (401
    without).  ``GET /namespaces/:id`` (id or full path) knows the users' namespaces and the
    groups holding projects (and their parents).  ``readers`` (settable) names users (values
    of ``tokens``) with read-only (Reporter) access: their API writes answer 403, and so do
    their pushes (both the ``git-receive-pack`` advertisement and the push); clones work.
    Authenticated requests see ``permissions`` in the project JSON: access level 40
    (Maintainer), 20 for readers.
    """

    def __init__(
        self,
        projects: Iterable[FakeProject] = (),
        tokens: Mapping[str, str] | None = None,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        retry_after: int = 0,
        *,
        fault_statuses: Sequence[int | str] = (500, 502, 503, 429),
        fault_filter: Callable[[RequestRecord], bool] | None = None,
        anonymous_simple: bool = True,
        readers: Iterable[str] = (),
        fault_hang: float = 5.0,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        super().__init__()
        self.tokens: dict[str, str] = dict({"secret-token": "user"} if tokens is None else tokens)
        #: user names (values of ``tokens``) that may read everything and write nothing
        self.readers: set[str] = set(readers)
        self.latency = latency
        self.fault_rate = fault_rate
        self.retry_after = retry_after
        self.fault_statuses = tuple(fault_statuses)
        self.fault_filter = fault_filter
        #: seconds a TIMEOUT fault keeps the client waiting before it drops the connection
        self.fault_hang = fault_hang
        #: ``(n, seconds)``: at most ``n`` requests answered per window of ``seconds``
        self.rate_limit = rate_limit
        self._window: tuple[float, int] = (0.0, 0)  # (start, requests counted in it)
        self._holds: list[Hold] = []
        self.anonymous_simple = anonymous_simple
        #: tracebacks of unexpected exceptions raised while answering (should stay empty)
        self.errors: list[str] = []
        #: ``(path, exit status, stderr)`` of ``git http-backend`` runs that failed (a client
        #: hanging up midway also counts)
        self.git_errors: list[tuple[str, int, str]] = []
        self._rng = random.Random(fault_seed)
        self._lock = threading.RLock()
        self._log: list[RequestRecord] = []
        self._rules: list[FaultRule] = []
        self._projects: dict[int, FakeProject] = {}
        self._by_path: dict[str, int] = {}
        self._repos: dict[int, _Repo] = {}
        self._git: dict[int, _GitState] = {}
        self._pushes = 0
        self._last_id = 0  # the highest project id ever used (ids are not reused)
        self._tmp: Path | None = None  # where the repositories of created projects live
        #: raw files (``repository/files/<path>/raw``, any project) answered by a redirect to
        #: the URL given (absolute or relative), as GitLab does for LFS objects in object
        #: storage: file path -> ``Location``
        self.raw_redirects: dict[str, str] = {}
        #: raw files (any project) generated as they are sent: file path -> file
        self.raw_streams: dict[str, StreamedFile] = {}
        for project in projects:
            self.add_project(project)

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """``<url>/api/v4``."""
        return self.url + API_PREFIX

    thread_name = "gitlab-test-server"

    def stop(self) -> None:
        """Stop serving (idempotent) and remove the repositories of the projects created
        through the API (``POST /projects``)."""
        super().stop()
        with self._lock:
            tmp, self._tmp = self._tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def http_server(self) -> tornado.httpserver.HTTPServer:
        app = tornado.web.Application([(r"/(?!api/v4/).+?\.git/.*", _GitHandler, {"server": self}),
                                       (r"/.*", _Handler, {"server": self})],
                                      log_function=lambda _h: None)
        return tornado.httpserver.HTTPServer(app, idle_connection_timeout=60)

    # ---- request log -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of every request received so far (faulted ones included)."""
        with self._lock:
            return list(self._log)

    def reset_requests(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self._log.clear()

    def count(self, match: Matcher = None, *, method: str | None = None,
              status: int | None = None, project: int | str | None = None) -> int:
        """How many requests match: ``match`` is ``None`` (all), a path prefix starting with
        ``/`` (``/api/v4`` optional), an endpoint name (see :class:`RequestRecord`) or a
        predicate; ``method``, ``status`` and ``project`` (id or path) narrow further."""
        pid = project if isinstance(project, int) or project is None else self.project(project).id
        return sum(
            1 for r in self.requests
            if _matches(match, r)
            and (method is None or r.method == method.upper())
            and (status is None or r.status == status)
            and (pid is None or r.project == pid)
        )

    # ---- faults ----------------------------------------------------------------------------

    def fail_next(self, match: Matcher, status: int | str = 500, *, times: int = 1,
                  headers: Mapping[str, str] | None = None,
                  body: bytes | str | None = None) -> FaultRule:
        """Make the next ``times`` requests matching ``match`` (as in :meth:`count`) answer
        ``status`` (or get one of :data:`CONNECTION_FAULTS`); rules apply in the order
        added, before random faults."""
        rule = FaultRule(match, status, times, dict(headers or {}),
                         None if body is None else _to_bytes(body))
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_faults(self) -> None:
        """Drop pending :meth:`fail_next` rules (``fault_rate`` is left alone)."""
        with self._lock:
            self._rules.clear()

    def hold(self, match: Matcher = None, *, times: int | None = None) -> Hold:
        """Hold the requests matching ``match`` (as in :meth:`count`; the first ``times`` of
        them, or all) until the returned :class:`Hold` is released: a test polls
        ``hold.waiting`` to know its client reached that point, then acts (kills it)."""
        hold = Hold(match, times)
        with self._lock:
            self._holds.append(hold)
        return hold

    def release_all(self) -> None:
        """Release every hold."""
        with self._lock:
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.release()

    def _hold_for(self, record: RequestRecord) -> Hold | None:
        with self._lock:
            for hold in self._holds:
                if (not hold.released and (hold.times is None or hold.held < hold.times)
                        and _matches(hold.match, record)):
                    hold.held += 1
                    hold.waiting += 1
                    record.held = True
                    return hold
        return None

    async def _wait_hold(self, hold: Hold) -> None:
        try:
            while not hold.released and not self._stopped():
                await asyncio.sleep(0.005)
        finally:
            with self._lock:
                hold.waiting -= 1

    def _stopped(self) -> bool:
        stopping = self._stopping
        return stopping is None or stopping.is_set()

    def _rate_limited(self, record: RequestRecord) -> _Resp | None:
        """GitLab's throttle: a 429 past ``n`` requests in the current window."""
        limit = self.rate_limit
        if limit is None:
            return None
        n, seconds = limit
        with self._lock:
            now = time.monotonic()
            start, used = self._window
            if now - start >= seconds:
                start, used = now, 0
            used += 1
            self._window = (start, used)
            if used <= n:
                return None
            wait = max(1, math.ceil(start + seconds - now))
        record.fault = "rate-limit"
        reset = int(time.time()) + wait
        return _Resp(429, _FAULT_BODIES[429][1], _FAULT_BODIES[429][0], {
            "Retry-After": str(wait),
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": str(n),
            "RateLimit-Observed": str(used),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(reset),
            "RateLimit-ResetTime": formatdate(reset, usegmt=True),
        })

    async def _connection_fault(self, handler: tornado.web.RequestHandler,
                                resp: _Resp) -> None:
        """Answer with a fault of the network: hang, cut the body short, or drop."""
        if resp.fault == TIMEOUT:
            deadline = time.monotonic() + self.fault_hang
            while time.monotonic() < deadline and not self._stopped():
                await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        if resp.fault == TRUNCATE and resp.stream is None:
            body = resp.body
            handler.set_status(resp.status)
            if resp.content_type:
                handler.set_header("Content-Type", resp.content_type)
            for name, value in resp.headers.items():
                handler.set_header(name, value)
            handler.set_header("Content-Length", str(len(body)))
            handler.write(body[: len(body) // 2])
            with contextlib.suppress(tornado.iostream.StreamClosedError):
                await handler.flush()
        handler._finished = True  # tornado must not answer on a connection we drop
        with contextlib.suppress(Exception):
            handler.request.connection.close()

    def _fault_for(self, record: RequestRecord) -> _Resp | None:
        with self._lock:
            for rule in self._rules:
                if rule.hits < rule.times and _matches(rule.match, record):
                    rule.hits += 1
                    if rule.hits >= rule.times:
                        self._rules.remove(rule)
                    record.fault = str(rule.status)
                    return self._fault_response(rule.status, rule.headers, rule.body)
            if self.fault_rate <= 0 or not self.fault_statuses:
                return None
            if self.fault_filter is not None and not self.fault_filter(record):
                return None
            if self._rng.random() >= self.fault_rate:
                return None
            status = self._rng.choice(self.fault_statuses)
        record.fault = str(status)
        return self._fault_response(status, {}, None)

    def _fault_response(self, status: int | str, headers: Mapping[str, str],
                        body: bytes | None) -> _Resp:
        if isinstance(status, str):
            if status not in CONNECTION_FAULTS:
                raise ValueError(f"unknown fault {status!r}: a status or one of "
                                 f"{CONNECTION_FAULTS}")
            return _Resp(0, b"", None, fault=status)
        ctype, default = _FAULT_BODIES.get(
            status, ("application/json", json.dumps({"message": f"{status} Error"}).encode()))
        extra: dict[str, str] = {}
        if status == 429:
            reset = int(time.time()) + int(self.retry_after)
            extra = {
                "Retry-After": str(int(self.retry_after)),
                "RateLimit-Name": "throttle_authenticated_api",
                "RateLimit-Limit": "600",
                "RateLimit-Observed": "601",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(reset),
                "RateLimit-ResetTime": formatdate(reset, usegmt=True),
            }
        extra.update(headers)
        return _Resp(status, default if body is None else body, ctype, extra)

    # ---- state and mutation helpers --------------------------------------------------------

    @property
    def projects(self) -> list[FakeProject]:
        """The server's (live) projects, by id."""
        with self._lock:
            return [self._projects[i] for i in sorted(self._projects)]

    def project(self, key: int | str) -> FakeProject:
        """The live project with this id or path (KeyError if absent)."""
        with self._lock:
            if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                return self._projects[int(key)]
            return self._projects[self._by_path[key.strip("/").lower()]]

    def add_project(self, project: FakeProject) -> FakeProject:
        """Add a copy of ``project``; returns the live copy."""
        p = replace(
            project,
            topics=list(project.topics),
            files=dict(project.files),
            tags=[dict(t) for t in project.tags],
            releases=[dict(r) for r in project.releases],
            license=dict(project.license) if isinstance(project.license, dict)
            else project.license,
            namespace=dict(project.namespace) if project.namespace else None,
        )
        files = _normalize_files(p.files)
        with self._lock:
            if p.id in self._projects:
                raise ValueError(f"project id {p.id} already exists")
            if p.path_with_namespace.lower() in self._by_path:
                raise ValueError(f"project {p.path_with_namespace} already exists")
            if p.git_repo is not None:
                if files or p.tags:
                    raise ValueError("a project with a git_repo reads its files and tags from "
                                     "the repository: leave them empty")
                state = _GitState.open(p.git_repo)
                repo = self._init_git_repo(p, state)
                self._git[p.id] = state
            else:
                repo = self._init_repo(p, files)
            self._projects[p.id] = p
            self._by_path[p.path_with_namespace.lower()] = p.id
            self._repos[p.id] = repo
            self._last_id = max(self._last_id, p.id)
        return p

    def add_git_project(self, project: FakeProject,
                        repo_path: str | os.PathLike[str]) -> FakeProject:
        """Add a copy of ``project`` backed by the git repository ``repo_path`` (a bare one,
        e.g. ``git clone --bare``); returns the live copy.

        Its repository endpoints (tree, files, raw files, blobs, archives, tags, branches,
        commits) then answer from the repository, at any ``ref`` (branch, tag or sha), and
        ``project.files``, ``head_commit`` and ``tags`` follow it.  Changes to the repository
        (pushes over HTTP, :meth:`push`, :meth:`add_tag`, or git commands run on it directly)
        are seen by the next request: every request for the project checks its refs (a few
        file reads) and reads new commits.  ``default_branch`` is the repository's ``HEAD``
        branch unless the repository has the project's.  ``last_activity_at`` stays settable;
        pushes over HTTP bump it to now, as GitLab does, direct changes do not.
        """
        return self.add_project(replace(project, git_repo=repo_path))

    def refresh(self, key: int | str | None = None) -> None:
        """Re-read the repository of a git-backed project (all of them when ``key`` is
        None) now; requests do it by themselves when the refs changed."""
        with self._lock:
            ids = list(self._git) if key is None else [self.project(key).id]
            for pid in ids:
                if pid in self._git:
                    self._sync_git(self._projects[pid], force=True)

    def git_project_repo(self, key: int | str) -> Path:
        """The git directory of a git-backed project's repository (a bare repository is its own:
        the path given to :meth:`add_git_project`, or the one created by ``POST /projects``);
        KeyError for an unknown project, ValueError for one without a repository."""
        with self._lock:
            p = self.project(key)
            state = self._git.get(p.id)
            if state is None:
                raise ValueError(f"project {p.path_with_namespace} has no git repository")
            return state.git_dir

    def clone_url(self, key: int | str, token: str | None = None,
                  username: str = "oauth2") -> str:
        """The project's ``http_url_to_repo``, with ``username:token@`` when a token is given."""
        p = self.project(key)
        auth = f"{quote(username, safe='')}:{quote(token, safe='')}@" if token else ""
        return f"http://{auth}{self.host}:{self.port}/{p.path_with_namespace}.git"

    def _init_git_repo(self, p: FakeProject, state: _GitState) -> _Repo:
        repo = _read_git(p, state)
        missing = sorted({r.get("tag_name") for r in p.releases if r.get("tag_name")}
                         - {t["name"] for t in p.tags})
        if missing:
            if not p.head_commit:
                raise ValueError(f"releases {missing} need tags but the repository is empty")
            for name in missing:  # GitLab creates a release's missing tag at head
                _git(state.git_dir, "update-ref", f"refs/tags/{name}", p.head_commit, "")
            repo = _read_git(p, state)
        self._finish_releases(p)
        return repo

    def _sync_git(self, p: FakeProject, *, force: bool = False) -> None:
        """Re-read a git-backed project's repository when its refs changed (or ``force``)."""
        state = self._git.get(p.id)
        if state is None:
            return
        if force or _refs_fingerprint(state.git_dir) != state.fingerprint:
            self._repos[p.id] = _read_git(p, state)

    def remove_project(self, key: int | str) -> FakeProject:
        """Delete a project (it then answers 404 and leaves listings)."""
        with self._lock:
            p = self.project(key)
            del self._projects[p.id], self._by_path[p.path_with_namespace.lower()]
            del self._repos[p.id]
            self._git.pop(p.id, None)
            return p

    def update_project(self, key: int | str, **changes: Any) -> FakeProject:
        """Change project attributes (``description``, ``visibility``, ``star_count``,
        ``last_activity_at``, ``license``, ``name``...); use :meth:`push` for files."""
        forbidden = {"id", "files", "head_commit", "tags", "releases", "git_repo"} & changes.keys()
        if forbidden:
            raise ValueError(f"use the dedicated helpers to change {sorted(forbidden)}")
        with self._lock:
            p = self.project(key)
            old_path = p.path_with_namespace.lower()
            if "path_with_namespace" in changes:
                new = changes["path_with_namespace"].strip("/")
                if new.lower() != old_path and new.lower() in self._by_path:
                    raise ValueError(f"project {new} already exists")
                changes.setdefault("path", new.rsplit("/", 1)[-1])
                changes.setdefault("namespace", _namespace_of(new.rsplit("/", 1)[0]))
            for name, value in changes.items():
                if not hasattr(p, name):
                    raise AttributeError(f"FakeProject has no attribute {name!r}")
                if isinstance(value, datetime):
                    value = _ms(value)
                if name == "license" and isinstance(value, str):
                    value = replace(p, license=value).license
                setattr(p, name, value)
            if p.visibility not in ("public", "internal", "private"):
                raise ValueError(f"bad visibility {p.visibility!r}")
            del self._by_path[old_path]
            self._by_path[p.path_with_namespace.lower()] = p.id
            return p

    def set_topics(self, key: int | str, topics: Iterable[str], *,
                   touch_activity: bool = False) -> FakeProject:
        """Replace a project's topics (GitLab does not bump ``last_activity_at`` for this)."""
        with self._lock:
            p = self.project(key)
            p.topics = list(topics)
            if touch_activity:
                p.last_activity_at = _now()
            return p

    def push(self, key: int | str, files_changed: Mapping[str, bytes | str] | None = None,
             removed: Iterable[str] = (), *, touch_activity: bool = True,
             message: str = "Update files", when: datetime | None = None) -> str:
        """Commit to the default branch; returns the new head sha.

        ``touch_activity`` bumps ``last_activity_at`` to the commit time (GitLab only does so
        once an hour, so tests need both); ``when`` defaults to now.
        """
        when = _ms(when) if when is not None else _now()
        with self._lock:
            p = self.project(key)
            if p.id in self._git:
                sha = self._git_commit(p, files_changed or {}, removed, message, when)
                if touch_activity:
                    p.last_activity_at = when
                return sha
            repo = self._repos[p.id]
            head = repo.head
            files = dict(head.files)
            changed = {_clean_path(k): v for k, v in (files_changed or {}).items()}
            files.update({k: _to_bytes(v) for k, v in changed.items()})
            for path in removed:
                files.pop(_clean_path(path))  # KeyError: removing an absent file is a test bug
            files = _normalize_files(files)
            self._pushes += 1
            sha = _sha1("push", p.id, head.sha, self._pushes, when.isoformat(),
                        sorted((k, _git_blob_sha(v)) for k, v in files.items()))
            repo.add(_Commit(sha, files, when, message.splitlines()[0] if message else "",
                             message, [head.sha]))
            repo.log.insert(0, sha)
            live = {_clean_path(k): v for k, v in p.files.items()}
            live.update(changed)
            p.files = {k: v for k, v in live.items() if k in files}
            p.head_commit = sha
            if touch_activity:
                p.last_activity_at = when
            return sha

    def add_tag(self, key: int | str, name: str, *, commit: str | None = None,
                message: str | None = None, created_at: datetime | None = None,
                touch_activity: bool = False) -> dict[str, Any]:
        """Tag a commit (default: head); ``message`` makes it an annotated tag."""
        with self._lock:
            p = self.project(key)
            self._sync_git(p)
            if any(t["name"] == name for t in p.tags):
                raise ValueError(f"tag {name} already exists")
            target = self._resolve(p, commit)
            if target is None:
                raise KeyError(f"unknown commit {commit}")
            created = _ms(created_at) if created_at else _now()
            if p.id in self._git:
                state = self._git[p.id]
                if message is None:
                    _git(state.git_dir, "update-ref", f"refs/tags/{name}", target.sha, "")
                else:
                    _git(state.git_dir, "tag", "-a", "-m", message, name, target.sha, env={
                        "GIT_COMMITTER_NAME": _GIT_COMMITTER[0],
                        "GIT_COMMITTER_EMAIL": _GIT_COMMITTER[1],
                        "GIT_COMMITTER_DATE": f"{int(created.timestamp())} +0000"})
                self._sync_git(p, force=True)
                tag = next(t for t in p.tags if t["name"] == name)
            else:
                tag = {"name": name, "commit": target.sha, "message": message,
                       "created_at": created}
                p.tags.append(tag)
            if touch_activity:
                p.last_activity_at = _now()
            return tag

    def add_release(self, key: int | str, tag_name: str, *, name: str | None = None,
                    description: str = "", released_at: datetime | None = None,
                    created_at: datetime | None = None,
                    touch_activity: bool = False) -> dict[str, Any]:
        """Publish a release; its tag is created at head when missing, as GitLab does."""
        with self._lock:
            p = self.project(key)
            if any(r["tag_name"] == tag_name for r in p.releases):
                raise ValueError(f"release {tag_name} already exists")
            if not any(t["name"] == tag_name for t in p.tags):
                self.add_tag(p.id, tag_name)
            created = _ms(created_at) if created_at else _now()
            release = {"tag_name": tag_name, "name": name or tag_name,
                       "description": description,
                       "released_at": _ms(released_at) if released_at else created,
                       "created_at": created}
            p.releases.append(release)
            if touch_activity:
                p.last_activity_at = _now()
            return release

    def _init_repo(self, p: FakeProject, files: dict[str, bytes]) -> _Repo:
        repo = _Repo({}, [], {})
        older: dict[str, datetime] = {}
        for tag in p.tags:
            tag.setdefault("message", None)
            tag["commit"] = tag.get("commit") or p.head_commit
            created = tag.get("created_at")
            tag["created_at"] = _ms(created) if created else None
            if tag["commit"] != p.head_commit:
                when = tag["created_at"] or p.created_at
                older[tag["commit"]] = min(when, older.get(tag["commit"], when))
        chain = [p.head_commit, *sorted(older, key=lambda s: older[s], reverse=True)]
        for i, sha in enumerate(chain):
            first = i == len(chain) - 1
            date = p.last_activity_at if i == 0 else older[sha]
            title = "Initial commit" if first else f"Update {sorted(files)[0] if files else ''}"
            parents = [] if first else [chain[i + 1]]
            repo.add(_Commit(sha, files, date, title, title, parents))
        repo.log = chain
        self._finish_releases(p)
        return repo

    def _finish_releases(self, p: FakeProject) -> None:
        for release in p.releases:
            if "tag_name" not in release:
                raise ValueError(f"release without tag_name in {p.path_with_namespace}")
            if not any(t["name"] == release["tag_name"] for t in p.tags):
                p.tags.append({"name": release["tag_name"], "commit": p.head_commit,
                               "message": None, "created_at": None})
            released = release.get("released_at") or release.get("created_at") or p.created_at
            release["released_at"] = _ms(released)
            release["created_at"] = _ms(release.get("created_at") or released)
            release.setdefault("name", release["tag_name"])
            release.setdefault("description", "")

    def _git_commit(self, p: FakeProject, files_changed: Mapping[str, bytes | str],
                    removed: Iterable[str], message: str, when: datetime) -> str:
        """:meth:`push` for a git-backed project: a real commit on the default branch."""
        state = self._git[p.id]
        self._sync_git(p)
        head = self._repos[p.id].head
        changed = {_clean_path(k): _to_bytes(v) for k, v in files_changed.items()}
        gone = [_clean_path(path) for path in removed]
        for path in gone:
            if path not in head.files:
                raise KeyError(path)  # removing an absent file is a test bug
        files = {k: v for k, v in head.files.items() if k not in gone}
        _normalize_files({**files, **changed})
        msg = message.encode()
        stream = bytearray(f"commit refs/heads/{p.default_branch}\n".encode())
        stream += (f"committer {_GIT_COMMITTER[0]} <{_GIT_COMMITTER[1]}> "
                   f"{int(when.timestamp())} +0000\n").encode()
        stream += b"data %d\n%s\n" % (len(msg), msg)
        if head.sha != _ZERO_SHA:
            stream += f"from {head.sha}\n".encode()
        for path in sorted(changed):
            if path.startswith('"') or "\n" in path:
                raise ValueError(f"unsupported path {path!r}")
            data = changed[path]
            stream += f"M 100644 inline {path}\n".encode() + b"data %d\n%s\n" % (len(data), data)
        for path in gone:
            stream += f"D {path}\n".encode()
        _git(state.git_dir, "fast-import", "--quiet", "--date-format=raw", stdin=bytes(stream))
        self._sync_git(p, force=True)
        return p.head_commit

    def _resolve(self, p: FakeProject, ref: str | None) -> _Commit | None:
        """Commit a ref names: branch, tag, full or abbreviated sha (None if unknown, and for
        the head of an empty repository)."""
        repo = self._repos[p.id]
        head = None if repo.head.sha == _ZERO_SHA else repo.head
        if not ref:
            return head
        for prefix in ("refs/heads/", "refs/tags/"):
            ref = ref.removeprefix(prefix)
        if ref in (p.default_branch, "HEAD"):
            return head
        if repo.branches and ref in repo.branches:
            return repo.commits.get(repo.branches[ref])
        for tag in p.tags:
            if tag["name"] == ref:
                return repo.commits.get(tag["commit"])
        if _hexish(ref):
            found = [c for sha, c in repo.commits.items()
                     if sha.startswith(ref) and sha != _ZERO_SHA]
            if len(found) == 1:
                return found[0]
        return None

    # ---- request handling ------------------------------------------------------------------

    async def _handle(self, handler: tornado.web.RequestHandler) -> None:
        req = handler.request
        path = req.path
        query = dict(parse_qsl(req.query, keep_blank_values=True))
        token = self._token_of(handler, query)
        endpoint, groups = "unknown", {}
        if path.startswith(API_PREFIX):
            for name, pattern in _ROUTES:
                m = pattern.fullmatch(path[len(API_PREFIX):])
                if m:
                    endpoint, groups = name, m.groupdict()
                    break
        record = RequestRecord(req.method or "GET", path, query, endpoint, token=token,
                               received=time.monotonic())
        with self._lock:
            if "pid" in groups:
                with contextlib.suppress(KeyError):
                    record.project = self.project(unquote(groups["pid"])).id
            self._log.append(record)
        try:
            hold = self._hold_for(record)
            if hold is not None:
                await self._wait_hold(hold)
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            resp = self._rate_limited(record) or self._fault_for(record)
            record.faulted = resp is not None
            if resp is not None and resp.fault == TRUNCATE:
                real = self._answer(handler, record, groups, token)
                resp = replace(real, fault=TRUNCATE)
            if resp is None:
                resp = self._answer(handler, record, groups, token)
        except Exception:
            self.errors.append(traceback.format_exc())
            resp = _json({"message": "500 Internal Server Error"}, 500)
        if resp.fault is not None:
            if resp.fault == TRUNCATE:
                record.status = resp.status
            await self._connection_fault(handler, resp)
            return
        record.status = resp.status
        handler.set_status(resp.status)
        if resp.content_type:
            handler.set_header("Content-Type", resp.content_type)
        for name, value in resp.headers.items():
            handler.set_header(name, value)
        if resp.stream is not None:
            await resp.stream.write_to(handler)
            return
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            await handler.finish(resp.body)

    def _token_of(self, handler: tornado.web.RequestHandler,
                  query: Mapping[str, str]) -> str | None:
        headers = handler.request.headers
        token = headers.get("PRIVATE-TOKEN")
        if token is None:
            auth = headers.get("Authorization", "")
            if auth[:7].lower() == "bearer ":
                token = auth[7:].strip()
        if token is None:
            token = query.get("private_token") or query.get("access_token")
        return token or None

    # ---- git smart HTTP --------------------------------------------------------------------

    @staticmethod
    def _git_token_of(headers: Mapping[str, str]) -> str | None:
        """The token of a git request: ``PRIVATE-TOKEN``, ``Authorization: Bearer`` or the
        password of ``Authorization: Basic`` (``""`` when unreadable, so it is refused)."""
        token = headers.get("PRIVATE-TOKEN")
        if token is not None:
            return token
        scheme, _, value = headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return ""
            return decoded.partition(":")[2]
        return None

    def _first_push(self, p: FakeProject, state: _GitState) -> None:
        """After the first push to an empty repository: when the default branch was not pushed,
        the (first) pushed branch becomes the default, as on GitLab."""
        self._sync_git(p, force=True)
        branches = self._repos[p.id].branches or {}
        if branches and p.default_branch not in branches:
            first = sorted(branches)[0]
            _git(state.git_dir, "symbolic-ref", "HEAD", f"refs/heads/{first}")
            p.default_branch = first
            self._sync_git(p, force=True)

    def _git_reply(self, handler: _GitHandler, status: int, body: bytes,
                   content_type: str | None = "text/plain; charset=utf-8",
                   headers: Mapping[str, str] | None = None) -> None:
        if handler.record is not None:
            handler.record.status = status
        handler.set_status(status)
        if content_type:
            handler.set_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            handler.set_header(name, value)
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            handler.finish(body)

    def _git_denied(self, handler: _GitHandler) -> None:
        self._git_reply(handler, 401, _GIT_DENIED,
                        headers={"WWW-Authenticate": 'Basic realm="GitLab"'})

    async def _git_prepare(self, handler: _GitHandler) -> None:
        """Log, delay, fault, authenticate a git request, then start ``git http-backend``
        (whose stdin gets the request body as it arrives, see :class:`_GitHandler`)."""
        req = handler.request
        match = _GIT_PATH.fullmatch(req.path)
        assert match is not None
        query = dict(parse_qsl(req.query, keep_blank_values=True))
        token = self._git_token_of(req.headers)
        record = RequestRecord(req.method or "GET", req.path, query, "git", token=token,
                               received=time.monotonic())
        handler.record = record
        key = unquote(match["repo"])
        with self._lock:
            with contextlib.suppress(KeyError):
                record.project = self.project(key).id
            self._log.append(record)
        try:
            hold = self._hold_for(record)
            if hold is not None:
                await self._wait_hold(hold)
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            fault = self._rate_limited(record) or self._fault_for(record)
            if fault is not None:
                record.faulted = True
                if fault.fault is not None:  # (a git answer is not cut short: dropped)
                    await self._connection_fault(handler, replace(fault, fault=(
                        DROP if fault.fault == TRUNCATE else fault.fault)))
                    return
                self._git_reply(handler, fault.status, fault.body, fault.content_type,
                                fault.headers)
                return
            await self._git_start(handler, key, match["rest"], query, token)
        except Exception:
            self.errors.append(traceback.format_exc())
            if handler.cgi is not None:
                handler.cgi.abort()
                handler.cgi = None
            if record.status is None:
                self._git_reply(handler, 500, b"500 Internal Server Error\n")

    async def _git_start(self, handler: _GitHandler, key: str, rest: str,
                         query: Mapping[str, str], token: str | None) -> None:
        user = self.tokens.get(token) if token is not None else None
        if token is not None and user is None:
            return self._git_denied(handler)
        if rest == "/info/refs":
            service, allowed = query.get("service"), ("GET",)
        else:
            service, allowed = rest.lstrip("/"), ("POST",)
        pushing = service == "git-receive-pack"
        with self._lock:
            try:
                p: FakeProject | None = self.project(key)
            except KeyError:
                p = None
            if p is None or not self._visible(p, user):
                if user is None:  # GitLab does not tell anonymous users what exists
                    return self._git_denied(handler)
                return self._git_reply(handler, 404, b"The project you were looking for could "
                                       b"not be found or you don't have permission to view it.\n")
            if pushing and user is None:
                return self._git_denied(handler)
            state = self._git.get(p.id)
            if state is None:
                return self._git_reply(handler, 404, b"This test project has no git "
                                       b"repository (see GitLabTestServer.add_git_project).\n")
            if service not in _GIT_SERVICES:
                return self._git_reply(handler, 403, b"Only smart HTTP is supported.\n")
            if handler.request.method not in allowed:
                return self._git_reply(handler, 405, b"405 Method Not Allowed\n")
            if pushing and (p.archived or user in self.readers):
                return self._git_reply(handler, 403, b"You are not allowed to push code to "
                                       b"this project.\n")
            handler.pid = p.id
            handler.before = _refs_fingerprint(state.git_dir) if pushing else None
            if pushing:
                self._sync_git(p)
                handler.was_empty = not self._repos[p.id].branches
            root = state.root
        req = handler.request
        env = _git_env({"http.receivepack": "true" if pushing else "false",
                        "http.uploadpack": "true", "uploadpack.allowFilter": "true",
                        "uploadpack.allowAnySHA1InWant": "true"})
        env.update(GIT_PROJECT_ROOT=str(root), GIT_HTTP_EXPORT_ALL="1", PATH_INFO=rest,
                   REQUEST_METHOD=req.method or "GET", QUERY_STRING=req.query,
                   CONTENT_TYPE=req.headers.get("Content-Type", ""),
                   REMOTE_ADDR=req.remote_ip or "127.0.0.1", SERVER_PROTOCOL=req.version,
                   GATEWAY_INTERFACE="CGI/1.1", SERVER_SOFTWARE="gitlab-test-server")
        if user is not None:
            env["REMOTE_USER"] = user
        length = req.headers.get("Content-Length")
        if length is not None and "chunked" not in req.headers.get("Transfer-Encoding", ""):
            env["CONTENT_LENGTH"] = length
        encoding = req.headers.get("Content-Encoding")
        if encoding:  # gzip request bodies: http-backend inflates them itself
            env["HTTP_CONTENT_ENCODING"] = encoding
        protocol = req.headers.get("Git-Protocol")
        if protocol:
            env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"] = protocol
        set_max = getattr(req.connection, "set_max_body_size", None)
        if set_max is not None:
            set_max(1 << 40)
        handler.cgi = await _GitCGI.start(env, root)
        return None

    async def _git_respond(self, handler: _GitHandler) -> None:
        """Stream the CGI's response once the request body has been fed to it."""
        cgi, record = handler.cgi, handler.record
        if cgi is None or record is None:
            return
        await cgi.end_input()
        head, body = b"", b""
        while (chunk := await cgi.output()) is not None:
            head += chunk
            end = re.search(rb"\r?\n\r?\n", head)
            if end:
                head, body = head[:end.start()], head[end.end():]
                break
        else:
            status = await cgi.wait()
            self.git_errors.append((record.path, status, cgi.stderr.decode(errors="replace")))
            self._git_reply(handler, 500, b"git http-backend failed\n")
            return
        status, reason, headers = _parse_cgi_headers(head)
        record.status = status
        handler.set_status(status, reason)
        handler.clear_header("Content-Type")
        for name, value in headers:
            handler.add_header(name, value)
        try:
            chunk = body
            while chunk is not None:
                if chunk:
                    handler.write(chunk)
                    await handler.flush()
                chunk = await cgi.output()
            code = await cgi.wait()
        except tornado.iostream.StreamClosedError:
            cgi.abort()
            code = await cgi.wait()
        if code != 0:
            self.git_errors.append((record.path, code, cgi.stderr.decode(errors="replace")))
        elif handler.before is not None and handler.pid is not None:
            with self._lock:  # a push that changed refs counts as activity, as on GitLab
                state, p = self._git.get(handler.pid), self._projects.get(handler.pid)
                if state is not None and p is not None \
                        and _refs_fingerprint(state.git_dir) != handler.before:
                    p.last_activity_at = _now()
                    if handler.was_empty:
                        self._first_push(p, state)
        with contextlib.suppress(tornado.iostream.StreamClosedError):
            await handler.finish()

    def _answer(self, handler: tornado.web.RequestHandler, record: RequestRecord,
                groups: dict[str, str], token: str | None) -> _Resp:
        """Authenticate, find the project, check the user may write, then call the endpoint:
        ``_ep_<endpoint>`` for GET and HEAD, ``_ep_<endpoint>_<method>`` for writes."""
        try:
            if token is not None and token not in self.tokens:
                raise _ApiError(401, "401 Unauthorized")
            user = self.tokens.get(token) if token else None
            writing = record.method in _WRITE_METHODS
            if writing and user is None:  # GitLab authenticates non-GET requests first
                raise _ApiError(401, "401 Unauthorized")
            if record.endpoint == "unknown":
                if writing and user in self.readers:
                    raise _ApiError(403, "403 Forbidden")
                raise _ApiError(404, "404 Not Found", "error")
            ctx = _Ctx(handler, record, groups, user)
            with self._lock:
                if "pid" in groups:
                    ctx.project = self._visible_project(unquote(groups["pid"]), ctx.user)
                    self._sync_git(ctx.project)
                if writing and user in self.readers:
                    raise _ApiError(403, "403 Forbidden")
                name = f"_ep_{record.endpoint}"
                if record.method not in ("GET", "HEAD"):
                    name += f"_{(record.method or '').lower()}"
                endpoint = getattr(self, name, None)
                if endpoint is None:
                    raise _ApiError(405, "405 Method Not Allowed")
                return endpoint(ctx)
        except _ApiError as err:
            return _json({err.key: err.message}, err.status)
        except _ApiErrors as err:
            return _json({"message": err.errors}, err.status)

    def _visible(self, p: FakeProject, user: str | None) -> bool:
        return p.visibility == "public" or user is not None

    def _visible_project(self, key: str, user: str | None) -> FakeProject:
        try:
            p = self.project(key)
        except KeyError:
            raise _ApiError(404, "404 Project Not Found") from None
        if not self._visible(p, user):
            raise _ApiError(404, "404 Project Not Found")
        return p

    # ---- pagination ------------------------------------------------------------------------

    def _paginate(self, ctx: _Ctx, items: Sequence[Any],
                  render: Callable[[Any], Any] = lambda x: x) -> _Resp:
        """Offset pagination with GitLab's ``X-*`` headers and ``Link`` header."""
        per_page = _int_param(ctx, "per_page", 20)
        per_page = 20 if per_page < 1 else min(per_page, 100)
        page = max(1, _int_param(ctx, "page", 1))
        total = len(items)
        total_pages = max(1, math.ceil(total / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Next-Page": str(page + 1) if page < total_pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        links = []
        if page > 1:
            links.append((page - 1, "prev"))
        if page < total_pages:
            links.append((page + 1, "next"))
        links.append((1, "first"))
        if total <= 10_000:  # GitLab drops the totals above 10,000 results
            headers["X-Total"] = str(total)
            headers["X-Total-Pages"] = str(total_pages)
            links.append((total_pages, "last"))
        headers["Link"] = ", ".join(
            f'<{self._link(ctx, {"page": str(n), "per_page": str(per_page)})}>; rel="{rel}"'
            for n, rel in links)
        return _json([render(x) for x in chunk], headers=headers)

    def _link(self, ctx: _Ctx, overrides: Mapping[str, str]) -> str:
        req = ctx.handler.request
        params = [(k, v) for k, v in parse_qsl(req.query, keep_blank_values=True)
                  if k not in overrides]
        params.extend(overrides.items())
        return f"{req.protocol}://{req.host}{req.path}?{urlencode(params)}"

    # ---- rendering -------------------------------------------------------------------------

    def _web_url(self, p: FakeProject) -> str:
        return f"{self.url}/{p.path_with_namespace}"

    def _readme_path(self, p: FakeProject) -> str | None:
        head = self._repos[p.id].head
        names = sorted((f for f in head.files if "/" not in f and f.lower().startswith("readme")),
                       key=lambda f: (f.lower() != "readme.md", f))
        return names[0] if names else None

    def _license_path(self, p: FakeProject) -> str | None:
        head = self._repos[p.id].head
        for name in sorted(head.files):
            if "/" not in name and re.match(r"(?i)(licen[cs]e|copying)(\.|$)", name):
                return name
        return None

    def _project_json(self, p: FakeProject, *, simple: bool = False,
                      with_license: bool = False, user: str | None = None) -> dict[str, Any]:
        web = self._web_url(p)
        readme = self._readme_path(p)
        ns = dict(p.namespace or _namespace_of(p.namespace_path))
        personal = ns.get("kind") == "user"
        ns.setdefault("web_url", f"{self.url}/{ns['full_path']}" if personal
                      else f"{self.url}/groups/{ns['full_path']}")
        ns_name = (self._user_json(ns["path"], brief=True)["name"] if personal
                   else " / ".join(p.namespace_path.split("/")))
        data: dict[str, Any] = {
            "id": p.id,
            "description": p.description,
            "name": p.name,
            "name_with_namespace": f"{ns_name} / {p.name}",
            "path": p.path,
            "path_with_namespace": p.path_with_namespace,
            "created_at": iso_ms(p.created_at),
            "default_branch": p.default_branch,
            "tag_list": list(p.topics),
            "topics": list(p.topics),
            "ssh_url_to_repo": f"git@{self.host}:{p.path_with_namespace}.git",
            "http_url_to_repo": f"{web}.git",
            "web_url": web,
            "readme_url": p.readme_url or (
                f"{web}/-/blob/{p.default_branch}/{readme}" if readme else None),
            "forks_count": p.forks_count,
            "avatar_url": p.avatar_url,
            "star_count": p.star_count,
            "last_activity_at": iso_ms(p.last_activity_at),
            "namespace": ns,
        }
        if simple:
            return data
        api = f"{self.url}{API_PREFIX}/projects/{p.id}"
        data.update({
            "container_registry_image_prefix":
                f"registry.{self.host}/{p.path_with_namespace}".lower(),
            "_links": {
                "self": api,
                "issues": f"{api}/issues",
                "merge_requests": f"{api}/merge_requests",
                "repo_branches": f"{api}/repository/branches",
                "labels": f"{api}/labels",
                "events": f"{api}/events",
                "members": f"{api}/members",
                "cluster_agents": f"{api}/cluster_agents",
            },
            "packages_enabled": True,
            "empty_repo": self._repos[p.id].head.sha == _ZERO_SHA
            or not self._repos[p.id].head.files,
            "archived": p.archived,
            "visibility": p.visibility,
            "resolve_outdated_diff_discussions": False,
            "issues_enabled": True,
            "merge_requests_enabled": True,
            "wiki_enabled": True,
            "jobs_enabled": True,
            "snippets_enabled": True,
            "container_registry_enabled": True,
            "lfs_enabled": True,
            "creator_id": 1,
            "import_status": "none",
            "open_issues_count": 0,
            "description_html": f"<p>{p.description}</p>" if p.description else "",
            "updated_at": iso_ms(max(p.last_activity_at, p.created_at)),
            "ci_config_path": None,
            "public_jobs": True,
            "shared_with_groups": [],
            "only_allow_merge_if_pipeline_succeeds": False,
            "request_access_enabled": True,
            "merge_method": "merge",
            "squash_option": "default_off",
        })
        if personal:
            data["owner"] = self._user_json(ns["path"], brief=True)
        if user is not None:  # Maintainer, or Reporter for the read-only users
            level = 20 if user in self.readers else 40
            data["permissions"] = {
                "project_access": {"access_level": level, "notification_level": 3},
                "group_access": None,
            }
        if with_license:
            lic_path = self._license_path(p)
            data["license_url"] = (f"{web}/-/blob/{p.default_branch}/{lic_path}"
                                   if lic_path else None)
            lic = p.license
            data["license"] = dict(lic) if isinstance(lic, dict) else None
        return data

    def _commit_json(self, p: FakeProject, c: _Commit) -> dict[str, Any]:
        date = _iso_git(c.committed_date)
        author = c.author or (*_GIT_COMMITTER, c.committed_date)
        committer = c.committer or (*_GIT_COMMITTER, c.committed_date)
        return {
            "id": c.sha,
            "short_id": c.sha[:8],
            "created_at": date,
            "parent_ids": list(c.parent_ids),
            "title": c.title,
            "message": c.message,
            "author_name": author[0],
            "author_email": author[1],
            "authored_date": _iso_git(author[2]),
            "committer_name": committer[0],
            "committer_email": committer[1],
            "committed_date": _iso_git(committer[2]),
            "trailers": {},
            "extended_trailers": {},
            "web_url": f"{self._web_url(p)}/-/commit/{c.sha}",
        }

    def _tag_json(self, p: FakeProject, tag: dict[str, Any]) -> dict[str, Any]:
        commit = self._repos[p.id].commits.get(tag["commit"])
        release = next((r for r in p.releases if r["tag_name"] == tag["name"]), None)
        annotated = tag.get("message") is not None
        return {
            "name": tag["name"],
            "message": tag.get("message"),
            "target": tag.get("target") or (
                _sha1("tag", tag["name"], tag["commit"]) if annotated else tag["commit"]),
            "commit": self._commit_json(p, commit) if commit else None,
            "release": {"tag_name": release["tag_name"], "description": release["description"]}
            if release else None,
            "protected": False,
            "created_at": _iso_git(tag.get("created_at")) if annotated else None,
        }

    def _release_json(self, p: FakeProject, rel: dict[str, Any]) -> dict[str, Any]:
        web = self._web_url(p)
        tag = rel["tag_name"]
        tag_obj = next((t for t in p.tags if t["name"] == tag), None)
        commit = self._repos[p.id].commits.get(tag_obj["commit"]) if tag_obj else None
        q = quote(tag, safe="")
        return {
            "name": rel.get("name") or tag,
            "tag_name": tag,
            "description": rel.get("description", ""),
            "created_at": iso_ms(rel["created_at"]),
            "released_at": iso_ms(rel["released_at"]),
            "upcoming_release": rel["released_at"] > _now(),
            "author": self._user_json("user", brief=True),
            "commit": self._commit_json(p, commit) if commit else None,
            "commit_path": f"/{p.path_with_namespace}/-/commit/{commit.sha}" if commit else None,
            "tag_path": f"/{p.path_with_namespace}/-/tags/{tag}",
            "assets": {
                "count": 4,
                "sources": [
                    {"format": fmt, "url": f"{web}/-/archive/{tag}/{p.path}-{tag}.{fmt}"}
                    for fmt in ("zip", "tar.gz", "tar.bz2", "tar")
                ],
                "links": [],
            },
            "evidences": [],
            "_links": {
                "closed_issues_url": f"{web}/-/issues?release_tag={q}&scope=all&state=closed",
                "closed_merge_requests_url":
                    f"{web}/-/merge_requests?release_tag={q}&scope=all&state=closed",
                "edit_url": f"{web}/-/releases/{q}/edit",
                "merged_merge_requests_url":
                    f"{web}/-/merge_requests?release_tag={q}&scope=all&state=merged",
                "opened_issues_url": f"{web}/-/issues?release_tag={q}&scope=all&state=opened",
                "opened_merge_requests_url":
                    f"{web}/-/merge_requests?release_tag={q}&scope=all&state=opened",
                "self": f"{web}/-/releases/{q}",
            },
        }

    def _user_json(self, username: str, *, brief: bool = False) -> dict[str, Any]:
        names = sorted(set(self.tokens.values()) | {username})
        data: dict[str, Any] = {
            "id": names.index(username) + 1,
            "username": username,
            "name": username.replace("-", " ").replace("_", " ").title(),
            "state": "active",
            "locked": False,
            "avatar_url": None,
            "web_url": f"{self.url}/{username}",
        }
        if not brief:
            data.update({
                "created_at": "2020-01-01T00:00:00.000Z",
                "bio": "",
                "public_email": None,
                "email": f"{username}@example.com",
                "is_admin": False,
                "can_create_group": True,
                "can_create_project": True,
                "two_factor_enabled": False,
                "external": False,
                "private_profile": False,
            })
        return data

    # ---- endpoints -------------------------------------------------------------------------

    def _ep_version(self, ctx: _Ctx) -> _Resp:
        if ctx.user is None:
            raise _ApiError(401, "401 Unauthorized")
        return _json({"version": GITLAB_VERSION, "revision": "d2f7a2e9a1c", "kas":
                      {"enabled": False, "externalUrl": None, "version": None},
                      "enterprise": False})

    def _ep_user(self, ctx: _Ctx) -> _Resp:
        if ctx.user is None:
            raise _ApiError(401, "401 Unauthorized")
        return _json(self._user_json(ctx.user))

    def _ep_projects(self, ctx: _Ctx) -> _Resp:
        items = [p for p in self._projects.values() if self._visible(p, ctx.user)]
        for p in items:
            self._sync_git(p)
        visibility = ctx.param("visibility")
        if visibility:
            if visibility not in ("public", "internal", "private"):
                raise _ApiError(400, "visibility does not have a valid value", "error")
            items = [p for p in items if p.visibility == visibility]
        topic = ctx.param("topic")
        if topic:
            wanted = {t.strip().lower() for t in topic.split(",") if t.strip()}
            items = [p for p in items if wanted <= {t.lower() for t in p.topics}]
        search = ctx.param("search")
        if search:
            s = search.lower()
            in_ns = _truthy(ctx.param("search_namespaces"))
            items = [p for p in items if s in p.name.lower() or s in p.path.lower()
                     or s in (p.description or "").lower()
                     or (in_ns and s in p.path_with_namespace.lower())]
        archived = ctx.param("archived")
        if archived is not None:
            items = [p for p in items if p.archived == _truthy(archived)]
        for name, keep in (("last_activity_after", lambda p, t: p.last_activity_at > t),
                           ("last_activity_before", lambda p, t: p.last_activity_at < t),
                           ("updated_after", lambda p, t: p.last_activity_at > t),
                           ("updated_before", lambda p, t: p.last_activity_at < t)):
            value = ctx.param(name)
            if value is not None:
                try:
                    when = _parse_time(value)
                except ValueError:
                    raise _ApiError(400, f"{name} is invalid", "error") from None
                items = [p for p in items if keep(p, when)]
        for name, keep_id in (("id_after", lambda i, n: i > n), ("id_before", lambda i, n: i < n)):
            value = ctx.param(name)
            if value is not None:
                bound = _int_param(ctx, name, 0)
                items = [p for p in items if keep_id(p.id, bound)]
        keyset = ctx.param("pagination") == "keyset"
        order_by = ctx.param("order_by", "id" if keyset else "created_at") or "created_at"
        sort = (ctx.param("sort", "desc") or "desc").lower()
        if order_by not in _PROJECT_ORDER:
            raise _ApiError(400, "order_by does not have a valid value", "error")
        if sort not in ("asc", "desc"):
            raise _ApiError(400, "sort does not have a valid value", "error")
        key = _PROJECT_ORDER[order_by]
        items.sort(key=lambda p: (key(p), p.id), reverse=sort == "desc")
        simple = _truthy(ctx.param("simple")) or (ctx.user is None and self.anonymous_simple)

        def render(p: FakeProject) -> dict[str, Any]:
            return self._project_json(p, simple=simple, user=ctx.user)

        if keyset:
            return self._keyset_projects(ctx, items, order_by, sort, render)
        return self._paginate(ctx, items, render)

    def _keyset_projects(self, ctx: _Ctx, items: list[FakeProject], order_by: str, sort: str,
                         render: Callable[[FakeProject], Any]) -> _Resp:
        if order_by != "id":
            raise _ApiError(405, "Keyset pagination is not yet available for this type of "
                                 "request", "error")
        per_page = _int_param(ctx, "per_page", 20)
        per_page = 20 if per_page < 1 else min(per_page, 100)
        chunk = items[:per_page]
        headers = {"X-Per-Page": str(per_page)}
        if len(items) > per_page:
            bound = "id_after" if sort == "asc" else "id_before"
            drop = "id_before" if sort == "asc" else "id_after"
            req = ctx.handler.request
            params = [(k, v) for k, v in parse_qsl(req.query, keep_blank_values=True)
                      if k not in (bound, drop, "page")]
            params.append((bound, str(chunk[-1].id)))
            link = f"{req.protocol}://{req.host}{req.path}?{urlencode(params)}"
            headers["Link"] = f'<{link}>; rel="next"'
            headers["Links"] = headers["Link"]
        return _json([render(p) for p in chunk], headers=headers)

    def _ep_project(self, ctx: _Ctx) -> _Resp:
        assert ctx.project is not None
        return _json(self._project_json(ctx.project, with_license=_truthy(ctx.param("license")),
                                        user=ctx.user))

    def _ep_projects_post(self, ctx: _Ctx) -> _Resp:
        """Create a project backed by a new empty bare repository (see the class docstring)."""
        assert ctx.user is not None
        params = _write_params(ctx)
        name = _str_param(params, "name").strip()
        path = _str_param(params, "path").strip()
        if not name and not path:
            raise _ApiError(400, "name, path are missing, at least one parameter must be "
                                 "provided", "error")
        path = path or _path_from_name(name)
        name = name or path
        ns_value = params.get("namespace_id")
        if ns_value is None or ns_value == "":
            ns: dict[str, Any] | None = self._user_namespace(ctx.user)
        else:
            ns = self._find_namespace(ns_value)
            if ns is not None and ns["kind"] == "user" and ns["full_path"] != ctx.user:
                ns = None  # someone else's personal namespace
        if ns is None:
            raise _ApiError(404, "404 Namespace Not Found")
        visibility = _visibility_param(params, "private")
        branch = _str_param(params, "default_branch").strip() or "main"
        if not _valid_branch_name(branch):
            raise _ApiErrors({"default_branch": ["is invalid"]})
        topics = _topics_param(params)
        full_path = f"{ns['full_path']}/{path}"
        errors: dict[str, list[str]] = {}
        if not _PROJECT_PATH.fullmatch(path):
            errors["path"] = [_PROJECT_PATH_MESSAGE]
        elif full_path.lower() in self._by_path:
            errors["path"] = ["has already been taken"]
        if any(q.namespace_path.lower() == ns["full_path"].lower()
               and q.name.lower() == name.lower() for q in self._projects.values()):
            errors["name"] = ["has already been taken"]
        if errors:
            raise _ApiErrors(errors)
        pid = self._last_id + 1
        repo_dir = self._new_bare_repo(pid, branch)
        now = _now()
        namespace = {k: ns[k] for k in ("id", "name", "path", "kind", "full_path", "parent_id",
                                         "avatar_url", "web_url") if k in ns}
        project = self.add_project(FakeProject(
            id=pid, path_with_namespace=full_path, name=name, path=path,
            description=_opt_str_param(params, "description"), topics=topics or [],
            visibility=visibility, default_branch=branch, created_at=now,
            last_activity_at=now, namespace=namespace, git_repo=repo_dir))
        if _bool_param(params.get("initialize_with_readme")):
            self._git_commit(project, {"README.md": f"# {name}\n"}, (), "Initial commit", now)
        return _json(self._project_json(project, user=ctx.user), 201)

    def _ep_project_put(self, ctx: _Ctx) -> _Resp:
        """Edit a project: ``name``, ``description``, ``topics``/``tag_list``,
        ``default_branch``, ``visibility``; validated first, then applied together."""
        p = ctx.project
        assert p is not None
        params = _write_params(ctx)
        changes: dict[str, Any] = {}
        if "name" in params:
            name = _str_param(params, "name").strip()
            if not name:
                raise _ApiErrors({"name": ["can't be blank"]})
            if any(q.id != p.id and q.namespace_path.lower() == p.namespace_path.lower()
                   and q.name.lower() == name.lower() for q in self._projects.values()):
                raise _ApiErrors({"name": ["has already been taken"]})
            changes["name"] = name
        if "description" in params:
            changes["description"] = _opt_str_param(params, "description")
        topics = _topics_param(params)
        if topics is not None:
            changes["topics"] = topics
        if "visibility" in params:
            changes["visibility"] = _visibility_param(params, p.visibility)
        branch = _str_param(params, "default_branch").strip()
        state = self._git.get(p.id)
        if branch and branch != p.default_branch:
            # GitLab moves HEAD to an existing branch only (even in an empty repository)
            known = (self._repos[p.id].branches or {}) if state is not None else None
            if (known is not None and branch not in known) or not _valid_branch_name(branch):
                raise _ApiError(400, "Could not set the default branch")
            changes["default_branch"] = branch
        for key, value in changes.items():
            setattr(p, key, value)
        if "default_branch" in changes and state is not None:
            _git(state.git_dir, "symbolic-ref", "HEAD", f"refs/heads/{changes['default_branch']}")
            self._sync_git(p, force=True)
        p.last_activity_at = _now()
        return _json(self._project_json(p, user=ctx.user))

    def _ep_namespace(self, ctx: _Ctx) -> _Resp:
        if ctx.user is None:
            raise _ApiError(401, "401 Unauthorized")
        ns = self._find_namespace(unquote(ctx.groups["ns"]))
        if ns is None:
            raise _ApiError(404, "404 Namespace Not Found")
        full = ns["full_path"].lower()
        data = dict(ns)
        if ns["kind"] == "group":
            data["members_count_with_descendants"] = 1
        data.update({
            "billable_members_count": 1, "plan": "default", "end_date": None,
            "trial_ends_on": None, "trial": False, "root_repository_size": 0,
            "projects_count": sum(1 for q in self._projects.values()
                                  if q.namespace_path.lower() == full),
        })
        return _json(data)

    # ---- namespaces and new repositories ----------------------------------------------------

    def _user_namespace(self, user: str) -> dict[str, Any]:
        return {"id": _namespace_id(user), "name": user, "path": user, "kind": "user",
                "full_path": user, "parent_id": None, "avatar_url": None,
                "web_url": f"{self.url}/{user}"}

    def _namespaces(self) -> dict[str, dict[str, Any]]:
        """Known namespaces by lower-cased full path: the users' own (the values of
        ``tokens``) and the groups holding projects, with their parent groups."""
        found: dict[str, dict[str, Any]] = {}
        for p in self._projects.values():
            full = p.namespace_path
            ns = dict(p.namespace or _namespace_of(full))
            ns.setdefault("web_url", f"{self.url}/groups/{ns['full_path']}")
            found.setdefault(full.lower(), ns)
            parts = full.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                found.setdefault(parent.lower(), {**_namespace_of(parent),
                                                  "web_url": f"{self.url}/groups/{parent}"})
        for user in set(self.tokens.values()):
            found[user.lower()] = self._user_namespace(user)
        return found

    def _find_namespace(self, key: Any) -> dict[str, Any] | None:
        """A known namespace by id (an int or digits) or full path (None if unknown)."""
        known = self._namespaces()
        if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
            return next((ns for ns in known.values() if ns["id"] == int(key)), None)
        if isinstance(key, str):
            return known.get(key.strip("/").lower())
        return None

    def _new_bare_repo(self, pid: int, branch: str) -> Path:
        """A new empty bare repository, HEAD on ``branch``, in the server's temporary folder."""
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="gitlab-test-server-"))
        path = self._tmp / f"{pid}.git"
        if path.exists():
            shutil.rmtree(path)
        _git(path, "init", "--quiet", "--bare")
        _git(path, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
        return path

    def _commit_for(self, ctx: _Ctx, ref: str | None, message: str) -> _Commit:
        assert ctx.project is not None
        commit = self._resolve(ctx.project, ref)
        if commit is None:
            raise _ApiError(404, message)
        return commit

    def _ep_tree(self, ctx: _Ctx) -> _Resp:
        commit = self._commit_for(ctx, ctx.param("ref"), "404 Tree Not Found")
        entries = commit.entries()
        if not entries:
            raise _ApiError(404, "404 Tree Not Found")
        base = (ctx.param("path") or "").strip("/")
        if base and base not in commit.dirs():
            raise _ApiError(404, "404 Tree Not Found")
        prefix = base + "/" if base else ""
        recursive = _truthy(ctx.param("recursive"))
        selected = [e for e in entries if e["path"].startswith(prefix)
                    and (recursive or "/" not in e["path"][len(prefix):])]
        if not recursive:  # GitLab lists a directory's trees first, then its blobs
            selected.sort(key=lambda e: (e["type"] != "tree", e["name"]))
        return self._paginate(ctx, selected, dict)

    def _file_of(self, ctx: _Ctx, ref: str | None) -> tuple[_Commit, str, bytes]:
        commit = self._commit_for(ctx, ref, "404 Commit Not Found")
        path = unquote(ctx.groups["file"]).strip("/")
        if path not in commit.files:
            raise _ApiError(404, "404 File Not Found")
        return commit, path, commit.files[path]

    def _ep_file_raw(self, ctx: _Ctx) -> _Resp:
        wanted = unquote(ctx.groups["file"]).strip("/")
        if wanted in self.raw_redirects:
            return _Resp(302, b"", None, {"Location": self.raw_redirects[wanted]})
        if wanted in self.raw_streams:
            return _Resp(200, b"", "application/octet-stream", stream=self.raw_streams[wanted])
        _commit, path, data = self._file_of(ctx, ctx.param("ref"))
        try:
            data.decode("utf-8")
            ctype = "text/plain; charset=utf-8"
        except UnicodeDecodeError:
            ctype = "application/octet-stream"
        name = path.rsplit("/", 1)[-1]
        return _Resp(200, data, ctype, {
            "Content-Disposition": f"inline; filename=\"{name}\"; filename*=UTF-8''"
                                   f"{quote(name)}",
            "X-Gitlab-Blob-Id": _git_blob_sha(data),
            "X-Gitlab-Size": str(len(data)),
        })

    def _ep_file(self, ctx: _Ctx) -> _Resp:
        ref = ctx.param("ref")
        if ref is None:
            raise _ApiError(400, "ref is missing", "error")
        commit, path, data = self._file_of(ctx, ref)
        last = self._last_commit_touching(ctx.project, commit, path)  # type: ignore[arg-type]
        meta = {
            "file_name": path.rsplit("/", 1)[-1],
            "file_path": path,
            "size": len(data),
            "encoding": "base64",
            "content_sha256": hashlib.sha256(data).hexdigest(),
            "ref": ref,
            "blob_id": _git_blob_sha(data),
            "commit_id": commit.sha,
            "last_commit_id": last.sha,
            "execute_filemode": False,
        }
        headers = {f"X-Gitlab-{k.replace('_', '-').title()}": str(v) for k, v in meta.items()}
        return _json({**meta, "content": base64.b64encode(data).decode()}, headers=headers)

    def _last_commit_touching(self, p: FakeProject, commit: _Commit, path: str) -> _Commit:
        repo = self._repos[p.id]
        current = commit
        while current.parent_ids:
            parent = repo.commits.get(current.parent_ids[0])
            if parent is None or _touches(parent, current, path):
                return current
            current = parent
        return current

    def _ep_blob_raw(self, ctx: _Ctx) -> _Resp:
        assert ctx.project is not None
        data = self._repos[ctx.project.id].blobs.get(ctx.groups["sha"].lower())
        if data is None:
            raise _ApiError(404, "404 Blob Not Found")
        return _Resp(200, data, "text/plain; charset=utf-8")

    def _ep_blob(self, ctx: _Ctx) -> _Resp:
        assert ctx.project is not None
        sha = ctx.groups["sha"].lower()
        data = self._repos[ctx.project.id].blobs.get(sha)
        if data is None:
            raise _ApiError(404, "404 Blob Not Found")
        return _json({"size": len(data), "encoding": "base64", "sha": sha,
                      "content": base64.b64encode(data).decode()})

    def _ep_archive(self, ctx: _Ctx) -> _Resp:
        p = ctx.project
        assert p is not None
        fmt = (ctx.groups.get("fmt") or ".tar.gz").lstrip(".")
        if fmt not in ("zip", "tar.gz", "tgz", "tar", "gz"):
            raise _ApiError(404, "404 Not Found", "error")
        sha_param = ctx.param("sha")
        commit = self._commit_for(ctx, sha_param, "404 File Not Found")
        ref_name = sha_param or p.default_branch
        root = f"{p.path}-{ref_name}-{commit.sha}".replace("/", "-")
        sub = (ctx.param("path") or "").strip("/")
        files = {k: v for k, v in commit.files.items() if not sub or k.startswith(sub + "/")}
        buf = io.BytesIO()
        if fmt == "zip":
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, data in sorted(files.items()):
                    zf.writestr(f"{root}/{name}", data)
            ctype = "application/zip"
        else:
            mode = "w" if fmt == "tar" else "w:gz"
            with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
                for name, data in sorted(files.items()):
                    info = tarfile.TarInfo(f"{root}/{name}")
                    info.size, info.mtime = len(data), int(commit.committed_date.timestamp())
                    tf.addfile(info, io.BytesIO(data))
            ctype = "application/x-tar" if fmt == "tar" else "application/gzip"
        ext = "zip" if fmt == "zip" else ("tar" if fmt == "tar" else "tar.gz")
        return _Resp(200, buf.getvalue(), ctype, {
            "Content-Disposition": f'attachment; filename="{p.path}-{ref_name}.{ext}"'})

    def _ep_tags(self, ctx: _Ctx) -> _Resp:
        p = ctx.project
        assert p is not None
        tags = list(p.tags)
        search = ctx.param("search")
        if search:
            if search.startswith("^"):
                tags = [t for t in tags if t["name"].startswith(search[1:])]
            elif search.endswith("$"):
                tags = [t for t in tags if t["name"].endswith(search[:-1])]
            else:
                tags = [t for t in tags if search in t["name"]]
        order_by = ctx.param("order_by", "updated")
        sort = (ctx.param("sort", "desc") or "desc").lower()
        commits = self._repos[p.id].commits

        def date(t: dict[str, Any]) -> datetime:
            c = commits.get(t["commit"])
            return c.committed_date if c else p.created_at

        keys: dict[str, Callable[[dict[str, Any]], Any]] = {
            "updated": lambda t: (date(t), t["name"]),
            "name": lambda t: t["name"],
            "version": lambda t: [int(x) if x.isdigit() else x
                                 for x in re.split(r"(\d+)", t["name"]) if x],
        }
        if order_by not in keys:
            raise _ApiError(400, "order_by does not have a valid value", "error")
        tags.sort(key=keys[order_by], reverse=sort == "desc")
        return self._paginate(ctx, tags, lambda t: self._tag_json(p, t))

    def _ep_tag(self, ctx: _Ctx) -> _Resp:
        p = ctx.project
        assert p is not None
        name = unquote(ctx.groups["name"])
        tag = next((t for t in p.tags if t["name"] == name), None)
        if tag is None:
            raise _ApiError(404, "404 Tag Not Found")
        return _json(self._tag_json(p, tag))

    def _ep_releases(self, ctx: _Ctx) -> _Resp:
        p = ctx.project
        assert p is not None
        order_by = ctx.param("order_by", "released_at")
        if order_by not in ("released_at", "created_at"):
            raise _ApiError(400, "order_by does not have a valid value", "error")
        sort = (ctx.param("sort", "desc") or "desc").lower()
        releases = sorted(p.releases, key=lambda r: (r[order_by], r["tag_name"]),
                          reverse=sort == "desc")
        return self._paginate(ctx, releases, lambda r: self._release_json(p, r))

    def _ep_release(self, ctx: _Ctx) -> _Resp:
        p = ctx.project
        assert p is not None
        name = unquote(ctx.groups["name"])
        rel = next((r for r in p.releases if r["tag_name"] == name), None)
        if rel is None:
            raise _ApiError(404, "404 Not Found")
        return _json(self._release_json(p, rel))

    def _branch_names(self, p: FakeProject) -> list[str]:
        repo = self._repos[p.id]
        if repo.branches is not None:
            return sorted(repo.branches)
        return [p.default_branch] if repo.head.files else []

    def _branch_json(self, p: FakeProject, name: str | None = None) -> dict[str, Any]:
        repo = self._repos[p.id]
        name = name or p.default_branch
        commit = repo.head
        if repo.branches is not None and name in repo.branches:
            commit = repo.commits[repo.branches[name]]
        return {
            "name": name,
            "merged": False,
            "protected": name == p.default_branch,
            "default": name == p.default_branch,
            "developers_can_push": False,
            "developers_can_merge": False,
            "can_push": True,
            "web_url": f"{self._web_url(p)}/-/tree/{name}",
            "commit": self._commit_json(p, commit),
        }

    def _ep_branches(self, ctx: _Ctx) -> _Resp:
        p = ctx.project
        assert p is not None
        names = self._branch_names(p)
        search = ctx.param("search")
        if search:
            names = [b for b in names if search in b]
        return self._paginate(ctx, names, lambda name: self._branch_json(p, name))

    def _ep_branch(self, ctx: _Ctx) -> _Resp:
        p = ctx.project
        assert p is not None
        name = unquote(ctx.groups["name"])
        if name not in self._branch_names(p):
            raise _ApiError(404, "404 Branch Not Found")
        return _json(self._branch_json(p, name))

    def _ep_commits(self, ctx: _Ctx) -> _Resp:
        p = ctx.project
        assert p is not None
        repo = self._repos[p.id]
        if repo.head.sha == _ZERO_SHA:  # an empty repository has no history
            return self._paginate(ctx, [])
        start = self._commit_for(ctx, ctx.param("ref_name"), "404 Revision Not Found")
        history: list[_Commit] = []
        current: _Commit | None = start
        while current is not None:
            history.append(current)
            current = repo.commits.get(current.parent_ids[0]) if current.parent_ids else None
        path = (ctx.param("path") or "").strip("/")
        if path:
            history = [c for c in history
                       if _touches(repo.commits.get(c.parent_ids[0]) if c.parent_ids else None,
                                   c, path)]
        for name, keep in (("since", lambda c, t: c.committed_date >= t),
                           ("until", lambda c, t: c.committed_date <= t)):
            value = ctx.param(name)
            if value is not None:
                try:
                    when = _parse_time(value)
                except ValueError:
                    raise _ApiError(400, f"{name} is invalid", "error") from None
                history = [c for c in history if keep(c, when)]
        return self._paginate(ctx, history, lambda c: self._commit_json(p, c))

    def _ep_commit(self, ctx: _Ctx) -> _Resp:
        p = ctx.project
        assert p is not None
        commit = self._commit_for(ctx, unquote(ctx.groups["sha"]), "404 Commit Not Found")
        data = self._commit_json(p, commit)
        data.update({"stats": {"additions": 0, "deletions": 0, "total": 0},
                     "status": None, "project_id": p.id, "last_pipeline": None})
        return _json(data)


def _touches(parent: _Commit | None, commit: _Commit, path: str) -> bool:
    """Whether ``commit`` changed ``path`` (a file or a directory) relative to ``parent``."""
    def view(c: _Commit | None) -> dict[str, bytes]:
        if c is None:
            return {}
        return {k: v for k, v in c.files.items() if k == path or k.startswith(path + "/")}

    return view(parent) != view(commit)


_PROJECT_PATH = re.compile(r"(?!.*(\.git|\.atom)$)[A-Za-z0-9_][A-Za-z0-9_.-]*")
_PROJECT_PATH_MESSAGE = ("can contain only letters, digits, '_', '-' and '.'. Cannot start with "
                         "'-', end in '.git' or end in '.atom'")


def _write_params(ctx: _Ctx) -> dict[str, Any]:
    """A write's parameters: the query string's, then the body's: a JSON object, or form data
    (urlencoded or multipart) where a repeated ``key[]`` makes a list."""
    req = ctx.handler.request
    params: dict[str, Any] = {}

    def add(pairs: Iterable[tuple[str, str]]) -> None:
        for key, value in pairs:
            if key.endswith("[]"):
                listed = params.get(key[:-2])
                if not isinstance(listed, list):
                    listed = params[key[:-2]] = []
                listed.append(value)
            else:
                params[key] = value

    add(parse_qsl(req.query, keep_blank_values=True))
    ctype = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or (not ctype and req.body.strip().startswith(b"{")):
        try:
            data = json.loads(req.body or b"{}")
        except ValueError:
            raise _ApiError(400, "400 Bad request - Invalid JSON body", "error") from None
        if not isinstance(data, dict):
            raise _ApiError(400, "400 Bad request - Invalid JSON body", "error")
        params.update(data)
    else:
        add((key, value.decode("utf-8", "replace"))
            for key, values in req.body_arguments.items() for value in values)
    return params


def _str_param(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise _ApiError(400, f"{name} is invalid", "error")
    return str(value)


def _opt_str_param(params: Mapping[str, Any], name: str) -> str | None:
    return None if params.get(name) is None else _str_param(params, name)


def _bool_param(value: Any) -> bool:
    return value if isinstance(value, bool) else _truthy(None if value is None else str(value))


def _visibility_param(params: Mapping[str, Any], default: str) -> str:
    value = _str_param(params, "visibility") or default
    if value not in ("public", "internal", "private"):
        raise _ApiError(400, "visibility does not have a valid value", "error")
    return value


def _topics_param(params: Mapping[str, Any]) -> list[str] | None:
    """``topics`` (or the older ``tag_list``): a list or a comma-separated string; stripped,
    without blanks or case-insensitive duplicates (None when neither is given)."""
    key = "topics" if "topics" in params else "tag_list" if "tag_list" in params else None
    if key is None:
        return None
    value = params[key]
    if value is None:
        items: list[Any] = []
    elif isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        raise _ApiError(400, f"{key} is invalid", "error")
    topics: list[str] = []
    for item in items:
        topic = str(item).strip()
        if topic and topic.lower() not in {t.lower() for t in topics}:
            topics.append(topic)
    return topics


def _path_from_name(name: str) -> str:
    """GitLab's path for a project created with a name only (Rails' ``parameterize``)."""
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")


def _valid_branch_name(name: str) -> bool:
    proc = subprocess.run([_git_executable(), "check-ref-format", f"refs/heads/{name}"],
                          capture_output=True, env=_git_env(), check=False)
    return proc.returncode == 0 and name != "HEAD"


def _int_param(ctx: _Ctx, name: str, default: int) -> int:
    value = ctx.param(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise _ApiError(400, f"{name} is invalid", "error") from None


# --------------------------------------------------------------------------------------------
# synthetic corpus

_GROUPS = ("eo-lab", "space-apps", "climate/ml", "ai4eo/models", "ai4eo/datasets",
           "hydro/floods", "agri/monitoring", "ocean/colour", "cs-group/sharinghub/demo")
_SUBJECTS = ("flood", "wildfire", "crop", "cloud", "ship", "landcover", "snow", "urban",
             "forest", "glacier", "coastline", "solar-panel", "air-quality", "methane", "road",
             "building", "water-body", "burned-area", "sea-ice", "vineyard")
_TASKS = ("segmentation", "detection", "classification", "mapping", "forecast",
          "change-detection", "super-resolution", "masking", "monitoring", "estimation")
_SENSORS = {"sentinel1": "Sentinel-1", "sentinel2": "Sentinel-2", "landsat8": "Landsat 8",
            "spot6": "SPOT 6", "pleiades": "Pléiades", "modis": "MODIS", "era5": "ERA5"}
_KEYWORDS = ("earth-observation", "remote-sensing", "deep-learning", "pytorch", "sar",
             "optical", "time-series", "climate", "geoai", "stac")
_REGIONS = (
    ("France", (-5.14, 41.33, 9.56, 51.09)),
    ("Europe", (-25.0, 34.0, 45.0, 72.0)),
    ("Sahel", (-17.5, 10.0, 40.0, 20.0)),
    ("Amazon basin", (-79.6, -20.5, -48.0, 5.3)),
    ("Alps", (5.0, 43.5, 16.5, 48.5)),
    ("World", (-180.0, -90.0, 180.0, 90.0)),
    ("Occitanie", (-0.33, 42.33, 4.85, 45.05)),
    ("California", (-124.48, 32.53, -114.13, 42.01)),
    ("Bangladesh", (88.01, 20.67, 92.67, 26.63)),
    ("Greenland", (-73.3, 59.8, -12.2, 83.6)),
)
_CATEGORY_WEIGHTS = (0.35, 0.30, 0.15, 0.10, 0.10)
_CATEGORY_FILES: dict[str, tuple[str, ...]] = {
    "sharinghub:aimodel": ("src/train.py", "requirements.txt", "model/model.onnx",
                           "notebooks/inference.ipynb", "MLproject", "config/params.yaml"),
    "sharinghub:dataset": ("scripts/prepare.py", "requirements.txt", "docs/schema.md",
                           "notebooks/explore.ipynb"),
    "sharinghub:processor": ("Dockerfile", "app/main.py", "requirements.txt",
                             "app/pipeline.py", "cwl/workflow.cwl"),
    "sharinghub:tools": ("pyproject.toml", "src/toolkit/__init__.py", "tests/test_basic.py",
                         "docs/index.md"),
    "sharinghub:space": ("app.py", "requirements.txt", "assets/preview.png",
                         ".streamlit/config.toml"),
}


def _yaml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _file_content(path: str, rng: random.Random, title: str) -> bytes:
    if path.endswith((".onnx", ".png")):
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(64, 256)))
    if path.endswith(".py"):
        return f'"""{title}: {path}."""\n\n\ndef main() -> None:\n    print("ok")\n'.encode()
    if path.endswith(".ipynb"):
        return json.dumps({"cells": [{"cell_type": "markdown", "metadata": {},
                                      "source": [f"# {title}"]}],
                           "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()
    if path == "requirements.txt":
        return b"numpy>=1.24\nrasterio>=1.3\ntorch>=2.1\n"
    if path == "Dockerfile":
        return b"FROM python:3.11-slim\nCOPY . /app\nCMD [\"python\", \"/app/app/main.py\"]\n"
    return f"# {title}\n\n{path}\n".encode()


def make_synthetic_projects(
    n: int,
    *,
    seed: int = 0,
    files_per_project: int = 4,
    active_recently_fraction: float = 0.0,
    private_fraction: float = 0.0,
    now: datetime | None = None,
    id_start: int = 1,
) -> list[FakeProject]:
    """``n`` varied SharingHub-like projects, deterministic for a given ``seed`` and ``now``.

    Topics: one ``sharinghub:*`` category (20% two, ~5% no topic at all) plus sometimes
    generic keywords.  Each has a ``README.md`` with YAML front matter (``title``,
    ``description``, ``keywords``, ``license`` when licensed, ``extent.spatial`` as a
    ``[west, south, east, north]`` bbox and ``extent.temporal`` as ``[start, end]``),
    ``files_per_project`` more files, most datasets (and a few others) a DVC 3 ``data.dvc``
    plus a ``.dvc/config`` naming an s3 remote, ~70% a ``LICENSE``, ~25% tags and a release.
    ``last_activity_at`` is more than a day old except for exactly
    ``round(n * active_recently_fraction)`` randomly chosen projects, active within the last
    hour.  Apart from that choice, project ``i`` depends only on ``seed`` and ``i``.
    """
    now = _ms(now or datetime.now(UTC))
    recent = set(random.Random(seed).sample(range(n), round(n * active_recently_fraction)))
    projects: list[FakeProject] = []
    used: set[str] = set()
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        pid = id_start + i
        subject, task = rng.choice(_SUBJECTS), rng.choice(_TASKS)
        sensor = rng.choice(list(_SENSORS))
        group = rng.choice(_GROUPS)
        path = f"{subject}-{task}-{sensor}"
        if f"{group}/{path}".lower() in used:
            path = f"{path}-{pid}"
        used.add(f"{group}/{path}".lower())
        title = f"{subject.replace('-', ' ').capitalize()} {task.replace('-', ' ')} " \
                f"({_SENSORS[sensor]})"

        roll = rng.random()
        if roll < 0.05:
            topics: list[str] = []
        else:
            first = rng.choices(CATEGORY_TOPICS, _CATEGORY_WEIGHTS)[0]
            topics = [first]
            if rng.random() < 0.2:
                topics.append(rng.choice([t for t in CATEGORY_TOPICS if t != first]))
            if rng.random() < 0.5:
                topics += rng.sample(_KEYWORDS, rng.randint(1, 2))
        category = next((t for t in topics if t in CATEGORY_TOPICS), "sharinghub:tools")

        created = now - timedelta(days=rng.uniform(30, 900))
        newest = now - timedelta(days=1, hours=1)
        last = created + (newest - created) * rng.uniform(0.1, 1.0)
        if i in recent:
            last = now - timedelta(minutes=rng.uniform(1, 55))
        region, bbox = rng.choice(_REGIONS)
        start_year = rng.randint(2015, 2022)
        start = f"{start_year}-{rng.randint(1, 12):02d}-01T00:00:00Z"
        end = None if rng.random() < 0.15 else f"{start_year + rng.randint(0, 3)}-12-31T23:59:59Z"
        description = (f"{task.replace('-', ' ').capitalize()} of {subject.replace('-', ' ')} "
                       f"from {_SENSORS[sensor]} imagery over {region}.")
        lic_key = rng.choice(["mit", "apache-2.0", "gpl-3.0", "bsd-3-clause", "cc-by-4.0"]) \
            if rng.random() < 0.7 else None
        keywords = [subject, task, sensor, *[t for t in topics if t not in CATEGORY_TOPICS]]

        front = [
            "---",
            f"title: {_yaml_str(title)}",
            f"description: {_yaml_str(description)}",
            f"keywords: [{', '.join(_yaml_str(k) for k in keywords)}]",
        ]
        if lic_key:
            front.append(f"license: {_SPDX[lic_key]}")
        front += [
            "extent:",
            f"  spatial: [{', '.join(str(v) for v in bbox)}]",
            f"  temporal: [{_yaml_str(start)}, {_yaml_str(end) if end else 'null'}]",
            "---",
        ]
        readme = "\n".join(front) + (
            f"\n\n# {title}\n\n{description}\n\n"
            f"## Usage\n\n```bash\npip install -r requirements.txt\n```\n")
        files: dict[str, bytes | str] = {"README.md": readme}
        candidates = list(_CATEGORY_FILES[category])
        for k in range(files_per_project):
            name = candidates[k] if k < len(candidates) else f"docs/notes-{k}.md"
            files[name] = _file_content(name, rng, title)
        if lic_key:
            lic = LICENSES[lic_key]
            files["LICENSE"] = f"{lic['name']}\n\nCopyright (c) {created.year} SharingHub\n"
        has_dvc = rng.random() < (0.8 if category == "sharinghub:dataset" else 0.1)
        if has_dvc:
            size = rng.randint(10_000, 5_000_000_000)
            files["data.dvc"] = (f"outs:\n- md5: {rng.getrandbits(128):032x}\n  size: {size}\n"
                                 f"  hash: md5\n  path: data\n")
            files[".dvc/config"] = (
                "[core]\n    remote = storage\n"
                "['remote \"storage\"']\n"
                f"    url = s3://sharinghub-dvc/{group}/{path}\n"
                "    endpointurl = https://s3.example.com\n")
            files[".dvc/.gitignore"] = "/config.local\n/tmp\n/cache\n"
            files[".gitignore"] = "/data\n"

        tags: list[dict[str, Any]] = []
        releases: list[dict[str, Any]] = []
        if rng.random() < 0.25:
            t0 = created + (last - created) * 0.3
            t1 = created + (last - created) * 0.9
            tags = [
                {"name": "v0.1.0", "commit": _sha1("tag", seed, pid, "v0.1.0"),
                 "message": None, "created_at": t0},
                {"name": "v1.0.0", "commit": None, "message": "First stable release",
                 "created_at": t1},
            ]
            releases = [{"tag_name": "v1.0.0", "name": f"{title} v1.0.0",
                         "description": f"First stable release of {title}.",
                         "released_at": t1, "created_at": t1}]
        projects.append(FakeProject(
            id=pid,
            path_with_namespace=f"{group}/{path}",
            name=title,
            path=path,
            description=description if rng.random() < 0.9 else None,
            topics=topics,
            visibility="private" if rng.random() < private_fraction else "public",
            created_at=created,
            last_activity_at=last,
            star_count=min(int(rng.paretovariate(1.2)) - 1, 500),
            forks_count=rng.randint(0, 3),
            files=files,
            head_commit=_sha1("head", seed, pid),
            tags=tags,
            releases=releases,
            license=lic_key,
        ))
    return projects
