"""``sh.panel()`` driven headlessly the way a person uses it (set values, click buttons,
draw a box on the map) against a live Jupyter server with the extension (a subprocess with
the example projects, a DVC dataset in two versions, a hostile project and the embedded
MLflow): what the panels display, and what happened on the server."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import sharinghub_lab as sh
from sharinghub_lab import api, client
from sharinghub_lab.widgets.search import FOOTPRINT, SELECTED
from tests.support.html_check import live_problems
from tests.support.notebook_site import (
    DATASET,
    EXAMPLE_DATASET,
    HOSTILE,
    MODEL,
    notebook_site,
)
from tests.support.polling import poll
from tests.support.threaded import free_port

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with notebook_site(tmp_path_factory.mktemp("panels")) as site:
        yield site


@pytest.fixture
def connected(site, monkeypatch):
    """A kernel configured by environment variables, working in a folder below the root."""
    site.configure_kernel(monkeypatch)
    work = site.root / "panel-work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    return sh.connect()


def settle(panel) -> None:
    """Until the work the panel started in its threads has ended."""
    poll(lambda: not panel.busy, "the panel's background work", 120)


@pytest.fixture
def panel(connected):
    found = sh.panel()
    settle(found)
    return found


def search(panel, **values) -> list[str]:
    """Fill the search form, click Search: the result cards' item ids."""
    form = panel.search
    form.text.value = values.get("text", "")
    form.collection.value = values.get("collection", "")
    form.keywords.value = values.get("keywords", "")
    form.filter.value = values.get("filter", "")
    form.search_button.click()
    settle(panel)
    return [card.id for card in form.cards]


