"""The service catalogue. Writes need `MANAGE_CLINIC`; functions flush, never commit."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from medspa.catalog.models import Service
from medspa.catalog.schemas import ServiceCreate, ServiceRead, ServiceUpdate
from medspa.kit.crud import get_owned, list_owned
from medspa.kit.outbox import record_event
from medspa.kit.schemas import Page
from medspa.security.actors import Actor, require


def _service(session: Session, actor: Actor, service_id: uuid.UUID) -> Service:
    return get_owned(session, Service, actor.organization_id, service_id, "service")


def create_service(session: Session, *, actor: Actor, data: ServiceCreate) -> ServiceRead:
    """Add a service to the catalogue. Emits `service.created`."""
    require(actor, "services", "manage")
    service = Service(organization_id=actor.organization_id, **data.model_dump())
    service.room_types = sorted(set(data.room_types))
    session.add(service)
    session.flush()
    read = ServiceRead.model_validate(service)
    record_event(session, actor, "service.created", service.id, read.model_dump(mode="json"))
    return read


def get_service(session: Session, *, actor: Actor, service_id: uuid.UUID) -> ServiceRead:
    return ServiceRead.model_validate(_service(session, actor, service_id))


def list_services(
    session: Session,
    *,
    actor: Actor,
    category: str | None = None,
    limit: int = 50,
    offset: int = 0,
    include_inactive: bool = False,
) -> Page[ServiceRead]:
    filters: list[ColumnElement[bool]] = [] if include_inactive else [Service.is_active.is_(True)]
    if category is not None:
        filters.append(Service.category == category)
    rows, total = list_owned(
        session, Service, actor.organization_id, *filters, order_by=Service.name, limit=limit, offset=offset
    )
    return Page(items=[ServiceRead.model_validate(s) for s in rows], total=total, limit=limit, offset=offset)


def update_service(
    session: Session, *, actor: Actor, service_id: uuid.UUID, data: ServiceUpdate
) -> ServiceRead:
    """Change the fields given; null clears `required_license` and `device_type` (`ServiceUpdate`)."""
    require(actor, "services", "manage")
    service = _service(session, actor, service_id)
    for key, value in data.model_dump(exclude_unset=True).items():
        setattr(service, key, sorted(set(value)) if key == "room_types" else value)
    session.flush()
    read = ServiceRead.model_validate(service)
    record_event(session, actor, "service.updated", service.id, read.model_dump(mode="json"))
    return read


def deactivate_service(session: Session, *, actor: Actor, service_id: uuid.UUID) -> ServiceRead:
    """Withdraw the service from sale; booked appointments keep it."""
    require(actor, "services", "manage")
    service = _service(session, actor, service_id)
    service.is_active = False
    session.flush()
    record_event(session, actor, "service.deactivated", service.id, {"id": str(service.id)})
    return ServiceRead.model_validate(service)
