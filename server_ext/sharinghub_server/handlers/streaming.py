"""Relaying another server's answer (GitLab's files, an external MLflow's) to the client as it
arrives, at the client's pace and of any size.

Each chunk is written to the client and the next one read from upstream only once the client
took it (the streaming callback returns the flush future, which tornado's client awaits): a
client that stops reading stops the upstream download, and the server holds about one chunk.
An answer that breaks off midway ends with the client's connection closed, so that it looks
incomplete (a short body, no final chunk), never like a whole file.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tornado import httpclient, iostream, web

from .base import UpstreamHead

log = logging.getLogger(__name__)

#: no size ceiling (tornado's client stops at 100 MB by default)
MAX_BODY = 1 << 50


def stream_client(settings: dict[str, Any]) -> httpclient.AsyncHTTPClient:
    """The one client of every relay, shared by the server's handlers; its own instance, so
    that the raised body limit does not apply to other users of tornado's default client."""
    client = settings.get("sharinghub_stream_client")
    if client is None:
        client = settings.setdefault("sharinghub_stream_client", httpclient.AsyncHTTPClient(
            force_instance=True, max_clients=64, max_body_size=MAX_BODY))
    return client


class RelayingHandler(web.RequestHandler):
    """Mixin of the handlers that relay: knows when the client went away."""

    client_gone = False

    def on_connection_close(self) -> None:
        self.client_gone = True  # the next upstream chunk stops the upstream download
        super().on_connection_close()


class Relay:
    """One upstream answer relayed to ``handler``'s client.

    ``show(head)`` is called once, with the upstream status and headers, before the first
    byte of the body (or at the end for an empty one): it sets the client's status and
    headers and says whether this body goes to the client (False: it is dropped, e.g. a
    redirect's or an error's). ``keep`` also keeps the relayed body (for the MLflow hooks).
    """

    def __init__(self, handler: RelayingHandler, show: Callable[[UpstreamHead], bool], *,
                 keep: bool = False) -> None:
        self.head = UpstreamHead()
        self.kept: list[bytes] = []
        self._handler = handler
        self._show = show
        self._keep = keep
        self._shown: bool | None = None

    def start(self) -> bool:
        """Whether the body goes to the client (asks ``show`` the first time)."""
        if self._shown is None:
            self._shown = self._show(self.head)
        return self._shown

    def _on_chunk(self, chunk: bytes) -> Awaitable[None] | None:
        if self._handler.client_gone:
            raise iostream.StreamClosedError()  # stops the upstream download
        if not self.start():
            return None
        if self._keep:
            self.kept.append(chunk)
        self._handler.write(chunk)
        return self._handler.flush()

    async def fetch(self, url: str, *, unreachable: str, **options: Any
                    ) -> httpclient.HTTPResponse:
        """Fetch ``url`` (redirects not followed, body not decompressed; ``options`` are
        :class:`~tornado.httpclient.HTTPRequest`'s) relaying its body; the response once the
        whole body arrived. Before any byte went to the client, a failure is a 502 saying
        ``unreachable``; after, the client's connection is closed and the request ends
        (:class:`~tornado.web.Finish`)."""
        request = httpclient.HTTPRequest(
            url, streaming_callback=self._on_chunk, header_callback=self.head,
            follow_redirects=False, decompress_response=False, connect_timeout=20,
            request_timeout=3600, **options)
        try:
            return await stream_client(self._handler.settings).fetch(request, raise_error=False)
        except (OSError, httpclient.HTTPClientError, iostream.StreamClosedError) as e:
            if not self._shown and not self._handler.client_gone:
                raise web.HTTPError(502, unreachable) from None
            why = "the client left" if self._handler.client_gone else f"upstream: {e}"
            log.warning("sharinghub: %s cut short (%s)", url.split("?")[0], why)
            self._handler.request.connection.close()  # the client sees an incomplete answer
            raise web.Finish() from None