def rectangle(west: float, south: float, east: float, north: float) -> dict:
    """The GeoJSON Leaflet.draw sends for a rectangle drawn on the map."""
    ring = [[west, south], [west, north], [east, north], [east, south], [west, south]]
    return {"type": "Feature", "properties": {"style": {}},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


def draw(panel, action: str, feature: dict) -> None:
    """The message the map's draw control sends to the kernel when the user draws."""
    panel.search.draw._handle_custom_msg({"event": f"draw:{action}", "geo_json": feature}, [])


def text_of(document: str) -> str:
    """What a browser shows of ``document`` as text."""
    parts: list[str] = []
    parser = HTMLParser()
    parser.handle_data = parts.append  # type: ignore[method-assign]
    parser.feed(document)
    parser.close()
    return "".join(parts)


# --- the panel itself ------------------------------------------------------------------------

def test_the_panel_has_three_tabs_and_loads_its_choices(panel):
    assert [panel.get_title(i) for i in range(3)] == ["Search", "Runs", "Register"]
    assert {"ai-model", "dataset"} <= set(panel.search.collection.options[i][1] for i in
                                         range(len(panel.search.collection.options)))
    assert panel.runs.item.options == (("Flood detection model (local/flood-model)", MODEL),)
    assert panel.register.item.value == MODEL
    assert not panel.search.status.is_error


def test_import_loads_neither_ipywidgets_nor_ipyleaflet():
    code = ("import sys, sharinghub_lab\nheavy = {'ipywidgets', 'ipyleaflet', 'matplotlib', "
            "'sharinghub_lab.widgets'}\nprint(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent).stdout
    assert out.strip() == "[]"


# --- search ----------------------------------------------------------------------------------

def test_search_by_text_collection_and_keywords_shows_cards_and_footprints(panel):
    assert set(search(panel, text="flood")) == {MODEL, EXAMPLE_DATASET}
    form = panel.search
    titles = {text_of(card.title.value).split(" local/")[0] for card in form.cards}
    assert titles == {"Flood detection model", "Sen1Floods11 sample"}
    # one base map layer, and a footprint per result with a geometry (both have one)
    assert len(form.map.layers) == 1 + 2
    assert form.status.text == "2 shown of 2 items"

    assert search(panel, text="flood", collection="dataset") == [EXAMPLE_DATASET]
    assert len(form.map.layers) == 1 + 1  # the previous footprints are gone
    assert search(panel, keywords="Sentinel-1") == [EXAMPLE_DATASET]
    assert search(panel, keywords="flood, segmentation") == [MODEL]


def test_a_box_drawn_on_the_map_searches_and_the_selected_footprint_is_highlighted(panel):
    draw(panel, "created", rectangle(9.5, 9.5, 10.5, 10.5))
    form = panel.search
    assert form.bbox == [9.5, 9.5, 10.5, 10.5]
    assert search(panel) == [HOSTILE]

    draw(panel, "edited", rectangle(-1, 42, 1, 43))
    assert set(search(panel)) == {MODEL, EXAMPLE_DATASET}
    first, second = form.cards
    first.show_button.click()
    settle(panel)
    assert first.layer.style == SELECTED and second.layer.style == FOOTPRINT
    second.show_button.click()
    settle(panel)
    assert first.layer.style == FOOTPRINT and second.layer.style == SELECTED
    assert "<h3>" in second.detail.value and second.id in text_of(second.detail.value)

    draw(panel, "deleted", rectangle(-1, 42, 1, 43))
    assert form.bbox is None
    assert len(search(panel)) == 4


def test_more_pages_through_the_same_search(panel):
    form = panel.search
    form.per_page.value = 1
    assert len(search(panel)) == 1
    for _ in range(10):  # bounded: 4 items, one a page
        if form.more_button.disabled:
            break
        form.more_button.click()
        settle(panel)
    ids = [card.id for card in form.cards]
    assert sorted(ids) == sorted({DATASET, EXAMPLE_DATASET, MODEL, HOSTILE})
    assert form.more_button.disabled
    assert len(form.map.layers) == 1 + 3  # the DVC dataset has no footprint


def test_show_renders_the_item_card_with_its_versions(panel):
    assert search(panel, text="two versions") == [DATASET]
    card = panel.search.cards[0]
    card.show_button.click()
    settle(panel)
    shown = text_of(card.detail.value)
    assert "Floods in two versions" in shown and "DVC versions" in shown
    assert "v1.0" in shown and "v1.1" in shown
    # the same card as ``%sharinghub show`` (one helper builds both)
    assert card.detail.value == api.item_card(DATASET)._repr_html_()


def test_pull_from_a_card_shows_progress_then_the_path(panel, site):
    assert search(panel, text="two versions") == [DATASET]
    card = panel.search.cards[0]
    card.pull_button.click()
    assert card.pull_button.disabled  # while the pull runs
    settle(panel)
    assert not panel.search.status.is_error, panel.search.status.text
    expected = site.root.resolve() / "panel-work" / "floods"
    assert card.progress.max > 1 and card.progress.value == card.progress.max
    assert card.progress.bar_style == "success"
    assert text_of(card.path.value) == str(expected)
    assert site.dataset.diff_workspace(expected, "v1.1") == []
    assert not card.pull_button.disabled


# --- errors ----------------------------------------------------------------------------------

def test_a_bad_cql2_filter_is_an_error_line_and_keeps_the_results(panel):
    before = search(panel, text="flood")
    assert search(panel, filter="title ==== 3") == before
    status = panel.search.status
    assert status.is_error and "filter" in status.text.lower() and "\n" not in status.text
    assert "sharinghub: error:" in text_of(status.widget.value)


def test_pulling_what_cannot_be_pulled_is_an_error_line(panel, site):
    draw(panel, "created", rectangle(9.5, 9.5, 10.5, 10.5))
    assert search(panel) == [HOSTILE]
    card = panel.search.cards[0]
    card.pull_button.click()
    settle(panel)
    assert panel.search.status.is_error and HOSTILE in panel.search.status.text
    assert card.progress.bar_style == "danger" and card.path.value == ""
    assert not (site.root / "panel-work" / "hostile").exists()


def test_an_item_gone_from_the_server_is_an_error_line(panel):
    """A result shown before its project left the catalog: Show and Pull say so."""
    form = panel.search
    search(panel, text="two versions")
    page = {"features": [{**form.cards[0].feature, "id": "local/gone"}]}
    form._add_page(page)
    gone = form.cards[-1]
    gone.pull_button.click()
    settle(panel)
    assert form.status.is_error and "local/gone" in form.status.text
    gone.show_button.click()
    settle(panel)
    assert form.status.is_error and "local/gone" in form.status.text


def test_an_unreachable_server_is_an_error_line_in_each_panel(connected, monkeypatch):
    monkeypatch.setattr(client, "_current", None)
    monkeypatch.setenv("SHARINGHUB_URL", f"http://127.0.0.1:{free_port()}/")
    found = sh.panel()  # raises nothing: it loads its choices in the background
    settle(found)
    for part in (found.search, found.runs, found.register):
        assert part.status.is_error and "cannot reach" in part.status.text, part
    found.search.text.value = "flood"
    found.search.search_button.click()
    settle(found)
    assert found.search.status.is_error and "cannot reach" in found.search.status.text
    assert found.search.cards == [] and not found.search.search_button.disabled


def test_a_hostile_title_renders_as_text(panel):
    draw(panel, "created", rectangle(9.5, 9.5, 10.5, 10.5))
    assert search(panel) == [HOSTILE]
    card = panel.search.cards[0]
    card.show_button.click()
    settle(panel)
    for document in (card.title.value, card.detail.value):
        assert live_problems(document) == [], document
        assert "<script>alert('title')</script>" in text_of(document)


# --- runs and register -----------------------------------------------------------------------

@pytest.fixture
def run_id(connected, site, monkeypatch):
    """A real run of the model's experiment: a metric over three steps and a model."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    sh.track(MODEL)
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    with mlflow.start_run(run_name="panel-run") as run:
        for step, value in enumerate((0.5, 0.7, 0.9)):
            mlflow.log_metric("accuracy", value, step=step)
        mlflow.log_param("C", 1.0)
        mlflow.sklearn.log_model(model, name="model")
    return run.info.run_id


def test_runs_table_and_a_metric_over_steps(run_id, connected):
    panel = sh.panel()
    settle(panel)
    runs = panel.runs
    assert runs.item.value == MODEL
    assert run_id in text_of(runs.table.value) and "metrics.accuracy" in runs.table.value
    assert runs.metric.value == "accuracy"
    assert runs.series["panel-run"] == [(0, 0.5), (1, 0.7), (2, 0.9)]
    assert bytes(runs.plot.value).startswith(PNG)
    assert "panel-run30.9" in text_of(runs.caption.value)
    assert live_problems(runs.table.value) == []


def test_the_panels_reach_the_server_wherever_mlflow_points(run_id, connected, tmp_path):
    """The user points MLflow elsewhere after the panels loaded their runs: plotting a
    metric and listing a run's models still ask the item's tracking server."""
    import mlflow

    panel = sh.panel()
    settle(panel)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    try:
        panel.runs.series = {}
        panel.runs.draw()  # what choosing the metric runs
        form = panel.register
        form.run.value = None
        form.run.value = run_id  # choosing the run lists its models
        settle(panel)
    finally:
        mlflow.set_tracking_uri(before)
    assert not panel.runs.status.is_error, panel.runs.status.text
    assert panel.runs.series["panel-run"] == [(0, 0.5), (1, 0.7), (2, 0.9)]
    assert not form.status.is_error, form.status.text
    assert form.artifact.options == ("model",)


def test_register_a_run_model_and_the_item_link_is_shown(run_id, connected):
    import mlflow

    panel = sh.panel()
    settle(panel)
    form = panel.register
    form.run.value = run_id
    settle(panel)
    assert form.artifact.options == ("model",)
    form.register_button.click()  # no name yet
    settle(panel)
    assert form.status.is_error and "name" in form.status.text
    form.name.value = "panel-clf"
    form.register_button.click()
    settle(panel)
    assert not form.status.is_error, form.status.text
    shown = text_of(form.result.value)
    assert "models:/panel-clf/1" in shown and "panel-clf" in shown
    assert 'href="' in form.result.value and live_problems(form.result.value) == []
    # on the server: the version, its tag, and the item's link
    registered = mlflow.MlflowClient().get_registered_model("panel-clf")
    assert registered.tags["sharinghub:item"] == MODEL
    version = mlflow.MlflowClient().get_model_version("panel-clf", "1")
    assert version.run_id == run_id
    links = [lk for lk in api.model_links(api.item_dict(MODEL))
             if (lk["mlflow:name"], str(lk["mlflow:version"])) == ("panel-clf", "1")]
    assert len(links) == 1 and f'href="{links[0]["href"]}"' in form.result.value


def test_the_panel_magic_returns_the_tabs(connected):
    from IPython.core.interactiveshell import InteractiveShell

    from sharinghub_lab.widgets import SharingHubPanel

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "sharinghub_lab")
    shown = shell.run_line_magic("sharinghub", "panel")
    assert isinstance(shown, SharingHubPanel)
    settle(shown)
    assert shown.runs.item.value == MODEL and not shown.search.status.is_error
