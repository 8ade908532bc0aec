"""Route table of the extension (relative to the Jupyter ``base_url``)."""

from __future__ import annotations

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
        (rf"{API}/dvc/jobs/([0-9a-f]+)/?", JobHandler),
        (rf"{API}/publish/new/?", NewProjectHandler),
        (rf"{API}/publish/dataset/?", PublishDatasetHandler),
        (rf"{API}/publish/metadata/?", MetadataHandler),
        (rf"{API}/publish/permissions/?", PermissionsHandler),
    ]
    from .mlflow import MLflowHandler, MLflowProxyHandler

    found.append((r"/sharinghub/mlflow(/.*)?",
                  MLflowProxyHandler if external_mlflow else MLflowHandler))
    return found
