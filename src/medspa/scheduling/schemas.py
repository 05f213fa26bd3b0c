"""Payloads for availability, holds, bookings and lifecycle actions."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from medspa.kit.schemas import AwareDatetime, BoundedDate, ReadSchema, Schema, WallClockTime


class Status(StrEnum):
    HELD = "held"
    BOOKED = "booked"
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"
    IN_SERVICE = "in_service"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


class SlotRead(ReadSchema):
    """A bookable start and the resources the booking would use."""

    starts_at: datetime
    ends_at: datetime
    local_start: str = Field(description="the start on the location's wall clock, ISO 8601 with offset")
    provider_id: uuid.UUID
    provider_name: str
    room_id: uuid.UUID
    room_name: str
    device_id: uuid.UUID | None
    device_name: str | None


class BookingRequest(Schema):
    client_id: uuid.UUID
    service_id: uuid.UUID
    location_id: uuid.UUID
    starts_at: AwareDatetime
    provider_id: uuid.UUID | None = None
    room_id: uuid.UUID | None = None
    device_id: uuid.UUID | None = None


class HoldRequest(BookingRequest):
    hold_minutes: int | None = Field(default=None, ge=1, le=24 * 60)


class RescheduleRequest(Schema):
    starts_at: AwareDatetime
    provider_id: uuid.UUID | None = None
    room_id: uuid.UUID | None = None
    device_id: uuid.UUID | None = None


class CancelRequest(Schema):
    reason: str = Field(min_length=1, max_length=500)


class CorrectionRequest(Schema):
    """A finished visit's outcome, corrected: `completed` or `no_show`, and why."""

    status: Literal[Status.COMPLETED, Status.NO_SHOW]
    reason: str = Field(min_length=1, max_length=500)


class TransitionRead(ReadSchema):
    from_status: Status | None
    to_status: Status
    actor: str
    reason: str | None
    occurred_at: datetime


class AppointmentRead(ReadSchema):
    id: uuid.UUID
    location_id: uuid.UUID
    client_id: uuid.UUID
    service_id: uuid.UUID
    provider_id: uuid.UUID
    room_id: uuid.UUID
    device_id: uuid.UUID | None
    status: Status
    starts_at: datetime
    ends_at: datetime
    hold_expires_at: datetime | None
    price_cents: int
    cancellation_reason: str | None
    cancelled_by: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    no_show_probability: float | None = Field(
        default=None, description="P(no-show) from the active model; null until the worker scores it"
    )
    no_show_model_version: str | None = None
    no_show_scored_at: datetime | None = None
    overbooking: str | None = Field(
        default=None,
        description="why this appointment shares its provider's time with another booking (controlled "
        "overbooking); null for every other appointment",
    )


class WaitlistBooking(Schema):
    """Where to book a waiting client: a start, and the provider when it matters."""

    starts_at: AwareDatetime
    provider_id: uuid.UUID | None = None


class WaitlistCreate(Schema):
    """A client who wants `service_id` on the local date `service_date`, starting no earlier than
    `window_starts_at` and finishing by `window_ends_at` (location wall-clock time)."""

    client_id: uuid.UUID
    service_id: uuid.UUID
    location_id: uuid.UUID
    service_date: BoundedDate
    window_starts_at: WallClockTime
    window_ends_at: WallClockTime
    preferred_provider_id: uuid.UUID | None = None
    priority: Literal["standard", "member"] = "standard"

    @field_validator("window_ends_at")
    @classmethod
    def _window_ordered(cls, ends: time, info: ValidationInfo) -> time:
        starts = info.data.get("window_starts_at")
        if starts is not None and ends <= starts:
            raise ValueError("must be after window_starts_at")
        return ends


class WaitlistRead(ReadSchema):
    id: uuid.UUID
    client_id: uuid.UUID
    service_id: uuid.UUID
    location_id: uuid.UUID
    service_date: date
    window_starts_at: time
    window_ends_at: time
    preferred_provider_id: uuid.UUID | None
    priority: str
    status: str
    appointment_id: uuid.UUID | None
    created_at: datetime


class PlacementRead(ReadSchema):
    """Where a booking is: its start and resources."""

    starts_at: datetime
    provider_id: uuid.UUID
    room_id: uuid.UUID
    device_id: uuid.UUID | None


class ProposalItem(ReadSchema):
    """One request of the day and what the proposal does with it. A booking the proposal may move
    (replanning) has `status` kept, moved or dropped (left as booked, for staff to call the client) and
    `was` (where it is now); the start and resources are where the proposal puts it."""

    request: str
    kind: Literal["appointment", "waitlist"]
    record_id: uuid.UUID
    status: str
    starts_at: datetime | None
    provider_id: uuid.UUID | None
    room_id: uuid.UUID | None
    device_id: uuid.UUID | None
    was: PlacementRead | None = None
    value_cents: int
    reason: str


class ProposalRead(ReadSchema):
    id: uuid.UUID
    location_id: uuid.UUID
    service_date: date
    status: str
    current_value_cents: int
    proposed_value_cents: int
    gain_cents: int
    max_moves: int | None = Field(description="the replan's move limit; null when bookings were kept")
    moves: int = Field(description="bookings the proposal moves or drops (at most max_moves)")
    objective_terms: dict[str, float]
    items: list[ProposalItem]
    created_at: datetime
    applied_at: datetime | None


class ApplyRequest(Schema):
    """Which proposed bookings to make: request ids of the proposal, or all of them when omitted."""

    requests: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=1000)] | None = None


class OptimizationJobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class OptimizationJobRead(ReadSchema):
    """An optimization of a location's day run by the worker. While running: `elapsed_seconds` of
    `time_limit_seconds`, and the value of the best schedule found so far when the solver has reported
    one; when done, the proposal; when failed, why."""

    id: uuid.UUID
    location_id: uuid.UUID
    service_date: date
    status: OptimizationJobStatus
    time_limit_seconds: float
    max_moves: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    elapsed_seconds: float | None
    best_value_cents: int | None
    improvements: int
    proposal_id: uuid.UUID | None
    error: str | None
    status_url: str


class ReminderRead(ReadSchema):
    """Whether a reminder was asked for now (false: it had been asked for at this start already)."""

    asked: bool
