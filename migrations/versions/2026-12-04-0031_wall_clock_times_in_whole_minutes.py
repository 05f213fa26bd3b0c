"""Weekly spans (opening hours, shifts, breaks) in whole minutes, as input now requires (ADR 9).

Before, a time such as 09:00:30 was accepted and stored, while availability worked in whole minutes
(it offered 09:00). Seconds are dropped, which keeps what availability did; a span that this leaves
empty is deleted.

Revision ID: 8e3b6f2d4c10
Revises: 5d1f0c7a9b21
Create Date: 2026-12-04 00:31:00
"""

from __future__ import annotations

from datetime import time

import sqlalchemy as sa
from alembic import op

revision = "8e3b6f2d4c10"
down_revision = "5d1f0c7a9b21"
branch_labels = None
depends_on = None

SPANS = {
    "opening_hours": ("opens_at", "closes_at"),
    "shifts": ("starts_at", "ends_at"),
    "breaks": ("starts_at", "ends_at"),
}


def _whole_minute(value: time) -> time:
    return value.replace(second=0, microsecond=0)


def upgrade() -> None:
    connection = op.get_bind()
    for name, (start, end) in SPANS.items():
        table = sa.table(
            name, sa.column("id", sa.Uuid()), sa.column(start, sa.Time()), sa.column(end, sa.Time())
        )
        for row in connection.execute(sa.select(table)).all():
            starts, ends = row[1], row[2]
            if (starts, ends) == (_whole_minute(starts), _whole_minute(ends)):
                continue
            key = table.c.id == row[0]
            if _whole_minute(ends) <= _whole_minute(starts):
                connection.execute(sa.delete(table).where(key))
            else:
                values = {start: _whole_minute(starts), end: _whole_minute(ends)}
                connection.execute(sa.update(table).where(key).values(values))


def downgrade() -> None:
    pass  # the seconds dropped are not kept
