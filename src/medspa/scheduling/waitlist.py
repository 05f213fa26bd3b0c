"""The waitlist: clients who want a service on a day within a window of time, not yet booked."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.outbox import record_event
from medspa.resources import service as resources
from medspa.scheduling import bounds
from medspa.scheduling.models import WaitlistEntry
from medspa.scheduling.schemas import (
    WaitlistCreate,
    WaitlistRead,
)
from medspa.security.actors import Actor, require

# --- waitlist ------------------------------------------------------------------------------------------


def add_to_waitlist(session: Session, *, actor: Actor, data: WaitlistCreate) -> WaitlistRead:
    """Put a client on the waitlist for a service on a local date within a window. Emits
    `waitlist.added`. NotFoundError for unknown client, service, location or provider;
    ValidationFailedError for a date that has passed at the location or lies beyond its horizon."""
    require(actor, "waitlist", "add")
    clients.get_client(session, actor=actor, client_id=data.client_id)
    catalog.get_service(session, actor=actor, service_id=data.service_id)
    location = resources.get_location(session, actor=actor, location_id=data.location_id)
    bounds.require_bookable_date(location, data.service_date, clock.now())
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
    require(actor, "waitlist", "read")
    actor.require_location(location_id)
    entries = waiting_entries(session, actor, location_id, service_date, status)
    return [WaitlistRead.model_validate(e) for e in entries]


def waiting_entries(
    session: Session, actor: Actor, location_id: uuid.UUID, service_date: date, status: str
) -> list[WaitlistEntry]:
    query = select(WaitlistEntry).where(
        WaitlistEntry.organization_id == actor.organization_id,
        WaitlistEntry.location_id == location_id,
        WaitlistEntry.service_date == service_date,
        WaitlistEntry.status == status,
    )
    return list(session.scalars(query.order_by(WaitlistEntry.created_at, WaitlistEntry.id)))
