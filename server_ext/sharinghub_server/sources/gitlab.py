"""GitLab as a source of projects, through python-gitlab.

Every call goes through python-gitlab's retrying HTTP layer (5xx, timeouts and connection
errors with exponential backoff; 429 honouring ``Retry-After``). One client per worker thread,
since a requests session is not meant to be shared between threads.

A crawl is bound by GitLab's latency, not by our CPU: projects are fetched by 16 threads at
once (each waits on about four requests of 20 ms or more, and spends well under a millisecond
of CPU on each), and each session reads the environment's proxy and CA settings once instead
of on every request.
"""

from __future__ import annotations

import contextlib
import os
import threading
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import gitlab
import gitlab.exceptions
import requests

from ..catalog.dvc_outputs import is_dvc_file
from ..catalog.frontmatter import parse_readme
from .base import SourceError, repo_fingerprint
from .records import ProjectRecord, Ref, Release, Tag

_README_NAMES = ("README.md", "readme.md", "Readme.md", "README.MD")
_MAX_DVC_FILES = 200


class GitLabSource:
    def __init__(self, url: str, token: str = "", *, workers: int = 16, timeout: float = 30,
                 max_retries: int = 6) -> None:
        """``max_retries`` bounds python-gitlab's exponential backoff (0.1 s doubling: six
        retries wait at most 6.3 s in all, unless a 429 asks for longer)."""
        self.url = url.rstrip("/")
        self.key = f"gitlab:{self.url}"
        self.workers = workers
        self._token = token
        self._timeout = timeout
        self._max_retries = max_retries
        self._local = threading.local()

    def __repr__(self) -> str:  # never show the token
        return f"GitLabSource({self.url!r})"

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request to this GitLab (for streamed downloads)."""
        return {"PRIVATE-TOKEN": self._token} if self._token else {}

    # --- plumbing -------------------------------------------------------------------------

    @property
    def _gl(self) -> gitlab.Gitlab:
        gl = getattr(self._local, "gl", None)
        if gl is None:
            session, verify = self._session()
            gl = gitlab.Gitlab(self.url, private_token=self._token or None, timeout=self._timeout,
                               retry_transient_errors=True, session=session, per_page=100,
                               keep_base_url=True, ssl_verify=verify)
            self._local.gl = gl
        return gl

    def _session(self) -> tuple[requests.Session, bool | str]:
        """A session that reads what requests takes from the environment (proxies with
        ``no_proxy``, the ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` certificates, ``.netrc``
        without a token) once, for this GitLab, rather than on each request (where scanning
        the environment costs a fifth of a request's CPU); and the TLS verification to use."""
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=4)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self.url))
        if not self._token:
            session.auth = requests.utils.get_netrc_auth(self.url)
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        return session, verify or True

    def _get(self, path: str, **params: Any) -> Any:
        return self._gl.http_get(path, query_data=params, max_retries=self._max_retries)

    def _list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items = self._gl.http_list(path, query_data={"per_page": 100, **params}, iterator=True,
                                   max_retries=self._max_retries)
        return list(items)

    def _raw(self, project_id: int, path: str, ref: str) -> str | None:
        try:
            response = self._gl.http_get(
                f"/projects/{project_id}/repository/files/{quote(path, safe='')}/raw",
                query_data={"ref": ref}, raw=True, streamed=False, max_retries=self._max_retries)
        except gitlab.exceptions.GitlabHttpError as exc:
            if exc.response_code == 404:
                return None
            raise
        return response.content.decode("utf-8", errors="replace")

    def _error(self, what: str, exc: Exception) -> SourceError:
        if isinstance(exc, gitlab.exceptions.GitlabAuthenticationError):
            return SourceError(f"{what}: GitLab at {self.url} refused the token (401)")
        if isinstance(exc, gitlab.exceptions.GitlabHttpError):
            return SourceError(f"{what}: GitLab answered {exc.response_code} "
                               f"{_error_text(exc.response_code, exc.error_message)}")
        if isinstance(exc, requests.RequestException):
            return SourceError(f"{what}: GitLab at {self.url} is unreachable "
                               f"({type(exc).__name__})")
        return SourceError(f"{what}: {exc}")

    # --- Source ---------------------------------------------------------------------------

    def list_projects(self, topics: list[str]) -> list[ProjectRecord]:
        from concurrent.futures import ThreadPoolExecutor

        def by_topic(topic: str) -> list[dict[str, Any]]:
            return self._list("/projects", topic=topic, order_by="id", sort="asc")

        try:
            with ThreadPoolExecutor(max_workers=min(self.workers, max(1, len(topics)))) as pool:
                pages = list(pool.map(by_topic, topics))
        except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
            raise self._error("listing projects", exc) from None
        seen: dict[int, ProjectRecord] = {}
        for data in (p for page in pages for p in page):
            if data["id"] not in seen:
                seen[data["id"]] = self._record(data)
        return list(seen.values())

    def _record(self, data: dict[str, Any]) -> ProjectRecord:
        return ProjectRecord(
            source=self.key,
            id=data["path_with_namespace"],
            name=data.get("name") or data["path"],
            topics=list(data.get("topics") or data.get("tag_list") or []),
            created_at=data.get("created_at"),
            last_activity_at=data.get("last_activity_at"),
            description=data.get("description") or "",
            web_url=data.get("web_url") or f"{self.url}/{data['path_with_namespace']}",
            host_name=f"GitLab ({self.url})",
            host_url=self.url,
            gitlab_id=data["id"],
            default_branch=data.get("default_branch") or "main",
            star_count=int(data.get("star_count") or 0),
            visibility=data.get("visibility") or "private",
            repo_url=data.get("http_url_to_repo"),
        )

    def project(self, project_id: str) -> ProjectRecord | None:
        data = self.project_json(project_id)
        return None if data is None else self._record(data)

    def project_json(self, project_id: str | int) -> dict[str, Any] | None:
        """GitLab's JSON of one project (by id or full path; with the token user's
        ``permissions``), None if GitLab does not know it (or hides it)."""
        try:
            return self._get(f"/projects/{quote(str(project_id), safe='')}")
        except gitlab.exceptions.GitlabHttpError as exc:
            if exc.response_code == 404:
                return None
            raise self._error(f"reading {project_id}", exc) from None
        except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
            raise self._error(f"reading {project_id}", exc) from None

    def fetch(self, project: ProjectRecord, *, fingerprint: bool) -> ProjectRecord:
        pid, ref = project.gitlab_id, project.default_branch
        record = ProjectRecord.from_json(project.to_json())
        record.errors = []
        try:
            tree = self._list(f"/projects/{pid}/repository/tree", recursive=True, ref=ref)
        except gitlab.exceptions.GitlabHttpError as exc:
            if exc.response_code != 404:  # 404: an empty repository
                raise self._error(f"reading {project.id}", exc) from None
            tree = []
        except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
            raise self._error(f"reading {project.id}", exc) from None
        try:
            record.files = sorted(e["path"] for e in tree if e.get("type") == "blob")
            readme_name = next((n for n in _README_NAMES if n in record.files), None)
            record.readme = self._raw(pid, readme_name, ref) if readme_name else None
            dvc_paths = [f for f in record.files if is_dvc_file(f)]
            if len(dvc_paths) > _MAX_DVC_FILES:
                record.errors.append(f"{len(dvc_paths)} DVC files: only the first "
                                     f"{_MAX_DVC_FILES} are read")
            for path in dvc_paths[:_MAX_DVC_FILES]:
                text = self._raw(pid, path, ref)
                if text is not None:
                    record.dvc_files[path] = text
            record.releases = [
                Release(tag_name=r["tag_name"], name=r.get("name") or "",
                        released_at=r.get("released_at") or r.get("created_at"),
                        description=r.get("description") or "")
                for r in self._list(f"/projects/{pid}/releases")
            ]
            if not _declares_license(record.readme):
                detail = self._get(f"/projects/{pid}", license=True)
                lic = detail.get("license") or {}
                record.license_id = _spdx(lic)
                record.license_name = lic.get("name")
                record.license_url = lic.get("html_url") or detail.get("license_url")
            if fingerprint:
                record.head_commit, record.tags = self._head_and_tags(pid, ref)
        except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
            raise self._error(f"reading {project.id}", exc) from None
        return record

    def _head_and_tags(self, pid: int | None, ref: str) -> tuple[str | None, list[Tag]]:
        try:
            branch = self._get(f"/projects/{pid}/repository/branches/{quote(ref, safe='')}")
            head = branch.get("commit", {}).get("id")
        except gitlab.exceptions.GitlabHttpError as exc:
            if exc.response_code != 404:
                raise
            head = None
        tags = [Tag(name=t["name"], commit=(t.get("commit") or {}).get("id") or t.get("target", ""),
                    date=(t.get("commit") or {}).get("committed_date"))
                for t in self._list(f"/projects/{pid}/repository/tags")]
        return head, tags

    def refs(self, project: ProjectRecord) -> list[Ref]:
        """The project's tags and its default branch's head, as GitLab has them now."""
        pid, branch = project.gitlab_id, project.default_branch
        try:
            head = self._get(f"/projects/{pid}/repository/branches/{quote(branch, safe='')}")
            tags = self._list(f"/projects/{pid}/repository/tags")
        except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
            raise self._error(f"reading the versions of {project.id}", exc) from None
        commit = head.get("commit") or {}
        refs = [Ref(branch, "branch", commit.get("id", ""), commit.get("committed_date"))]
        for t in tags:
            c = t.get("commit") or {}
            refs.append(Ref(t["name"], "tag", c.get("id") or t.get("target", ""),
                            c.get("committed_date") or t.get("created_at")))
        return refs

    def dvc_files_at(self, project: ProjectRecord, commit: str) -> dict[str, str]:
        """Text of the DVC files (``*.dvc``, ``dvc.lock``, ``.dvc/config``) at a commit."""
        pid = project.gitlab_id
        try:
            tree = self._list(f"/projects/{pid}/repository/tree", recursive=True, ref=commit)
            files = {}
            for entry in tree:
                if entry.get("type") == "blob" and is_dvc_file(entry["path"]):
                    text = self._raw(pid, entry["path"], commit)
                    if text is not None:
                        files[entry["path"]] = text
        except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
            raise self._error(f"reading {project.id} at {commit[:12]}", exc) from None
        return files

    def clone_url(self, project: ProjectRecord) -> str:
        return project.repo_url or f"{project.web_url}.git"

    def git_token(self) -> str | None:
        return self._token or None

    def fingerprint(self, project: ProjectRecord) -> str:
        try:
            head, tags = self._head_and_tags(project.gitlab_id, project.default_branch)
        except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
            raise self._error(f"checking {project.id}", exc) from None
        return repo_fingerprint(head, tags)


    # --- writes (publishing) ----------------------------------------------------------------

    def current_user(self) -> dict[str, Any]:
        """The token's user (``username``, ``name``, ``email``...)."""
        try:
            return self._get("/user")
        except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
            raise self._error("reading the token's user", exc) from None

    def namespace(self, path: str) -> dict[str, Any] | None:
        """A namespace (group or user) by full path, None if unknown or hidden."""
        try:
            return self._get(f"/namespaces/{quote(path, safe='')}")
        except gitlab.exceptions.GitlabHttpError as exc:
            if exc.response_code == 404:
                return None
            raise self._error(f"reading namespace {path}", exc) from None
        except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
            raise self._error(f"reading namespace {path}", exc) from None

    def create_project(self, *, name: str, path: str, namespace_id: int | str,
                       description: str, topics: list[str], visibility: str) -> dict[str, Any]:
        """``POST /projects``: the new (empty) project's JSON. GitLab's refusals raise
        ``gitlab.exceptions.GitlabCreateError`` (``response_code`` 400 for a taken path,
        403 for a namespace the user may not create in)."""
        project = self._gl.projects.create(
            {"name": name, "path": path, "namespace_id": namespace_id,
             "description": description, "topics": topics, "visibility": visibility},
            retry_transient_errors=False)  # a retried POST could create the project twice
        return project.asdict()

    def delete_project(self, project_id: int) -> None:
        """Best effort (a failed first push must not leave an empty project behind)."""
        with contextlib.suppress(gitlab.exceptions.GitlabError, requests.RequestException):
            self._gl.http_delete(f"/projects/{project_id}")


def can_push(data: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether GitLab's project JSON says its token user can push (Developer, access level
    30, or more through the project or its group), and why not."""
    if data.get("archived"):
        return False, f"{data.get('path_with_namespace')} is archived on GitLab"
    perms = data.get("permissions") or {}
    levels = [int((perms.get(k) or {}).get("access_level") or 0)
              for k in ("project_access", "group_access")]
    level = max(levels, default=0)
    if level >= 30:
        return True, None
    role = {0: "no role", 10: "Guest", 5: "Minimal access", 20: "Reporter"}.get(
        level, f"access level {level}")
    return False, (f"your GitLab role on {data.get('path_with_namespace')} is {role}: "
                   "publishing needs Developer (30) or more")


def _spdx(lic: dict[str, Any]) -> str | None:
    """GitLab's license ``key`` is lower-case (``mit``, ``apache-2.0``); STAC wants SPDX ids."""
    key = lic.get("key")
    if not key:
        return None
    known = {"mit": "MIT", "apache-2.0": "Apache-2.0", "gpl-3.0": "GPL-3.0-only",
             "gpl-2.0": "GPL-2.0-only", "lgpl-3.0": "LGPL-3.0-only", "lgpl-2.1": "LGPL-2.1-only",
             "agpl-3.0": "AGPL-3.0-only", "bsd-2-clause": "BSD-2-Clause",
             "bsd-3-clause": "BSD-3-Clause", "mpl-2.0": "MPL-2.0", "unlicense": "Unlicense",
             "cc0-1.0": "CC0-1.0", "cc-by-4.0": "CC-BY-4.0", "cc-by-sa-4.0": "CC-BY-SA-4.0",
             "epl-2.0": "EPL-2.0", "bsl-1.0": "BSL-1.0", "isc": "ISC", "other": "other"}
    return known.get(str(key).lower(), lic.get("nickname") or str(key))


def _declares_license(readme: str | None) -> bool:
    """Whether the front matter names a license, so GitLab's detection is not needed."""
    meta, _, _ = parse_readme(readme)
    return bool(meta.get("license"))


def _error_text(status: int | None, message: Any) -> str:
    """GitLab's error message for a crawl status line: its own short message (JSON
    ``message``, already extracted by python-gitlab), else the status's reason phrase; never
    a proxy's HTML page or a body as bytes."""
    if isinstance(message, bytes):
        message = message.decode("utf-8", errors="replace")
    text = str(message or "").strip()
    if not text or "\n" in text or "<" in text or len(text) > 160:
        try:
            return HTTPStatus(status or 0).phrase
        except ValueError:
            return "(an error page)"
    return text
