"""Client profiles. Reading needs `READ`, writing `MANAGE_CLIENTS`; functions flush, never commit.

The PHI fields are sealed in the database (`clients.phi`, ADR 17): they are opened here, for the actor
who asked, and never leave this module in any other form than `ClientRead`. Events carry the client's
id and the names of the fields that changed, never their values: the outbox is read by integrations.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from medspa.clients import phi
from medspa.clients.models import PHI_FIELDS, Client
from medspa.clients.schemas import ClientCreate, ClientRead, ClientUpdate
from medspa.kit import clock
from medspa.kit.crud import get_owned, list_owned
from medspa.kit.outbox import record_event
from medspa.kit.schemas import Page
from medspa.security.actors import Actor, Permission, require

# The lookup form of a phone number (its national digits), for callers that tell a phone from a name.
phone_key = phi.phone_lookup


def _client(session: Session, actor: Actor, client_id: uuid.UUID) -> Client:
    return get_owned(session, Client, actor.organization_id, client_id, "client")


def create_client(session: Session, *, actor: Actor, data: ClientCreate) -> ClientRead:
    """Register a client. Emits `client.created` (id only)."""
    require(actor, Permission.MANAGE_CLIENTS)
    now = clock.now()
    values = data.model_dump()
    client = phi.new_client(
        session, actor.organization_id, values, is_active=True, created_at=now, updated_at=now
    )
    session.add(client)
    session.flush()
    phi.add_search_terms(session, client, values)
    record_event(session, actor, "client.created", client.id, {"id": str(client.id)})
    return phi.read(session, client)


def get_client(session: Session, *, actor: Actor, client_id: uuid.UUID) -> ClientRead:
    require(actor, Permission.READ)
    return phi.read(session, _client(session, actor, client_id))


def list_clients(
    session: Session,
    *,
    actor: Actor,
    email: str | None = None,
    phone: str | None = None,
    limit: int = 50,
    offset: int = 0,
    include_inactive: bool = False,
) -> Page[ClientRead]:
    """Clients in the order they were registered; `email` and `phone` filter by exact match (case and
    punctuation ignored)."""
    require(actor, Permission.READ)
    filters: list[ColumnElement[bool]] = [] if include_inactive else [Client.is_active.is_(True)]
    if email is not None:
        filters.append(Client.email_key == phi.email_index(session, actor.organization_id, email))
    if phone is not None:
        filters.append(Client.phone_key == phi.phone_index(session, actor.organization_id, phone))
    rows, total = list_owned(
        session,
        Client,
        actor.organization_id,
        *filters,
        order_by=(Client.created_at, Client.id),
        limit=limit,
        offset=offset,
    )
    return Page(items=[phi.read(session, c) for c in rows], total=total, limit=limit, offset=offset)


def search_clients(
    session: Session, *, actor: Actor, query: str, limit: int = 20, offset: int = 0
) -> Page[ClientRead]:
    """Active clients found by what the front desk typed (`phi.query_strings`): any prefix of a word of
    the name or of the e-mail, or a phone number in any format, or its start or last digits; every word
    typed must match. Best match first (`phi.rank`)."""
    require(actor, Permission.READ)
    ids = phi.matching_ids(session, actor.organization_id, query)
    if not ids:
        return Page(items=[], total=0, limit=limit, offset=offset)
    rows = session.scalars(
        select(Client).where(
            Client.organization_id == actor.organization_id, Client.id.in_(ids), Client.is_active.is_(True)
        )
    ).all()
    ranked = phi.rank(query, [phi.read(session, c) for c in rows])
    return Page(items=ranked[offset : offset + limit], total=len(ranked), limit=limit, offset=offset)


def client_names(
    session: Session, *, actor: Actor, client_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Display names ("first last") of the given clients, by id, in one query: for lists such as the day
    view that show many appointments. Ids of other organizations (or unknown ids) are simply absent."""
    require(actor, Permission.READ)
    if not client_ids:
        return {}
    rows = session.scalars(
        select(Client).where(Client.organization_id == actor.organization_id, Client.id.in_(set(client_ids)))
    )
    return {client.id: phi.display_name(session, client) for client in rows}


def update_client(session: Session, *, actor: Actor, client_id: uuid.UUID, data: ClientUpdate) -> ClientRead:
    """Change the fields given; null clears `email`, `phone` and `date_of_birth` (`ClientUpdate`).
    Emits `client.updated` with the names of the changed fields."""
    require(actor, Permission.MANAGE_CLIENTS)
    client = _client(session, actor, client_id)
    current = phi.open_values(session, client)
    changes = {
        key: value
        for key, value in data.model_dump(exclude_unset=True).items()
        if key in PHI_FIELDS and current[key] != value
    }
    if changes:
        phi.seal(session, client, changes)
    client.updated_at = clock.now()
    session.flush()
    record_event(
        session, actor, "client.updated", client.id, {"id": str(client.id), "fields": sorted(changes)}
    )
    return phi.read(session, client)


def deactivate_client(session: Session, *, actor: Actor, client_id: uuid.UUID) -> ClientRead:
    require(actor, Permission.MANAGE_CLIENTS)
    client = _client(session, actor, client_id)
    client.is_active = False
    client.updated_at = clock.now()
    session.flush()
    record_event(session, actor, "client.deactivated", client.id, {"id": str(client.id)})
    return phi.read(session, client)
