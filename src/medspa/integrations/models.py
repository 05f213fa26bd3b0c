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

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
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
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


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
