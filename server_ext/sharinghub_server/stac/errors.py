"""The one error type of the STAC API layer (kept apart so that every stac module can
raise it without import cycles)."""

from __future__ import annotations


class StacError(Exception):
    """A request the STAC API refuses, reported to the client as ``{"code", "description"}``
    with an HTTP ``status`` (400 for bad parameters, 404 for unknown resources)."""

    def __init__(self, description: str, *, status: int = 400, code: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.code = code or ("NotFound" if status == 404 else "InvalidParameterValue")

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "description": self.description}
