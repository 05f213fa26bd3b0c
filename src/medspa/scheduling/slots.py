"""Bookable starts (`find_slots`) and what every decision about one reads first: a location's
resources over a window and the reservations that block them (`load_context`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceRead
from medspa.kit import clock, intervals
from medspa.kit.errors import (
    ConflictError,
    ValidationFailedError,
)
from medspa.kit.tz import local_day_bounds
from medspa.resources import service as resources
from medspa.resources.schemas import LocationRead, ProviderRead
from medspa.resources.service import LocationResources
from medspa.scheduling import availability, lanes, repository
from medspa.scheduling.holds import release_expired_holds_at
from medspa.scheduling.models import Reservation
from medspa.scheduling.schemas import (
    SlotRead,
)
from medspa.security.actors import Actor, require

MAX_RANGE_DAYS = 62

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
    require(actor, "availability", "read")
    if last_date < first_date:
        raise ValidationFailedError("to", "must not be before from")
    if (last_date - first_date).days >= MAX_RANGE_DAYS:
        raise ValidationFailedError("to", f"a range covers at most {MAX_RANGE_DAYS} days")
    service = active_service(session, actor, service_id)
    config = resources.location_config(session, actor=actor, location_id=location_id)
    location = config.location
    require_open_for_business(location)
    start, _ = local_day_bounds(first_date, location.time_zone)
    _, end = local_day_bounds(last_date, location.time_zone)
    now = clock.now()
    context = load_context(session, service, config, start, end, now)
    providers = providers_for(session, actor, context.resources, provider_id)
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
class Context:
    resources: LocationResources
    busy: dict[uuid.UUID, list[intervals.Interval]]


def _relevant_resources(loaded: LocationResources, service: ServiceRead) -> list[uuid.UUID]:
    """The providers, rooms and devices that could take part in the service: only their bookings matter."""
    ids = [p.id for p in loaded.providers if service.required_skill in p.skills]
    ids += [r.id for r in loaded.rooms if r.room_type in service.room_types]
    ids += [d.id for d in loaded.devices if d.device_type == service.device_type]
    return ids


def load_context(
    session: Session,
    service: ServiceRead,
    config: resources.LocationConfig,
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    booking: tuple[Actor, uuid.UUID | None, tuple[datetime, datetime]] | None = None,
    overbooking: uuid.UUID | None = None,
) -> Context:
    """The location's resources over `[start, end)` and the reservations that block them (a provider's
    overbooking lane blocks the provider, see `lanes`; for an overbooking of provider `overbooking`
    only that provider's lane does).

    For a booking, `(actor, appointment being moved or None, window)`: only reservations within the
    window around its own start are read, the moved appointment's own do not count, and expired holds
    found there are released (recorded as cancelled) so their reservations make way."""
    # Reservations reach at most a day past the service (setup, cleanup, cooldown): widen the window.
    margin = timedelta(days=1)
    loaded = resources.resources_within(config, start - margin, end + margin)
    busy_start, busy_end = booking[2] if booking else (start - margin, end + margin)
    location_id = config.location.id
    relevant = _relevant_resources(loaded, service)
    provider_lanes = lanes.lanes_of(p.id for p in loaded.providers)
    rows, expired_in_the_way = repository.busy_reservations(
        session,
        location_id,
        busy_start,
        busy_end,
        now,
        relevant + list(provider_lanes),
        report_expired=booking is not None,
    )
    if booking is not None:
        actor, moving, _ = booking
        if expired_in_the_way:
            release_expired_holds_at(session, actor, location_id, now)
        if moving is not None:
            own = {r.resource_id: (r.starts_at, r.ends_at) for r in reservations_of(session, moving)}
            rows = [row for row in rows if own.get(row[0]) != (row[1], row[2])]
    rows = lanes.as_provider_time(rows, provider_lanes, overbooking)
    return Context(loaded, availability.busy_by_resource(rows))


def reservations_of(session: Session, appointment_id: uuid.UUID) -> list[Reservation]:
    query = select(Reservation).where(
        Reservation.appointment_id == appointment_id, Reservation.is_active.is_(True)
    )
    return list(session.scalars(query))


def providers_for(
    session: Session, actor: Actor, loaded: LocationResources, provider_id: uuid.UUID | None
) -> list[ProviderRead]:
    if provider_id is None:
        return loaded.providers
    match = [p for p in loaded.providers if p.id == provider_id]
    if match:
        return match
    provider = resources.get_provider(session, actor=actor, provider_id=provider_id)  # 404 if unknown
    raise ConflictError(f"provider {provider.name} is not active at this location")


def require_open_for_business(location: LocationRead) -> None:
    if not location.is_active:
        raise ConflictError(f"location {location.name} is deactivated")


def active_service(session: Session, actor: Actor, service_id: uuid.UUID) -> ServiceRead:
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
