"""The front desk's day view of a location, and the lifecycle buttons on its blocks."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from medspa.api import SessionDep, in_unit_of_work
from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.kit import audit_trail
from medspa.kit.errors import MedspaError, NotFoundError
from medspa.kit.tz import local_to_utc, to_local
from medspa.resources import service as resources
from medspa.resources.schemas import LocationRead
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, RescheduleRequest, Status
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.board import Board, View, build_board, clock_label
from medspa.web.forms import LIST_LIMIT, form_date, form_time, form_uuid, page_day_and_view, view_in_use
from medspa.web.guards import (
    PageActor,
    PageRoute,
    SameOrigin,
    error_response,
    is_htmx,
    page_actor,
    readable,
    templates,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


# --- the day view -------------------------------------------------------------------------------------


@router.get("/locations/{location_id}/day")
@permits("appointments", "read")
def day_view(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    on: Annotated[str, Query(alias="date")] = "",
    by: str = "",
) -> Response:
    """The day of the location (today there when no date is given), its columns by provider (the
    default), room or device (`by`). A date that is not one, or lies outside the accepted range, shows
    today, and an unknown `by` the providers' columns, with the reason (422)."""
    location = resources.get_location(session, actor=actor, location_id=location_id)
    return _day_of(request, session, actor, location, on, by)


@router.get("/my-day")
@permits("appointments", "read")
def my_day(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    on: Annotated[str, Query(alias="date")] = "",
) -> Response:
    """A provider's own day: their column of their location's day, its huddle notes and their buttons.
    404 with the reason for a sign-in that is not a provider's."""
    if actor.provider_id is None:
        return error_response(request, "My day is a provider's page: this sign-in is not a provider's.", 404)
    provider = resources.get_provider(session, actor=actor, provider_id=actor.provider_id)
    location = resources.get_location(session, actor=actor, location_id=provider.location_id)
    return _day_of(request, session, actor, location, on, "")


MY_DAY = "/my-day"


def _day_of(
    request: Request, session: Session, actor: Actor, location: LocationRead, on: str, by: str
) -> Response:
    """The day page (or its fragment, for HTMX) of the date given, today at the location without one,
    its columns by provider, room or device (`by`); a date that is not one, or out of range, shows today,
    and an unknown `by` the providers' columns, with the reason (422)."""
    day, view, message = page_day_and_view(location, on, by)
    kind, status_code = ("error", 422) if message else ("ok", 200)
    board = build_board(session, actor=actor, location_id=location.id, day=day, view=view)
    headers = {"Vary": "HX-Request, HX-Target"}
    if is_htmx(request) and request.headers.get("hx-target") == "day":
        return day_fragment(
            request, board, message=message, kind=kind, status_code=status_code, headers=headers
        )
    return day_page(
        request, session, actor, board, message=message, kind=kind, status_code=status_code, headers=headers
    )


def as_seen(request: Request, board: Board) -> Board:
    """The board as the page that asked shows it: a provider's own column only on their "my day" (the page
    itself, or an update made from it, which HTMX tells by its current URL)."""
    current = urlsplit(request.headers.get("hx-current-url") or "").path
    if board.viewer_provider_id is None or MY_DAY not in (request.url.path, current):
        return board
    mine = board.viewer_provider_id
    columns = [c for c in board.columns if c.provider.id == mine]
    tracks = [t for t in board.tracks if t.provider_id == mine and board.view is View.PROVIDER]
    count = sum(len(c.blocks) for c in columns)
    return dataclasses.replace(board, columns=columns, tracks=tracks, mine=True, appointment_count=count)


