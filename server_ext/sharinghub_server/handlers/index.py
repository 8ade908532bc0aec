"""``sharinghub/api/index``: crawl status, and crawl now."""

from __future__ import annotations

from tornado import web

from .base import SharingHubHandler


class IndexHandler(SharingHubHandler):
    @web.authenticated
    async def get(self) -> None:
        self.write_json(await self.run(self.service.scheduler.status))

    @web.authenticated
    async def post(self) -> None:
        self.write_json(await self.run(self.service.scheduler.trigger), status=202)
