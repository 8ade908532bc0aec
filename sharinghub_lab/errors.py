"""The one exception of the notebook side, and the one way an exception becomes the line a
user reads (its own module: the magics and panels import it without loading the HTTP
stack)."""

from __future__ import annotations


class SharingHubError(Exception):
    """What went wrong, in one line a user can act on (``status``: the HTTP status, if any)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``exc``'s message (its type's name when it has none), at most
    ``limit`` characters: libraries' messages can hold whole tracebacks or documents."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]


def one_line(exc: BaseException) -> str:
    """``exc`` as the single line the magics and panels show: ours as they are (already
    one line), anything else as ``Type: first line``."""
    if isinstance(exc, SharingHubError):
        text = str(exc)
    else:
        first = first_line(exc) if str(exc).strip() else ""
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return " ".join(text.split())
