"""Publishing from the notebook against a live Jupyter server with the extension (a
subprocess, local projects, DVC's local remote): ``sh.new_project``/``sh.publish``/
``sh.edit_metadata``, ``%sharinghub new|publish`` in a real IPython ``InteractiveShell``
and the Publish panel driven headlessly. A new dataset project, a version published from a
folder, listed by ``versions`` and pulled elsewhere byte for byte; every refusal one line
that changes nothing; hostile titles and descriptions rendered inert."""

from __future__ import annotations

import random
import shlex
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from IPython.core.interactiveshell import InteractiveShell

import sharinghub_lab as sh
from sharinghub_lab import api
from sharinghub_lab.magics import COMMANDS
from sharinghub_lab.widgets.common import folder_choices
from sharinghub_lab.widgets.publish import check_folder
from tests.support.html_check import live_problems
from tests.support.notebook_site import DATASET, HOSTILE, TOKEN, notebook_site
from tests.support.polling import poll

HOSTILE_TITLE = "<script>alert('t')</script><img src=x onerror=alert('i')>"
HOSTILE_TEXT = "<a href=\"javascript:alert('d')\">x</a> <b onmouseover=alert('b')>b</b>"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with notebook_site(tmp_path_factory.mktemp("publish")) as site:
        yield site


@pytest.fixture
def work(site, monkeypatch) -> Path:
    """A kernel configured by environment variables, working in a folder below the root."""
    site.configure_kernel(monkeypatch)
    folder = site.root / "publish-work"
    folder.mkdir(exist_ok=True)
    monkeypatch.chdir(folder)
    sh.connect()
    return folder


@pytest.fixture(scope="module")
def shell():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "sharinghub_lab")
    return shell


@pytest.fixture
def magic(work, shell, capsys):
    """``magic(line)`` → (result, stdout, stderr)."""
    capsys.readouterr()

    def run(line: str):
        result = shell.run_line_magic("sharinghub", line)
        out, err = capsys.readouterr()
        return result, out, err

    return run


def make_folder(path: Path, seed: int, n: int = 5) -> dict[str, bytes]:
    """A folder of ``n`` files (one in a subfolder, binary contents): what it holds."""
    rng = random.Random(seed)
    files = {f"tile-{i}.bin": rng.randbytes(1000 + 97 * i) for i in range(n - 1)}
    files["meta/info.json"] = f'{{"seed": {seed}}}\n'.encode()
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return files


