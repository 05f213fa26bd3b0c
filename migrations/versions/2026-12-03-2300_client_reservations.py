"""One client, one place: every live appointment also reserves its client for its time.

Until now a client could be booked with two providers at once. From here each booking reserves its
client ("client" reservations, `resource_id` = the client) for the service's own time, so the same rule
that keeps a provider from double booking (the exclusion constraint on PostgreSQL) keeps a client in one
place. Appointments that hold their reservations now get their client's; where a client already has two
overlapping ones, the earlier-made keeps the reservation (PostgreSQL) and staff should resolve the other.

Revision ID: 6f1c2a9d0b37
Revises: c8955e15e8a2
Create Date: 2026-12-03 23:00:00
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "6f1c2a9d0b37"
down_revision = "c8955e15e8a2"
branch_labels = None
depends_on = None

BATCH = 1000
Instant = sa.DateTime(timezone=True)
appointments = sa.table(
    "appointments",
    sa.column("id", sa.Uuid()),
    sa.column("organization_id", sa.Uuid()),
    sa.column("location_id", sa.Uuid()),
    sa.column("client_id", sa.Uuid()),
    sa.column("starts_at", Instant),
    sa.column("ends_at", Instant),
    sa.column("created_at", Instant),
)
reservations = sa.table(
    "reservations",
    sa.column("id", sa.Uuid()),
    sa.column("organization_id", sa.Uuid()),
    sa.column("appointment_id", sa.Uuid()),
    sa.column("location_id", sa.Uuid()),
    sa.column("resource_kind", sa.String(16)),
    sa.column("resource_id", sa.Uuid()),
    sa.column("starts_at", Instant),
    sa.column("ends_at", Instant),
    sa.column("is_active", sa.Boolean()),
)


def upgrade() -> None:
    bind = op.get_bind()
    a, r = appointments.c, reservations.c
    live = (
        sa.select(a.organization_id, a.id, a.location_id, a.client_id, a.starts_at, a.ends_at)
        .join(reservations, r.appointment_id == a.id)
        .where(r.resource_kind == "provider", r.is_active.is_(True))
        .order_by(a.created_at, a.id)
    )
    if bind.dialect.name == "postgresql":
        insert = postgresql.insert(reservations).on_conflict_do_nothing()
    else:
        insert = sa.insert(reservations)
    rows = bind.execute(live).all()
    for first in range(0, len(rows), BATCH):
        batch = [
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id,
                "appointment_id": appointment_id,
                "location_id": location_id,
                "resource_kind": "client",
                "resource_id": client_id,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "is_active": True,
            }
            for organization_id, appointment_id, location_id, client_id, starts_at, ends_at in rows[
                first : first + BATCH
            ]
        ]
        bind.execute(insert, batch)


def downgrade() -> None:
    op.execute("DELETE FROM reservations WHERE resource_kind = 'client'")
