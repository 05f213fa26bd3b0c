"""Lapse outreach: clients the served return model sees drifting away are asked to come back.

Once a day (`reach_out`), each organization's scored clients with at least one visit and a lapse risk
of `LAPSE_RISK` or more, with no visit ahead and none in the last `QUIET_AFTER_VISIT`, get a marketing
message by the channels they allow (at most one a month: the key is the client and the month). Each
client is one action through the agent gate (`engagement.lapse_outreach`, tier 2): it runs on its own
within the organization's daily volume (`daily_limit`, 50 by default, set with the agent policies) and
waits for a person above it. The rules of every message apply when it is sent: marketing consent, quiet
hours, caps, and no marketing within `recent_contact_hours` of the last message.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from medspa.engagement.planner import agent, planned, submit_messages, write_messages
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.retention import service as retention
from medspa.scheduling import service as scheduling
from medspa.security import gate

logger = logging.getLogger(__name__)

LAPSE_ACTION: Final = "engagement.lapse_outreach"
LAPSE_RISK: Final = 0.6
QUIET_AFTER_VISIT: Final = timedelta(days=30)
# An outreach held back (quiet hours, caps) is still worth sending this long after it was planned.
OUTREACH_WITHIN: Final = timedelta(days=3)

gate.register(
    gate.Kind(
        LAPSE_ACTION,
        gate.Tier.WITHIN_THRESHOLDS,
        write_messages,
        "lapse outreach: asking a client the return model sees drifting away to come back (marketing)",
        daily_limit=50,
    )
)


def _last_visit(session: Session, organization_id: uuid.UUID, client_id: uuid.UUID, now: datetime) -> Any:
    """The client's latest appointment that has begun (None if none), and whether one is ahead."""
    actor = agent(organization_id)
    ahead = scheduling.list_appointments(
        session, actor=actor, client_id=client_id, starts_from=now, limit=20
    ).items
    if any(a.status.value in ("booked", "confirmed", "held") for a in ahead):
        return None
    past = scheduling.list_appointments(
        session,
        actor=actor,
        client_id=client_id,
        starts_from=now - timedelta(days=730),
        starts_before=now,
        limit=500,
    ).items
    completed = [a for a in past if a.status.value == "completed"]
    return max(completed, key=lambda a: a.starts_at) if completed else None


def reach_out_in(session: Session, organization_id: uuid.UUID, *, limit: int = 500) -> int:
    """Plan lapse outreach for one organization, in the caller's transaction; how many clients."""
    now = clock.now()
    actor = agent(organization_id)
    month = now.strftime("%Y-%m")
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    reached = 0
    for score in retention.clients_drifting_away(
        session, actor=actor, minimum_lapse_risk=LAPSE_RISK, limit=limit
    ):
        key = f"lapse:{score.client_id}:{month}"
        if gate.submitted_since(session, organization_id, LAPSE_ACTION, score.client_id, month_start):
            continue  # asked this month already (sent, waiting for a person, or refused)
        last = _last_visit(session, organization_id, score.client_id, now)
        if last is None or now - last.ends_at < QUIET_AFTER_VISIT:
            continue
        messages = [
            planned(
                client_id=score.client_id,
                location_id=last.location_id,
                kind="lapse",
                channel=channel,
                dedup_key=f"{key}:{channel}",
                context={"lapse_risk": score.lapse_risk, "visit_ended_at": last.ends_at.isoformat()},
                due_at=now,
                not_after=now + OUTREACH_WITHIN,
                is_reply=False,
                purpose="marketing",
            )
            for channel in ("email", "sms")
        ]
        submit_messages(
            session,
            organization_id,
            messages,
            trigger=f"schedule:lapse_outreach lapse risk {score.lapse_risk:.2f}",
            subject_id=score.client_id,
            action=LAPSE_ACTION,
        )
        reached += 1
    return reached


def reach_out(engine: Engine, organization_ids: list[uuid.UUID] | None = None) -> dict[uuid.UUID, int]:
    """Lapse outreach for each organization (every one with retention scores by default), each in a
    transaction of its own; how many clients each reached."""
    if organization_ids is None:
        with unit_of_work(engine, write=False) as session:
            organization_ids = retention.scored_organizations(session)
    reached: dict[uuid.UUID, int] = {}
    for organization_id in organization_ids:
        try:
            with unit_of_work(engine) as session:
                reached[organization_id] = reach_out_in(session, organization_id)
        except Exception:
            logger.exception("organization %s: lapse outreach failed", organization_id)
    return reached
