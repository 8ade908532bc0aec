"""``sharinghub/api/openapi.json``: the OpenAPI document of the extension's API."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..stac.openapi import openapi_document
from .base import SharingHubHandler


class OpenAPIHandler(SharingHubHandler):
    """Resource ``sharinghub:catalog``, read."""

    auth_resource = "sharinghub:catalog"

    @web.authenticated
    @authorized
    def get(self) -> None:
        self.write_json(openapi_document(self.api_root, self.service.collection_ids),
                        content_type="application/vnd.oai.openapi+json;version=3.0")
