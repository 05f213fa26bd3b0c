"""Payloads for messages, engagement policies, message templates and waitlist offers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from medspa.kit.schemas import ReadSchema, Schema, WallClockTime
from medspa.scheduling.schemas import AppointmentRead

MessageKind = Literal[
    "confirmation",
    "reschedule",
    "cancellation",
    "reminder",
    "post_care",
    "waitlist_offer",
    "offer_taken",
    "follow_up",
    "lapse",
    "confirm_request",
]
ChannelName = Literal["email", "sms"]
MessageState = Literal["queued", "sending", "sent", "failed", "suppressed", "obsolete"]
OfferState = Literal["open", "accepted", "expired", "gone"]
Hours = Annotated[list[Annotated[int, Field(ge=1, le=24 * 14)]], Field(max_length=5)]
TemplateText = Annotated[str, Field(max_length=20_000)]


class MessageRead(ReadSchema):
    """A message as staff see it: what, to whom (the client's id), by which channel, and what became of
    it. Never its text (it names the client; rendered when sent)."""

    id: uuid.UUID
    client_id: uuid.UUID
    location_id: uuid.UUID | None
    appointment_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    kind: str
    channel: str
    purpose: str
    state: str
    due_at: datetime
    not_after: datetime | None
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    outcome: str | None
    created_at: datetime


class PolicyRead(ReadSchema):
    location_id: uuid.UUID
    quiet_starts_at: WallClockTime
    quiet_ends_at: WallClockTime
    daily_cap: int
    weekly_cap: int
    recent_contact_hours: int
    reminder_hours: list[int]
    sms_reminder_hours: list[int]
    offer_expiry_minutes: int
    open_offers_per_slot: int
    offers_per_client_per_day: int
    overbooking_cap_minutes: int = Field(
        description="expected minutes of provider time beyond capacity allowed per provider and day; 0: off"
    )
    is_default: bool


class PolicyUpdate(Schema):
    """A location's limits; a field left out keeps its value."""

    quiet_starts_at: WallClockTime | None = None
    quiet_ends_at: WallClockTime | None = None
    daily_cap: Annotated[int, Field(ge=0, le=50)] | None = None
    weekly_cap: Annotated[int, Field(ge=0, le=200)] | None = None
    recent_contact_hours: Annotated[int, Field(ge=0, le=24 * 90)] | None = None
    reminder_hours: Hours | None = None
    sms_reminder_hours: Hours | None = None
    offer_expiry_minutes: Annotated[int, Field(ge=5, le=24 * 60)] | None = None
    open_offers_per_slot: Annotated[int, Field(ge=1, le=10)] | None = None
    offers_per_client_per_day: Annotated[int, Field(ge=1, le=10)] | None = None
    overbooking_cap_minutes: Annotated[int, Field(ge=0, le=480)] | None = None


class TemplateBody(Schema):
    subject: TemplateText = ""
    text_body: Annotated[str, Field(min_length=1, max_length=20_000)]
    html_body: TemplateText = ""

    @model_validator(mode="after")
    def _text_is_not_blank(self) -> TemplateBody:
        if not self.text_body.strip():
            raise ValueError("text_body must say something")
        return self


class TemplateRead(ReadSchema):
    location_id: uuid.UUID
    kind: str
    channel: str
    subject: str
    text_body: str
    html_body: str
    is_built_in: bool


class PreviewRead(ReadSchema):
    subject: str
    text: str
    html: str


class OfferRead(ReadSchema):
    id: uuid.UUID
    slot_id: uuid.UUID
    waitlist_entry_id: uuid.UUID
    client_id: uuid.UUID
    service_id: uuid.UUID
    location_id: uuid.UUID
    provider_id: uuid.UUID
    starts_at: datetime
    rank_score: float
    state: str
    expires_at: datetime
    decided_at: datetime | None
    appointment_id: uuid.UUID | None
    created_at: datetime


class CallListRead(ReadSchema):
    """A booked, unconfirmed visit at high risk of a no-show: someone for the front desk to ring."""

    appointment_id: uuid.UUID
    client_id: uuid.UUID
    client_name: str
    phone: str | None = None
    starts_at: datetime
    local_start: str
    no_show_probability: float
    reminded: bool = False  # the desk asked for a reminder at this start
    deposit_requested_at: datetime | None = None  # the desk's task to take a deposit, when noted


class OverbookingRead(ReadSchema):
    """An overbooking asked for: booked at once (`state` "ran", with the appointment) or waiting for a
    manager's approval in the agent actions (`state` "queued", with why)."""

    action_id: uuid.UUID
    state: str
    why: str
    expected_overflow_minutes: float
    appointment: AppointmentRead | None
