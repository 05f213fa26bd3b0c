"""Polling connected systems: where a connection's API is and with which account and key (sealed), and
each stream's checkpoint (how far polling got), so a poll interrupted mid-way resumes where it stopped.

Revision ID: fb72c8419c3a
Revises: 6f1b3d8e2c47
Create Date: 2026-12-05 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "fb72c8419c3a"
down_revision = "6f1b3d8e2c47"
branch_labels = None
depends_on = None

RULE = (
    "current_setting('app.scope', true) = 'system'"
    " OR organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid"
)


def upgrade() -> None:
    with op.batch_alter_table("integration_connections") as table:
        table.add_column(sa.Column("poll_base_url", sa.String(length=2000), nullable=True))
        table.add_column(sa.Column("poll_account", sa.String(length=100), nullable=True))
        table.add_column(sa.Column("poll_key_sealed", sa.Text(), nullable=True))
    op.create_table(
        "integration_checkpoints",
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column(
            "position",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["integration_connections.id"],
            name=op.f("fk_integration_checkpoints_connection_id_integration_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_checkpoints")),
        sa.UniqueConstraint("connection_id", "stream", name="uq_integration_checkpoints_stream"),
    )
    op.create_index(
        op.f("ix_integration_checkpoints_organization_id"),
        "integration_checkpoints",
        ["organization_id"],
        unique=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE integration_checkpoints ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE integration_checkpoints FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON integration_checkpoints USING ({RULE}) WITH CHECK ({RULE})"
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_integration_checkpoints_organization_id"), table_name="integration_checkpoints")
    op.drop_table("integration_checkpoints")
    with op.batch_alter_table("integration_connections") as table:
        table.drop_column("poll_key_sealed")
        table.drop_column("poll_account")
        table.drop_column("poll_base_url")
