"""``sharinghub/api/openapi.json``: the OpenAPI document of the extension's API."""

from __future__ import annotations

from tornado import web

from ..stac.openapi import openapi_document
from .base import SharingHubHandler


class OpenAPIHandler(SharingHubHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json(openapi_document(self.api_root),
                        content_type="application/vnd.oai.openapi+json;version=3.0")
