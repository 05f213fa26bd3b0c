"""What the pages share: parsing form and query values leniently, and list sizes."""

from __future__ import annotations

import uuid
from datetime import date, time
from urllib.parse import parse_qs, urlsplit

from fastapi import Request

from medspa.kit.schemas import EARLIEST_DATE, LATEST_DATE, in_accepted_range
from medspa.resources.schemas import LocationRead
from medspa.web.board import VIEW_PROBLEM, View, local_today

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


def form_view(value: str) -> View | None:
    """The columns asked for (`by=provider|room|device`), the provider's when none is; None for any other
    value (`board.VIEW_PROBLEM` says which)."""
    try:
        return View(value or View.PROVIDER)
    except ValueError:
        return None


def view_in_use(request: Request) -> View:
    """The columns of the page a request comes from, to draw the day it answers with in them: the
    request's own `by`, else the `by` of the page's address, which HTMX sends (`HX-Current-URL`) with a
    block's buttons, the Move form or the booking form. The provider's when there is none or it is
    unknown: a matter of how the day is drawn, never of what may be done."""
    value = request.query_params.get("by") or ""
    if not value:
        page = urlsplit(request.headers.get("hx-current-url", ""))
        value = (parse_qs(page.query).get("by") or [""])[-1]
    return form_view(value) or View.PROVIDER


def page_day_and_view(location: LocationRead, on: str, by: str) -> tuple[date, View, str | None]:
    """The day a day or week page shows (`on`; today at the location when there is none or it is bad),
    its view (`by`; the provider's when unknown), and what was wrong with them in words (None: nothing)."""
    day, view = form_date(on), form_view(by)
    problems = ([DATE_PROBLEM] if on and day is None else []) + ([VIEW_PROBLEM] if view is None else [])
    return day or local_today(location), view or View.PROVIDER, " ".join(problems) or None
