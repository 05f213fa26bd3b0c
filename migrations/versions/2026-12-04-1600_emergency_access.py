"""Break-glass emergency access to a location outside a user's own, with row-level security like every
tenant table (ADR 21).

Revision ID: 8e4b6d0f3a29
Revises: 7d3a5c9e2f18
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "8e4b6d0f3a29"
down_revision = "7d3a5c9e2f18"
branch_labels = None
depends_on = None

RULE = (
    "current_setting('app.scope', true) = 'system'"
    " OR organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid"
)


def upgrade() -> None:
    op.create_table(
        "emergency_access",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("user_label", sa.String(length=200), nullable=False),
        sa.Column("location_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_emergency_access_location_id_locations")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_emergency_access_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergency_access")),
    )
    op.create_index("ix_emergency_access_user_id_expires_at", "emergency_access", ["user_id", "expires_at"])
    op.create_index(op.f("ix_emergency_access_organization_id"), "emergency_access", ["organization_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE emergency_access ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE emergency_access FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON emergency_access USING ({RULE}) WITH CHECK ({RULE})")


def downgrade() -> None:
    op.drop_table("emergency_access")
