"""Record identifiers: random UUIDs, so ids neither collide across tenants nor reveal counts."""

from __future__ import annotations

import uuid


def new_id() -> uuid.UUID:
    return uuid.uuid4()
