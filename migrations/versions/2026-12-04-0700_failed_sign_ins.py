"""Failed sign-ins, for the sign-in throttle (429 before any password hash is computed).

Revision ID: 7a2d4c6e8f10
Revises: 5f1c0e9a7d21
Create Date: 2026-12-04 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "7a2d4c6e8f10"
down_revision = "5f1c0e9a7d21"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failed_sign_ins",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_key", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failed_sign_ins")),
    )
    with op.batch_alter_table("failed_sign_ins", schema=None) as batch_op:
        batch_op.create_index("ix_failed_sign_ins_account_at", ["account_key", "attempted_at"], unique=False)
        batch_op.create_index("ix_failed_sign_ins_address_at", ["address", "attempted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("failed_sign_ins", schema=None) as batch_op:
        batch_op.drop_index("ix_failed_sign_ins_address_at")
        batch_op.drop_index("ix_failed_sign_ins_account_at")
    op.drop_table("failed_sign_ins")
