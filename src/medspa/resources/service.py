"""Locations, providers, rooms and devices: their rules and their public functions.

Every function takes the acting `Actor` and touches only the actor's organization; a record of another
organization raises NotFoundError. Writes need `MANAGE_CLINIC`. Functions flush, never commit.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from medspa.kit.crud import get_owned, list_owned
from medspa.kit.outbox import record_event
from medspa.kit.schemas import Page
from medspa.kit.tz import to_local
from medspa.resources import repository
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
from medspa.resources.schemas import (
    ClosureCreate,
    ClosureRead,
    DeviceCreate,
    DeviceRead,
    DeviceUpdate,
    LicenseRead,
    LocationCreate,
    LocationRead,
    LocationUpdate,
    PeriodCreate,
    PeriodRead,
    ProviderCreate,
    ProviderRead,
    ProviderUpdate,
    RoomCreate,
    RoomRead,
    RoomUpdate,
    WeeklySpan,
)
from medspa.security.actors import Actor, require

# --- locations ---------------------------------------------------------------------------------------


def _location_read(session: Session, location: Location) -> LocationRead:
    hours = [
        WeeklySpan(weekday=h.weekday, starts_at=h.opens_at, ends_at=h.closes_at)
        for h in repository.opening_hours(session, [location.id])
    ]
    return LocationRead.model_validate({**_columns(location), "opening_hours": hours})


def _columns(record: Any) -> dict[str, Any]:
    return {column.key: getattr(record, column.key) for column in record.__table__.columns}


def _hours_rows(actor: Actor, location_id: uuid.UUID, spans: list[WeeklySpan]) -> list[OpeningHours]:
    return [
        OpeningHours(
            organization_id=actor.organization_id,
            location_id=location_id,
            weekday=span.weekday,
            opens_at=span.starts_at,
            closes_at=span.ends_at,
        )
        for span in spans
    ]


def create_location(session: Session, *, actor: Actor, data: LocationCreate) -> LocationRead:
    """Create a location with its weekly opening hours. Emits `location.created`."""
    require(actor, "locations", "manage")
    location = Location(organization_id=actor.organization_id, **data.model_dump(exclude={"opening_hours"}))
    session.add(location)
    session.flush()
    session.add_all(_hours_rows(actor, location.id, data.opening_hours))
    session.flush()
    read = _location_read(session, location)
    record_event(session, actor, "location.created", location.id, read.model_dump(mode="json"))
    return read


def _location(session: Session, actor: Actor, location_id: uuid.UUID) -> Location:
    """The location, if it is the organization's and one the actor works at; NotFoundError otherwise."""
    location = get_owned(session, Location, actor.organization_id, location_id, "location")
    actor.require_location(location.id)
    return location


def get_location(session: Session, *, actor: Actor, location_id: uuid.UUID) -> LocationRead:
    """The location with its opening hours; NotFoundError for an unknown or foreign id."""
    return _location_read(session, _location(session, actor, location_id))


def list_locations(
    session: Session, *, actor: Actor, limit: int = 50, offset: int = 0, include_inactive: bool = False
) -> Page[LocationRead]:
    filters: list[ColumnElement[bool]] = [] if include_inactive else [Location.is_active.is_(True)]
    if actor.location_ids is not None:
        filters.append(Location.id.in_(actor.location_ids))
    rows, total = list_owned(
        session, Location, actor.organization_id, *filters, order_by=Location.name, limit=limit, offset=offset
    )
    return Page(items=[_location_read(session, r) for r in rows], total=total, limit=limit, offset=offset)


def update_location(
    session: Session, *, actor: Actor, location_id: uuid.UUID, data: LocationUpdate
) -> LocationRead:
    """Change the fields given; `opening_hours`, when given, replaces the whole week."""
    require(actor, "locations", "manage")
    location = _location(session, actor, location_id)
    changes = data.model_dump(exclude_unset=True, exclude={"opening_hours"})
    for key, value in changes.items():
        setattr(location, key, value)
    if data.opening_hours is not None:
        repository.replace_opening_hours(
            session, location.id, _hours_rows(actor, location.id, data.opening_hours)
        )
    session.flush()
    read = _location_read(session, location)
    repository.bump_config_version(session, location.id)
    record_event(session, actor, "location.updated", location.id, read.model_dump(mode="json"))
    return read


