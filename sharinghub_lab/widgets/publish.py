"""The Publish panel: a "New project" form (category, name, title, description; the new
item's card is shown) and a dataset version form (a folder below the working directory, a
dataset item, a version, a message): Publish runs the server's publish job with a progress
bar and Cancel, then shows the version published. Whether the user can publish to the
chosen item is asked of the server; Publish is disabled, with the reason, when not."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ipywidgets as w

from .. import api, render
from ..errors import SharingHubError
from .common import JobProgress, Status, Worker, folder_choices, item_choices, set_choices


def check_folder(value: str, base: Path | None = None) -> tuple[bool, str]:
    """Whether ``value`` (relative to ``base``, default: the working directory) is something
    to publish, and a remark saying what it is (or why not)."""
    value = value.strip()
    if not value:
        return False, "pick a folder below the working directory"
    path = (base if base is not None else Path.cwd()) / value
    if path.is_file():
        return True, f"{value}: a file"
    if not path.is_dir():
        return False, f"no folder {value}"
    try:
        with os.scandir(path) as entries:
            empty = next(iter(entries), None) is None
    except OSError as exc:
        return False, f"{value} cannot be read: {exc.strerror or exc}"
    return (False, f"{value} is empty") if empty else (True, f"{value}: a folder")


class PublishPanel:
    """The Publish tab. New project: ``category``, ``name``, ``namespace``, ``title``,
    ``description``, ``create_button`` → ``created`` (the item card). A version:
    ``folder``, ``item``, ``version``, ``message``, ``publish_button`` (``cancel_button``
    while it runs) → ``progress`` and ``result``; ``permission`` says whether the user can
    publish to the chosen item (``allowed``)."""

    def __init__(self) -> None:
        self.status = Status()
        self.worker = Worker(self.status)
        wide = w.Layout(width="420px")
        # a new project
        self.category = w.Dropdown(options=list(api.CATEGORIES), value="dataset",
                                   description="Category")
        self.name = w.Text(placeholder="my-dataset", description="Name")
        self.namespace = w.Text(placeholder="(optional) GitLab group", description="Namespace")
        self.title = w.Text(placeholder="(optional)", description="Title", layout=wide)
        self.description = w.Textarea(placeholder="(optional) what it holds, where from",
                                      description="Description", layout=wide)
        self.create_button = w.Button(description="Create project", icon="plus")
        self.created = w.HTML()
        # a dataset version
        self.folder = w.Combobox(options=[], placeholder="a folder below the working directory",
                                 description="Folder", ensure_option=False, layout=wide)
        self.folder_note = w.HTML()
        self.item = w.Dropdown(options=[], description="Item", layout=wide)
        self.reload_button = w.Button(description="Reload", icon="refresh")
        self.permission = w.HTML()
        self.version = w.Text(placeholder="v1.0", description="Version")
        self.message = w.Text(placeholder="(optional)", description="Message", layout=wide)
        self.publish_button = w.Button(description="Publish", button_style="primary",
                                       icon="upload", disabled=True)
        self.cancel_button = w.Button(description="Cancel", icon="stop", disabled=True)
        self.progress = JobProgress()
        self.result = w.HTML()
        self.allowed: bool | None = None
        self.job: api.PublishJob | None = None
        self._running = False

        self.item.observe(lambda _: self.check_permission(), "value")
        self.folder.observe(lambda _: self.check_folder(), "value")
        self.create_button.on_click(lambda _: self.create())
        self.publish_button.on_click(lambda _: self.publish())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.reload_button.on_click(lambda _: self.load())
        self.widget = w.VBox([
            w.HTML("<b>New project</b>"), w.HBox([self.category, self.name]), self.namespace,
            self.title, self.description, self.create_button, self.created,
            w.HTML("<hr><b>Publish a dataset version</b>"),
            w.HBox([self.folder, self.folder_note]),
            w.HBox([self.item, self.reload_button]), self.permission,
            self.version, self.message,
            w.HBox([self.publish_button, self.cancel_button, self.progress]),
            self.status.widget, self.result])
        self.check_folder()
        self.load()

    # --- choices -----------------------------------------------------------------------------

    def load(self) -> None:
        """The dataset items and the folders below the working directory (and whether the
        chosen item, maybe the same, can be published to now)."""
        def work() -> None:
            self.folder.options = folder_choices()
            choices, before = item_choices("dataset"), self.item.value
            set_choices(self.item, choices)
            if self.item.value == before:  # no change to observe: ask again here
                self.check_permission()
            if not choices:
                self.status.info("no dataset item in the catalog: create one above")

        self.worker.run(work, buttons=[self.reload_button], busy_text="loading items...")

    def check_folder(self) -> None:
        ok, text = check_folder(self.folder.value)
        self.folder_note.value = render.note(text, ok)

    def check_permission(self) -> None:
        """Ask the server whether the user can publish to the chosen item."""
        item_id = self.item.value
        self.allowed = None
        self.permission.value = ""
        if not item_id:
            self._settle()
            return

        def work() -> None:
            answer = render.Permission(api.publish_permissions(item_id))
            if self.item.value == item_id:  # still the chosen one
                self.allowed = answer.allowed
                self.permission.value = answer._repr_html_()

        self.worker.run(work, buttons=[self.publish_button], settle=self._settle)

    def _settle(self) -> None:
        """Publish is offered for an item the user can publish to, one job at a time."""
        self.publish_button.disabled = not self.allowed or self._running
        self.cancel_button.disabled = self.job is None

    # --- actions -----------------------------------------------------------------------------

    def create(self) -> None:
        """Create the project; show its item card; a dataset becomes the chosen item."""
        category, name = self.category.value, self.name.value.strip()
        namespace, title = self.namespace.value.strip(), self.title.value.strip()
        description = self.description.value.strip()

        def work() -> None:
            if not name:
                raise SharingHubError("give the project a name")
            self.created.value = ""
            served = api.new_project_dict(category, name, namespace=namespace or None,
                                          title=title or None, description=description or None)
            created = render.Created(api.item_card(str(served.get("id")), served))
            self.created.value = created._repr_html_()
            self.status.info(created.text())
            if served.get("collection") == "dataset":
                set_choices(self.item, item_choices("dataset"))
                if created.item_id in [c[1] for c in self.item.options]:
                    self.item.value = created.item_id

        self.worker.run(work, buttons=[self.create_button], busy_text=f"creating {name}...")

    def publish(self) -> None:
        """Publish the folder as the version of the item: progress, then the version."""
        folder, item_id = self.folder.value.strip(), self.item.value
        version, message = self.version.value.strip(), self.message.value.strip()

        def work() -> None:
            if not item_id:
                raise SharingHubError("pick a dataset item first")
            if not folder:
                raise SharingHubError("pick a folder to publish")
            if not version:
                raise SharingHubError("give the version a tag, e.g. v1.0")
            self.result.value = ""
            self._running = True
            try:
                info = self.progress.follow(
                    lambda: api.publish(folder, item_id, version, message=message or None,
                                        wait=False),
                    started=self._started)
            finally:
                self._running, self.job = False, None
            published = render.Published(info)
            self.result.value = published._repr_html_()
            self.status.info(published.text())

        self.worker.run(work, buttons=[self.publish_button],
                        busy_text=f"publishing {folder} to {item_id} as {version}...",
                        settle=self._settle)

    def _started(self, job: Any) -> None:
        self.job = job
        self.cancel_button.disabled = False

    def cancel(self) -> None:
        """Cancel the running publish (the server leaves no half version)."""
        job = self.job
        if job is None:
            return
        self.worker.run(job.cancel, buttons=[self.cancel_button], busy_text="cancelling...",
                        settle=self._settle)
