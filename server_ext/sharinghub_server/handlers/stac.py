"""The STAC API handlers: parse, ask the index off the event loop, answer."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from tornado import web

from ..index.query import Budget, Page, Query
from ..service import NotFound
from ..stac import responses
from ..stac.limits import load_json
from ..stac.params import get_args_for, post_body_for, search_from_get, search_from_post
from .base import SharingHubHandler

GEOJSON = "application/geo+json"


class CatalogHandler(SharingHubHandler):
    """Catalog reads run in the catalog's own thread pool."""

    pool_setting = "sharinghub_search_executor"


class LandingHandler(CatalogHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json(responses.landing_page(self.api_root, self.service.categories))


class ConformanceHandler(CatalogHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json({"conformsTo": list(responses.CONFORMANCE)})


class CollectionsHandler(CatalogHandler):
    @web.authenticated
    async def get(self) -> None:
        summaries = await self.run(self.service.store.collections)
        self.write_json(responses.collections(self.api_root, self.service.categories,
                                              summaries))


class CollectionHandler(CatalogHandler):
    @web.authenticated
    async def get(self, cid: str) -> None:
        category = self.service.category(cid)
        summaries = await self.run(self.service.store.collections)
        self.write_json(responses.collection(self.api_root, category, summaries.get(cid)))


class ItemHandler(CatalogHandler):
    @web.authenticated
    async def get(self, cid: str, item_id: str) -> None:
        self.service.category(cid)
        stored = await self.run(self.service.get_item, cid, item_id)
        if stored is None:
            raise NotFound(f"no item {item_id!r} in collection {cid!r}")
        self.write_json(responses.item(self.api_root, stored), content_type=GEOJSON)


class QueryablesHandler(CatalogHandler):
    @web.authenticated
    async def get(self, cid: str | None = None) -> None:
        if cid is not None:
            self.service.category(cid)
        found = await self.run(self.service.store.queryables, cid)
        self.write_json(responses.queryables(self.api_root, found, cid),
                        content_type="application/schema+json")


class _SearchBase(CatalogHandler):
    @functools.cached_property
    def _budget(self) -> Budget:
        return Budget(self.settings["sharinghub_search_timeout"])

    def on_connection_close(self) -> None:
        self._budget.cancelled.set()  # the client left: its search stops, even mid-query
        super().on_connection_close()

    def _args(self) -> dict[str, str]:
        return {k: self.get_argument(k) for k in self.request.query_arguments}

    def _self_url(self) -> str:
        return f"{self.request.protocol}://{self.request.host}{self.request.path}"

    def _get_links(self, args: dict[str, str], page: Page) -> list[dict[str, Any]]:
        url = self._self_url()
        links = [{"rel": "self", "type": GEOJSON,
                  "href": f"{url}?{urlencode(args)}" if args else url}]
        for rel, token in (("next", page.next_token), ("prev", page.prev_token)):
            if token:
                links.append({"rel": rel, "type": GEOJSON, "method": "GET",
                              "href": f"{url}?{urlencode(get_args_for(args, token))}"})
        return links

    async def _answer(self, parse: Callable[[], Query], links) -> None:
        """Parse (off the event loop too: big geometries, CQL2), then search within the
        budget."""
        query = await self.run(parse)
        query.budget = self._budget
        page = await self.run(self.service.search, query)
        self.write_json(
            responses.item_collection(self.api_root, page.items, page.matched, links(page)),
            content_type=GEOJSON)


class ItemsHandler(_SearchBase):
    @web.authenticated
    async def get(self, cid: str) -> None:
        self.service.category(cid)
        args = self._args()
        parse = functools.partial(search_from_get, args,
                                  known_collections=self.service.collection_ids, collection=cid)
        await self._answer(parse, lambda page: [
            *self._get_links(args, page),
            {"rel": "collection", "type": "application/json",
             "href": f"{self.api_root}stac/collections/{cid}"}])


class SearchHandler(_SearchBase):
    @web.authenticated
    async def get(self) -> None:
        args = self._args()
        parse = functools.partial(search_from_get, args,
                                  known_collections=self.service.collection_ids)
        await self._answer(parse, lambda page: self._get_links(args, page))

    @web.authenticated
    async def post(self) -> None:
        body = await self.run(load_json, self.request.body)
        parse = functools.partial(search_from_post, body,
                                  known_collections=self.service.collection_ids)

        def links(page: Page) -> list[dict[str, Any]]:
            url = self._self_url()
            out = [{"rel": "self", "type": GEOJSON, "href": url}]
            for rel, token in (("next", page.next_token), ("prev", page.prev_token)):
                if token:
                    out.append({"rel": rel, "type": GEOJSON, "href": url, "method": "POST",
                                "body": post_body_for(body, token), "merge": False})
            return out

        await self._answer(parse, links)

    def check_xsrf_cookie(self) -> None:
        """POST /search reads, it changes nothing: STAC clients send no XSRF token."""
        return None