def deactivate_location(session: Session, *, actor: Actor, location_id: uuid.UUID) -> LocationRead:
    """Mark the location inactive: it keeps its history but offers no more slots."""
    require(actor, "locations", "manage")
    location = _location(session, actor, location_id)
    location.is_active = False
    session.flush()
    repository.bump_config_version(session, location.id)
    record_event(session, actor, "location.deactivated", location.id, {"id": str(location.id)})
    return _location_read(session, location)


def add_closure(
    session: Session, *, actor: Actor, location_id: uuid.UUID, data: ClosureCreate
) -> ClosureRead:
    """Close the location for a whole local date (a holiday)."""
    require(actor, "locations", "manage")
    location = _location(session, actor, location_id)
    closure = Closure(organization_id=actor.organization_id, location_id=location.id, **data.model_dump())
    session.add(closure)
    session.flush()
    read = ClosureRead.model_validate(closure)
    repository.bump_config_version(session, location.id)
    record_event(session, actor, "location.closure_added", location.id, read.model_dump(mode="json"))
    return read


def list_closures(
    session: Session, *, actor: Actor, location_id: uuid.UUID, first: date, last: date
) -> list[ClosureRead]:
    location = _location(session, actor, location_id)
    return [ClosureRead.model_validate(c) for c in repository.closures(session, location.id, first, last)]


# --- providers ---------------------------------------------------------------------------------------


def _provider_rows(
    actor: Actor, provider_id: uuid.UUID, data: ProviderCreate | ProviderUpdate
) -> dict[str, list[Any] | None]:
    org = actor.organization_id
    return {
        "licenses": None
        if data.licenses is None
        else [
            ProviderLicense(organization_id=org, provider_id=provider_id, **license_.model_dump())
            for license_ in data.licenses
        ],
        "shifts": None
        if data.shifts is None
        else [
            Shift(
                organization_id=org,
                provider_id=provider_id,
                weekday=s.weekday,
                starts_at=s.starts_at,
                ends_at=s.ends_at,
            )
            for s in data.shifts
        ],
        "breaks": None
        if data.breaks is None
        else [
            Break(
                organization_id=org,
                provider_id=provider_id,
                weekday=b.weekday,
                starts_at=b.starts_at,
                ends_at=b.ends_at,
            )
            for b in data.breaks
        ],
    }


def _provider_reads(session: Session, providers: list[Provider]) -> list[ProviderRead]:
    ids = [p.id for p in providers]
    licenses: dict[uuid.UUID, list[LicenseRead]] = {i: [] for i in ids}
    shifts: dict[uuid.UUID, list[WeeklySpan]] = {i: [] for i in ids}
    breaks: dict[uuid.UUID, list[WeeklySpan]] = {i: [] for i in ids}
    for lic in repository.licenses(session, ids):
        licenses[lic.provider_id].append(
            LicenseRead(kind=lic.kind, number=lic.number, expires_on=lic.expires_on)
        )
    for s in repository.shifts(session, ids):
        shifts[s.provider_id].append(WeeklySpan(weekday=s.weekday, starts_at=s.starts_at, ends_at=s.ends_at))
    for b in repository.breaks(session, ids):
        breaks[b.provider_id].append(WeeklySpan(weekday=b.weekday, starts_at=b.starts_at, ends_at=b.ends_at))
    return [
        ProviderRead.model_validate(
            {**_columns(p), "licenses": licenses[p.id], "shifts": shifts[p.id], "breaks": breaks[p.id]}
        )
        for p in providers
    ]


def _provider(session: Session, actor: Actor, provider_id: uuid.UUID) -> Provider:
    return get_owned(session, Provider, actor.organization_id, provider_id, "provider")


