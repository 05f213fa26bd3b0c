"""A location's settings, for the people who set the clinic up: its opening hours and closures, each
provider's weekly shifts, breaks and time off, its rooms, its devices (and their maintenance) and the
service catalogue.

Five pages, each a tab: `/locations/{id}/settings` (hours, closures), `.../settings/staff`,
`.../settings/rooms`, `.../settings/devices`, `.../settings/services`. Each page offers nothing but
changes, so each declares the "manage" permission of what it changes; a role without it gets 403. The
services are the organization's, not the location's: their tab sits under a location for the top bar.
A sixth tab, `.../settings/integrations`, is `web.connections`'s (the organization's connections to
other systems, readable by whoever may read them, changed only by whoever may manage them).

Every form goes through the service function the API calls, inside a savepoint: bad input answers 422
with the page and the reason, nothing saved; a refusal of the service (a `MedspaError`) the page and its
message, with the error's status. A room, device or provider of another location is not found here
(404), though the API, which is not scoped to a location, would change it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from medspa.api import SessionDep
from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceCreate, ServiceUpdate
from medspa.kit import audit_trail, clock
from medspa.kit.errors import MedspaError, NotFoundError, ValidationFailedError
from medspa.kit.money import format_cents
from medspa.kit.tz import local_label, local_to_utc, to_local
from medspa.resources import service as resources
from medspa.resources.schemas import (
    MAX_WEEKLY_SPANS,
    ClosureCreate,
    DeviceCreate,
    DeviceRead,
    DeviceUpdate,
    LocationRead,
    LocationUpdate,
    PeriodCreate,
    ProviderRead,
    ProviderUpdate,
    RoomCreate,
    RoomRead,
    RoomUpdate,
    WeeklySpan,
)
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.forms import LIST_LIMIT, form_date, form_time
from medspa.web.guards import PageActor, PageRoute, SameOrigin, readable, templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Blank rows under a week's spans, for adding some; a form sends at most this many rows in all.
BLANK_ROWS = 3
MAX_ROWS = MAX_WEEKLY_SPANS + 2 * len(WEEKDAYS)
# A closure is one row a date: a period of more than a year is a mistake, not a holiday.
MAX_CLOSURE_DAYS = 366
UPCOMING_CLOSURE_DAYS = 2 * 366
# The dates a closure, time off or maintenance may fall on: back a year (to note what happened), ahead
# as far as the longest booking horizon.
NEAR_DAYS = (366, 3660)
_DOLLARS = re.compile(r"^\d{1,9}(\.\d{1,2})?$")
# How the fields of the forms are named in a message.
LABELS = {
    "name": "Name",
    "title": "Title",
    "room_type": "Room type",
    "device_type": "Device type",
    "cooldown_minutes": "Cool-down minutes",
    "category": "Category",
    "duration_minutes": "Duration",
    "setup_minutes": "Set-up minutes",
    "cleanup_minutes": "Clean-up minutes",
    "required_skill": "Required skill",
    "required_license": "Required license",
    "room_types": "Room types",
    "price_cents": "Price",
    "cost_cents": "Cost",
    "post_care_instructions": "Aftercare instructions",
    "follow_up_days": "Follow-up days",
    "follow_up_days_max": "Follow-up window ends",
    "series_sessions": "Sessions in a course",
    "series_interval_days": "Days between sessions",
    "reason": "Reason",
    "opening_hours": "Opening hours",
    "shifts": "Shifts",
    "breaks": "Breaks",
    "connector": "System",
    "secret": "Shared secret",
    "signature_header": "Signature header",
    "signature_encoding": "Signature encoding",
    "poll_url": "API address",
    "poll_account": "Account",
    "poll_key": "API key",
    "kind": "Our record",
    "external_id": "Their id",
    "record_id": "Our record",
}
# What a field whose text does not match its pattern should hold (codes, unless named here).
PATTERN_HINTS = {
    "signature_header": "use letters, digits and - only, e.g. X-Zenoti-Signature",
    "poll_account": "use letters, digits, ., - and _ only, e.g. -99",
}
CODE_HINT = "use lowercase letters, digits, - and _ only, e.g. laser_room"
Schedule = Literal["shifts", "breaks"]
Tab = tuple[str, str, str, str, str]  # (section, title, path suffix, resource and action it needs)
TABS: tuple[Tab, ...] = (
    ("location", "Hours and closures", "", "locations", "manage"),
    ("staff", "Staff", "/staff", "providers", "manage"),
    ("rooms", "Rooms", "/rooms", "rooms", "manage"),
    ("devices", "Devices", "/devices", "devices", "manage"),
    ("services", "Services", "/services", "services", "manage"),
    ("integrations", "Integrations", "/integrations", "integrations", "read"),
)


# --- reading the forms --------------------------------------------------------------------------------


def _problem_text(error: ValidationError) -> str:
    """The problems pydantic found, as an owner reads them: the field's label and what is wrong."""
    problems = []
    for item in error.errors():
        names = [str(part) for part in item["loc"] if isinstance(part, str)]
        label = LABELS.get(names[0], names[0].replace("_", " ")) if names else "The form"
        if item["type"] == "string_pattern_mismatch":
            detail = PATTERN_HINTS.get(names[-1] if names else "", CODE_HINT)
        else:  # a validator's own words, without pydantic's "Value error, " before them
            detail = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{label}: {detail}")
    return "; ".join(dict.fromkeys(problems))


