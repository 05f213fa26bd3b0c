"""The waitlist: clients who want a service on a day within a window of time, not yet booked."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.crud import get_owned
from medspa.kit.errors import ConflictError
from medspa.kit.outbox import record_event
from medspa.resources import service as resources
from medspa.scheduling import bounds
from medspa.scheduling.booking import book_appointment
from medspa.scheduling.models import WaitlistEntry
from medspa.scheduling.schemas import (
    AppointmentRead,
    BookingRequest,
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


def get_waitlist_entry(session: Session, *, actor: Actor, entry_id: uuid.UUID) -> WaitlistRead:
    """One entry (NotFoundError for another organization's or another location's)."""
    require(actor, "waitlist", "read")
    entry = get_owned(session, WaitlistEntry, actor.organization_id, entry_id, "waitlist entry")
    actor.require_location(entry.location_id, "waitlist entry", entry_id)
    return WaitlistRead.model_validate(entry)


def _waiting(session: Session, actor: Actor, entry_id: uuid.UUID) -> WaitlistEntry:
    """The entry, locked, if it is still waiting; NotFoundError, or ConflictError naming its status."""
    entry = get_owned(session, WaitlistEntry, actor.organization_id, entry_id, "waitlist entry", lock=True)
    actor.require_location(entry.location_id, "waitlist entry", entry_id)
    if entry.status != "waiting":
        raise ConflictError(f"this waitlist entry is {entry.status} already")
    return entry


def book_from_waitlist(
    session: Session,
    *,
    actor: Actor,
    entry_id: uuid.UUID,
    starts_at: datetime,
    provider_id: uuid.UUID | None = None,
) -> AppointmentRead:
    """Book a waiting client at `starts_at` through the booking path (its guards and conflicts: 409
    when the time was taken), and mark the entry booked. Emits `appointment.booked` and
    `waitlist.booked`. ConflictError when the entry is no longer waiting (booked or removed since)."""
    require(actor, "waitlist", "book")
    return book_entry(session, actor, _waiting(session, actor, entry_id), starts_at, provider_id)


def book_entry(
    session: Session,
    actor: Actor,
    entry: WaitlistEntry,
    starts_at: datetime,
    provider_id: uuid.UUID | None,
    room_id: uuid.UUID | None = None,
    device_id: uuid.UUID | None = None,
) -> AppointmentRead:
    """Book a waiting entry the caller has checked (and locked) through the booking path, and mark it
    booked: what booking from the list, an accepted offer and an applied proposal share."""
    appointment = book_appointment(
        session,
        actor=actor,
        data=BookingRequest(
            client_id=entry.client_id,
            service_id=entry.service_id,
            location_id=entry.location_id,
            starts_at=starts_at,
            provider_id=provider_id,
            room_id=room_id,
            device_id=device_id,
        ),
    )
    entry.status, entry.appointment_id = "booked", appointment.id
    session.flush()
    read = WaitlistRead.model_validate(entry)
    record_event(session, actor, "waitlist.booked", entry.id, read.model_dump(mode="json"))
    return appointment


def remove_from_waitlist(session: Session, *, actor: Actor, entry_id: uuid.UUID) -> WaitlistRead:
    """Take a waiting client off the waitlist (they booked elsewhere, or no longer want it). Emits
    `waitlist.removed`. ConflictError when the entry is no longer waiting."""
    require(actor, "waitlist", "remove")
    entry = _waiting(session, actor, entry_id)
    entry.status = "removed"
    session.flush()
    read = WaitlistRead.model_validate(entry)
    record_event(session, actor, "waitlist.removed", entry.id, read.model_dump(mode="json"))
    return read
