"""Every piece of HTML the notebook side shows, built here and only here.

Every server value is escaped (``html.escape``) before it is placed in HTML; URLs are kept
only when they are http(s) or relative (anything else, ``javascript:`` first, is dropped);
the map's popups and tooltips get escaped HTML and its shapes only numbers. Each result
object has ``_repr_html_`` for notebooks and a plain text ``__repr__`` for a terminal
IPython.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Created", "ErrorLine", "IndexStatus", "ItemCard", "Permission", "Published",
           "PullResult", "Registered", "RunsTable", "SearchResult", "Tracked", "VersionsTable",
           "bounds", "clean_geometry", "safe_url"]

_STYLE = "border-collapse:collapse;font-size:90%"
_CELL = "border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top"
_UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


class Markup(str):
    """HTML built in this module: placed as is (anything else is escaped)."""


def esc(value: Any) -> Markup:
    """``value`` as HTML text (Markup passes through)."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str) if isinstance(
            value, dict | list) else str(value)
    return Markup(html.escape(value, quote=True))


def safe_url(url: Any) -> str | None:
    """``url`` if it is http(s) or relative, else None (``javascript:``, ``data:``, ...;
    control characters and spaces, which browsers strip, are refused too)."""
    if not isinstance(url, str) or not url or _UNSAFE_URL_CHARS.search(url):
        return None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    if scheme in ("http", "https"):
        return url
    return url if scheme == "" and ":" not in url.split("/", 1)[0] else None


def a(href: Any, text: Any) -> Markup:
    """A link when ``href`` is safe, else the text alone."""
    url = safe_url(href)
    if url is None:
        return esc(text)
    return Markup(f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">'
                  f"{esc(text)}</a>")


