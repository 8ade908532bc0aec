"""``%sharinghub <command>``: the catalog, DVC pulls and publishes, and MLflow from a
notebook cell.

Arguments are split POSIX-style (``shlex``: quotes work) and parsed by argparse; every
command has ``--help``. Results are objects from :mod:`sharinghub_lab.render` (HTML in a
notebook, text in a terminal). Errors are one line on stderr, ``sharinghub: error: ...``:
never a traceback, and argparse's exits never leave the magic.
"""

from __future__ import annotations

import argparse
import functools
import shlex
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from IPython.core.magic import Magics, line_magic, magics_class

from .errors import SharingHubError, one_line


class _HelpShown(Exception):
    """argparse printed the help (or usage) and would have exited."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise SharingHubError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _HelpShown


@functools.cache
def _parser() -> _Parser:
    """The parser of every command, built once: building it costs more than a search."""
    from .api import CATEGORIES

    parser = _Parser(prog="%sharinghub", description="The SharingHub catalog, DVC datasets "
                     "and MLflow runs of this Jupyter server.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("search", help="search the catalog")
    p.add_argument("text", nargs="*", help="free text (one phrase)")
    p.add_argument("--collection", action="append", help="a collection (repeatable)")
    p.add_argument("--bbox", help="W,S,E,N")
    p.add_argument("--datetime", help="an instant or START/END (.. for an open end)")
    p.add_argument("--filter", help="a CQL2 text filter")
    p.add_argument("--sortby", help="fields, - for descending: -datetime,title")
    p.add_argument("--limit", type=int, default=20, help="at most this many items")
    p.add_argument("--no-map", action="store_true", help="no map of the footprints")

    p = sub.add_parser("show", help="one item: description, assets, versions, models")
    p.add_argument("item")
    p = sub.add_parser("pull", help="pull a dataset's DVC data")
    p.add_argument("item")
    p.add_argument("--rev", help="a tag, branch or commit (default: the default branch)")
    p.add_argument("--to", help="a folder relative to this kernel's working directory")
    p = sub.add_parser("versions", help="a dataset's DVC versions")
    p.add_argument("item")
    p = sub.add_parser("track", help="point MLflow at the item's experiment")
    p.add_argument("item")
    p = sub.add_parser("runs", help="the runs of the item's experiment")
    p.add_argument("item")
    p = sub.add_parser("register", help="register a run's model for an item")
    p.add_argument("run_id")
    p.add_argument("name")
    p.add_argument("--item", required=True)
    p.add_argument("--artifact-path", default="model")
    p = sub.add_parser("new", help="create a project: a dataset, an ai-model or a processor")
    p.add_argument("category", choices=CATEGORIES)
    p.add_argument("name", help="the project's name (its path: letters, digits, - _ .)")
    p.add_argument("--namespace", help="the GitLab group or user (default: the server's)")
    p.add_argument("--title", help="the title in the README's front matter")
    p.add_argument("--description", help="the description (the README's body)")
    p = sub.add_parser("publish", help="publish a folder as a new version of a dataset")
    p.add_argument("path", help="a folder (or file) relative to this kernel's working "
                   "directory")
    p.add_argument("--item", required=True, help="the dataset item to publish to")
    p.add_argument("--version", required=True, help="the new version's tag, e.g. v1.0")
    p.add_argument("--message", help="the commit and tag message")
    p = sub.add_parser("index", help="the crawl status")
    p.add_argument("--crawl", action="store_true", help="crawl now")
    sub.add_parser("panel", help="the Search, Runs, Register and Publish panels")
    return parser


def _search(args: argparse.Namespace) -> Any:
    from . import api
    from .render import SearchResult

    if args.limit < 1:
        raise SharingHubError("--limit must be at least 1")
    body = api.search_body(" ".join(args.text) or None, collections=args.collection,
                           bbox=args.bbox, datetime=args.datetime, filter=args.filter,
                           sortby=args.sortby, limit=min(args.limit, 1000))
    found, matched = api.features(body, args.limit)
    return SearchResult(found, matched, with_map=not args.no_map)


def _show(args: argparse.Namespace) -> Any:
    from . import api

    return api.item_card(args.item)


def _pull(args: argparse.Namespace) -> Any:
    from . import api
    from .render import PullResult

    return PullResult(args.item, args.rev, api.pull(args.item, rev=args.rev, to=args.to))


def _versions(args: argparse.Namespace) -> Any:
    from . import api
    from .render import VersionsTable

    return VersionsTable(args.item, api.versions(args.item))


def _track(args: argparse.Namespace) -> Any:
    from . import api
    from .render import Tracked

    experiment = api.track(args.item)
    return Tracked(args.item, experiment, api.tracking_link(args.item)[0])


def _runs(args: argparse.Namespace) -> Any:
    from . import api
    from .render import RunsTable

    return RunsTable(args.item, api.runs(args.item))


def _register(args: argparse.Namespace) -> Any:
    from . import api
    from .render import Registered

    version = api.register_model(args.run_id, args.name, item=args.item,
                                 artifact_path=args.artifact_path)
    return Registered(version, args.item)


def _new(args: argparse.Namespace) -> Any:
    from . import api
    from .render import Created

    served = api.new_project_dict(args.category, args.name, namespace=args.namespace,
                                  title=args.title, description=args.description)
    return Created(api.item_card(str(served.get("id")), served))


def _publish(args: argparse.Namespace) -> Any:
    from . import api
    from .render import Published

    return Published(api.publish(args.path, args.item, args.version, message=args.message))


def _index(args: argparse.Namespace) -> Any:
    from . import api
    from .render import IndexStatus

    return IndexStatus(api.crawl() if args.crawl else api.index())


def _panel(args: argparse.Namespace) -> Any:
    from . import panel

    return panel()


COMMANDS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "search": _search, "show": _show, "pull": _pull, "versions": _versions, "track": _track,
    "runs": _runs, "register": _register, "new": _new, "publish": _publish, "index": _index,
    "panel": _panel}


#: options that take a value: one that starts with "-" (``--bbox -6,41,10,52``, ``--sortby
#: -datetime``) is still their value, not an option as argparse would think
VALUE_OPTIONS = {"--collection", "--bbox", "--datetime", "--filter", "--sortby", "--limit",
                 "--rev", "--to", "--item", "--artifact-path", "--namespace", "--title",
                 "--description", "--version", "--message"}


def split(line: str) -> list[str]:
    """The line's words, POSIX-style, with ``--option value`` joined as ``--option=value``
    when the value starts with ``-``."""
    try:
        words = shlex.split(line)
    except ValueError as exc:  # unbalanced quotes
        raise SharingHubError(f"cannot parse the line: {exc}") from None
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if (word in VALUE_OPTIONS and i + 1 < len(words) and words[i + 1].startswith("-")
                and not words[i + 1].startswith("--")):
            out.append(f"{word}={words[i + 1]}")
            i += 2
        else:
            out.append(word)
            i += 1
    return out


def run(line: str) -> Any:
    """Run one ``%sharinghub`` line: its result, or None after printing an error line."""
    try:
        args = _parser().parse_args(split(line))
        return COMMANDS[args.command](args)
    except _HelpShown:
        return None
    except KeyboardInterrupt:
        message = "interrupted (a running pull or publish was cancelled)"
    except Exception as exc:  # one line, never a traceback wall, even for the unexpected
        message = one_line(exc)
    sys.stderr.write(f"sharinghub: error: {message}\n")
    return None


@magics_class
class SharingHubMagics(Magics):
    @line_magic
    def sharinghub(self, line: str) -> Any:
        """%sharinghub search|show|pull|versions|track|runs|register|new|publish|index|panel
        ...
        (``%sharinghub --help``, ``%sharinghub <command> --help``)."""
        return run(line)
