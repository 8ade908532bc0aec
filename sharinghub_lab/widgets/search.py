"""The Search panel: free text, collection, keywords, a CQL2 filter and a box drawn on an
ipyleaflet map; result cards with Show and Pull (a progress bar per card); "More" for the
next page of the same search. The footprints are drawn on the map; the selected result's is
highlighted."""

from __future__ import annotations

from typing import Any

import ipyleaflet as L
import ipywidgets as w

from .. import api, render
from ..client import current
from .common import JobProgress, Status, Worker

PAGE_SIZE = 10
FOOTPRINT = {"color": "#3388ff", "weight": 2, "fillOpacity": 0.1}
SELECTED = {"color": "#ff6600", "weight": 4, "fillOpacity": 0.35}


def bbox_of(geometry: dict[str, Any]) -> list[float] | None:
    """W,S,E,N of a drawn shape (only numbers survive :func:`render.clean_geometry`)."""
    clean = render.clean_geometry(geometry)
    box = render.bounds(clean) if clean is not None else None
    return list(box) if box is not None else None


def keyword_list(text: str) -> list[str]:
    return [k.strip().lower() for k in text.split(",") if k.strip()]


def has_keywords(feature: dict[str, Any], wanted: list[str]) -> bool:
    """Whether the item carries every wanted keyword (case-insensitive). The server's CQL2
    has no array operators, so keywords are matched here, on each page."""
    words = (feature.get("properties") or {}).get("keywords")
    have = {str(k).lower() for k in words} if isinstance(words, list) else set()
    return all(k in have for k in wanted)


class ResultCard:
    """One search result: its title, Show (the item card) and Pull (progress, then path)."""

    def __init__(self, panel: SearchPanel, feature: dict[str, Any]) -> None:
        self.panel = panel
        self.feature = feature
        self.id = str(feature.get("id"))
        self.layer: L.GeoJSON | None = None
        self.title = w.HTML(
            f"<b>{render.esc(render.title(feature))}</b> <code>{render.esc(self.id)}</code> "
            f"in {render.esc(feature.get('collection'))} {render.esc(render.date(feature))}"
            f"<br><small>{render.esc(render.keywords(feature))}</small>")
        self.show_button = w.Button(description="Show", icon="eye",
                                    layout=w.Layout(width="auto"))
        self.pull_button = w.Button(description="Pull", icon="download",
                                    layout=w.Layout(width="auto"))
        self.progress = JobProgress()
        self.path = w.HTML()
        self.detail = w.HTML()
        self.show_button.on_click(lambda _: self.show())
        self.pull_button.on_click(lambda _: self.pull())
        self.widget = w.VBox([self.title, w.HBox([self.show_button, self.pull_button,
                                                  self.progress, self.path]), self.detail],
                             layout=w.Layout(border="1px solid #ddd", padding="4px"))

    def show(self) -> None:
        """Select this result and show its item card, as ``%sharinghub show`` does."""
        self.panel.select(self)

        def work() -> None:
            self.detail.value = api.item_card(self.id)._repr_html_()
            self.panel.status.info(f"showing {self.id}")

        self.panel.worker.run(work, buttons=[self.show_button])

    def pull(self) -> None:
        """Start a pull job on the server and wait for it off the kernel's main thread (the
        bar shows bytes, else files)."""
        self.panel.select(self)
        to = self.panel.pull_to.value.strip() or None

        def work() -> None:
            self.path.value = ""
            where = self.progress.follow(lambda: api.pull(self.id, to=to, wait=False))
            self.path.value = f"<code>{render.esc(where)}</code>"
            self.panel.status.info(f"pulled {self.id} into {where}")

        self.panel.worker.run(work, buttons=[self.pull_button],
                              busy_text=f"pulling {self.id}")


