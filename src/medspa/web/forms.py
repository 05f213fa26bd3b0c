"""What the pages share: parsing form and query values leniently, and list sizes."""

from __future__ import annotations

import uuid
from datetime import date

LIST_LIMIT = 500


def form_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def form_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None
