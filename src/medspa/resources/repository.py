"""Queries for locations, providers, rooms and devices."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from medspa.resources.models import (
    Break,
    Closure,
    Device,
    DeviceMaintenance,
    Location,
    OpeningHours,
    Provider,
    ProviderLicense,
    Room,
    Shift,
    TimeOff,
)

CHANGED_LOCATIONS = "medspa.changed_locations"


def opening_hours(session: Session, location_ids: Sequence[uuid.UUID]) -> list[OpeningHours]:
    query = select(OpeningHours).where(OpeningHours.location_id.in_(location_ids))
    return list(session.scalars(query.order_by(OpeningHours.weekday, OpeningHours.opens_at)))


def replace_opening_hours(session: Session, location_id: uuid.UUID, rows: Sequence[OpeningHours]) -> None:
    session.execute(delete(OpeningHours).where(OpeningHours.location_id == location_id))
    session.add_all(rows)


def closures(session: Session, location_id: uuid.UUID, first: date, last: date) -> list[Closure]:
    query = select(Closure).where(
        Closure.location_id == location_id, Closure.closed_on >= first, Closure.closed_on <= last
    )
    return list(session.scalars(query.order_by(Closure.closed_on)))


def licenses(session: Session, provider_ids: Sequence[uuid.UUID]) -> list[ProviderLicense]:
    query = select(ProviderLicense).where(ProviderLicense.provider_id.in_(provider_ids))
    return list(session.scalars(query.order_by(ProviderLicense.kind)))


def shifts(session: Session, provider_ids: Sequence[uuid.UUID]) -> list[Shift]:
    query = select(Shift).where(Shift.provider_id.in_(provider_ids))
    return list(session.scalars(query.order_by(Shift.weekday, Shift.starts_at)))


def breaks(session: Session, provider_ids: Sequence[uuid.UUID]) -> list[Break]:
    query = select(Break).where(Break.provider_id.in_(provider_ids))
    return list(session.scalars(query.order_by(Break.weekday, Break.starts_at)))


def replace_provider_schedule(
    session: Session,
    provider_id: uuid.UUID,
    *,
    licenses: Sequence[ProviderLicense] | None,
    shifts: Sequence[Shift] | None,
    breaks: Sequence[Break] | None,
) -> None:
    """Replace whichever of the provider's licenses, shifts and breaks are given."""
    for model, rows in ((ProviderLicense, licenses), (Shift, shifts), (Break, breaks)):
        if rows is not None:
            session.execute(delete(model).where(model.provider_id == provider_id))
            session.add_all(rows)


def time_off(
    session: Session, provider_ids: Sequence[uuid.UUID], start: datetime, end: datetime
) -> list[tuple[uuid.UUID, datetime, datetime]]:
    """(provider, start, end) of the time off overlapping `[start, end)`."""
    query = select(TimeOff.provider_id, TimeOff.starts_at, TimeOff.ends_at).where(
        TimeOff.provider_id.in_(provider_ids), TimeOff.starts_at < end, TimeOff.ends_at > start
    )
    return [(row[0], row[1], row[2]) for row in session.execute(query)]


def maintenance(
    session: Session, device_ids: Sequence[uuid.UUID], start: datetime, end: datetime
) -> list[tuple[uuid.UUID, datetime, datetime]]:
    """(device, start, end) of the maintenance overlapping `[start, end)`."""
    query = select(DeviceMaintenance.device_id, DeviceMaintenance.starts_at, DeviceMaintenance.ends_at).where(
        DeviceMaintenance.device_id.in_(device_ids),
        DeviceMaintenance.starts_at < end,
        DeviceMaintenance.ends_at > start,
    )
    return [(row[0], row[1], row[2]) for row in session.execute(query)]


def closed_dates(session: Session, location_id: uuid.UUID, first: date, last: date) -> set[date]:
    query = select(Closure.closed_on).where(
        Closure.location_id == location_id, Closure.closed_on >= first, Closure.closed_on <= last
    )
    return set(session.scalars(query))


def active_providers(session: Session, organization_id: uuid.UUID, location_id: uuid.UUID) -> list[Provider]:
    query = select(Provider).where(
        Provider.organization_id == organization_id, Provider.location_id == location_id, Provider.is_active
    )
    return list(session.scalars(query.order_by(Provider.name, Provider.id)))


def active_rooms(session: Session, organization_id: uuid.UUID, location_id: uuid.UUID) -> list[Room]:
    query = select(Room).where(
        Room.organization_id == organization_id, Room.location_id == location_id, Room.is_active
    )
    return list(session.scalars(query.order_by(Room.name, Room.id)))


def active_devices(session: Session, organization_id: uuid.UUID, location_id: uuid.UUID) -> list[Device]:
    query = select(Device).where(
        Device.organization_id == organization_id, Device.location_id == location_id, Device.is_active
    )
    return list(session.scalars(query.order_by(Device.name, Device.id)))


def bump_config_version(session: Session, location_id: uuid.UUID) -> None:
    """Mark the location's set-up changed, so cached copies of it are rebuilt. The increment is one atomic
    UPDATE; the session remembers the location so this transaction never caches its uncommitted state."""
    session.execute(
        update(Location)
        .where(Location.id == location_id)
        .values(config_version=Location.config_version + 1)
        .execution_options(synchronize_session=False)
    )
    session.info.setdefault(CHANGED_LOCATIONS, set()).add(location_id)
    for record in list(session.identity_map.values()):
        if isinstance(record, Location) and record.id == location_id:
            session.expire(record, ["config_version"])


def changed_locations(session: Session) -> set[uuid.UUID]:
    """Locations whose set-up this session's transaction has changed."""
    changed: set[uuid.UUID] = session.info.get(CHANGED_LOCATIONS, set())
    return changed