def img(src: Any, alt: Any = "", width: int = 64) -> Markup:
    url = safe_url(src)
    if url is None:
        return Markup("")
    return Markup(f'<img src="{esc(url)}" alt="{esc(alt)}" width="{width}" loading="lazy">')


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Markup:
    head = "".join(f'<th style="{_CELL}">{esc(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td style="{_CELL}">{esc(c)}</td>' for c in row)
                   + "</tr>" for row in rows)
    return Markup(f'<table style="{_STYLE}"><thead><tr>{head}</tr></thead>'
                  f"<tbody>{body}</tbody></table>")


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], width: int = 40) -> str:
    """A plain text table, cells cut at ``width`` characters."""
    def cell(value: Any) -> str:
        text = "" if value is None else (value if isinstance(value, str) else str(value))
        text = " ".join(text.split())
        return text if len(text) <= width else text[: width - 1] + "…"

    cells = [[cell(h) for h in headers], *[[cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def size(n: Any) -> str:
    if not isinstance(n, int | float) or isinstance(n, bool) or n < 0:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


# --- items -----------------------------------------------------------------------------------

def _props(item: dict[str, Any]) -> dict[str, Any]:
    props = item.get("properties")
    return props if isinstance(props, dict) else {}


def title(item: dict[str, Any]) -> str:
    return str(_props(item).get("title") or item.get("id") or "")


def date(item: dict[str, Any]) -> str:
    props = _props(item)
    value = props.get("datetime") or props.get("start_datetime") or ""
    return str(value)[:10]


def keywords(item: dict[str, Any]) -> str:
    words = _props(item).get("keywords")
    return ", ".join(str(w) for w in words) if isinstance(words, list) else ""


def _assets(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assets = item.get("assets")
    return {str(k): v for k, v in assets.items() if isinstance(v, dict)} if isinstance(
        assets, dict) else {}


def thumbnail(item: dict[str, Any]) -> str | None:
    for key, asset in _assets(item).items():
        if "thumbnail" in (asset.get("roles") or []) or key in ("thumbnail", "preview"):
            url = safe_url(asset.get("href"))
            if url:
                return url
    return None


def _links(item: dict[str, Any], rel: str | None = None) -> list[dict[str, Any]]:
    links = item.get("links")
    return [lk for lk in links or [] if isinstance(lk, dict)
            and (rel is None or lk.get("rel") == rel)] if isinstance(links, list) else []


_GEOMETRY_TYPES = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2,
                   "Polygon": 2, "MultiPolygon": 3}


def clean_geometry(geometry: Any) -> dict[str, Any] | None:
    """A GeoJSON geometry rebuilt from numbers only (None if it is not one): nothing of the
    server's but coordinates reaches the map's script."""
    if not isinstance(geometry, dict) or geometry.get("type") not in _GEOMETRY_TYPES:
        return None

    def coords(value: Any, depth: int) -> Any:
        if depth == 0:
            if (isinstance(value, list) and 2 <= len(value) <= 3
                    and all(isinstance(v, int | float) and not isinstance(v, bool)
                            and math.isfinite(v) for v in value)):
                return [float(v) for v in value]
            raise ValueError
        if not isinstance(value, list):
            raise ValueError
        return [coords(v, depth - 1) for v in value]

    kind = geometry["type"]
    try:
        return {"type": kind, "coordinates": coords(geometry.get("coordinates"),
                                                    _GEOMETRY_TYPES[kind])}
    except (ValueError, RecursionError):
        return None


def map_text(value: Any) -> str:
    """Text for the map's tooltips and popups (set as innerHTML by scripts): escaped HTML
    with no backtick, ``$`` or backslash left, so it cannot end or interpolate a JavaScript
    template literal either."""
    return (html.escape(str(value), quote=True).replace("`", "&#96;").replace("$", "&#36;")
            .replace("\\", "&#92;"))


def footprint_map(items: Sequence[dict[str, Any]]) -> Markup:
    """A folium map of the items' footprints (title in tooltip and popup), or nothing when
    none has a geometry (or folium is missing). One GeoJSON layer for all, in a page that
    folium renders once per process (:func:`_map_page`): folium compiles a dozen Jinja
    templates for every map it renders, most of the time a search took."""
    shapes = [(item, g, box) for item in items if (g := clean_geometry(item.get("geometry")))
              and (box := bounds(g))]
    if not shapes:
        return Markup("")
    try:
        page = _map_page()
    except ImportError:
        return Markup("")
    # folium's tooltip and popup set their values as innerHTML: they are escaped HTML
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": geometry,
         "properties": {"item": map_text(f"{title(item)} ({item.get('id')})")}}
        for item, geometry, _ in shapes]}
    fit = [[min(b[1] for _, _, b in shapes), min(b[0] for _, _, b in shapes)],
           [max(b[3] for _, _, b in shapes), max(b[2] for _, _, b in shapes)]]
    if page is None:  # this folium renders its page otherwise: the whole map each time
        return Markup(_folium_map(collection, fit)._repr_html_())
    before, between, after = page
    return Markup(f"{before}{_srcdoc_json(collection)}{between}{_srcdoc_json(fit)}{after}")


#: stand-ins for a search's footprints and bounds in the page :func:`_map_page` renders
_MARK_DATA = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0.123456789, 0.987654321]},
     "properties": {"item": "sharinghub-map-mark"}}]}
_MARK_BOUNDS = [[-12.3456789, -98.7654321], [12.3456789, 98.7654321]]


def _folium_map(collection: dict[str, Any], fit: list[list[float]]) -> Any:
    """The folium map: one GeoJSON layer of ``collection``, fitted to ``fit``."""
    import folium

    fmap = folium.Map(tiles="OpenStreetMap", width="100%", height=320)
    folium.GeoJson(collection, tooltip=folium.GeoJsonTooltip(["item"], labels=False),
                   popup=folium.GeoJsonPopup(["item"], labels=False)).add_to(fmap)
    fmap.fit_bounds(fit)
    return fmap


