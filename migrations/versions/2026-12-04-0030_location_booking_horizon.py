"""A booking horizon per location: how many days ahead a booking may start (365 for existing ones).

Revision ID: 5d1f0c7a9b21
Revises: 6f1c2a9d0b37
Create Date: 2026-12-04 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "5d1f0c7a9b21"
down_revision = "6f1c2a9d0b37"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("locations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("booking_horizon_days", sa.Integer(), server_default="365", nullable=False)
        )


def downgrade() -> None:
    # Not in batch mode: SQLite drops the column in place, where rebuilding the table would trip over
    # the foreign keys that refer to locations.
    op.drop_column("locations", "booking_horizon_days")
