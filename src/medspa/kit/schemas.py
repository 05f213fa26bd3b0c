"""Pydantic building blocks shared by every domain's schemas."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

T = TypeVar("T")


class Schema(BaseModel):
    """Strict about unknown fields, so a typo in a payload is a 422 rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


class ReadSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a UTC offset (e.g. 2026-12-01T10:00:00Z)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Weekday = Annotated[int, Field(ge=0, le=6, description="0 = Monday ... 6 = Sunday")]
NonNegativeMinutes = Annotated[int, Field(ge=0, le=24 * 60)]
Cents = Annotated[int, Field(ge=0, description="integer cents")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$")]


class TimeSpan(Schema):
    """A local wall-clock span within one day; `starts_at` must be before `ends_at`."""

    starts_at: time
    ends_at: time

    @field_validator("ends_at")
    @classmethod
    def _ordered(cls, ends_at: time, info: ValidationInfo) -> time:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and ends_at <= starts_at:
            raise ValueError("must be after starts_at")
        return ends_at
