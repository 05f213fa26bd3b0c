"""The day optimizer on live data: the waitlist, proposals in shadow mode, and applying them.

`optimize_day` turns a location's day into a clinic-day instance (the bookings already made are locked;
waiting waitlist entries are the flexible requests), solves it with the CP-SAT engine in `solver/`, and
stores the result as a proposal beside the live schedule. Nothing moves until staff apply a proposal, or
the parts of it they choose, with `apply_proposal`, which books through the ordinary booking path (so
every rule is checked again against the schedule as it is then).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceRead
from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.crud import get_owned
from medspa.kit.errors import ConflictError, ValidationFailedError
from medspa.kit.outbox import record_event
from medspa.kit.tz import local_day_bounds, local_minutes_to_utc, to_local
from medspa.resources import service as resources
from medspa.resources.schemas import ProviderRead
from medspa.scheduling import availability, repository
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import Appointment, ScheduleProposal, WaitlistEntry
from medspa.scheduling.schemas import (
    BookingRequest,
    ProposalItem,
    ProposalRead,
    RescheduleRequest,
    WaitlistCreate,
    WaitlistRead,
)
from medspa.scheduling.solver import instance as model
from medspa.scheduling.solver.solution import Assignment, Solution
from medspa.security.actors import Actor, Permission, require

# The clinic's policy weights (dollars): what continuity and members are worth, what waiting costs.
CONTINUITY_BONUS = 40.0
PRIORITY_BONUS = {"member": 60.0, "standard": 0.0}
WAIT_COST_PER_HOUR = 12.0
# A client's no-show probability until the no-show model serves it: the client's own record, shrunk
# towards the clinic-wide prior (Beta(0.8, 9.2): mean 8 %, worth ten visits of evidence).
PRIOR_NO_SHOWS, PRIOR_VISITS = 0.8, 10.0
KEEPS_TIME = ("held", "booked", "confirmed", "checked_in", "in_service", "completed")
REASSIGNABLE = ("booked", "confirmed")
# What the objective charges for moving a booking to another provider (or dropping it) when replanning:
# a call to the client and the disruption, in dollars.
MOVE_COST = 25.0


# --- waitlist ------------------------------------------------------------------------------------------


def add_to_waitlist(session: Session, *, actor: Actor, data: WaitlistCreate) -> WaitlistRead:
    """Put a client on the waitlist for a service on a local date within a window. Emits
    `waitlist.added`. NotFoundError for unknown client, service, location or provider."""
    require(actor, Permission.BOOK)
    clients.get_client(session, actor=actor, client_id=data.client_id)
    catalog.get_service(session, actor=actor, service_id=data.service_id)
    resources.get_location(session, actor=actor, location_id=data.location_id)
    if data.preferred_provider_id is not None:
        resources.get_provider(session, actor=actor, provider_id=data.preferred_provider_id)
    entry = WaitlistEntry(
        organization_id=actor.organization_id,
        **data.model_dump(),
        status="waiting",
        created_by=actor.label,
        created_at=clock.now(),
    )
    session.add(entry)
    session.flush()
    read = WaitlistRead.model_validate(entry)
    record_event(session, actor, "waitlist.added", entry.id, read.model_dump(mode="json"))
    return read


def list_waitlist(
    session: Session, *, actor: Actor, location_id: uuid.UUID, service_date: date, status: str = "waiting"
) -> list[WaitlistRead]:
    require(actor, Permission.READ)
    return [
        WaitlistRead.model_validate(e) for e in _waitlist(session, actor, location_id, service_date, status)
    ]


def _waitlist(
    session: Session, actor: Actor, location_id: uuid.UUID, service_date: date, status: str
) -> list[WaitlistEntry]:
    query = select(WaitlistEntry).where(
        WaitlistEntry.organization_id == actor.organization_id,
        WaitlistEntry.location_id == location_id,
        WaitlistEntry.service_date == service_date,
        WaitlistEntry.status == status,
    )
    return list(session.scalars(query.order_by(WaitlistEntry.created_at, WaitlistEntry.id)))


# --- from the database to an instance -------------------------------------------------------------------


@dataclass(frozen=True)
class DayInstance:
    """A location's day as a clinic-day instance, and what each of its ids stands for."""

    instance: model.Instance
    records: dict[str, tuple[str, uuid.UUID]]  # request id -> ("appointment" | "waitlist", record id)
    names: dict[str, str]  # provider, room, device and service id -> its name
    zone: str
    service_date: date
    # Bookings the optimizer may reassign (`reassign=True`): request id -> where they are now.
    movable: dict[str, Assignment] = field(default_factory=dict)


