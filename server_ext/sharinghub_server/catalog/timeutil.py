"""Parsing the dates people write in front matter and the ones GitLab sends."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any


def parse_datetime(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from a YAML date/datetime or an ISO 8601 string; None if
    the value is empty. Raises ValueError for what is not a date."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time.min)
    elif isinstance(value, str):
        text = value.strip()
        if text in ("..", "null", "None"):
            return None
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    else:
        raise ValueError(f"{value!r} is not a date")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        return dt.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        raise ValueError(f"{value!s:.60} is out of range once in UTC") from None


def iso(dt: datetime | None) -> str | None:
    """RFC 3339 with a ``Z``, the form STAC expects."""
    if dt is None:
        return None
    dt = dt.astimezone(timezone.utc)
    # not strftime: glibc writes year 1 as "1", not "0001"
    text = (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    return text + "Z"
