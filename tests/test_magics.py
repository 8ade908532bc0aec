"""``%sharinghub`` in a real IPython ``InteractiveShell`` against a live Jupyter server
with the extension (a subprocess): each command's output (HTML and text), ``--help``, POSIX
quoting, every error path as one line that changes nothing, and the HTML of a hostile
project (``<script>``, ``onerror=``, ``javascript:``) rendered inert."""

from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from IPython.core.interactiveshell import InteractiveShell

import sharinghub_lab as sh
from sharinghub_lab.errors import one_line
from sharinghub_lab.magics import COMMANDS
from tests.support.html_check import live_problems
from tests.support.notebook_site import (
    DATASET,
    EXAMPLE_DATASET,
    HOSTILE,
    MODEL,
    TOKEN,
    notebook_site,
)
from tests.support.threaded import free_port


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with notebook_site(tmp_path_factory.mktemp("magics")) as site:
        yield site


@pytest.fixture(scope="module")
def shell():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "sharinghub_lab")
    return shell


@pytest.fixture
def magic(site, shell, monkeypatch, capsys):
    """``magic(line)`` → (result, stdout, stderr), connected by environment variables."""
    site.configure_kernel(monkeypatch)
    sh.connect()
    capsys.readouterr()

    def run(line: str):
        result = shell.run_line_magic("sharinghub", line)
        out, err = capsys.readouterr()
        return result, out, err

    return run


def _error_line(err: str) -> str:
    """The one error line (a pull's progress bar may come before it, on its own line)."""
    *before, last = err.strip().splitlines()
    assert last.startswith("sharinghub: error: "), err
    assert all(line.startswith("pull ") for line in before), err
    assert "Traceback" not in err and err.count("sharinghub: error") == 1
    return last


def _status(site) -> dict:
    r = requests.get(f"{site.url}sharinghub/api/index", timeout=10,
                     headers={"Authorization": f"token {TOKEN}"})
    return r.json()


# --- each command ----------------------------------------------------------------------------

def test_every_command_has_help(magic):
    result, overview, err = magic("--help")
    assert result is None and err == ""
    for command in COMMANDS:
        assert command in overview
        result, out, err = magic(f"{command} --help")
        assert result is None and err == "", command
        assert out.startswith(f"usage: %sharinghub {command}"), out


def test_search_text_quoting_bbox_datetime_and_cql2(magic):
    def ids(line: str) -> set[str]:
        result, _, err = magic(line)
        assert err == "", err
        return {item["id"] for item in result.items}

    assert ids('search "two versions" --no-map') == {DATASET}
    assert ids("search 'two versions' --no-map") == {DATASET}
    assert ids("search two versions --no-map") == {DATASET}
    assert ids("search --bbox 9.9,9.9,10.5,10.5") == {HOSTILE}
    assert ids("search --bbox -1,42,1,43") == {EXAMPLE_DATASET, MODEL}  # a negative west
    assert ids("search --datetime 2019-06-01/2019-06-30") == {EXAMPLE_DATASET}
    assert ids("search --filter \"collection = 'ai-model'\"") == {MODEL}
    assert ids("search --collection dataset --limit 2") <= {DATASET, EXAMPLE_DATASET, HOSTILE}
    result, _, _ = magic("search --collection ai-model --collection dataset")
    assert result.matched == 4 and len(result.items) == 4
    newest_first, _, err = magic("search --collection dataset --sortby -datetime")
    assert err == "" and [i["id"] for i in newest_first.items] == sorted(
        (i["id"] for i in newest_first.items),
        key=lambda i: next(x["properties"]["datetime"] for x in newest_first.items
                           if x["id"] == i), reverse=True)

    result, _, _ = magic("search flood")
    html = result._repr_html_()
    assert "Flood detection model" in html and "<table" in html and "<iframe" in html
    assert live_problems(html) == []
    text = repr(result)
    noun = "item" if result.matched == 1 else "items"
    assert text.splitlines()[0] == f"{len(result.items)} of {result.matched} {noun}"
    assert MODEL in text and "<" not in text


