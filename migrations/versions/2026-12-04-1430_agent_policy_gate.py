"""The agent policy gate: the action log and approval queue, and organizations' policies.

Revision ID: 6b2f9d4e1a73
Revises: 4e8a1c7b2d95
Create Date: 2026-12-04 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "6b2f9d4e1a73"
down_revision = "4e8a1c7b2d95"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_actions",
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("trigger", sa.String(length=500), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=True),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("value_cents", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("why", sa.String(length=500), nullable=False),
        sa.Column("outcome", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_actions")),
    )
    op.create_index("ix_agent_actions_organization_id_state", "agent_actions", ["organization_id", "state"])
    op.create_index(op.f("ix_agent_actions_organization_id"), "agent_actions", ["organization_id"])
    op.create_table(
        "agent_policies",
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("daily_limit", sa.Integer(), nullable=True),
        sa.Column("value_limit_cents", sa.Integer(), nullable=True),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_policies")),
        sa.UniqueConstraint(
            "organization_id", "action", name=op.f("uq_agent_policies_organization_id_action")
        ),
    )
    op.create_index(op.f("ix_agent_policies_organization_id"), "agent_policies", ["organization_id"])


def downgrade() -> None:
    op.drop_table("agent_policies")
    op.drop_table("agent_actions")
