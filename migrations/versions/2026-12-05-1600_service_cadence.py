"""A service's follow-up window (`follow_up_days_max`, the latest day) and its course of sessions
(`series_sessions` visits `series_interval_days` apart).

Revision ID: 5c8a1e3f7b22
Revises: 2b7e9d4a6c13
Create Date: 2026-12-05 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "5c8a1e3f7b22"
down_revision = "2b7e9d4a6c13"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("follow_up_days_max", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("series_sessions", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("series_interval_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("series_interval_days")
        batch.drop_column("series_sessions")
        batch.drop_column("follow_up_days_max")
