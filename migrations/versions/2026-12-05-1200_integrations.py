"""The integration fabric's tables: connections to outside systems (their secrets sealed), the inbox of
their deliveries (bodies sealed, one row per source event), and links from their records to ours.

Revision ID: 9c4d2e7f1a05
Revises: 4e8a1c6d9f27
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "9c4d2e7f1a05"
down_revision = "4e8a1c6d9f27"
branch_labels = None
depends_on = None

TENANT_TABLES = ("integration_connections", "integration_inbox", "integration_links")
RULE = (
    "current_setting('app.scope', true) = 'system'"
    " OR organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid"
)


def upgrade() -> None:
    op.create_table(
        "integration_connections",
        sa.Column("connector", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("signature_header", sa.String(length=64), nullable=True),
        sa.Column("signature_encoding", sa.String(length=8), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_connections")),
    )
    op.create_index(
        op.f("ix_integration_connections_organization_id"),
        "integration_connections",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "integration_inbox",
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("source_event_id", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("source_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("body_sealed", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["integration_connections.id"],
            name=op.f("fk_integration_inbox_connection_id_integration_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_inbox")),
        sa.UniqueConstraint("connection_id", "source_event_id", name="uq_integration_inbox_source_event"),
    )
    op.create_index(
        "ix_integration_inbox_state_received_at", "integration_inbox", ["state", "received_at"], unique=False
    )
    op.create_index(
        op.f("ix_integration_inbox_organization_id"), "integration_inbox", ["organization_id"], unique=False
    )
    op.create_table(
        "integration_links",
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("source_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["integration_connections.id"],
            name=op.f("fk_integration_links_connection_id_integration_connections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_links")),
        sa.UniqueConstraint("connection_id", "kind", "external_id", name="uq_integration_links_external"),
    )
    op.create_index(
        op.f("ix_integration_links_organization_id"), "integration_links", ["organization_id"], unique=False
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({RULE}) WITH CHECK ({RULE})")


def downgrade() -> None:
    op.drop_index(op.f("ix_integration_links_organization_id"), table_name="integration_links")
    op.drop_table("integration_links")
    op.drop_index(op.f("ix_integration_inbox_organization_id"), table_name="integration_inbox")
    op.drop_index("ix_integration_inbox_state_received_at", table_name="integration_inbox")
    op.drop_table("integration_inbox")
    op.drop_index(op.f("ix_integration_connections_organization_id"), table_name="integration_connections")
    op.drop_table("integration_connections")
