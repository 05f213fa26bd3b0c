"""Holds and bookings: the writes that take resources, and the release of expired holds.

No provider, room or device is ever double-booked. A booking re-checks every resource inside its own
transaction; on SQLite that transaction is serialized (BEGIN IMMEDIATE), and on PostgreSQL an exclusion
constraint over (resource, time range) refuses the loser of a race, which is reported as ResourceBusyError
naming the resource. Functions flush, never commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from medspa.catalog.schemas import ServiceRead
from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.crud import prefetch
from medspa.kit.errors import (
    ConflictError,
    ResourceBusyError,
)
from medspa.kit.ids import new_id
from medspa.kit.outbox import record_event
from medspa.scheduling import lanes, repository
from medspa.scheduling.choice import Choice, choose
from medspa.scheduling.errors import ClientBusyError
from medspa.scheduling.models import Appointment
from medspa.scheduling.schemas import (
    AppointmentRead,
    BookingRequest,
    HoldRequest,
    RescheduleRequest,
    Status,
)
from medspa.scheduling.slots import active_service
from medspa.scheduling.wording import appointment_label
from medspa.security.actors import Actor, require

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

# --- writing bookings ----------------------------------------------------------------------------------


def hold_slot(session: Session, *, actor: Actor, data: HoldRequest, hold_minutes: int) -> AppointmentRead:
    """Reserve a slot for `hold_minutes` (or the request's own) while the client decides. An expired hold
    stops blocking at once; it is recorded as cancelled ("hold expired") by the next booking that needs
    its time, or by the background sweep (`release_expired_holds`), whichever comes first."""
    require(actor, "appointments", "hold")
    minutes = data.hold_minutes or hold_minutes
    return _create(session, actor, data, Status.HELD, clock.now() + timedelta(minutes=minutes))


def book_appointment(
    session: Session, *, actor: Actor, data: BookingRequest, imported: bool = False
) -> AppointmentRead:
    """Book directly. Emits `appointment.booked`. See the module docstring for the conflict rules.
    `imported`: a booking a connected system made (`integrations.apply`), under its own rules of notice
    and horizon, which are not checked again here (its start may have passed); every other rule is."""
    require(actor, "appointments", "book")
    return _create(session, actor, data, Status.BOOKED, None, imported=imported)


def overbook_appointment(
    session: Session, *, actor: Actor, data: BookingRequest, appointment_id: uuid.UUID, explanation: str
) -> AppointmentRead:
    """Book beside the provider's own bookings, on their overbooking lane (`lanes`), with `explanation`
    kept on the appointment. Only `engagement.overbooking` calls this, after its policy allowed it; the
    request names the provider. Emits `appointment.booked`."""
    require(actor, "appointments", "book")
    return _create(
        session, actor, data, Status.BOOKED, None, overbooking=explanation, appointment_id=appointment_id
    )


def _create(
    session: Session,
    actor: Actor,
    data: BookingRequest,
    status: Status,
    hold_expires_at: datetime | None,
    overbooking: str | None = None,
    appointment_id: uuid.UUID | None = None,
    imported: bool = False,
) -> AppointmentRead:
    now = clock.now()
    actor.require_location(data.location_id)
    # One round trip for the three records every booking reads (the lookups below then find them).
    loaded = prefetch(
        session,
        actor.organization_id,
        ("client", data.client_id),
        ("service", data.service_id),
        ("location", data.location_id),
    )
    if not clients.is_active(session, actor=actor, client_id=data.client_id):
        name = clients.client_names(session, actor=actor, client_ids={data.client_id})[data.client_id]
        raise ConflictError(f"client {name} is deactivated")
    service = active_service(session, actor, data.service_id)
    choice = choose(
        session,
        actor,
        data,
        data.location_id,
        service,
        now,
        exclude=None,
        overbooking=overbooking is not None,
        imported=imported,
    )
    appointment = Appointment(
        id=appointment_id or new_id(),
        organization_id=actor.organization_id,
        location_id=data.location_id,
        client_id=data.client_id,
        service_id=service.id,
        status=status.value,
        starts_at=data.starts_at,
        ends_at=data.starts_at + timedelta(minutes=service.duration_minutes),
        hold_expires_at=hold_expires_at,
        price_cents=service.price_cents,
        created_by=actor.label,
        created_at=now,
        updated_at=now,
        overbooking=overbooking,
    )
    del loaded
    assign(appointment, choice)
    session.add(appointment)
    session.flush()
    reserve_or_rechoose(session, actor, appointment, service, choice, data, now, imported=imported)
    return record_step(session, actor, appointment, None, status, None, now)


def assign(appointment: Appointment, choice: Choice) -> None:
    appointment.provider_id = choice.provider.id
    appointment.room_id = choice.room.id
    appointment.device_id = choice.device.id if choice.device else None


RESERVE_ATTEMPTS = 3


def reserve_or_rechoose(
    session: Session,
    actor: Actor,
    appointment: Appointment,
    service: ServiceRead,
    choice: Choice,
    request: BookingRequest | RescheduleRequest,
    now: datetime,
    *,
    imported: bool = False,
) -> None:
    """Reserve the chosen resources; if a concurrent booking took one of them first (PostgreSQL's
    exclusion constraint says so), choose again with that booking now visible and retry, so a loser
    that could use another room or provider still books. Resources the request named stay fixed, so
    for them the next choice raises ResourceBusyError at once. (On SQLite writers are serialized and
    the re-check in `choose` already saw every committed booking, so the first attempt holds.)"""
    for attempt in range(RESERVE_ATTEMPTS):
        try:
            _reserve(session, actor, appointment, service, choice)
            return
        except ResourceBusyError:
            if attempt == RESERVE_ATTEMPTS - 1:
                raise
        choice = choose(
            session,
            actor,
            request,
            appointment.location_id,
            service,
            now,
            exclude=appointment.id,
            overbooking=appointment.overbooking is not None,
            imported=imported,
        )
        assign(appointment, choice)
        session.flush()


def _reserve(
    session: Session, actor: Actor, appointment: Appointment, service: ServiceRead, choice: Choice
) -> None:
    """Insert the appointment's reservations in resource-id order (so concurrent bookings lock in one
    order and cannot deadlock): its provider, room (with setup and cleanup), device (with cooldown) and
    its client, who cannot be in two places at once; an overbooked appointment holds its provider's
    overbooking lane instead of the provider (`lanes`). A reservation that would overlap an active one of
    its resource is refused (on PostgreSQL by the exclusion constraint); then the others are taken back
    and ClientBusyError names the client's other appointment, or ResourceBusyError the resource."""
    start = appointment.starts_at
    if appointment.overbooking is None:
        provider_time = ("provider", choice.provider.id, start, appointment.ends_at)
    else:
        provider_time = (lanes.KIND, lanes.lane_of(choice.provider.id), start, appointment.ends_at)
    wanted = [
        ("client", appointment.client_id, start, appointment.ends_at),
        provider_time,
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
    refused = [(kind, resource_id) for kind, resource_id, _, _ in ordered if resource_id not in taken]
    if any(kind == "client" for kind, _ in refused):
        raise _client_busy(session, actor, appointment)
    kind, resource_id = refused[0]
    if kind == lanes.KIND:
        raise ResourceBusyError(
            "provider",
            choice.provider.id,
            f"provider {choice.provider.name} already has an overbooked visit at that time",
        )
    names = {"provider": choice.provider.name, "room": choice.room.name}
    if choice.device is not None:
        names["device"] = choice.device.name
    raise ResourceBusyError(kind, resource_id, f"{kind} {names[kind]} is already booked at that time")


def _client_busy(session: Session, actor: Actor, appointment: Appointment) -> ClientBusyError:
    name = clients.client_names(session, actor=actor, client_ids={appointment.client_id})[
        appointment.client_id
    ]
    other = repository.overlapping_appointment(
        session, appointment.client_id, appointment.starts_at, appointment.ends_at, other_than=appointment.id
    )
    if other is None:  # cancelled since it refused this one
        return ClientBusyError(f"{name} already has an appointment at that time")
    label = appointment_label(session, actor, other, whose=False)
    return ClientBusyError(f"{name} already has an appointment at that time: {label}")


def record_step(
    session: Session,
    actor: Actor,
    appointment: Appointment,
    from_status: Status | None,
    to_status: Status,
    reason: str | None,
    now: datetime,
    topic: str | None = None,
    extra: dict[str, str] | None = None,
) -> AppointmentRead:
    """Record the step and its outbox event (the appointment as it now reads, and `extra`); the
    appointment as it now reads. (The appointment has been flushed: the history row refers to it.)"""
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
    payload = read.model_dump(mode="json") | (extra or {})
    record_event(session, actor, topic or f"appointment.{EVENT_VERB[to_status]}", appointment.id, payload)
    return read
