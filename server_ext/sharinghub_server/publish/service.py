"""The publisher: checks each publish request, does the quick work (a new project, a README
front-matter edit) or starts the job (a dataset version), and re-indexes at once.

Everything here blocks (git, GitLab): the handlers run it off the event loop. Refusals are
one line and leave everything as it was: BadRequest (400), Forbidden (403), NotFound (404),
Conflict (409); Upstream (502) when GitLab or git fail where they should not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from ..catalog.categories import Category, categories_of
from ..catalog.frontmatter import parse_readme, with_front_matter
from ..datasets import gitops
from ..jobs import Job, JobError
from ..service import BadRequest, Conflict, Forbidden, NotFound, Upstream
from ..sources.base import SourceError
from ..sources.records import ProjectRecord
from . import templates

if TYPE_CHECKING:
    from ..service import CatalogService

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_README_NAMES = ("README.md", "readme.md", "Readme.md", "README.MD")
_VISIBILITY = ("private", "internal", "public")
_FALLBACK_IDENTITY = ("SharingHub Lab", "sharinghub-lab@localhost")


class Publisher:
    def __init__(self, catalog: CatalogService, *, dvc_default_remote: str = "") -> None:
        self.catalog = catalog
        self.dvc_default_remote = dvc_default_remote

    # --- sources ------------------------------------------------------------------------------

    def _gitlab(self) -> list[Any]:
        from ..sources.gitlab import GitLabSource

        return [s for s in self.catalog.sources.values() if isinstance(s, GitLabSource)]

    def _locals(self) -> list[Any]:
        from ..sources.local import LocalSource

        return [s for s in self.catalog.sources.values() if isinstance(s, LocalSource)]

    @staticmethod
    def _is_local(source: Any) -> bool:
        return source.key.startswith("local:")

    def _project(self, item_id: Any) -> tuple[ProjectRecord, Any]:
        if not isinstance(item_id, str) or not item_id:
            raise BadRequest("item must be an item id (the project's path)")
        return self.catalog.project(item_id)

    # --- permissions --------------------------------------------------------------------------

    def permissions(self, item_id: str) -> dict[str, Any]:
        """Whether this server's user can publish versions to the item, and why not."""
        record, source = self._project(item_id)
        ok, reason = self._can_push(record, source)
        if ok and self._dvc_remote(record) is None:
            ok, reason = False, f"{item_id} has no DVC remote (.dvc/config names no default one)"
        return {"item": item_id, "can_publish": ok, "reason": reason}

    def _can_push(self, record: ProjectRecord, source: Any) -> tuple[bool, str | None]:
        if self._is_local(source):
            folder = source.folder / record.name
            if not (folder / ".git").is_dir():
                return False, f"{record.id} is not a git repository"
            if not (os.access(folder, os.W_OK) and os.access(folder / ".git", os.W_OK)):
                return False, f"the folder of {record.id} is not writable"
            return True, None
        from ..sources.gitlab import can_push

        try:
            data = source.project_json(record.gitlab_id or record.id)
        except SourceError as exc:
            return False, str(exc)
        if data is None:
            return False, f"GitLab does not know {record.id} (any more)"
        return can_push(data)

    def _check_push(self, record: ProjectRecord, source: Any) -> None:
        ok, reason = self._can_push(record, source)
        if not ok:
            raise Forbidden(f"cannot publish to {record.id}: {reason}")

    @staticmethod
    def _dvc_remote(record: ProjectRecord) -> str | None:
        from ..catalog.dvc_outputs import DVC_CONFIG, parse_config

        default, remotes = parse_config(record.dvc_files.get(DVC_CONFIG, ""))
        return remotes.get(default) if default else None

    # --- identity -----------------------------------------------------------------------------

    def _identity(self, source: Any, cwd: Path | None) -> dict[str, str]:
        """Who commits: git's configuration if it names someone, else the GitLab token's
        user, else a fixed name (git refuses to commit without one)."""
        try:
            gitops.run_git(["var", "GIT_COMMITTER_IDENT"], cwd=cwd, token=None,
                           config=[("user.useConfigOnly", "true")])
            return {}
        except JobError:
            pass
        name, email = _FALLBACK_IDENTITY
        if not self._is_local(source):
            with contextlib.suppress(SourceError):
                user = source.current_user()
                login = user.get("username") or "user"
                name = user.get("name") or login
                email = (user.get("commit_email") or user.get("public_email")
                         or user.get("email")
                         or f"{login}@users.noreply.{urlsplit(source.url).hostname}")
        return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}

    # --- re-indexing --------------------------------------------------------------------------

    def _served(self, source: Any, item_id: str) -> dict[str, Any]:
        """Re-index the project now and return its item as served (its first collection)."""
        update = self.catalog.reindex(source, item_id)
        if update is None or not update.items:
            raise Upstream(f"{item_id} was written but is not an item: its topics name no "
                           "category")
        item = self.catalog.get_item(update.items[0]["collection"], item_id)
        if item is None:  # (removed by a crawl that very moment)
            raise NotFound(f"no item {item_id!r}")
        return item

    # --- new projects -------------------------------------------------------------------------

    def new_project(self, body: Any) -> dict[str, Any]:
        """``{category, name, namespace?, title?, description?, visibility?}`` → the new
        project's item, indexed (GitLab if configured, else the first local projects folder;
        a ``namespace`` naming a local projects folder picks that folder)."""
        _require(body, ("category", "name"),
                 '{"category", "name", "namespace"?, "title"?, "description"?}')
        category = self._category(body.get("category"))
        name = body.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith(
                (".git", ".atom")):
            raise BadRequest("name must be 1 to 100 letters, digits, '_', '-' or '.', starting "
                             "with a letter or digit (it becomes the project's path)")
        namespace = _optional_str(body, "namespace", 255)
        title = _optional_str(body, "title", 255) or name
        if "\n" in title or "\r" in title:
            raise BadRequest("title must be one line")
        description = _optional_str(body, "description", 20000) or ""
        visibility = _optional_str(body, "visibility", 20) or "private"
        if visibility not in _VISIBILITY:
            raise BadRequest(f"visibility must be one of {', '.join(_VISIBILITY)}")
        remote = None
        if templates.is_dataset(category):
            remote = self.dvc_default_remote
            if not remote:
                raise BadRequest("no DVC remote for new datasets: set "
                                 "c.SharingHub.dvc_default_remote")
        source = self._target_source(namespace)
        if self._is_local(source):
            item_id = self._new_local(source, category, name, title, description, remote)
        else:
            item_id = self._new_gitlab(source, category, name, namespace, title, description,
                                       remote, visibility)
        return self._served(source, item_id)

    def _category(self, cid: Any) -> Category:
        known = [c.id for c in self.catalog.categories]
        if not isinstance(cid, str) or cid not in known:
            raise BadRequest(f"unknown category {cid!r}: one of {', '.join(known)}")
        return self.catalog.category(cid)

    def _target_source(self, namespace: str | None) -> Any:
        locals_ = self._locals()
        for source in locals_:
            if namespace == source.folder.name:
                return source
        gitlab = self._gitlab()
        if gitlab:
            return gitlab[0]
        if locals_:
            if namespace:
                names = ", ".join(s.folder.name for s in locals_)
                raise BadRequest(f"no local projects folder {namespace!r}: namespace must be "
                                 f"one of {names}, or left out")
            return locals_[0]
        raise BadRequest("no writable source: configure c.SharingHub.gitlab_url or "
                         "c.SharingHub.local_projects")

    def _new_local(self, source: Any, category: Category, name: str, title: str,
                   description: str, remote: str | None) -> str:
        item_id = f"{source.folder.name}/{name}"
        folder = source.folder / name
        if folder.exists():
            raise Conflict(f"project {item_id} exists already ({folder})")
        try:
            source.folder.mkdir(parents=True, exist_ok=True)
            folder.mkdir()
        except FileExistsError:
            raise Conflict(f"project {item_id} exists already ({folder})") from None
        except OSError as exc:
            raise BadRequest(f"no writable source: cannot create {folder} ({exc.strerror})"
                             ) from None
        files = templates.project_files(category, name=name, title=title,
                                        description=description,
                                        producer={"name": source.folder.name}, remote=remote,
                                        topics=[category.gitlab_topic])
        try:
            _write(folder, files)
            _initial_commit(folder, f"New {category.id}: {title}",
                            self._identity(source, None))
        except (OSError, JobError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise Upstream(f"creating {item_id} failed: {exc}") from None
        return item_id

    def _new_gitlab(self, source: Any, category: Category, name: str, namespace: str | None,
                    title: str, description: str, remote: str | None,
                    visibility: str) -> str:
        import gitlab.exceptions
        import requests

        try:
            user = source.current_user()
            ns_path = namespace or user.get("username") or ""
            ns = source.namespace(ns_path)
            if ns is None:
                raise BadRequest(f"no GitLab namespace {ns_path!r} (or the token cannot see it)")
            full = f"{ns.get('full_path') or ns_path}/{name}"
            if source.project_json(full) is not None:
                raise Conflict(f"project {full} exists already on GitLab")
        except SourceError as exc:
            raise Upstream(str(exc)) from None
        try:
            data = source.create_project(name=name, path=name, namespace_id=ns["id"],
                                         description=_summary(description), visibility=visibility,
                                         topics=[category.gitlab_topic])
        except gitlab.exceptions.GitlabError as exc:
            code, message = getattr(exc, "response_code", None), _gitlab_message(exc)
            if code == 400 and "taken" in message:
                raise Conflict(f"project {full} exists already on GitLab") from None
            if code in (401, 403):
                raise Forbidden(f"GitLab refused to create {full} ({code}): {message}") from None
            if code is not None and code < 500:
                raise BadRequest(f"GitLab refused to create {full} ({code}): {message}"
                                 ) from None
            raise Upstream(f"GitLab failed to create {full}: {message}") from None
        except requests.RequestException as exc:
            raise Upstream(f"GitLab at {source.url} is unreachable ({type(exc).__name__})"
                           ) from None
        producer = {"name": ns.get("full_path") or ns_path,
                    "url": f"{source.url}/{ns.get('full_path') or ns_path}"}
        files = templates.project_files(category, name=name, title=title,
                                        description=description, producer=producer,
                                        remote=remote, topics=None)
        url = data.get("http_url_to_repo") or f"{data.get('web_url')}.git"
        work = Path(tempfile.mkdtemp(prefix="sharinghub-new-"))
        try:
            _write(work, files)
            _initial_commit(work, f"New {category.id}: {title}", self._identity(source, None))
            gitops.run_git(["push", "--quiet", url, "HEAD:refs/heads/main"], cwd=work,
                           token=source.git_token(), url=url, timeout=120)
        except (OSError, JobError) as exc:
            source.delete_project(data["id"])
            raise Upstream(f"the first push to {full} failed ({exc}); the project was removed "
                           "again") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return data.get("path_with_namespace") or full

    # --- dataset versions ---------------------------------------------------------------------

    def start_publish(self, body: Any) -> Job:
        """``{item, path, version, message?}`` → the publish job (see :mod:`.dataset`)."""
        from ..datasets.pull import inside_root
        from .dataset import PublishPlan, locate, run_publish

        _require(body, ("item", "path", "version"), '{"item", "path", "version", "message"?}')
        version = body.get("version")
        if not isinstance(version, str) or not _valid_tag(version):
            raise BadRequest("version must be a new tag name, e.g. v1.0")
        message = _optional_str(body, "message", 20000) or f"Dataset version {version}"
        path = body.get("path")
        if not isinstance(path, str) or not path.strip():
            raise BadRequest("path must be a folder (or a file in a working copy) relative "
                             "to the Jupyter root")
        record, source = self._project(body.get("item"))
        item = record.id
        self._check_push(record, source)
        if self._dvc_remote(record) is None:
            raise BadRequest(f"{item} has no DVC remote (.dvc/config names no default one): "
                             "it cannot take dataset versions")
        root = self.catalog.root_dir
        try:
            target = inside_root(root, path, "path")
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if not target.exists():
            raise BadRequest(f"no file or folder {path!r} in the Jupyter root")
        try:
            refs = source.refs(record)
        except SourceError as exc:
            raise BadRequest(str(exc)) from None
        if any(r.kind == "tag" and r.rev == version for r in refs):
            raise Conflict(f"{item} has a version {version} already: choose another version")
        branch_ref = next((r for r in refs if r.kind == "branch"), None)
        if branch_ref is None or not branch_ref.commit:
            raise BadRequest(f"{item} has no commit yet: nothing to publish onto")
        project_dir = (source.folder / record.name) if self._is_local(source) else None
        url = source.clone_url(record)
        try:
            place = locate(root, target, repo_url=url, project_dir=project_dir,
                           branch=branch_ref.rev, head=branch_ref.commit)
            if project_dir is not None and place.push and _dirty(project_dir):
                raise Conflict(f"the local project {item} has uncommitted changes: commit or "
                               "discard them first (the push updates its files)")
        except JobError as exc:
            raise BadRequest(str(exc)) from None
        plan = PublishPlan(
            item=item, version=version, message=message, workdir=place.workdir,
            targets=place.targets, repo_url=url, branch=branch_ref.rev, fresh=place.fresh,
            push=place.push, token=source.git_token(), remote_settings=self.catalog.dvc_remotes,
            identity=self._identity(source, None if place.fresh else place.workdir),
            reindex=lambda: self.catalog.reindex(source, item))
        dest = place.workdir.relative_to(root).as_posix() if place.workdir != root else "."
        job = Job(kind="publish", item=item, rev=version, dest=dest)
        return self.catalog.jobs.submit(job, lambda j: run_publish(j, plan), exclusive=True)

    # --- metadata -----------------------------------------------------------------------------

    def update_metadata(self, body: Any) -> dict[str, Any]:
        """``{item, front_matter}``: the README's front matter replaced by ``front_matter`` (a
        mapping, or YAML text of one), validated as the item it makes, committed and pushed,
        re-indexed. Returns the item as served."""
        _require(body, ("item", "front_matter"), '{"item": ID, "front_matter": {...}}')
        meta = _front_matter(body.get("front_matter"))
        record, source = self._project(body.get("item"))
        if self._is_local(source):  # (a local project need not be a git repository)
            self._local_metadata(record, source, meta)
        else:
            self._check_push(record, source)
            self._gitlab_metadata(record, source, meta)
        return self._served(source, record.id)

    def _checked_readme(self, record: ProjectRecord, before: str | None,
                        meta: dict[str, Any], local: bool) -> str:
        """The new README, or BadRequest saying what is wrong with the item it makes."""
        from ..catalog.item import metadata_errors
        from ..sources.local import front_matter_topics

        text = with_front_matter(before, templates.dump(meta))
        candidate = dataclasses.replace(record, readme=text)
        if local:
            candidate.topics = front_matter_topics(meta)
            if not categories_of(candidate.topics, self.catalog.categories):
                wanted = ", ".join(c.gitlab_topic for c in
                                   categories_of(record.topics, self.catalog.categories))
                raise BadRequest(f"front_matter.topics must keep a category topic ({wanted}): "
                                 "without one the project leaves the catalog")
        errors = metadata_errors(candidate, self.catalog.categories, before)
        if errors:
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            raise BadRequest("invalid front matter: " + "; ".join(errors[:3]) + more)
        return text

    def _local_metadata(self, record: ProjectRecord, source: Any,
                        meta: dict[str, Any]) -> None:
        folder = source.folder / record.name
        name = next((n for n in _README_NAMES if (folder / n).is_file()), "README.md")
        path = folder / name
        before = path.read_text(encoding="utf-8") if path.is_file() else None
        text = self._checked_readme(record, before, meta, local=True)
        if text == before:
            return
        is_git = (folder / ".git").is_dir()
        if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise Forbidden(f"cannot edit {record.id}: its README is not writable")
        if is_git and name in _dirty(folder):
            raise Conflict(f"the README of {record.id} has uncommitted changes: commit or "
                           "discard them first")
        path.write_text(text, encoding="utf-8")
        if not is_git:
            return
        try:
            gitops.run_git(["add", "--", name], cwd=folder, token=None)
            gitops.run_git(["commit", "-q", "-m", "Update metadata", "--", name], cwd=folder,
                           token=None, extra_env=self._identity(source, folder))
        except JobError as exc:
            if before is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(before, encoding="utf-8")
            with contextlib.suppress(JobError):
                gitops.run_git(["reset", "-q", "--", name], cwd=folder, token=None)
            raise Upstream(f"committing the README of {record.id} failed: {exc}") from None

    def _gitlab_metadata(self, record: ProjectRecord, source: Any,
                         meta: dict[str, Any]) -> None:
        url, token = source.clone_url(record), source.git_token()
        work = Path(tempfile.mkdtemp(prefix="sharinghub-meta-"))
        repo = work / "repo"
        try:
            try:
                gitops.run_git(["clone", "--quiet", "--depth", "1", "--branch",
                                record.default_branch, url, str(repo)], cwd=None, token=token,
                               url=url, timeout=120)
            except JobError as exc:
                raise Upstream(f"cloning {record.id} failed: {exc}") from None
            name = next((n for n in _README_NAMES if (repo / n).is_file()), "README.md")
            before = (repo / name).read_text(encoding="utf-8") if (repo / name).is_file() \
                else None
            text = self._checked_readme(record, before, meta, local=False)
            if text == before:
                return
            (repo / name).write_text(text, encoding="utf-8")
            try:
                gitops.run_git(["add", "--", name], cwd=repo, token=None)
                gitops.run_git(["commit", "-q", "-m", "Update metadata"], cwd=repo, token=None,
                               extra_env=self._identity(source, repo))
                gitops.run_git(["push", "--porcelain", "origin",
                                f"HEAD:refs/heads/{record.default_branch}"], cwd=repo,
                               token=token, url=url, timeout=120)
            except JobError as exc:
                text = str(exc)
                if "rejected" in text or "fetch first" in text or "non-fast-forward" in text:
                    raise Conflict(f"the README of {record.id} changed meanwhile: try again"
                                   ) from None
                if "403" in text:
                    raise Forbidden(f"cannot edit {record.id}: {text}") from None
                raise Upstream(f"pushing the README of {record.id} failed: {text}") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)


