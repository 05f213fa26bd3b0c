"""Inbox rows waiting for something (a client not yet received, a mapping not yet made, a transient
failure) are tried again no sooner than `not_before`.

Revision ID: 2b7e9d4a6c13
Revises: fb72c8419c3a
Create Date: 2026-12-05 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2b7e9d4a6c13"
down_revision = "fb72c8419c3a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integration_inbox") as batch:
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("integration_inbox") as batch:
        batch.drop_column("not_before")
