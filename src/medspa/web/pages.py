"""The web pages: sign-in, the front-desk day view of a location, booking, the appointment lifecycle and
the day optimizer's proposals.

Server-rendered with Jinja2 and HTMX. Handlers parse, call service functions and render: the sign-in
and CSRF guards live in `web/guards.py` (every page needs a signed-in user; every POST a same-host
Origin), the layout of the day in `web/board.py`, the slot buttons in `web/slots.py`, a
proposal's page in `web/proposals.py`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from sqlalchemy.orm import Session

from medspa.api import SESSION_COOKIE, SessionDep
from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate, ClientRead
from medspa.kit.errors import AuthenticationError, MedspaError, NotFoundError
from medspa.kit.tz import to_local
from medspa.resources import service as resources
from medspa.scheduling import optimization
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, BookingRequest, SlotRead
from medspa.security import service as security
from medspa.security.actors import Actor
from medspa.web.board import Board, build_board, clock_label, local_today
from medspa.web.guards import WEB, PageActor, PageRoute, SameOrigin, is_htmx, readable, templates
from medspa.web.proposals import build_proposal_page
from medspa.web.slots import by_provider, parse_slot

LIST_LIMIT = 500
CLIENT_MATCHES = 10

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


# --- signing in and out -------------------------------------------------------------------------------


@router.get("/")
def home(session: SessionDep, actor: PageActor) -> Response:
    locations = resources.list_locations(session, actor=actor, limit=1).items
    if not locations:
        raise NotFoundError("location", "(this organization has none yet)")
    return RedirectResponse(f"/locations/{locations[0].id}/day", status_code=303)


@router.get("/login")
def login_form(request: Request, session: SessionDep) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        try:
            security.authenticate_session(session, secret=secret)
            return RedirectResponse("/", status_code=303)
        except AuthenticationError:
            pass
    return _login_page(request, organization="demo", email="", message=None, status_code=200)


@router.post("/login", dependencies=SameOrigin)
def login(
    request: Request,
    session: SessionDep,
    organization: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    try:
        secret = security.sign_in(session, organization_slug=organization, email=email, password=password)
    except AuthenticationError as error:
        return _login_page(
            request, organization=organization, email=email, message=error.detail, status_code=401
        )
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=security.SESSION_HOURS * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def _login_page(
    request: Request, *, organization: str, email: str, message: str | None, status_code: int
) -> Response:
    context = {"organization": organization, "email": email, "message": message}
    return templates.TemplateResponse(request, "login.html", context, status_code=status_code)


@router.post("/logout", dependencies=SameOrigin)
def logout(request: Request, session: SessionDep) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        security.sign_out(session, secret=secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


# --- the day view -------------------------------------------------------------------------------------


@router.get("/locations/{location_id}/day")
def day_view(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    on: Annotated[date | None, Query(alias="date")] = None,
) -> Response:
    location = resources.get_location(session, actor=actor, location_id=location_id)
    day = on or local_today(location)
    board = build_board(session, actor=actor, location_id=location.id, day=day)
    headers = {"Vary": "HX-Request, HX-Target"}
    if is_htmx(request) and request.headers.get("hx-target") == "day":
        return _day_fragment(request, board, headers=headers)
    return _day_page(request, session, actor, board, headers=headers)


def _day_page(
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


def _day_fragment(
    request: Request,
    board: Board,
    *,
    message: str | None = None,
    kind: str = "ok",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    context = {"board": board, "message": message, "kind": kind, "oob": False}
    return templates.TemplateResponse(request, "_day.html", context, status_code=status_code, headers=headers)


# --- clients for the booking form ---------------------------------------------------------------------


@router.get("/locations/{location_id}/clients")
def search_clients(
    request: Request, session: SessionDep, actor: PageActor, location_id: uuid.UUID, q: str = ""
) -> Response:
    """Clients whose email or phone is exactly `q` (an `@` means email; otherwise its digits, a phone)."""
    query = q.strip()
    matches: list[ClientRead] = []
    if "@" in query:
        matches = clients.list_clients(session, actor=actor, email=query, limit=CLIENT_MATCHES).items
    elif clients.phone_key(query):
        matches = clients.list_clients(session, actor=actor, phone=query, limit=CLIENT_MATCHES).items
    message = None
    if query and not matches:
        message = "No client with that email or phone. Add a new client below."
    return _client_choice(request, location_id, matches, message=message)


@router.post("/locations/{location_id}/clients", dependencies=SameOrigin)
def add_client(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    first_name: Annotated[str, Form()] = "",
    last_name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
) -> Response:
    try:
        data = ClientCreate(
            first_name=first_name.strip(),
            last_name=last_name.strip(),
            email=email.strip() or None,
            phone=phone.strip() or None,
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
) -> Response:
    """The client picker's fragment; a message of kind "error" answers 422."""
    context = {
        "location_id": location_id,
        "matches": matches,
        "selected": selected,
        "message": message,
        "kind": kind,
    }
    status_code = 422 if kind == "error" else 200
    return templates.TemplateResponse(request, "_clients.html", context, status_code=status_code)


