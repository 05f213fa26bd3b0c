"""The links in messages (an offer to accept, a way to unsubscribe): unguessable, and unalterable
without the organization's key."""

from __future__ import annotations

import hmac
import uuid

from sqlalchemy.orm import Session

from medspa.config import load_settings
from medspa.security import keys


def link_token(session: Session, organization_id: uuid.UUID, purpose: str, record_id: uuid.UUID) -> str:
    """A link's secret part: the record's id and a keyed signature of it (under the organization's
    `index` data key; `purpose` tells an offer's link from an unsubscribe link)."""
    key = keys.data_key(session, organization_id, "index")
    return f"{record_id.hex}.{keys.blind_index(key, f'{purpose}-link', str(record_id))}"


def record_id_of(token: str) -> uuid.UUID | None:
    """The record a token names (not yet verified: `is_genuine`), or None for a malformed one."""
    record_hex, dot, _ = token.partition(".")
    if not dot or len(token) > 200:
        return None
    try:
        return uuid.UUID(hex=record_hex)
    except ValueError:
        return None


def is_genuine(session: Session, organization_id: uuid.UUID, purpose: str, token: str) -> bool:
    record_id = record_id_of(token)
    if record_id is None:
        return False
    return hmac.compare_digest(link_token(session, organization_id, purpose, record_id), token)


def public_link(kind: str, token: str) -> str:
    """The address a client follows: `MEDSPA_PUBLIC_URL` (where clients reach the server) / kind / token."""
    return f"{load_settings().public_url.rstrip('/')}/{kind}/{token}"
