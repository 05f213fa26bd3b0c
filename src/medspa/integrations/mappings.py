"""Which of our locations, services and providers a connected system's ones are: set by an owner or
manager (`PUT /api/v1/integrations/connections/{id}/mappings`, `medspa integrations map`), read by
`apply` when an appointment arrives. Stored as the connection's links (`ExternalLink`) of kind
`location`, `service` or `provider`; setting one again moves it. Functions flush, never commit.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.integrations.models import Connection, ExternalLink
from medspa.integrations.schemas import MappingRead, MappingSet
from medspa.kit import clock
from medspa.kit.crud import get_owned, list_owned
from medspa.kit.outbox import record_event
from medspa.kit.schemas import Page
from medspa.resources import service as resources
from medspa.security.actors import Actor, require

KINDS = ("location", "service", "provider")


def _read(link: ExternalLink) -> MappingRead:
    return MappingRead.model_validate(link)


def set_mapping(session: Session, *, actor: Actor, connection_id: uuid.UUID, data: MappingSet) -> MappingRead:
    """Map the source's `external_id` of `kind` to our record (which must be the organization's: 404
    otherwise). Deliveries waiting for it are applied on the worker's next pass. Emits
    `integration.mapping_set`."""
    require(actor, "integrations", "manage")
    connection = get_owned(session, Connection, actor.organization_id, connection_id, "connection", lock=True)
    if data.kind == "location":
        resources.get_location(session, actor=actor, location_id=data.record_id)
    elif data.kind == "service":
        catalog.get_service(session, actor=actor, service_id=data.record_id)
    else:
        resources.get_provider(session, actor=actor, provider_id=data.record_id)
    now = clock.now()
    link = session.scalar(
        select(ExternalLink).where(
            ExternalLink.connection_id == connection.id,
            ExternalLink.kind == data.kind,
            ExternalLink.external_id == data.external_id,
        )
    )
    if link is None:
        link = ExternalLink(
            organization_id=actor.organization_id,
            connection_id=connection.id,
            kind=data.kind,
            external_id=data.external_id,
            record_id=data.record_id,
            source_time=None,
            updated_at=now,
        )
        session.add(link)
    else:
        link.record_id, link.updated_at = data.record_id, now
    session.flush()
    payload = {"connection_id": str(connection.id), "kind": data.kind, "record_id": str(data.record_id)}
    record_event(session, actor, "integration.mapping_set", connection.id, payload)
    return _read(link)


def list_mappings(
    session: Session, *, actor: Actor, connection_id: uuid.UUID, limit: int = 50, offset: int = 0
) -> Page[MappingRead]:
    require(actor, "integrations", "read")
    get_owned(session, Connection, actor.organization_id, connection_id, "connection")
    rows, total = list_owned(
        session,
        ExternalLink,
        actor.organization_id,
        ExternalLink.connection_id == connection_id,
        ExternalLink.kind.in_(KINDS),
        order_by=(ExternalLink.kind, ExternalLink.external_id),
        limit=limit,
        offset=offset,
    )
    return Page(items=[_read(r) for r in rows], total=total, limit=limit, offset=offset)
