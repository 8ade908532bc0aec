"""What the panels share: a status line (messages and errors stay in the panel, never only
in the log), running blocking work in a thread so that the kernel keeps serving the UI
while a search, a pull, a publish or a registration runs, the progress bar of a server job,
and the choices of the pickers (items of a collection, folders)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from .. import render
from ..errors import one_line

if TYPE_CHECKING:
    from ..api import Job


class Status:
    """The panel's status line: an ``HTML`` widget holding one escaped message."""

    def __init__(self) -> None:
        self.widget = w.HTML()
        self.text = ""
        self.is_error = False

    def info(self, text: str) -> None:
        self.text, self.is_error = " ".join(text.split()), False
        self.widget.value = f"<span>{render.esc(self.text)}</span>"

    def error(self, text: str) -> None:
        line = render.ErrorLine(text)
        self.text, self.is_error = line.message, True
        self.widget.value = line._repr_html_()


class Worker:
    """Runs a panel's callbacks in daemon threads: the buttons given are disabled while one
    runs, and what it raises becomes the panel's error line."""

    def __init__(self, status: Status) -> None:
        self.status = status
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """Whether work started here is still running (tests poll this)."""
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            return bool(self._threads)

    def run(self, work: Callable[[], Any], *, buttons: Iterable[w.Button] = (),
            busy_text: str | None = None,
            settle: Callable[[], None] | None = None) -> threading.Thread:
        """``work()`` in a thread; ``buttons`` disabled until it ends, then ``settle()``
        (whether it failed or not)."""
        held = list(buttons)
        for button in held:
            button.disabled = True
        if busy_text:
            self.status.info(busy_text)

        def target() -> None:
            try:
                work()
            except Exception as exc:  # the panel shows it: a thread's exception is lost
                self.status.error(one_line(exc))
            finally:
                for button in held:
                    button.disabled = False
                if settle is not None:
                    settle()

        thread = threading.Thread(target=target, daemon=True, name="sharinghub-panel")
        with self._lock:  # started before ``busy`` can see it: a thread not yet started is
            # not alive, and would be dropped as if it had ended
            self._threads.append(thread)
            thread.start()
        return thread


def set_choices(dropdown: w.Dropdown, choices: list[Any]) -> None:
    """New options for ``dropdown``, keeping its value when it is still offered, else the
    first one (ipywidgets leaves it empty, and its observers would not run)."""
    values = [c[1] if isinstance(c, tuple) else c for c in choices]
    keep = dropdown.value if dropdown.value in values else None
    dropdown.options = choices
    dropdown.value = keep if keep is not None else (values[0] if values else None)


def item_choices(collection: str) -> list[tuple[str, str]]:
    """(label, id) of the catalog's items of ``collection``, for the item pickers."""
    from .. import api

    found, _ = api.features(api.search_body(collections=collection, limit=100), None)
    return sorted(((f"{render.title(f)} ({f.get('id')})", str(f.get("id"))) for f in found),
                  key=lambda choice: choice[0].lower())


def ai_model_choices() -> list[tuple[str, str]]:
    """(label, id) of the catalog's ai-model items, for the Runs and Register pickers."""
    return item_choices("ai-model")


def folder_choices(base: Path | None = None, depth: int = 3, limit: int = 500) -> list[str]:
    """The folders below ``base`` (default: the working directory), relative to it, at most
    ``depth`` levels down and ``limit`` of them, hidden ones (and what they hold) left out:
    the Publish panel's folder picker."""
    base = base if base is not None else Path.cwd()
    found: list[str] = []
    level = [base]
    for _ in range(depth):
        below: list[Path] = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                path = Path(entry.path)
                found.append(path.relative_to(base).as_posix())
                if len(found) >= limit:
                    return sorted(found)
                below.append(path)
        level = below
    return sorted(found)


class JobProgress(w.FloatProgress):
    """The progress bar of a server job (a pull, a publish): hidden until the job starts,
    bytes done of the total when known (else files), green when it is done, red when it
    failed."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("layout", w.Layout(visibility="hidden", width="160px"))
        super().__init__(min=0, max=1, value=0, description="", **kwargs)

    def update(self, state: dict[str, Any]) -> None:
        """Show a job state (``on_status`` of :meth:`sharinghub_lab.api.Job.wait`)."""
        total = state.get("bytes_total") or state.get("files_total")
        done = state.get("bytes_done") if state.get("bytes_total") else state.get("files_done")
        if total:
            self.max = float(total)
            self.value = float(min(done or 0, total))

    def follow(self, start: Callable[[], Job[Any]],
               started: Callable[[Job[Any]], None] | None = None) -> Any:
        """Start a job (``start()``), show its progress until it ends and return what its
        ``wait`` returns; ``started(job)`` is called once it runs (to offer Cancel). A
        failure to start or a failed job turns the bar red and is raised."""
        self.value, self.bar_style = 0, ""
        self.layout.visibility = "visible"
        try:
            job = start()
            if started is not None:
                started(job)
            result = job.wait(progress=False, on_status=self.update)
        except Exception:
            self.bar_style = "danger"
            raise
        self.value = self.max
        self.bar_style = "success"
        return result
