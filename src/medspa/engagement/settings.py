"""A location's engagement policy and message templates, as stored or by default."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medspa.engagement.models import EngagementPolicy, MessageTemplate
from medspa.engagement.rules import DEFAULTS, Policy
from medspa.engagement.templates import BUILT_IN, Template


def policy_for(session: Session, organization_id: uuid.UUID, location_id: uuid.UUID | None) -> Policy:
    """The location's policy, or the defaults when it has none (or no location is concerned)."""
    if location_id is None:
        return DEFAULTS
    row = session.scalar(
        select(EngagementPolicy).where(
            EngagementPolicy.organization_id == organization_id, EngagementPolicy.location_id == location_id
        )
    )
    if row is None:
        return DEFAULTS
    return Policy(
        quiet_starts_at=row.quiet_starts_at,
        quiet_ends_at=row.quiet_ends_at,
        daily_cap=row.daily_cap,
        weekly_cap=row.weekly_cap,
        recent_contact_hours=row.recent_contact_hours,
        reminder_hours=tuple(row.reminder_hours),
        sms_reminder_hours=tuple(row.sms_reminder_hours),
        offer_expiry_minutes=row.offer_expiry_minutes,
        open_offers_per_slot=row.open_offers_per_slot,
        offers_per_client_per_day=row.offers_per_client_per_day,
        overbooking_cap_minutes=row.overbooking_cap_minutes,
    )


def policy_columns(policy: Policy) -> dict[str, Any]:
    values = asdict(policy)
    values["reminder_hours"] = list(policy.reminder_hours)
    values["sms_reminder_hours"] = list(policy.sms_reminder_hours)
    return values


def template_for(
    session: Session, organization_id: uuid.UUID, location_id: uuid.UUID | None, kind: str, channel: str
) -> Template:
    """The location's own template for the kind and channel, else the built-in one."""
    if location_id is not None:
        row = session.scalar(
            select(MessageTemplate).where(
                MessageTemplate.organization_id == organization_id,
                MessageTemplate.location_id == location_id,
                MessageTemplate.kind == kind,
                MessageTemplate.channel == channel,
            )
        )
        if row is not None:
            return Template(row.subject, row.text_body, row.html_body)
    return BUILT_IN[(kind, channel)]
