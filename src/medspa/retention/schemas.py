"""What the retention API returns."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import Field

from medspa.kit.schemas import ReadSchema


class RetentionScoreRead(ReadSchema):
    """A client's retention score from the organization's active return-time model (see docs/models.md)."""

    client_id: uuid.UUID
    visits: int = Field(description="completed visits when scored")
    last_visit_on: date | None
    expected_next_visit_on: date | None = Field(
        description="local date by which an active client has even odds of having visited; null if > 2 years"
    )
    horizon_days: int
    probability_return: float | None = Field(description="P(at least one visit within horizon_days)")
    expected_visits: float | None = Field(description="expected visits within horizon_days")
    lapse_risk: float | None = Field(description="1 - probability_return; null without any visit")
    model_version: str
    scored_at: datetime
    next_action: str | None = Field(
        description="what the next-best-action policy recommends: none, normal_reminder, personal_rebooking, "
        "staff_outreach or win_back_offer (a recommendation; nothing is sent)"
    )
    next_action_reason: str | None
    next_action_send_after: datetime | None = Field(description="first instant outside the quiet hours")
