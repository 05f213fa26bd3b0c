"""Messages to clients, the policies that limit them, per-location templates, and waitlist offers.

A message row is planned when something happens (a booking, a cancellation, a freed slot) and sent
when due by the dispatcher (`engagement.dispatch`). It holds ids and the kind of message, never its
rendered text: the text names the client and is rendered from their sealed record at the moment of
sending, so the table holds no PHI.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medspa.kit.db import Base, TenantMixin


class Message(TenantMixin, Base):
    """One message to one client by one channel.

    States: `queued` (waiting for `due_at` and `next_attempt_at`), `sending` (claimed by a dispatcher),
    `sent`, `failed` (gave up: `outcome` says why), `suppressed` (a rule stopped it: no consent, quiet
    hours until past `not_after`, a cap, recent contact; `outcome` names it), `obsolete` (what it was
    about changed: the appointment was cancelled or moved, the offer was taken).
    `dedup_key` is unique per organization: an event handled twice plans its messages once."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("organization_id", "dedup_key", name="uq_messages_organization_id_dedup_key"),
        Index("ix_messages_state_due_at", "state", "due_at"),
        Index("ix_messages_client_id_sent_at", "client_id", "sent_at"),
    )

    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    location_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("locations.id"))
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    offer_id: Mapped[uuid.UUID | None]
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))
    # `appointment` (needs the channel's consent) or `marketing` (also needs marketing consent).
    purpose: Mapped[str] = mapped_column(String(16))
    dedup_key: Mapped[str] = mapped_column(String(200))
    # What the message refers to as it was when planned (a reminder is obsolete once the start moved).
    context: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    not_after: Mapped[datetime | None]
    # Sent even in quiet hours (the confirmation of a booking the client just made) and beyond the caps.
    is_reply: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    trigger: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class EngagementPolicy(TenantMixin, Base):
    """A location's limits on messages and on overbooking (its row, else the defaults of
    `engagement.rules.DEFAULTS`)."""

    __tablename__ = "engagement_policies"
    __table_args__ = (UniqueConstraint("location_id", name="uq_engagement_policies_location_id"),)

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"))
    quiet_starts_at: Mapped[time]
    quiet_ends_at: Mapped[time]
    daily_cap: Mapped[int]
    weekly_cap: Mapped[int]
    recent_contact_hours: Mapped[int]
    reminder_hours: Mapped[list[int]]
    sms_reminder_hours: Mapped[list[int]]
    offer_expiry_minutes: Mapped[int]
    open_offers_per_slot: Mapped[int]
    offers_per_client_per_day: Mapped[int]
    overbooking_cap_minutes: Mapped[int] = mapped_column(default=0, server_default="0")
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class MessageTemplate(TenantMixin, Base):
    """A location's own wording of one kind of message on one channel (else the built-in template)."""

    __tablename__ = "message_templates"
    __table_args__ = (
        UniqueConstraint("location_id", "kind", "channel", name="uq_message_templates_location_kind_channel"),
    )

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"))
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(Text, default="")
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class FreedSlot(TenantMixin, Base):
    """Provider time that became free (a cancellation, a no-show, a move), to be offered to the waitlist.

    `open` while offers may still be made; `filled` once an offer was accepted; `closed` when nobody
    took it before its start (or nobody on the waitlist fits)."""

    __tablename__ = "freed_slots"
    __table_args__ = (
        UniqueConstraint("organization_id", "source_key", name="uq_freed_slots_organization_id_source_key"),
        Index("ix_freed_slots_state_starts_at", "state", "starts_at"),
    )

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"))
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    source_key: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    appointment_id: Mapped[uuid.UUID | None]  # the booking that filled it
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WaitlistOffer(TenantMixin, Base):
    """A freed slot offered to one waitlisted client, accepted through a link until `expires_at`.

    States: `open`, `accepted` (booked: `appointment_id`), `expired`, `gone` (someone else took the
    slot first, or it could no longer be booked). The link carries a random token; only its SHA-256
    digest is stored."""

    __tablename__ = "waitlist_offers"
    __table_args__ = (
        UniqueConstraint("token_digest", name="uq_waitlist_offers_token_digest"),
        Index("ix_waitlist_offers_slot_id_state", "slot_id", "state"),
        Index("ix_waitlist_offers_client_id_created_at", "client_id", "created_at"),
    )

    slot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("freed_slots.id"))
    waitlist_entry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("waitlist_entries.id"))
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id"))
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"))
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id"))
    starts_at: Mapped[datetime]
    token_digest: Mapped[str] = mapped_column(String(64))
    rank_score: Mapped[float]
    state: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    appointment_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]
