"""Appointments, their lifecycle history, and the reservations that keep resources from double booking."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from medspa.kit.db import Base, SequenceKey, TenantMixin


class Appointment(TenantMixin, Base):
    """A client's booking of one service. `starts_at`/`ends_at` bound the service itself; what each
    resource is reserved for (with setup, cleanup and cooldown) lives in `Reservation` rows.

    `no_show_probability` is P(no-show) from the organization's active no-show model, written by the
    worker after the booking commits (null until then, or when no model is active), with the model
    version that produced it and when; the booking path never writes them.

    `overbooking` says why an appointment shares its provider's time with another booking (controlled
    overbooking, see `scheduling.lanes`); null for every other appointment, and again once it holds the
    provider's time alone."""

    __tablename__ = "appointments"
    __table_args__ = (Index("ix_appointments_location_starts", "location_id", "starts_at"),)

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"))
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id"))
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id"), index=True)
    room_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rooms.id"))
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    hold_expires_at: Mapped[datetime | None]
    price_cents: Mapped[int]
    cancellation_reason: Mapped[str | None] = mapped_column(String(500))
    cancelled_by: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    no_show_probability: Mapped[float | None]
    no_show_model_version: Mapped[str | None] = mapped_column(String(64))
    no_show_scored_at: Mapped[datetime | None]
    overbooking: Mapped[str | None] = mapped_column(String(500))


class AppointmentTransition(Base):
    """One step of an appointment's lifecycle: from, to, when and by whom. `id` orders the steps."""

    __tablename__ = "appointment_transitions"

    id: Mapped[int] = mapped_column(SequenceKey, primary_key=True, autoincrement=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(index=True)
    appointment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointments.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(500))
    occurred_at: Mapped[datetime]


class Reservation(TenantMixin, Base):
    """A resource held by an appointment over `[starts_at, ends_at)`.

    Active reservations of one resource never overlap: on PostgreSQL an exclusion constraint over
    `(resource_id, tstzrange(starts_at, ends_at))` refuses it; on SQLite the booking re-checks inside a
    serialized (`BEGIN IMMEDIATE`) transaction.
    """

    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_resource_time", "resource_id", "starts_at", "ends_at"),)

    appointment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appointments.id"), index=True)
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"))
    resource_kind: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[uuid.UUID]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    is_active: Mapped[bool] = mapped_column(default=True)


class WaitlistEntry(TenantMixin, Base):
    """A client who wants a service on a local date within a window of wall-clock time, not yet booked.

    Waiting entries are the flexible requests the day optimizer may place."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (Index("ix_waitlist_location_date", "location_id", "service_date"),)

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"))
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"))
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id"))
    service_date: Mapped[date]
    window_starts_at: Mapped[time]
    window_ends_at: Mapped[time]
    preferred_provider_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("providers.id"))
    priority: Mapped[str] = mapped_column(String(16), default="standard")
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("appointments.id"))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ScheduleProposal(TenantMixin, Base):
    """The optimizer's proposal for a location's day, kept beside the live schedule until staff apply it
    (or parts of it). `instance` and `solution` are the clinic-day documents it was computed from, whose
    minutes count from `origin_at`; `requests` maps each instance request id to its appointment or
    waitlist entry (and, for a booking it may move, where it was); `seen` is what it saw of the day (the
    location's set-up version and every live booking's status, start and resources), which applying
    compares with the day as it is then. `max_moves` is the replan's move limit (None: bookings kept)."""

    __tablename__ = "schedule_proposals"

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"), index=True)
    service_date: Mapped[date]
    status: Mapped[str] = mapped_column(String(32), default="proposed")  # proposed, (partially_)applied
    current_value_cents: Mapped[int]
    proposed_value_cents: Mapped[int]
    instance: Mapped[dict[str, Any]]
    solution: Mapped[dict[str, Any]]
    requests: Mapped[dict[str, Any]]
    explanation: Mapped[dict[str, Any]]
    origin_at: Mapped[datetime | None]
    seen: Mapped[dict[str, Any] | None]
    max_moves: Mapped[int | None]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    applied_at: Mapped[datetime | None]


class OptimizationJob(TenantMixin, Base):
    """A request to optimize a location's day, run by the worker: queued -> running -> done (with the
    proposal) or failed (with the reason). While running, `best_value_cents` is the value of the best
    schedule found so far (`improvements` of them, the last at `progress_at`)."""

    __tablename__ = "optimization_jobs"

    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locations.id"), index=True)
    service_date: Mapped[date]
    time_limit_seconds: Mapped[float]
    max_moves: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default="queued")
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    progress_at: Mapped[datetime | None]
    best_value_cents: Mapped[int | None]
    improvements: Mapped[int] = mapped_column(default=0)
    proposal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("schedule_proposals.id"))
    error: Mapped[str | None] = mapped_column(String(1000))
