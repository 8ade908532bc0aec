"""Makes the README's screenshot (docs/images/demo.png): a fresh demo workspace, its three
notebooks run by nbclient (so they open with their outputs), then JupyterLab in headless
Debian chromium on the prediction, with the SharingHub sidebar open on a search.

    .venv/bin/python scripts/readme_screenshot.py [--out docs/images/demo.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.demo_proc import run_notebook, start_demo, stop_demo
from tests.support.threaded import free_port

CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="docs/images/demo.png")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        demo = start_demo(Path(tmp) / "ws", Path(tmp), free_port())
        try:
            for name in ("01-discover.ipynb", "02-train.ipynb", "03-predict.ipynb"):
                notebook, _ = run_notebook(demo, name)
                nbformat.write(notebook, demo.root / name)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(f"{demo.url}lab/tree/03-predict.ipynb?token={demo.token}")
                page.locator(".jp-Notebook:visible").first.wait_for()
                page.locator('.jp-SideBar [data-id="sharinghub-sidebar"]').click()
                sidebar = page.locator("#sharinghub-sidebar")
                sidebar.wait_for(state="visible")
                page.fill("#sharinghub-sidebar .jp-SharingHub-search", "flood")
                sidebar.locator('.jp-SharingHub-card[data-item="local/flood-model"]').wait_for()
                news = page.get_by_role("button", name="No")  # JupyterLab's news prompt
                if news.count():
                    news.first.click()
                # the notebook at its figure: input, prediction and truth
                page.locator(".jp-Notebook:visible .jp-Cell", has_text="fig.suptitle").first \
                    .scroll_into_view_if_needed()
                page.wait_for_timeout(800)  # let the scroll and the card images settle
                page.screenshot(path=args.out)
                browser.close()
        finally:
            stop_demo(demo)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
