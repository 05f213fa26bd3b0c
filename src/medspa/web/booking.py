"""Booking from the day view: the client picker (search, new client), the free slots, and the booking;
where the location allows overbooking, the day's likely no-shows to overbook beside."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from medspa.api import SessionDep, in_unit_of_work
from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate, ClientRead
from medspa.engagement import service as engagement
from medspa.kit import audit_trail
from medspa.kit.errors import MedspaError
from medspa.kit.tz import clock_label, local_day_bounds, to_local
from medspa.resources import service as resources
from medspa.resources.schemas import LocationRead
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, BookingRequest, SlotRead, Status
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.board import Board, build_board
from medspa.web.day import board_of, summary
from medspa.web.forms import DATE_PROBLEM, form_date, form_uuid, view_in_use
from medspa.web.guards import PageActor, PageRoute, SameOrigin, page_actor, readable, templates
from medspa.web.slots import by_provider, parse_slot

router = APIRouter(route_class=PageRoute, include_in_schema=False)


CLIENT_MATCHES = 10
# The likely no-shows offered to overbook beside: at least this P(no-show), the riskiest few.
OVERBOOK_RISK: Final = 0.3
OVERBOOK_OPTIONS: Final = 6
SEARCH_MAX_LENGTH = 200

# --- clients for the booking form ---------------------------------------------------------------------


@router.get("/locations/{location_id}/clients")
@permits("clients", "read")
def search_clients(
    request: Request, session: SessionDep, actor: PageActor, location_id: uuid.UUID, q: str = ""
) -> Response:
    """Clients found by any part of their name, e-mail or phone (`clients.search_clients`)."""
    query = q.strip()[:SEARCH_MAX_LENGTH]
    matches: list[ClientRead] = []
    if query:
        matches = clients.search_clients(session, actor=actor, query=query, limit=CLIENT_MATCHES).items
    message = None
    if query and not matches:
        message = "No client found by that name, e-mail or phone. Add a new client below."
    return _client_choice(request, location_id, matches, message=message)


@router.post("/locations/{location_id}/clients", dependencies=SameOrigin)
@permits("clients", "create")
def add_client(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    first_name: Annotated[str, Form()] = "",
    last_name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    date_of_birth: Annotated[str, Form(max_length=20)] = "",
    anyway: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Add a client from the booking form; first, when the details match existing clients (same e-mail,
    phone, or name and birth date), offer those instead, with "add anyway"."""
    try:
        data = ClientCreate(
            first_name=first_name.strip(),
            last_name=last_name.strip(),
            email=email.strip() or None,
            phone=phone.strip() or None,
            date_of_birth=date_of_birth.strip() or None,
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        return _client_choice(
            request, location_id, [], message=f"Check the new client: {problems}", kind="error"
        )
    if data.email is None and data.phone is None:
        message = "Give the new client an email or a phone."
        return _client_choice(request, location_id, [], message=message, kind="error")
    if not anyway:
        existing = clients.find_duplicates(session, actor=actor, data=data)
        if existing:
            message = (
                "Already a client? The same e-mail, phone, or name and birth date is on file: choose the "
                "existing record below, or add the new one anyway."
            )
            return _client_choice(
                request, location_id, existing, message=message, kind="warning", duplicates=True
            )
    client = clients.create_client(session, actor=actor, data=data)
    # The answer also resets the new-client form (closed and empty), out of band.
    return _client_choice(
        request, location_id, [client], selected=client.id, message=f"Added {client.first_name}.", kind="ok"
    )


def _client_choice(
    request: Request,
    location_id: uuid.UUID,
    matches: list[ClientRead],
    *,
    selected: uuid.UUID | None = None,
    message: str | None = None,
    kind: str = "note",
    duplicates: bool = False,
) -> Response:
    """The client picker's fragment; a message of kind "error" answers 422. With `duplicates`, the
    matches are existing records the new client may be, with a button to add the new one anyway."""
    context = {
        "location_id": location_id,
        "duplicates": duplicates,
        "matches": matches,
        "selected": selected,
        "message": message,
        "kind": kind,
    }
    status_code = 422 if kind == "error" else 200
    return templates.TemplateResponse(request, "_clients.html", context, status_code=status_code)


# --- slots and booking --------------------------------------------------------------------------------


@router.get("/locations/{location_id}/slots")
@permits("availability", "read")
def slots(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    service_id: str = "",
    provider_id: str = "",
    on: Annotated[str, Query(alias="date")] = "",
) -> Response:
    """The fragment listing the bookable slots `find_slots` returns for the form's service and date; a
    date that is not one (or out of range) answers 422 with the reason and no slots."""
    day = form_date(on)
    problem = DATE_PROBLEM if on and day is None else None
    return _slots_fragment(
        request,
        session,
        actor,
        location_id,
        form_uuid(service_id),
        form_uuid(provider_id),
        day,
        message=problem,
        status_code=422 if problem else 200,
    )


def _slots_fragment(
    request: Request,
    session: Session,
    actor: Actor,
    location_id: uuid.UUID,
    service_id: uuid.UUID | None,
    provider_id: uuid.UUID | None,
    day: date | None,
    *,
    message: str | None = None,
    kind: str = "error",
    status_code: int = 200,
    board: Board | None = None,
) -> Response:
    """The slots fragment; with `board`, also that day's view swapped in out of band."""
    location = resources.get_location(session, actor=actor, location_id=location_id)
    found: list[SlotRead] = []
    if service_id is None or day is None:
        message = message or "Choose a service and a date."
    else:
        try:
            found = scheduling.find_slots(
                session,
                actor=actor,
                location_id=location.id,
                service_id=service_id,
                first_date=day,
                last_date=day,
                provider_id=provider_id,
            )
        except MedspaError as error:
            audit_trail.record_refusal(session, error)
            message, kind = readable(error), "error"
    beside = []
    if service_id is not None and day is not None and actor.can("appointments", "overbook"):
        beside = _overbook_options(session, actor, location, service_id, day)
    context = {
        "location": location,
        "day": day,
        "beside": beside,
        "groups": by_provider(found),
        "count": len(found),
        "searched": service_id is not None and day is not None,
        "message": message,
        "kind": kind,
        "board": board,
    }
    headers = {"HX-Push-Url": f"/locations/{location.id}/day?date={board.day.isoformat()}"} if board else None
    return templates.TemplateResponse(
        request, "_slots.html", context, status_code=status_code, headers=headers
    )


@dataclass(frozen=True)
class BesideOption:
    label: str
    value: str  # `<start, ISO 8601 UTC>|<provider id>`


def _overbook_options(
    session: Session, actor: Actor, location: LocationRead, service_id: uuid.UUID, day: date
) -> list[BesideOption]:
    """The day's booked visits most likely to be missed, of providers who can give the service, to
    overbook beside; none while the location's overbooking cap is 0."""
    policy = engagement.get_policy(session, actor=actor, location_id=location.id)
    if not policy.overbooking_cap_minutes:
        return []
    skill = catalog.get_service(session, actor=actor, service_id=service_id).required_skill
    start, end = local_day_bounds(day, location.time_zone)
    visits = scheduling.list_appointments(
        session, actor=actor, location_id=location.id, starts_from=start, starts_before=end, limit=500
    ).items
    risky = sorted(
        (
            a
            for a in visits
            if a.status in (Status.BOOKED, Status.CONFIRMED)
            and a.overbooking is None
            and (a.no_show_probability or 0.0) >= OVERBOOK_RISK
        ),
        key=lambda a: (-(a.no_show_probability or 0.0), a.starts_at),
    )
    providers = {
        p.id: p
        for p in resources.list_providers(session, actor=actor, location_id=location.id, limit=200).items
    }
    options = []
    for visit in risky:
        provider = providers.get(visit.provider_id)
        if provider is None or skill not in provider.skills:
            continue
        local = to_local(visit.starts_at, location.time_zone)
        options.append(
            BesideOption(
                label=f"{clock_label(local.hour, local.minute)} with {provider.name} · no-show risk "
                f"{visit.no_show_probability or 0.0:.0%}",
                value=f"{visit.starts_at.isoformat()}|{visit.provider_id}",
            )
        )
        if len(options) == OVERBOOK_OPTIONS:
            break
    return options


@router.post("/locations/{location_id}/overbook", dependencies=SameOrigin)
@permits("appointments", "overbook")
async def overbook(
    request: Request,
    location_id: uuid.UUID,
    client_id: Annotated[str, Form()] = "",
    service_id: Annotated[str, Form()] = "",
    provider_id: Annotated[str, Form()] = "",
    on: Annotated[str, Form(alias="date")] = "",
    beside: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Overbook the chosen client beside the visit picked (`engagement.overbook`, as the API does): the
    booking, or that it waits for a manager's approval, or why it is not allowed."""
    service, provider, day = form_uuid(service_id), form_uuid(provider_id), form_date(on)
    return await in_unit_of_work(
        request,
        lambda session, actor: _book(
            request, session, actor, location_id, service, provider, day, client_id, "", beside
        ),
        authenticate_with=page_actor,
    )


def _parse_beside(value: str) -> tuple[datetime, uuid.UUID] | None:
    starts, _, provider = value.partition("|")
    try:
        starts_at, provider_id = datetime.fromisoformat(starts), uuid.UUID(provider)
    except ValueError:
        return None
    return (starts_at, provider_id) if starts_at.tzinfo is not None else None


def _overbook(
    request: Request,
    again: Callable[..., Response],
    session: Session,
    actor: Actor,
    location_id: uuid.UUID,
    service: uuid.UUID | None,
    client_id: str,
    beside: str,
) -> Response:
    chosen, client = _parse_beside(beside), form_uuid(client_id)
    if chosen is None:
        return again("Pick one of the visits to overbook beside.", 422)
    if client is None:
        return again("Choose or add a client first.", 422)
    if service is None:
        return again("Choose a service.", 422)
    try:
        data = BookingRequest(
            client_id=client,
            service_id=service,
            location_id=location_id,
            starts_at=chosen[0],
            provider_id=chosen[1],
        )
        with session.begin_nested():
            result = engagement.overbook(session, actor=actor, data=data)
    except ValidationError:
        return again("Not a time to book.", 422)
    except MedspaError as error:
        audit_trail.record_refusal(session, error)
        return again(f"Could not overbook: {readable(error)}.", error.status_code)
    if result.appointment is None:
        return again(f"Waiting for a manager's approval: {result.why}.", 202, kind="ok")
    return _booked(request, session, actor, result.appointment, "Overbooked")


@router.post("/locations/{location_id}/appointments", dependencies=SameOrigin)
@permits("appointments", "book")
async def book(
    request: Request,
    location_id: uuid.UUID,
    client_id: Annotated[str, Form()] = "",
    service_id: Annotated[str, Form()] = "",
    provider_id: Annotated[str, Form()] = "",
    on: Annotated[str, Form(alias="date")] = "",
    slot: Annotated[str, Form()] = "",
) -> Response:
    """Book the slot chosen in the form. On success: a confirmation in place of the slots, and the day
    view of the booking's date swapped in out of band. A conflict (409) or bad input (422) shows the
    reason above freshly fetched slots.

    Books through the same function as the API (`api.in_unit_of_work`, then `book_appointment`)."""
    service, provider, day = form_uuid(service_id), form_uuid(provider_id), form_date(on)
    return await in_unit_of_work(
        request,
        lambda session, actor: _book(
            request, session, actor, location_id, service, provider, day, client_id, slot
        ),
        authenticate_with=page_actor,
    )


def _book(
    request: Request,
    session: Session,
    actor: Actor,
    location_id: uuid.UUID,
    service: uuid.UUID | None,
    provider: uuid.UUID | None,
    day: date | None,
    client_id: str,
    slot: str,
    beside: str | None = None,
) -> Response:
    """Book the slot chosen, or with `beside`, overbook beside the visit chosen (`_overbook`)."""

    def again(message: str, status_code: int, board: Board | None = None, kind: str = "error") -> Response:
        return _slots_fragment(
            request,
            session,
            actor,
            location_id,
            service,
            provider,
            day,
            message=message,
            kind=kind,
            status_code=status_code,
            board=board,
        )

    if beside is not None:
        return _overbook(request, again, session, actor, location_id, service, client_id, beside)

    chosen = parse_slot(slot)
    client = form_uuid(client_id)
    if chosen is None:
        return again("Pick one of the slots below.", 200 if not slot else 422)
    if client is None:
        return again("Choose or add a client first, then pick the slot again.", 422)
    if service is None:
        return again("Choose a service.", 422)
    request_data = BookingRequest(
        client_id=client,
        service_id=service,
        location_id=location_id,
        starts_at=chosen.starts_at,
        provider_id=chosen.provider_id,
        room_id=chosen.room_id,
        device_id=chosen.device_id,
    )
    try:
        with session.begin_nested():
            appointment = scheduling.book_appointment(session, actor=actor, data=request_data)
    except MedspaError as error:
        audit_trail.record_refusal(session, error)
        if error.status_code != 409:
            return again(f"Could not book: {readable(error)}.", error.status_code)
        # Someone took it: show what is free now, and the day as it now stands.
        location = resources.get_location(session, actor=actor, location_id=location_id)
        taken_day = to_local(chosen.starts_at, location.time_zone).date()
        board = build_board(
            session, actor=actor, location_id=location_id, day=taken_day, view=view_in_use(request)
        )
        message = f"Could not book: {readable(error)}. Here are the slots free now."
        return again(message, 409, board)
    return _booked(request, session, actor, appointment, "Booked")


def _booked(
    request: Request, session: Session, actor: Actor, appointment: AppointmentRead, verb: str
) -> Response:
    """The confirmation in place of the slots, and the booking's day swapped in out of band."""
    board = board_of(session, actor, appointment, view_in_use(request))
    said = summary(session, actor, appointment)
    why = f" {appointment.overbooking}" if appointment.overbooking else ""
    context = {
        "board": board,
        "message": f"{verb} {said}.{why}",
        "kind": "ok",
        "oob": True,
        "new_id": appointment.id,
    }
    headers = {"HX-Push-Url": f"/locations/{appointment.location_id}/day?{board.query(board.day)}"}
    return templates.TemplateResponse(request, "_booked.html", context, headers=headers)
