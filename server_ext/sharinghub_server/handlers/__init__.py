"""Route table of the extension (relative to the Jupyter ``base_url``).

Every path under ``sharinghub/api`` that no route serves (an unknown endpoint, a malformed
download path, a trailing segment too many) is :class:`~.base.NotFoundHandler`'s JSON 404,
never Jupyter's page; job ids are not checked by the pattern (an unknown one, whatever its
characters, is the service's "no job" 404). Which authorization resource each handler asks
for: :mod:`.base`."""

from __future__ import annotations

from .base import NotFoundHandler
from .download import DownloadHandler
from .dvc import JobHandler, PullHandler, VersionsHandler
from .index import IndexHandler
from .openapi import OpenAPIHandler
from .publish import MetadataHandler, NewProjectHandler, PermissionsHandler, PublishDatasetHandler
from .stac import (
    CollectionHandler,
    CollectionsHandler,
    ConformanceHandler,
    ItemHandler,
    ItemsHandler,
    LandingHandler,
    QueryablesHandler,
    SearchHandler,
)

API = r"/sharinghub/api"
STAC = rf"{API}/stac"


def routes(*, external_mlflow: bool = False) -> list[tuple]:
    """Every route of the extension (the auth test enumerates these)."""
    found = [
        (rf"{STAC}/?", LandingHandler),
        (rf"{STAC}/conformance/?", ConformanceHandler),
        (rf"{STAC}/queryables/?", QueryablesHandler),
        (rf"{STAC}/search/?", SearchHandler),
        (rf"{STAC}/collections/?", CollectionsHandler),
        (rf"{STAC}/collections/([^/]+)/?", CollectionHandler),
        (rf"{STAC}/collections/([^/]+)/queryables/?", QueryablesHandler),
        (rf"{STAC}/collections/([^/]+)/items/?", ItemsHandler),
        (rf"{STAC}/collections/([^/]+)/items/(.+?)/?", ItemHandler),
        (rf"{API}/openapi.json", OpenAPIHandler),
        (rf"{API}/index/?", IndexHandler),
        (rf"{API}/download/(.+?)/-/(.+)", DownloadHandler),
        (rf"{API}/dvc/versions/?", VersionsHandler),
        (rf"{API}/dvc/pull/?", PullHandler),
        (rf"{API}/dvc/jobs/(.+?)/?", JobHandler),
        (rf"{API}/publish/new/?", NewProjectHandler),
        (rf"{API}/publish/dataset/?", PublishDatasetHandler),
        (rf"{API}/publish/metadata/?", MetadataHandler),
        (rf"{API}/publish/permissions/?", PermissionsHandler),
        (rf"{API}(/.*)?", NotFoundHandler),  # last: whatever the others do not serve
    ]
    from .mlflow import MLflowHandler, MLflowProxyHandler

    found.append((r"/sharinghub/mlflow(/.*)?",
                  MLflowProxyHandler if external_mlflow else MLflowHandler))
    return found
