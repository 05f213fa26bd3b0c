"""Model scores stored on appointments. They are derived data, written after the booking committed (by
the worker, the demo seed or a refresh), never by the booking path: no lifecycle change, no transition
row, no outbox event, and `updated_at` is left alone."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from medspa.scheduling.models import Appointment
from medspa.scheduling.schemas import AppointmentRead
from medspa.security.actors import Actor, require

NOT_HAPPENED: Final = ("held", "booked", "confirmed")
NEIGHBOURHOOD_TARGETS: Final = 50


def store_no_show_scores(
    session: Session,
    *,
    actor: Actor,
    probabilities: Mapping[uuid.UUID, float],
    model_version: str,
    scored_at: datetime,
) -> int:
    """Write P(no-show) (0..1), the model version and the scoring instant on the actor's appointments;
    ids of another organization are ignored. Writing the same values again changes nothing else, so a
    redelivered event stores the same result. Returns the number of appointments updated."""
    require(actor, "appointments", "score")
    updated = 0
    for appointment_id, probability in sorted(probabilities.items()):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability {probability} for {appointment_id} is not in [0, 1]")
        result = session.execute(
            update(Appointment)
            .where(Appointment.id == appointment_id, Appointment.organization_id == actor.organization_id)
            .values(
                no_show_probability=probability,
                no_show_model_version=model_version,
                no_show_scored_at=scored_at,
            )
        )
        updated += int(getattr(result, "rowcount", 0) or 0)
    session.flush()
    return updated


def scoring_neighbourhood(
    session: Session,
    *,
    actor: Actor,
    appointment_ids: Collection[uuid.UUID],
    client_ids: Collection[uuid.UUID],
) -> list[AppointmentRead] | None:
    """What the no-show features of some appointments read, so that scoring them need not read the
    whole history: the targets (`appointment_ids`, and the appointments of `client_ids` not yet happened)
    with every appointment of their clients, every appointment starting from nine days before to two
    days after a target's start or booking (the clinic's no-show rate of the seven days before the
    scoring day, whatever the time zone), and every appointment booked in the same minute as a target
    (bookings made together). None when there are more than `NEIGHBOURHOOD_TARGETS` targets: reading
    everything is then cheaper. Ordered by start."""
    require(actor, "appointments", "read")
    owned = Appointment.organization_id == actor.organization_id
    targets = session.scalars(
        select(Appointment).where(
            owned,
            or_(
                Appointment.id.in_(list(appointment_ids)),
                and_(Appointment.client_id.in_(list(client_ids)), Appointment.status.in_(NOT_HAPPENED)),
            ),
        )
    ).all()
    if len(targets) > NEIGHBOURHOOD_TARGETS:
        return None
    if not targets:
        return []
    nearby: list[ColumnElement[bool]] = [Appointment.client_id.in_({t.client_id for t in targets})]
    for target in targets:
        for instant in {target.starts_at, target.created_at}:
            nearby.append(
                and_(
                    Appointment.starts_at >= instant - timedelta(days=9),
                    Appointment.starts_at < instant + timedelta(days=2),
                )
            )
        minute = target.created_at.replace(second=0, microsecond=0)
        nearby.append(
            and_(Appointment.created_at >= minute, Appointment.created_at < minute + timedelta(minutes=1))
        )
    rows = session.scalars(
        select(Appointment).where(owned, or_(*nearby)).order_by(Appointment.starts_at, Appointment.id)
    ).all()
    return [AppointmentRead.model_validate(a) for a in rows]
