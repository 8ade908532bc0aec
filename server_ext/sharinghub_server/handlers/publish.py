"""``sharinghub/api/publish/...``: new projects, dataset versions, metadata edits, and whether
the user may publish (the core is :mod:`..publish.service`). Resource ``sharinghub:publish``:
read whether one may publish; write: the rest."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..service import BadRequest
from ..stac import responses
from .base import SharingHubHandler


class NewProjectHandler(SharingHubHandler):
    auth_resource = "sharinghub:publish"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        item = await self.run(self.service.publisher.new_project, self.json_body())
        self.write_json(responses.item(self.api_root, item), status=201)


class PublishDatasetHandler(SharingHubHandler):
    auth_resource = "sharinghub:publish"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        job = await self.run(self.service.publisher.start_publish, self.json_body())
        self.write_json({"job": job.id}, status=202)


class MetadataHandler(SharingHubHandler):
    auth_resource = "sharinghub:publish"

    @web.authenticated
    @authorized
    async def patch(self) -> None:
        item = await self.run(self.service.publisher.update_metadata, self.json_body())
        self.write_json(responses.item(self.api_root, item))


class PermissionsHandler(SharingHubHandler):
    auth_resource = "sharinghub:publish"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        item = self.get_argument("item", "")
        if not item:
            raise BadRequest("?item= is required")
        self.write_json(await self.run(self.service.publisher.permissions, item))
