"""``sharinghub/api/dvc/...``: dataset versions and pull jobs."""

from __future__ import annotations

from tornado import web

from ..service import BadRequest
from .base import SharingHubHandler


class VersionsHandler(SharingHubHandler):
    @web.authenticated
    async def get(self) -> None:
        item = self.get_argument("item", "")
        if not item:
            raise BadRequest("?item= is required")
        self.write_json(await self.run(self.service.dvc_versions, item))


class PullHandler(SharingHubHandler):
    @web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        if not isinstance(body, dict) or not isinstance(body.get("item"), str):
            raise BadRequest('the body must be {"item": ID, "rev"?: REV, "dest"?: PATH}')
        job = await self.run(self.service.start_pull, body["item"], body.get("rev"),
                             body.get("dest"))
        self.write_json({"job": job.id}, status=202)


class JobHandler(SharingHubHandler):
    @web.authenticated
    def get(self, job_id: str) -> None:
        self.write_json(self.service.job(job_id).to_json())

    @web.authenticated
    def delete(self, job_id: str) -> None:
        self.write_json(self.service.cancel_job(job_id).to_json())
