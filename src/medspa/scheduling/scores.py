"""Model scores stored on appointments. They are derived data, written after the booking committed (by
the worker, the demo seed or a refresh), never by the booking path: no lifecycle change, no transition
row, no outbox event, and `updated_at` is left alone."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from medspa.scheduling.models import Appointment
from medspa.security.actors import Actor, Permission, require


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
    require(actor, Permission.BOOK)
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
