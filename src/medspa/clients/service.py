"""Client profiles. Reading needs `READ`, writing `MANAGE_CLIENTS`; functions flush, never commit.

The PHI fields are sealed in the database (`clients.phi`, ADR 17): they are opened here, for the actor
who asked, and never leave this module in any other form than `ClientRead`. Events carry the client's
id and the names of the fields that changed, never their values: the outbox is read by integrations.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from medspa.clients import ledger, phi
from medspa.clients.models import PHI_FIELDS, Client, ClientErasure
from medspa.clients.schemas import (
    ClientCreate,
    ClientErasureRead,
    ClientRead,
    ClientUpdate,
    ConsentChange,
    ErasureRequest,
)
from medspa.kit import audit_trail, clock
from medspa.kit.crud import get_owned, list_owned
from medspa.kit.errors import ConflictError, PermissionDeniedError
from medspa.kit.outbox import record_event, record_events
from medspa.kit.schemas import Page
from medspa.security.actors import Actor, require, system_actor


def _client(session: Session, actor: Actor, client_id: uuid.UUID, *, lock: bool = False) -> Client:
    """The organization's client; with `lock`, its row locked for this transaction (on PostgreSQL), so
    that a change and an erasure of one client happen one after the other."""
    return get_owned(session, Client, actor.organization_id, client_id, "client", lock=lock)


def _read(session: Session, actor: Actor, client: Client) -> ClientRead:
    """The client as the actor may see them: without the clinical fields (date of birth, preferences,
    notes: null) for a role the permission matrix does not let read them (marketing)."""
    read = phi.read(session, client)
    if actor.can("clients", "read_clinical"):
        return read
    return read.model_copy(update={"date_of_birth": None, "preferences": None, "notes": None})


def _not_erased(client: Client) -> None:
    if client.erased_at is not None:
        raise ConflictError(f"this client was erased on {client.erased_at:%Y-%m-%d}")


def create_client(session: Session, *, actor: Actor, data: ClientCreate) -> ClientRead:
    """Register a client. Emits `client.created` (id only)."""
    (client,) = _register(session, actor, [data])
    return _read(session, actor, client)


def create_clients(session: Session, *, actor: Actor, data: Sequence[ClientCreate]) -> list[uuid.UUID]:
    """Register several clients, as `create_client` registers each, in a few statements for them all
    (the rows, their search terms, their events): for a connected system's new clients arriving
    together. Their ids, in the order of `data`."""
    return [client.id for client in _register(session, actor, data)]


def _register(session: Session, actor: Actor, data: Sequence[ClientCreate]) -> list[Client]:
    require(actor, "clients", "create")
    now = clock.now()
    made: list[tuple[Client, dict[str, Any]]] = []
    for one in data:
        values = one.model_dump(exclude={"consent"})
        consent = one.consent
        client = phi.new_client(
            session,
            actor.organization_id,
            values,
            is_active=True,
            consent_email=one.email is not None if consent.email is None else consent.email,
            consent_sms=bool(consent.sms),
            consent_marketing=bool(consent.marketing),
            consent_updated_at=now,
            created_at=now,
            updated_at=now,
        )
        made.append((client, values))
    session.add_all([client for client, _ in made])
    session.flush()
    phi.add_search_terms_of(session, made)
    record_events(
        session, actor, "client.created", [(client.id, {"id": str(client.id)}) for client, _ in made]
    )
    return [client for client, _ in made]


def get_client(session: Session, *, actor: Actor, client_id: uuid.UUID, lock: bool = False) -> ClientRead:
    """The client; with `lock`, their row stays locked until the transaction ends (on PostgreSQL), so
    that decisions about one client (is one more message within their caps?) are taken in turn."""
    require(actor, "clients", "read")
    client = _read(session, actor, _client(session, actor, client_id, lock=lock))
    audit_trail.record_read(session, actor, "client", [client.id])
    return client


def is_active(session: Session, *, actor: Actor, client_id: uuid.UUID, lock: bool = False) -> bool:
    """Whether the client may be booked (not deactivated, not erased), without opening their PHI: what
    the booking path asks of every booking. With `lock`, the client's row stays locked until the
    transaction ends (PostgreSQL), so that decisions about one client (a membership) are taken in turn.
    NotFoundError for an unknown or foreign id."""
    require(actor, "clients", "read")
    return _client(session, actor, client_id, lock=lock).is_active


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
    require(actor, "clients", "read")
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
    items = [_read(session, actor, c) for c in rows]
    searched = [name for name, value in (("email", email), ("phone", phone)) if value is not None]
    detail = f"search by {' and '.join(searched)}" if searched else "list"
    audit_trail.record_read(session, actor, "client", [c.id for c in items], detail=detail)
    return Page(items=items, total=total, limit=limit, offset=offset)


def active_ids_with_email(session: Session, *, actor: Actor, email: str, limit: int = 2) -> list[uuid.UUID]:
    """The ids (only: nothing is decrypted or shown) of up to `limit` active clients with this e-mail
    (case ignored), oldest first: for matching an outside record to ours."""
    require(actor, "clients", "read")
    key = phi.email_index(session, actor.organization_id, email)
    if key is None:
        return []
    return list(
        session.scalars(
            select(Client.id)
            .where(
                Client.organization_id == actor.organization_id,
                Client.is_active.is_(True),
                Client.email_key == key,
            )
            .order_by(Client.created_at, Client.id)
            .limit(limit)
        )
    )


def emails_matching(session: Session, *, actor: Actor, emails: Collection[str]) -> set[str]:
    """Those of `emails` that an active client has, or that another of `emails` repeats (case ignored):
    the ones a new client could not take without first asking which client is meant. Nothing is
    decrypted or shown; one query for them all."""
    require(actor, "clients", "read")
    keyed: dict[str, list[str]] = {}
    for email in emails:
        key = phi.email_index(session, actor.organization_id, email)
        if key is not None:
            keyed.setdefault(key, []).append(email)
    matching = {email for same in keyed.values() if len(same) > 1 for email in same}
    if keyed:
        found = session.scalars(
            select(Client.email_key).where(
                Client.organization_id == actor.organization_id,
                Client.is_active.is_(True),
                Client.email_key.in_(keyed),
            )
        )
        matching |= {email for key in found if key is not None for email in keyed[key]}
    return matching


def search_clients(
    session: Session, *, actor: Actor, query: str, limit: int = 20, offset: int = 0
) -> Page[ClientRead]:
    """Active clients found by what the front desk typed (`phi.query_strings`): any prefix of a word of
    the name or of the e-mail, or a phone number in any format, or its start or last digits; every word
    typed must match. Best match first (`phi.rank`)."""
    require(actor, "clients", "read")
    ids = phi.matching_ids(session, actor.organization_id, query)
    if not ids:
        audit_trail.record_read(session, actor, "client", [], detail="search")
        return Page(items=[], total=0, limit=limit, offset=offset)
    rows = session.scalars(
        select(Client).where(
            Client.organization_id == actor.organization_id, Client.id.in_(ids), Client.is_active.is_(True)
        )
    ).all()
    ranked = phi.rank(query, [_read(session, actor, c) for c in rows])
    shown = ranked[offset : offset + limit]
    audit_trail.record_read(session, actor, "client", [c.id for c in shown], detail="search")
    return Page(items=shown, total=len(ranked), limit=limit, offset=offset)


def find_duplicates(session: Session, *, actor: Actor, data: ClientCreate) -> list[ClientRead]:
    """Active clients that `data` may be a second record of: the same e-mail, the same phone, or the same
    first and last name and birth date. Ordered as registered."""
    require(actor, "clients", "read")
    email_key = phi.email_index(session, actor.organization_id, data.email)
    phone_key = phi.phone_index(session, actor.organization_id, data.phone)
    same = [
        column == key for column, key in ((Client.email_key, email_key), (Client.phone_key, phone_key)) if key
    ]
    ids: set[uuid.UUID] = set()
    if same:
        ids |= set(
            session.scalars(
                select(Client.id).where(Client.organization_id == actor.organization_id, or_(*same))
            )
        )
    if data.date_of_birth is not None:
        ids |= phi.matching_ids(session, actor.organization_id, f"{data.first_name} {data.last_name}")
    rows = session.scalars(
        select(Client)
        .where(
            Client.organization_id == actor.organization_id, Client.id.in_(ids), Client.is_active.is_(True)
        )
        .order_by(Client.created_at, Client.id)
    ).all()
    found = []
    for row in rows:
        read = _read(session, actor, row)
        same_person = (read.first_name.casefold(), read.last_name.casefold(), read.date_of_birth) == (
            data.first_name.casefold(),
            data.last_name.casefold(),
            data.date_of_birth,
        )
        same_contact = (email_key and row.email_key == email_key) or (
            phone_key and row.phone_key == phone_key
        )
        if same_person or same_contact:
            found.append(read)
    audit_trail.record_read(session, actor, "client", [c.id for c in found], detail="duplicate check")
    return found


def client_names(
    session: Session, *, actor: Actor, client_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Display names ("first last") of the given clients, by id, in one query: for lists such as the day
    view that show many appointments. Ids of other organizations (or unknown ids) are simply absent."""
    require(actor, "clients", "read")
    if not client_ids:
        return {}
    rows = session.scalars(
        select(Client).where(Client.organization_id == actor.organization_id, Client.id.in_(set(client_ids)))
    )
    names = {client.id: phi.display_name(session, client) for client in rows}
    audit_trail.record_read(session, actor, "client", names, detail="names")
    return names


