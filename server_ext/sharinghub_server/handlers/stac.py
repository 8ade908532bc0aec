"""The STAC API handlers: parse, ask the index off the event loop, answer.

The request path is kept short, since a search through Jupyter should cost little more than
the search itself: all of a request's blocking work (reading its JSON body, parsing CQL2 and
geometries, the search, building and encoding the page) runs in ONE call on the catalog's
thread pool, which hands back the encoded bytes; a repeated read is answered from
:class:`~.answers.AnswerCache` without leaving the event loop; what depends only on the server
(conformance, the landing page of one host) is encoded once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..index.query import Budget, Page, Query
from ..jsontext import encode_json
from ..service import NotFound
from ..stac import responses
from ..stac.limits import load_json
from ..stac.params import get_args_for, post_body_for, search_from_get, search_from_post
from .answers import Answer, AnswerCache, request_key
from .base import SharingHubHandler

GEOJSON = "application/geo+json"
JSON = "application/json"
SCHEMA = "application/schema+json"

_CONFORMANCE = encode_json({"conformsTo": list(responses.CONFORMANCE)})


class CatalogHandler(SharingHubHandler):
    """Catalog reads run in the catalog's own thread pool; resource ``sharinghub:catalog``,
    read (``POST search`` too)."""

    auth_resource = "sharinghub:catalog"
    pool_setting = "sharinghub_search_executor"

    @property
    def answers(self) -> AnswerCache:
        """The server's cache of catalog answers (made on first use)."""
        cache = self.settings.get("sharinghub_answers")
        if cache is None:
            service = self.service
            cache = self.settings.setdefault("sharinghub_answers",
                                             AnswerCache(lambda: service.writes))
        return cache

    async def answer(self, work: Callable[[], bytes], content_type: str = JSON) -> None:
        """Write what ``work`` (blocking: run in the pool, in one hop) encodes, or the same
        request's answer still valid in the cache."""
        request = self.request
        key = request_key(request.method or "GET", request.protocol, request.host,
                          request.uri or "", request.body or b"")
        cache = self.answers
        if key is not None:
            found = cache.get(key)
            if found is not None:
                self.write_encoded(found.body, content_type=found.content_type)
                return
        epoch = cache.epoch()
        body = await self.run(work)
        if key is not None:
            cache.put(key, epoch, Answer(body, content_type))
        self.write_encoded(body, content_type=content_type)


class LandingHandler(CatalogHandler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        # the same for every request to one host: encoded once per API root
        pages = self.settings.setdefault("sharinghub_landing", {})
        api = self.api_root
        body = pages.get(api)
        if body is None:
            body = encode_json(responses.landing_page(api, self.service.categories))
            if len(pages) < 64:  # (hosts a server is reached by: a handful)
                pages[api] = body
        self.write_encoded(body)


class ConformanceHandler(CatalogHandler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        self.write_encoded(_CONFORMANCE)


class CollectionsHandler(CatalogHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        api, service = self.api_root, self.service

        def work() -> bytes:
            return encode_json(responses.collections(api, service.categories,
                                                     service.store.collections()))

        await self.answer(work)


class CollectionHandler(CatalogHandler):
    @web.authenticated
    @authorized
    async def get(self, cid: str) -> None:
        category = self.service.category(cid)
        api, store = self.api_root, self.service.store

        def work() -> bytes:
            return encode_json(responses.collection(api, category, store.collections().get(cid)))

        await self.answer(work)


class ItemHandler(CatalogHandler):
    @web.authenticated
    @authorized
    async def get(self, cid: str, item_id: str) -> None:
        self.service.category(cid)
        api, service = self.api_root, self.service

        def work() -> bytes:
            stored = service.get_item(cid, item_id)
            if stored is None:
                raise NotFound(f"no item {item_id!r} in collection {cid!r}")
            return encode_json(responses.item(api, stored))

        await self.answer(work, GEOJSON)


class QueryablesHandler(CatalogHandler):
    @web.authenticated
    @authorized
    async def get(self, cid: str | None = None) -> None:
        if cid is not None:
            self.service.category(cid)
        api, store = self.api_root, self.service.store

        def work() -> bytes:
            return encode_json(responses.queryables(api, store.queryables(cid), cid))

        await self.answer(work, SCHEMA)


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

    @staticmethod
    def _get_links(url: str, args: dict[str, str], page: Page) -> list[dict[str, Any]]:
        links = [{"rel": "self", "type": GEOJSON,
                  "href": f"{url}?{urlencode(args)}" if args else url}]
        for rel, token in (("next", page.next_token), ("prev", page.prev_token)):
            if token:
                links.append({"rel": rel, "type": GEOJSON, "method": "GET",
                              "href": f"{url}?{urlencode(get_args_for(args, token))}"})
        return links

    def _page(self, query: Query, links: Callable[[Page], list[dict[str, Any]]], api: str,
              budget: Budget) -> bytes:
        """In the pool: search within the budget, build and encode the page."""
        query.budget = budget
        page = self.service.search(query)
        return encode_json(responses.item_collection(api, page.items, page.matched,
                                                     links(page)))


class ItemsHandler(_SearchBase):
    @web.authenticated
    @authorized
    async def get(self, cid: str) -> None:
        self.service.category(cid)
        args, url, api, budget = self._args(), self._self_url(), self.api_root, self._budget
        known = self.service.collection_ids

        def links(page: Page) -> list[dict[str, Any]]:
            return [*self._get_links(url, args, page),
                    {"rel": "collection", "type": JSON,
                     "href": f"{api}stac/collections/{cid}"}]

        def work() -> bytes:  # (parsing too: big geometries, CQL2)
            query = search_from_get(args, known_collections=known, collection=cid)
            return self._page(query, links, api, budget)

        await self.answer(work, GEOJSON)


class SearchHandler(_SearchBase):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        args, url, api, budget = self._args(), self._self_url(), self.api_root, self._budget
        known = self.service.collection_ids

        def work() -> bytes:
            query = search_from_get(args, known_collections=known)
            return self._page(query, functools.partial(self._get_links, url, args), api,
                              budget)

        await self.answer(work, GEOJSON)

    @web.authenticated
    @authorized("read")  # a search: it changes nothing
    async def post(self) -> None:
        raw, url, api, budget = self.request.body, self._self_url(), self.api_root, self._budget
        known = self.service.collection_ids

        def work() -> bytes:
            body = load_json(raw)
            query = search_from_post(body, known_collections=known)

            def links(page: Page) -> list[dict[str, Any]]:
                out = [{"rel": "self", "type": GEOJSON, "href": url}]
                for rel, token in (("next", page.next_token), ("prev", page.prev_token)):
                    if token:
                        out.append({"rel": rel, "type": GEOJSON, "href": url,
                                    "method": "POST", "body": post_body_for(body, token),
                                    "merge": False})
                return out

            return self._page(query, links, api, budget)

        await self.answer(work, GEOJSON)

    def check_xsrf_cookie(self) -> None:
        """POST /search reads, it changes nothing: STAC clients send no XSRF token."""
        return None
