"""What the retention API returns."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Final

from pydantic import Field

from medspa.kit.schemas import ReadSchema

# The fewest clients (memberships) and churns a time-to-churn model is fitted on (`retention.survival`);
# here so that the web process can say so without importing the model code.
SURVIVAL_MIN_CLIENTS: Final = 30
SURVIVAL_MIN_EVENTS: Final = 10


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


class MembershipLapseRead(ReadSchema):
    """An active member's membership lapse risk from the clinic's churn model (see docs/models.md)."""

    client_id: uuid.UUID
    membership_id: uuid.UUID
    tenure_months: float = Field(description="how long the membership had lasted when scored")
    horizon_months: int
    lapse_risk: float | None = Field(
        description="P(the membership ends within horizon_months | it has lasted tenure_months); null with "
        "reason when the model cannot say"
    )
    reason: str | None
    model_version: str
    memberships: int = Field(description="how many of the clinic's memberships the model was trained on")
    scored_at: datetime
