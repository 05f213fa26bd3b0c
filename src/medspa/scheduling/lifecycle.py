"""The appointment lifecycle: reading appointments, their steps, and rescheduling.

held -> booked -> confirmed -> checked_in -> in_service -> completed, or cancelled / no_show. Every step
is recorded (from, to, when, by whom) with an outbox event in the same transaction; an illegal one raises
IllegalTransitionError (409).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.kit import clock
from medspa.kit.crud import get_owned, list_owned
from medspa.kit.errors import IllegalTransitionError, NotFoundError
from medspa.kit.schemas import Page
from medspa.scheduling import lanes, repository
from medspa.scheduling.booking import assign, record_step, reserve_or_rechoose
from medspa.scheduling.choice import choose
from medspa.scheduling.models import Appointment, AppointmentTransition, WaitlistEntry
from medspa.scheduling.schemas import (
    AppointmentRead,
    RescheduleRequest,
    Status,
    TransitionRead,
)
from medspa.scheduling.wording import STATUS_WORDS, STEP_WORDS, appointment_label
from medspa.security.actors import Actor, require

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
# What a manager may correct a finished visit's outcome to, after the fact.
CORRECTIONS: dict[Status, frozenset[Status]] = {
    Status.COMPLETED: frozenset({Status.NO_SHOW}),
    Status.NO_SHOW: frozenset({Status.COMPLETED}),
}


def _appointment(session: Session, actor: Actor, appointment_id: uuid.UUID) -> Appointment:
    """The appointment, if it is the organization's at a location the actor works at; NotFoundError
    otherwise."""
    appointment = get_owned(session, Appointment, actor.organization_id, appointment_id, "appointment")
    actor.require_location(appointment.location_id, "appointment", appointment_id)
    return appointment


def get_appointment(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    require(actor, "appointments", "read")
    return AppointmentRead.model_validate(_appointment(session, actor, appointment_id))


def reassign_client(
    session: Session, *, actor: Actor, from_client_id: uuid.UUID, to_client_id: uuid.UUID
) -> dict[str, int]:
    """Give the appointments and waitlist entries of one client record to another (a merge of two records
    of one client, `clients.merge`), each appointment with a line in its history; how many moved. The
    caller holds both client rows locked and checks that the merge may happen."""
    require(actor, "clients", "merge")
    organization = actor.organization_id
    appointments = session.execute(
        select(Appointment.id, Appointment.status)
        .where(Appointment.organization_id == organization, Appointment.client_id == from_client_id)
        .order_by(Appointment.starts_at, Appointment.id)
    ).all()
    if appointments:
        now, reason = clock.now(), f"client record {from_client_id} merged into {to_client_id}"
        steps = [
            {
                "organization_id": organization,
                "appointment_id": appointment_id,
                "from_status": status,
                "to_status": status,
                "actor": actor.label[:200],
                "reason": reason,
                "occurred_at": now,
            }
            for appointment_id, status in appointments
        ]
        session.execute(insert(AppointmentTransition), steps)
    moved = {"appointments": len(appointments)}
    for name, model in (("appointments", Appointment), ("waitlist_entries", WaitlistEntry)):
        result = session.execute(
            update(model)
            .where(model.organization_id == organization, model.client_id == from_client_id)
            .values(client_id=to_client_id)
            .execution_options(synchronize_session=False)
        )
        moved[name] = int(getattr(result, "rowcount", 0) or 0)
    return moved


def appointment_history(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> list[TransitionRead]:
    require(actor, "appointments", "read")
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
    require(actor, "appointments", "read")
    filters = []
    if location_id is not None:
        filters.append(Appointment.location_id == location_id)
    if actor.location_ids is not None:
        filters.append(Appointment.location_id.in_(actor.location_ids))
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


def spending_by_client(
    session: Session, *, actor: Actor, client_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """What each client's completed visits came to, in cents (clients without one are absent)."""
    require(actor, "appointments", "read")
    if not client_ids:
        return {}
    rows = session.execute(
        select(Appointment.client_id, func.sum(Appointment.price_cents))
        .where(
            Appointment.organization_id == actor.organization_id,
            Appointment.client_id.in_(set(client_ids)),
            Appointment.status == Status.COMPLETED.value,
        )
        .group_by(Appointment.client_id)
    )
    return {client_id: int(total or 0) for client_id, total in rows}


