"""``sharinghub/api/index``: crawl status, and crawl now."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import SharingHubHandler


class IndexHandler(SharingHubHandler):
    """GET: the crawl status, a catalog read (``sharinghub:catalog``); POST: crawl now,
    ``sharinghub:index`` write."""

    auth_resource = "sharinghub:index"

    @web.authenticated
    @authorized("read", "sharinghub:catalog")
    async def get(self) -> None:
        self.write_json(await self.run(self.service.scheduler.status))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.write_json(await self.run(self.service.scheduler.trigger), status=202)
