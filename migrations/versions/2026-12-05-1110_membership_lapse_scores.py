"""Membership lapse scores: the churn model's risk of each active member ending within three months,
given the tenure so far. Row-level security on the new table (ADR 21).

Revision ID: 4e8a1c6d9f27
Revises: 9c4d2e7a1b55
Create Date: 2026-12-05 11:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4e8a1c6d9f27"
down_revision = "9c4d2e7a1b55"
branch_labels = None
depends_on = None

RULE = (
    "current_setting('app.scope', true) = 'system'"
    " OR organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid"
)


def upgrade() -> None:
    op.create_table(
        "membership_lapse_scores",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("membership_id", sa.Uuid(), nullable=False),
        sa.Column("tenure_months", sa.Float(), nullable=False),
        sa.Column("horizon_months", sa.Integer(), nullable=False),
        sa.Column("lapse_risk", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("memberships", sa.Integer(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_membership_lapse_scores_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["membership_id"],
            ["memberships.id"],
            name=op.f("fk_membership_lapse_scores_membership_id_memberships"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_lapse_scores")),
        sa.UniqueConstraint(
            "organization_id",
            "client_id",
            name=op.f("uq_membership_lapse_scores_organization_id_client_id"),
        ),
    )
    with op.batch_alter_table("membership_lapse_scores", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_membership_lapse_scores_client_id"), ["client_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_membership_lapse_scores_organization_id"), ["organization_id"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE membership_lapse_scores ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE membership_lapse_scores FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON membership_lapse_scores USING ({RULE}) WITH CHECK ({RULE})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY IF EXISTS tenant_isolation ON membership_lapse_scores")
    with op.batch_alter_table("membership_lapse_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_membership_lapse_scores_organization_id"))
        batch_op.drop_index(batch_op.f("ix_membership_lapse_scores_client_id"))
    op.drop_table("membership_lapse_scores")