def _whole_minutes_or_zero(value: str) -> str:
    return value.strip() or "0"


def _cents(value: str, label: str) -> int:
    """A form's amount in dollars (`120`, `120.5`, `$1,200.00`) in cents."""
    text = value.strip().removeprefix("$").replace(",", "")
    if not _DOLLARS.match(text):
        raise ValidationFailedError(label, "give an amount in dollars, like 120 or 120.50")
    whole, _, part = text.partition(".")
    return int(whole) * 100 + int(part.ljust(2, "0"))


def dollars(cents: int) -> str:
    """Cents as the price field shows them: `120.00`."""
    return f"{cents // 100}.{cents % 100:02d}"


def _codes(value: str) -> list[str]:
    return [code.strip() for code in value.split(",") if code.strip()]


def _weekday(value: str, row: int) -> int:
    if value.strip() not in {str(day) for day in range(len(WEEKDAYS))}:
        raise ValidationFailedError(f"Row {row}", "choose a day of the week")
    return int(value)


def _near_date(value: str, label: str) -> date:
    """A date of the form within `NEAR_DAYS` either side of today (UTC): a closure, time off or
    maintenance further off is a typing mistake."""
    day = form_date(value.strip())
    today = clock.now().date()
    first, last = today - timedelta(days=NEAR_DAYS[0]), today + timedelta(days=NEAR_DAYS[1])
    if day is None or not first <= day <= last:
        raise ValidationFailedError(label, f"give a date from {first.isoformat()} to {last.isoformat()}")
    return day


def _wall(value: str, label: str) -> time:
    wall = form_time(value.strip())
    if wall is None:
        raise ValidationFailedError(label, "give a time such as 09:30")
    return wall


class WeekForm:
    """A week of spans as a form sends it: row by row a day, a start and an end. A row without times is
    blank; a row with one time, or without a day, is a problem."""

    def __init__(
        self,
        weekday: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies a parameter's default
        starts_at: Annotated[list[str], Form()] = [],  # noqa: B006
        ends_at: Annotated[list[str], Form()] = [],  # noqa: B006
    ) -> None:
        self.rows = (weekday, starts_at, ends_at)

    def spans(self) -> list[WeeklySpan]:
        """The spans in the order of the week; ValidationFailedError naming the row of a problem."""
        weekdays, starts, ends = self.rows
        if not 0 < len(weekdays) == len(starts) == len(ends) <= MAX_ROWS:
            raise ValidationFailedError("The week", f"send from 1 to {MAX_ROWS} rows of a day and two times")
        spans = []
        for row, (weekday, start, end) in enumerate(zip(weekdays, starts, ends, strict=True), start=1):
            if not start.strip() and not end.strip():
                continue
            day = _weekday(weekday, row)
            label = f"Row {row} ({WEEKDAYS[day]})"
            opens, closes = _wall(start, label), _wall(end, label)
            if closes <= opens:
                raise ValidationFailedError(label, "the end must be after the start")
            spans.append(WeeklySpan(weekday=day, starts_at=opens, ends_at=closes))
        spans.sort(key=lambda s: (s.weekday, s.starts_at))
        for before, after in pairwise(spans):
            if before.weekday == after.weekday and after.starts_at < before.ends_at:
                raise ValidationFailedError(WEEKDAYS[after.weekday], "two spans overlap")
        return spans