def _named(explanation: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The explanation with resource and service ids replaced by the names staff know them by."""
    for entry in explanation["requests"]:
        reason = str(entry["reason"])
        for record_id, name in names.items():
            reason = reason.replace(record_id, name)
        entry["reason"] = reason
    return explanation


def _skill_key(service: ServiceRead) -> str:
    """The instance's skill for a service: its skill, and its license when it needs one."""
    return service.required_skill + (f"+{service.required_license}" if service.required_license else "")


def _minutes(instant: datetime, zone: str, service_date: date) -> int:
    local = to_local(instant, zone)
    return (local.date() - service_date).days * 24 * 60 + local.hour * 60 + local.minute


def _wall(value: time) -> int:
    return value.hour * 60 + value.minute


def build_day_instance(
    session: Session, *, actor: Actor, location_id: uuid.UUID, service_date: date, reassign: bool = False
) -> DayInstance:
    """The day at a location as a clinic-day instance: its hours, providers (shifts, breaks and time
    off as breaks; a skill per qualified service, licenses checked on that date), rooms, devices (one
    in maintenance during opening hours is left out), services, the day's bookings as locked requests
    and the waiting waitlist entries as flexible ones.

    The instance counts wall-clock minutes from midnight. On a day with a daylight-saving change that is
    exact as long as the change falls outside the opening hours (clocks change at night); a day whose
    opening hours span the change is refused, since its wall-clock minutes are not all real minutes.

    With `reassign`, bookings not yet started (booked or confirmed, starting after now) are not locked:
    each keeps its start but may get another provider, room or device, or be dropped (`movable` holds
    where they are now, for replanning). Held, started and finished appointments stay locked.

    ConflictError when the location is closed that day, or its opening hours span a daylight-saving
    change, or a locked booking uses a resource no longer active."""
    config = resources.location_config(session, actor=actor, location_id=location_id)
    location = config.location
    zone = location.time_zone
    day_start, day_end = local_day_bounds(service_date, zone)
    spans = [s for s in location.opening_hours if s.weekday == service_date.weekday()]
    if not spans or service_date in config.closed_dates:
        raise ConflictError(f"the location is closed on {service_date}")
    opens, closes = min(_wall(s.starts_at) for s in spans), max(_wall(s.ends_at) for s in spans)
    elapsed = local_minutes_to_utc(service_date, closes, zone) - local_minutes_to_utc(
        service_date, opens, zone
    )
    if elapsed != timedelta(minutes=closes - opens):
        raise ConflictError(
            f"the opening hours of {service_date} span a daylight-saving change; the day optimizer "
            "plans in wall-clock minutes and cannot plan that day"
        )
    services = {s.id: s for s in catalog.list_services(session, actor=actor, limit=500).items}
    appointments = list(
        session.scalars(
            select(Appointment).where(
                Appointment.organization_id == actor.organization_id,
                Appointment.location_id == location_id,
                Appointment.starts_at >= day_start,
                Appointment.starts_at < day_end,
                Appointment.status.in_(KEEPS_TIME),
            )
        )
    )
    now = clock.now()
    appointments = [
        a for a in appointments if not (a.status == "held" and a.hold_expires_at and a.hold_expires_at <= now)
    ]
    for appointment in appointments:
        if appointment.service_id not in services:
            services[appointment.service_id] = catalog.get_service(
                session, actor=actor, service_id=appointment.service_id
            )
    waitlist = _waitlist(session, actor, location_id, service_date, "waiting")
    providers = [
        _provider(p, services.values(), service_date, zone, config.time_off, day_start, day_end)
        for p in config.providers
    ]
    devices = [
        model.Device(id=str(d.id), type=d.device_type, cooldown_minutes=d.cooldown_minutes)
        for d in config.devices
        if not any(
            device_id == d.id and down_from < day_end and down_until > day_start
            for device_id, down_from, down_until in config.maintenance
        )
    ]
    known = {p.id for p in providers} | {r.id for r in model_rooms(config.rooms)} | {d.id for d in devices}
    risk = _no_show_risk(
        session, actor, [a.client_id for a in appointments] + [w.client_id for w in waitlist]
    )
    requests: list[model.Request] = []
    records: dict[str, tuple[str, uuid.UUID]] = {}
    movable: dict[str, Assignment] = {}
    for appointment in sorted(appointments, key=lambda a: (a.starts_at, str(a.id))):
        start = _minutes(appointment.starts_at, zone, service_date)
        duration = services[appointment.service_id].duration_minutes
        request_id = f"a-{appointment.id.hex[:12]}"
        records[request_id] = ("appointment", appointment.id)
        now_at = Assignment(
            request_id,
            str(appointment.provider_id),
            str(appointment.room_id),
            str(appointment.device_id) if appointment.device_id else None,
            start,
        )
        lock = None
        if reassign and appointment.status in REASSIGNABLE and appointment.starts_at > now:
            movable[request_id] = now_at
        else:
            _check_lockable(appointment, now_at, duration, known, providers)
            lock = model.Lock(provider=now_at.provider, room=now_at.room, device=now_at.device, start=start)
        requests.append(
            model.Request(
                id=request_id,
                client_id=str(appointment.client_id),
                service=str(appointment.service_id),
                windows=(model.TimeRange(start, start + duration),),
                preferred_provider=str(appointment.provider_id),
                priority="standard",
                no_show_probability=_no_show_probability(appointment, risk),
                locked=lock,
            )
        )
    for entry in waitlist:
        request_id = f"w-{entry.id.hex[:12]}"
        records[request_id] = ("waitlist", entry.id)
        requests.append(
            model.Request(
                id=request_id,
                client_id=str(entry.client_id),
                service=str(entry.service_id),
                windows=(model.TimeRange(_wall(entry.window_starts_at), _wall(entry.window_ends_at)),),
                preferred_provider=str(entry.preferred_provider_id) if entry.preferred_provider_id else None,
                priority=entry.priority,
                no_show_probability=risk.get(entry.client_id, PRIOR_NO_SHOWS / PRIOR_VISITS),
                locked=None,
            )
        )
    instance = model.Instance(
        name=f"{location.name} {service_date}",
        timezone=zone,
        service_date=service_date,
        open=opens,
        close=closes,
        time_unit_minutes=location.slot_interval_minutes,
        providers=tuple(providers),
        rooms=tuple(model_rooms(config.rooms)),
        devices=tuple(devices),
        services=tuple(
            model.Service(
                id=str(s.id),
                category=s.category,
                duration_minutes=s.duration_minutes,
                setup_minutes=s.setup_minutes,
                cleanup_minutes=s.cleanup_minutes,
                skill=_skill_key(s),
                room_types=frozenset(s.room_types),
                device_type=s.device_type,
                price=s.price_cents / 100,
                cost=s.cost_cents / 100,
            )
            for s in services.values()
        ),
        requests=tuple(requests),
        weights=model.Weights(CONTINUITY_BONUS, PRIORITY_BONUS, WAIT_COST_PER_HOUR),
    )
    names = {str(p.id): p.name for p in config.providers} | {str(r.id): r.name for r in config.rooms}
    names |= {str(d.id): d.name for d in config.devices} | {str(s.id): s.name for s in services.values()}
    return DayInstance(instance, records, names, zone, service_date, movable)


def _check_lockable(
    appointment: Appointment,
    placed: Assignment,
    duration: int,
    known: set[str],
    providers: Sequence[model.Provider],
) -> None:
    """ConflictError when a booking cannot be kept where it is: a resource of it is no longer active (or
    in maintenance), or it falls in its provider's time off or break."""
    used = [placed.provider, placed.room, placed.device]
    missing = [x for x in used if x is not None and x not in known]
    if missing:
        raise ConflictError(
            f"appointment {appointment.id} uses {', '.join(missing)}, no longer active "
            "or in maintenance; move it first"
        )
    end = placed.start + duration
    if any(
        b.start < end and placed.start < b.end for p in providers if p.id == placed.provider for b in p.breaks
    ):
        raise ConflictError(
            f"appointment {appointment.id} falls in its provider's time off or break; replan the day "
            "(max_moves) to give it another provider"
        )


def model_rooms(rooms: Sequence[Any]) -> list[model.Room]:
    return [model.Room(id=str(r.id), type=r.room_type) for r in rooms]


def _provider(
    provider: ProviderRead,
    services: Any,
    service_date: date,
    zone: str,
    time_off: list[tuple[uuid.UUID, datetime, datetime]],
    day_start: datetime,
    day_end: datetime,
) -> model.Provider:
    weekday = service_date.weekday()
    breaks = [
        model.TimeRange(_wall(b.starts_at), _wall(b.ends_at)) for b in provider.breaks if b.weekday == weekday
    ]
    for provider_id, off_from, off_until in time_off:
        if provider_id == provider.id and off_from < day_end and off_until > day_start:
            start = max(0, _minutes(max(off_from, day_start), zone, service_date))
            end = min(24 * 60, _minutes(min(off_until, day_end), zone, service_date) or 24 * 60)
            breaks.append(model.TimeRange(start, end))
    return model.Provider(
        id=str(provider.id),
        name=provider.name,
        skills=frozenset(
            _skill_key(s) for s in services if availability.is_qualified(provider, s, service_date)
        ),
        shifts=tuple(
            model.TimeRange(_wall(s.starts_at), _wall(s.ends_at))
            for s in provider.shifts
            if s.weekday == weekday
        ),
        breaks=tuple(breaks),
    )


def _no_show_probability(appointment: Appointment, risk: dict[uuid.UUID, float]) -> float:
    """The booking's stored P(no-show) from the active no-show model when the worker has scored it;
    otherwise the client's smoothed rate (`_no_show_risk`), or the prior for a client without history."""
    if appointment.no_show_probability is not None:
        return appointment.no_show_probability
    return risk.get(appointment.client_id, PRIOR_NO_SHOWS / PRIOR_VISITS)


def _no_show_risk(session: Session, actor: Actor, client_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, float]:
    """Each client's no-show rate over their finished visits, shrunk towards the clinic-wide prior: the
    fallback for a request without a stored model probability (a waitlist entry, an unscored booking)."""
    if not client_ids:
        return {}
    rows = session.execute(
        select(Appointment.client_id, Appointment.status, func.count())
        .where(
            Appointment.organization_id == actor.organization_id,
            Appointment.client_id.in_(set(client_ids)),
            Appointment.status.in_(("completed", "no_show")),
        )
        .group_by(Appointment.client_id, Appointment.status)
    )
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for client_id, status, number in rows:
        counts.setdefault(client_id, {})[status] = number
    return {
        client: (c.get("no_show", 0) + PRIOR_NO_SHOWS)
        / (c.get("no_show", 0) + c.get("completed", 0) + PRIOR_VISITS)
        for client, c in counts.items()
    }


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
    explanation = _named(explain(instance, result.solution, result.unbookable).as_dict(), day.names)
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
            key: [kind, str(record)] + ([_placement(day.movable[key])] if key in day.movable else [])
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


def instance_document(instance: model.Instance) -> dict[str, Any]:
    """The instance as a `clinic-day-instance/1` document (what `medspa optimize` reads)."""
    fmt = model.format_time

    def spans(ranges: Sequence[model.TimeRange]) -> list[dict[str, str]]:
        return [{"start": fmt(r.start), "end": fmt(r.end)} for r in ranges]

    return {
        "format": "clinic-day-instance/1",
        "name": instance.name,
        "location": {
            "timezone": instance.timezone,
            "date": instance.service_date.isoformat(),
            "open": fmt(instance.open),
            "close": fmt(instance.close),
        },
        "time_unit_minutes": instance.time_unit_minutes,
        "providers": [
            {
                "id": p.id,
                "name": p.name,
                "skills": sorted(p.skills),
                "shifts": spans(p.shifts),
                "breaks": spans(p.breaks),
            }
            for p in instance.providers
        ],
        "rooms": [{"id": r.id, "type": r.type} for r in instance.rooms],
        "devices": [
            {"id": d.id, "type": d.type, "cooldown_minutes": d.cooldown_minutes} for d in instance.devices
        ],
        "services": [
            {
                "id": s.id,
                "category": s.category,
                "duration_minutes": s.duration_minutes,
                "setup_minutes": s.setup_minutes,
                "cleanup_minutes": s.cleanup_minutes,
                "skill": s.skill,
                "room_types": sorted(s.room_types),
                "device_type": s.device_type,
                "price": s.price,
                "cost": s.cost,
            }
            for s in instance.services
        ],
        "requests": [
            {
                "id": r.id,
                "client_id": r.client_id,
                "service": r.service,
                "windows": spans(r.windows),
                "preferred_provider": r.preferred_provider,
                "priority": r.priority,
                "no_show_probability": r.no_show_probability,
                "locked": None
                if r.locked is None
                else {
                    "provider": r.locked.provider,
                    "room": r.locked.room,
                    "device": r.locked.device,
                    "start": fmt(r.locked.start),
                },
            }
            for r in instance.requests
        ],
        "weights": {
            "continuity_bonus": instance.weights.continuity_bonus,
            "priority_bonus": dict(instance.weights.priority_bonus),
            "wait_cost_per_hour": instance.weights.wait_cost_per_hour,
        },
    }


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


def _placement(assignment: Assignment) -> dict[str, Any]:
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
    return "kept" if _placement(now) == was else "moved"


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
        appointment = scheduling.book_appointment(
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
        appointment = scheduling.get_appointment(session, actor=actor, appointment_id=appointment_id)
        if appointment.status.value not in REASSIGNABLE:
            raise ConflictError(
                f"appointment {appointment_id} is {appointment.status.value}; make a new proposal"
            )
    repository.deactivate_reservations(session, appointment_ids)
    for key, appointment_id in zip(keys, appointment_ids, strict=True):
        assignment = booked[key]
        scheduling.reschedule_appointment(
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
