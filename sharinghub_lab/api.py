"""``import sharinghub_lab as sh``: the catalog, DVC pulls and MLflow from a notebook.

Everything goes over HTTP through :mod:`sharinghub_lab.client`; errors are
:class:`~sharinghub_lab.client.SharingHubError` (one line). pystac, mlflow and pandas are
imported by the functions that need them, never at import time.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from .client import current
from .errors import SharingHubError, first_line

if TYPE_CHECKING:
    import pandas
    import pystac
    from mlflow import MlflowClient
    from mlflow.entities import Experiment
    from mlflow.entities.model_registry import ModelVersion

    from .render import ItemCard

__all__ = ["CATEGORIES", "Job", "PublishJob", "PullJob", "crawl", "edit_metadata", "index",
           "item", "item_card", "mlflow_client", "new_project", "publish",
           "publish_permissions", "pull", "register_model", "runs", "search", "track",
           "versions"]

#: the job states after which nothing changes any more
ENDED = ("done", "failed", "cancelled")
ITEM_TAG = "sharinghub:item"
#: what a job's :meth:`Job.wait` returns
T = TypeVar("T")
#: items per search page when the caller does not say
PAGE = 100
#: the categories a new project can be (its collection)
CATEGORIES = ("dataset", "ai-model", "processor")


# --- search ----------------------------------------------------------------------------------

def search_body(text: str | Sequence[str] | None = None, *,
                collections: str | Sequence[str] | None = None,
                bbox: Sequence[float] | str | None = None,
                intersects: dict[str, Any] | None = None,
                datetime: str | None = None,
                filter: str | dict[str, Any] | None = None,
                sortby: str | Sequence[str] | None = None,
                limit: int | None = None,
                ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The POST body of a STAC item search (free text ``q`` is an array of alternatives)."""
    body: dict[str, Any] = {}
    if text:
        body["q"] = [text] if isinstance(text, str) else list(text)
    if collections:
        body["collections"] = [collections] if isinstance(collections, str) else list(
            collections)
    if ids:
        body["ids"] = list(ids)
    if bbox is not None:
        body["bbox"] = parse_bbox(bbox) if isinstance(bbox, str) else list(bbox)
    if intersects is not None:
        body["intersects"] = intersects
    if datetime:
        body["datetime"] = datetime
    if filter is not None:
        body["filter"] = filter
        body["filter-lang"] = "cql2-text" if isinstance(filter, str) else "cql2-json"
    if sortby:
        fields = sortby.split(",") if isinstance(sortby, str) else list(sortby)
        body["sortby"] = [{"field": f.strip().lstrip("+-"),
                           "direction": "desc" if f.strip().startswith("-") else "asc"}
                          for f in fields if f.strip()]
    if limit is not None:
        body["limit"] = int(limit)
    return body


def parse_bbox(text: str) -> list[float]:
    """``"W,S,E,N"`` → four numbers (the server checks their ranges)."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise SharingHubError(f"bbox {text!r} is not W,S,E,N (numbers separated by commas)"
                              ) from None


def search_page(body: dict[str, Any] | None = None, next_link: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """One page of a search: of ``body``, or the page a ``next`` link names (a POST link
    carries its body)."""
    if next_link is None:
        return current().post("stac/search", body or {})
    return current().request(next_link.get("method", "GET"), "stac/search",
                             url=next_link["href"], json_body=next_link.get("body"))


def next_link(page: dict[str, Any]) -> dict[str, Any] | None:
    return next((lk for lk in page.get("links") or [] if lk.get("rel") == "next"), None)


def features(body: dict[str, Any], max_items: int | None = None
             ) -> tuple[list[dict[str, Any]], int | None]:
    """The features a search body finds (following ``next`` links until ``max_items``) and
    the server's ``numberMatched``."""
    page = search_page(body)
    matched = page.get("numberMatched")
    found: list[dict[str, Any]] = []
    while True:
        found.extend(page.get("features") or [])
        if max_items is not None and len(found) >= max_items:
            return found[:max_items], matched
        link = next_link(page)
        if link is None or not page.get("features"):
            return found, matched
        page = search_page(next_link=link)