def tree(path: Path) -> dict[str, bytes]:
    """Every file below ``path`` (DVC's own files left out) with its bytes."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def tags(item_id: str) -> list[str]:
    return [v["rev"] for v in sh.versions(item_id) if v["kind"] == "tag"]


def pulled_outputs(item_id: str, rev: str, to: str) -> dict[str, bytes]:
    """Pull ``rev`` into ``to`` and read back its DVC outputs (what ``tree`` gives of
    them)."""
    (version,) = [v for v in sh.versions(item_id) if v["rev"] == rev]
    outputs = {o["path"] for o in version["outputs"]}
    path = sh.pull(item_id, rev=rev, to=to)
    return {name: data for name, data in tree(path).items()
            if name in outputs or name.split("/", 1)[0] in outputs}


def error_line(err: str) -> str:
    """The one error line (a job's progress bar may come before it, on its own lines)."""
    *before, last = err.strip().splitlines()
    assert last.startswith("sharinghub: error: "), err
    assert all(line.startswith(("publish ", "pull ")) for line in before), err
    assert "Traceback" not in err and err.count("sharinghub: error") == 1
    return last


def text_of(document: str) -> str:
    parts: list[str] = []
    parser = HTMLParser()
    parser.handle_data = parts.append  # type: ignore[method-assign]
    parser.feed(document)
    parser.close()
    return "".join(parts)


# --- the Python API --------------------------------------------------------------------------

def test_new_project_publish_versions_and_pull_elsewhere(work, site):
    item = sh.new_project("dataset", "api-floods", title="Floods published from a notebook",
                          description="Tiles of a flood, published by the API test.")
    assert type(item).__name__ == "Item" and item.collection_id == "dataset"
    assert item.id.endswith("/api-floods")
    assert item.properties["title"] == "Floods published from a notebook"
    assert [i.id for i in sh.search("published from a notebook")] == [item.id]  # at once

    v1 = make_folder(work / "tiles", seed=1)
    job = sh.publish("tiles", item.id, "v1.0", message="first tiles", wait=False)
    assert isinstance(job, sh.PublishJob)
    seen: list[dict] = []
    version = job.wait(progress=False, on_status=seen.append)
    assert seen[-1]["state"] == "done" and seen[-1]["kind"] == "publish"
    assert seen[-1]["item"] == item.id and seen[-1]["rev"] == "v1.0"
    assert {s["state"] for s in seen} <= {"queued", "cloning", "pulling", "pushing", "done"}
    assert version["item"] == item.id and version["rev"] == "v1.0"
    assert version["kind"] == "tag" and len(version["commit"]) == 40
    assert tags(item.id) == ["v1.0"]

    # pulled elsewhere: the same bytes
    assert pulled_outputs(item.id, "v1.0", "elsewhere/v1") == v1

    # a second version, from the same folder (now a working copy of the item), changed
    assert (work / "tiles" / ".git").is_dir()
    v2 = {**v1, "tile-0.bin": b"changed", "meta/more.txt": b"one more\n"}
    for name in ("tile-0.bin", "meta/more.txt"):
        (work / "tiles" / name).write_bytes(v2[name])
    version = sh.publish(work / "tiles", item.id, "v1.1")  # a Path, absolute
    assert version["rev"] == "v1.1"
    assert tags(item.id) == ["v1.1", "v1.0"]
    assert pulled_outputs(item.id, "v1.1", "elsewhere/v2") == v2
    assert pulled_outputs(item.id, "v1.0", "elsewhere/v1-again") == v1
    with pytest.raises(sh.SharingHubError) as info:
        job.cancel()
    assert info.value.status == 409


def big_folder(path: Path, n: int = 300, size: int = 100_000) -> dict[str, bytes]:
    """A folder whose publish takes seconds (30 MB in 300 files)."""
    rng = random.Random(n)
    path.mkdir()
    files = {f"big-{i:03d}.bin": rng.randbytes(size) for i in range(n)}
    for name, data in files.items():
        (path / name).write_bytes(data)
    return files


def test_ctrl_c_while_a_publish_waits_cancels_it_and_leaves_nothing(work):
    item = sh.new_project("dataset", "interrupted").id
    files = big_folder(work / "interrupted")
    before = sh.versions(item)
    job = sh.publish("interrupted", item, "v1.0", wait=False)
    seen: list[dict] = []

    def press_ctrl_c(state: dict) -> None:
        seen.append(state)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job.wait(progress=False, on_status=press_ctrl_c)
    assert seen[-1]["state"] not in ("done", "failed", "cancelled")
    final = poll(lambda: (lambda s: s if s["state"] in ("done", "failed", "cancelled")
                          else None)(job.status()), "the job to end", 120)
    assert final["state"] == "cancelled", final
    assert sh.versions(item) == before
    assert tree(work / "interrupted") == files  # the data, as it was; no working copy
    assert not (work / "interrupted" / ".git").exists()


def test_refusals_are_one_line_and_change_nothing(work, site):
    item = sh.new_project("dataset", "refusals").id
    make_folder(work / "refusals", seed=2)
    sh.publish("refusals", item, "v1.0")
    before = sh.versions(item)
    (work / "empty").mkdir(exist_ok=True)
    outside = site.root.parent / "outside-the-root"
    outside.mkdir(exist_ok=True)
    (outside / "a.txt").write_text("a")
    cases = [
        (("refusals", item, "v1.0"), "v1.0"),  # the tag exists
        (("empty", item, "v2.0"), "empty"),
        (("refusals", "no/such", "v2.0"), "no/such"),
        ((str(outside), item, "v2.0"), "outside the Jupyter root"),
        (("../../outside-the-root", item, "v2.0"), "outside the Jupyter root"),
        (("missing", item, "v2.0"), "no file or folder"),
    ]
    for args, expected in cases:
        with pytest.raises(sh.SharingHubError) as info:
            sh.publish(*args)
        message = str(info.value)
        assert expected in message and "\n" not in message, (args, message)
    assert sh.versions(item) == before

    for kwargs, expected in (({"category": "dataset", "name": "refusals"}, "refusals"),
                             ({"category": "nothing", "name": "x"}, "nothing")):
        with pytest.raises(sh.SharingHubError) as info:
            sh.new_project(**kwargs)
        assert expected in str(info.value) and "\n" not in str(info.value), kwargs


def test_edit_metadata_validated_before_it_is_committed(work):
    item = sh.new_project("dataset", "meta-edit", title="Before the edit").id
    meta = {"title": "After the edit", "description": "Edited from a notebook.",
            "topics": ["sharinghub:dataset"], "keywords": ["edited"], "license": "CC-BY-4.0"}
    changed = sh.edit_metadata(item, meta)
    assert changed.id == item and changed.properties["title"] == "After the edit"
    assert sh.item(item).properties["keywords"] == ["edited"]
    assert [i.id for i in sh.search("After the edit")] == [item]
    for bad in ({**meta, "title": "Never", "extent": {"spatial": "not a box"}},
                {"title": "Never"}):  # (a local project's topics are in its front matter)
        with pytest.raises(sh.SharingHubError) as info:
            sh.edit_metadata(item, bad)
        assert info.value.status == 400 and "\n" not in str(info.value), bad
    assert sh.item(item).properties["title"] == "After the edit"
    with pytest.raises(sh.SharingHubError, match="must be a dict"):
        sh.edit_metadata(item, "title: x")  # type: ignore[arg-type]


def test_permissions_of_a_project_and_of_a_folder_without_git(work):
    item = sh.new_project("dataset", "allowed").id
    answer = sh.publish_permissions(item)
    assert answer["item"] == item and answer["can_publish"] is True
    answer = sh.publish_permissions(HOSTILE)  # a README in a folder: no repository
    assert answer["can_publish"] is False and answer["reason"]


# --- the magics ------------------------------------------------------------------------------

def test_new_and_publish_have_help(magic):
    _, overview, _ = magic("--help")
    for command in ("new", "publish"):
        assert command in COMMANDS and command in overview
        result, out, err = magic(f"{command} --help")
        assert result is None and err == "" and out.startswith(f"usage: %sharinghub {command}")


def test_new_and_publish_magics_in_text_and_html(magic, work, site):
    line = (f"new dataset magic-floods --title {shlex.quote(HOSTILE_TITLE)} "
            f"--description {shlex.quote(HOSTILE_TEXT)}")
    result, _, err = magic(line)
    assert result is not None, err
    item = result.item_id
    assert item.endswith("/magic-floods")
    text = repr(result)
    assert text.splitlines()[0] == f"created {item} in dataset"
    assert text.splitlines()[1] == f"next: %sharinghub publish FOLDER --item {item} --version v1.0"
    assert HOSTILE_TITLE in text  # the title as the user wrote it
    html = result._repr_html_()
    assert live_problems(html) == [], html
    assert HOSTILE_TITLE in text_of(html) and "Properties" in html
    # the same card as show
    shown, _, _ = magic(f"show {item}")
    assert result.card._repr_html_() == shown._repr_html_()

    files = make_folder(work / "magic tiles", seed=3)
    result, _, err = magic(f"publish 'magic tiles' --item {item} --version v1.0 "
                           "--message 'tiles from a magic'")
    assert result is not None, err
    assert "sharinghub: error" not in err
    text = repr(result)
    assert text.startswith(f"published {item} v1.0 (commit ")
    assert f"{len(files)} files" in text
    assert live_problems(result._repr_html_()) == []
    assert text.splitlines()[0] in text_of(result._repr_html_())
    versions, _, _ = magic(f"versions {item}")
    assert "v1.0" in [row[0] for row in versions.rows()]


def test_magic_errors_are_one_line_and_change_nothing(magic, work, site):
    result, _, err = magic("new dataset magic-errors")
    item = result.item_id
    make_folder(work / "magic-errors", seed=4)
    magic(f"publish magic-errors --item {item} --version v1.0")
    (work / "magic-empty").mkdir(exist_ok=True)
    before = sh.versions(item)
    listing = sorted(p.name for p in site.root.iterdir())
    cases = [
        (f"publish magic-errors --item {item} --version v1.0", "v1.0"),
        (f"publish magic-empty --item {item} --version v2.0", "empty"),
        ("publish magic-errors --item no/such --version v2.0", "no/such"),
        (f"publish {site.root.parent} --item {item} --version v2.0", "outside the Jupyter root"),
        (f"publish nowhere --item {item} --version v2.0", "no file or folder"),
        (f"publish magic-errors --item {item}", "--version"),
        ("new dataset magic-errors", "magic-errors"),
        ("new bogus x", "invalid choice"),
        ("new dataset", "required"),
        ("new dataset 'unbalanced", "cannot parse"),
    ]
    for line, expected in cases:
        result, _, err = magic(line)
        assert result is None, line
        assert expected in error_line(err), (line, err)
    assert sh.versions(item) == before
    assert sorted(p.name for p in site.root.iterdir()) == listing


# --- the panel -------------------------------------------------------------------------------

def settle(panel) -> None:
    poll(lambda: not panel.busy, "the panel's background work", 120)


@pytest.fixture
def panel(work):
    found = sh.panel()
    settle(found)
    return found


def test_the_publish_tab_lists_folders_and_dataset_items(panel, work):
    make_folder(work / "listed" / "inner", seed=5)
    (work / ".hidden").mkdir(exist_ok=True)
    assert panel.get_title(3) == "Publish"
    form = panel.publish
    assert {v for _, v in form.item.options} >= {DATASET, HOSTILE}
    assert all(v for _, v in form.item.options)
    form.reload_button.click()
    settle(panel)
    assert {"listed", "listed/inner"} <= set(form.folder.options)
    assert not any(o.startswith(".hidden") for o in form.folder.options)
    assert list(form.folder.options) == folder_choices(work)
    form.folder.value = "nowhere"
    assert "no folder nowhere" in text_of(form.folder_note.value)
    form.folder.value = "listed"
    assert "listed: a folder" in text_of(form.folder_note.value)
    assert check_folder("", work)[0] is False


def test_new_project_then_publish_from_the_panel(panel, work, site):
    form = panel.publish
    form.category.value = "dataset"
    form.name.value = "panel-floods"
    form.title.value = HOSTILE_TITLE
    form.description.value = HOSTILE_TEXT
    form.create_button.click()
    settle(panel)
    assert not form.status.is_error, form.status.text
    assert live_problems(form.created.value) == []
    assert HOSTILE_TITLE in text_of(form.created.value)
    item = form.item.value
    assert item.endswith("/panel-floods")  # the new dataset is the chosen item
    assert form.status.text == f"created {item} in dataset"
    assert "you can publish" in text_of(form.permission.value)
    assert not form.publish_button.disabled

    files = make_folder(work / "panel tiles", seed=6)
    form.reload_button.click()
    settle(panel)
    form.folder.value = "panel tiles"
    form.version.value = "v1.0"
    form.message.value = "from the panel"
    form.publish_button.click()
    assert form.publish_button.disabled  # while it runs
    settle(panel)
    assert not form.status.is_error, form.status.text
    assert form.status.text.startswith(f"published {item} v1.0 (commit ")
    assert form.progress.bar_style == "success" and form.progress.value == form.progress.max
    assert text_of(form.result.value).startswith(f"published {item} v1.0")
    assert live_problems(form.result.value) == []
    assert form.cancel_button.disabled and not form.publish_button.disabled
    # on the server
    assert tags(item) == ["v1.0"]
    assert pulled_outputs(item, "v1.0", "panel-pulled") == files

    # the same version again: an error line, nothing published
    form.publish_button.click()
    settle(panel)
    assert form.status.is_error and "v1.0" in form.status.text
    assert "\n" not in form.status.text and form.progress.bar_style == "danger"
    assert tags(item) == ["v1.0"]
    # an empty folder
    (work / "panel-empty").mkdir(exist_ok=True)
    form.folder.value = "panel-empty"
    assert "is empty" in text_of(form.folder_note.value)
    form.version.value = "v2.0"
    form.publish_button.click()
    settle(panel)
    assert form.status.is_error and "empty" in form.status.text
    assert tags(item) == ["v1.0"]


def test_cancel_in_the_panel(panel, work):
    form = panel.publish
    form.name.value = "panel-cancel"
    form.create_button.click()
    settle(panel)
    item = form.item.value
    assert item.endswith("/panel-cancel") and not form.publish_button.disabled
    files = big_folder(work / "panel-big")
    form.folder.value, form.version.value = "panel-big", "v1.0"
    assert form.cancel_button.disabled
    form.publish_button.click()
    poll(lambda: form.job is not None or not panel.busy, "the publish job to start")
    assert not form.cancel_button.disabled, form.status.text
    form.cancel_button.click()
    settle(panel)
    assert form.status.is_error and "cancelled" in form.status.text, form.status.text
    assert form.progress.bar_style == "danger" and form.result.value == ""
    assert form.cancel_button.disabled and not form.publish_button.disabled
    assert tags(item) == []
    assert tree(work / "panel-big") == files and not (work / "panel-big" / ".git").exists()


def test_the_panel_checks_its_fields_before_asking_the_server(panel):
    form = panel.publish
    form.name.value = ""
    form.create_button.click()
    settle(panel)
    assert form.status.is_error and "name" in form.status.text
    form.item.value = DATASET
    settle(panel)
    form.folder.value = ""
    form.version.value = "v9.0"
    form.publish_button.click()
    settle(panel)
    assert form.status.is_error and "folder" in form.status.text
    assert "v9.0" not in tags(DATASET)


def test_publish_is_disabled_with_the_reason_where_the_user_cannot(panel):
    form = panel.publish
    form.item.value = HOSTILE
    settle(panel)
    assert form.allowed is False and form.publish_button.disabled
    shown = text_of(form.permission.value)
    assert shown.startswith(f"cannot publish to {HOSTILE}: ") and len(shown) > 30
    assert live_problems(form.permission.value) == []
    form.item.value = DATASET
    settle(panel)
    assert form.allowed is (sh.publish_permissions(DATASET)["can_publish"] is True)
    assert form.publish_button.disabled is not form.allowed


def test_the_permissions_route_answers_the_panel_and_the_api_alike(site, work):
    r = requests.get(f"{site.url}sharinghub/api/publish/permissions", params={"item": HOSTILE},
                     headers={"Authorization": f"token {TOKEN}"}, timeout=10)
    assert r.status_code == 200 and r.json() == api.publish_permissions(HOSTILE)