class SearchPanel:
    """The Search tab. ``widget`` is what is displayed; the other attributes are its parts."""

    def __init__(self) -> None:
        self.status = Status()
        self.worker = Worker(self.status)
        self.text = w.Text(placeholder="flood, sentinel-1, ...", description="Text")
        self.collection = w.Dropdown(options=[("all collections", "")], value="",
                                     description="Collection")
        self.keywords = w.Text(placeholder="comma separated", description="Keywords")
        self.filter = w.Text(placeholder="CQL2, e.g. datetime > TIMESTAMP('2020-01-01')",
                             description="Filter")
        self.pull_to = w.Text(placeholder="the item's name", description="Pull into")
        self.per_page = w.BoundedIntText(value=PAGE_SIZE, min=1, max=100,
                                         description="Per page")
        self.bbox: list[float] | None = None
        self.bbox_label = w.HTML("no box drawn: the whole world")
        self.search_button = w.Button(description="Search", button_style="primary",
                                      icon="search")
        self.more_button = w.Button(description="More", disabled=True)
        self.draw = L.DrawControl(rectangle={"shapeOptions": {"color": "#6600cc"}},
                                  polygon={}, polyline={}, circlemarker={}, circle={},
                                  marker={})
        self.draw.on_draw(self._drawn)
        self.map = L.Map(center=(30, 0), zoom=2, scroll_wheel_zoom=True,
                         layout=w.Layout(height="360px"))
        self.map.add(self.draw)
        self.results = w.VBox()
        self.cards: list[ResultCard] = []
        self.selected: ResultCard | None = None
        self.matched: int | None = None
        self._next: dict[str, Any] | None = None
        self._wanted: list[str] = []
        self.search_button.on_click(lambda _: self.search())
        self.more_button.on_click(lambda _: self.more())
        form = w.VBox([self.text, self.collection, self.keywords, self.filter, self.pull_to,
                       self.per_page, self.bbox_label,
                       w.HBox([self.search_button, self.more_button])])
        self.widget = w.VBox([w.HBox([form, self.map]), self.status.widget, self.results])
        self.worker.run(self._load_collections)

    # --- the form ----------------------------------------------------------------------------

    def _load_collections(self) -> None:
        collections = current().get("stac/collections").get("collections") or []
        self.collection.options = [("all collections", ""), *(
            (f"{c.get('title') or c.get('id')}", str(c.get("id"))) for c in collections)]

    def _drawn(self, _control: Any, action: str, geo_json: dict[str, Any]) -> None:
        """The rectangle drawn (or edited) on the map becomes the search box."""
        if action == "deleted":
            self.bbox = None
            self.bbox_label.value = "no box drawn: the whole world"
            return
        box = bbox_of((geo_json or {}).get("geometry") or {})
        if box is not None:
            self.bbox = box
            self.bbox_label.value = "box: " + render.esc(",".join(f"{v:.4f}" for v in box))

    def body(self) -> dict[str, Any]:
        return api.search_body(self.text.value.strip() or None,
                               collections=self.collection.value or None, bbox=self.bbox,
                               filter=self.filter.value.strip() or None,
                               limit=self.per_page.value)

    # --- searching ---------------------------------------------------------------------------

    def search(self) -> None:
        """A new search: the results and footprints so far are replaced."""
        wanted = keyword_list(self.keywords.value)

        def work() -> None:
            page = api.search_page(self.body())
            self._clear()
            self._wanted = wanted
            self.matched = page.get("numberMatched")
            self._add_page(page)

        self.more_button.disabled = True
        self.worker.run(work, buttons=[self.search_button], busy_text="searching...",
                        settle=self._settle)

    def more(self) -> None:
        """The next page of the same search."""
        link = self._next
        if link is None:
            return
        self.more_button.disabled = True
        self.worker.run(lambda: self._add_page(api.search_page(next_link=link)),
                        buttons=[self.search_button], busy_text="loading more...",
                        settle=self._settle)

    def _settle(self) -> None:
        """More is offered while the server names a next page."""
        self.more_button.disabled = self._next is None

    def _clear(self) -> None:
        for card in self.cards:
            if card.layer is not None:
                self.map.remove(card.layer)
        self.cards, self.selected, self._next = [], None, None
        self.results.children = ()

    def _add_page(self, page: dict[str, Any]) -> None:
        found = [f for f in page.get("features") or [] if has_keywords(f, self._wanted)]
        cards = [ResultCard(self, f) for f in found]
        for card in cards:
            geometry = render.clean_geometry(card.feature.get("geometry"))
            if geometry is not None:
                card.layer = L.GeoJSON(data={"type": "Feature", "properties": {},
                                             "geometry": geometry}, style=dict(FOOTPRINT))
                card.layer.on_click(lambda card=card, **_: card.panel.select(card))
                self.map.add(card.layer)
        self.cards.extend(cards)
        self.results.children = tuple(c.widget for c in self.cards)
        self._next = api.next_link(page) if page.get("features") else None
        total = "?" if self.matched is None else self.matched
        shown = f"{len(self.cards)} shown of {render.plural(total, 'item')}"
        self.status.info(shown + (f" (keywords: {', '.join(self._wanted)})"
                                  if self._wanted else ""))
        self._center(cards)

    def _center(self, cards: list[ResultCard]) -> None:
        boxes = [b for c in cards if c.layer is not None
                 and (b := bbox_of(c.layer.data["geometry"]))]
        if boxes:
            west, south = min(b[0] for b in boxes), min(b[1] for b in boxes)
            east, north = max(b[2] for b in boxes), max(b[3] for b in boxes)
            self.map.center = ((south + north) / 2, (west + east) / 2)

    def select(self, card: ResultCard) -> None:
        """Highlight ``card``'s footprint (and only its)."""
        if self.selected is not None and self.selected.layer is not None:
            self.selected.layer.style = dict(FOOTPRINT)
        self.selected = card
        if card.layer is not None:
            card.layer.style = dict(SELECTED)
