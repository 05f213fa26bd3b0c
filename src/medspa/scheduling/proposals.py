"""The day optimizer on live data: proposals in shadow mode, and applying them.

`optimize_day` turns a location's day into a clinic-day instance (`day_instance`), solves it with the
CP-SAT engine in `solver/`, and stores the result as a proposal beside the live schedule. Nothing moves
until staff apply a proposal, or the parts of it they choose, with `apply_proposal`, which books through
the ordinary booking path (so every rule is checked again against the schedule as it is then).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from medspa.kit import clock
from medspa.kit.crud import get_owned
from medspa.kit.errors import ConflictError, ValidationFailedError
from medspa.kit.outbox import record_event
from medspa.kit.tz import local_minutes_to_utc
from medspa.scheduling import repository
from medspa.scheduling.booking import book_appointment
from medspa.scheduling.day_instance import REASSIGNABLE, build_day_instance
from medspa.scheduling.lifecycle import get_appointment, reschedule_appointment
from medspa.scheduling.models import ScheduleProposal, WaitlistEntry
from medspa.scheduling.schemas import (
    BookingRequest,
    ProposalItem,
    ProposalRead,
    RescheduleRequest,
)
from medspa.scheduling.solver.instance import instance_document
from medspa.scheduling.solver.solution import Assignment, Solution
from medspa.security.actors import Actor, Permission, require

# What the objective charges for moving a booking to another provider (or dropping it) when replanning:
# a call to the client and the disruption, in dollars.
MOVE_COST = 25.0


def named(explanation: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The explanation with resource and service ids replaced by the names staff know them by."""
    for entry in explanation["requests"]:
        reason = str(entry["reason"])
        for record_id, name in names.items():
            reason = reason.replace(record_id, name)
        entry["reason"] = reason
    return explanation


# --- proposals ------------------------------------------------------------------------------------------


def optimize_day(
    session: Session,
    *,
    actor: Actor,
    location_id: uuid.UUID,
    service_date: date,
    time_limit_seconds: float = 10.0,
    max_moves: int | None = None,
) -> ProposalRead:
    """Solve the day and store the result as a proposal (shadow mode: nothing is booked or moved).

    Without `max_moves` the bookings are kept as they are and only the waitlist is placed. With it, the
    day is replanned (after a provider calls out, say): up to `max_moves` bookings not yet started may
    get another provider, room or device at their own start, or be dropped, each move costing
    `MOVE_COST` in the objective; the proposal marks them `moved`, `kept` or `dropped`.

    The proposal's value is the solver's objective in cents; the current value is that of the bookings
    as they are. Emits `proposal.created`."""
    from medspa.scheduling.solver import validate
    from medspa.scheduling.solver.explain import explain
    from medspa.scheduling.solver.model import solve
    from medspa.scheduling.solver.variables import Replan

    require(actor, Permission.BOOK)
    if not 0 < time_limit_seconds <= 120:
        raise ValidationFailedError("time_limit_seconds", "must be more than 0 and at most 120")
    if max_moves is not None and max_moves < 0:
        raise ValidationFailedError("max_moves", "must not be negative")
    day = build_day_instance(
        session,
        actor=actor,
        location_id=location_id,
        service_date=service_date,
        reassign=max_moves is not None,
    )
    instance = day.instance
    replan = None
    if max_moves is not None:
        replan = Replan(Solution.of(instance.name, day.movable.values()), max_moves, MOVE_COST)
    result = solve(instance, time_limit_seconds=time_limit_seconds, replan=replan)
    report = validate.check(instance, result.solution)
    if not report.feasible:  # the engine promises feasibility; refuse to store anything else
        raise ConflictError(
            "the optimizer returned an infeasible schedule: " + "; ".join(report.violations[:3])
        )
    current = [
        Assignment(r.id, r.locked.provider, r.locked.room, r.locked.device, r.locked.start)
        for r in instance.requests
        if r.locked is not None
    ] + list(day.movable.values())
    explanation = named(explain(instance, result.solution, result.unbookable).as_dict(), day.names)
    proposal = ScheduleProposal(
        organization_id=actor.organization_id,
        location_id=location_id,
        service_date=service_date,
        status="proposed",
        current_value_cents=round(validate.score(instance, current) * 100),
        proposed_value_cents=round(result.objective * 100),
        instance=instance_document(instance),
        solution=result.solution.to_json(),
        requests={
            key: [kind, str(record)] + ([placement(day.movable[key])] if key in day.movable else [])
            for key, (kind, record) in day.records.items()
        },
        explanation=explanation,
        created_by=actor.label,
        created_at=clock.now(),
    )
    session.add(proposal)
    session.flush()
    read = _proposal_read(proposal)
    record_event(
        session,
        actor,
        "proposal.created",
        proposal.id,
        {"id": str(proposal.id), "service_date": service_date.isoformat(), "gain_cents": read.gain_cents},
    )
    return read


def _solution(proposal: ScheduleProposal) -> Solution:
    from medspa.scheduling.solver.solution import parse_solution

    return parse_solution(proposal.solution)