def create_provider(session: Session, *, actor: Actor, data: ProviderCreate) -> ProviderRead:
    """Create a provider at a location with skills, licenses, weekly shifts and breaks."""
    require(actor, "providers", "manage")
    _location(session, actor, data.location_id)
    provider = Provider(
        organization_id=actor.organization_id,
        location_id=data.location_id,
        name=data.name,
        title=data.title,
        skills=sorted(set(data.skills)),
    )
    session.add(provider)
    session.flush()
    repository.replace_provider_schedule(session, provider.id, **_provider_rows(actor, provider.id, data))
    session.flush()
    read = _provider_reads(session, [provider])[0]
    repository.bump_config_version(session, provider.location_id)
    record_event(session, actor, "provider.created", provider.id, read.model_dump(mode="json"))
    return read


def get_provider(session: Session, *, actor: Actor, provider_id: uuid.UUID) -> ProviderRead:
    return _provider_reads(session, [_provider(session, actor, provider_id)])[0]


def list_providers(
    session: Session,
    *,
    actor: Actor,
    location_id: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
    include_inactive: bool = False,
) -> Page[ProviderRead]:
    filters: list[ColumnElement[bool]] = [] if include_inactive else [Provider.is_active.is_(True)]
    if location_id is not None:
        filters.append(Provider.location_id == location_id)
    rows, total = list_owned(
        session, Provider, actor.organization_id, *filters, order_by=Provider.name, limit=limit, offset=offset
    )
    return Page(items=_provider_reads(session, rows), total=total, limit=limit, offset=offset)


def update_provider(
    session: Session, *, actor: Actor, provider_id: uuid.UUID, data: ProviderUpdate
) -> ProviderRead:
    """Change the fields given; licenses, shifts and breaks, when given, replace the whole list."""
    require(actor, "providers", "manage")
    provider = _provider(session, actor, provider_id)
    for key in ("name", "title"):
        if key in data.model_fields_set and getattr(data, key) is not None:
            setattr(provider, key, getattr(data, key))
    if data.skills is not None:
        provider.skills = sorted(set(data.skills))
    repository.replace_provider_schedule(session, provider.id, **_provider_rows(actor, provider.id, data))
    session.flush()
    read = _provider_reads(session, [provider])[0]
    repository.bump_config_version(session, provider.location_id)
    record_event(session, actor, "provider.updated", provider.id, read.model_dump(mode="json"))
    return read


def deactivate_provider(session: Session, *, actor: Actor, provider_id: uuid.UUID) -> ProviderRead:
    require(actor, "providers", "manage")
    provider = _provider(session, actor, provider_id)
    provider.is_active = False
    session.flush()
    repository.bump_config_version(session, provider.location_id)
    record_event(session, actor, "provider.deactivated", provider.id, {"id": str(provider.id)})
    return _provider_reads(session, [provider])[0]


def add_time_off(session: Session, *, actor: Actor, provider_id: uuid.UUID, data: PeriodCreate) -> PeriodRead:
    """Block a provider between two instants (vacation, training, a sick day)."""
    require(actor, "providers", "manage")
    provider = _provider(session, actor, provider_id)
    row = TimeOff(organization_id=actor.organization_id, provider_id=provider.id, **data.model_dump())
    session.add(row)
    session.flush()
    read = PeriodRead.model_validate(row)
    repository.bump_config_version(session, provider.location_id)
    record_event(session, actor, "provider.time_off_added", provider.id, read.model_dump(mode="json"))
    return read


# --- rooms and devices -------------------------------------------------------------------------------
# Both are equipment at a location with the same life: created, read, listed, changed, deactivated. Each
# change bumps the location's set-up version and emits `<kind>.<verb>`.

EquipmentRead = TypeVar("EquipmentRead", RoomRead, DeviceRead)


def _create_equipment(
    session: Session,
    actor: Actor,
    model: type[Room | Device],
    data: RoomCreate | DeviceCreate,
    read: type[EquipmentRead],
) -> EquipmentRead:
    require(actor, "rooms" if model is Room else "devices", "manage")
    _location(session, actor, data.location_id)
    record = model(organization_id=actor.organization_id, **data.model_dump())
    session.add(record)
    session.flush()
    return _equipment_changed(session, actor, record, read, "created")


def _equipment_changed(
    session: Session, actor: Actor, record: Room | Device, read: type[EquipmentRead], verb: str
) -> EquipmentRead:
    result = read.model_validate(record)
    repository.bump_config_version(session, record.location_id)
    payload = {"id": str(record.id)} if verb == "deactivated" else result.model_dump(mode="json")
    record_event(session, actor, f"{record.__tablename__[:-1]}.{verb}", record.id, payload)
    return result