class PeriodForm:
    """A period from a local date and time to another, in the location's time zone: an empty start time
    is the start of its day, an empty end time the end of its day."""

    def __init__(
        self,
        from_date: Annotated[str, Form()] = "",
        from_time: Annotated[str, Form()] = "",
        until_date: Annotated[str, Form()] = "",
        until_time: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
    ) -> None:
        self.fields = (from_date, from_time, until_date, until_time)
        self.reason = reason

    def period(self, zone: str) -> PeriodCreate:
        from_date, from_time, until_date, until_time = self.fields
        first = _near_date(from_date, "From date")
        last = _near_date(until_date, "Until date") if until_date.strip() else first
        starts_at = self._instant(first, from_time, zone, "From")
        if until_time.strip():
            ends_at = self._instant(last, until_time, zone, "Until")
        else:
            ends_at = self._instant(last + timedelta(days=1), "", zone, "Until")
        if ends_at <= starts_at:
            raise ValidationFailedError("Until", "the end must be after the start")
        return PeriodCreate(starts_at=starts_at, ends_at=ends_at, reason=self.reason.strip())

    @staticmethod
    def _instant(day: date, wall: str, zone: str, label: str) -> datetime:
        instant = local_to_utc(day, _wall(wall, label) if wall.strip() else time(0), zone)
        if instant is None:
            raise ValidationFailedError(label, "that time does not exist that day (the clocks go forward)")
        return instant


class RoomForm:
    def __init__(self, name: Annotated[str, Form()] = "", room_type: Annotated[str, Form()] = "") -> None:
        self.fields = {"name": name.strip(), "room_type": room_type.strip()}


class DeviceForm:
    def __init__(
        self,
        name: Annotated[str, Form()] = "",
        device_type: Annotated[str, Form()] = "",
        cooldown_minutes: Annotated[str, Form()] = "",
    ) -> None:
        self.fields = {
            "name": name.strip(),
            "device_type": device_type.strip(),
            "cooldown_minutes": _whole_minutes_or_zero(cooldown_minutes),
        }


class ServiceForm:
    """A service's fields: prices in dollars, room types separated by commas; an empty license, device
    type, follow-up day or series field leaves none, empty set-up, clean-up or cost minutes are zero."""

    def __init__(
        self,
        name: Annotated[str, Form()] = "",
        category: Annotated[str, Form()] = "",
        duration_minutes: Annotated[str, Form()] = "",
        setup_minutes: Annotated[str, Form()] = "",
        cleanup_minutes: Annotated[str, Form()] = "",
        required_skill: Annotated[str, Form()] = "",
        required_license: Annotated[str, Form()] = "",
        room_types: Annotated[str, Form()] = "",
        device_type: Annotated[str, Form()] = "",
        price: Annotated[str, Form()] = "",
        cost: Annotated[str, Form()] = "",
        post_care_instructions: Annotated[str, Form()] = "",
        follow_up_days: Annotated[str, Form()] = "",
        follow_up_days_max: Annotated[str, Form()] = "",
        series_sessions: Annotated[str, Form()] = "",
        series_interval_days: Annotated[str, Form()] = "",
    ) -> None:
        self.text = {
            "name": name.strip(),
            "category": category.strip(),
            "duration_minutes": duration_minutes.strip(),
            "setup_minutes": _whole_minutes_or_zero(setup_minutes),
            "cleanup_minutes": _whole_minutes_or_zero(cleanup_minutes),
            "required_skill": required_skill.strip(),
            "required_license": required_license.strip() or None,
            "device_type": device_type.strip() or None,
            "post_care_instructions": post_care_instructions.strip(),
            "follow_up_days": follow_up_days.strip() or None,
            "follow_up_days_max": follow_up_days_max.strip() or None,
            "series_sessions": series_sessions.strip() or None,
            "series_interval_days": series_interval_days.strip() or None,
        }
        self.room_types, self.price, self.cost = room_types, price, cost

    def fields(self) -> dict[str, Any]:
        return {
            **self.text,
            "room_types": _codes(self.room_types),
            "price_cents": _cents(self.price, "Price"),
            "cost_cents": _cents(self.cost or "0", "Cost"),
        }


