"""The web pages: sign-in, the front-desk day view of a location, booking and the appointment lifecycle.

Server-rendered with Jinja2 (autoescaping on: client names are user input) and HTMX. Every page needs a
signed-in user (deny by default): without a valid session cookie a page redirects to /login, and an
HTMX request gets `HX-Redirect: /login`.

CSRF: the session cookie is HttpOnly and SameSite=Lax (a browser does not send it on a cross-site POST),
and every POST must also carry an `Origin` header, or failing that a `Referer`, whose host is the
request's own `Host`; a POST with neither, or from another host, is refused with 403. Browsers send
`Origin` on every form and fetch POST, so this needs no token in the forms.

Handlers parse, call service functions and render; the layout of the day lives in `web/board.py`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from pydantic import ValidationError
from sqlalchemy.orm import Session

from medspa.api import SESSION_COOKIE, SessionDep
from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate, ClientRead
from medspa.kit.errors import AuthenticationError, MedspaError, NotFoundError, PermissionDeniedError
from medspa.kit.tz import to_local
from medspa.resources import service as resources
from medspa.resources.schemas import LocationRead
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, BookingRequest, SlotRead
from medspa.security import service as security
from medspa.security.actors import Actor
from medspa.web.board import Board, build_board, clock_label, local_today

HERE = Path(__file__).resolve().parent
LIST_LIMIT = 500
CLIENT_MATCHES = 10
_ID_IN_PARENTHESES = re.compile(r" \([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)")

_environment = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
_environment.filters["hm"] = lambda value: clock_label(value.hour, value.minute)
templates = Jinja2Templates(env=_environment)


class SignInRequiredError(Exception):
    """No valid session: the page answers with the way to /login."""


class _PageRoute(APIRoute):
    """Routes whose errors are rendered as HTML (a page, or a fragment for HTMX) instead of JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def render_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequiredError:
                if _is_htmx(request):
                    return Response(status_code=401, headers={"HX-Redirect": "/login"})
                return RedirectResponse("/login", status_code=303)
            except MedspaError as error:
                return _error(request, _readable(error), error.status_code)
            except RequestValidationError as error:
                fields = ", ".join(str(p.get("loc", ("?",))[-1]) for p in error.errors())
                return _error(request, f"invalid input: {fields}", 422)

        return render_errors


router = APIRouter(route_class=_PageRoute, include_in_schema=False)


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _error(request: Request, message: str, status_code: int) -> Response:
    name = "_message.html" if _is_htmx(request) else "error.html"
    context = {"message": message, "kind": "error", "status_code": status_code}
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _page_actor(request: Request, session: SessionDep) -> Actor:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise SignInRequiredError
    try:
        return security.authenticate_session(session, secret=secret)
    except AuthenticationError as error:
        raise SignInRequiredError from error


def _same_origin(request: Request) -> None:
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or urlsplit(source).netloc != request.headers.get("host", ""):
        raise PermissionDeniedError("cross-site request refused: send it from this site's own pages")


PageActor = Annotated[Actor, Depends(_page_actor)]
SameOrigin = [Depends(_same_origin)]


def _readable(error: MedspaError) -> str:
    """The error's message for the front desk: names stay, the record ids beside them go."""
    return _ID_IN_PARENTHESES.sub("", error.detail)


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
    if _is_htmx(request) and request.headers.get("hx-target") == "day":
        return _day_fragment(request, board, headers=headers)
    today = local_today(location)
    context = {
        "actor": actor,
        "board": board,
        "locations": resources.list_locations(session, actor=actor, limit=LIST_LIMIT).items,
        "services": catalog.list_services(session, actor=actor, limit=LIST_LIMIT).items,
        "providers": [c.provider for c in board.columns if c.provider.is_active],
        "booking_date": max(day, today),
    }
    return templates.TemplateResponse(request, "day.html", context, headers=headers)


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
def search_clients(request: Request, session: SessionDep, actor: PageActor, q: str = "") -> Response:
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
    return _client_choice(request, matches, message=message)


