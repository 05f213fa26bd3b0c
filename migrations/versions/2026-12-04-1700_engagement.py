"""Engagement: messages, location policies and templates, freed slots and waitlist offers; clients'
contact permissions (e-mail appointment messages on for those with an address, as a new client gets);
services' post-care instructions and follow-up cadence. Row-level security on the new tables (ADR 21).

Revision ID: 5a7c9e1b3d40
Revises: 8e4b6d0f3a29
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "5a7c9e1b3d40"
down_revision = "8e4b6d0f3a29"
branch_labels = None
depends_on = None

TENANT_TABLES = ("engagement_policies", "message_templates", "messages", "freed_slots", "waitlist_offers")
RULE = (
    "current_setting('app.scope', true) = 'system'"
    " OR organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid"
)


def upgrade() -> None:
    op.create_table(
        "engagement_policies",
        sa.Column("location_id", sa.Uuid(), nullable=False),
        sa.Column("quiet_starts_at", sa.Time(), nullable=False),
        sa.Column("quiet_ends_at", sa.Time(), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=False),
        sa.Column("weekly_cap", sa.Integer(), nullable=False),
        sa.Column("recent_contact_hours", sa.Integer(), nullable=False),
        sa.Column(
            "reminder_hours",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "sms_reminder_hours",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("offer_expiry_minutes", sa.Integer(), nullable=False),
        sa.Column("open_offers_per_slot", sa.Integer(), nullable=False),
        sa.Column("offers_per_client_per_day", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_engagement_policies_location_id_locations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_policies")),
        sa.UniqueConstraint("location_id", name="uq_engagement_policies_location_id"),
    )
    with op.batch_alter_table("engagement_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_engagement_policies_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "message_templates",
        sa.Column("location_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_message_templates_location_id_locations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint(
            "location_id", "kind", "channel", name="uq_message_templates_location_kind_channel"
        ),
    )
    with op.batch_alter_table("message_templates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_templates_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "messages",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("location_id", sa.Uuid(), nullable=True),
        sa.Column("appointment_id", sa.Uuid(), nullable=True),
        sa.Column("offer_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_reply", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("trigger", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_messages_client_id_clients")),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_messages_location_id_locations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("organization_id", "dedup_key", name="uq_messages_organization_id_dedup_key"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_appointment_id"), ["appointment_id"], unique=False)
        batch_op.create_index("ix_messages_client_id_sent_at", ["client_id", "sent_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index("ix_messages_state_due_at", ["state", "due_at"], unique=False)

    op.create_table(
        "freed_slots",
        sa.Column("location_id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("appointment_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_freed_slots_location_id_locations")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_freed_slots_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freed_slots")),
        sa.UniqueConstraint(
            "organization_id", "source_key", name="uq_freed_slots_organization_id_source_key"
        ),
    )
    with op.batch_alter_table("freed_slots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_freed_slots_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index("ix_freed_slots_state_starts_at", ["state", "starts_at"], unique=False)

    op.create_table(
        "waitlist_offers",
        sa.Column("slot_id", sa.Uuid(), nullable=False),
        sa.Column("waitlist_entry_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("service_id", sa.Uuid(), nullable=False),
        sa.Column("location_id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("rank_score", sa.Double(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("appointment_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_waitlist_offers_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["location_id"], ["locations.id"], name=op.f("fk_waitlist_offers_location_id_locations")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_waitlist_offers_provider_id_providers")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_waitlist_offers_service_id_services")
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"], ["freed_slots.id"], name=op.f("fk_waitlist_offers_slot_id_freed_slots")
        ),
        sa.ForeignKeyConstraint(
            ["waitlist_entry_id"],
            ["waitlist_entries.id"],
            name=op.f("fk_waitlist_offers_waitlist_entry_id_waitlist_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_offers")),
        sa.UniqueConstraint("token_digest", name="uq_waitlist_offers_token_digest"),
    )
    with op.batch_alter_table("waitlist_offers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_waitlist_offers_client_id_created_at", ["client_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_waitlist_offers_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index("ix_waitlist_offers_slot_id_state", ["slot_id", "state"], unique=False)

    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("consent_email", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("consent_sms", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(
            sa.Column("consent_marketing", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("consent_updated_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("post_care_instructions", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("follow_up_days", sa.Integer(), nullable=True))

    op.execute("UPDATE clients SET consent_email = (email IS NOT NULL)")
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({RULE}) WITH CHECK ({RULE})")


def downgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_column("follow_up_days")
        batch_op.drop_column("post_care_instructions")

    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("consent_updated_at")
        batch_op.drop_column("consent_marketing")
        batch_op.drop_column("consent_sms")
        batch_op.drop_column("consent_email")

    with op.batch_alter_table("waitlist_offers", schema=None) as batch_op:
        batch_op.drop_index("ix_waitlist_offers_slot_id_state")
        batch_op.drop_index(batch_op.f("ix_waitlist_offers_organization_id"))
        batch_op.drop_index("ix_waitlist_offers_client_id_created_at")

    op.drop_table("waitlist_offers")
    with op.batch_alter_table("freed_slots", schema=None) as batch_op:
        batch_op.drop_index("ix_freed_slots_state_starts_at")
        batch_op.drop_index(batch_op.f("ix_freed_slots_organization_id"))

    op.drop_table("freed_slots")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_state_due_at")
        batch_op.drop_index(batch_op.f("ix_messages_organization_id"))
        batch_op.drop_index("ix_messages_client_id_sent_at")
        batch_op.drop_index(batch_op.f("ix_messages_appointment_id"))

    op.drop_table("messages")
    with op.batch_alter_table("message_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_templates_organization_id"))

    op.drop_table("message_templates")
    with op.batch_alter_table("engagement_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_engagement_policies_organization_id"))

    op.drop_table("engagement_policies")
