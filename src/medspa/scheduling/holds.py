"""Expired holds: an expired hold blocks nothing (availability ignores it), and is recorded as cancelled
("hold expired") by the first booking that needs its time or by the background sweep, whichever comes
first. Each release is one conditional UPDATE, so two transactions cannot both record it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from medspa.kit import clock
from medspa.kit.outbox import record_event
from medspa.scheduling import repository
from medspa.scheduling.schemas import Status
from medspa.security.actors import Actor, system_actor


def release_expired_holds(session: Session) -> int:
    """Record every expired hold, in every organization, as cancelled ("hold expired") and free its
    reservations; how many. A background job runs this: an expired hold blocks nothing already, and a
    booking that needs its time releases it itself, but until then it would still read as held."""
    now = clock.now()
    released = 0
    for organization_id, location_id in repository.locations_with_expired_holds(session, now):
        released += release_expired_holds_at(
            session, system_actor(organization_id, "holds"), location_id, now
        )
    return released


def release_expired_holds_at(session: Session, actor: Actor, location_id: uuid.UUID, now: datetime) -> int:
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
