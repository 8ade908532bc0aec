"""The one error type of the STAC API layer (kept apart so that every stac module can
raise it without import cycles)."""

from __future__ import annotations

import re

#: characters of an error's description at most: what it quotes of the request is cut short
MAX_DESCRIPTION = 240
_BREAKS = re.compile(r"\s*[\r\n\v\f\u2028\u2029]+\s*")


def one_line(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """An error description as one line of at most ``limit`` characters (line breaks, in
    the message or in what it quotes of the request, become spaces)."""
    text = _BREAKS.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class StacError(Exception):
    """A request the STAC API refuses, reported to the client as ``{"code", "description"}``
    with an HTTP ``status`` (400 for bad parameters, 404 for unknown resources)."""

    def __init__(self, description: str, *, status: int = 400, code: str | None = None) -> None:
        description = one_line(description)
        super().__init__(description)
        self.description = description
        self.status = status
        self.code = code or ("NotFound" if status == 404 else "InvalidParameterValue")

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "description": self.description}
