"""Payloads for memberships."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import computed_field

from medspa.kit.schemas import BoundedDate, Cents, Name, ReadSchema, Schema


class MembershipState(StrEnum):
    ACTIVE = "active"  # no end recorded
    ENDED = "ended"  # an end recorded (its date may still be ahead: a notice period)


class EndReason(StrEnum):
    """Why a membership ended, as a code (never free text: it could carry PHI)."""

    PRICE = "price"
    NOT_USING = "not_using"
    MOVED_AWAY = "moved_away"
    DISSATISFIED = "dissatisfied"
    MEDICAL = "medical"
    SWITCHED_PLAN = "switched_plan"
    OTHER = "other"


class MembershipStart(Schema):
    plan: Name
    monthly_price_cents: Cents
    started_on: BoundedDate
    location_id: uuid.UUID | None = None


class MembershipEnd(Schema):
    ended_on: BoundedDate
    reason: EndReason


class MembershipRead(ReadSchema):
    id: uuid.UUID
    client_id: uuid.UUID
    location_id: uuid.UUID | None
    plan: str
    monthly_price_cents: int
    started_on: date
    ended_on: date | None
    end_reason: EndReason | None
    created_at: datetime
    ended_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def state(self) -> MembershipState:
        return MembershipState.ACTIVE if self.ended_on is None else MembershipState.ENDED


class MembershipCounts(ReadSchema):
    """How many memberships the organization has recorded, and how many of them have ended by `on`."""

    total: int
    ended: int
