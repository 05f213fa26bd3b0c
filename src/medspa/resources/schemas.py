"""Payloads for locations, providers, rooms and devices."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from medspa.kit import tz
from medspa.kit.schemas import (
    AwareDatetime,
    BoundedDate,
    Code,
    Label,
    Name,
    NonNegativeMinutes,
    ReadSchema,
    Schema,
    TimeSpan,
    UpdateSchema,
    Weekday,
)


def _known_zone(name: str) -> str:
    if not tz.is_valid_zone(name):
        raise ValueError(f"unknown IANA time zone {name!r}")
    return name


def _grid(minutes: int) -> int:
    if (24 * 60) % minutes:
        raise ValueError("must divide a day evenly (5, 10, 15, 20, 30 or 60)")
    return minutes


ZoneName = Annotated[str, Field(max_length=64), AfterValidator(_known_zone)]
GridMinutes = Annotated[int, Field(ge=5, le=60), AfterValidator(_grid)]
NoticeMinutes = Annotated[int, Field(ge=0, le=60 * 24 * 14)]
HorizonDays = Annotated[
    int, Field(ge=1, le=3650, description="how many days ahead a booking may start (1 .. 3650)")
]
# A week of spans: a few per day at most.
MAX_WEEKLY_SPANS = 70


class WeeklySpan(TimeSpan):
    weekday: Weekday


WeeklySpans = Annotated[list[WeeklySpan], Field(max_length=MAX_WEEKLY_SPANS)]


class LocationCreate(Schema):
    name: Name
    time_zone: ZoneName
    slot_interval_minutes: GridMinutes = 15
    minimum_notice_minutes: NoticeMinutes = 60
    booking_horizon_days: HorizonDays = 365
    opening_hours: WeeklySpans = []


class LocationUpdate(UpdateSchema):
    name: Name | None = None
    time_zone: ZoneName | None = None
    slot_interval_minutes: GridMinutes | None = None
    minimum_notice_minutes: NoticeMinutes | None = None
    booking_horizon_days: HorizonDays | None = None
    opening_hours: WeeklySpans | None = None


class LocationRead(ReadSchema):
    id: uuid.UUID
    name: str
    time_zone: str
    slot_interval_minutes: int
    minimum_notice_minutes: int
    booking_horizon_days: int
    is_active: bool
    opening_hours: list[WeeklySpan]


class ClosureCreate(Schema):
    closed_on: BoundedDate
    reason: Label = ""


class ClosureRead(ReadSchema):
    id: uuid.UUID
    location_id: uuid.UUID
    closed_on: date
    reason: str


class LicenseIn(Schema):
    kind: Code
    number: Annotated[str, Field(max_length=64)] = ""
    expires_on: BoundedDate


class LicenseRead(ReadSchema):
    """A license as stored (read back as it is, whatever the rules for new input were when it was
    written)."""

    kind: str
    number: str
    expires_on: date


Skills = Annotated[list[Code], Field(max_length=50)]
Licenses = Annotated[list[LicenseIn], Field(max_length=20)]


class ProviderCreate(Schema):
    location_id: uuid.UUID
    name: Name
    title: Label = ""
    skills: Skills = []
    licenses: Licenses = []
    shifts: WeeklySpans = []
    breaks: WeeklySpans = []


class ProviderUpdate(UpdateSchema):
    name: Name | None = None
    title: Label | None = None
    skills: Skills | None = None
    licenses: Licenses | None = None
    shifts: WeeklySpans | None = None
    breaks: WeeklySpans | None = None


class ProviderRead(ReadSchema):
    id: uuid.UUID
    location_id: uuid.UUID
    name: str
    title: str
    skills: list[str]
    is_active: bool
    licenses: list[LicenseRead]
    shifts: list[WeeklySpan]
    breaks: list[WeeklySpan]


class PeriodCreate(Schema):
    """An absolute period (time off, maintenance) between two aware instants."""

    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Label = ""

    @field_validator("ends_at")
    @classmethod
    def _ordered(cls, ends_at: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and ends_at <= starts_at:
            raise ValueError("must be after starts_at")
        return ends_at


class PeriodRead(ReadSchema):
    id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    reason: str


class RoomCreate(Schema):
    location_id: uuid.UUID
    name: Name
    room_type: Code


class RoomUpdate(UpdateSchema):
    name: Name | None = None
    room_type: Code | None = None


class RoomRead(ReadSchema):
    id: uuid.UUID
    location_id: uuid.UUID
    name: str
    room_type: str
    is_active: bool


class DeviceCreate(Schema):
    location_id: uuid.UUID
    name: Name
    device_type: Code
    cooldown_minutes: NonNegativeMinutes = 0


class DeviceUpdate(UpdateSchema):
    name: Name | None = None
    device_type: Code | None = None
    cooldown_minutes: NonNegativeMinutes | None = None


class DeviceRead(ReadSchema):
    id: uuid.UUID
    location_id: uuid.UUID
    name: str
    device_type: str
    cooldown_minutes: int
    is_active: bool