# --- helpers ----------------------------------------------------------------------------------

def _require(body: Any, names: tuple[str, ...], shape: str) -> None:
    """One clear error for a body that is not an object or lacks a required field, before
    any field is looked at."""
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be {shape}")
    missing = [name for name in names if name not in body]
    if missing:
        raise BadRequest(f"missing {', '.join(missing)}: the body must be {shape}")


def _optional_str(body: dict[str, Any], key: str, limit: int) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"{key} must be a string of at most {limit} characters")
    return value.strip() or None


def _valid_tag(name: str) -> bool:
    if not name or len(name) > 100 or name.startswith("-"):
        return False
    try:
        gitops.run_git(["check-ref-format", f"refs/tags/{name}"], cwd=None, token=None)
    except JobError:
        return False
    return True


def _front_matter(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise BadRequest(f"front_matter is not valid YAML{where}: "
                             f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("front_matter must be a mapping (a JSON object, or YAML text of one)")
    if not all(isinstance(k, str) for k in value):
        raise BadRequest("front_matter keys must be strings")
    # (what YAML cannot write back, it cannot be a README's front matter either)
    try:
        _, _, problem = parse_readme(with_front_matter("", templates.dump(value)))
    except yaml.YAMLError as exc:
        raise BadRequest(f"front_matter cannot be written as YAML: {exc}") from None
    if problem:
        raise BadRequest(f"front_matter: {problem}")
    return value


def _summary(description: str) -> str:
    """GitLab's project description: the first paragraph, at most 2,000 characters."""
    first = description.strip().split("\n\n", 1)[0].strip()
    return first[:2000]


def _gitlab_message(exc: Exception) -> str:
    message = getattr(exc, "error_message", None) or str(exc)
    if isinstance(message, dict):
        message = "; ".join(f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}"
                            for k, v in message.items())
    return " ".join(str(message).split())[:300]


def _write(folder: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _initial_commit(folder: Path, message: str, identity: dict[str, str]) -> None:
    gitops.run_git(["init", "-q", "-b", "main"], cwd=folder, token=None)
    gitops.run_git(["add", "-A"], cwd=folder, token=None)
    gitops.run_git(["commit", "-q", "-m", message], cwd=folder, token=None,
                   extra_env=identity)


def _dirty(folder: Path) -> list[str]:
    from .dataset import _changed

    return _changed(folder)