def provider_notes(
    session: Session, *, actor: Actor, client_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """What the provider should know before the visit, by client id, for those who have something: the
    `notes_for_provider` preference and the client's notes, in one line. Empty for a role that may not
    read clinical fields; erased clients have nothing."""
    require(actor, "clients", "read")
    if not client_ids or not actor.can("clients", "read_clinical"):
        return {}
    rows = session.scalars(
        select(Client).where(
            Client.organization_id == actor.organization_id,
            Client.id.in_(set(client_ids)),
            Client.erased_at.is_(None),
        )
    )
    notes: dict[uuid.UUID, str] = {}
    for client in rows:
        values = phi.open_values(session, client)
        said = [str((values["preferences"] or {}).get("notes_for_provider") or "").strip()]
        said.append(str(values["notes"] or "").strip())
        line = " · ".join(dict.fromkeys(part for part in said if part))
        if line:
            notes[client.id] = line
    audit_trail.record_read(session, actor, "client", sorted(notes, key=str), detail="provider notes")
    return notes


def update_client(session: Session, *, actor: Actor, client_id: uuid.UUID, data: ClientUpdate) -> ClientRead:
    """Change the fields given; null clears `email`, `phone` and `date_of_birth` (`ClientUpdate`).
    Emits `client.updated` with the names of the changed fields."""
    require(actor, "clients", "update")
    client = _client(session, actor, client_id, lock=True)
    _not_erased(client)
    current = phi.open_values(session, client)
    changes = {
        key: value
        for key, value in data.model_dump(exclude_unset=True).items()
        if key in PHI_FIELDS and current[key] != value
    }
    if changes:
        phi.seal(session, client, changes)
    consented = _change_consent(client, data.consent) if data.consent is not None else []
    client.updated_at = clock.now()
    session.flush()
    fields = sorted(changes) + [f"consent.{channel}" for channel in consented]
    record_event(session, actor, "client.updated", client.id, {"id": str(client.id), "fields": fields})
    return _read(session, actor, client)


def _change_consent(client: Client, change: ConsentChange) -> list[str]:
    """Apply the permissions given; the names of those that changed."""
    changed = []
    for channel, value in change.model_dump(exclude_none=True).items():
        if getattr(client, f"consent_{channel}") != value:
            setattr(client, f"consent_{channel}", value)
            changed.append(channel)
    if changed:
        client.consent_updated_at = clock.now()
    return changed


def change_consent(
    session: Session, *, actor: Actor, client_id: uuid.UUID, change: ConsentChange, source: str
) -> ClientRead:
    """Change a client's contact permissions as they asked (`source`: "sms reply STOP", "unsubscribe
    link", "front desk"); takes effect for every message not yet sent. Emits `client.consent_changed`
    with the permissions that changed and the source (no PHI). ConflictError for an erased client."""
    require(actor, "clients", "update")
    client = _client(session, actor, client_id, lock=True)
    _not_erased(client)
    changed = _change_consent(client, change)
    session.flush()
    if changed:
        record_event(
            session,
            actor,
            "client.consent_changed",
            client.id,
            {"id": str(client.id), "fields": changed, "source": source[:200]},
        )
    return _read(session, actor, client)


def deactivate_client(session: Session, *, actor: Actor, client_id: uuid.UUID) -> ClientRead:
    require(actor, "clients", "deactivate")
    client = _client(session, actor, client_id, lock=True)
    client.is_active = False
    client.updated_at = clock.now()
    session.flush()
    record_event(session, actor, "client.deactivated", client.id, {"id": str(client.id)})
    return _read(session, actor, client)


def request_erasure(
    session: Session, *, actor: Actor, client_id: uuid.UUID, data: ErasureRequest
) -> ClientErasureRead:
    """Ask that a client be erased (right to delete). Nothing is erased until a manager approves
    (`decide_erasure`). One open request per client. Emits `client.erasure_requested`."""
    require(actor, "clients", "request_erasure")
    client = _client(session, actor, client_id, lock=True)
    _not_erased(client)
    open_request = session.scalar(
        select(ClientErasure.id).where(
            ClientErasure.client_id == client.id, ClientErasure.state == "requested"
        )
    )
    if open_request is not None:
        raise ConflictError("this client has an erasure request waiting for a manager already")
    erasure = ClientErasure(
        organization_id=actor.organization_id,
        client_id=client.id,
        state="requested",
        reason=data.reason,
        requested_by=actor.label,
        requested_by_id=actor.actor_id,
        requested_at=clock.now(),
    )
    session.add(erasure)
    session.flush()
    record_event(
        session,
        actor,
        "client.erasure_requested",
        client.id,
        {"id": str(client.id), "erasure_id": str(erasure.id)},
    )
    return ClientErasureRead.model_validate(erasure)


def list_erasures(
    session: Session, *, actor: Actor, state: str | None = None, limit: int = 50, offset: int = 0
) -> Page[ClientErasureRead]:
    """Erasure requests, newest first; `state` filters (`requested`, `erased`, `refused`)."""
    require(actor, "clients", "list_erasures")
    filters = [] if state is None else [ClientErasure.state == state]
    rows, total = list_owned(
        session,
        ClientErasure,
        actor.organization_id,
        *filters,
        order_by=(ClientErasure.requested_at.desc(), ClientErasure.id),
        limit=limit,
        offset=offset,
    )
    return Page(
        items=[ClientErasureRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


def decide_erasure(
    session: Session, *, actor: Actor, erasure_id: uuid.UUID, approve: bool
) -> ClientErasureRead:
    """A manager approves (the client is erased now) or refuses an erasure request. Whoever asked may
    not approve their own request. Approving destroys the client's record key and empties its PHI
    (`phi.shred`), leaving a tombstone, and writes the erasure ledger before the transaction commits.
    Emits `client.erased` or `client.erasure_refused`."""
    require(actor, "clients", "erase")
    erasure = get_owned(
        session, ClientErasure, actor.organization_id, erasure_id, "erasure request", lock=True
    )
    if erasure.state != "requested":
        raise ConflictError(f"this erasure request was decided already ({erasure.state})")
    if approve and actor.actor_id is not None and actor.actor_id == erasure.requested_by_id:
        raise PermissionDeniedError("another manager must approve an erasure you asked for")
    now = clock.now()
    erasure.decided_by, erasure.decided_at = actor.label, now
    if not approve:
        erasure.state = "refused"
        session.flush()
        record_event(
            session, actor, "client.erasure_refused", erasure.client_id, {"id": str(erasure.client_id)}
        )
        return ClientErasureRead.model_validate(erasure)
    client = _client(session, actor, erasure.client_id, lock=True)
    _erase(session, client, now)
    erasure.state = "erased"
    session.flush()
    ledger.append(ledger.Entry(actor.organization_id, client.id, erasure.id, now))
    record_event(
        session, actor, "client.erased", client.id, {"id": str(client.id), "erasure_id": str(erasure.id)}
    )
    return ClientErasureRead.model_validate(erasure)


def _erase(session: Session, client: Client, when: datetime) -> None:
    phi.shred(session, client)
    client.erased_at = when
    client.updated_at = when


def replay_erasure(session: Session, entry: ledger.Entry) -> bool:
    """Erase again a client the ledger names, as after restoring a backup taken before its erasure.
    False when there is nothing to do (erased already, or not in this database)."""
    client = session.get(Client, entry.client_id, with_for_update=True, populate_existing=True)
    if client is None or client.organization_id != entry.organization_id or client.erased_at is not None:
        return False
    _erase(session, client, entry.erased_at)
    erasure = session.get(ClientErasure, entry.erasure_id)
    if erasure is None:
        session.add(
            ClientErasure(
                id=entry.erasure_id,
                organization_id=entry.organization_id,
                client_id=client.id,
                state="erased",
                reason="erased again from the erasure ledger after a restore",
                requested_by="system:restore",
                requested_at=entry.erased_at,
                decided_by="system:restore",
                decided_at=entry.erased_at,
            )
        )
    else:
        erasure.state, erasure.decided_at = "erased", entry.erased_at
    session.flush()
    record_event(
        session,
        system_actor(entry.organization_id, "restore"),
        "client.erased",
        client.id,
        {"id": str(client.id), "erasure_id": str(entry.erasure_id)},
    )
    return True
