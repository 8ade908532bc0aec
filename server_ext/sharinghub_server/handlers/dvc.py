"""``sharinghub/api/dvc/...``: dataset versions and pull jobs. Resource ``sharinghub:dvc``:
read the versions and a job's progress; write: start a pull (into the workspace), cancel a
job."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..service import BadRequest
from .base import SharingHubHandler


class VersionsHandler(SharingHubHandler):
    auth_resource = "sharinghub:dvc"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        item = self.get_argument("item", "")
        if not item:
            raise BadRequest("?item= is required")
        self.write_json(await self.run(self.service.dvc_versions, item))


class PullHandler(SharingHubHandler):
    auth_resource = "sharinghub:dvc"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        if not isinstance(body, dict) or not isinstance(body.get("item"), str):
            raise BadRequest('the body must be {"item": ID, "rev"?: REV, "dest"?: PATH}')
        job = await self.run(self.service.start_pull, body["item"], body.get("rev"),
                             body.get("dest"))
        self.write_json({"job": job.id}, status=202)


class JobHandler(SharingHubHandler):
    auth_resource = "sharinghub:dvc"

    @web.authenticated
    @authorized
    def get(self, job_id: str) -> None:
        self.write_json(self.service.job(job_id).to_json())

    @web.authenticated
    @authorized
    def delete(self, job_id: str) -> None:
        self.write_json(self.service.cancel_job(job_id).to_json())
