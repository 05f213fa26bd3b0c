"""Break-glass: emergency access to a location outside a user's own, for at most four hours.

A user limited to some locations (`user_locations`) may open access to another location of their
organization when care needs it, with a written reason. Until it expires or is closed, their actor
sees that location as one of theirs (`locations_open_to`, read when a request authenticates). Opening
is written to the audit trail with the reason as its justification, and every grant shows on the
managers' alert list (`list_open`, the approvals page) until a day after it ended.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from medspa.kit import audit_trail, clock
from medspa.kit.crud import get_owned
from medspa.kit.errors import ConflictError, NotFoundError, PermissionDeniedError
from medspa.kit.outbox import record_event
from medspa.security.actors import Actor, require
from medspa.security.models import EmergencyAccess
from medspa.security.schemas import EmergencyAccessOpen, EmergencyAccessRead

MAX_MINUTES: Final = 240
ALERT_AFTER_END: Final = timedelta(days=1)


def locations_open_to(session: Session, user_id: uuid.UUID, now: datetime) -> frozenset[uuid.UUID]:
    """The locations the user holds emergency access to at `now`."""
    return frozenset(
        session.scalars(
            select(EmergencyAccess.location_id).where(
                EmergencyAccess.user_id == user_id,
                EmergencyAccess.expires_at > now,
                EmergencyAccess.closed_at.is_(None),
            )
        )
    )


def open_access(
    session: Session, *, actor: Actor, data: EmergencyAccessOpen, location_exists: bool
) -> EmergencyAccessRead:
    """Open emergency access for the signed-in user. Refused for a token or the system (a person must
    answer for it), for a user who sees every location already, and for a location they hold already.
    `location_exists`: whether the location is one of the organization's (the caller asks its domain)."""
    require(actor, "emergency_access", "open")
    if actor.kind != "user" or actor.actor_id is None:
        raise PermissionDeniedError(
            "emergency access is opened by a signed-in person",
            organization_id=actor.organization_id,
            actor=actor.label,
            permission="emergency_access.open",
        )
    if not location_exists:
        raise NotFoundError("location", data.location_id)
    if actor.location_ids is None:
        raise ConflictError("you see every location already: there is nothing to open")
    if data.location_id in actor.location_ids:
        raise ConflictError("you have access to this location already")
    now = clock.now()
    grant = EmergencyAccess(
        organization_id=actor.organization_id,
        user_id=actor.actor_id,
        user_label=actor.label,
        location_id=data.location_id,
        reason=data.reason,
        opened_at=now,
        expires_at=now + timedelta(minutes=min(data.minutes, MAX_MINUTES)),
    )
    session.add(grant)
    session.flush()
    audit_trail.note(
        session,
        audit_trail.Entry(
            organization_id=actor.organization_id,
            actor=actor.label,
            action="emergency_access",
            resource_type="location",
            resource_ids=(str(data.location_id),),
            detail=f"until {grant.expires_at.isoformat(timespec='minutes')}",
            occurred_at=now,
            request_id=None,
            justification=data.reason[:500],
        ),
    )
    record_event(
        session,
        actor,
        "emergency_access.opened",
        grant.id,
        {"id": str(grant.id), "location_id": str(data.location_id)},
    )
    return EmergencyAccessRead.model_validate(grant)


def close_access(session: Session, *, actor: Actor, access_id: uuid.UUID) -> EmergencyAccessRead:
    """End a grant early: by its holder, or by a manager or owner."""
    grant = get_owned(
        session, EmergencyAccess, actor.organization_id, access_id, "emergency access", lock=True
    )
    if grant.user_id != actor.actor_id:
        require(actor, "emergency_access", "close")
    now = clock.now()
    if grant.closed_at is None and grant.expires_at > now:
        grant.closed_at, grant.closed_by = now, actor.label
        session.flush()
        record_event(session, actor, "emergency_access.closed", grant.id, {"id": str(grant.id)})
    return EmergencyAccessRead.model_validate(grant)


def list_open(session: Session, *, actor: Actor) -> list[EmergencyAccessRead]:
    """The managers' alert list: grants open now, and those ended in the last day, newest first."""
    require(actor, "emergency_access", "read")
    since = clock.now() - ALERT_AFTER_END
    rows = session.scalars(
        select(EmergencyAccess)
        .where(EmergencyAccess.organization_id == actor.organization_id, EmergencyAccess.expires_at > since)
        .order_by(EmergencyAccess.opened_at.desc())
        .limit(500)
    )
    return [EmergencyAccessRead.model_validate(r) for r in rows]