# --- the pages ------------------------------------------------------------------------------------------


def _week_rows(spans: Iterable[WeeklySpan]) -> list[WeeklySpan | None]:
    """The rows a week's form shows: its spans, then blank rows (a whole week of them when it has none)."""
    rows: list[WeeklySpan | None] = [*sorted(spans, key=lambda s: (s.weekday, s.starts_at))]
    return rows + [None] * max(BLANK_ROWS, len(WEEKDAYS) - len(rows))


def _upcoming(periods: Iterable[tuple[uuid.UUID, datetime, datetime]], now: datetime) -> dict[uuid.UUID, Any]:
    found: dict[uuid.UUID, list[tuple[datetime, datetime]]] = {}
    for owner, starts_at, ends_at in sorted(periods, key=lambda p: p[1]):
        if ends_at > now:
            found.setdefault(owner, []).append((starts_at, ends_at))
    return found


def _location_section(session: Session, actor: Actor, location: LocationRead) -> dict[str, Any]:
    today = to_local(clock.now(), location.time_zone).date()
    closures = resources.list_closures(
        session,
        actor=actor,
        location_id=location.id,
        first=today,
        last=today + timedelta(days=UPCOMING_CLOSURE_DAYS),
    )
    return {
        "hours": _week_rows(location.opening_hours),
        "closures": sorted(closures, key=lambda c: c.closed_on),
    }


def _staff_section(session: Session, actor: Actor, location: LocationRead) -> dict[str, Any]:
    providers = resources.list_providers(
        session, actor=actor, location_id=location.id, limit=LIST_LIMIT
    ).items
    config = resources.location_config(session, actor=actor, location_id=location.id)
    return {
        "providers": [(p, _week_rows(p.shifts), _week_rows(p.breaks)) for p in providers],
        "time_off": _upcoming(config.time_off, clock.now()),
    }


def _rooms_section(session: Session, actor: Actor, location: LocationRead) -> dict[str, Any]:
    return {
        "rooms": resources.list_rooms(session, actor=actor, location_id=location.id, limit=LIST_LIMIT).items
    }


def _devices_section(session: Session, actor: Actor, location: LocationRead) -> dict[str, Any]:
    config = resources.location_config(session, actor=actor, location_id=location.id)
    return {
        "devices": resources.list_devices(
            session, actor=actor, location_id=location.id, limit=LIST_LIMIT
        ).items,
        "maintenance": _upcoming(config.maintenance, clock.now()),
    }


def _services_section(session: Session, actor: Actor, location: LocationRead) -> dict[str, Any]:
    return {"services": catalog.list_services(session, actor=actor, limit=LIST_LIMIT).items}


SECTIONS: dict[str, Callable[[Session, Actor, LocationRead], dict[str, Any]]] = {
    "location": _location_section,
    "staff": _staff_section,
    "rooms": _rooms_section,
    "devices": _devices_section,
    "services": _services_section,
}