@router.post("/locations/{location_id}/clients", dependencies=SameOrigin)
def add_client(
    request: Request,
    session: SessionDep,
    actor: PageActor,
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
        return _client_choice(request, [], message=f"Check the new client: {problems}", kind="error")
    if data.email is None and data.phone is None:
        return _client_choice(request, [], message="Give the new client an email or a phone.", kind="error")
    client = clients.create_client(session, actor=actor, data=data)
    return _client_choice(
        request, [client], selected=client.id, message=f"Added {client.first_name}.", kind="ok"
    )


def _client_choice(
    request: Request,
    matches: list[ClientRead],
    *,
    selected: uuid.UUID | None = None,
    message: str | None = None,
    kind: str = "note",
) -> Response:
    """The client picker's fragment; a message of kind "error" answers 422."""
    context = {"matches": matches, "selected": selected, "message": message, "kind": kind}
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
            message, kind = _readable(error), "error"
    context = {
        "location": location,
        "day": day,
        "groups": _by_provider(found),
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


def _by_provider(found: list[SlotRead]) -> list[tuple[str, list[dict[str, str]]]]:
    groups: dict[str, list[dict[str, str]]] = {}
    for slot in found:
        local = datetime.fromisoformat(slot.local_start)
        groups.setdefault(slot.provider_name, []).append(
            {
                "time": clock_label(local.hour, local.minute),
                "room": slot.room_name,
                "device": slot.device_name or "",
                "value": _slot_value(slot),
            }
        )
    return sorted(groups.items())


def _slot_value(slot: SlotRead) -> str:
    """What a slot button posts: the start and the exact resources offered, so the booking takes them."""
    parts = [slot.starts_at.isoformat(), str(slot.provider_id), str(slot.room_id), str(slot.device_id or "")]
    return "|".join(parts)


def _parse_slot(value: str) -> tuple[datetime, uuid.UUID, uuid.UUID, uuid.UUID | None] | None:
    parts = value.split("|")
    if len(parts) != 4:
        return None
    try:
        starts_at = datetime.fromisoformat(parts[0])
    except ValueError:
        return None
    provider_id, room_id = _uuid(parts[1]), _uuid(parts[2])
    if starts_at.tzinfo is None or provider_id is None or room_id is None:
        return None
    return starts_at, provider_id, room_id, _uuid(parts[3])


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

    chosen = _parse_slot(slot)
    client = _uuid(client_id)
    if chosen is None:
        return again("Pick one of the slots below.", 200 if not slot else 422)
    if client is None:
        return again("Choose or add a client first, then pick the slot again.", 422)
    if service is None:
        return again("Choose a service.", 422)
    starts_at, slot_provider, room, device = chosen
    request_data = BookingRequest(
        client_id=client,
        service_id=service,
        location_id=location_id,
        starts_at=starts_at,
        provider_id=slot_provider,
        room_id=room,
        device_id=device,
    )
    try:
        with session.begin_nested():
            appointment = scheduling.book_appointment(session, actor=actor, data=request_data)
    except MedspaError as error:
        if error.status_code != 409:
            return again(f"Could not book: {_readable(error)}.", error.status_code)
        # Someone took it: show what is free now, and the day as it now stands.
        location = resources.get_location(session, actor=actor, location_id=location_id)
        taken_day = to_local(starts_at, location.time_zone).date()
        board = build_board(session, actor=actor, location_id=location_id, day=taken_day)
        message = f"Could not book: {_readable(error)}. Here are the slots free now."
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
    location: LocationRead = resources.get_location(session, actor=actor, location_id=appointment.location_id)
    local = to_local(appointment.starts_at, location.time_zone)
    client = clients.get_client(session, actor=actor, client_id=appointment.client_id)
    service = catalog.get_service(session, actor=actor, service_id=appointment.service_id)
    when = f"{local.strftime('%a %b')} {local.day}, {clock_label(local.hour, local.minute)}"
    return f"{client.first_name} {client.last_name} for {service.name} on {when}"


# --- the appointment lifecycle ------------------------------------------------------------------------

LIFECYCLE: dict[str, Callable[..., AppointmentRead]] = {
    "check_in": scheduling.check_in,
    "start": scheduling.start_service,
    "complete": scheduling.complete_appointment,
    "no_show": scheduling.mark_no_show,
}
DONE = {
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
            message, kind, status_code = _readable(error), "error", error.status_code
    board = _board_of(session, actor, appointment)
    return _day_fragment(request, board, message=message, kind=kind, status_code=status_code)


def install_pages(app: FastAPI) -> None:
    """Serve the pages and their static files (`/static`: HTMX and the style sheet, no CDN)."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