# --- slots and booking --------------------------------------------------------------------------------


@router.get("/locations/{location_id}/slots")
def slots(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    service_id: str = "",
    provider_id: str = "",
    on: Annotated[str, Query(alias="date")] = "",
) -> Response:
    """The fragment listing the bookable slots `find_slots` returns for the form's service and date."""
    return _slots_fragment(
        request, session, actor, location_id, _uuid(service_id), _uuid(provider_id), _date(on)
    )


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


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
            message, kind = readable(error), "error"
    context = {
        "location": location,
        "day": day,
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


@router.post("/locations/{location_id}/appointments", dependencies=SameOrigin)
def book(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    client_id: Annotated[str, Form()] = "",
    service_id: Annotated[str, Form()] = "",
    provider_id: Annotated[str, Form()] = "",
    on: Annotated[str, Form(alias="date")] = "",
    slot: Annotated[str, Form()] = "",
) -> Response:
    """Book the slot chosen in the form. On success: a confirmation in place of the slots, and the day
    view of the booking's date swapped in out of band. A conflict (409) or bad input (422) shows the
    reason above freshly fetched slots."""
    service, provider, day = _uuid(service_id), _uuid(provider_id), _date(on)

    def again(message: str, status_code: int, board: Board | None = None) -> Response:
        return _slots_fragment(
            request,
            session,
            actor,
            location_id,
            service,
            provider,
            day,
            message=message,
            status_code=status_code,
            board=board,
        )

    chosen = parse_slot(slot)
    client = _uuid(client_id)
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
        if error.status_code != 409:
            return again(f"Could not book: {readable(error)}.", error.status_code)
        # Someone took it: show what is free now, and the day as it now stands.
        location = resources.get_location(session, actor=actor, location_id=location_id)
        taken_day = to_local(chosen.starts_at, location.time_zone).date()
        board = build_board(session, actor=actor, location_id=location_id, day=taken_day)
        message = f"Could not book: {readable(error)}. Here are the slots free now."
        return again(message, 409, board)
    board = _board_of(session, actor, appointment)
    summary = _summary(session, actor, appointment)
    context = {
        "board": board,
        "message": f"Booked {summary}.",
        "kind": "ok",
        "oob": True,
        "new_id": appointment.id,
    }
    headers = {"HX-Push-Url": f"/locations/{location_id}/day?date={board.day.isoformat()}"}
    return templates.TemplateResponse(request, "_booked.html", context, headers=headers)


def _board_of(session: Session, actor: Actor, appointment: AppointmentRead) -> Board:
    location = resources.get_location(session, actor=actor, location_id=appointment.location_id)
    day = to_local(appointment.starts_at, location.time_zone).date()
    return build_board(session, actor=actor, location_id=location.id, day=day)


def _summary(session: Session, actor: Actor, appointment: AppointmentRead) -> str:
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
}