def _srcdoc_json(value: Any) -> str:
    """``value`` as folium's ``tojson`` writes it in a script (no ``<``, ``>``, ``&``,
    ``'``), escaped for the ``srcdoc`` attribute of the map's iframe, as folium does."""
    from jinja2.utils import htmlsafe_json_dumps

    return html.escape(str(htmlsafe_json_dumps(value, sort_keys=True)))


@functools.cache
def _map_page() -> tuple[str, str, str] | None:
    """folium's map HTML rendered once with stand-ins, cut around them: (before the
    footprints, between them and the bounds, after the bounds). None when the stand-ins
    are not found exactly once each, in that order (another folium)."""
    page = _folium_map(_MARK_DATA, _MARK_BOUNDS)._repr_html_()
    data, box = _srcdoc_json(_MARK_DATA), _srcdoc_json(_MARK_BOUNDS)
    if page.count(data) != 1 or page.count(box) != 1 or page.index(data) > page.index(box):
        return None
    before, rest = page.split(data)
    between, after = rest.split(box)
    return before, between, after


def bounds(geometry: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """W,S,E,N of a geometry from :func:`clean_geometry`; None when it has no point."""
    points: list[list[float]] = []

    def walk(value: Any) -> None:
        if value and isinstance(value[0], float):
            points.append(value)
        else:
            for v in value:
                walk(v)

    walk(geometry["coordinates"])
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


class SearchResult:
    """``%sharinghub search``: a table of the items found and a map of their footprints."""

    headers = ("", "title", "collection", "keywords", "date", "id")

    def __init__(self, items: list[dict[str, Any]], matched: int | None,
                 with_map: bool = True) -> None:
        self.items = items
        self.matched = matched
        self.with_map = with_map

    def summary(self) -> str:
        total = "?" if self.matched is None else self.matched
        return f"{len(self.items)} of {plural(total, 'item')}"

    def _repr_html_(self) -> str:
        rows = [(img(thumbnail(i), "preview"), title(i), i.get("collection"), keywords(i),
                 date(i), i.get("id")) for i in self.items]
        map_html = footprint_map(self.items) if self.with_map else ""
        return (f"<div><p>{esc(self.summary())}</p>{table(self.headers, rows)}"
                f"{map_html}</div>")

    def __repr__(self) -> str:
        rows = [(title(i), i.get("collection"), keywords(i), date(i), i.get("id"))
                for i in self.items]
        return f"{self.summary()}\n{text_table(self.headers[1:], rows)}"


class ItemCard:
    """``%sharinghub show``: an item's description, properties, assets, links, DVC
    versions and registered models."""

    def __init__(self, item: dict[str, Any], versions: list[dict[str, Any]] | None) -> None:
        self.item = item
        self.versions = versions

    def _rows(self) -> dict[str, list[tuple[Any, ...]]]:
        item = self.item
        skip = {"title", "description"}
        props = [(k, v) for k, v in sorted(_props(item).items()) if k not in skip]
        assets = [(k, a.get("title") or "", a.get("type") or "", size(a.get("file:size")),
                   ", ".join(str(r) for r in a.get("roles") or []), a.get("href"))
                  for k, a in _assets(item).items()]
        links = [(lk.get("rel"), lk.get("title") or "", lk.get("href"))
                 for lk in _links(item) if lk.get("rel") not in ("self", "root", "parent",
                                                                 "collection", "mlflow:model")]
        models = [(lk.get("mlflow:name"), lk.get("mlflow:version"),
                   ", ".join(str(x) for x in lk.get("mlflow:aliases") or []),
                   lk.get("mlflow:uri"), lk.get("href"))
                  for lk in _links(item, "mlflow:model")]
        versions = [(v.get("rev"), v.get("kind"), str(v.get("date") or "")[:19],
                     str(v.get("commit") or "")[:10], len(v.get("outputs") or []),
                     size(sum(o.get("size") or 0 for o in v.get("outputs") or [])))
                    for v in self.versions or []]
        return {"props": props, "assets": assets, "links": links, "models": models,
                "versions": versions}

    def _repr_html_(self) -> str:
        item, rows = self.item, self._rows()
        thumb = thumbnail(item)
        parts = [f"<h3>{esc(title(item))}</h3>",
                 f"<p><code>{esc(item.get('id'))}</code> in {esc(item.get('collection'))}</p>"]
        if thumb:
            parts.append(img(thumb, "preview", 160))
        description = _props(item).get("description")
        if description:
            parts.append('<pre style="white-space:pre-wrap;font-family:inherit">'
                         f"{esc(description)}</pre>")
        parts.append("<h4>Properties</h4>" + table(("property", "value"), rows["props"]))
        if rows["assets"]:
            parts.append("<h4>Assets</h4>" + table(
                ("key", "title", "type", "size", "roles", "href"),
                [(*r[:5], a(r[5], r[5])) for r in rows["assets"]]))
        if rows["versions"]:
            parts.append("<h4>DVC versions</h4>" + table(
                ("rev", "kind", "date", "commit", "outputs", "size"), rows["versions"]))
        if rows["models"]:
            parts.append("<h4>Registered models</h4>" + table(
                ("model", "version", "aliases", "uri", "link"),
                [(*r[:4], a(r[4], "open")) for r in rows["models"]]))
        if rows["links"]:
            parts.append("<h4>Links</h4>" + table(
                ("rel", "title", "href"), [(r[0], r[1], a(r[2], r[2])) for r in rows["links"]]))
        return "<div>" + "".join(parts) + "</div>"

    def __repr__(self) -> str:
        item, rows = self.item, self._rows()
        out = [f"{title(item)}  [{item.get('id')} in {item.get('collection')}]"]
        description = _props(item).get("description")
        if description:
            out += ["", str(description).strip()]
        out += ["", text_table(("property", "value"), rows["props"], 60)]
        if rows["assets"]:
            out += ["", "Assets:", text_table(("key", "title", "type", "size", "roles", "href"),
                                              rows["assets"])]
        if rows["versions"]:
            out += ["", "DVC versions:", text_table(
                ("rev", "kind", "date", "commit", "outputs", "size"), rows["versions"])]
        if rows["models"]:
            out += ["", "Registered models:", text_table(
                ("model", "version", "aliases", "uri", "link"), rows["models"])]
        if rows["links"]:
            out += ["", "Links:", text_table(("rel", "title", "href"), rows["links"], 70)]
        return "\n".join(out)


class VersionsTable:
    """``%sharinghub versions``: an item's DVC versions, newest first."""

    headers = ("rev", "kind", "date", "commit", "outputs", "size")

    def __init__(self, item_id: str, versions: list[dict[str, Any]]) -> None:
        self.item_id = item_id
        self.versions = versions

    def rows(self) -> list[tuple[Any, ...]]:
        return [(v.get("rev"), v.get("kind"), str(v.get("date") or "")[:19],
                 str(v.get("commit") or "")[:10],
                 ", ".join(str(o.get("path")) for o in v.get("outputs") or []),
                 size(sum(o.get("size") or 0 for o in v.get("outputs") or [])))
                for v in self.versions]

    def _repr_html_(self) -> str:
        return (f"<div><p>Versions of <code>{esc(self.item_id)}</code></p>"
                f"{table(self.headers, self.rows())}</div>")

    def __repr__(self) -> str:
        return f"Versions of {self.item_id}\n{text_table(self.headers, self.rows())}"


def plural(n: Any, word: str) -> str:
    """"1 run", "2 runs" (``n`` may be a phrase such as "more than 10000")."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class RunsTable:
    """``%sharinghub runs``: the runs of an item's experiment, with params and metrics."""

    def __init__(self, item_id: str, frame: Any) -> None:
        self.item_id = item_id
        self.frame = frame

    def _table(self) -> tuple[list[str], list[list[Any]]]:
        frame = self.frame
        columns = [c for c in ("run_id", "status", "start_time") if c in frame.columns]
        columns += sorted(c for c in frame.columns if c.startswith("metrics."))
        columns += sorted(c for c in frame.columns if c.startswith("params."))
        rows = [[_cell(v) for v in row] for row in frame[columns].itertuples(index=False)]
        return columns, rows

    def _repr_html_(self) -> str:
        columns, rows = self._table()
        return (f"<div><p>{plural(len(rows), 'run')} of <code>{esc(self.item_id)}</code></p>"
                f"{table(columns, rows)}</div>")

    def __repr__(self) -> str:
        columns, rows = self._table()
        return f"{plural(len(rows), 'run')} of {self.item_id}\n{text_table(columns, rows, 32)}"


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)[:19] if hasattr(value, "isoformat") else value