def _proposal_read(proposal: ScheduleProposal) -> ProposalRead:
    booked = _solution(proposal).by_request()
    zone = proposal.instance["location"]["timezone"]
    explained = {e["request"]: e for e in proposal.explanation["requests"]}
    items = []
    for request_id, (kind, record, *was) in proposal.requests.items():
        assignment = booked.get(request_id)
        note = explained.get(request_id, {})
        status = str(note.get("status", "booked" if assignment else "not booked"))
        if was:  # a booking the proposal may move
            status = _move_status(was[0], assignment)
        items.append(
            ProposalItem(
                request=request_id,
                kind=kind,
                record_id=uuid.UUID(record),
                status=status,
                starts_at=local_minutes_to_utc(proposal.service_date, assignment.start, zone)
                if assignment
                else None,
                provider_id=uuid.UUID(assignment.provider) if assignment else None,
                room_id=uuid.UUID(assignment.room) if assignment else None,
                device_id=uuid.UUID(assignment.device) if assignment and assignment.device else None,
                value_cents=round(float(str(note.get("value", 0.0))) * 100),
                reason=str(note.get("reason", "")),
            )
        )
    return ProposalRead(
        id=proposal.id,
        location_id=proposal.location_id,
        service_date=proposal.service_date,
        status=proposal.status,
        current_value_cents=proposal.current_value_cents,
        proposed_value_cents=proposal.proposed_value_cents,
        gain_cents=proposal.proposed_value_cents - proposal.current_value_cents,
        objective_terms={k: float(v) for k, v in proposal.explanation["objective"].items()},
        items=items,
        created_at=proposal.created_at,
        applied_at=proposal.applied_at,
    )


def placement(assignment: Assignment) -> dict[str, Any]:
    return {
        "provider": assignment.provider,
        "room": assignment.room,
        "device": assignment.device,
        "start": assignment.start,
    }


def _move_status(was: dict[str, Any], now: Assignment | None) -> str:
    """`dropped` (not kept in the proposal), `moved` (another provider, room, device or start) or `kept`."""
    if now is None:
        return "dropped"
    return "kept" if placement(now) == was else "moved"


def get_proposal(session: Session, *, actor: Actor, proposal_id: uuid.UUID) -> ProposalRead:
    require(actor, Permission.READ)
    return _proposal_read(
        get_owned(session, ScheduleProposal, actor.organization_id, proposal_id, "proposal")
    )


def apply_proposal(
    session: Session, *, actor: Actor, proposal_id: uuid.UUID, requests: Sequence[str] | None = None
) -> ProposalRead:
    """Carry out the proposal (all of it, or the request ids given) through the booking path, all or
    nothing: the moves first (each moved booking is rescheduled to its new provider, room and device),
    then the waitlist placements are booked. If the day has changed so that one no longer fits,
    ResourceBusyError / ConflictError is raised and nothing changes. Locked bookings are never moved,
    and a dropped booking is left as it is for staff to handle with the client. Emits
    `proposal.applied`."""
    require(actor, Permission.BOOK)
    proposal = get_owned(session, ScheduleProposal, actor.organization_id, proposal_id, "proposal")
    if proposal.status != "proposed":
        raise ConflictError(f"proposal {proposal.id} is {proposal.status}; make a new one")
    booked = _solution(proposal).by_request()
    placements = [
        key for key, (kind, *_) in proposal.requests.items() if kind == "waitlist" and key in booked
    ]
    moves = [
        key
        for key, (_, _, *was) in proposal.requests.items()
        if was and _move_status(was[0], booked.get(key)) == "moved"
    ]
    chosen = placements + moves if requests is None else list(requests)
    unknown = [key for key in chosen if key not in placements + moves]
    if unknown:
        raise ValidationFailedError(
            "requests", f"not placements or moves of this proposal: {', '.join(unknown)}"
        )
    zone = proposal.instance["location"]["timezone"]
    _apply_moves(session, actor, proposal, [key for key in chosen if key in moves], booked, zone)
    for key in chosen:
        if key in moves:
            continue
        entry = get_owned(
            session,
            WaitlistEntry,
            actor.organization_id,
            uuid.UUID(proposal.requests[key][1]),
            "waitlist entry",
        )
        if entry.status != "waiting":
            raise ConflictError(f"waitlist entry {entry.id} is {entry.status}")
        assignment = booked[key]
        appointment = book_appointment(
            session,
            actor=actor,
            data=BookingRequest(
                client_id=entry.client_id,
                service_id=entry.service_id,
                location_id=entry.location_id,
                starts_at=local_minutes_to_utc(proposal.service_date, assignment.start, zone),
                provider_id=uuid.UUID(assignment.provider),
                room_id=uuid.UUID(assignment.room),
                device_id=uuid.UUID(assignment.device) if assignment.device else None,
            ),
        )
        entry.status = "booked"
        entry.appointment_id = appointment.id
    proposal.status = "applied" if set(chosen) == set(placements + moves) else "partially_applied"
    proposal.applied_at = clock.now()
    session.flush()
    record_event(
        session, actor, "proposal.applied", proposal.id, {"id": str(proposal.id), "requests": sorted(chosen)}
    )
    return _proposal_read(proposal)


def _apply_moves(
    session: Session,
    actor: Actor,
    proposal: ScheduleProposal,
    keys: Sequence[str],
    booked: dict[str, Assignment],
    zone: str,
) -> None:
    """Reschedule the moved bookings. Their reservations are all released first, so bookings that trade
    rooms or providers with each other do not collide with one another's old places."""
    appointment_ids = [uuid.UUID(proposal.requests[key][1]) for key in keys]
    for appointment_id in appointment_ids:
        appointment = get_appointment(session, actor=actor, appointment_id=appointment_id)
        if appointment.status.value not in REASSIGNABLE:
            raise ConflictError(
                f"appointment {appointment_id} is {appointment.status.value}; make a new proposal"
            )
    repository.deactivate_reservations(session, appointment_ids)
    for key, appointment_id in zip(keys, appointment_ids, strict=True):
        assignment = booked[key]
        reschedule_appointment(
            session,
            actor=actor,
            appointment_id=appointment_id,
            data=RescheduleRequest(
                starts_at=local_minutes_to_utc(proposal.service_date, assignment.start, zone),
                provider_id=uuid.UUID(assignment.provider),
                room_id=uuid.UUID(assignment.room),
                device_id=uuid.UUID(assignment.device) if assignment.device else None,
            ),
        )
