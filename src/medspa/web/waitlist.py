"""The waitlist in the day view: add a client (from the booking form, when no slot suits), take one off,
and book one from the list at a start that fits their window. Each answers the re-rendered day (out of
band) with a message, and goes through the same service functions as the API."""

from __future__ import annotations

import uuid
from datetime import date, time
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from medspa.api import SessionDep, in_unit_of_work
from medspa.kit import audit_trail, tz
from medspa.kit.errors import MedspaError
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import WaitlistCreate, WaitlistRead
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.board import build_board, local_today
from medspa.web.forms import form_date, form_uuid, view_in_use
from medspa.web.guards import PageActor, PageRoute, SameOrigin, page_actor, readable, templates
from medspa.web.slots import by_provider, parse_slot

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _wall(value: str) -> time | None:
    try:
        parsed = time.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.second == 0 and parsed.microsecond == 0 and parsed.tzinfo is None else None


def _day(
    request: Request,
    session: Session,
    actor: Actor,
    location_id: uuid.UUID,
    day: date,
    message: str,
    kind: str,
    status_code: int = 200,
) -> Response:
    board = build_board(session, actor=actor, location_id=location_id, day=day, view=view_in_use(request))
    context = {"board": board, "message": message, "kind": kind, "oob": False}
    return templates.TemplateResponse(request, "_day.html", context, status_code=status_code)


@router.post("/locations/{location_id}/waitlist", dependencies=SameOrigin)
@permits("waitlist", "add")
def add(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    client_id: Annotated[str, Form()] = "",
    service_id: Annotated[str, Form()] = "",
    provider_id: Annotated[str, Form()] = "",
    on: Annotated[str, Form(alias="date")] = "",
    window_from: Annotated[str, Form()] = "",
    window_to: Annotated[str, Form()] = "",
) -> Response:
    """Put the client chosen in the booking form on the day's waitlist within a window."""
    location = resources.get_location(session, actor=actor, location_id=location_id)
    day = form_date(on) or local_today(location)
    client, service = form_uuid(client_id), form_uuid(service_id)
    starts, ends = _wall(window_from), _wall(window_to)
    problem = (
        "Choose or add a client first."
        if client is None
        else "Choose a service."
        if service is None
        else "Give the window as two times, e.g. 10:00 and 14:00."
        if starts is None or ends is None
        else None
    )
    if problem is None:
        try:
            data = WaitlistCreate(
                client_id=client,
                service_id=service,
                location_id=location_id,
                service_date=day,
                window_starts_at=starts,
                window_ends_at=ends,
                preferred_provider_id=form_uuid(provider_id),
            )
            with session.begin_nested():
                scheduling.add_to_waitlist(session, actor=actor, data=data)
        except ValidationError as error:
            problem = "; ".join(str(e["msg"]) for e in error.errors())
        except MedspaError as error:
            audit_trail.record_refusal(session, error)
            problem = readable(error)
    if problem is not None:
        return _day(request, session, actor, location_id, day, problem, "error", 422)
    return _day(request, session, actor, location_id, day, "Added to the waitlist.", "ok")


def _entry(session: Session, actor: Actor, entry_id: uuid.UUID) -> tuple[WaitlistRead, str]:
    entry = scheduling.get_waitlist_entry(session, actor=actor, entry_id=entry_id)
    location = resources.get_location(session, actor=actor, location_id=entry.location_id)
    return entry, location.time_zone


@router.post("/waitlist/{entry_id}/remove", dependencies=SameOrigin)
@permits("waitlist", "remove")
def remove(request: Request, session: SessionDep, actor: PageActor, entry_id: uuid.UUID) -> Response:
    entry, _ = _entry(session, actor, entry_id)
    try:
        with session.begin_nested():
            scheduling.remove_from_waitlist(session, actor=actor, entry_id=entry_id)
    except MedspaError as error:
        audit_trail.record_refusal(session, error)
        return _day(
            request, session, actor, entry.location_id, entry.service_date, readable(error), "error", 409
        )
    return _day(
        request, session, actor, entry.location_id, entry.service_date, "Taken off the waitlist.", "ok"
    )


@router.get("/waitlist/{entry_id}/options")
@permits("availability", "read")
def options(request: Request, session: SessionDep, actor: PageActor, entry_id: uuid.UUID) -> Response:
    """The free starts that fit the entry's window (and preferred provider), as buttons that book."""
    entry, zone = _entry(session, actor, entry_id)
    found = [
        slot
        for slot in scheduling.find_slots(
            session,
            actor=actor,
            location_id=entry.location_id,
            service_id=entry.service_id,
            first_date=entry.service_date,
            last_date=entry.service_date,
            provider_id=entry.preferred_provider_id,
        )
        if entry.window_starts_at <= tz.to_local(slot.starts_at, zone).time()
        and tz.to_local(slot.ends_at, zone).time() <= entry.window_ends_at
    ]
    context = {"entry": entry, "groups": by_provider(found), "count": len(found)}
    return templates.TemplateResponse(request, "_waitlist_options.html", context)


@router.post("/waitlist/{entry_id}/book", dependencies=SameOrigin)
@permits("waitlist", "book")
async def book(request: Request, entry_id: uuid.UUID, slot: Annotated[str, Form()] = "") -> Response:
    """Book the waiting client at the start chosen; the day with a message (409 when it was taken)."""
    return await in_unit_of_work(
        request,
        lambda session, actor: _book(request, session, actor, entry_id, slot),
        authenticate_with=page_actor,
    )


def _book(request: Request, session: Session, actor: Actor, entry_id: uuid.UUID, slot: str) -> Response:
    entry, zone = _entry(session, actor, entry_id)
    chosen = parse_slot(slot)
    if chosen is None:
        return _day(
            request, session, actor, entry.location_id, entry.service_date, "Pick a start.", "error", 422
        )
    try:
        with session.begin_nested():
            scheduling.book_from_waitlist(
                session,
                actor=actor,
                entry_id=entry_id,
                starts_at=chosen.starts_at,
                provider_id=chosen.provider_id,
            )
    except MedspaError as error:
        audit_trail.record_refusal(session, error)
        return _day(
            request,
            session,
            actor,
            entry.location_id,
            entry.service_date,
            readable(error),
            "error",
            error.status_code,
        )
    local = tz.to_local(chosen.starts_at, zone)
    message = f"Booked from the waitlist at {tz.clock_label(local.hour, local.minute)}."
    return _day(request, session, actor, entry.location_id, entry.service_date, message, "ok")
