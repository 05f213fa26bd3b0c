"""Availability, holds, bookings and the appointment lifecycle.

Lifecycle: held -> booked -> confirmed -> checked_in -> in_service -> completed, or cancelled / no_show.
Every transition is recorded (from, to, when, by whom) with an outbox event in the same transaction; an
illegal one raises IllegalTransitionError (409).

No provider, room or device is ever double-booked. A booking re-checks every resource inside its own
transaction; on SQLite that transaction is serialized (BEGIN IMMEDIATE), and on PostgreSQL an exclusion
constraint over (resource, time range) refuses the loser of a race, which is reported as ResourceBusyError
naming the resource. Functions flush, never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.catalog.models import Service
from medspa.catalog.schemas import ServiceRead
from medspa.clients import service as clients
from medspa.clients.models import Client
from medspa.kit import clock, intervals
from medspa.kit.crud import get_owned, list_owned, prefetch
from medspa.kit.errors import (
    ConflictError,
    IllegalTransitionError,
    ResourceBusyError,
    ValidationFailedError,
)
from medspa.kit.ids import new_id
from medspa.kit.outbox import record_event
from medspa.kit.schemas import Page
from medspa.kit.tz import local_day_bounds, to_local
from medspa.resources import service as resources
from medspa.resources.models import Location
from medspa.resources.schemas import DeviceRead, LocationRead, ProviderRead, RoomRead
from medspa.resources.service import LocationResources
from medspa.scheduling import availability, repository
from medspa.scheduling.models import Appointment, Reservation
from medspa.scheduling.schemas import (
    AppointmentRead,
    BookingRequest,
    HoldRequest,
    RescheduleRequest,
    SlotRead,
    Status,
    TransitionRead,
)
from medspa.security.actors import Actor, Permission, require, system_actor

MAX_RANGE_DAYS = 62

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.HELD: frozenset({Status.BOOKED, Status.CANCELLED}),
    Status.BOOKED: frozenset({Status.CONFIRMED, Status.CHECKED_IN, Status.CANCELLED, Status.NO_SHOW}),
    Status.CONFIRMED: frozenset({Status.CHECKED_IN, Status.CANCELLED, Status.NO_SHOW}),
    Status.CHECKED_IN: frozenset({Status.IN_SERVICE, Status.CANCELLED}),
    Status.IN_SERVICE: frozenset({Status.COMPLETED}),
    Status.COMPLETED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.NO_SHOW: frozenset(),
}
RELEASING = frozenset({Status.CANCELLED, Status.NO_SHOW})
RESCHEDULABLE = frozenset({Status.HELD, Status.BOOKED, Status.CONFIRMED})
EVENT_VERB = {
    Status.HELD: "held",
    Status.BOOKED: "booked",
    Status.CONFIRMED: "confirmed",
    Status.CHECKED_IN: "checked_in",
    Status.IN_SERVICE: "started",
    Status.COMPLETED: "completed",
    Status.CANCELLED: "cancelled",
    Status.NO_SHOW: "no_show",
}


# --- availability ------------------------------------------------------------------------------------


def find_slots(
    session: Session,
    *,
    actor: Actor,
    location_id: uuid.UUID,
    service_id: uuid.UUID,
    first_date: date,
    last_date: date,
    provider_id: uuid.UUID | None = None,
) -> list[SlotRead]:
    """Bookable starts for the service over the local dates `first_date..last_date` (inclusive), one per
    (start, provider), each with the room and device the booking would use.

    Raises ValidationFailedError when the range is reversed or longer than 62 days, NotFoundError for an
    unknown location, service or provider, ConflictError for an inactive service."""
    require(actor, Permission.READ)
    if last_date < first_date:
        raise ValidationFailedError("to", "must not be before from")
    if (last_date - first_date).days >= MAX_RANGE_DAYS:
        raise ValidationFailedError("to", f"a range covers at most {MAX_RANGE_DAYS} days")
    service = _active_service(session, actor, service_id)
    config = resources.location_config(session, actor=actor, location_id=location_id)
    location = config.location
    _require_open_for_business(location)
    start, _ = local_day_bounds(first_date, location.time_zone)
    _, end = local_day_bounds(last_date, location.time_zone)
    now = clock.now()
    context = _load(session, service, config, start, end, now)
    providers = _providers(session, actor, context.resources, provider_id)
    earliest = now + timedelta(minutes=location.minimum_notice_minutes)
    slots = []
    for day in availability.local_dates(first_date, last_date):
        options = availability.day_options(context.resources, service, day, context.busy, providers)
        if options is None:
            continue
        for candidate in availability.candidates(context.resources, service, options, earliest):
            slots.append(_slot_read(candidate, location.time_zone))
    return slots


@dataclass
class _Context:
    resources: LocationResources
    busy: dict[uuid.UUID, list[intervals.Interval]]


def _relevant_resources(loaded: LocationResources, service: ServiceRead) -> list[uuid.UUID]:
    """The providers, rooms and devices that could take part in the service: only their bookings matter."""
    ids = [p.id for p in loaded.providers if service.required_skill in p.skills]
    ids += [r.id for r in loaded.rooms if r.room_type in service.room_types]
    ids += [d.id for d in loaded.devices if d.device_type == service.device_type]
    return ids


def _load(
    session: Session,
    service: ServiceRead,
    config: resources.LocationConfig,
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    booking: tuple[Actor, uuid.UUID | None, tuple[datetime, datetime]] | None = None,
) -> _Context:
    """The location's resources over `[start, end)` and the reservations that block them.

    For a booking, `(actor, appointment being moved or None, window)`: only reservations within the
    window around its own start are read, the moved appointment's own do not count, and expired holds
    found there are released (recorded as cancelled) so their reservations make way."""
    # Reservations reach at most a day past the service (setup, cleanup, cooldown): widen the window.
    margin = timedelta(days=1)
    loaded = resources.resources_within(config, start - margin, end + margin)
    busy_start, busy_end = booking[2] if booking else (start - margin, end + margin)
    location_id = config.location.id
    relevant = _relevant_resources(loaded, service)
    rows, expired_in_the_way = repository.busy_reservations(
        session, location_id, busy_start, busy_end, now, relevant, report_expired=booking is not None
    )
    if booking is not None:
        actor, moving, _ = booking
        if expired_in_the_way:
            _release_expired_holds(session, actor, location_id, now)
        if moving is not None:
            own = {r.resource_id: (r.starts_at, r.ends_at) for r in _reservations_of(session, moving)}
            rows = [row for row in rows if own.get(row[0]) != (row[1], row[2])]
    return _Context(loaded, availability.busy_by_resource(rows))


def _reservations_of(session: Session, appointment_id: uuid.UUID) -> list[Reservation]:
    query = select(Reservation).where(
        Reservation.appointment_id == appointment_id, Reservation.is_active.is_(True)
    )
    return list(session.scalars(query))


def _providers(
    session: Session, actor: Actor, loaded: LocationResources, provider_id: uuid.UUID | None
) -> list[ProviderRead]:
    if provider_id is None:
        return loaded.providers
    match = [p for p in loaded.providers if p.id == provider_id]
    if match:
        return match
    provider = resources.get_provider(session, actor=actor, provider_id=provider_id)  # 404 if unknown
    raise ConflictError(f"provider {provider.name} ({provider.id}) is not active at this location")


def _require_open_for_business(location: LocationRead) -> None:
    if not location.is_active:
        raise ConflictError(f"location {location.name} is deactivated")


def _active_service(session: Session, actor: Actor, service_id: uuid.UUID) -> ServiceRead:
    service = catalog.get_service(session, actor=actor, service_id=service_id)
    if not service.is_active:
        raise ConflictError(f"service {service.name} is no longer offered")
    return service


def _slot_read(candidate: availability.Candidate, zone: str) -> SlotRead:
    return SlotRead(
        starts_at=candidate.starts_at,
        ends_at=candidate.ends_at,
        local_start=availability.local_iso(candidate.starts_at, zone),
        provider_id=candidate.provider.id,
        provider_name=candidate.provider.name,
        room_id=candidate.room.id,
        room_name=candidate.room.name,
        device_id=candidate.device.id if candidate.device else None,
        device_name=candidate.device.name if candidate.device else None,
    )


# --- choosing resources for one start ------------------------------------------------------------------


@dataclass(frozen=True)
class _Choice:
    provider: ProviderRead
    room: RoomRead
    device: DeviceRead | None


def _choose(
    session: Session,
    actor: Actor,
    request: BookingRequest | RescheduleRequest,
    location_id: uuid.UUID,
    service: ServiceRead,
    now: datetime,
    exclude: uuid.UUID | None,
) -> _Choice:
    """The provider, room and device for a booking at `request.starts_at`, or the reason there is none:
    ValidationFailedError (422) for a start off the grid, too soon, or outside opening hours;
    ConflictError / ResourceBusyError (409) when resources are unqualified, off duty or taken."""
    config = resources.location_config(session, actor=actor, location_id=location_id)
    location = config.location
    _require_open_for_business(location)
    zone = location.time_zone
    starts_at = request.starts_at
    local = to_local(starts_at, zone)
    minute_of_day = local.hour * 60 + local.minute
    if local.second or local.microsecond or minute_of_day % location.slot_interval_minutes:
        raise ValidationFailedError(
            "starts_at", f"not on the location's {location.slot_interval_minutes}-minute grid"
        )
    if starts_at < now + timedelta(minutes=location.minimum_notice_minutes):
        raise ValidationFailedError(
            "starts_at", f"must be at least {location.minimum_notice_minutes} minutes from now"
        )
    day = local.date()
    start, end = local_day_bounds(day, zone)
    # Only reservations that could overlap this booking's own reservations matter to the decision.
    longest_cooldown = max((d.cooldown_minutes for d in config.devices), default=0)
    reach = (
        starts_at - timedelta(minutes=service.setup_minutes),
        starts_at
        + timedelta(minutes=service.duration_minutes + max(service.cleanup_minutes, longest_cooldown)),
    )
    context = _load(session, service, config, start, end, now, booking=(actor, exclude, reach))
    providers = _providers(session, actor, context.resources, request.provider_id)
    options = availability.day_options(context.resources, service, day, context.busy, providers)
    if options is None:
        raise ValidationFailedError("starts_at", f"the location is closed on {day.isoformat()}")
    room_window = (
        starts_at - timedelta(minutes=service.setup_minutes),
        starts_at + timedelta(minutes=service.duration_minutes + service.cleanup_minutes),
    )
    if not intervals.covers(options.open_spans, *room_window):
        raise ValidationFailedError(
            "starts_at", "outside opening hours (with the service's setup and cleanup)"
        )

    def idle() -> availability.DayOptions:
        # The same day with nothing booked: tells "off duty" from "taken" when no resource fits.
        unbooked = availability.day_options(context.resources, service, day, {}, providers)
        assert unbooked is not None
        return unbooked

    provider = _pick_provider(providers, service, day, options, idle, starts_at)
    spread = next((i for i, p in enumerate(context.resources.providers) if p.id == provider.id), 0)
    room = _pick(
        "room",
        _suitable_first(context.resources.rooms, service, spread),
        request.room_id,
        options.room_starts,
        idle,
        starts_at,
    )
    device = None
    if service.device_type is not None:
        device = _pick(
            "device", context.resources.devices, request.device_id, options.device_starts, idle, starts_at
        )
    return _Choice(provider, room, device)


R = TypeVar("R", RoomRead, DeviceRead)


def _suitable_first(pool: list[R], service: ServiceRead, spread: int) -> list[R]:
    """The suitable rooms or devices in the order slots offer them (see `availability.preferred`)."""
    suitable = [
        r
        for r in pool
        if (
            r.room_type in service.room_types
            if isinstance(r, RoomRead)
            else r.device_type == service.device_type
        )
    ]
    return availability.preferred(suitable, spread)


def _pick_provider(
    providers: list[ProviderRead],
    service: ServiceRead,
    day: date,
    options: availability.DayOptions,
    idle: Callable[[], availability.DayOptions],
    starts_at: datetime,
) -> ProviderRead:
    qualified = [p for p in providers if p.id in options.provider_starts]
    if not qualified:
        if len(providers) == 1:
            p = providers[0]
            needs = service.required_skill + (
                f" and a valid {service.required_license} license" if service.required_license else ""
            )
            raise ConflictError(
                f"provider {p.name} ({p.id}) lacks what {service.name} needs: {needs} on {day}"
            )
        raise ConflictError(f"no provider at this location is qualified for {service.name} on {day}")
    for provider in qualified:
        if availability.contains(options.provider_starts[provider.id], starts_at):
            return provider
    unbooked = idle()
    working = [p for p in qualified if availability.contains(unbooked.provider_starts[p.id], starts_at)]
    if not working:
        who = (
            f"provider {qualified[0].name} ({qualified[0].id}) is not"
            if len(qualified) == 1
            else "no qualified provider is"
        )
        raise ConflictError(f"{who} on duty for the whole service at that time")
    busy = working[0]
    raise ResourceBusyError(
        "provider", busy.id, f"provider {busy.name} ({busy.id}) is already booked at that time"
    )


def _pick(
    kind: str,
    pool: list[R],
    wanted: uuid.UUID | None,
    starts: dict[uuid.UUID, list[intervals.Interval]],
    idle: Callable[[], availability.DayOptions],
    starts_at: datetime,
) -> R:
    suitable = [r for r in pool if r.id in starts and (wanted is None or r.id == wanted)]
    if not suitable:
        if wanted is not None:
            raise ConflictError(f"{kind} {wanted} is not at this location or not suitable for the service")
        raise ConflictError(f"this location has no {kind} suitable for the service")
    for resource in suitable:
        if availability.contains(starts[resource.id], starts_at):
            return resource
    unbooked = idle()
    idle_starts = unbooked.room_starts if kind == "room" else unbooked.device_starts
    usable = [r for r in suitable if availability.contains(idle_starts[r.id], starts_at)]
    if not usable:
        raise ConflictError(f"no suitable {kind} is in service at that time")
    taken = usable[0]
    raise ResourceBusyError(
        kind, taken.id, f"{kind} {taken.name} ({taken.id}) is already booked at that time"
    )


# --- writing bookings ----------------------------------------------------------------------------------


def hold_slot(session: Session, *, actor: Actor, data: HoldRequest, hold_minutes: int) -> AppointmentRead:
    """Reserve a slot for `hold_minutes` (or the request's own) while the client decides. An expired hold
    stops blocking at once; it is recorded as cancelled ("hold expired") by the next booking that needs
    its time, or by the background sweep (`release_expired_holds`), whichever comes first."""
    require(actor, Permission.BOOK)
    minutes = data.hold_minutes or hold_minutes
    return _create(session, actor, data, Status.HELD, clock.now() + timedelta(minutes=minutes))


def book_appointment(session: Session, *, actor: Actor, data: BookingRequest) -> AppointmentRead:
    """Book directly. Emits `appointment.booked`. See the module docstring for the conflict rules."""
    require(actor, Permission.BOOK)
    return _create(session, actor, data, Status.BOOKED, None)


def _create(
    session: Session, actor: Actor, data: BookingRequest, status: Status, hold_expires_at: datetime | None
) -> AppointmentRead:
    now = clock.now()
    # One round trip for the three records every booking reads (the lookups below then find them).
    loaded = prefetch(
        session,
        actor.organization_id,
        (Client, data.client_id),
        (Service, data.service_id),
        (Location, data.location_id),
    )
    client = clients.get_client(session, actor=actor, client_id=data.client_id)
    if not client.is_active:
        raise ConflictError(f"client {client.id} is deactivated")
    service = _active_service(session, actor, data.service_id)
    choice = _choose(session, actor, data, data.location_id, service, now, exclude=None)
    appointment = Appointment(
        organization_id=actor.organization_id,
        location_id=data.location_id,
        client_id=client.id,
        service_id=service.id,
        status=status.value,
        starts_at=data.starts_at,
        ends_at=data.starts_at + timedelta(minutes=service.duration_minutes),
        hold_expires_at=hold_expires_at,
        price_cents=service.price_cents,
        created_by=actor.label,
        created_at=now,
        updated_at=now,
    )
    del loaded
    _assign(appointment, choice)
    session.add(appointment)
    session.flush()
    _reserve_or_rechoose(session, actor, appointment, service, choice, data, now)
    return _record(session, actor, appointment, None, status, None, now)


def _assign(appointment: Appointment, choice: _Choice) -> None:
    appointment.provider_id = choice.provider.id
    appointment.room_id = choice.room.id
    appointment.device_id = choice.device.id if choice.device else None


RESERVE_ATTEMPTS = 3


def _reserve_or_rechoose(
    session: Session,
    actor: Actor,
    appointment: Appointment,
    service: ServiceRead,
    choice: _Choice,
    request: BookingRequest | RescheduleRequest,
    now: datetime,
) -> None:
    """Reserve the chosen resources; if a concurrent booking took one of them first (PostgreSQL's
    exclusion constraint says so), choose again with that booking now visible and retry, so a loser
    that could use another room or provider still books. Resources the request named stay fixed, so
    for them the next choice raises ResourceBusyError at once. (On SQLite writers are serialized and
    the re-check in `_choose` already saw every committed booking, so the first attempt holds.)"""
    for attempt in range(RESERVE_ATTEMPTS):
        try:
            _reserve(session, actor, appointment, service, choice)
            return
        except ResourceBusyError:
            if attempt == RESERVE_ATTEMPTS - 1:
                raise
        choice = _choose(
            session, actor, request, appointment.location_id, service, now, exclude=appointment.id
        )
        _assign(appointment, choice)
        session.flush()


def _reserve(
    session: Session, actor: Actor, appointment: Appointment, service: ServiceRead, choice: _Choice
) -> None:
    """Insert the appointment's reservations in resource-id order (so concurrent bookings lock in one
    order and cannot deadlock). On PostgreSQL the exclusion constraint decides: a reservation it refuses
    is skipped, the others are taken back, and ResourceBusyError names the resource that was taken."""
    start = appointment.starts_at
    wanted = [
        ("provider", choice.provider.id, start, appointment.ends_at),
        (
            "room",
            choice.room.id,
            start - timedelta(minutes=service.setup_minutes),
            appointment.ends_at + timedelta(minutes=service.cleanup_minutes),
        ),
    ]
    if choice.device is not None:
        wanted.append(
            (
                "device",
                choice.device.id,
                start,
                appointment.ends_at + timedelta(minutes=choice.device.cooldown_minutes),
            )
        )
    ordered = sorted(wanted, key=lambda w: str(w[1]))
    rows = [
        {
            "id": new_id(),
            "organization_id": actor.organization_id,
            "appointment_id": appointment.id,
            "location_id": appointment.location_id,
            "resource_kind": kind,
            "resource_id": resource_id,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "is_active": True,
        }
        for kind, resource_id, starts_at, ends_at in ordered
    ]
    taken = repository.insert_reservations(session, rows)
    if len(taken) == len(rows):
        return
    repository.delete_reservations(session, list(taken.values()))
    kind, resource_id = next((kind, rid) for kind, rid, _, _ in ordered if rid not in taken)
    raise ResourceBusyError(kind, resource_id)


def release_expired_holds(session: Session) -> int:
    """Record every expired hold, in every organization, as cancelled ("hold expired") and free its
    reservations; how many. A background job runs this: an expired hold blocks nothing already, and a
    booking that needs its time releases it itself, but until then it would still read as held."""
    now = clock.now()
    released = 0
    for organization_id, location_id in repository.locations_with_expired_holds(session, now):
        released += _release_expired_holds(session, system_actor(organization_id, "holds"), location_id, now)
    return released


def _release_expired_holds(session: Session, actor: Actor, location_id: uuid.UUID, now: datetime) -> int:
    expired = repository.expire_holds(session, location_id, now)
    if not expired:
        return 0
    repository.deactivate_reservations(session, expired)
    for appointment_id in expired:
        repository.add_transition(
            session,
            organization_id=actor.organization_id,
            appointment_id=appointment_id,
            from_status=Status.HELD.value,
            to_status=Status.CANCELLED.value,
            actor="system:holds",
            reason="hold expired",
            occurred_at=now,
        )
        record_event(session, actor, "appointment.hold_expired", appointment_id, {"id": str(appointment_id)})
    return len(expired)


def _record(
    session: Session,
    actor: Actor,
    appointment: Appointment,
    from_status: Status | None,
    to_status: Status,
    reason: str | None,
    now: datetime,
    topic: str | None = None,
) -> AppointmentRead:
    """Record the step and its outbox event; the appointment as it now reads. (The appointment has been
    flushed: the history row refers to it.)"""
    repository.add_transition(
        session,
        organization_id=actor.organization_id,
        appointment_id=appointment.id,
        from_status=from_status.value if from_status else None,
        to_status=to_status.value,
        actor=actor.label,
        reason=reason,
        occurred_at=now,
    )
    read = AppointmentRead.model_validate(appointment)
    payload = read.model_dump(mode="json")
    record_event(session, actor, topic or f"appointment.{EVENT_VERB[to_status]}", appointment.id, payload)
    return read


# --- lifecycle ------------------------------------------------------------------------------------------


def _appointment(session: Session, actor: Actor, appointment_id: uuid.UUID) -> Appointment:
    return get_owned(session, Appointment, actor.organization_id, appointment_id, "appointment")


def get_appointment(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    require(actor, Permission.READ)
    return AppointmentRead.model_validate(_appointment(session, actor, appointment_id))


def appointment_history(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> list[TransitionRead]:
    require(actor, Permission.READ)
    appointment = _appointment(session, actor, appointment_id)
    return [TransitionRead.model_validate(t) for t in repository.transitions(session, appointment.id)]


def list_appointments(
    session: Session,
    *,
    actor: Actor,
    location_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    status: Status | None = None,
    starts_from: datetime | None = None,
    starts_before: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[AppointmentRead]:
    require(actor, Permission.READ)
    filters = []
    if location_id is not None:
        filters.append(Appointment.location_id == location_id)
    if client_id is not None:
        filters.append(Appointment.client_id == client_id)
    if status is not None:
        filters.append(Appointment.status == status.value)
    if starts_from is not None:
        filters.append(Appointment.starts_at >= starts_from)
    if starts_before is not None:
        filters.append(Appointment.starts_at < starts_before)
    rows, total = list_owned(
        session,
        Appointment,
        actor.organization_id,
        *filters,
        order_by=(Appointment.starts_at, Appointment.id),
        limit=limit,
        offset=offset,
    )
    return Page(
        items=[AppointmentRead.model_validate(a) for a in rows], total=total, limit=limit, offset=offset
    )


def _transition(
    session: Session,
    actor: Actor,
    appointment_id: uuid.UUID,
    to_status: Status,
    reason: str | None = None,
) -> AppointmentRead:
    appointment = _appointment(session, actor, appointment_id)
    current = Status(appointment.status)
    now = clock.now()
    if (
        current is Status.HELD
        and appointment.hold_expires_at is not None
        and appointment.hold_expires_at <= now
    ):
        raise IllegalTransitionError(f"the hold on appointment {appointment.id} has expired")
    if to_status not in TRANSITIONS[current]:
        raise IllegalTransitionError(
            f"appointment {appointment.id} is {current.value}; it cannot become {to_status.value}"
        )
    if to_status is Status.NO_SHOW and now < appointment.starts_at:
        raise IllegalTransitionError("a no-show can be recorded only once the appointment has started")
    appointment.status = to_status.value
    appointment.updated_at = now
    if to_status is Status.BOOKED:
        appointment.hold_expires_at = None
    if to_status is Status.CANCELLED:
        appointment.cancellation_reason = reason
        appointment.cancelled_by = actor.label
    if to_status in RELEASING:
        repository.deactivate_reservations(session, [appointment.id])
    session.flush()
    return _record(session, actor, appointment, current, to_status, reason, now)


def confirm_hold(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    """held -> booked, while the hold is unexpired. Emits `appointment.booked`."""
    require(actor, Permission.BOOK)
    return _transition(session, actor, appointment_id, Status.BOOKED)


def confirm_appointment(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    """booked -> confirmed (the client said they will come)."""
    require(actor, Permission.BOOK)
    return _transition(session, actor, appointment_id, Status.CONFIRMED)


def check_in(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    require(actor, Permission.BOOK)
    return _transition(session, actor, appointment_id, Status.CHECKED_IN)


def start_service(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    require(actor, Permission.BOOK)
    return _transition(session, actor, appointment_id, Status.IN_SERVICE)


def complete_appointment(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    require(actor, Permission.BOOK)
    return _transition(session, actor, appointment_id, Status.COMPLETED)


def cancel_appointment(
    session: Session, *, actor: Actor, appointment_id: uuid.UUID, reason: str
) -> AppointmentRead:
    """Cancel with a reason; the provider, room and device are free again at once."""
    require(actor, Permission.BOOK)
    return _transition(session, actor, appointment_id, Status.CANCELLED, reason)


def mark_no_show(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    """The client did not come (only once the start has passed); the rest of the time is freed."""
    require(actor, Permission.BOOK)
    return _transition(session, actor, appointment_id, Status.NO_SHOW)


def reschedule_appointment(
    session: Session, *, actor: Actor, appointment_id: uuid.UUID, data: RescheduleRequest
) -> AppointmentRead:
    """Move a held, booked or confirmed appointment to a new start (and resources), atomically: the old
    reservations are released and the new ones taken in one transaction, or nothing changes."""
    require(actor, Permission.BOOK)
    appointment = _appointment(session, actor, appointment_id)
    current = Status(appointment.status)
    if current not in RESCHEDULABLE:
        raise IllegalTransitionError(
            f"appointment {appointment.id} is {current.value}; it cannot be rescheduled"
        )
    now = clock.now()
    service = catalog.get_service(session, actor=actor, service_id=appointment.service_id)
    _release_expired_holds(session, actor, appointment.location_id, now)
    session.refresh(appointment)
    if Status(appointment.status) is not current:
        raise IllegalTransitionError(f"the hold on appointment {appointment.id} has expired")
    choice = _choose(session, actor, data, appointment.location_id, service, now, exclude=appointment.id)
    repository.deactivate_reservations(session, [appointment.id])
    previous = {"starts_at": appointment.starts_at.isoformat(), "provider_id": str(appointment.provider_id)}
    appointment.starts_at = data.starts_at
    appointment.ends_at = data.starts_at + timedelta(minutes=service.duration_minutes)
    _assign(appointment, choice)
    appointment.updated_at = now
    session.flush()
    _reserve_or_rechoose(session, actor, appointment, service, choice, data, now)
    reason = f"rescheduled from {previous['starts_at']}"
    return _record(
        session, actor, appointment, current, current, reason, now, topic="appointment.rescheduled"
    )
