"""Controlled overbooking: the explanation an overbooked appointment carries while it shares its
provider's time, and each location's cap on the expected overflow minutes per provider and day (0: off).

Revision ID: 7d2f4a6c8e10
Revises: 5a7c9e1b3d40
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "7d2f4a6c8e10"
down_revision = "5a7c9e1b3d40"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("overbooking", sa.String(length=500), nullable=True))
    with op.batch_alter_table("engagement_policies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("overbooking_cap_minutes", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("engagement_policies", schema=None) as batch_op:
        batch_op.drop_column("overbooking_cap_minutes")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("overbooking")
