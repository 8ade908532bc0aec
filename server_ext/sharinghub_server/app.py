"""The Jupyter server extension: traits (``c.SharingHub.<name>``), wiring, lifecycle.

Loading it must not slow the server down: it imports no mlflow or dvc, opens the index and
starts the first crawl in the background. Once start-up has settled (the first crawl done, or
a few seconds after start-up when there is nothing to crawl), the index reads again what it
held for searches the last time (``index_warmup``) and the embedded MLflow server is loaded
(``mlflow_warmup``), both in the background, so that neither the first filters nor the first
MLflow request waits for them.
"""

from __future__ import annotations

import atexit
import importlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, Int, List, Unicode, default

from .catalog.categories import DEFAULT_CATEGORIES, load_categories

#: seconds before the MLflow warm-up: after the first crawl ends (its follow-ups run then),
#: or after start-up when there is nothing to crawl
WARMUP_QUIET = 2.0
WARMUP_QUIET_NO_CRAWL = 3.0
#: seconds after start-up the warm-up waits for the first crawl at most (a long crawl of a big
#: GitLab mostly waits on the network: the load can run beside it)
WARMUP_LATEST = 10.0


def _category_config() -> list[dict]:
    return [{"id": c.id, "title": c.title, "gitlab_topic": c.gitlab_topic,
             "description": c.description} for c in DEFAULT_CATEGORIES]


