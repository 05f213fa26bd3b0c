"""Where and with whom and what a service can be given."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from medspa.kit.crud import owned_kind
from medspa.kit.db import Base, TenantMixin


@owned_kind("location")
class Location(TenantMixin, Base):
    __tablename__ = "locations"

    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    slot_interval_minutes: Mapped[int] = mapped_column(default=15)
    minimum_notice_minutes: Mapped[int] = mapped_column(default=60)
    # How many days ahead (local dates) a booking may start.
    booking_horizon_days: Mapped[int] = mapped_column(default=365, server_default="365")
    config_version: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(default=True)


class OpeningHours(TenantMixin, Base):
    """One opening span of a weekday (0 = Monday), in the location's local wall-clock time."""

    __tablename__ = "opening_hours"

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"), index=True)
    weekday: Mapped[int]
    opens_at: Mapped[time]
    closes_at: Mapped[time]


class Closure(TenantMixin, Base):
    """A local date on which the location is closed (a holiday, an event)."""

    __tablename__ = "closures"

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"), index=True)
    closed_on: Mapped[date]
    reason: Mapped[str] = mapped_column(String(200), default="")


@owned_kind("provider")
class Provider(TenantMixin, Base):
    __tablename__ = "providers"

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200), default="")
    skills: Mapped[list[str]] = mapped_column(default=list)
    is_active: Mapped[bool] = mapped_column(default=True)


class ProviderLicense(TenantMixin, Base):
    """A professional license (RN, NP, MD, laser...) and the last local date it is valid."""

    __tablename__ = "provider_licenses"

    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(64), default="")
    expires_on: Mapped[date]


class Shift(TenantMixin, Base):
    """A weekly working span (weekday 0 = Monday), local wall-clock time."""

    __tablename__ = "shifts"

    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id"), index=True)
    weekday: Mapped[int]
    starts_at: Mapped[time]
    ends_at: Mapped[time]


class Break(TenantMixin, Base):
    """A weekly break (lunch) during which the provider takes no clients."""

    __tablename__ = "breaks"

    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id"), index=True)
    weekday: Mapped[int]
    starts_at: Mapped[time]
    ends_at: Mapped[time]


class TimeOff(TenantMixin, Base):
    __tablename__ = "time_off"

    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200), default="")


class Room(TenantMixin, Base):
    __tablename__ = "rooms"

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    room_type: Mapped[str] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(default=True)


class Device(TenantMixin, Base):
    __tablename__ = "devices"

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    device_type: Mapped[str] = mapped_column(String(64))
    cooldown_minutes: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(default=True)


class DeviceMaintenance(TenantMixin, Base):
    __tablename__ = "device_maintenance"

    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200), default="")
