"""The ``sharinghub-lab`` command line: ``index`` crawls into an index, ``demo`` starts
JupyterLab on the embedded default."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .catalog.categories import DEFAULT_CATEGORIES


def default_index_url() -> str:
    from jupyter_core.paths import jupyter_data_dir

    return f"sqlite://{Path(jupyter_data_dir()) / 'sharinghub' / 'index.sqlite'}"


def gitlab_token_from_env() -> str:
    return os.environ.get("SHARINGHUB_GITLAB_TOKEN") or os.environ.get("GITLAB_TOKEN") or ""


def _index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .crawler import Crawler
    from .index.store import open_store
    from .sources.gitlab import GitLabSource
    from .sources.local import LocalSource

    for folder in args.local or []:
        problem = _local_folder_problem(Path(folder).expanduser())
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    sources: list = []
    if args.gitlab_url:
        options = {"workers": args.workers} if args.workers is not None else {}
        sources.append(GitLabSource(args.gitlab_url, args.token or gitlab_token_from_env(),
                                    max_retries=args.retries, **options))
    sources.extend(LocalSource(d) for d in args.local or [])
    index_url = args.index or os.environ.get("SHARINGHUB_INDEX_URL") or default_index_url()
    try:
        store = open_store(index_url)
    except (OSError, ValueError, NotImplementedError) as exc:
        print(f"error: cannot open index {index_url}: {exc}", file=sys.stderr)
        return 2
    bar = tqdm(total=None, unit="project", desc="crawling", disable=args.quiet,
               file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    try:
        status = Crawler(store, sources, DEFAULT_CATEGORIES).crawl(progress)
    except KeyboardInterrupt:
        bar.close()
        print("interrupted: the index keeps what was crawled so far", file=sys.stderr)
        return 130
    finally:
        store.close()
    bar.close()
    print(f"index: {index_url}")
    for cid, count in sorted(status.items.items()):
        print(f"  {cid}: {count} item{'s' if count != 1 else ''}")
    total = sum(status.items.values())
    print(f"  total: {total} item{'s' if total != 1 else ''}" if status.items else "  no items")
    for report in status.sources:
        line = (f"{report.source}: {report.listed} listed, {report.fetched} fetched, "
                f"{report.unchanged} unchanged, {report.deleted} removed")
        print(line if report.ok else f"{report.source}: FAILED: {report.error}")
    project_errors = [e for e in status.errors if e.project]
    if project_errors:
        print(f"{len(project_errors)} problem{'s' if len(project_errors) != 1 else ''}:")
        for e in project_errors:
            print(f"  {e.project}: {e.message}")
    return 0 if status.ok else 1


def _local_folder_problem(folder: Path) -> str | None:
    """Why ``--local folder`` would index nothing, in one line (None: it holds projects)."""
    from .sources.local import folders_with_projects, project_dirs

    if not folder.is_dir():
        return f"--local {folder}: no such folder"
    if project_dirs(folder):
        return None
    hint = ""
    deeper = folders_with_projects(folder)
    if deeper:
        hint = "; did you mean " + " or ".join(f"--local {d}" for d in deeper[:3]) + "?"
    return (f"--local {folder}: no project found there (a project is a subfolder with a "
            f"README.md){hint}")


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(port=args.port, open_browser=not args.no_browser, folder=args.dir,
                    prepare_only=args.prepare_only)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sharinghub-lab", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    idx = sub.add_parser("index", help="crawl GitLab and/or local project folders into an index")
    idx.add_argument("--gitlab-url", help="GitLab instance to crawl")
    idx.add_argument("--token", help="GitLab token (default: $SHARINGHUB_GITLAB_TOKEN, "
                                     "then $GITLAB_TOKEN)")
    idx.add_argument("--local", action="append", metavar="DIR",
                     help="a folder whose subfolders are projects (repeatable)")
    idx.add_argument("--index", metavar="URL", help="index URL (sqlite:///path); default: "
                                                    "$SHARINGHUB_INDEX_URL or the Jupyter data dir")
    idx.add_argument("--workers", type=int, default=None,
                     help="parallel GitLab requests (default: the server's, 16)")
    idx.add_argument("--retries", type=int, default=6,
                     help="retries of a failing GitLab request (5xx, 429, timeouts)")
    idx.add_argument("--quiet", action="store_true", help="no progress bar")
    idx.set_defaults(func=_index)

    demo = sub.add_parser("demo", help="the flood-detection scenario: JupyterLab on the "
                                       "embedded default, with example projects and notebooks")
    demo.add_argument("--port", type=int, default=None,
                      help="JupyterLab's port (default: 8888, or the next free one)")
    demo.add_argument("--no-browser", action="store_true", help="print the URL, open nothing")
    demo.add_argument("--dir", default=None, help="workspace folder (default: ./sharinghub-demo)")
    demo.add_argument("--prepare-only", action="store_true",
                      help="make the workspace and its index, start nothing (Binder's start)")
    demo.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.command == "index" and not (args.gitlab_url or args.local):
        p.error("index needs --gitlab-url URL or --local DIR")
    if args.command == "index" and args.workers is not None and args.workers < 1:
        p.error("--workers must be at least 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
