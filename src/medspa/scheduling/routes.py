"""HTTP routes for availability, holds, appointments and their lifecycle actions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response

from medspa.api import ActorDep, Limit, Offset, SessionDep, in_unit_of_work
from medspa.config import load_settings
from medspa.engagement import service as engagement
from medspa.kit.schemas import AwareDatetime, BoundedDate, Page
from medspa.scheduling import service
from medspa.scheduling.schemas import (
    ApplyRequest,
    AppointmentRead,
    BookingRequest,
    CancelRequest,
    CorrectionRequest,
    HoldRequest,
    OptimizationJobRead,
    ProposalRead,
    ReminderRead,
    RescheduleRequest,
    SlotRead,
    Status,
    TransitionRead,
    WaitlistBooking,
    WaitlistCreate,
    WaitlistRead,
)
from medspa.security.permissions import permits

router = APIRouter(prefix="/api/v1", tags=["scheduling"])


@router.get("/availability")
@permits("availability", "read")
def availability(
    session: SessionDep,
    actor: ActorDep,
    location_id: uuid.UUID,
    service_id: uuid.UUID,
    first: Annotated[BoundedDate, Query(alias="from", description="first local date, e.g. 2026-12-01")],
    last: Annotated[BoundedDate, Query(alias="to", description="last local date, inclusive")],
    provider_id: uuid.UUID | None = None,
) -> list[SlotRead]:
    return service.find_slots(
        session,
        actor=actor,
        location_id=location_id,
        service_id=service_id,
        first_date=first,
        last_date=last,
        provider_id=provider_id,
    )


# The booking path (holds, bookings and lifecycle steps) does its whole unit of work in one thread hop
# (see `in_unit_of_work`); the other routes use the `SessionDep` and `ActorDep` dependencies.


@router.post("/holds", status_code=201)
@permits("appointments", "hold")
async def hold(data: HoldRequest, request: Request) -> AppointmentRead:
    minutes = load_settings().hold_minutes
    return await in_unit_of_work(
        request,
        lambda session, actor: service.hold_slot(session, actor=actor, data=data, hold_minutes=minutes),
    )


@router.post("/holds/{appointment_id}/confirm")
@permits("appointments", "book")
async def confirm_hold(appointment_id: uuid.UUID, request: Request) -> AppointmentRead:
    return await in_unit_of_work(
        request,
        lambda session, actor: service.confirm_hold(session, actor=actor, appointment_id=appointment_id),
    )


@router.post("/appointments", status_code=201)
@permits("appointments", "book")
async def book(data: BookingRequest, request: Request) -> AppointmentRead:
    return await in_unit_of_work(
        request, lambda session, actor: service.book_appointment(session, actor=actor, data=data)
    )


@router.get("/appointments")
@permits("appointments", "read")
def list_appointments(
    session: SessionDep,
    actor: ActorDep,
    location_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    status: Status | None = None,
    starts_from: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    starts_before: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AppointmentRead]:
    return service.list_appointments(
        session,
        actor=actor,
        location_id=location_id,
        client_id=client_id,
        status=status,
        starts_from=starts_from,
        starts_before=starts_before,
        limit=limit,
        offset=offset,
    )


@router.get("/appointments/{appointment_id}")
@permits("appointments", "read")
def get_appointment(appointment_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> AppointmentRead:
    return service.get_appointment(session, actor=actor, appointment_id=appointment_id)


@router.get("/appointments/{appointment_id}/history")
@permits("appointments", "read")
def history(appointment_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> list[TransitionRead]:
    return service.appointment_history(session, actor=actor, appointment_id=appointment_id)


class Action(StrEnum):
    BOOK = "book"
    CONFIRM = "confirm"
    CHECK_IN = "check-in"
    START = "start"
    COMPLETE = "complete"
    NO_SHOW = "no-show"


ACTIONS: dict[Action, Callable[..., AppointmentRead]] = {
    Action.BOOK: service.confirm_hold,
    Action.CONFIRM: service.confirm_appointment,
    Action.CHECK_IN: service.check_in,
    Action.START: service.start_service,
    Action.COMPLETE: service.complete_appointment,
    Action.NO_SHOW: service.mark_no_show,
}


@router.post("/waitlist", status_code=201)
@permits("waitlist", "add")
def add_to_waitlist(data: WaitlistCreate, session: SessionDep, actor: ActorDep) -> WaitlistRead:
    return service.add_to_waitlist(session, actor=actor, data=data)


@router.get("/waitlist")
@permits("waitlist", "read")
def list_waitlist(
    session: SessionDep,
    actor: ActorDep,
    location_id: uuid.UUID,
    service_date: Annotated[BoundedDate, Query(alias="date")],
) -> list[WaitlistRead]:
    return service.list_waitlist(session, actor=actor, location_id=location_id, service_date=service_date)


@router.post("/waitlist/{entry_id}/book", status_code=201)
@permits("waitlist", "book")
def book_from_waitlist(
    entry_id: uuid.UUID, data: WaitlistBooking, session: SessionDep, actor: ActorDep
) -> AppointmentRead:
    """Book the waiting client at `starts_at` (409 when the time was taken, or the entry is no longer
    waiting); the entry is marked booked."""
    return service.book_from_waitlist(
        session, actor=actor, entry_id=entry_id, starts_at=data.starts_at, provider_id=data.provider_id
    )


@router.delete("/waitlist/{entry_id}")
@permits("waitlist", "remove")
def remove_from_waitlist(entry_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> WaitlistRead:
    """Take the client off the waitlist (409 when the entry is no longer waiting)."""
    return service.remove_from_waitlist(session, actor=actor, entry_id=entry_id)


@router.post("/locations/{location_id}/optimize", status_code=202)
@permits("optimizer", "run")
def optimize_day(
    location_id: uuid.UUID,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    actor: ActorDep,
    service_date: Annotated[BoundedDate, Query(alias="date")],
    time_limit_seconds: float = Query(default=10.0, gt=0, le=120),
    max_moves: int | None = Query(
        default=None,
        ge=0,
        le=1000,
        description="replan: at most this many bookings may be moved (another provider, room or device) "
        "or, when one cannot stay where it is, left for staff to call the client",
    ),
) -> OptimizationJobRead:
    """Ask the worker to optimize the day: 202 with the job, whose `status_url` says how it goes
    (queued, running with the best value so far, done with the proposal, or failed with the reason).
    The proposal is stored beside the live schedule; nothing is booked or moved until it is applied.
    Without `max_moves` the bookings stay as they are and the waitlist is placed."""
    job = service.request_optimization(
        session,
        actor=actor,
        location_id=location_id,
        service_date=service_date,
        time_limit_seconds=time_limit_seconds,
        max_moves=max_moves,
    )
    # Handed to the worker after the response, so after this request's unit of work has committed.
    background.add_task(request.app.state.optimization_queue, job.id)
    response.headers["Location"] = job.status_url
    return job


@router.get("/optimization-jobs/{job_id}")
@permits("optimizer", "read")
def get_optimization_job(job_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> OptimizationJobRead:
    return service.get_optimization_job(session, actor=actor, job_id=job_id)


@router.get("/proposals/{proposal_id}")
@permits("optimizer", "read")
def get_proposal(proposal_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ProposalRead:
    return service.get_proposal(session, actor=actor, proposal_id=proposal_id)


@router.post("/proposals/{proposal_id}/apply")
@permits("optimizer", "apply")
def apply_proposal(
    proposal_id: uuid.UUID, data: ApplyRequest, session: SessionDep, actor: ActorDep
) -> ProposalRead:
    """Carry out the proposal (its moves and placements; all, or `requests`), all or nothing. 409
    `proposal_stale`, naming what changed, when the day is no longer as the proposal saw it."""
    return service.apply_proposal(session, actor=actor, proposal_id=proposal_id, requests=data.requests)


@router.post("/appointments/{appointment_id}/cancel")
@permits("appointments", "cancel")
async def cancel(appointment_id: uuid.UUID, data: CancelRequest, request: Request) -> AppointmentRead:
    return await in_unit_of_work(
        request,
        lambda session, actor: service.cancel_appointment(
            session, actor=actor, appointment_id=appointment_id, reason=data.reason
        ),
    )


@router.post("/appointments/{appointment_id}/correct")
@permits("appointments", "correct")
async def correct(appointment_id: uuid.UUID, data: CorrectionRequest, request: Request) -> AppointmentRead:
    """A manager corrects a finished visit's outcome (completed <-> no-show), recorded in its history;
    409 for any other status."""
    return await in_unit_of_work(
        request,
        lambda session, actor: service.correct_status(
            session,
            actor=actor,
            appointment_id=appointment_id,
            to_status=Status(data.status),
            reason=data.reason,
        ),
    )


@router.post("/appointments/{appointment_id}/reschedule")
@permits("appointments", "reschedule")
async def reschedule(appointment_id: uuid.UUID, data: RescheduleRequest, request: Request) -> AppointmentRead:
    return await in_unit_of_work(
        request,
        lambda session, actor: service.reschedule_appointment(
            session, actor=actor, appointment_id=appointment_id, data=data
        ),
    )


@router.post("/appointments/{appointment_id}/reminders")
@permits("appointments", "remind")
def remind(appointment_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ReminderRead:
    """The front desk's reminder of a booked visit still to come: the confirmation request again, now,
    by each channel the client allows (consent, quiet hours and caps apply when it is sent). Once per
    start: `asked` is false when it had been asked for already. 409 for a visit not still to come."""
    return ReminderRead(asked=engagement.remind_now(session, actor=actor, appointment_id=appointment_id))


@router.post("/appointments/{appointment_id}/deposit-requests")
@permits("appointments", "request_deposit")
def request_deposit(appointment_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> AppointmentRead:
    """A task for the front desk to take a deposit before the visit (medspa takes no payments), kept
    as a line in the visit's history; once per start. 409 for a visit not still to come."""
    return service.request_deposit(session, actor=actor, appointment_id=appointment_id)


@router.post("/appointments/{appointment_id}/{action}")
@permits("appointments", "{action}")
async def act(appointment_id: uuid.UUID, action: Action, request: Request) -> AppointmentRead:
    """`book` (a hold), `confirm`, `check-in`, `start`, `complete` or `no-show`; 409 when illegal now."""
    step = ACTIONS[action]
    return await in_unit_of_work(
        request, lambda session, actor: step(session, actor=actor, appointment_id=appointment_id)
    )
