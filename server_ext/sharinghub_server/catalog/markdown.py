"""The few things the catalog reads out of a README body: images, links, DOIs."""

from __future__ import annotations

import re

#: Every variable part stops at the character that starts the next candidate (``[`` for a
#: text, ``(`` for a href, ``<`` for a tag, a word boundary for an attribute), so a body of
#: ``![a](![a](...`` or ``<img <img ...`` is scanned in linear time, not quadratic (such
#: bodies took 5 s at 32 KB and minutes at 100 KB). A href may hold one level of balanced
#: parentheses, as CommonMark allows (DOIs like ``10.1002/(SICI)...``).
_HREF = r"(?P<href>(?:[^()\s]|\([^()\s]*\))+)(?:\s+\"[^\"]*\")?\)"
_IMAGE = re.compile(r"!\[(?P<alt>[^\[\]]*)\]\(" + _HREF)
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\[\]]*)\]\(" + _HREF)
_HTML_IMG = re.compile(r"<img\s[^<>]*>", re.IGNORECASE)
_ATTR = re.compile(r"\b(\w+)\s*=\s*[\"']([^\"']*)[\"']")
DOI_URL = re.compile(r"https?://(?:dx\.)?doi\.org/(?P<doi>10\.\d{4,9}/[-._;/:a-zA-Z0-9()]+)")


def images(body: str) -> list[tuple[str, str]]:
    """(alt text, href) of every image, markdown or HTML ``<img>``."""
    found = [(m["alt"], m["href"]) for m in _IMAGE.finditer(body)]
    for tag in _HTML_IMG.findall(body):
        attrs = {k.lower(): v for k, v in _ATTR.findall(tag)}
        if "src" in attrs:
            found.append((attrs.get("alt", ""), attrs["src"]))
    return found


def links(body: str) -> list[tuple[str, str]]:
    """(text, href) of every markdown link that is not an image."""
    return [(m["text"], m["href"]) for m in _LINK.finditer(body)]


def citations(body: str) -> tuple[tuple[str, str] | None, list[dict[str, str]]]:
    """The README's DOI and other publications, the way SharingHub reads them: the first DOI
    link is the item's ``(doi, citation)``, the others are publications; a bare DOI URL counts
    when no link has one."""
    doi: tuple[str, str] | None = None
    publications: list[dict[str, str]] = []
    for text, href in links(body):
        m = DOI_URL.search(href)
        if not m:
            continue
        citation = text.removeprefix("DOI:").strip()
        if doi is None:
            doi = (m["doi"], citation)
        elif m["doi"] != doi[0]:
            publications.append({"doi": m["doi"], "citation": citation})
    if doi is None and (m := DOI_URL.search(body)):
        doi = (m["doi"], "")
    return doi, publications
