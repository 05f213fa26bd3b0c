"""The front desk's week at a location: a row per provider (or room, or device), a cell per day listing
that day's appointments in short, each linking to its block on the day view."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from medspa.api import SessionDep
from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.tz import local_day_bounds, to_local
from medspa.resources import service as resources
from medspa.resources.schemas import LocationRead
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, Status
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.board import (
    STATUS_LABELS,
    VIEW_LABELS,
    Track,
    View,
    is_lapsed_hold,
    page_query,
    track_key,
    tracks_of,
)
from medspa.web.forms import LIST_LIMIT, page_day_and_view
from medspa.web.guards import PageActor, PageRoute, templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# A busy clinic books a few hundred visits a week; past this the page says it shows only the first ones.
WEEK_LIMIT = 3000


@dataclass(frozen=True)
class WeekItem:
    """One appointment as a line of the week: `9:15 AM HydraFacial · Nora V. · Booked`."""

    appointment: AppointmentRead
    local_start: datetime
    service_name: str
    client_short_name: str

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.appointment.status]

    @property
    def is_cancelled(self) -> bool:
        return self.appointment.status is Status.CANCELLED


@dataclass(frozen=True)
class WeekRow:
    track: Track
    cells: list[list[WeekItem]]  # one a day, Monday first


@dataclass(frozen=True)
class Week:
    location: LocationRead
    monday: date
    today: date
    view: View
    rows: list[WeekRow]
    appointment_count: int
    is_cut_short: bool  # more appointments than WEEK_LIMIT: only the first ones are listed

    @property
    def days(self) -> list[date]:
        return [self.monday + timedelta(days=offset) for offset in range(7)]

    @property
    def views(self) -> list[tuple[View, str]]:
        return list(VIEW_LABELS.items())

    @property
    def view_label(self) -> str:
        return VIEW_LABELS[self.view]

    @property
    def previous_monday(self) -> date:
        return self.monday - timedelta(days=7)

    @property
    def next_monday(self) -> date:
        return self.monday + timedelta(days=7)

    @property
    def is_this_week(self) -> bool:
        return monday_of(self.today) == self.monday

    @property
    def day_to_open(self) -> date:
        """The day the week's "Day" link opens: today in this week, else the week's Monday."""
        return self.today if self.is_this_week else self.monday

    def query(self, day: date, view: View | None = None) -> str:
        return page_query(day, view or self.view)


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def short_name(full_name: str) -> str:
    """`Nora V.` for `Nora Vale`: enough for the desk to tell visits apart in a week's cell."""
    first, *rest = full_name.split() or ["?"]
    return f"{first} {rest[-1][0]}." if rest else first


def build_week(session: Session, *, actor: Actor, location_id: uuid.UUID, day: date, view: View) -> Week:
    """The week (Monday to Sunday on the location's wall clock) that holds the local date `day`, its rows
    by `view`. Appointments come in one query; cancelled ones are listed (and marked), holds that ran
    out are not. NotFoundError for an unknown location."""
    location = resources.get_location(session, actor=actor, location_id=location_id)
    monday = monday_of(day)
    start, _ = local_day_bounds(monday, location.time_zone)
    _, end = local_day_bounds(monday + timedelta(days=6), location.time_zone)
    now = clock.now()
    page = scheduling.list_appointments(
        session, actor=actor, location_id=location.id, starts_from=start, starts_before=end, limit=WEEK_LIMIT
    )
    appointments = [a for a in page.items if not is_lapsed_hold(a, now)]
    names = clients.client_names(session, actor=actor, client_ids={a.client_id for a in appointments})
    services = {
        s.id: s.name
        for s in catalog.list_services(session, actor=actor, limit=LIST_LIMIT, include_inactive=True).items
    }
    rows = {
        track.key: WeekRow(track, [[] for _ in range(7)])
        for track in tracks_of(
            session, actor=actor, location_id=location.id, view=view, appointments=appointments
        )
    }
    for a in appointments:  # in order of their starts
        local_start = to_local(a.starts_at, location.time_zone)
        rows[track_key(view, a)].cells[(local_start.date() - monday).days].append(
            WeekItem(
                appointment=a,
                local_start=local_start,
                service_name=services.get(a.service_id, "(unknown service)"),
                client_short_name=short_name(names.get(a.client_id, "(unknown client)")),
            )
        )
    return Week(
        location=location,
        monday=monday,
        today=to_local(now, location.time_zone).date(),
        view=view,
        rows=list(rows.values()),
        appointment_count=len(appointments),
        is_cut_short=page.total > len(page.items),
    )


@router.get("/locations/{location_id}/week")
@permits("appointments", "read")
def week_view(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    on: Annotated[str, Query(alias="date")] = "",
    by: str = "",
) -> Response:
    """The week holding `date` (this week when none is given) at the location, its rows by provider (the
    default), room or device (`by`). A bad date shows this week, an unknown `by` the providers' rows,
    with the reason (422)."""
    location = resources.get_location(session, actor=actor, location_id=location_id)
    day, view, message = page_day_and_view(location, on, by)
    week = build_week(session, actor=actor, location_id=location.id, day=day, view=view)
    context = {
        "actor": actor,
        "week": week,
        "locations": resources.list_locations(session, actor=actor, limit=LIST_LIMIT).items,
        "message": message,
        "kind": "error",
    }
    return templates.TemplateResponse(request, "week.html", context, status_code=422 if message else 200)
