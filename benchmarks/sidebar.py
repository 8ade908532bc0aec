"""Sidebar benchmark: JupyterLab's SharingHub sidebar, first results after typing, measured
in a real page (headless Debian chromium driven by Playwright) against a real Jupyter
server over ``benchmarks/search.py``'s synthetic indexes (built or reused from its
``--workdir``, served as is with ``--SharingHub.index_url``).

For each size, 20 distinct queries (a word from a different item's title each, so every
query has results; none asked twice, so the store's result cache never answers): the
search box holds all but the last character, the last one is a real keystroke, and the
page records with ``performance.now()``:

- keystroke → first card of the new results in the DOM (what the user waits for; it
  includes the sidebar's 300 ms debounce),
- search request sent → first card (server + render, from the request's resource timing),
- of which the server's answer (request start → response end) and the render (response end
  → first card).

Median and p95 of each; the wheel's size (``pip wheel --no-deps``, the bundle included).
The issue sets no target: the script exits non-zero only when a query shows no cards.

    .venv/bin/python benchmarks/sidebar.py [--sizes 2000,100000] [--queries 20]
        [--workdir DIR] [--skip-wheel]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import search as search_bench  # noqa: E402  (its index builder and server, not a copy)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SIDEBAR = "#sharinghub-sidebar"

#: in the page (kept in ``window.__sidebarTiming``): arms the clock on the next keydown in
#: the search box and resolves with the timings once the answer's first card is in the DOM
MEASURE_JS = """
() => { window.__sidebarTiming = new Promise(resolve => {
  const root = document.querySelector('#sharinghub-sidebar');
  const input = root.querySelector('.jp-SharingHub-search');
  const list = root.querySelector('.jp-SharingHub-results');
  const count = root.querySelector('.jp-SharingHub-count');
  let t0 = null, searching = false;
  input.addEventListener('keydown', () => { t0 = performance.now(); }, {capture: true, once: true});
  const observer = new MutationObserver(() => {
    if (t0 === null) return;
    if (count.textContent === 'Searching…') { searching = true; return; }
    if (!searching || !list.firstElementChild) return;
    const shown = performance.now();
    observer.disconnect();
    const request = performance.getEntriesByType('resource').filter(
      e => e.name.includes('/sharinghub/api/stac/search') && e.startTime >= t0)[0];
    resolve({t0, shown, requestStart: request ? request.startTime : null,
             responseEnd: request ? request.responseEnd : null,
             cards: list.children.length, count: count.textContent});
  });
  observer.observe(list, {childList: true});
  observer.observe(count, {childList: true, characterData: true, subtree: true});
}); }
"""


def queries(corpus: search_bench.Corpus, n: int, seed: int = 11) -> list[str]:
    """``n`` distinct words, each from the title of a different item (so each has results)."""
    rng = random.Random(seed)
    words: list[str] = []
    for item in rng.sample(corpus.items, k=min(len(corpus.items), 50 * n)):
        word = rng.choice(item["properties"]["title"].lower().split())
        if len(word) >= 4 and word.isalpha() and word not in words:
            words.append(word)
        if len(words) == n:
            return words
    raise RuntimeError(f"fewer than {n} distinct title words")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def measure_size(size: int, n: int, workdir: Path) -> dict[str, list[float]]:
    """The timings (ms) of ``n`` searches typed into the sidebar at ``size`` items."""
    import requests
    from playwright.sync_api import sync_playwright

    corpus = search_bench.Corpus(size, seed=1)
    index, built = search_bench.cached_index(corpus, workdir)
    how = "cached" if built is None else f"built in {built:.0f} s"
    print(f"{size:,} items: index {index} ({how})", flush=True)
    words = queries(corpus, n)
    run_dir = workdir / f"sidebar-{size}"
    shutil.rmtree(run_dir, ignore_errors=True)
    settings = run_dir / "lab-settings"
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}))
    os.environ["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    os.environ["JUPYTERLAB_WORKSPACES_DIR"] = str(run_dir / "lab-workspaces")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    timings: dict[str, list[float]] = {"keystroke": [], "request": [], "server": [],
                                       "render": []}
    with search_bench.JupyterServer(index, run_dir) as server, sync_playwright() as p:
        session = requests.Session()
        session.headers["Authorization"] = f"token {server.token}"
        server.wait(session)
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{server.url}lab?token={server.token}")
            page.wait_for_function("() => document.querySelector('.jp-LabShell')")
            page.locator(f'.jp-SideBar [data-id="{SIDEBAR[1:]}"]').click()
            count = page.locator(f"{SIDEBAR} .jp-SharingHub-count")
            page.wait_for_function(  # the first (empty) search has been drawn
                f"() => / results?$/.test(document.querySelector('{SIDEBAR} "
                ".jp-SharingHub-count').textContent)")
            box = page.locator(f"{SIDEBAR} .jp-SharingHub-search")
            for word in words:
                box.evaluate("(input, text) => { input.value = text; }", word[:-1])
                box.focus()
                page.evaluate(MEASURE_JS)
                page.keyboard.press(word[-1])
                t = page.evaluate("() => window.__sidebarTiming")
                if not t["cards"] or t["requestStart"] is None:
                    raise RuntimeError(f"{word!r}: no cards or no search request: {t}")
                timings["keystroke"].append(t["shown"] - t["t0"])
                timings["request"].append(t["shown"] - t["requestStart"])
                timings["server"].append(t["responseEnd"] - t["requestStart"])
                timings["render"].append(t["shown"] - t["responseEnd"])
                page.wait_for_function(
                    f"() => document.querySelector('{SIDEBAR} .jp-SharingHub-count')"
                    ".textContent !== 'Searching…'")
            assert count.inner_text()
        finally:
            browser.close()
    return timings


def wheel_size(tmp: Path) -> tuple[int, int]:
    """(wheel bytes, labextension bytes inside it) of a wheel built from this checkout."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp),
                    str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp.glob("sharinghub_lab-*.whl")
    with zipfile.ZipFile(wheel) as z:
        lab = sum(i.file_size for i in z.infolist()
                  if "labextensions/sharinghub-lab/" in i.filename)
    return wheel.stat().st_size, lab


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="2000,100000")
    p.add_argument("--queries", type=int, default=20)
    p.add_argument("--workdir", type=Path, default=None,
                   help="where indexes are cached (default: search.py's folder)")
    p.add_argument("--skip-wheel", action="store_true")
    args = p.parse_args()
    workdir = args.workdir or Path(tempfile.gettempdir()) / "sharinghub-search-bench"
    workdir.mkdir(parents=True, exist_ok=True)

    rows = []
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        t = measure_size(size, args.queries, workdir)
        rows.append((size, t))
    print(f"\nsidebar, first results after typing ({args.queries} distinct queries; ms, "
          "median / p95)")
    print(f"{'items':>9}  {'keystroke→card':>16}  {'request→card':>14}  {'server':>13}  "
          f"{'render':>13}")
    for size, t in rows:
        cells = [f"{statistics.median(t[k]):6.1f} / {percentile(t[k], 95):6.1f}"
                 for k in ("keystroke", "request", "server", "render")]
        print(f"{size:>9,}  {cells[0]:>16}  {cells[1]:>14}  {cells[2]:>13}  {cells[3]:>13}")
    print("keystroke→card includes the sidebar's 300 ms debounce")

    if not args.skip_wheel:
        with tempfile.TemporaryDirectory() as tmp:
            total, lab = wheel_size(Path(tmp))
        print(f"\nwheel: {total / 1e6:.2f} MB ({lab / 1e6:.2f} MB of JupyterLab extension, "
              "uncompressed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
