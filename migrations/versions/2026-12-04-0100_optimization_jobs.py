"""Optimization jobs, and what a schedule proposal saw of its day (to refuse it when the day changed); a
proposal's status holds "partially_applied" (17 characters).

Revision ID: 5f1c0e9a7d21
Revises: 5d1e6a7b9c20
Create Date: 2026-12-04 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "5f1c0e9a7d21"
down_revision = "5d1e6a7b9c20"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("schedule_proposals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column(
                "seen",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("max_moves", sa.Integer(), nullable=True))
        batch_op.alter_column(
            "status", existing_type=sa.String(length=16), type_=sa.String(length=32), existing_nullable=False
        )

    op.create_table(
        "optimization_jobs",
        sa.Column("location_id", sa.Uuid(), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("time_limit_seconds", sa.Double(), nullable=False),
        sa.Column("max_moves", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("best_value_cents", sa.Integer(), nullable=True),
        sa.Column("improvements", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Uuid(), nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_optimization_jobs_location_id_locations")
        ),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["schedule_proposals.id"],
            name=op.f("fk_optimization_jobs_proposal_id_schedule_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_optimization_jobs")),
    )
    with op.batch_alter_table("optimization_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_optimization_jobs_location_id"), ["location_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_optimization_jobs_organization_id"), ["organization_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("optimization_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_optimization_jobs_organization_id"))
        batch_op.drop_index(batch_op.f("ix_optimization_jobs_location_id"))
    op.drop_table("optimization_jobs")

    with op.batch_alter_table("schedule_proposals", schema=None) as batch_op:
        batch_op.alter_column(
            "status", existing_type=sa.String(length=32), type_=sa.String(length=16), existing_nullable=False
        )
        batch_op.drop_column("max_moves")
        batch_op.drop_column("seen")
        batch_op.drop_column("origin_at")
