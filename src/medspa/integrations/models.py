"""Connections to outside systems, the inbox of their events, and the links between their records and
ours.

A connection's shared secret is sealed under the organization's `integrations` data key (ADR 17's
envelope), never stored or logged in plain text. An inbox row is one delivery as it arrived, its raw body
sealed too (it names clients), unique per (connection, source event id): a duplicate finds the row and
does nothing more. A link maps one outside record (a Mindbody client id) to ours, with the source's
last-modified time of what was applied, so a stale update never overwrites a newer state.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medspa.kit.db import Base, TenantMixin

CONNECTORS = ("mindbody", "zenoti", "standard")
# What became of an inbox row: waiting to be applied, applied, nothing to apply (a kind of event we do
# not take, or a stale update), or given up after `MAX_ATTEMPTS` failures (kept with the reason).
INBOX_STATES = ("received", "applied", "skipped", "failed")


class Connection(TenantMixin, Base):
    __tablename__ = "integration_connections"

    connector: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    secret_sealed: Mapped[str] = mapped_column(Text)
    # Zenoti's signature header and encoding are configurable: its public documentation is thin.
    signature_header: Mapped[str | None] = mapped_column(String(64))
    signature_encoding: Mapped[str] = mapped_column(String(8), default="base64")
    # Polling (optional): the source's API root, the account there (Mindbody site id, Zenoti center id)
    # and the API key, sealed like the secret. A connection without them only takes webhooks.
    poll_base_url: Mapped[str | None] = mapped_column(String(2000))
    poll_account: Mapped[str | None] = mapped_column(String(100))
    poll_key_sealed: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InboxEvent(TenantMixin, Base):
    __tablename__ = "integration_inbox"
    __table_args__ = (
        UniqueConstraint("connection_id", "source_event_id", name="uq_integration_inbox_source_event"),
        Index("ix_integration_inbox_state_received_at", "state", "received_at"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integration_connections.id"))
    source_event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(100))
    source_time: Mapped[datetime | None]
    body_sealed: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # Waiting (a client not yet received, a mapping not yet made, a failure): not tried before this.
    not_before: Mapped[datetime | None]
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class Checkpoint(TenantMixin, Base):
    """How far polling one stream of a connection got (`stream`: `clients`, `appointments`), as the
    poller's own JSON `position`; moved in the transaction that stores the page's inbox rows, so a poll
    interrupted mid-way resumes from it and loses or repeats nothing."""

    __tablename__ = "integration_checkpoints"
    __table_args__ = (UniqueConstraint("connection_id", "stream", name="uq_integration_checkpoints_stream"),)

    connection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integration_connections.id"))
    stream: Mapped[str] = mapped_column(String(32))
    position: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class ExternalLink(TenantMixin, Base):
    __tablename__ = "integration_links"
    __table_args__ = (
        UniqueConstraint("connection_id", "kind", "external_id", name="uq_integration_links_external"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integration_connections.id"))
    kind: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(200))
    record_id: Mapped[uuid.UUID]
    source_time: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class WebhookSubscription(TenantMixin, Base):
    """A subscriber to our events: where they go (`url`), which (`topics`: `*` or names such as
    `appointment.cancelled`, and prefixes such as `appointment.*`), and the `whsec_` secret they are
    signed with (sealed). Disabled, with the reason, after `outbound.DISABLE_AFTER` failed deliveries in
    a row."""

    __tablename__ = "webhook_subscriptions"

    url: Mapped[str] = mapped_column(String(2000))
    topics: Mapped[str] = mapped_column(String(2000))
    secret_sealed: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    failures_in_a_row: Mapped[int] = mapped_column(default=0)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookDelivery(TenantMixin, Base):
    """One of our events to one subscriber: `pending` (due at `next_attempt_at`), `sending` (claimed at
    `claimed_at`), `delivered`, or `abandoned` after `outbound.MAX_ATTEMPTS` or when its subscription
    was disabled. Unique per (subscription, event): an event handled again adds nothing."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_subscription_event"),
        Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    )

    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    event_id: Mapped[int] = mapped_column(BigInteger)
    topic: Mapped[str] = mapped_column(String(100))
    # The event as sent (ids and names of fields, never PHI): kept here, so a retry hours later does not
    # depend on the outbox still holding it.
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
