"""Roles beyond the four (marketing, contractor): a user's expiry, locations and provider record; a
token's expiry; the TOTP second factor and the sign-ins waiting for it.

Revision ID: c4e1a9d3b7f2
Revises: 9c4f6a8b0d32
Create Date: 2026-12-04 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c4e1a9d3b7f2"
down_revision = "9c4f6a8b0d32"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("provider_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_users_provider_id_providers"), "providers", ["provider_id"], ["id"]
        )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "user_locations",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("location_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_locations_user_id_users")),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_user_locations_location_id_locations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_locations")),
        sa.UniqueConstraint("user_id", "location_id", name=op.f("uq_user_locations_user_id_location_id")),
    )
    with op.batch_alter_table("user_locations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_user_locations_organization_id"), ["organization_id"], unique=False
        )
    op.create_table(
        "pending_sign_ins",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_pending_sign_ins_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_sign_ins")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_pending_sign_ins_token_hash")),
    )
    with op.batch_alter_table("pending_sign_ins", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pending_sign_ins_organization_id"), ["organization_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pending_sign_ins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_sign_ins_organization_id"))
    op.drop_table("pending_sign_ins")
    with op.batch_alter_table("user_locations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_locations_organization_id"))
    op.drop_table("user_locations")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_users_provider_id_providers"), type_="foreignkey")
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_secret")
        batch_op.drop_column("provider_id")
        batch_op.drop_column("expires_at")
