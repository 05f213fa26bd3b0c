"""Merged client records: a second record of a client, merged into the one kept, points at it and stays
as the history of what it held.

Revision ID: 3b8e1f5a7c92
Revises: 7d2f4a6c8e10
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3b8e1f5a7c92"
down_revision = "7d2f4a6c8e10"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            "fk_clients_merged_into_id_clients", "clients", ["merged_into_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_constraint("fk_clients_merged_into_id_clients", type_="foreignkey")
        batch_op.drop_column("merged_at")
        batch_op.drop_column("merged_into_id")
