"""What the pages share: parsing form and query values leniently, and list sizes."""

from __future__ import annotations

import uuid
from datetime import date, time

from medspa.kit.schemas import EARLIEST_DATE, LATEST_DATE, in_accepted_range

LIST_LIMIT = 500
DATE_PROBLEM = f"Give a date from {EARLIEST_DATE.isoformat()} to {LATEST_DATE.isoformat()}."


def form_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def form_time(value: str) -> time | None:
    """A wall-clock time given as `HH:MM`, or None."""
    try:
        wall = time.fromisoformat(value) if value else None
    except ValueError:
        return None
    return wall.replace(second=0, microsecond=0) if wall is not None and wall.tzinfo is None else None


def form_date(value: str) -> date | None:
    """The date given, or None when there is none, it is not a date, or it lies outside the accepted
    range (`DATE_PROBLEM` says which)."""
    try:
        day = date.fromisoformat(value) if value else None
    except ValueError:
        return None
    return day if day is None or in_accepted_range(day) else None