@router.post("/appointments/{appointment_id}/{action}", dependencies=SameOrigin)
def change_status(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    appointment_id: uuid.UUID,
    action: str,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Move an appointment along its lifecycle from a block's buttons; answers the re-rendered day with
    a message (the error's status when the service refuses, e.g. 409 for an illegal transition)."""
    if action not in DONE:
        raise NotFoundError("action", action)
    appointment = scheduling.get_appointment(session, actor=actor, appointment_id=appointment_id)
    message, kind, status_code = "", "ok", 200
    if action == "cancel" and not reason.strip():
        message, kind, status_code = "Give a reason to cancel.", "error", 422
    else:
        try:
            with session.begin_nested():
                if action == "cancel":
                    scheduling.cancel_appointment(
                        session, actor=actor, appointment_id=appointment.id, reason=reason.strip()[:500]
                    )
                else:
                    LIFECYCLE[action](session, actor=actor, appointment_id=appointment.id)
            message = f"{DONE[action]} {_summary(session, actor, appointment)}."
        except MedspaError as error:
            message, kind, status_code = readable(error), "error", error.status_code
    board = _board_of(session, actor, appointment)
    return _day_fragment(request, board, message=message, kind=kind, status_code=status_code)


# --- the day optimizer's proposals ---------------------------------------------------------------------

DEFAULT_TIME_LIMIT_SECONDS = 5.0
# The search runs inside the request: a page keeps it shorter than the service's own limit.
MAX_TIME_LIMIT_SECONDS = 60.0
templates.env.globals["time_limit_seconds"] = {
    "default": round(DEFAULT_TIME_LIMIT_SECONDS),
    "max": round(MAX_TIME_LIMIT_SECONDS),
}


@router.post("/locations/{location_id}/proposals", dependencies=SameOrigin)
def optimize(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    on: Annotated[str, Form(alias="date")] = "",
    time_limit_seconds: Annotated[str, Form()] = "",
    max_moves: Annotated[str, Form()] = "",
) -> Response:
    """Run the day optimizer on the form's date and show its proposal (shadow mode: nothing is booked).
    With a number of bookings it may move (after a provider calls out, say), the day is replanned.
    When the day cannot be planned (closed, bad input), the day view shows why, with the error's status."""
    location = resources.get_location(session, actor=actor, location_id=location_id)
    day = _date(on)
    message, status_code = "", 422
    seconds = _seconds(time_limit_seconds)
    moves = _moves(max_moves)
    if day is None:
        message = "Choose the day to optimize."
    elif seconds is None or not 0 < seconds <= MAX_TIME_LIMIT_SECONDS:
        message = f"Give the time limit in seconds, more than 0 and at most {MAX_TIME_LIMIT_SECONDS:.0f}."
    elif moves is False:
        message = (
            "Give the number of bookings that may move as a whole number, 0 or more (or leave it empty)."
        )
    else:
        try:
            with session.begin_nested():
                proposal = optimization.optimize_day(
                    session,
                    actor=actor,
                    location_id=location.id,
                    service_date=day,
                    time_limit_seconds=seconds,
                    max_moves=moves,
                )
        except MedspaError as error:
            message, status_code = f"Could not optimize the day: {readable(error)}.", error.status_code
        else:
            url = f"/proposals/{proposal.id}"
            if is_htmx(request):
                return Response(status_code=200, headers={"HX-Redirect": url})
            return RedirectResponse(url, status_code=303)
    board = build_board(session, actor=actor, location_id=location.id, day=day or local_today(location))
    if is_htmx(request):
        return _day_fragment(request, board, message=message, kind="error", status_code=status_code)
    return _day_page(request, session, actor, board, message=message, kind="error", status_code=status_code)


def _moves(value: str) -> int | Literal[False] | None:
    """The form's move limit: None when empty (bookings are kept), False when not a whole number >= 0."""
    if not value.strip():
        return None
    try:
        moves = int(value)
    except ValueError:
        return False
    return moves if moves >= 0 else False


def _seconds(value: str) -> float | None:
    if not value.strip():
        return DEFAULT_TIME_LIMIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


@router.get("/proposals/{proposal_id}")
def proposal_view(
    request: Request, session: SessionDep, actor: PageActor, proposal_id: uuid.UUID
) -> Response:
    return _proposal_page(request, session, actor, proposal_id)


@router.post("/proposals/{proposal_id}/apply", dependencies=SameOrigin)
def apply(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    proposal_id: uuid.UUID,
    chosen: Annotated[list[str] | None, Form(alias="requests")] = None,
) -> Response:
    """Book the chosen placements of the proposal, all or nothing. On success the page shows the applied
    proposal; when the day has changed so that one no longer fits (409), or nothing was chosen (422),
    it shows why, and nothing is booked."""
    proposal = optimization.get_proposal(session, actor=actor, proposal_id=proposal_id)
    if proposal.status != "proposed":
        message = (
            "This proposal has already been applied, so nothing more was booked. Optimize the day again."
        )
        return _proposal_page(request, session, actor, proposal.id, message=message, status_code=409)
    if not chosen:
        message = "Choose at least one placement to apply."
        return _proposal_page(request, session, actor, proposal.id, message=message, status_code=422)
    try:
        with session.begin_nested():
            optimization.apply_proposal(
                session, actor=actor, proposal_id=proposal.id, requests=sorted(set(chosen))
            )
    except MedspaError as error:
        message = f"Could not apply: {readable(error)}. Nothing was booked."
        if error.status_code == 409:
            message += " The day has changed since this proposal was made: optimize it again."
        return _proposal_page(
            request, session, actor, proposal.id, message=message, status_code=error.status_code
        )
    count = len(set(chosen))
    message = f"Booked {count} placement{'' if count == 1 else 's'} from the waitlist."
    return _proposal_page(request, session, actor, proposal.id, message=message, kind="ok")


def _proposal_page(
    request: Request,
    session: Session,
    actor: Actor,
    proposal_id: uuid.UUID,
    *,
    message: str | None = None,
    kind: str = "error",
    status_code: int = 200,
) -> Response:
    page = build_proposal_page(session, actor=actor, proposal_id=proposal_id)
    context = {
        "actor": actor,
        "page": page,
        "locations": resources.list_locations(session, actor=actor, limit=LIST_LIMIT).items,
        "message": message,
        "kind": kind,
    }
    return templates.TemplateResponse(request, "proposal.html", context, status_code=status_code)


def install_pages(app: FastAPI) -> None:
    """Serve the pages and their static files (`/static`: HTMX and the style sheet, no CDN)."""
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    app.include_router(router)
