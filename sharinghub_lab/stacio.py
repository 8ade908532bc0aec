"""pystac objects from the server whose links resolve: ``item.get_collection()``,
``link.get_href()`` and the like read this Jupyter server's STAC documents, which need its
token. pystac resolves through its default :class:`~pystac.StacIO`; this one adds the token
for the connected server's origin only and reads any other host as pystac would."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pystac
from pystac.stac_io import DefaultStacIO

from .client import TIMEOUT, current
from .errors import SharingHubError


class ServerStacIO(DefaultStacIO):
    def read_text_from_href(self, href: str) -> str:
        client = current()
        if urlsplit(href)[:2] != urlsplit(client.url)[:2]:
            return super().read_text_from_href(href)
        response = client.session.get(href, timeout=TIMEOUT)
        if response.status_code >= 400:
            raise SharingHubError(f"{href}: HTTP {response.status_code}", response.status_code)
        return response.text


def item(data: dict[str, Any]) -> pystac.Item:
    """A served item as a ``pystac.Item`` (the default StacIO becomes
    :class:`ServerStacIO`, unless the user chose another one)."""
    if pystac.StacIO._default_io in (None, DefaultStacIO):
        pystac.StacIO.set_default(ServerStacIO)
    return pystac.Item.from_dict(data)