def test_show_an_item_card(magic, site):
    result, _, err = magic(f"show {DATASET}")
    assert err == ""
    html = result._repr_html_()
    for expected in ("Floods in two versions", "DVC versions", "v1.1", "v1.0", "Properties"):
        assert expected in html, expected
    text = repr(result)
    assert text.startswith(f"Floods in two versions  [{DATASET} in dataset]")
    assert "DVC versions:" in text and "v1.1" in text

    result, _, _ = magic(f"show {MODEL}")
    html = result._repr_html_()
    assert "flood-unet.onnx" in html and "mlflow:tracking-uri" in html
    assert "<img src=" in html  # the preview thumbnail
    assert live_problems(html) == []


def test_versions_and_pulls_into_the_same_folder(magic, site, monkeypatch):
    result, _, err = magic(f"versions {DATASET}")
    assert err == ""
    assert [row[0] for row in result.rows()] == ["main", "v1.1", "v1.0"]
    assert "v1.1" in result._repr_html_() and repr(result).startswith(f"Versions of {DATASET}")

    work = site.root / "magic-work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    for rev in ("v1.0", "v1.1"):
        result, _, err = magic(f"pull {DATASET} --rev {rev} --to 'my floods'")
        assert result is not None, err
        assert result.path == site.root.resolve() / "magic-work" / "my floods"
        assert repr(result) == f"pulled {DATASET} @ {rev} into {result.path}"
        assert site.dataset.diff_workspace(result.path, rev) == []


def test_track_runs_and_register(magic, site, monkeypatch):
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    result, _, err = magic(f"track {MODEL}")
    assert err == "", err
    assert repr(result).startswith(f"MLflow tracks {MODEL} in experiment 'flood-model (")
    monkeypatch.chdir(site.root)
    with mlflow.start_run() as run:
        mlflow.log_metric("iou", 0.42)
        mlflow.sklearn.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]),
                                 name="weights")
    result, _, err = magic(f"runs {MODEL}")
    assert err == ""
    assert run.info.run_id in repr(result) and "metrics.iou" in repr(result)
    assert "0.42" in result._repr_html_()

    result, _, err = magic(f"register {run.info.run_id} magic-model --item {MODEL} "
                           "--artifact-path weights")
    assert "sharinghub: error" not in err and "Traceback" not in err, err  # MLflow's own log
    assert repr(result) == (f"registered magic-model v1 (models:/magic-model/1); "
                            f"{MODEL} links it")
    result, _, _ = magic(f"show {MODEL}")
    assert "Registered models" in result._repr_html_() and "magic-model" in repr(result)


def test_index_and_crawl_now(magic, site):
    result, _, err = magic("index")
    assert err == "" and result.status["state"] == "idle"
    text = repr(result)
    assert text.startswith("crawl idle; last crawl started") and "dataset" in text
    assert "%sharinghub index --crawl" in result._repr_html_()
    result, _, err = magic("index --crawl")
    assert err == "" and result.status["state"] == "running"


def _map_script(result_html: str) -> str:
    """The script of a search result's map (inside the iframe's ``srcdoc``)."""
    srcdoc = re.search(r'srcdoc="([^"]*)"', result_html)
    assert srcdoc is not None, result_html[:200]
    return html.unescape(srcdoc.group(1))


def _fitted(script: str) -> list[list[float]]:
    """The [[south, west], [north, east]] the map's script fits the view to."""
    found = re.search(r"fitBounds\(\s*(\[\[.*?\]\])", script, re.S)
    assert found is not None, script[-500:]
    return json.loads(found.group(1))


def _calls(fn, *targets) -> dict[str, int]:
    """How often each of ``targets`` (functions) ran during ``fn()``."""
    codes = {t.__code__: t.__name__ for t in targets}
    counts = dict.fromkeys(codes.values(), 0)

    def hook(frame, event, _arg):
        if event == "call" and frame.f_code in codes:
            counts[codes[frame.f_code]] += 1

    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return counts


