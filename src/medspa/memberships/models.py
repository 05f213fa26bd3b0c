"""A client's membership: a monthly plan from `started_on` until `ended_on` (null while active).

A client has at most one active membership at a time: the service checks it with the client's row
locked, and a partial unique index over the active rows backs it on both databases (SQLite and
PostgreSQL both index `WHERE ended_on IS NULL`)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from medspa.kit.db import Base, TenantMixin

ACTIVE = text("ended_on IS NULL")


class Membership(TenantMixin, Base):
    """`monthly_price_cents` is what the client pays a month on this plan (a founding or introductory
    rate included). `end_reason` is one of `schemas.EndReason`, a code rather than free text, so that no
    PHI lands here."""

    __tablename__ = "memberships"
    __table_args__ = (
        Index(
            "uq_memberships_one_active_per_client",
            "organization_id",
            "client_id",
            unique=True,
            sqlite_where=ACTIVE,
            postgresql_where=ACTIVE,
        ),
        Index("ix_memberships_organization_id_ended_on", "organization_id", "ended_on"),
    )

    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    location_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("locations.id"))
    plan: Mapped[str] = mapped_column(String(200))
    monthly_price_cents: Mapped[int]
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]  # when the end was recorded
