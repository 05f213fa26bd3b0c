"""Right to delete: erasure requests and the tombstone of an erased client (ADR 17).

Revision ID: 4e8a1c7b2d95
Revises: c4e1a9d3b7f2
Create Date: 2026-12-04 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4e8a1c7b2d95"
down_revision = "c4e1a9d3b7f2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "client_erasures",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=320), nullable=False),
        sa.Column("requested_by_id", sa.Uuid(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_client_erasures_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_erasures")),
    )
    with op.batch_alter_table("client_erasures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_client_erasures_client_id"), ["client_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_client_erasures_organization_id"), ["organization_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("client_erasures")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
