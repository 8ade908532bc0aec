"""``sharinghub-lab demo``: JupyterLab on the embedded default, with example projects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_demo(*, port: int, open_browser: bool, folder: str | None) -> int:
    from .catalog.categories import DEFAULT_CATEGORIES
    from .crawler import Crawler
    from .examples import make_examples
    from .index.store import open_store
    from .sources.local import LocalSource

    root = Path(folder or "sharinghub-demo").resolve()
    projects, remote = make_examples(root)
    index_url = f"sqlite://{root / '.sharinghub' / 'index.sqlite'}"
    store = open_store(index_url)
    try:
        status = Crawler(store, [LocalSource(projects)], DEFAULT_CATEGORIES).crawl()
    finally:
        store.close()
    counts = ", ".join(f"{n} {cid}" for cid, n in sorted(status.items.items()))
    print(f"sharinghub-lab demo in {root}: {counts} indexed; DVC remote {remote}", flush=True)
    env = {**os.environ, "SHARINGHUB_LOCAL_PROJECTS": str(projects),
           "SHARINGHUB_INDEX_URL": index_url}
    cmd = [sys.executable, "-m", "jupyterlab", f"--port={port}",
           f"--ServerApp.root_dir={root}"]
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
