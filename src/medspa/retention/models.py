"""Stored model outputs per client: the retention score the worker keeps fresh."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medspa.kit.db import Base, TenantMixin


class ClientRetentionScore(TenantMixin, Base):
    """One row per client: the return-time model's view of them at `scored_at`.

    Over the next `horizon_days` days: `probability_return` = P(at least one visit),
    `expected_visits` = E[visits], `lapse_risk` = 1 - `probability_return`. `expected_next_visit_on`
    is the clinic-local date by which a client who is still active has even odds of having visited
    (null when that is over two years away). `visits` counts the client's completed visits; a client
    without any has null model outputs (the model has no evidence about them).

    `next_action` is what the next-best-action policy recommends for the client at `scored_at`
    (`retention.next_best_action.Action`), `next_action_reason` why, and `next_action_send_after` the
    first instant outside the client's quiet hours for a message. It only recommends; nothing is sent."""

    __tablename__ = "client_retention_scores"
    __table_args__ = (UniqueConstraint("organization_id", "client_id"),)

    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    visits: Mapped[int]
    last_visit_on: Mapped[date | None] = mapped_column(Date)
    expected_next_visit_on: Mapped[date | None] = mapped_column(Date)
    horizon_days: Mapped[int]
    probability_return: Mapped[float | None]
    expected_visits: Mapped[float | None]
    lapse_risk: Mapped[float | None]
    model_version: Mapped[str] = mapped_column(String(64))
    scored_at: Mapped[datetime]
    next_action: Mapped[str | None] = mapped_column(String(32))
    next_action_reason: Mapped[str | None] = mapped_column(String(64))
    next_action_send_after: Mapped[datetime | None]


class MembershipLapseScore(TenantMixin, Base):
    """One row per active member: the churn model's membership lapse risk at `scored_at`.

    `lapse_risk` = P(the membership ends within `horizon_months` | it has lasted `tenure_months`), from
    the clinic's churn model `model_version`, trained on `memberships` of its memberships. Null with
    `reason` when the model cannot say (the tenure is past the longest it saw). Rows are replaced
    whenever every score is refreshed; a member without a row was not scored (no churn model, or a
    membership started since)."""

    __tablename__ = "membership_lapse_scores"
    __table_args__ = (UniqueConstraint("organization_id", "client_id"),)

    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    membership_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("memberships.id"))
    tenure_months: Mapped[float]
    horizon_months: Mapped[int]
    lapse_risk: Mapped[float | None]
    reason: Mapped[str | None] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(64))
    memberships: Mapped[int]
    scored_at: Mapped[datetime]