def _locked(session: Session, actor: Actor, appointment_id: uuid.UUID) -> Appointment:
    """The appointment, locked until this transaction ends: every change of an appointment starts here,
    so two changes of one appointment never interleave; the second sees what the first left.

    NotFoundError for another organization's or another location's (of a user limited to some);
    PermissionDeniedError (403) when the actor may change only their own appointments and this one is
    another provider's."""
    appointment = repository.lock_appointment(session, actor.organization_id, appointment_id)
    if appointment is None:
        raise NotFoundError("appointment", appointment_id)
    actor.require_location(appointment.location_id, "appointment", appointment_id)
    actor.require_own_appointment(appointment.provider_id)
    return appointment


def _refuse_expired_hold(session: Session, actor: Actor, appointment: Appointment, now: datetime) -> None:
    if (
        appointment.status == Status.HELD.value
        and appointment.hold_expires_at is not None
        and appointment.hold_expires_at <= now
    ):
        label = appointment_label(session, actor, appointment)
        raise IllegalTransitionError(
            f"the hold on {label} has expired; book it again", current_status=Status.HELD.value
        )


def _transition(
    session: Session,
    actor: Actor,
    appointment_id: uuid.UUID,
    to_status: Status,
    reason: str | None = None,
) -> AppointmentRead:
    """One step of the lifecycle, on the locked appointment: refused (409, with the status it has now)
    when that status does not allow it, which is also how the loser of two concurrent steps learns of
    the winner's."""
    appointment = _locked(session, actor, appointment_id)
    current = Status(appointment.status)
    now = clock.now()
    _refuse_expired_hold(session, actor, appointment, now)
    if to_status not in TRANSITIONS[current]:
        label = appointment_label(session, actor, appointment)
        raise IllegalTransitionError(
            f"{label} is {STATUS_WORDS[current]}; it cannot be {STEP_WORDS[to_status]}",
            current_status=current.value,
        )
    if to_status is Status.NO_SHOW and now < appointment.starts_at:
        raise IllegalTransitionError(
            "a no-show can be recorded only once the appointment has started", current_status=current.value
        )
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
        if appointment.overbooking is None:  # an overbooked visit it hosted may take its time over
            lanes.settle(session, actor, appointment.provider_id, appointment.starts_at, appointment.ends_at)
    session.flush()
    return record_step(session, actor, appointment, current, to_status, reason, now)


DEPOSIT_TASK = "deposit requested"
DEPOSIT_OPEN = (Status.BOOKED, Status.CONFIRMED)