def test_a_search_builds_neither_the_parser_nor_folium_templates_again(magic):
    """What made a search slow: the parser built for every line, and folium compiling a
    dozen Jinja templates for every map. A later search does neither, and its map still
    shows its own footprints, fitted to them."""
    import jinja2

    magic("search flood")[0]._repr_html_()  # the first one may
    found = []
    counts = _calls(lambda: found.append(magic("search --bbox -1,42,1,43")[0]._repr_html_()),
                    jinja2.Environment.compile, argparse.ArgumentParser.add_argument)
    assert counts == {"compile": 0, "add_argument": 0}
    script = _map_script(found[0])
    assert "Flood detection model" in script and "Sen1Floods11 sample" in script
    assert "0.123456789" not in script and "sharinghub-map-mark" not in script
    assert _fitted(script) == [[41.0, -5.5], [51.3, 9.8]]  # the examples' common extent

    hostile = _map_script(magic("search --bbox 9.9,9.9,10.5,10.5")[0]._repr_html_())
    assert "Flood detection model" not in hostile
    assert _fitted(hostile) == [[10.0, 10.0], [11.0, 11.0]]


def test_one_line_of_an_exception():
    assert one_line(sh.SharingHubError("no item 'x'")) == "no item 'x'"
    assert one_line(ValueError("first\nsecond")) == "ValueError: first"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(RuntimeError("  spaced   out  ")) == "RuntimeError: spaced out"


# --- errors: one line, nothing changed -------------------------------------------------------

def test_errors_are_one_line_and_change_nothing(magic, site, monkeypatch):
    monkeypatch.chdir(site.root)
    before = sorted(p.name for p in site.root.iterdir())
    cases = [
        ("show no/such", "no item 'no/such'"),
        ("versions no/such", "no/such"),
        ("pull no/such --to x", "no/such"),
        ("search --bbox 1,2,3", "bbox"),
        ("search --bbox 1,x,3,4", "bbox"),
        ("search --filter 'title ==== 3'", "filter"),
        (f"pull {DATASET} --rev v9.9 --to failed-pull", "failed"),
        (f"track {DATASET}", "no MLflow experiment"),
        ("search 'unbalanced", "cannot parse"),
        ("bogus", "invalid choice"),
        ("pull", "required"),
        ("search --limit 0", "--limit"),
    ]
    for line, expected in cases:
        result, _, err = magic(line)
        assert result is None, line
        assert expected in _error_line(err), (line, err)
    assert sorted(p.name for p in site.root.iterdir()) == before
    # through run_cell too: no exception reaches IPython
    shell = InteractiveShell.instance()
    outcome = shell.run_cell("%sharinghub show no/such")
    assert outcome.success and outcome.result is None


def test_an_unreachable_server_is_one_line(site, tmp_path):
    code = ("from IPython.core.interactiveshell import InteractiveShell\n"
            "s = InteractiveShell.instance()\ns.run_line_magic('load_ext', 'sharinghub_lab')\n"
            "r = s.run_cell('%sharinghub search flood')\nprint('success', r.success)\n")
    env = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith("SHARING")},
           "SHARINGHUB_URL": f"http://127.0.0.1:{free_port()}/", "SHARINGHUB_TOKEN": "x",
           "JUPYTER_RUNTIME_DIR": str(tmp_path), "IPYTHONDIR": str(tmp_path / "ipython")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).parent.parent, timeout=120)
    assert "success True" in done.stdout
    assert "cannot reach the Jupyter server" in _error_line(done.stderr)


# --- hostile values --------------------------------------------------------------------------

def test_a_hostile_project_renders_as_text(magic):
    served, _, _ = magic(f"show {HOSTILE}")
    raw = json.dumps(served.item)
    # the server does serve the hostile values: what follows is the renderer's doing
    assert "<script>" in raw and "javascript:" in raw and "onerror=" in raw
    html = served._repr_html_()
    assert live_problems(html) == []
    assert "&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt;" in html
    assert "onerror=&quot;alert(&#x27;body&#x27;)&quot;" in html

    for line in ("search --bbox 9.9,9.9,10.5,10.5", "search hostile",
                 "search --collection dataset"):
        result, _, err = magic(line)
        assert err == "" and HOSTILE in {i["id"] for i in result.items}, line
        html = result._repr_html_()
        assert "<iframe" in html, line
        assert live_problems(html) == [], line
        assert "&lt;script&gt;" in html
