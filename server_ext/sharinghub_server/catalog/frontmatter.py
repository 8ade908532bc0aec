"""YAML front matter of a README: ``---`` block first, markdown body after."""

from __future__ import annotations

import re
from typing import Any

import yaml

#: libyaml's parser (PyYAML's C binding) with the same safe constructors: about ten times
#: faster than the pure-Python one, which every crawled README would otherwise go through
#: (twice: the GitLab source checks for a license key too)
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", None)

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)",
                           re.DOTALL | re.MULTILINE)


def parse_readme(text: str | None) -> tuple[dict[str, Any], str, str | None]:
    """Split a README into (front matter, body, problem).

    Never raises: broken YAML gives an empty mapping, the whole text as body and a problem
    message, so the project still becomes an item.
    """
    if not text:
        return {}, "", None
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text.strip(), None
    body = text[match.end():].strip()
    try:
        data = load_yaml(match.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return {}, body, f"README front matter is not valid YAML{where}: {problem}"
    if data is None:
        return {}, body, None
    if not isinstance(data, dict):
        return {}, body, f"README front matter is a {type(data).__name__}, not a mapping"
    return {str(k): v for k, v in data.items()}, body, None


def load_yaml(text: str) -> Any:
    """``yaml.safe_load``, faster: libyaml parses; when it refuses a document, the
    pure-Python parser decides, so that what is accepted and the error messages (shown in
    the crawl status) stay the pure-Python ones."""
    if _FAST_LOADER is not None:
        try:
            return yaml.load(text, Loader=_FAST_LOADER)  # a safe loader
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def with_front_matter(text: str | None, yaml_text: str) -> str:
    """``text`` (a README) with its front matter replaced by ``yaml_text`` (added if it had
    none); the body is kept byte for byte."""
    text = text or ""
    match = _FRONT_MATTER.match(text)
    body = text[match.end():] if match else text
    if body and not body.startswith(("\n", "\r\n")) and match is None:
        body = "\n" + body
    return f"---\n{yaml_text}---\n{body}"
