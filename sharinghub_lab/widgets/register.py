"""The Register panel: an ai-model item, one of its runs and that run's model artifact, a
name; Register calls :func:`sharinghub_lab.api.register_model` (which waits until the item
shows the version) and then shows the item's new ``mlflow:model`` link."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from .. import api, render
from ..errors import SharingHubError
from .common import Status, Worker, ai_model_choices, set_choices


def model_artifacts(client: Any, run_id: str, experiment_id: str) -> list[str]:
    """The artifact paths ``runs:/<run_id>/<path>`` can register: the run's logged models
    (MLflow 3 keeps them outside the run's artifacts) and run artifact folders holding an
    ``MLmodel`` file (models logged the MLflow 2 way)."""
    found = [m.name for m in client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'")]
    for entry in client.list_artifacts(run_id):
        if entry.is_dir and entry.path not in found and any(
                inner.path.endswith("/MLmodel") for inner in
                client.list_artifacts(run_id, entry.path)):
            found.append(entry.path)
    return found


class RegisterPanel:
    """The Register tab: ``item`` → ``run`` → ``artifact``, ``name``, ``register_button``;
    ``result`` shows the item's link to the registered version."""

    def __init__(self) -> None:
        self.status = Status()
        self.worker = Worker(self.status)
        self.item = w.Dropdown(options=[], description="Item")
        self.run = w.Dropdown(options=[], description="Run")
        self.artifact = w.Dropdown(options=[], description="Model")
        self.name = w.Text(placeholder="registered model name", description="Name")
        self.register_button = w.Button(description="Register", button_style="primary",
                                        icon="check")
        self.result = w.HTML()
        self.reload_button = w.Button(description="Reload", icon="refresh")
        self._experiments: dict[str, str] = {}
        self.item.observe(lambda _: self.load_runs(), "value")
        self.run.observe(lambda _: self.load_artifacts(), "value")
        self.register_button.on_click(lambda _: self.register())
        self.reload_button.on_click(lambda _: self.load_items())
        self.widget = w.VBox([w.HBox([self.item, self.reload_button]), self.run,
                              self.artifact, self.name, self.register_button,
                              self.status.widget, self.result])
        self.load_items()

    def load_items(self) -> None:
        """The ai-model items (and the chosen one's runs, which may be new)."""
        def work() -> None:
            before = self.item.value
            set_choices(self.item, ai_model_choices())
            if self.item.value == before:  # no change to observe: reload its runs here
                self.load_runs()

        self.worker.run(work, buttons=[self.reload_button], busy_text="loading items...")

    def load_runs(self) -> None:
        item_id = self.item.value
        if not item_id:
            return

        def work() -> None:
            frame = api.runs(item_id)
            records = frame.to_dict("records")
            self._experiments = {str(r["run_id"]): str(r["experiment_id"]) for r in records}
            set_choices(self.run, [(_run_label(r), str(r["run_id"])) for r in records])
            self.status.info(f"{render.plural(len(records), 'run')} of {item_id}")

        self.worker.run(work, buttons=[self.register_button, self.reload_button],
                        busy_text=f"runs of {item_id}...")

    def load_artifacts(self) -> None:
        run_id = self.run.value
        if not run_id:
            self.artifact.options = []
            return

        item_id = self.item.value

        def work() -> None:
            paths = model_artifacts(api.mlflow_client(item_id), run_id,
                                    self._experiments[run_id])
            set_choices(self.artifact, paths)
            if not paths:
                self.status.info(f"run {run_id} has no model to register")

        self.worker.run(work, buttons=[self.register_button])

    def register(self) -> None:
        item_id, run_id = self.item.value, self.run.value
        artifact, name = self.artifact.value, self.name.value.strip()

        def work() -> None:
            if not (item_id and run_id and artifact):
                raise SharingHubError("pick an item, one of its runs and its model first")
            if not name:
                raise SharingHubError("give the model a name")
            self.result.value = ""
            version = api.register_model(run_id, name, item=item_id, artifact_path=artifact)
            links = [lk for lk in api.model_links(api.item_dict(item_id))
                     if lk.get("mlflow:name") == name
                     and str(lk.get("mlflow:version")) == str(version.version)]
            self.status.info(render.Registered(version, item_id).text())
            self.result.value = render.table(
                ("model", "version", "uri", "link"),
                [(lk.get("mlflow:name"), lk.get("mlflow:version"), lk.get("mlflow:uri"),
                  render.a(lk.get("href"), lk.get("href"))) for lk in links])

        self.worker.run(work, buttons=[self.register_button],
                        busy_text=f"registering {name}...")


def _run_label(record: dict[str, Any]) -> str:
    name = record.get("tags.mlflow.runName")
    start = str(record.get("start_time") or "")[:16]
    short = str(record["run_id"])[:8]
    return f"{name} ({short}, {start})" if isinstance(name, str) and name else short