def _list_equipment(
    session: Session,
    actor: Actor,
    model: type[Room | Device],
    read: type[EquipmentRead],
    location_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> Page[EquipmentRead]:
    filters: list[ColumnElement[bool]] = [model.is_active.is_(True)]
    if location_id is not None:
        filters.append(model.location_id == location_id)
    rows, total = list_owned(
        session, model, actor.organization_id, *filters, order_by=model.name, limit=limit, offset=offset
    )
    return Page(items=[read.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


def _update_equipment(
    session: Session,
    actor: Actor,
    record: Room | Device,
    data: RoomUpdate | DeviceUpdate,
    read: type[EquipmentRead],
) -> EquipmentRead:
    for key, value in data.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(record, key, value)
    session.flush()
    return _equipment_changed(session, actor, record, read, "updated")


def _deactivate_equipment(
    session: Session, actor: Actor, record: Room | Device, read: type[EquipmentRead]
) -> EquipmentRead:
    record.is_active = False
    session.flush()
    return _equipment_changed(session, actor, record, read, "deactivated")


def _room(session: Session, actor: Actor, room_id: uuid.UUID) -> Room:
    return get_owned(session, Room, actor.organization_id, room_id, "room")


def create_room(session: Session, *, actor: Actor, data: RoomCreate) -> RoomRead:
    return _create_equipment(session, actor, Room, data, RoomRead)


def get_room(session: Session, *, actor: Actor, room_id: uuid.UUID) -> RoomRead:
    return RoomRead.model_validate(_room(session, actor, room_id))


def list_rooms(
    session: Session, *, actor: Actor, location_id: uuid.UUID | None = None, limit: int = 50, offset: int = 0
) -> Page[RoomRead]:
    return _list_equipment(session, actor, Room, RoomRead, location_id, limit, offset)


def update_room(session: Session, *, actor: Actor, room_id: uuid.UUID, data: RoomUpdate) -> RoomRead:
    require(actor, "rooms", "manage")
    return _update_equipment(session, actor, _room(session, actor, room_id), data, RoomRead)


def deactivate_room(session: Session, *, actor: Actor, room_id: uuid.UUID) -> RoomRead:
    require(actor, "rooms", "manage")
    return _deactivate_equipment(session, actor, _room(session, actor, room_id), RoomRead)


def _device(session: Session, actor: Actor, device_id: uuid.UUID) -> Device:
    return get_owned(session, Device, actor.organization_id, device_id, "device")


def create_device(session: Session, *, actor: Actor, data: DeviceCreate) -> DeviceRead:
    return _create_equipment(session, actor, Device, data, DeviceRead)


def get_device(session: Session, *, actor: Actor, device_id: uuid.UUID) -> DeviceRead:
    return DeviceRead.model_validate(_device(session, actor, device_id))


def list_devices(
    session: Session, *, actor: Actor, location_id: uuid.UUID | None = None, limit: int = 50, offset: int = 0
) -> Page[DeviceRead]:
    return _list_equipment(session, actor, Device, DeviceRead, location_id, limit, offset)


def update_device(session: Session, *, actor: Actor, device_id: uuid.UUID, data: DeviceUpdate) -> DeviceRead:
    require(actor, "devices", "manage")
    return _update_equipment(session, actor, _device(session, actor, device_id), data, DeviceRead)


def deactivate_device(session: Session, *, actor: Actor, device_id: uuid.UUID) -> DeviceRead:
    require(actor, "devices", "manage")
    return _deactivate_equipment(session, actor, _device(session, actor, device_id), DeviceRead)


def add_maintenance(
    session: Session, *, actor: Actor, device_id: uuid.UUID, data: PeriodCreate
) -> PeriodRead:
    """Take a device out of service between two instants."""
    require(actor, "devices", "manage")
    device = _device(session, actor, device_id)
    row = DeviceMaintenance(organization_id=actor.organization_id, device_id=device.id, **data.model_dump())
    session.add(row)
    session.flush()
    read = PeriodRead.model_validate(row)
    repository.bump_config_version(session, device.location_id)
    record_event(session, actor, "device.maintenance_added", device.id, read.model_dump(mode="json"))
    return read


# --- what availability needs, in one call --------------------------------------------------------------


@dataclass(frozen=True)
class LocationConfig:
    """A location's set-up: hours and closures, providers (skills, licenses, shifts, breaks, time off),
    rooms, devices (with maintenance)."""

    location: LocationRead
    providers: list[ProviderRead]
    rooms: list[RoomRead]
    devices: list[DeviceRead]
    closed_dates: frozenset[date]
    time_off: list[tuple[uuid.UUID, datetime, datetime]]
    maintenance: list[tuple[uuid.UUID, datetime, datetime]]
    version: int = 0  # the location's `config_version` this set-up was read at


_CONFIG_CACHE: dict[uuid.UUID, tuple[int, LocationConfig]] = {}
_EVER = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
_CONFIG_CACHE_LOCK = threading.Lock()
_CONFIG_CACHE_SIZE = 512


def location_config(session: Session, *, actor: Actor, location_id: uuid.UUID) -> LocationConfig:
    """The location's set-up, from a per-process cache keyed by the location's `config_version`; every
    write to the location, its closures, providers, time off, rooms, devices or maintenance bumps that
    version in the same transaction, so a cached copy is never stale for the transaction reading it."""
    location = _location(session, actor, location_id)
    with _CONFIG_CACHE_LOCK:
        cached = _CONFIG_CACHE.get(location.id)
    if cached is not None and cached[0] == location.config_version:
        return cached[1]
    providers = _provider_reads(
        session, repository.active_providers(session, actor.organization_id, location.id)
    )
    devices = [
        DeviceRead.model_validate(d)
        for d in repository.active_devices(session, actor.organization_id, location.id)
    ]
    config = LocationConfig(
        location=_location_read(session, location),
        providers=providers,
        rooms=[
            RoomRead.model_validate(r)
            for r in repository.active_rooms(session, actor.organization_id, location.id)
        ],
        devices=devices,
        closed_dates=frozenset(repository.closed_dates(session, location.id, date.min, date.max)),
        time_off=repository.time_off(session, [p.id for p in providers], _EVER[0], _EVER[1]),
        maintenance=repository.maintenance(session, [d.id for d in devices], _EVER[0], _EVER[1]),
        version=location.config_version,
    )
    if location.id not in repository.changed_locations(session):
        with _CONFIG_CACHE_LOCK:
            if len(_CONFIG_CACHE) >= _CONFIG_CACHE_SIZE:
                _CONFIG_CACHE.pop(next(iter(_CONFIG_CACHE)))
            _CONFIG_CACHE[location.id] = (location.config_version, config)
    return config


@dataclass(frozen=True)
class LocationResources:
    """Everything about one location that decides when a service can be given, over a period."""

    location: LocationRead
    closed_dates: frozenset[date]
    providers: list[ProviderRead]
    rooms: list[RoomRead]
    devices: list[DeviceRead]
    time_off: dict[uuid.UUID, list[tuple[datetime, datetime]]]
    maintenance: dict[uuid.UUID, list[tuple[datetime, datetime]]]


def resources_within(config: LocationConfig, start: datetime, end: datetime) -> LocationResources:
    """The location's active providers, rooms and devices, with the closures, time off and maintenance
    that fall within `[start, end)` (aware instants)."""
    zone = config.location.time_zone
    first, last = to_local(start, zone).date(), to_local(end, zone).date()
    time_off: dict[uuid.UUID, list[tuple[datetime, datetime]]] = {}
    for provider_id, off_from, off_until in config.time_off:
        if off_from < end and off_until > start:
            time_off.setdefault(provider_id, []).append((off_from, off_until))
    maintenance: dict[uuid.UUID, list[tuple[datetime, datetime]]] = {}
    for device_id, down_from, down_until in config.maintenance:
        if down_from < end and down_until > start:
            maintenance.setdefault(device_id, []).append((down_from, down_until))
    return LocationResources(
        location=config.location,
        closed_dates=frozenset(d for d in config.closed_dates if first <= d <= last),
        providers=config.providers,
        rooms=config.rooms,
        devices=config.devices,
        time_off=time_off,
        maintenance=maintenance,
    )
