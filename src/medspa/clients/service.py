"""Client profiles. Reading needs `READ`, writing `MANAGE_CLIENTS`; functions flush, never commit.

Events carry the client's id and the names of the fields that changed, never their values: the outbox is
read by integrations, and PHI leaves only through paths that are audited for it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from medspa.clients.models import Client
from medspa.clients.schemas import ClientCreate, ClientRead, ClientUpdate
from medspa.kit import audit_trail, clock
from medspa.kit.crud import get_owned, list_owned
from medspa.kit.outbox import record_event
from medspa.kit.schemas import Page
from medspa.security.actors import Actor, Permission, require


def email_key(email: str | None) -> str | None:
    """The lookup form of an email address (case-insensitive)."""
    return email.strip().lower() if email else None


def phone_key(phone: str | None) -> str | None:
    """The lookup form of a phone number: its digits, so `+1 (555) 010-0100` finds `15550100100`."""
    return re.sub(r"[^\d]", "", phone) or None if phone else None


def _client(session: Session, actor: Actor, client_id: uuid.UUID) -> Client:
    return get_owned(session, Client, actor.organization_id, client_id, "client")


def create_client(session: Session, *, actor: Actor, data: ClientCreate) -> ClientRead:
    """Register a client. Emits `client.created` (id only)."""
    require(actor, Permission.MANAGE_CLIENTS)
    now = clock.now()
    client = Client(
        organization_id=actor.organization_id,
        **data.model_dump(),
        email_key=email_key(data.email),
        phone_key=phone_key(data.phone),
        created_at=now,
        updated_at=now,
    )
    session.add(client)
    session.flush()
    record_event(session, actor, "client.created", client.id, {"id": str(client.id)})
    return ClientRead.model_validate(client)


def get_client(session: Session, *, actor: Actor, client_id: uuid.UUID) -> ClientRead:
    """The client's profile (PHI); the read is audited."""
    require(actor, Permission.READ)
    client = ClientRead.model_validate(_client(session, actor, client_id))
    audit_trail.record_read(session, actor, "client", [client.id])
    return client


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
    """Clients by name; `email` and `phone` filter by exact match (case and punctuation ignored). The
    read of the clients listed is audited (a search by email or phone says so, without the value)."""
    require(actor, Permission.READ)
    filters: list[ColumnElement[bool]] = [] if include_inactive else [Client.is_active.is_(True)]
    if email is not None:
        filters.append(Client.email_key == email_key(email))
    if phone is not None:
        filters.append(Client.phone_key == phone_key(phone))
    rows, total = list_owned(
        session,
        Client,
        actor.organization_id,
        *filters,
        order_by=(Client.created_at, Client.id),
        limit=limit,
        offset=offset,
    )
    items = [ClientRead.model_validate(c) for c in rows]
    searched = [name for name, value in (("email", email), ("phone", phone)) if value is not None]
    detail = f"search by {' and '.join(searched)}" if searched else "list"
    audit_trail.record_read(session, actor, "client", [c.id for c in items], detail=detail)
    return Page(items=items, total=total, limit=limit, offset=offset)


def client_names(
    session: Session, *, actor: Actor, client_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Display names ("first last") of the given clients, by id, in one query: for lists such as the day
    view that show many appointments. Ids of other organizations (or unknown ids) are simply absent.
    The read of the names found is audited."""
    require(actor, Permission.READ)
    if not client_ids:
        return {}
    query = select(Client.id, Client.first_name, Client.last_name).where(
        Client.organization_id == actor.organization_id, Client.id.in_(set(client_ids))
    )
    names = {row.id: f"{row.first_name} {row.last_name}" for row in session.execute(query)}
    audit_trail.record_read(session, actor, "client", names, detail="names")
    return names


def update_client(session: Session, *, actor: Actor, client_id: uuid.UUID, data: ClientUpdate) -> ClientRead:
    """Change the fields given; null clears `email`, `phone` and `date_of_birth` (`ClientUpdate`).
    Emits `client.updated` with the names of the changed fields."""
    require(actor, Permission.MANAGE_CLIENTS)
    client = _client(session, actor, client_id)
    changed = []
    for key, value in data.model_dump(exclude_unset=True).items():
        if getattr(client, key) != value:
            setattr(client, key, value)
            changed.append(key)
    client.email_key = email_key(client.email)
    client.phone_key = phone_key(client.phone)
    client.updated_at = clock.now()
    session.flush()
    record_event(
        session, actor, "client.updated", client.id, {"id": str(client.id), "fields": sorted(changed)}
    )
    return ClientRead.model_validate(client)


def deactivate_client(session: Session, *, actor: Actor, client_id: uuid.UUID) -> ClientRead:
    require(actor, Permission.MANAGE_CLIENTS)
    client = _client(session, actor, client_id)
    client.is_active = False
    client.updated_at = clock.now()
    session.flush()
    record_event(session, actor, "client.deactivated", client.id, {"id": str(client.id)})
    return ClientRead.model_validate(client)