class Here:
    """What every settings route works with: the request, its unit of work, the signed-in actor (allowed
    what the route declares, 403 otherwise) and the location in the path."""

    def __init__(
        self, request: Request, session: SessionDep, actor: PageActor, location_id: uuid.UUID
    ) -> None:
        self.request, self.session, self.actor, self.location_id = request, session, actor, location_id

    def page(
        self, section: str, *, message: str | None = None, kind: str = "ok", status_code: int = 200
    ) -> Response:
        session, actor = self.session, self.actor
        location = resources.get_location(session, actor=actor, location_id=self.location_id)
        context = {
            "actor": actor,
            "location": location,
            "locations": resources.list_locations(session, actor=actor, limit=100).items,
            "current_location_id": location.id,
            "current_page": "settings",
            "section": section,
            "tabs": [tab for tab in TABS if actor.can(tab[3], tab[4])],
            "weekdays": WEEKDAYS,
            "message": message,
            "kind": kind,
            "when": lambda instant: local_label(instant, location.time_zone),
            "money": format_cents,
            "dollars": dollars,
            **self.section(section, location),
        }
        name = f"settings_{section}.html"
        return templates.TemplateResponse(self.request, name, context, status_code=status_code)

    def section(self, name: str, location: LocationRead) -> dict[str, Any]:
        """What the section's template shows besides what every settings page does."""
        return SECTIONS[name](self.session, self.actor, location)

    def save(self, section: str, change: Change) -> Response:
        """Make `change` (it returns what it saved) in a savepoint, and answer with
        the section's page: saying what was saved, or why nothing was (422 for bad input, the error's
        status for a refusal of the service, which also goes to the audit trail)."""
        location = resources.get_location(self.session, actor=self.actor, location_id=self.location_id)
        try:
            with self.session.begin_nested():
                saved = change(self.session, self.actor, location)
        except ValidationError as error:
            return self.page(section, message=_problem_text(error), kind="error", status_code=422)
        except MedspaError as error:
            audit_trail.record_refusal(self.session, error)
            return self.page(section, message=readable(error), kind="error", status_code=error.status_code)
        return self.page(section, message=saved)


Settings = Annotated[Here, Depends()]
Change = Callable[[Session, Actor, LocationRead], str]


def _here(location: LocationRead, kind: str, record: ProviderRead | RoomRead | DeviceRead) -> str:
    """The record's name, if it is at the page's location; NotFoundError otherwise (the routes that change
    it are the location's)."""
    if record.location_id != location.id:
        raise NotFoundError(kind, record.id)
    return record.name


def _section_page(section: str, resource: str) -> Callable[[Here], Response]:
    @permits(resource, "manage")
    def show(here: Settings) -> Response:
        return here.page(section)

    show.__name__ = f"{section}_settings"
    return show


for _section, _, _suffix, _resource, _ in TABS:
    if _section in SECTIONS:  # the integrations tab's page is `web.connections`'s
        router.add_api_route(
            f"/locations/{{location_id}}/settings{_suffix}", _section_page(_section, _resource)
        )


# --- hours and closures -----------------------------------------------------------------------------------


@router.post("/locations/{location_id}/settings/hours", dependencies=SameOrigin)
@permits("locations", "manage")
def save_hours(here: Settings, week: Annotated[WeekForm, Depends()]) -> Response:
    """Replace the location's weekly opening hours with the form's."""

    def change(session: Session, actor: Actor, location: LocationRead) -> str:
        data = LocationUpdate(opening_hours=week.spans())
        resources.update_location(session, actor=actor, location_id=location.id, data=data)
        return "Saved the opening hours."

    return here.save("location", change)


