"""The next-best-action recommendation beside each client's retention score.

Revision ID: 5d1e6a7b9c20
Revises: 8e3b6f2d4c10
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "5d1e6a7b9c20"
down_revision = "8e3b6f2d4c10"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("client_retention_scores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_action", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("next_action_reason", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("next_action_send_after", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client_retention_scores", schema=None) as batch_op:
        batch_op.drop_column("next_action_send_after")
        batch_op.drop_column("next_action_reason")
        batch_op.drop_column("next_action")