def search(text: str | Sequence[str] | None = None, *,
           collections: str | Sequence[str] | None = None,
           bbox: Sequence[float] | str | None = None,
           intersects: dict[str, Any] | None = None,
           datetime: str | None = None,
           filter: str | dict[str, Any] | None = None,
           sortby: str | Sequence[str] | None = None,
           limit: int | None = None,
           max_items: int | None = 100) -> list[pystac.Item]:
    """Items of the catalog: free ``text`` (one phrase, or a list of alternatives),
    ``collections``, ``bbox`` (W,S,E,N), ``intersects`` (GeoJSON), ``datetime`` (instant or
    ``start/end``, ``..`` open), ``filter`` (CQL2 text or JSON), ``sortby`` (``"-datetime"``),
    ``limit`` per page; at most ``max_items`` (None: all)."""
    from .stacio import item as stac_item

    if limit is None:  # pages as large as what is asked for: fewer round trips
        limit = min(max_items, PAGE) if max_items else PAGE
    body = search_body(text, collections=collections, bbox=bbox, intersects=intersects,
                       datetime=datetime, filter=filter, sortby=sortby, limit=limit)
    found, _ = features(body, max_items)
    return [stac_item(f) for f in found]


def item_dict(item_id: str) -> dict[str, Any]:
    """The item as served (JSON); the dataset collection's when it is in several."""
    found, _ = features({"ids": [item_id], "limit": 10})
    if not found:
        raise SharingHubError(f"no item {item_id!r}")
    return next((f for f in found if f.get("collection") == "dataset"), found[0])


def item(item_id: str) -> pystac.Item:
    """One item, by id (``group/project``)."""
    from .stacio import item as stac_item

    return stac_item(item_dict(item_id))


def item_card(item_id: str, served: dict[str, Any] | None = None) -> ItemCard:
    """The item as ``%sharinghub show`` and the Search panel's Show present it: as served
    now (or ``served``, the item a call just returned), with its DVC versions when it is a
    DVC dataset (without them when the server cannot list them: the card shows what the
    catalog has)."""
    from .render import ItemCard

    data = served if served is not None else item_dict(item_id)
    found = None
    if (data.get("properties") or {}).get("sharinghub:dvc-init") == "enable":
        with contextlib.suppress(SharingHubError):
            found = versions(item_id)
    return ItemCard(data, found)


def download(item_id: str, asset: str, to: str | os.PathLike[str] = ".") -> Path:
    """Download the item's ``asset`` (its key) into the folder ``to`` (relative to the
    working directory); returns the file. Files of projects and MLflow artifacts come
    through the Jupyter server; a ``file://`` href is copied. DVC data is pulled with
    :func:`pull` instead."""
    import shutil
    from urllib.parse import unquote, urljoin, urlsplit

    data = item_dict(item_id)
    found = (data.get("assets") or {}).get(asset)
    if not found or not found.get("href"):
        keys = ", ".join(sorted(data.get("assets") or {})) or "none"
        raise SharingHubError(f"{item_id} has no asset {asset!r} (its assets: {keys})")
    href = urljoin(current().url, found["href"])
    parts = urlsplit(href)
    name = Path(unquote(parts.path)).name or asset
    target = Path(to) / name
    if parts.scheme == "file":
        source = Path(unquote(parts.path))
        if not source.is_file():
            raise SharingHubError(f"{href} is not a file on this machine")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target
    if parts.scheme not in ("http", "https"):
        raise SharingHubError(f"{asset} is at {parts.scheme}:// (DVC data: use sh.pull)")
    return current().download(href, target)


# --- datasets --------------------------------------------------------------------------------

def versions(item_id: str) -> list[dict[str, Any]]:
    """The item's DVC versions, newest first: ``rev``, ``kind``, ``commit``, ``date``,
    ``outputs`` (``path``, ``md5``, ``size``, ``nfiles``)."""
    return current().get("dvc/versions", item=item_id)["versions"]