def request_deposit(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    """A task for the front desk: take a deposit for this booking before the visit (by phone or at the
    desk; medspa takes no payments), recorded as a line in its history (`DEPOSIT_TASK`) and the event
    `appointment.deposit_requested`. Once per start: asked again, nothing more is written. 409 for a
    visit that is not booked or confirmed, or has started."""
    require(actor, "appointments", "request_deposit")
    appointment = _locked(session, actor, appointment_id)
    current = Status(appointment.status)
    now = clock.now()
    if current not in DEPOSIT_OPEN or appointment.starts_at <= now:
        label = appointment_label(session, actor, appointment)
        raise IllegalTransitionError(
            f"{label} is {STATUS_WORDS[current]}: a deposit is asked for a visit still to come",
            current_status=current.value,
        )
    if deposit_requested_at(session, appointment) is not None:
        return AppointmentRead.model_validate(appointment)
    reason = f"{DEPOSIT_TASK} for {appointment.starts_at.isoformat()}"
    return record_step(
        session, actor, appointment, current, current, reason, now, topic="appointment.deposit_requested"
    )


def deposit_requested_at(session: Session, appointment: Appointment) -> datetime | None:
    """When a deposit was asked for the appointment at its current start, if it was."""
    reason = f"{DEPOSIT_TASK} for {appointment.starts_at.isoformat()}"
    return session.scalar(
        select(func.max(AppointmentTransition.occurred_at)).where(
            AppointmentTransition.appointment_id == appointment.id, AppointmentTransition.reason == reason
        )
    )


def deposits_requested(
    session: Session, *, actor: Actor, appointment_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """When a deposit was asked for each of the appointments (at its current start), for those asked."""
    require(actor, "appointments", "read")
    found: dict[uuid.UUID, datetime] = {}
    for appointment_id in sorted(set(appointment_ids), key=str):
        asked = deposit_requested_at(session, _appointment(session, actor, appointment_id))
        if asked is not None:
            found[appointment_id] = asked
    return found


def confirm_hold(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    """held -> booked, while the hold is unexpired. Emits `appointment.booked`."""
    require(actor, "appointments", "book")
    return _transition(session, actor, appointment_id, Status.BOOKED)


def confirm_appointment(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    """booked -> confirmed (the client said they will come)."""
    require(actor, "appointments", "confirm")
    return _transition(session, actor, appointment_id, Status.CONFIRMED)


def check_in(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    require(actor, "appointments", "check_in")
    return _transition(session, actor, appointment_id, Status.CHECKED_IN)


def start_service(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    require(actor, "appointments", "start")
    return _transition(session, actor, appointment_id, Status.IN_SERVICE)


def complete_appointment(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    require(actor, "appointments", "complete")
    return _transition(session, actor, appointment_id, Status.COMPLETED)


def cancel_appointment(
    session: Session, *, actor: Actor, appointment_id: uuid.UUID, reason: str
) -> AppointmentRead:
    """Cancel with a reason; the provider, room and device are free again at once."""
    require(actor, "appointments", "cancel")
    return _transition(session, actor, appointment_id, Status.CANCELLED, reason)


def mark_no_show(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> AppointmentRead:
    """The client did not come (only once the start has passed); the rest of the time is freed."""
    require(actor, "appointments", "no_show")
    return _transition(session, actor, appointment_id, Status.NO_SHOW)


def correct_status(
    session: Session, *, actor: Actor, appointment_id: uuid.UUID, to_status: Status, reason: str
) -> AppointmentRead:
    """A manager corrects the recorded outcome of a visit that has happened: completed <-> no-show,
    with the reason, in the appointment's history. Emits `appointment.corrected` (not the step's own
    event: nothing automated acts again on a visit long past). Its reservations stay as they are: the
    time has passed."""
    require(actor, "appointments", "correct")
    appointment = _locked(session, actor, appointment_id)
    current = Status(appointment.status)
    if to_status not in CORRECTIONS.get(current, frozenset()):
        label = appointment_label(session, actor, appointment)
        raise IllegalTransitionError(
            f"{label} is {STATUS_WORDS[current]}; only a completed visit or a no-show can be corrected, "
            "to the other",
            current_status=current.value,
        )
    now = clock.now()
    appointment.status = to_status.value
    appointment.updated_at = now
    session.flush()
    return record_step(
        session,
        actor,
        appointment,
        current,
        to_status,
        f"corrected: {reason}",
        now,
        topic="appointment.corrected",
    )


def reschedule_appointment(
    session: Session,
    *,
    actor: Actor,
    appointment_id: uuid.UUID,
    data: RescheduleRequest,
    imported: bool = False,
) -> AppointmentRead:
    """Move a held, booked or confirmed appointment to a new start (and resources), atomically: on the
    locked appointment, its reservations are released and the new ones taken in one transaction, or
    nothing changes. Concurrent reschedules of one appointment therefore happen one after the other,
    each releasing what the one before took. A provider (who changes only their own appointments) may
    not give one to another provider (403). `imported`: a move a connected system made, as
    `book_appointment`'s (the location's notice and horizon are not checked; the start may have
    passed)."""
    require(actor, "appointments", "reschedule")
    appointment = _locked(session, actor, appointment_id)
    if actor.changes_own_appointments_only:  # a provider moves their own in time, not to a colleague
        provider_id = data.provider_id or appointment.provider_id
        actor.require_own_appointment(provider_id)
        data = data.model_copy(update={"provider_id": provider_id})
    current = Status(appointment.status)
    now = clock.now()
    _refuse_expired_hold(session, actor, appointment, now)
    if current not in RESCHEDULABLE:
        label = appointment_label(session, actor, appointment)
        raise IllegalTransitionError(
            f"{label} is {STATUS_WORDS[current]}; it cannot be rescheduled", current_status=current.value
        )
    service = catalog.get_service(session, actor=actor, service_id=appointment.service_id)
    choice = choose(
        session, actor, data, appointment.location_id, service, now, exclude=appointment.id, imported=imported
    )
    repository.deactivate_reservations(session, [appointment.id])
    previous = appointment.starts_at.isoformat()
    # Where it was: the time it frees (offered to the waitlist by engagement).
    hosted = (
        None
        if appointment.overbooking
        else (appointment.provider_id, appointment.starts_at, appointment.ends_at)
    )
    was = {
        "previous_starts_at": previous,
        "previous_ends_at": appointment.ends_at.isoformat(),
        "previous_provider_id": str(appointment.provider_id),
    }
    appointment.starts_at = data.starts_at
    appointment.ends_at = data.starts_at + timedelta(minutes=service.duration_minutes)
    assign(appointment, choice)
    appointment.updated_at = now
    appointment.overbooking = None  # moved, it holds its provider's time like any booking
    session.flush()
    reserve_or_rechoose(session, actor, appointment, service, choice, data, now, imported=imported)
    if hosted is not None:
        lanes.settle(session, actor, *hosted)
    return record_step(
        session,
        actor,
        appointment,
        current,
        current,
        f"rescheduled from {previous}",
        now,
        topic="appointment.rescheduled",
        extra=was,
    )
