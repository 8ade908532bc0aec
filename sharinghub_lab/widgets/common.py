"""What the panels share: a status line (messages and errors stay in the panel, never only
in the log), and running blocking work in a thread so that the kernel keeps serving the UI
while a search, a pull or a registration runs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as w

from .. import render
from ..errors import one_line


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
        with self._lock:
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


def ai_model_choices() -> list[tuple[str, str]]:
    """(label, id) of the catalog's ai-model items, for the Runs and Register pickers."""
    from .. import api

    found, _ = api.features(api.search_body(collections="ai-model", limit=100), None)
    return sorted(((f"{render.title(f)} ({f.get('id')})", str(f.get("id"))) for f in found),
                  key=lambda choice: choice[0].lower())
