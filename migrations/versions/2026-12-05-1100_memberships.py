"""Memberships: a client's monthly plan from its start to its end, at most one active per client (a
partial unique index, on SQLite and PostgreSQL alike). Row-level security on the new table (ADR 21).

Revision ID: 9c4d2e7a1b55
Revises: 3b8e1f5a7c92
Create Date: 2026-12-05 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "9c4d2e7a1b55"
down_revision = "3b8e1f5a7c92"
branch_labels = None
depends_on = None

RULE = (
    "current_setting('app.scope', true) = 'system'"
    " OR organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid"
)
ACTIVE = sa.text("ended_on IS NULL")


def upgrade() -> None:
    op.create_table(
        "memberships",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("location_id", sa.Uuid(), nullable=True),
        sa.Column("plan", sa.String(length=200), nullable=False),
        sa.Column("monthly_price_cents", sa.Integer(), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_memberships_client_id_clients")),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_memberships_location_id_locations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_memberships_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_memberships_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index(
            "ix_memberships_organization_id_ended_on", ["organization_id", "ended_on"], unique=False
        )
        batch_op.create_index(
            "uq_memberships_one_active_per_client",
            ["organization_id", "client_id"],
            unique=True,
            sqlite_where=ACTIVE,
            postgresql_where=ACTIVE,
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE memberships ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE memberships FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON memberships USING ({RULE}) WITH CHECK ({RULE})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY IF EXISTS tenant_isolation ON memberships")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index("uq_memberships_one_active_per_client")
        batch_op.drop_index("ix_memberships_organization_id_ended_on")
        batch_op.drop_index(batch_op.f("ix_memberships_organization_id"))
        batch_op.drop_index(batch_op.f("ix_memberships_client_id"))
    op.drop_table("memberships")