class Job(Generic[T]):
    """A job running on the server (a pull or a publish): :meth:`status`, :meth:`wait`,
    :meth:`cancel`."""

    kind = "job"

    def __init__(self, job_id: str) -> None:
        self.id = job_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"

    def status(self) -> dict[str, Any]:
        """The job as the server reports it (``state``, files/bytes done and total, ...)."""
        return current().get(f"dvc/jobs/{self.id}")

    def cancel(self) -> dict[str, Any]:
        """Cancel it (the server undoes what it did); an ended job: error."""
        return current().delete(f"dvc/jobs/{self.id}")

    def wait(self, progress: bool = True, every: float = 0.2,
             timeout: float | None = None,
             on_status: Callable[[dict[str, Any]], None] | None = None) -> T:
        """Until it ends (a progress bar while it runs): its :meth:`result`, or
        SharingHubError if it failed or was cancelled. ``on_status`` is called with every
        state seen (the panels' progress bars). Ctrl-C (KeyboardInterrupt, also from
        ``on_status``) cancels the job. Polls every 20 ms at first, then less often, up to
        ``every`` seconds: short jobs return soon after they end, long ones cost the server
        few requests."""
        bar = None
        pause = min(0.02, every)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                state = self.status()
                if on_status is not None:
                    on_status(state)
                if progress and bar is None and state["state"] not in ENDED:
                    from tqdm.auto import tqdm

                    bar = tqdm(desc=f"{self.kind} {state['item']}", unit="B",
                               unit_scale=True, total=state.get("bytes_total"))
                if bar is not None:
                    bar.total = state.get("bytes_total") or bar.total
                    bar.n = state.get("bytes_done") or 0
                    bar.set_postfix_str(f"{state['state']}, {state.get('files_done') or 0}/"
                                        f"{state.get('files_total') or '?'} files")
                    bar.refresh()
                if state["state"] in ENDED:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise SharingHubError(f"{self.kind} {self.id} still {state['state']} "
                                          f"after {timeout} s")
                time.sleep(pause)
                pause = min(pause * 1.5, every)
        except KeyboardInterrupt:
            with contextlib.suppress(SharingHubError):  # it may have ended meanwhile
                self.cancel()
            raise
        finally:
            if bar is not None:
                bar.close()
        if state["state"] != "done":
            raise SharingHubError(f"{self.kind} of {state['item']} {state['state']}: "
                                  f"{state.get('error') or 'no reason given'}")
        return self.result(state)

    def result(self, state: dict[str, Any]) -> T:
        """What :meth:`wait` returns for the job's final ``state`` (done): the state."""
        return cast(T, state)


class PullJob(Job[Path]):
    """A pull running on the server; :meth:`wait` returns the destination."""

    kind = "pull"

    def __init__(self, job_id: str, local_dest: Path | None = None) -> None:
        super().__init__(job_id)
        self.local_dest = local_dest

    def result(self, state: dict[str, Any]) -> Path:
        return self.destination(state)

    def destination(self, state: dict[str, Any]) -> Path:
        """Where the data is, seen from the kernel (the root-relative path if the server's
        root dir is unknown)."""
        root = current().root_dir
        return root / state["dest"] if root is not None else Path(state["dest"])


class PublishJob(Job[dict[str, Any]]):
    """A publish running on the server; :meth:`wait` returns the published version."""

    kind = "publish"

    def result(self, state: dict[str, Any]) -> dict[str, Any]:
        """The version as :func:`versions` lists it (``rev``, ``kind``, ``commit``,
        ``date``, ``outputs``) with the ``item``; only what the job says (``item``, ``rev``,
        the job's ``result``) if the server does not list it."""
        found = next((v for v in versions(state["item"]) if v.get("rev") == state["rev"]),
                     None)
        if found is None:
            found = {"rev": state["rev"], "kind": "tag", **(state.get("result") or {})}
        return {"item": state["item"], **found}


def root_relative(path: str | os.PathLike[str], verb: str) -> str:
    """``path`` (relative to the kernel's working directory) relative to the Jupyter root,
    as the server takes paths. Without a known root dir (env configuration without
    ``SHARINGHUB_ROOT``) it is passed as is (relative to the root). ``verb`` says what to do
    instead when it is outside the root: "pull into", "publish"."""
    root = current().root_dir
    if root is None:
        return os.fspath(path)
    target = Path(os.path.abspath(Path.cwd() / path))
    try:
        return target.relative_to(root).as_posix()
    except ValueError:
        raise SharingHubError(f"{target} is outside the Jupyter root {root}: {verb} a folder "
                              "below it") from None


def server_dest(item_id: str, to: str | os.PathLike[str] | None) -> str | None:
    """The pull destination relative to the Jupyter root: ``to`` (default: the item's name)
    is relative to the kernel's working directory (see :func:`root_relative`; None: the
    server's default)."""
    if to is None and current().root_dir is None:
        return None
    name = to if to is not None else item_id.rstrip("/").rsplit("/", 1)[-1]
    return root_relative(name, "pull into")