class PullResult:
    """``%sharinghub pull``: where the data is."""

    def __init__(self, item_id: str, rev: str | None, path: Path) -> None:
        self.item_id, self.rev, self.path = item_id, rev, path

    def text(self) -> str:
        return f"pulled {self.item_id}{f' @ {self.rev}' if self.rev else ''} into {self.path}"

    def _repr_html_(self) -> str:
        return f"<p>{esc(self.text())}</p>"

    def __repr__(self) -> str:
        return self.text()


class Tracked:
    """``%sharinghub track``: where MLflow now logs."""

    def __init__(self, item_id: str, experiment: Any, uri: str) -> None:
        self.item_id, self.experiment, self.uri = item_id, experiment, uri

    def text(self) -> str:
        return (f"MLflow tracks {self.item_id} in experiment {self.experiment.name!r} "
                f"(id {self.experiment.experiment_id}) at {self.uri}")

    def _repr_html_(self) -> str:
        return f"<p>{esc(self.text())}</p>"

    def __repr__(self) -> str:
        return self.text()


class Registered:
    """``%sharinghub register``: the model version and the item's link to it."""

    def __init__(self, version: Any, item_id: str) -> None:
        self.version, self.item_id = version, item_id

    def text(self) -> str:
        v = self.version
        return (f"registered {v.name} v{v.version} (models:/{v.name}/{v.version}); "
                f"{self.item_id} links it")

    def _repr_html_(self) -> str:
        return f"<p>{esc(self.text())}</p>"

    def __repr__(self) -> str:
        return self.text()


