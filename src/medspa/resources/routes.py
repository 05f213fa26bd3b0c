"""HTTP routes for locations, providers, rooms and devices."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from medspa.api import ActorDep, Limit, Offset, SessionDep
from medspa.kit.schemas import BoundedDate, Page
from medspa.resources import service
from medspa.resources.schemas import (
    ClosureCreate,
    ClosureRead,
    DeviceCreate,
    DeviceRead,
    DeviceUpdate,
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
)
from medspa.security.permissions import permits

router = APIRouter(prefix="/api/v1", tags=["resources"])


@router.post("/locations", status_code=201)
@permits("locations", "manage")
def create_location(data: LocationCreate, session: SessionDep, actor: ActorDep) -> LocationRead:
    return service.create_location(session, actor=actor, data=data)


@router.get("/locations")
@permits("locations", "read")
def list_locations(
    session: SessionDep, actor: ActorDep, limit: Limit = 50, offset: Offset = 0
) -> Page[LocationRead]:
    return service.list_locations(session, actor=actor, limit=limit, offset=offset)


@router.get("/locations/{location_id}")
@permits("locations", "read")
def get_location(location_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> LocationRead:
    return service.get_location(session, actor=actor, location_id=location_id)


@router.patch("/locations/{location_id}")
@permits("locations", "manage")
def update_location(
    location_id: uuid.UUID, data: LocationUpdate, session: SessionDep, actor: ActorDep
) -> LocationRead:
    return service.update_location(session, actor=actor, location_id=location_id, data=data)


@router.delete("/locations/{location_id}")
@permits("locations", "manage")
def deactivate_location(location_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> LocationRead:
    return service.deactivate_location(session, actor=actor, location_id=location_id)


@router.post("/locations/{location_id}/closures", status_code=201)
@permits("locations", "manage")
def add_closure(
    location_id: uuid.UUID, data: ClosureCreate, session: SessionDep, actor: ActorDep
) -> ClosureRead:
    return service.add_closure(session, actor=actor, location_id=location_id, data=data)


@router.get("/locations/{location_id}/closures")
@permits("locations", "read")
def list_closures(
    location_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    first: Annotated[BoundedDate, Query(alias="from")],
    last: Annotated[BoundedDate, Query(alias="to")],
) -> list[ClosureRead]:
    return service.list_closures(session, actor=actor, location_id=location_id, first=first, last=last)


@router.post("/providers", status_code=201)
@permits("providers", "manage")
def create_provider(data: ProviderCreate, session: SessionDep, actor: ActorDep) -> ProviderRead:
    return service.create_provider(session, actor=actor, data=data)


@router.get("/providers")
@permits("providers", "read")
def list_providers(
    session: SessionDep,
    actor: ActorDep,
    location_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ProviderRead]:
    return service.list_providers(session, actor=actor, location_id=location_id, limit=limit, offset=offset)


@router.get("/providers/{provider_id}")
@permits("providers", "read")
def get_provider(provider_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ProviderRead:
    return service.get_provider(session, actor=actor, provider_id=provider_id)


@router.patch("/providers/{provider_id}")
@permits("providers", "manage")
def update_provider(
    provider_id: uuid.UUID, data: ProviderUpdate, session: SessionDep, actor: ActorDep
) -> ProviderRead:
    return service.update_provider(session, actor=actor, provider_id=provider_id, data=data)


@router.delete("/providers/{provider_id}")
@permits("providers", "manage")
def deactivate_provider(provider_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ProviderRead:
    return service.deactivate_provider(session, actor=actor, provider_id=provider_id)


@router.post("/providers/{provider_id}/time-off", status_code=201)
@permits("providers", "manage")
def add_time_off(
    provider_id: uuid.UUID, data: PeriodCreate, session: SessionDep, actor: ActorDep
) -> PeriodRead:
    return service.add_time_off(session, actor=actor, provider_id=provider_id, data=data)


@router.post("/rooms", status_code=201)
@permits("rooms", "manage")
def create_room(data: RoomCreate, session: SessionDep, actor: ActorDep) -> RoomRead:
    return service.create_room(session, actor=actor, data=data)


@router.get("/rooms")
@permits("rooms", "read")
def list_rooms(
    session: SessionDep,
    actor: ActorDep,
    location_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[RoomRead]:
    return service.list_rooms(session, actor=actor, location_id=location_id, limit=limit, offset=offset)


@router.get("/rooms/{room_id}")
@permits("rooms", "read")
def get_room(room_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RoomRead:
    return service.get_room(session, actor=actor, room_id=room_id)


@router.patch("/rooms/{room_id}")
@permits("rooms", "manage")
def update_room(room_id: uuid.UUID, data: RoomUpdate, session: SessionDep, actor: ActorDep) -> RoomRead:
    return service.update_room(session, actor=actor, room_id=room_id, data=data)


@router.delete("/rooms/{room_id}")
@permits("rooms", "manage")
def deactivate_room(room_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RoomRead:
    return service.deactivate_room(session, actor=actor, room_id=room_id)


@router.post("/devices", status_code=201)
@permits("devices", "manage")
def create_device(data: DeviceCreate, session: SessionDep, actor: ActorDep) -> DeviceRead:
    return service.create_device(session, actor=actor, data=data)


@router.get("/devices")
@permits("devices", "read")
def list_devices(
    session: SessionDep,
    actor: ActorDep,
    location_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeviceRead]:
    return service.list_devices(session, actor=actor, location_id=location_id, limit=limit, offset=offset)


@router.get("/devices/{device_id}")
@permits("devices", "read")
def get_device(device_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> DeviceRead:
    return service.get_device(session, actor=actor, device_id=device_id)


@router.patch("/devices/{device_id}")
@permits("devices", "manage")
def update_device(
    device_id: uuid.UUID, data: DeviceUpdate, session: SessionDep, actor: ActorDep
) -> DeviceRead:
    return service.update_device(session, actor=actor, device_id=device_id, data=data)


@router.delete("/devices/{device_id}")
@permits("devices", "manage")
def deactivate_device(device_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> DeviceRead:
    return service.deactivate_device(session, actor=actor, device_id=device_id)


@router.post("/devices/{device_id}/maintenance", status_code=201)
@permits("devices", "manage")
def add_maintenance(
    device_id: uuid.UUID, data: PeriodCreate, session: SessionDep, actor: ActorDep
) -> PeriodRead:
    return service.add_maintenance(session, actor=actor, device_id=device_id, data=data)
