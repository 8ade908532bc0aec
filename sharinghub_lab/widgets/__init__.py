"""The panels (ipywidgets, composed; no JavaScript of our own): Search (with an ipyleaflet
map), Runs, Register and Publish, as tabs. ``sh.panel()`` imports this module on first use,
so that ``import sharinghub_lab`` loads neither ipywidgets nor ipyleaflet."""

from __future__ import annotations

import ipywidgets as w

from .publish import PublishPanel
from .register import RegisterPanel
from .runs import RunsPanel
from .search import SearchPanel

__all__ = ["PublishPanel", "RegisterPanel", "RunsPanel", "SearchPanel", "SharingHubPanel",
           "panel"]


class SharingHubPanel(w.Tab):
    """The four tabs; ``search``, ``runs``, ``register`` and ``publish`` are the panels
    behind them."""

    def __init__(self) -> None:
        self.search = SearchPanel()
        self.runs = RunsPanel()
        self.register = RegisterPanel()
        self.publish = PublishPanel()
        super().__init__(children=[self.search.widget, self.runs.widget,
                                   self.register.widget, self.publish.widget],
                         titles=("Search", "Runs", "Register", "Publish"))

    @property
    def busy(self) -> bool:
        """Whether any panel still has work running."""
        return any(p.worker.busy for p in (self.search, self.runs, self.register,
                                           self.publish))


def panel() -> SharingHubPanel:
    """The Search, Runs, Register and Publish panels, as tabs. Each loads what it offers
    (the collections, the ai-model and dataset items, the folders) in the background;
    errors show in its status line."""
    return SharingHubPanel()
