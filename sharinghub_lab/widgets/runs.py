"""The Runs panel: an ai-model item, the runs of its MLflow experiment in a table, and one
metric over steps (matplotlib, drawn to a PNG shown in an ``Image`` widget: no plotting
JavaScript, and nothing that depends on the kernel's display hooks from a thread)."""

from __future__ import annotations

import io
from typing import Any

import ipywidgets as w

from .. import api, render
from .common import Status, Worker, ai_model_choices, set_choices

#: runs whose histories are plotted (the newest first, as MLflow lists them)
MAX_PLOTTED = 10


def plot_png(metric: str, series: dict[str, list[tuple[int, float]]]) -> bytes:
    """A line per run of ``metric`` over steps, as PNG bytes (the Agg canvas: no pyplot
    state, safe in a worker thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3), dpi=80)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for label, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    if series:
        ax.legend(fontsize="small")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


class RunsPanel:
    """The Runs tab: ``item`` → ``table``; ``metric`` → ``plot`` (and ``series``, the
    points plotted per run)."""

    def __init__(self) -> None:
        self.status = Status()
        self.worker = Worker(self.status)
        self.item = w.Dropdown(options=[], description="Item")
        self.reload_button = w.Button(description="Reload", icon="refresh")
        self.table = w.HTML()
        self.metric = w.Dropdown(options=[], description="Metric")
        self.plot = w.Image(format="png", layout=w.Layout(max_width="520px"))
        self.caption = w.HTML()
        self.frame: Any = None
        self.series: dict[str, list[tuple[int, float]]] = {}
        self.item.observe(lambda _: self.load_runs(), "value")
        self.metric.observe(lambda _: self.draw(), "value")
        self.reload_button.on_click(lambda _: self.load_items())
        self.widget = w.VBox([w.HBox([self.item, self.reload_button]), self.status.widget,
                              self.table, self.metric, self.plot, self.caption])
        self.load_items()

    def load_items(self) -> None:
        def work() -> None:
            choices, before = ai_model_choices(), self.item.value
            set_choices(self.item, choices)
            if self.item.value == before:  # no change to observe: reload its runs here
                self.load_runs()
            if not choices:
                self.status.info("no ai-model item in the catalog")

        self.worker.run(work, buttons=[self.reload_button], busy_text="loading items...")

    def load_runs(self) -> None:
        """The runs of the chosen item, and its metrics to pick from."""
        item_id = self.item.value
        if not item_id:
            return

        def work() -> None:
            self.frame = None
            frame = api.runs(item_id)
            self.frame = frame
            self.table.value = render.RunsTable(item_id, frame)._repr_html_()
            metrics = sorted(c[len("metrics."):] for c in frame.columns
                             if c.startswith("metrics."))
            self.status.info(f"{len(frame)} runs of {item_id}")
            before = self.metric.value
            set_choices(self.metric, metrics)
            if self.metric.value == before:  # no change to observe: plot the new runs here
                self.draw()

        self.worker.run(work, buttons=[self.reload_button], busy_text=f"runs of {item_id}...")

    def draw(self) -> None:
        """Plot the chosen metric over steps, one line per run."""
        metric, frame = self.metric.value, self.frame
        if not metric or frame is None or not len(frame):
            return

        item_id = self.item.value

        def work() -> None:
            client = api.mlflow_client(item_id)
            series: dict[str, list[tuple[int, float]]] = {}
            for row in frame.head(MAX_PLOTTED).to_dict("records"):
                run_id = str(row["run_id"])
                name = row.get("tags.mlflow.runName")
                label = name if isinstance(name, str) and name else run_id[:8]
                history = client.get_metric_history(run_id, metric)
                if history:
                    series[label] = sorted((int(m.step), float(m.value)) for m in history)
            self.series = series
            self.plot.value = plot_png(metric, series)
            self.caption.value = render.table(
                ("run", "points", "last"),
                [(name, len(points), f"{points[-1][1]:.6g}") for name, points in
                 series.items()])
            self.status.info(f"{metric} of {len(series)} runs")

        self.worker.run(work, busy_text=f"plotting {metric}...")
