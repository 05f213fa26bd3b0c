"""The service catalogue. Writes need `MANAGE_CLINIC`; functions flush, never commit."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from medspa.catalog.models import Service
from medspa.catalog.schemas import ServiceCreate, ServiceRead, ServiceUpdate
from medspa.kit.crud import get_owned, list_owned
from medspa.kit.errors import ValidationFailedError
from medspa.kit.outbox import record_event
from medspa.kit.schemas import Page
from medspa.security.actors import Actor, require


def _service(session: Session, actor: Actor, service_id: uuid.UUID) -> Service:
    return get_owned(session, Service, actor.organization_id, service_id, "service")


def _check_cadence(fields: Mapping[str, Any]) -> None:
    """ValidationFailedError (422) unless the follow-up window and the series hold together: a latest
    day needs an earliest one and is not before it; a series has both its sessions and its interval."""
    first, last = fields.get("follow_up_days"), fields.get("follow_up_days_max")
    if last is not None and first is None:
        raise ValidationFailedError("follow_up_days_max", "needs the earliest day as well")
    if last is not None and first is not None and last < first:
        raise ValidationFailedError(
            "follow_up_days_max", f"must not be before the earliest day ({first}), it is {last}"
        )
    sessions, interval = fields.get("series_sessions"), fields.get("series_interval_days")
    if (sessions is None) != (interval is None):
        missing = "series_interval_days" if interval is None else "series_sessions"
        raise ValidationFailedError(missing, "a series needs both its sessions and the days between them")


def create_service(session: Session, *, actor: Actor, data: ServiceCreate) -> ServiceRead:
    """Add a service to the catalogue. Emits `service.created`. ValidationFailedError for a follow-up
    window or series that does not hold together (`_check_cadence`)."""
    require(actor, "services", "manage")
    _check_cadence(data.model_dump())
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
    """Change the fields given; null clears those `ServiceUpdate` names clearable. ValidationFailedError,
    nothing changed, when the follow-up window or series would not hold together with the fields kept."""
    require(actor, "services", "manage")
    service = _service(session, actor, service_id)
    changes = data.model_dump(exclude_unset=True)
    _check_cadence({**ServiceRead.model_validate(service).model_dump(), **changes})
    for key, value in changes.items():
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