class SharingHub(ExtensionApp):
    name = "sharinghub_server"
    description = "SharingHub in JupyterLab: a STAC catalog of GitLab projects, DVC and MLflow"

    gitlab_url = Unicode("", config=True, help="GitLab instance to crawl; empty: no GitLab "
                                                 "source [SHARINGHUB_GITLAB_URL]")
    gitlab_token = Unicode("", config=True, help="token for the GitLab API and git over HTTP "
                                                   "[SHARINGHUB_GITLAB_TOKEN, then GITLAB_TOKEN]")
    local_projects = List(Unicode(), config=True,
                          help="folders whose subfolders are projects [SHARINGHUB_LOCAL_PROJECTS,"
                               " ':'-separated]")
    categories = List(Dict(), config=True,
                      help="categories: {id, title, gitlab_topic, description?, features?}")
    index_url = Unicode("", config=True, help="catalog index: sqlite:///path (default: a file "
                                                "in the Jupyter data dir) [SHARINGHUB_INDEX_URL]")
    crawl_interval = Float(600, config=True, help="seconds between background crawls; 0: only "
                                                  "on demand")
    search_threads = Int(4, config=True, help="threads answering catalog queries (STAC API), "
                                              "apart from every other handler's")
    worker_threads = Int(4, config=True, help="threads for everything else: MLflow, "
                                              "downloads, DVC versions and jobs, crawl status")
    search_timeout = Float(10, config=True, help="seconds a search may work before it is "
                                                 "stopped with an error (503)")
    dvc_default_remote = Unicode("", config=True,
                                 help="DVC remote URL new dataset projects get (default: a "
                                      "folder in the Jupyter data dir)")
    dvc_remotes = Dict(config=True,
                       help="per-remote DVC settings merged in at pull and publish time, keyed "
                            "by remote "
                            "name or URL prefix, e.g. {'s3://bucket': {'endpointurl': ...}}; "
                            "never returned by any endpoint")
    max_jobs = Int(2, config=True, help="DVC jobs running at once; more wait in a queue")
    mlflow_tracking_uri = Unicode("", config=True,
                                  help="empty: the embedded MLflow server; else an external "
                                       "one [SHARINGHUB_MLFLOW_URI]")
    mlflow_sharinghub = Bool(True, config=True,
                             help="the external MLflow server (mlflow_tracking_uri) is an "
                                  "MLflow SharingHub server: each project's runs and models "
                                  "at <uri>/<project path>/tracking/; False: one tracking "
                                  "root for every project")
    mlflow_backend_store_uri = Unicode("", config=True,
                                       help="embedded MLflow backend store (default: SQLite "
                                            "in the Jupyter data dir; postgresql:// works)")
    mlflow_artifacts_destination = Unicode("", config=True,
                                           help="embedded MLflow artifact store (default: a "
                                                "folder in the Jupyter data dir; s3:// works)")
    index_warmup = Bool(True, config=True,
                        help="once start-up has settled, read in the background what the "
                             "index holds in memory to count searches: the property values it "
                             "held the last time it was open (remembered in a file beside a "
                             "SQLite index) and the items of the most frequent words, so that "
                             "the first searches after a restart do not wait for them (at "
                             "1,000,000 items, 0.2-0.3 s each; the read: ~5 s in the "
                             "background), and the most frequent words again after each "
                             "crawl's writes; False: read them when a search first needs them")
    mlflow_warmup = Bool(True, config=True,
                         help="load the embedded MLflow server in the background once start-"
                              "up has settled (the first crawl done, or a few seconds after "
                              "start-up with nothing to crawl), so that the first MLflow "
                              "request does not wait 6-12 s for it; False: load it on the "
                              "first request only, for servers that never use MLflow (loaded, "
                              "it takes about 185 MB). Not used with mlflow_tracking_uri")

    @default("gitlab_url")
    def _gitlab_url(self) -> str:
        return os.environ.get("SHARINGHUB_GITLAB_URL", "")

    @default("gitlab_token")
    def _gitlab_token(self) -> str:
        return os.environ.get("SHARINGHUB_GITLAB_TOKEN") or os.environ.get("GITLAB_TOKEN") or ""

    @default("local_projects")
    def _local_projects(self) -> list[str]:
        value = os.environ.get("SHARINGHUB_LOCAL_PROJECTS", "")
        return [p for p in value.split(":") if p]

    @default("categories")
    def _categories(self) -> list[dict]:
        return _category_config()

    @default("dvc_default_remote")
    def _dvc_default_remote(self) -> str:
        return str(Path(jupyter_data_dir()) / "sharinghub" / "dvc-remote")

    @default("mlflow_tracking_uri")
    def _mlflow_tracking_uri(self) -> str:
        return os.environ.get("SHARINGHUB_MLFLOW_URI", "")

    @default("mlflow_backend_store_uri")
    def _mlflow_backend_store_uri(self) -> str:
        return f"sqlite:///{Path(jupyter_data_dir()) / 'sharinghub' / 'mlflow' / 'mlflow.db'}"

    @default("mlflow_artifacts_destination")
    def _mlflow_artifacts_destination(self) -> str:
        return str(Path(jupyter_data_dir()) / "sharinghub" / "mlflow" / "artifacts")

    @default("index_url")
    def _index_url(self) -> str:
        env = os.environ.get("SHARINGHUB_INDEX_URL")
        if env:
            return env
        return f"sqlite://{Path(jupyter_data_dir()) / 'sharinghub' / 'index.sqlite'}"

    def initialize_settings(self) -> None:
        # shapely here, on the main thread, before any of our threads start: imported for the
        # first time by several threads at once (searches, the crawl), importlib's deadlock
        # avoidance can hand one of them a half-initialised module, broken for the process's
        # life (every geometry search then failed). ~40 ms.
        for module in ("shapely.geometry", "shapely.wkt"):
            importlib.import_module(module)

        from .index.store import open_store
        from .service import CatalogService

        sources: list = []
        if self.gitlab_url:
            from .sources.gitlab import GitLabSource

            sources.append(GitLabSource(self.gitlab_url, self.gitlab_token))
        if self.local_projects:
            from .sources.local import LocalSource

            sources.extend(LocalSource(p) for p in self.local_projects)
        self.service = CatalogService(open_store(self.index_url),
                                      load_categories(self.categories), sources,
                                      crawl_interval=self.crawl_interval,
                                      root_dir=self.serverapp.root_dir,
                                      dvc_remotes=self.dvc_remotes,
                                      max_jobs=self.max_jobs,
                                      dvc_default_remote=self.dvc_default_remote)
        self.executor = ThreadPoolExecutor(max_workers=self.worker_threads,
                                           thread_name_prefix="sharinghub")
        self.search_executor = ThreadPoolExecutor(max_workers=self.search_threads,
                                                  thread_name_prefix="sharinghub-search")
        self.settings["sharinghub_service"] = self.service
        self.settings["sharinghub_executor"] = self.executor
        self.settings["sharinghub_search_executor"] = self.search_executor
        self.settings["sharinghub_search_timeout"] = self.search_timeout
        self._init_tracking()
        if not (self.serverapp.show_config or self.serverapp.show_config_json):
            # (``jupyter server --show-config`` prints the configuration and exits: no crawl)
            self._settle_then(self._warm_up)  # (before the first crawl can end)
            self.service.start()
        # closed at the process's exit too, where the server never stopped (``--show-config``,
        # a start-up that fails): the crawl stopped and the index closed before the interpreter
        # finalizes (a CI run saw ``--show-config`` die of a SIGSEGV, its crawl running)
        atexit.register(self._close)
        self.log.info("sharinghub: index %s, %d source(s)", _safe_url(self.index_url),
                      len(sources))

    def _init_tracking(self) -> None:
        """MLflow: the tracking service (registry → catalog, lineage), and the embedded
        server (loaded once start-up has settled, or on the first request) unless an external
        one is configured."""
        from .tracking.service import TrackingService

        self.tracking = TrackingService(self.service, external_uri=self.mlflow_tracking_uri,
                                        token=self.gitlab_token,
                                        per_project=self.mlflow_sharinghub)
        self.service.decorate_item = self.tracking.decorate
        self.service.scheduler.after_crawl.append(self.tracking.refresh_later)
        self.settings["sharinghub_tracking"] = self.tracking
        if not self.mlflow_tracking_uri:
            from jupyter_server.utils import url_path_join

            from .tracking.embedded import EmbeddedMLflow

            self.embedded_mlflow = EmbeddedMLflow(
                backend_store_uri=self.mlflow_backend_store_uri,
                artifacts_destination=self.mlflow_artifacts_destination,
                static_prefix=url_path_join(self.serverapp.base_url, "sharinghub/mlflow"),
                on_load=self.tracking.attach, logger=self.log)
            self.settings["sharinghub_mlflow"] = self.embedded_mlflow
        elif not self.service.sources:
            # no crawls to follow: read the external registry now and every so often
            self.tracking.refresh_later()
            self.tracking.poll(self.crawl_interval or 600)

    def _settle_then(self, action: Callable[[], None]) -> None:
        """``action()`` on a background thread once start-up has settled: the first crawl
        finished (waited for :data:`WARMUP_LATEST` seconds at most) and :data:`WARMUP_QUIET`
        seconds more, or :data:`WARMUP_QUIET_NO_CRAWL` seconds after start-up when there is
        nothing to crawl. Never, if the server stops first (see :meth:`stop_extension`)."""
        self._stopping = stopping = threading.Event()
        self._settle_wake = wake = threading.Event()  # the first crawl ended, or stopping
        self.service.scheduler.after_crawl.append(wake.set)
        sources = bool(self.service.sources)

        def settle() -> None:
            if sources:
                wake.wait(WARMUP_LATEST)
            if not stopping.wait(WARMUP_QUIET if sources else WARMUP_QUIET_NO_CRAWL):
                action()

        threading.Thread(target=settle, name="sharinghub-settle", daemon=True).start()

    def _warm_up(self) -> None:
        """At the settle point: the warm-ups, or (off) a log line saying when it happens."""
        if self.index_warmup:
            try:
                columns, words = self.service.store.warm_up()
            except Exception as exc:  # (the store closed meanwhile, a broken index file)
                self.log.warning("sharinghub: the index warm-up failed: %s", exc)
                columns = words = 0
            if columns or words:
                self.log.info("sharinghub: start-up settled; reading %d index column(s) held "
                              "the last time in the background, and the items of %d "
                              "frequent word(s)", columns, words)
        if getattr(self, "embedded_mlflow", None) is None:
            return
        if not self.mlflow_warmup:
            self.log.info("sharinghub: start-up settled; the embedded MLflow server loads "
                          "on its first request (SharingHub.mlflow_warmup is off)")
            return
        self.log.info("sharinghub: start-up settled; loading the embedded MLflow server in "
                      "the background")
        self.embedded_mlflow.warm_up()

    def initialize_handlers(self) -> None:
        from .handlers import routes

        self.handlers.extend(routes(external_mlflow=bool(self.mlflow_tracking_uri)))

    async def stop_extension(self) -> None:
        self._close()

    def _close(self) -> None:
        """Stop the threads and close the index (once; the server's stop, or the exit)."""
        atexit.unregister(self._close)
        if getattr(self, "_closed", False):
            return
        self._closed = True
        for name in ("_stopping", "_settle_wake"):
            event = getattr(self, name, None)
            if event is not None:
                event.set()
        embedded = getattr(self, "embedded_mlflow", None)
        if embedded is not None:
            embedded.close()
        tracking = getattr(self, "tracking", None)
        if tracking is not None:
            tracking.close()
        service = getattr(self, "service", None)
        if service is not None:
            service.close()
        for name in ("executor", "search_executor"):
            executor = getattr(self, name, None)
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)


def _safe_url(url: str) -> str:
    """An index URL fit for a log line: no password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