def day_page(
    request: Request,
    session: Session,
    actor: Actor,
    board: Board,
    *,
    message: str | None = None,
    kind: str = "ok",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    board = as_seen(request, board)
    context = {
        "actor": actor,
        "board": board,
        "locations": resources.list_locations(session, actor=actor, limit=LIST_LIMIT).items,
        "services": catalog.list_services(session, actor=actor, limit=LIST_LIMIT).items,
        "providers": [c.provider for c in board.columns if c.provider.is_active],
        "booking_date": max(board.day, board.today),
        "message": message,
        "kind": kind,
    }
    return templates.TemplateResponse(request, "day.html", context, status_code=status_code, headers=headers)


def day_fragment(
    request: Request,
    board: Board,
    *,
    message: str | None = None,
    kind: str = "ok",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    context = {"board": as_seen(request, board), "message": message, "kind": kind, "oob": False}
    return templates.TemplateResponse(request, "_day.html", context, status_code=status_code, headers=headers)


def board_of(
    session: Session, actor: Actor, appointment: AppointmentRead, view: View = View.PROVIDER
) -> Board:
    """The day of the appointment, its columns by `view`."""
    location = resources.get_location(session, actor=actor, location_id=appointment.location_id)
    day = to_local(appointment.starts_at, location.time_zone).date()
    return build_board(session, actor=actor, location_id=location.id, day=day, view=view)


def summary(session: Session, actor: Actor, appointment: AppointmentRead) -> str:
    location = resources.get_location(session, actor=actor, location_id=appointment.location_id)
    local = to_local(appointment.starts_at, location.time_zone)
    client = clients.get_client(session, actor=actor, client_id=appointment.client_id)
    service = catalog.get_service(session, actor=actor, service_id=appointment.service_id)
    when = f"{local.strftime('%a %b')} {local.day}, {clock_label(local.hour, local.minute)}"
    return f"{client.first_name} {client.last_name} for {service.name} on {when}"


# --- the appointment lifecycle ------------------------------------------------------------------------

LIFECYCLE: dict[str, Callable[..., AppointmentRead]] = {
    "confirm": scheduling.confirm_appointment,
    "check_in": scheduling.check_in,
    "start": scheduling.start_service,
    "complete": scheduling.complete_appointment,
    "no_show": scheduling.mark_no_show,
}
DONE = {
    "confirm": "Confirmed",
    "check_in": "Checked in",
    "start": "Started",
    "complete": "Completed",
    "no_show": "Marked as no-show:",
    "cancel": "Cancelled",
    "correct": "Corrected",
}


@router.post("/appointments/{appointment_id}/move", dependencies=SameOrigin)
@permits("appointments", "reschedule")
async def move(
    request: Request,
    appointment_id: uuid.UUID,
    on: Annotated[str, Form(alias="date", max_length=20)] = "",
    at: Annotated[str, Form(alias="time", max_length=20)] = "",
    provider_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Move an appointment to another start (on the location's wall clock) and, dragged to another
    column, provider: the block's Move form, or a drop on the day's grid. Through the same reschedule as
    the API; the day shows why when it is refused (the slot taken, out of hours, the provider off)."""
    return await in_unit_of_work(
        request,
        lambda session, actor: _move(request, session, actor, appointment_id, on, at, provider_id),
        authenticate_with=page_actor,
    )


def _move(
    request: Request,
    session: Session,
    actor: Actor,
    appointment_id: uuid.UUID,
    on: str,
    at: str,
    provider_id: str,
) -> Response:
    appointment = scheduling.get_appointment(session, actor=actor, appointment_id=appointment_id)
    location = resources.get_location(session, actor=actor, location_id=appointment.location_id)
    day, wall = form_date(on), form_time(at)
    starts_at = local_to_utc(day, wall, location.time_zone) if day and wall else None
    message, kind, status_code = "", "ok", 200
    if starts_at is None:
        message, kind, status_code = (
            "Give the date and a time that exists on the clock that day.",
            "error",
            422,
        )
    else:
        try:
            with session.begin_nested():
                moved = scheduling.reschedule_appointment(
                    session,
                    actor=actor,
                    appointment_id=appointment.id,
                    data=RescheduleRequest(starts_at=starts_at, provider_id=form_uuid(provider_id)),
                )
            message = f"Moved {summary(session, actor, moved)}."
            appointment = moved
        except MedspaError as error:
            audit_trail.record_refusal(session, error)
            message, kind, status_code = f"Could not move it: {readable(error)}.", "error", error.status_code
    board = board_of(session, actor, appointment, view_in_use(request))
    return day_fragment(request, board, message=message, kind=kind, status_code=status_code)


@router.post("/appointments/{appointment_id}/correct", dependencies=SameOrigin)
@permits("appointments", "correct")
async def correct_status(
    request: Request,
    appointment_id: uuid.UUID,
    status: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """A manager corrects a finished visit's outcome from its block (completed <-> no-show), with why."""
    return await in_unit_of_work(
        request,
        lambda session, actor: _change_status(
            request, session, actor, appointment_id, "correct", reason, corrected_to=status
        ),
        authenticate_with=page_actor,
    )


@router.post("/appointments/{appointment_id}/{action}", dependencies=SameOrigin)
@permits("appointments", "{action}")
async def change_status(
    request: Request,
    appointment_id: uuid.UUID,
    action: str,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Move an appointment along its lifecycle from a block's buttons; answers the re-rendered day with
    a message (the error's status when the service refuses, e.g. 409 for an illegal transition). The
    step goes through the same function as the API's (`api.in_unit_of_work`)."""
    if action not in DONE:
        raise NotFoundError("action", action)
    return await in_unit_of_work(
        request,
        lambda session, actor: _change_status(request, session, actor, appointment_id, action, reason),
        authenticate_with=page_actor,
    )


def _change_status(
    request: Request,
    session: Session,
    actor: Actor,
    appointment_id: uuid.UUID,
    action: str,
    reason: str,
    corrected_to: str = "",
) -> Response:
    appointment = scheduling.get_appointment(session, actor=actor, appointment_id=appointment_id)
    message, kind, status_code = "", "ok", 200
    if action in ("cancel", "correct") and not reason.strip():
        message, kind, status_code = f"Give a reason to {action}.", "error", 422
    elif action == "correct" and corrected_to not in (Status.COMPLETED.value, Status.NO_SHOW.value):
        message, kind, status_code = "Correct a visit to completed or to no-show.", "error", 422
    else:
        try:
            with session.begin_nested():
                if action == "correct":
                    scheduling.correct_status(
                        session,
                        actor=actor,
                        appointment_id=appointment.id,
                        to_status=Status(corrected_to),
                        reason=reason.strip()[:500],
                    )
                elif action == "cancel":
                    scheduling.cancel_appointment(
                        session, actor=actor, appointment_id=appointment.id, reason=reason.strip()[:500]
                    )
                else:
                    LIFECYCLE[action](session, actor=actor, appointment_id=appointment.id)
            message = f"{DONE[action]} {summary(session, actor, appointment)}."
        except MedspaError as error:
            audit_trail.record_refusal(session, error)
            message, kind, status_code = readable(error), "error", error.status_code
    board = board_of(session, actor, appointment, view_in_use(request))
    return day_fragment(request, board, message=message, kind=kind, status_code=status_code)
