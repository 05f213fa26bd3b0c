"""The day optimizer from the day view: running it, a proposal's page, and applying it."""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from medspa.api import SessionDep
from medspa.kit.errors import MedspaError
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.security.actors import Actor
from medspa.web.board import build_board, local_today
from medspa.web.day import day_fragment, day_page
from medspa.web.forms import DATE_PROBLEM, LIST_LIMIT, form_date
from medspa.web.guards import PageActor, PageRoute, SameOrigin, is_htmx, readable, templates
from medspa.web.proposals import build_proposal_page

router = APIRouter(route_class=PageRoute, include_in_schema=False)


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
    day = form_date(on)
    message, status_code = "", 422
    seconds = _seconds(time_limit_seconds)
    moves = _moves(max_moves)
    if day is None:
        message = DATE_PROBLEM if on else "Choose the day to optimize."
    elif seconds is None or not 0 < seconds <= MAX_TIME_LIMIT_SECONDS:
        message = f"Give the time limit in seconds, more than 0 and at most {MAX_TIME_LIMIT_SECONDS:.0f}."
    elif moves is False:
        message = (
            "Give the number of bookings that may move as a whole number, 0 or more (or leave it empty)."
        )
    else:
        try:
            with session.begin_nested():
                proposal = scheduling.optimize_day(
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
        return day_fragment(request, board, message=message, kind="error", status_code=status_code)
    return day_page(request, session, actor, board, message=message, kind="error", status_code=status_code)


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
    proposal = scheduling.get_proposal(session, actor=actor, proposal_id=proposal_id)
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
            scheduling.apply_proposal(
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
