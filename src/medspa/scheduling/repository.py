"""Queries for appointments and reservations."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    cast,
    func,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from medspa.scheduling.models import Appointment, AppointmentTransition, Reservation


def busy_reservations(
    session: Session,
    location_id: uuid.UUID,
    start: datetime,
    end: datetime,
    now: datetime,
    resource_ids: Sequence[uuid.UUID] | None = None,
) -> list[tuple[uuid.UUID, datetime, datetime]]:
    """(resource, start, end) of every reservation at the location that blocks time in `[start, end)`:
    active, and not belonging to a hold that has expired by `now`; only of `resource_ids` when given.

    This is the hot query of availability (thousands of rows for a busy fortnight), so instants come back
    as epoch seconds computed by the database and ids as text, both far cheaper to decode."""
    query = (
        select(
            type_coerce(Reservation.resource_id, String),
            _epoch(session, Reservation.starts_at),
            _epoch(session, Reservation.ends_at),
        )
        .join(Appointment, Appointment.id == Reservation.appointment_id)
        .where(
            Reservation.location_id == location_id,
            Reservation.is_active.is_(True),
            Reservation.starts_at < end,
            Reservation.ends_at > start,
            or_(Appointment.status != "held", Appointment.hold_expires_at > now),
        )
    )
    if resource_ids is not None:
        query = query.where(Reservation.resource_id.in_(resource_ids))
    ids: dict[object, uuid.UUID] = {}
    rows = []
    for raw_id, raw_start, raw_end in session.execute(query):
        resource_id = ids.get(raw_id)
        if resource_id is None:
            resource_id = ids[raw_id] = uuid.UUID(str(raw_id))
        rows.append(
            (resource_id, datetime.fromtimestamp(raw_start, UTC), datetime.fromtimestamp(raw_end, UTC))
        )
    return rows


def _epoch(session: Session, column: InstrumentedAttribute[datetime]) -> ColumnElement[int]:
    """Whole seconds since 1970 computed by the database (reservations start and end on whole minutes)."""
    if session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.extract("epoch", column), BigInteger)


def expire_holds(session: Session, location_id: uuid.UUID, now: datetime) -> list[uuid.UUID]:
    """Atomically turn the location's expired holds into cancellations; the ids of those changed.

    A single conditional UPDATE, so two transactions releasing the same hold cannot both record it."""
    result = session.execute(
        update(Appointment)
        .where(
            Appointment.location_id == location_id,
            Appointment.status == "held",
            Appointment.hold_expires_at <= now,
        )
        .values(
            status="cancelled",
            cancellation_reason="hold expired",
            cancelled_by="system:holds",
            updated_at=now,
        )
        .returning(Appointment.id)
        .execution_options(synchronize_session=False)
    )
    return [row[0] for row in result]


def deactivate_reservations(session: Session, appointment_ids: Sequence[uuid.UUID]) -> None:
    if appointment_ids:
        session.execute(
            update(Reservation)
            .where(Reservation.appointment_id.in_(appointment_ids), Reservation.is_active.is_(True))
            .values(is_active=False)
            .execution_options(synchronize_session=False)
        )


def transitions(session: Session, appointment_id: uuid.UUID) -> list[AppointmentTransition]:
    query = select(AppointmentTransition).where(AppointmentTransition.appointment_id == appointment_id)
    return list(session.scalars(query.order_by(AppointmentTransition.id)))
