"""Services."""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from medspa.kit.crud import owned_kind
from medspa.kit.db import Base, TenantMixin


@owned_kind("service")
class Service(TenantMixin, Base):
    """A bookable service. The provider is busy for `duration_minutes`; the room also for setup before
    and cleanup after; the device for the duration plus its own cooldown."""

    __tablename__ = "services"

    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64))
    duration_minutes: Mapped[int]
    setup_minutes: Mapped[int] = mapped_column(default=0)
    cleanup_minutes: Mapped[int] = mapped_column(default=0)
    required_skill: Mapped[str] = mapped_column(String(64))
    required_license: Mapped[str | None] = mapped_column(String(64))
    room_types: Mapped[list[str]] = mapped_column(default=list)
    device_type: Mapped[str | None] = mapped_column(String(64))
    price_cents: Mapped[int]
    cost_cents: Mapped[int] = mapped_column(default=0)
    # What the client is told after the visit (sent when the appointment is completed; empty: nothing).
    post_care_instructions: Mapped[str] = mapped_column(Text, default="", server_default="")
    # When a client usually comes back for this service (the follow-up cadence), in days after the visit:
    # from `follow_up_days` (when they are asked) to `follow_up_days_max` (none: about `follow_up_days`).
    follow_up_days: Mapped[int | None]
    follow_up_days_max: Mapped[int | None]
    # A course of sessions (a laser series): `series_sessions` visits `series_interval_days` apart, each
    # followed by a request to book the next; the cadence follows the last (`engagement.planner`).
    series_sessions: Mapped[int | None]
    series_interval_days: Mapped[int | None]
    is_active: Mapped[bool] = mapped_column(default=True)
