"""``sharinghub/mlflow/``: MLflow's REST API, artifacts and UI behind Jupyter's authentication.

The MLflow UI sends no ``_xsrf`` token, so instead of Jupyter's XSRF check a cookie-
authenticated state change must come from this origin (Origin or Referer); requests with a
token (the MLflow client's ``MLFLOW_TRACKING_TOKEN``) need no such check.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from jupyter_server.base.handlers import JupyterHandler
from tornado import web
from tornado.wsgi import WSGIContainer

_SAFE = ("GET", "HEAD", "OPTIONS")


class MLflowHandler(JupyterHandler):
    async def prepare(self) -> None:
        await super().prepare()  # authenticates: login redirect for GET, else 403
        if self._finished:
            return
        if self.current_user is None:
            raise web.HTTPError(403, "authentication required")
        embedded = self.settings["sharinghub_mlflow"]
        container = self.settings.get("sharinghub_mlflow_container")
        if container is None:
            # the first requests wait for the load instead of failing
            app = await asyncio.wrap_future(embedded.wsgi_app())
            container = self.settings.setdefault(
                "sharinghub_mlflow_container",
                WSGIContainer(app, executor=self.settings["sharinghub_executor"]))
        container(self.request)
        self._finished = True
        self.on_finish()

    def check_xsrf_cookie(self) -> None:
        if not hasattr(self, "_jupyter_current_user"):
            return  # tornado asks before authentication; prepare() asks again after it
        if self.request.method in _SAFE or self.token_authenticated or not self.cookies:
            return
        origin = self.request.headers.get("Origin") or self.request.headers.get("Referer")
        if not origin or urlsplit(origin).netloc != self.request.host:
            raise web.HTTPError(403, "cross-origin request to MLflow refused")

    def _unused(self) -> None:  # every method goes through prepare()
        raise web.HTTPError(405)

    get = post = put = patch = delete = head = options = _unused
