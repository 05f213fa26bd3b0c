"""Merging a second record of a client into the one kept (a manager's correction of a duplicate).

Everything the second record held moves to the kept one in one transaction: its appointments (each with
a line in its history), waitlist entries, messages and waitlist offers, and memberships. The kept record
takes the contact fields it lacks (e-mail, phone, birth date) and the preferences it has no value for;
the second record's notes are appended to its notes. Contact permissions are the stricter of the two
records' for each channel (a STOP given on either holds). The second record becomes inactive and points
at the kept one (`merged_into_id`); its own sealed fields stay, the history of what it held, but it is
no longer found by search or by the duplicate check. Its retention and membership scores are dropped;
the kept client's are refreshed from the `client.merged` event.

Refused (nothing written): the same record twice, an erased record, a deactivated record to keep, a
record merged already, an open erasure request on either, an active membership on each, and two
different birth dates (two people, not one person twice).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from medspa.clients import phi
from medspa.clients.models import PHI_FIELDS, Client, ClientErasure, ClientSearchTerm
from medspa.clients.schemas import ClientRead
from medspa.clients.service import _client, _read
from medspa.engagement import service as engagement
from medspa.kit import clock
from medspa.kit.errors import ConflictError, ValidationFailedError
from medspa.kit.outbox import record_event
from medspa.memberships import service as memberships
from medspa.retention import service as retention
from medspa.scheduling import service as scheduling
from medspa.security.actors import Actor, require

# Filled from the second record when the kept one has none.
CONTACT_FIELDS = ("email", "phone", "date_of_birth")


def _mergeable(session: Session, client: Client, which: str) -> None:
    if client.erased_at is not None:
        raise ConflictError(f"the {which} record was erased on {client.erased_at:%Y-%m-%d}")
    if client.merged_into_id is not None:
        raise ConflictError(f"the {which} record was merged into another already")
    waiting = session.scalar(
        select(ClientErasure.id).where(
            ClientErasure.client_id == client.id, ClientErasure.state == "requested"
        )
    )
    if waiting is not None:
        raise ConflictError(f"the {which} record has an erasure request waiting for a manager")


def _combined(kept: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """The kept record's PHI fields that change: contact fields it lacks, preferences it has no value
    for, the second record's notes appended."""
    if kept["date_of_birth"] and second["date_of_birth"] and kept["date_of_birth"] != second["date_of_birth"]:
        raise ConflictError(
            "the two records have different birth dates: they look like two people, not one person twice"
        )
    changes: dict[str, Any] = {
        f: second[f] for f in CONTACT_FIELDS if kept[f] is None and second[f] is not None
    }
    preferences = {**(second["preferences"] or {}), **(kept["preferences"] or {})}
    if preferences != (kept["preferences"] or {}):
        changes["preferences"] = preferences
    notes = (second["notes"] or "").strip()
    if notes and notes not in (kept["notes"] or ""):
        changes["notes"] = f"{kept['notes']}\n{notes}".strip() if kept["notes"] else notes
    return changes


def _combine_consent(
    kept: Client, kept_values: dict[str, Any], second: Client, second_values: dict[str, Any], now: datetime
) -> None:
    """The stricter permission of the two records for each kind of message: one record's refusal (a STOP
    given there) holds for the client. A record without the address a channel needs (no e-mail, no
    phone) has no say about that channel."""
    for channel, address in (("email", "email"), ("sms", "phone"), ("marketing", None)):
        votes = [
            bool(getattr(client, f"consent_{channel}"))
            for client, values in ((kept, kept_values), (second, second_values))
            if address is None or values[address] is not None
        ]
        allowed = all(votes) if votes else bool(getattr(kept, f"consent_{channel}"))
        if allowed != getattr(kept, f"consent_{channel}"):
            setattr(kept, f"consent_{channel}", allowed)
            kept.consent_updated_at = now


def merge_clients(
    session: Session, *, actor: Actor, keep_id: uuid.UUID, duplicate_id: uuid.UUID
) -> ClientRead:
    """Merge the record `duplicate_id` into `keep_id` (see the module). Needs `("clients", "merge")`
    (managers, owners). Emits `client.merged` with the counts of what moved (no PHI); returns the kept
    client."""
    require(actor, "clients", "merge")
    if keep_id == duplicate_id:
        raise ValidationFailedError("duplicate_id", "a record cannot be merged into itself")
    # Both rows locked, in one order whoever merges, so two merges of the same pair wait in turn.
    rows = {i: _client(session, actor, i, lock=True) for i in sorted((keep_id, duplicate_id), key=str)}
    kept, second = rows[keep_id], rows[duplicate_id]
    _mergeable(session, kept, "kept")
    if not kept.is_active:
        raise ConflictError("the kept record is deactivated: keep the active one and merge the other into it")
    _mergeable(session, second, "second")
    kept_values, second_values = phi.open_values(session, kept), phi.open_values(session, second)
    changes = _combined(kept_values, second_values)
    now = clock.now()
    moved = {
        **scheduling.reassign_client(session, actor=actor, from_client_id=second.id, to_client_id=kept.id),
        **engagement.reassign_client(session, actor=actor, from_client_id=second.id, to_client_id=kept.id),
        **memberships.reassign_client(session, actor=actor, from_client_id=second.id, to_client_id=kept.id),
    }
    retention.forget_score(session, actor=actor, client_id=second.id)
    if changes:
        phi.seal(session, kept, changes)
    _combine_consent(kept, kept_values, second, second_values, now)
    kept.updated_at = now
    second.is_active, second.merged_into_id, second.merged_at, second.updated_at = False, kept.id, now, now
    session.execute(delete(ClientSearchTerm).where(ClientSearchTerm.client_id == second.id))
    session.flush()
    fields = sorted(f for f in changes if f in PHI_FIELDS)
    record_event(
        session,
        actor,
        "client.merged",
        kept.id,
        {
            "id": str(kept.id),
            "client_id": str(kept.id),
            "merged_id": str(second.id),
            "fields": fields,
            **moved,
        },
    )
    return _read(session, actor, kept)