class IndexStatus:
    """``%sharinghub index``: the crawl status (``--crawl`` crawls now)."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status

    def _parts(self) -> tuple[str, list[tuple[Any, Any]], list[tuple[Any, Any]]]:
        s = self.status
        last = s.get("last_crawl") or {}
        progress = s.get("progress") or {}
        head = f"crawl {s.get('state')}"
        if s.get("state") == "running":
            head += f" ({progress.get('done')}/{progress.get('total') or '?'} projects)"
        if last:
            head += (f"; last crawl started {last.get('started')}, finished "
                     f"{last.get('finished') or '-'}, {'ok' if last.get('ok') else 'not ok'}")
        counts = sorted((last.get("items") or {}).items())
        errors = [(e.get("project"), e.get("message")) for e in last.get("errors") or []
                  if isinstance(e, dict)]
        return head, counts, errors

    def _repr_html_(self) -> str:
        head, counts, errors = self._parts()
        parts = [f"<p>{esc(head)}</p>", table(("collection", "items"), counts)]
        if errors:
            parts.append("<h4>Problems</h4>" + table(("project", "problem"), errors))
        parts.append("<p>Crawl now: <code>%sharinghub index --crawl</code></p>")
        return "<div>" + "".join(parts) + "</div>"

    def __repr__(self) -> str:
        head, counts, errors = self._parts()
        out = [head, text_table(("collection", "items"), counts)]
        if errors:
            out += ["Problems:", text_table(("project", "problem"), errors, 80)]
        return "\n".join(out)


class Created:
    """``%sharinghub new``: the new project's item card (as ``show`` renders it), after a
    line saying what was created and, for a dataset, how to publish its first version."""

    def __init__(self, card: ItemCard) -> None:
        self.card = card

    @property
    def item_id(self) -> str:
        return str(self.card.item.get("id"))

    def text(self) -> str:
        return f"created {self.item_id} in {self.card.item.get('collection')}"

    def next_step(self) -> str | None:
        if self.card.item.get("collection") != "dataset":
            return None
        return (f"%sharinghub publish FOLDER --item {shlex.quote(self.item_id)} "
                "--version v1.0")

    def _repr_html_(self) -> str:
        step = self.next_step()
        lead = f"<p>{esc(self.text())}</p>"
        if step:
            lead += f"<p>next: <code>{esc(step)}</code></p>"
        return f"<div>{lead}{self.card._repr_html_()}</div>"

    def __repr__(self) -> str:
        step = self.next_step()
        return "\n".join([self.text(), *([f"next: {step}"] if step else []), "",
                          repr(self.card)])


class Published:
    """``%sharinghub publish``: the version published (as ``versions`` lists it, with the
    ``item``)."""

    headers = ("output", "md5", "files", "size")

    def __init__(self, version: dict[str, Any]) -> None:
        self.version = version

    def outputs(self) -> list[dict[str, Any]]:
        found = self.version.get("outputs")
        return [o for o in found if isinstance(o, dict)] if isinstance(found, list) else []

    def rows(self) -> list[tuple[Any, ...]]:
        return [(o.get("path"), o.get("md5"), _count(o.get("nfiles")), size(o.get("size")))
                for o in self.outputs()]

    def text(self) -> str:
        v = self.version
        out = f"published {v.get('item')} {v.get('rev')}"
        details = []
        if v.get("commit"):
            details.append(f"commit {str(v['commit'])[:10]}")
        outputs = self.outputs()
        if outputs:
            files = sum(_count(o.get("nfiles")) for o in outputs)
            total = sum(n for o in outputs if isinstance(n := o.get("size"), int | float))
            details.append(f"{plural(files, 'file')}, {size(total)}")
        return out + (f" ({'; '.join(details)})" if details else "")

    def _repr_html_(self) -> str:
        rows = self.rows()
        return (f"<div><p>{esc(self.text())}</p>"
                f"{table(self.headers, rows) if rows else ''}</div>")

    def __repr__(self) -> str:
        rows = self.rows()
        return self.text() + (f"\n{text_table(self.headers, rows)}" if rows else "")


def note(text: str, ok: bool) -> Markup:
    """A short remark next to a field, green when all is well, red when not."""
    color = "#1b5e20" if ok else "#b00020"
    return Markup(f'<span style="color:{color}">{esc(" ".join(str(text).split()))}</span>')


def _count(nfiles: Any) -> int:
    """Files in a DVC output: its ``nfiles`` (a directory), else 1 (a file)."""
    return nfiles if isinstance(nfiles, int) and not isinstance(nfiles, bool) and nfiles > 0 \
        else 1


class Permission:
    """Whether the user can publish to an item (the permissions route's answer)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.item_id = answer.get("item")
        self.allowed = answer.get("can_publish") is True
        self.reason = " ".join(str(answer.get("reason") or "").split())

    def text(self) -> str:
        if self.allowed:
            return f"you can publish to {self.item_id}"
        return f"cannot publish to {self.item_id}: {self.reason or 'no reason given'}"

    def _repr_html_(self) -> str:
        return note(self.text(), self.allowed)

    def __repr__(self) -> str:
        return self.text()


class ErrorLine:
    """One error line, marked as an error."""

    def __init__(self, message: str) -> None:
        self.message = " ".join(str(message).split())

    def _repr_html_(self) -> str:
        return ('<div style="color:#b00020;font-weight:bold">sharinghub: error: '
                f"{esc(self.message)}</div>")

    def __repr__(self) -> str:
        return f"sharinghub: error: {self.message}"
