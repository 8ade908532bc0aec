"""Hrefs in the index are relative to the API root (``<base_url>sharinghub/api/``), so one
index serves any server; the server makes them absolute when it answers."""

from __future__ import annotations

from urllib.parse import quote, urlencode, urljoin, urlsplit


def is_absolute(href: str) -> bool:
    return bool(urlsplit(href).scheme)


def download_href(item_id: str, path: str, ref: str | None) -> str:
    """The download endpoint for one repository file of a project."""
    href = f"download/{quote(item_id)}/-/{quote(path.lstrip('/'))}"
    return f"{href}?{urlencode({'ref': ref})}" if ref else href


def item_href(collection: str, item_id: str) -> str:
    return f"stac/collections/{quote(collection)}/items/{quote(item_id)}"


def resolve(href: str, item_id: str, ref: str | None) -> str:
    """A href written in a README or front matter: absolute URLs stay, repository paths
    (``./img.png``, ``docs/a.pdf``) point at the download endpoint."""
    try:
        if is_absolute(href) or href.startswith("//"):
            return href
        path = urlsplit(href).path
    except ValueError:  # "http://[x": not a URL (an IPv6 host left open): a file name, then
        return download_href(item_id, href, ref)
    path = urljoin("/", path).lstrip("/")  # normalises ./ and ../ inside the repository
    return download_href(item_id, path, ref)


def absolutize(obj: dict, api_base: str) -> dict:
    """A copy of a STAC object whose relative link and asset hrefs are made absolute."""
    base = api_base if api_base.endswith("/") else api_base + "/"
    out = dict(obj)
    if "links" in out:
        out["links"] = [
            {**link, "href": urljoin(base, link["href"])} if not is_absolute(link["href"]) else link
            for link in out["links"]
        ]
    if "assets" in out:
        out["assets"] = {
            key: {**a, "href": urljoin(base, a["href"])} if not is_absolute(a["href"]) else a
            for key, a in out["assets"].items()
        }
    return out
