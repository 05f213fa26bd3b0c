"""The day optimizer from the day view: asking the worker to optimize a day, the job's page while it
runs, a proposal's page, and applying it."""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from medspa.api import SessionDep
from medspa.kit import audit_trail, clock
from medspa.kit.errors import MedspaError
from medspa.kit.money import format_cents
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import ProposalRead
from medspa.scheduling.service import MAX_MOVES, StaleProposalError
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.board import build_board, local_today
from medspa.web.day import day_fragment, day_page
from medspa.web.forms import DATE_PROBLEM, LIST_LIMIT, form_date, view_in_use
from medspa.web.guards import PageActor, PageRoute, SameOrigin, is_htmx, readable, templates
from medspa.web.proposals import build_proposal_page

router = APIRouter(route_class=PageRoute, include_in_schema=False)


# --- the day optimizer's proposals ---------------------------------------------------------------------

DEFAULT_TIME_LIMIT_SECONDS = 5.0
MAX_TIME_LIMIT_SECONDS = 120.0
# A job still queued after this long most likely has no worker to run it: the page says so. One running
# this long past its time limit most likely lost its worker.
NO_WORKER_AFTER_SECONDS = 10.0
STALLED_AFTER_SECONDS = 60.0
templates.env.filters["money"] = format_cents
templates.env.globals["time_limit_seconds"] = {
    "default": round(DEFAULT_TIME_LIMIT_SECONDS),
    "max": round(MAX_TIME_LIMIT_SECONDS),
}


@router.post("/locations/{location_id}/proposals", dependencies=SameOrigin)
@permits("optimizer", "run")
def optimize(
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    on: Annotated[str, Form(alias="date")] = "",
    time_limit_seconds: Annotated[str, Form()] = "",
    max_moves: Annotated[str, Form()] = "",
) -> Response:
    """Ask the worker to optimize the form's date, and go to the job's page, which shows its progress and
    then the proposal (shadow mode: nothing is booked). With a number of bookings it may move (after a
    provider calls out, say), the day is replanned. Bad input keeps the day view with the reason."""
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
            f"Give the number of bookings that may move as a whole number from 0 to {MAX_MOVES} (or leave it "
            "empty)."
        )
    else:
        try:
            with session.begin_nested():
                job = scheduling.request_optimization(
                    session,
                    actor=actor,
                    location_id=location.id,
                    service_date=day,
                    time_limit_seconds=seconds,
                    max_moves=moves,
                )
        except MedspaError as error:
            audit_trail.record_refusal(session, error)
            message, status_code = f"Could not optimize the day: {readable(error)}.", error.status_code
        else:
            # Handed to the worker after the response, so after this request's unit of work has committed.
            background.add_task(request.app.state.optimization_queue, job.id)
            url = f"/optimization-jobs/{job.id}"
            if is_htmx(request):
                return Response(status_code=200, headers={"HX-Redirect": url})
            return RedirectResponse(url, status_code=303)
    board = build_board(
        session,
        actor=actor,
        location_id=location.id,
        day=day or local_today(location),
        view=view_in_use(request),
    )
    if is_htmx(request):
        return day_fragment(request, board, message=message, kind="error", status_code=status_code)
    return day_page(request, session, actor, board, message=message, kind="error", status_code=status_code)


@router.get("/optimization-jobs/{job_id}")
@permits("optimizer", "read")
def job_view(request: Request, session: SessionDep, actor: PageActor, job_id: uuid.UUID) -> Response:
    """The job while it runs (progress, refreshed every second), or its proposal once done."""
    job = scheduling.get_optimization_job(session, actor=actor, job_id=job_id)
    if job.proposal_id is not None:
        url = f"/proposals/{job.proposal_id}"
        if is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)
    location = resources.get_location(session, actor=actor, location_id=job.location_id)
    context = {
        "actor": actor,
        "job": job,
        "location": location,
        "locations": resources.list_locations(session, actor=actor, limit=LIST_LIMIT).items,
        "waited_seconds": (clock.now() - (job.started_at or job.created_at)).total_seconds(),
        "no_worker_after": NO_WORKER_AFTER_SECONDS,
        "stalled_after": STALLED_AFTER_SECONDS,
    }
    template = "_job.html" if is_htmx(request) else "optimization_job.html"
    return templates.TemplateResponse(request, template, context)


def _moves(value: str) -> int | Literal[False] | None:
    """The form's move limit: None when empty (bookings are kept), False when not a whole number >= 0."""
    if not value.strip():
        return None
    try:
        moves = int(value)
    except ValueError:
        return False
    return moves if 0 <= moves <= MAX_MOVES else False


def _seconds(value: str) -> float | None:
    if not value.strip():
        return DEFAULT_TIME_LIMIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


@router.get("/proposals/{proposal_id}")
@permits("optimizer", "read")
def proposal_view(
    request: Request, session: SessionDep, actor: PageActor, proposal_id: uuid.UUID
) -> Response:
    return _proposal_page(request, session, actor, proposal_id)


@router.post("/proposals/{proposal_id}/apply", dependencies=SameOrigin)
@permits("optimizer", "apply")
def apply(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    proposal_id: uuid.UUID,
    chosen: Annotated[list[str] | None, Form(alias="requests")] = None,
) -> Response:
    """Make the chosen moves and placements of the proposal, all or nothing. On success the page shows the
    applied proposal; when the day has changed since the proposal was made (409, naming what changed),
    or nothing was chosen (422), it shows why, and nothing changes."""
    proposal = scheduling.get_proposal(session, actor=actor, proposal_id=proposal_id)
    if proposal.status != "proposed":
        message = (
            "This proposal has already been applied, so nothing more was booked. Optimize the day again."
        )
        return _proposal_page(request, session, actor, proposal.id, message=message, status_code=409)
    if not chosen:
        message = "Choose at least one change to apply."
        return _proposal_page(request, session, actor, proposal.id, message=message, status_code=422)
    try:
        with session.begin_nested():
            scheduling.apply_proposal(
                session, actor=actor, proposal_id=proposal.id, requests=sorted(set(chosen))
            )
    except StaleProposalError as error:
        message = f"Nothing was changed: {readable(error)}."
        return _proposal_page(request, session, actor, proposal.id, message=message, status_code=409)
    except MedspaError as error:
        audit_trail.record_refusal(session, error)
        message = f"Could not apply: {readable(error)}. Nothing was changed."
        if error.status_code == 409 and len(set(chosen)) < len(_changes(proposal)):
            message += " A change you left out may be what makes room for one you chose."
        return _proposal_page(
            request, session, actor, proposal.id, message=message, status_code=error.status_code
        )
    moved = len({item.request for item in proposal.items if item.status == "moved"} & set(chosen))
    booked = len(set(chosen)) - moved
    done = [
        f"booked {booked} placement{'' if booked == 1 else 's'} from the waitlist" if booked else "",
        f"moved {moved} booking{'' if moved == 1 else 's'}" if moved else "",
    ]
    message = " and ".join(part for part in done if part).capitalize() + "."
    return _proposal_page(request, session, actor, proposal.id, message=message, kind="ok")


def _changes(proposal: ProposalRead) -> list[str]:
    """The request ids a proposal can apply: its moves and its waitlist placements."""
    return [
        item.request
        for item in proposal.items
        if item.status == "moved" or (item.kind == "waitlist" and item.status == "booked")
    ]


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
