"""The day optimizer on live data: proposals in shadow mode, and applying them.

A proposal is made in three steps that never share a transaction (see `optimization_jobs`): the day is
read (`day_instance.build_day_instance`), solved with no database work at all (`plan_day`), and the
result stored in one short write (`store_proposal`). Nothing moves until staff apply a proposal, or the
parts of it they choose, with `apply_proposal`, which first checks that the day is still as the
proposal saw it, then books through the ordinary booking path.

Replanning (`max_moves`): bookings not yet started may be moved to another provider, room or device at
their own time, or, when one cannot stay where it is and no other place is free, dropped. A dropped
booking is left exactly as it is when the proposal is applied (with its provider, room and device),
for the front desk to call the client and move or cancel it; the optimizer never puts anything in its
place. Moved and dropped bookings together are at most `max_moves`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.crud import get_owned
from medspa.kit.errors import ConflictError, MedspaError, ValidationFailedError
from medspa.kit.outbox import record_event
from medspa.kit.tz import clock_label, local_day_bounds, local_label, local_minutes_to_utc, to_local
from medspa.resources import service as resources
from medspa.scheduling import repository
from medspa.scheduling.day_instance import (
    KEEPS_TIME,
    REASSIGNABLE,
    DayInstance,
    booking_label,
    build_day_instance,
    instant_at,
    seen_booking,
)
from medspa.scheduling.lifecycle import reschedule_appointment
from medspa.scheduling.models import Appointment, ScheduleProposal, WaitlistEntry
from medspa.scheduling.schemas import (
    PlacementRead,
    ProposalItem,
    ProposalRead,
    RescheduleRequest,
)
from medspa.scheduling.solver.errors import MoveLimitError
from medspa.scheduling.solver.instance import instance_document, parse_time
from medspa.scheduling.solver.solution import Assignment, Replan, Solution, change_of
from medspa.scheduling.waitlist import book_entry
from medspa.security.actors import Actor, require

# What the objective charges for each booking moved (to another provider, room or device) or dropped
# when replanning: a call to the client and the disruption, in dollars.
MOVE_COST = 25.0
MAX_TIME_LIMIT_SECONDS = 120.0
# More than any location's day holds; a bound so that no number too large for the column is stored.
MAX_MOVES = 1000


class StaleProposalError(ConflictError):
    """The day changed after the proposal was made; `changes` say how, as staff know the bookings."""

    code = "proposal_stale"

    def __init__(self, changes: Sequence[str]) -> None:
        super().__init__(
            "the day has changed since this proposal was made: " + "; ".join(changes) + ". Optimize it again"
        )
        self.changes = list(changes)


_INSTANCE_TIME = re.compile(r"\b(\d{2}):(\d{2})\b")


def named(explanation: dict[str, Any], day: DayInstance) -> dict[str, Any]:
    """The explanation in the words staff use (`in_staff_words`)."""
    for entry in explanation["requests"]:
        entry["reason"] = in_staff_words(str(entry["reason"]), day)
    return explanation


def in_staff_words(text: str, day: DayInstance) -> str:
    """A solver's text with resource and service ids replaced by their names, and the instance's times
    ("14:30", minutes from the day's origin) by local wall-clock times ("2:30 PM"), which differ from
    them after a daylight-saving change during opening hours."""

    def wall(match: re.Match[str]) -> str:
        local = to_local(day.instant(int(match.group(1)) * 60 + int(match.group(2))), day.zone)
        return clock_label(local.hour, local.minute)

    return _INSTANCE_TIME.sub(wall, _with_names(text, day.names))


def _with_names(text: str, names: dict[str, str]) -> str:
    for record_id, name in names.items():
        text = text.replace(record_id, name)
    return text


def check_limits(time_limit_seconds: float, max_moves: int | None) -> None:
    """ValidationFailedError for a time limit outside (0, 120] seconds or a move limit outside [0, 1000]."""
    if not 0 < time_limit_seconds <= MAX_TIME_LIMIT_SECONDS:
        raise ValidationFailedError("time_limit_seconds", "must be more than 0 and at most 120")
    if max_moves is not None and max_moves < 0:
        raise ValidationFailedError("max_moves", "must not be negative")
    if max_moves is not None and max_moves > MAX_MOVES:
        raise ValidationFailedError("max_moves", f"must be at most {MAX_MOVES}")


# --- making a proposal ----------------------------------------------------------------------------------


def read_day(
    session: Session, *, actor: Actor, location_id: uuid.UUID, service_date: date, max_moves: int | None
) -> DayInstance:
    """The day as the optimizer will see it (a read: nothing is written). ConflictError when it cannot
    be planned (see `build_day_instance`)."""
    require(actor, "optimizer", "run")
    check_limits(MAX_TIME_LIMIT_SECONDS, max_moves)
    return build_day_instance(
        session,
        actor=actor,
        location_id=location_id,
        service_date=service_date,
        reassign=max_moves is not None,
    )


@dataclass(frozen=True)
class PlannedDay:
    """A solved day, ready to store: the schedule, its value, the value of the day as it is, and the
    explanation with names."""

    day: DayInstance
    solution: Solution
    objective: float
    current_value: float
    explanation: dict[str, Any]
    max_moves: int | None


def plan_day(
    day: DayInstance,
    *,
    time_limit_seconds: float,
    max_moves: int | None,
    on_progress: Callable[[float], None] | None = None,
) -> PlannedDay:
    """Solve the day (pure: no database). `on_progress` gets the value (dollars) of each better schedule
    the solver finds. ConflictError when replanning needs more moves than allowed (naming the bookings
    that cannot stay) or, never expected, when the engine's schedule breaks a rule."""
    from medspa.scheduling.solver import validate
    from medspa.scheduling.solver.explain import explain
    from medspa.scheduling.solver.model import Progress, solve

    check_limits(time_limit_seconds, max_moves)
    instance = day.instance
    replan = None
    if max_moves is not None:
        replan = Replan(Solution.of(instance.name, day.movable.values()), max_moves, MOVE_COST)

    def report(event: Progress) -> None:
        if on_progress is not None:
            on_progress(event.objective)

    try:
        result = solve(instance, time_limit_seconds=time_limit_seconds, replan=replan, on_progress=report)
    except MoveLimitError as error:
        stuck = "; ".join(
            f"{day.labels[rid]} ({in_staff_words(_reason(reason), day)})"
            for rid, reason in error.reasons.items()
        )
        raise ConflictError(
            f"{len(error.reasons)} bookings cannot stay where they are, more than the {max_moves} allowed "
            f"to move: {stuck}. Allow at least {len(error.reasons)} moves"
        ) from None
    solution, doubled = _one_place_per_client(day, result.solution)
    violations = list(validate.check(instance, solution).violations)
    if replan is not None:
        violations += validate.replan_violations(instance, replan, solution)
    if violations:  # the engine promises feasibility; refuse to store anything else
        raise ConflictError(
            "the optimizer returned a schedule that breaks a rule: " + "; ".join(violations[:3])
        )
    current = [
        Assignment(r.id, r.locked.provider, r.locked.room, r.locked.device, r.locked.start)
        for r in instance.requests
        if r.locked is not None
    ] + list(day.movable.values())
    explanation = named(explain(instance, solution, result.unbookable).as_dict(), day)
    for entry in explanation["requests"]:
        if entry["request"] in doubled:
            entry["reason"] = "not booked: the client is placed at that time for another service"
    return PlannedDay(
        day=day,
        solution=solution,
        objective=validate.score(instance, solution.assignments),
        current_value=validate.score(instance, current),
        explanation=explanation,
        max_moves=max_moves,
    )


def _one_place_per_client(day: DayInstance, solution: Solution) -> tuple[Solution, set[str]]:
    """The schedule with, of one client's waitlist placements that overlap in time, only the most
    valuable kept (the engine plans resources, not clients; their bookings elsewhere that day are
    already cut out of their windows); and the request ids left out."""
    from medspa.scheduling.solver.validate import booking_value

    instance = day.instance
    placed = [a for a in solution.assignments if day.records[a.request][0] == "waitlist"]
    requests = instance.request_by_id
    value = {a.request: booking_value(instance, requests[a.request], a.provider, a.start) for a in placed}
    kept: dict[str, list[tuple[int, int]]] = {}
    left_out: set[str] = set()
    for assignment in sorted(placed, key=lambda a: (-value[a.request], a.request)):
        request = requests[assignment.request]
        span = (assignment.start, assignment.start + instance.service_of(request).duration_minutes)
        taken = kept.setdefault(request.client_id, [])
        if any(span[0] < end and start < span[1] for start, end in taken):
            left_out.add(assignment.request)
        else:
            taken.append(span)
    if not left_out:
        return solution, left_out
    return Solution(
        solution.instance, tuple(a for a in solution.assignments if a.request not in left_out)
    ), left_out


def _reason(violation: str) -> str:
    """A validator's reason without the request id it starts with."""
    return violation.split(": ", 1)[-1]


def store_proposal(session: Session, *, actor: Actor, planned: PlannedDay, created_by: str) -> ProposalRead:
    """Store a planned day as a proposal (one short write) with what it saw of the day. Emits
    `proposal.created`."""
    require(actor, "optimizer", "run")
    day = planned.day
    proposal = ScheduleProposal(
        organization_id=actor.organization_id,
        location_id=day.location_id,
        service_date=day.service_date,
        status="proposed",
        current_value_cents=round(planned.current_value * 100),
        proposed_value_cents=round(planned.objective * 100),
        instance=instance_document(day.instance),
        solution=planned.solution.to_json(),
        requests={
            key: [kind, str(record)] + ([placement(day.movable[key])] if key in day.movable else [])
            for key, (kind, record) in day.records.items()
        },
        explanation=planned.explanation,
        origin_at=day.origin,
        seen=day.seen,
        max_moves=planned.max_moves,
        created_by=created_by,
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
        {
            "id": str(proposal.id),
            "service_date": day.service_date.isoformat(),
            "gain_cents": read.gain_cents,
        },
    )
    return read


# --- reading a proposal ---------------------------------------------------------------------------------


def _solution(proposal: ScheduleProposal) -> Solution:
    from medspa.scheduling.solver.solution import parse_solution

    return parse_solution(proposal.solution)


def _was(was: dict[str, Any], request_id: str) -> Assignment:
    return Assignment(request_id, was["provider"], was["room"], was["device"], int(was["start"]))


def _placement_read(assignment: Assignment, origin: datetime) -> PlacementRead:
    return PlacementRead(
        starts_at=instant_at(origin, assignment.start),
        provider_id=uuid.UUID(assignment.provider),
        room_id=uuid.UUID(assignment.room),
        device_id=uuid.UUID(assignment.device) if assignment.device else None,
    )


def _origin(proposal: ScheduleProposal) -> datetime:
    """The instant of the proposal's minute 0 (for a proposal stored before it was recorded: local
    midnight on the clock in force at opening, as those were computed)."""
    if proposal.origin_at is not None:
        return proposal.origin_at
    location = proposal.instance["location"]
    opens = parse_time(location["open"])
    return local_minutes_to_utc(proposal.service_date, opens, location["timezone"]) - timedelta(minutes=opens)


def _proposal_read(proposal: ScheduleProposal) -> ProposalRead:
    booked = _solution(proposal).by_request()
    origin = _origin(proposal)
    explained = {e["request"]: e for e in proposal.explanation["requests"]}
    items = []
    for request_id, (kind, record, *was) in proposal.requests.items():
        assignment = booked.get(request_id)
        note = explained.get(request_id, {})
        status = str(note.get("status", "booked" if assignment else "not booked"))
        before = _was(was[0], request_id) if was else None
        if before is not None:  # a booking the proposal may move
            status = change_of(before, assignment)
        items.append(
            ProposalItem(
                request=request_id,
                kind=kind,
                record_id=uuid.UUID(record),
                status=status,
                starts_at=instant_at(origin, assignment.start) if assignment else None,
                provider_id=uuid.UUID(assignment.provider) if assignment else None,
                room_id=uuid.UUID(assignment.room) if assignment else None,
                device_id=uuid.UUID(assignment.device) if assignment and assignment.device else None,
                was=_placement_read(before, origin) if before is not None else None,
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
        max_moves=proposal.max_moves,
        moves=sum(1 for item in items if item.status in ("moved", "dropped")),
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


def get_proposal(session: Session, *, actor: Actor, proposal_id: uuid.UUID) -> ProposalRead:
    require(actor, "optimizer", "read")
    proposal = get_owned(session, ScheduleProposal, actor.organization_id, proposal_id, "proposal")
    actor.require_location(proposal.location_id, "proposal", proposal_id)
    return _proposal_read(proposal)


# --- applying a proposal --------------------------------------------------------------------------------


def apply_proposal(
    session: Session, *, actor: Actor, proposal_id: uuid.UUID, requests: Sequence[str] | None = None
) -> ProposalRead:
    """Carry out the proposal (all of it, or the request ids given) through the booking path, all or
    nothing: the moves first (each moved booking is rescheduled to its new provider, room and device),
    then the waitlist placements are booked. Dropped bookings are left as they are, for staff to call
    the client.

    The proposal is claimed first with one conditional write, so of two applies of it one wins and the
    other gets ConflictError. Then every live booking of the day is locked (PostgreSQL; SQLite's writer
    is serialized anyway) and compared with what the proposal saw: StaleProposalError (409) names each
    booking moved, cancelled or added since, and a change of the location's set-up, and nothing
    changes. A booking path refusal (ResourceBusyError / ConflictError) also changes nothing. Emits
    `proposal.applied`."""
    require(actor, "optimizer", "apply")
    proposal = get_owned(session, ScheduleProposal, actor.organization_id, proposal_id, "proposal")
    booked = _solution(proposal).by_request()
    placements = [
        key for key, (kind, *_) in proposal.requests.items() if kind == "waitlist" and key in booked
    ]
    moves = [
        key
        for key, (_, _, *was) in proposal.requests.items()
        if was and change_of(_was(was[0], key), booked.get(key)) == "moved"
    ]
    chosen = placements + moves if requests is None else list(dict.fromkeys(requests))
    unknown = [key for key in chosen if key not in placements + moves]
    if unknown:
        raise ValidationFailedError(
            "requests", f"not placements or moves of this proposal: {', '.join(unknown)}"
        )
    _claim(session, proposal, "applied" if set(chosen) == set(placements + moves) else "partially_applied")
    _check_unchanged(session, actor, proposal, [key for key in chosen if key in moves])
    _apply_moves(session, actor, proposal, [key for key in chosen if key in moves], booked)
    for key in chosen:
        if key not in moves:
            _book_placement(session, actor, proposal, key, booked[key])
    session.flush()
    record_event(
        session, actor, "proposal.applied", proposal.id, {"id": str(proposal.id), "requests": sorted(chosen)}
    )
    return _proposal_read(proposal)


def _claim(session: Session, proposal: ScheduleProposal, status: str) -> None:
    """Mark the proposal applied if it still is `proposed`, in one conditional write (the loser of two
    concurrent applies waits for the winner's commit on PostgreSQL, then finds it applied)."""
    if proposal.status != "proposed":
        raise ConflictError(
            f"this proposal has already been {_said(proposal.status)}; optimize the day again"
        )
    now = clock.now()
    claimed = session.execute(
        update(ScheduleProposal)
        .where(ScheduleProposal.id == proposal.id, ScheduleProposal.status == "proposed")
        .values(status=status, applied_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        raise ConflictError("this proposal has just been applied by someone else; see the day")
    session.refresh(proposal)


def _said(status: str) -> str:
    return {"applied": "applied", "partially_applied": "partly applied"}.get(status, status)


def _check_unchanged(
    session: Session, actor: Actor, proposal: ScheduleProposal, moved_keys: Sequence[str]
) -> None:
    """StaleProposalError unless the day's live bookings are exactly those the proposal saw, where it
    saw them, the bookings it moves can still be moved, and the location's set-up is the same. Locks the
    bookings compared (PostgreSQL) so that none changes before this transaction ends."""
    zone = proposal.instance["location"]["timezone"]
    day = proposal.service_date
    if proposal.seen is None:
        raise StaleProposalError(["this proposal was made before proposals recorded the day they saw"])
    seen: dict[str, dict[str, Any]] = proposal.seen["bookings"]
    seen_version = proposal.seen["config_version"]
    day_start, day_end = local_day_bounds(day, zone)
    now = clock.now()
    rows = session.scalars(
        select(Appointment)
        .where(
            Appointment.organization_id == actor.organization_id,
            or_(
                Appointment.id.in_([uuid.UUID(key) for key in seen]),
                (Appointment.location_id == proposal.location_id)
                & (Appointment.starts_at >= day_start)
                & (Appointment.starts_at < day_end)
                & Appointment.status.in_(KEEPS_TIME),
            ),
        )
        .order_by(Appointment.id)
        .with_for_update()
    ).all()
    moved_records = {proposal.requests[key][1] for key in moved_keys}

    def is_live(a: Appointment) -> bool:
        expired = a.status == "held" and a.hold_expires_at is not None and a.hold_expires_at <= now
        in_day = a.location_id == proposal.location_id and day_start <= a.starts_at < day_end
        return in_day and a.status in KEEPS_TIME and not expired

    changed: list[tuple[Appointment, str]] = []
    for appointment in rows:
        key = str(appointment.id)
        was = seen.get(key)
        if was is None:
            if is_live(appointment):
                changed.append((appointment, "new"))
            continue
        if not is_live(appointment):
            changed.append((appointment, "gone"))
        elif {**seen_booking(appointment), "status": was["status"]} != was:
            changed.append((appointment, "moved"))
        elif key in moved_records and appointment.status not in REASSIGNABLE:
            changed.append((appointment, "started"))
    config = resources.location_config(session, actor=actor, location_id=proposal.location_id)
    notes = _describe(session, actor, changed, seen, zone, day)
    if config.version != seen_version:
        notes.append("the location's set-up (opening hours, staff, rooms or devices) has changed")
    if notes:
        raise StaleProposalError(notes)


def _describe(
    session: Session,
    actor: Actor,
    changed: Sequence[tuple[Appointment, str]],
    seen: dict[str, dict[str, Any]],
    zone: str,
    day: date,
) -> list[str]:
    """Each change in words staff use: client, service and time."""
    if not changed:
        return []
    names = clients.client_names(session, actor=actor, client_ids={a.client_id for a, _ in changed})
    services = {
        s.id: s.name
        for s in catalog.list_services(session, actor=actor, limit=500, include_inactive=True).items
    }
    notes = []
    for appointment, how in changed:
        was = seen.get(str(appointment.id))
        starts_at = datetime.fromisoformat(was["starts_at"]) if was else appointment.starts_at
        label = booking_label(
            names.get(appointment.client_id, "a client"),
            services.get(appointment.service_id, "a service"),
            starts_at,
            zone,
            day,
        )
        if how == "new":
            notes.append(f"{label} was booked")
        elif how == "started":
            notes.append(f"{label} is now {appointment.status.replace('_', ' ')}")
        elif how == "gone" and appointment.status == "held":
            notes.append(f"the hold on {label} expired")
        elif how == "gone" and appointment.status not in KEEPS_TIME:
            notes.append(f"{label} was {appointment.status.replace('_', ' ')}")
        elif appointment.starts_at != starts_at:
            notes.append(f"{label} was moved to {local_label(appointment.starts_at, zone, on=day)}")
        else:
            notes.append(f"{label} was given another provider, room or device")
    return notes


def _apply_moves(
    session: Session,
    actor: Actor,
    proposal: ScheduleProposal,
    keys: Sequence[str],
    booked: dict[str, Assignment],
) -> None:
    """Reschedule the moved bookings. Their reservations are all released first, so bookings that trade
    rooms or providers with each other do not collide with one another's old places."""
    appointment_ids = [uuid.UUID(proposal.requests[key][1]) for key in keys]
    repository.deactivate_reservations(session, appointment_ids)
    for key, appointment_id in zip(keys, appointment_ids, strict=True):
        assignment = booked[key]
        with _naming(session, actor, proposal, key, "cannot be moved now"):
            reschedule_appointment(
                session,
                actor=actor,
                appointment_id=appointment_id,
                data=RescheduleRequest(
                    starts_at=instant_at(_origin(proposal), assignment.start),
                    provider_id=uuid.UUID(assignment.provider),
                    room_id=uuid.UUID(assignment.room),
                    device_id=uuid.UUID(assignment.device) if assignment.device else None,
                ),
            )


@contextmanager
def _naming(
    session: Session, actor: Actor, proposal: ScheduleProposal, key: str, what: str
) -> Iterator[None]:
    """Refusals of the booking path while applying, as ConflictError (409) naming the booking or the
    waiting client as staff know them: "Dana Reyes's Botox at 10:00 AM cannot be moved now: ..."."""
    try:
        yield
    except MedspaError as error:
        kind, record = proposal.requests[key][:2]
        zone = proposal.instance["location"]["timezone"]
        if kind == "appointment":
            booking = get_owned(session, Appointment, actor.organization_id, uuid.UUID(record), "appointment")
            client_id, service_id, starts_at = booking.client_id, booking.service_id, booking.starts_at
        else:
            entry = get_owned(
                session, WaitlistEntry, actor.organization_id, uuid.UUID(record), "waitlist entry"
            )
            client_id, service_id, starts_at = entry.client_id, entry.service_id, None
        who = clients.client_names(session, actor=actor, client_ids={client_id}).get(client_id, "a client")
        service = catalog.get_service(session, actor=actor, service_id=service_id).name
        label = (
            booking_label(who, service, starts_at, zone, proposal.service_date)
            if starts_at is not None
            else f"{who}'s {service}"
        )
        raise ConflictError(f"{label} {what}: {error.detail}") from error


def _book_placement(
    session: Session, actor: Actor, proposal: ScheduleProposal, key: str, assignment: Assignment
) -> None:
    entry = get_owned(
        session, WaitlistEntry, actor.organization_id, uuid.UUID(proposal.requests[key][1]), "waitlist entry"
    )
    if entry.status != "waiting":
        who = clients.client_names(session, actor=actor, client_ids={entry.client_id}).get(entry.client_id)
        raise StaleProposalError([f"{who or 'a client'} is no longer on the waitlist ({entry.status})"])
    with _naming(session, actor, proposal, key, "cannot be booked as proposed"):
        book_entry(
            session,
            actor,
            entry,
            instant_at(_origin(proposal), assignment.start),
            uuid.UUID(assignment.provider),
            uuid.UUID(assignment.room),
            uuid.UUID(assignment.device) if assignment.device else None,
        )