def pull(item_id: str, rev: str | None = None, to: str | os.PathLike[str] | None = None,
         wait: bool = True) -> Path | PullJob:
    """Pull the item's DVC data (at ``rev``: a tag, branch or commit) into ``to`` (relative
    to the working directory; default: the item's name). Waits with a progress bar and
    returns the destination; ``wait=False`` returns the :class:`PullJob`."""
    body: dict[str, Any] = {"item": item_id}
    if rev:
        body["rev"] = rev
    dest = server_dest(item_id, to)
    if dest is not None:
        body["dest"] = dest
    job = PullJob(current().post("dvc/pull", body)["job"], None)
    return job.wait() if wait else job


# --- publishing ------------------------------------------------------------------------------

def new_project_dict(category: str, name: str, *, namespace: str | None = None,
                     title: str | None = None, description: str | None = None
                     ) -> dict[str, Any]:
    """:func:`new_project`, the item as the server returns it (JSON)."""
    body: dict[str, Any] = {"category": category, "name": name}
    for key, value in (("namespace", namespace), ("title", title),
                       ("description", description)):
        if value:
            body[key] = value
    return current().post("publish/new", body)


def new_project(category: str, name: str, *, namespace: str | None = None,
                title: str | None = None, description: str | None = None) -> pystac.Item:
    """Create a project (``category``: dataset, ai-model or processor) named ``name`` (in
    ``namespace``, on GitLab) with a README template filled with ``title`` and
    ``description`` (DVC set up for datasets); the server indexes it at once. Returns its
    item."""
    from .stacio import item as stac_item

    return stac_item(new_project_dict(category, name, namespace=namespace, title=title,
                                      description=description))


def publish(path: str | os.PathLike[str], item: str, version: str, *,
            message: str | None = None, wait: bool = True) -> dict[str, Any] | PublishJob:
    """Publish ``path`` (a folder or file relative to the working directory) as version
    ``version`` (a new tag) of the dataset ``item``: DVC-added and pushed to the item's
    remote, committed, tagged and pushed, then re-indexed. Waits with a progress bar (bytes
    uploaded) and returns the version (as :func:`versions` lists it, with ``item``);
    ``wait=False`` returns the :class:`PublishJob`."""
    target = Path(os.path.abspath(Path.cwd() / path))
    server_path = root_relative(path, "publish")
    if current().root_dir is not None and not target.exists():
        raise SharingHubError(f"no file or folder {target}")
    body: dict[str, Any] = {"item": item, "path": server_path, "version": version}
    if message:
        body["message"] = message
    job = PublishJob(current().post("publish/dataset", body)["job"])
    return job.wait() if wait else job


def edit_metadata(item: str, front_matter: dict[str, Any]) -> pystac.Item:
    """Replace the item's README front matter with ``front_matter``: validated by the
    server (the resulting item must be valid STAC) before it is committed and pushed.
    Returns the item as it is now."""
    from .stacio import item as stac_item

    if not isinstance(front_matter, dict):
        raise SharingHubError("front_matter must be a dict (the README's YAML front matter)")
    return stac_item(current().request(
        "PATCH", "publish/metadata", json_body={"item": item, "front_matter": front_matter}))


def publish_permissions(item: str) -> dict[str, Any]:
    """Whether this server's user can publish to ``item``: ``{"item", "can_publish",
    "reason"}`` (``reason`` says why not)."""
    return current().get("publish/permissions", item=item)


# --- MLflow ----------------------------------------------------------------------------------

def tracking_link(item_id: str, served: dict[str, Any] | None = None) -> tuple[str, str]:
    """(tracking URI, experiment name) from the item's ``mlflow:tracking-uri`` link."""
    from urllib.parse import urljoin

    data = served or item_dict(item_id)
    link = next((lk for lk in data.get("links") or [] if lk.get("rel") == "mlflow:tracking-uri"),
                None)
    if link is None or not link.get("mlflow:experiment"):
        raise SharingHubError(f"{item_id} has no MLflow experiment (only ai-model items and "
                              "items with registered models have one)")
    uri = urljoin(current().url, link.get("href") or "").rstrip("/")
    return uri, link["mlflow:experiment"]


def _mlflow_at(uri: str) -> Any:
    """mlflow, pointed at ``uri`` with the server's token (in the kernel's environment, so
    that runs started afterwards go there too), for tracking and for the model registry,
    which follows the tracking URI again: a registry URI the kernel had (inherited as
    ``MLFLOW_REGISTRY_URI``) would send registrations past the server, which then never
    reach the catalog."""
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    _mlflow_token()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(None)  # (None: the tracking URI's)
    return mlflow


