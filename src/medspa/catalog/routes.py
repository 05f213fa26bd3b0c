"""HTTP routes for the service catalogue."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from medspa.api import ActorDep, Limit, Offset, SessionDep
from medspa.catalog import service
from medspa.catalog.schemas import ServiceCreate, ServiceRead, ServiceUpdate
from medspa.kit.schemas import Code, Page
from medspa.security.permissions import permits

router = APIRouter(prefix="/api/v1", tags=["catalog"])


@router.post("/services", status_code=201)
@permits("services", "manage")
def create_service(data: ServiceCreate, session: SessionDep, actor: ActorDep) -> ServiceRead:
    return service.create_service(session, actor=actor, data=data)


@router.get("/services")
@permits("services", "read")
def list_services(
    session: SessionDep, actor: ActorDep, category: Code | None = None, limit: Limit = 50, offset: Offset = 0
) -> Page[ServiceRead]:
    return service.list_services(session, actor=actor, category=category, limit=limit, offset=offset)


@router.get("/services/{service_id}")
@permits("services", "read")
def get_service(service_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ServiceRead:
    return service.get_service(session, actor=actor, service_id=service_id)


@router.patch("/services/{service_id}")
@permits("services", "manage")
def update_service(
    service_id: uuid.UUID, data: ServiceUpdate, session: SessionDep, actor: ActorDep
) -> ServiceRead:
    return service.update_service(session, actor=actor, service_id=service_id, data=data)


@router.delete("/services/{service_id}")
@permits("services", "manage")
def deactivate_service(service_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ServiceRead:
    return service.deactivate_service(session, actor=actor, service_id=service_id)
