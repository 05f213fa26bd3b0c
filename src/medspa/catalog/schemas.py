"""Payloads for services."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field

from medspa.kit.schemas import Cents, Code, Name, ReadSchema, Schema, UpdateSchema

Minutes = Annotated[int, Field(ge=0, le=12 * 60, description="whole minutes")]
Duration = Annotated[int, Field(gt=0, le=12 * 60, description="whole minutes, more than zero")]
Instructions = Annotated[str, Field(max_length=4000)]
FollowUpDays = Annotated[int, Field(gt=0, le=730, description="days")]
SeriesSessions = Annotated[int, Field(ge=2, le=30, description="sessions in a course, two or more")]
SeriesIntervalDays = Annotated[int, Field(gt=0, le=365, description="days between sessions")]
RoomTypes = Annotated[list[Code], Field(min_length=1, max_length=20)]


class ServiceCreate(Schema):
    name: Name
    category: Code
    duration_minutes: Duration
    setup_minutes: Minutes = 0
    cleanup_minutes: Minutes = 0
    required_skill: Code
    required_license: Code | None = None
    room_types: RoomTypes
    device_type: Code | None = None
    price_cents: Cents
    cost_cents: Cents = 0
    post_care_instructions: Instructions = ""
    follow_up_days: FollowUpDays | None = None
    follow_up_days_max: FollowUpDays | None = None
    series_sessions: SeriesSessions | None = None
    series_interval_days: SeriesIntervalDays | None = None


class ServiceUpdate(UpdateSchema):
    clearable = frozenset(
        {
            "required_license",
            "device_type",
            "follow_up_days",
            "follow_up_days_max",
            "series_sessions",
            "series_interval_days",
        }
    )

    name: Name | None = None
    category: Code | None = None
    duration_minutes: Duration | None = None
    setup_minutes: Minutes | None = None
    cleanup_minutes: Minutes | None = None
    required_skill: Code | None = None
    required_license: Code | None = None
    room_types: RoomTypes | None = None
    device_type: Code | None = None
    price_cents: Cents | None = None
    cost_cents: Cents | None = None
    post_care_instructions: Instructions | None = None
    follow_up_days: FollowUpDays | None = None
    follow_up_days_max: FollowUpDays | None = None
    series_sessions: SeriesSessions | None = None
    series_interval_days: SeriesIntervalDays | None = None


class ServiceRead(ReadSchema):
    id: uuid.UUID
    name: str
    category: str
    duration_minutes: int
    setup_minutes: int
    cleanup_minutes: int
    required_skill: str
    required_license: str | None
    room_types: list[str]
    device_type: str | None
    price_cents: int
    cost_cents: int
    post_care_instructions: str
    follow_up_days: int | None
    follow_up_days_max: int | None
    series_sessions: int | None
    series_interval_days: int | None
    is_active: bool