def _mlflow_token() -> None:
    """The server's token where MLflow's REST client reads it, on every request."""
    if current().token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = current().token


def _mlflow_error(exc: Exception) -> SharingHubError:
    return SharingHubError(f"MLflow: {first_line(exc)}")


def mlflow_client(item_id: str) -> MlflowClient:
    """An MLflow client of the item's tracking server, whatever MLflow is pointed at (the
    kernel's tracking URI is left alone; ``MLFLOW_TRACKING_TOKEN`` is set to the server's
    token, as :func:`track` and :func:`runs` do: MLflow reads it from there only)."""
    from mlflow import MlflowClient

    uri, _ = tracking_link(item_id)
    _mlflow_token()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def track(item_id: str) -> Experiment:
    """Point MLflow (``MLFLOW_TRACKING_URI``/``MLFLOW_TRACKING_TOKEN`` and the client) at the
    server and select the item's experiment; returns it."""
    from mlflow.exceptions import MlflowException

    uri, name = tracking_link(item_id)
    mlflow = _mlflow_at(uri)
    try:
        client = mlflow.MlflowClient()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:  # the server makes it, maybe not yet (it is loading, or a
            # plain MLflow server): made here, quietly (set_experiment would log a line)
            with contextlib.suppress(MlflowException):  # the server made it meanwhile
                client.create_experiment(name)
            experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise SharingHubError(f"MLflow: the experiment {name!r} cannot be made")
        return mlflow.set_experiment(experiment_id=experiment.experiment_id)
    except MlflowException as exc:
        raise _mlflow_error(exc) from None


def runs(item_id: str) -> pandas.DataFrame:
    """The runs of the item's experiment: one row per run, with params, metrics and tags
    (MLflow is pointed at the server, as :func:`track` does, without changing the
    experiment)."""
    from mlflow.exceptions import MlflowException

    uri, name = tracking_link(item_id)
    mlflow = _mlflow_at(uri)
    try:
        return mlflow.search_runs(experiment_names=[name])
    except MlflowException as exc:
        raise _mlflow_error(exc) from None


def model_links(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [lk for lk in data.get("links") or [] if lk.get("rel") == "mlflow:model"]


def _model_uri(client: MlflowClient, run_id: str, artifact_path: str) -> str:
    """What to register: ``runs:/<run>/<path>`` names run artifacts, but MLflow 3 keeps a
    model logged with ``name=`` apart, as a logged model (``models:/<id>``), and registering
    the runs:/ URI of one works with a warning. The logged model's own URI, when there is
    one."""
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException, AttributeError):
        run = client.get_run(run_id)
        found = client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{artifact_path}'",
            max_results=1)
        if found:
            return f"models:/{found[0].model_id}"
    return f"runs:/{run_id}/{artifact_path}"


def register_model(run_id: str, name: str, *, item: str, artifact_path: str = "model",
                   timeout: float = 60) -> ModelVersion:
    """Register ``runs:/<run_id>/<artifact_path>`` as model ``name`` of ``item`` (tag
    ``sharinghub:item``) and wait (at most ``timeout`` s) until the item shows the version's
    ``mlflow:model`` link; returns the model version."""
    from mlflow.exceptions import MlflowException

    uri, _ = tracking_link(item)
    mlflow = _mlflow_at(uri)
    try:
        version = mlflow.register_model(_model_uri(mlflow.MlflowClient(), run_id,
                                                   artifact_path), name,
                                        tags={ITEM_TAG: item})
        mlflow.MlflowClient().set_registered_model_tag(name, ITEM_TAG, item)
    except MlflowException as exc:
        raise _mlflow_error(exc) from None

    def shown() -> bool:
        return any(lk.get("mlflow:name") == name
                   and str(lk.get("mlflow:version")) == str(version.version)
                   for lk in model_links(item_dict(item)))

    deadline = time.monotonic() + timeout
    while not shown():
        if time.monotonic() > deadline:
            raise SharingHubError(f"{name} v{version.version} is registered, but {item} does "
                                  f"not show it after {timeout} s")
        time.sleep(0.1)
    return version


# --- the index -------------------------------------------------------------------------------

def index() -> dict[str, Any]:
    """The crawl status: ``state``, ``progress``, ``last_crawl`` (items per collection,
    problems per project)."""
    return current().get("index")


def crawl() -> dict[str, Any]:
    """Crawl now (or join the running crawl); the status."""
    return current().post("index")