@router.post("/locations/{location_id}/settings/closures", dependencies=SameOrigin)
@permits("locations", "manage")
def add_closures(
    here: Settings,
    first_date: Annotated[str, Form()] = "",
    last_date: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Close the location on a date, or on every date of a period (at most a year); the dates it is
    already closed on stay as they are."""

    def change(session: Session, actor: Actor, location: LocationRead) -> str:
        first = _near_date(first_date, "First date")
        last = _near_date(last_date, "Last date") if last_date.strip() else first
        if last < first:
            raise ValidationFailedError("Last date", "must not be before the first date")
        if (last - first).days >= MAX_CLOSURE_DAYS:
            raise ValidationFailedError("Dates", f"close at most {MAX_CLOSURE_DAYS} days at once")
        closed = {
            c.closed_on
            for c in resources.list_closures(
                session, actor=actor, location_id=location.id, first=first, last=last
            )
        }
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        for day in days:
            if day not in closed:
                data = ClosureCreate(closed_on=day, reason=reason.strip())
                resources.add_closure(session, actor=actor, location_id=location.id, data=data)
        added = len(days) - len(closed)
        if not added:
            return "Already closed then; nothing to add."
        if first == last:
            return f"Saved: closed on {first.isoformat()}."
        return f"Saved: closed from {first.isoformat()} to {last.isoformat()} ({added} days)."

    return here.save("location", change)


# --- staff ------------------------------------------------------------------------------------------------


@router.post("/locations/{location_id}/settings/staff/{provider_id}/time-off", dependencies=SameOrigin)
@permits("providers", "manage")
def add_time_off(here: Settings, provider_id: uuid.UUID, form: Annotated[PeriodForm, Depends()]) -> Response:
    """Block the provider for a period (local dates and times at the location)."""

    def change(session: Session, actor: Actor, location: LocationRead) -> str:
        name = _here(
            location, "provider", resources.get_provider(session, actor=actor, provider_id=provider_id)
        )
        period = form.period(location.time_zone)
        resources.add_time_off(session, actor=actor, provider_id=provider_id, data=period)
        return f"Saved time off for {name}: {_span_label(period, location)}."

    return here.save("staff", change)


# After the time off: a provider's `{schedule}` is any last part of the path but "time-off".
@router.post("/locations/{location_id}/settings/staff/{provider_id}/{schedule}", dependencies=SameOrigin)
@permits("providers", "manage")
def save_schedule(
    here: Settings, provider_id: uuid.UUID, schedule: Schedule, week: Annotated[WeekForm, Depends()]
) -> Response:
    """Replace the provider's weekly shifts, or their weekly breaks (the other stays as it is)."""

    def change(session: Session, actor: Actor, location: LocationRead) -> str:
        name = _here(
            location, "provider", resources.get_provider(session, actor=actor, provider_id=provider_id)
        )
        data = ProviderUpdate.model_validate({schedule: week.spans()})
        resources.update_provider(session, actor=actor, provider_id=provider_id, data=data)
        return f"Saved {name}'s {schedule}."

    return here.save("staff", change)


def _span_label(period: PeriodCreate, location: LocationRead) -> str:
    zone = location.time_zone
    return f"{local_label(period.starts_at, zone)} to {local_label(period.ends_at, zone)}"


# --- rooms ------------------------------------------------------------------------------------------------


@router.post("/locations/{location_id}/settings/rooms", dependencies=SameOrigin)
@permits("rooms", "manage")
def add_room(here: Settings, form: Annotated[RoomForm, Depends()]) -> Response:
    def change(session: Session, actor: Actor, location: LocationRead) -> str:
        data = RoomCreate.model_validate({**form.fields, "location_id": location.id})
        return f"Saved: added the room {resources.create_room(session, actor=actor, data=data).name}."

    return here.save("rooms", change)


@router.post("/locations/{location_id}/settings/rooms/{room_id}", dependencies=SameOrigin)
@permits("rooms", "manage")
def update_room(here: Settings, room_id: uuid.UUID, form: Annotated[RoomForm, Depends()]) -> Response:
    def change(session: Session, actor: Actor, location: LocationRead) -> str:
        _here(location, "room", resources.get_room(session, actor=actor, room_id=room_id))
        data = RoomUpdate.model_validate(form.fields)
        return (
            f"Saved the room {resources.update_room(session, actor=actor, room_id=room_id, data=data).name}."
        )

    return here.save("rooms", change)


@router.post("/locations/{location_id}/settings/rooms/{room_id}/deactivate", dependencies=SameOrigin)
@permits("rooms", "manage")
def deactivate_room(here: Settings, room_id: uuid.UUID) -> Response:
    def change(session: Session, actor: Actor, location: LocationRead) -> str:
        _here(location, "room", resources.get_room(session, actor=actor, room_id=room_id))
        room = resources.deactivate_room(session, actor=actor, room_id=room_id)
        return f"Saved: the room {room.name} is no longer used."

    return here.save("rooms", change)


# --- devices ----------------------------------------------------------------------------------------------


@router.post("/locations/{location_id}/settings/devices", dependencies=SameOrigin)
@permits("devices", "manage")
def add_device(here: Settings, form: Annotated[DeviceForm, Depends()]) -> Response:
    def change(session: Session, actor: Actor, location: LocationRead) -> str:
        data = DeviceCreate.model_validate({**form.fields, "location_id": location.id})
        return f"Saved: added the device {resources.create_device(session, actor=actor, data=data).name}."

    return here.save("devices", change)


@router.post("/locations/{location_id}/settings/devices/{device_id}", dependencies=SameOrigin)
@permits("devices", "manage")
def update_device(here: Settings, device_id: uuid.UUID, form: Annotated[DeviceForm, Depends()]) -> Response:
    def change(session: Session, actor: Actor, location: LocationRead) -> str:
        _here(location, "device", resources.get_device(session, actor=actor, device_id=device_id))
        data = DeviceUpdate.model_validate(form.fields)
        device = resources.update_device(session, actor=actor, device_id=device_id, data=data)
        return f"Saved the device {device.name}."

    return here.save("devices", change)


@router.post("/locations/{location_id}/settings/devices/{device_id}/deactivate", dependencies=SameOrigin)
@permits("devices", "manage")
def deactivate_device(here: Settings, device_id: uuid.UUID) -> Response:
    def change(session: Session, actor: Actor, location: LocationRead) -> str:
        _here(location, "device", resources.get_device(session, actor=actor, device_id=device_id))
        device = resources.deactivate_device(session, actor=actor, device_id=device_id)
        return f"Saved: the device {device.name} is no longer used."

    return here.save("devices", change)


@router.post("/locations/{location_id}/settings/devices/{device_id}/maintenance", dependencies=SameOrigin)
@permits("devices", "manage")
def add_maintenance(here: Settings, device_id: uuid.UUID, form: Annotated[PeriodForm, Depends()]) -> Response:
    """Take the device out of service for a period (local dates and times at the location)."""

    def change(session: Session, actor: Actor, location: LocationRead) -> str:
        name = _here(location, "device", resources.get_device(session, actor=actor, device_id=device_id))
        period = form.period(location.time_zone)
        resources.add_maintenance(session, actor=actor, device_id=device_id, data=period)
        return f"Saved maintenance of {name}: {_span_label(period, location)}."

    return here.save("devices", change)


# --- services ---------------------------------------------------------------------------------------------


def _labelled(error: ValidationFailedError) -> ValidationFailedError:
    """The service's refusal of a field (the follow-up window, the series) named as the form names it."""
    detail = error.detail.removeprefix(f"{error.field}: ")
    return ValidationFailedError(LABELS.get(error.field, error.field), detail)


@router.post("/locations/{location_id}/settings/services", dependencies=SameOrigin)
@permits("services", "manage")
def add_service(here: Settings, form: Annotated[ServiceForm, Depends()]) -> Response:
    def change(session: Session, actor: Actor, _location: LocationRead) -> str:
        data = ServiceCreate.model_validate(form.fields())
        try:
            created = catalog.create_service(session, actor=actor, data=data)
        except ValidationFailedError as error:
            raise _labelled(error) from error
        return f"Saved: added the service {created.name}."

    return here.save("services", change)


@router.post("/locations/{location_id}/settings/services/{service_id}", dependencies=SameOrigin)
@permits("services", "manage")
def update_service(
    here: Settings, service_id: uuid.UUID, form: Annotated[ServiceForm, Depends()]
) -> Response:
    def change(session: Session, actor: Actor, _location: LocationRead) -> str:
        data = ServiceUpdate.model_validate(form.fields())
        try:
            service = catalog.update_service(session, actor=actor, service_id=service_id, data=data)
        except ValidationFailedError as error:
            raise _labelled(error) from error
        return f"Saved the service {service.name}."

    return here.save("services", change)


@router.post("/locations/{location_id}/settings/services/{service_id}/deactivate", dependencies=SameOrigin)
@permits("services", "manage")
def deactivate_service(here: Settings, service_id: uuid.UUID) -> Response:
    def change(session: Session, actor: Actor, _location: LocationRead) -> str:
        service = catalog.deactivate_service(session, actor=actor, service_id=service_id)
        return f"Saved: the service {service.name} is no longer offered."

    return here.save("services", change)
