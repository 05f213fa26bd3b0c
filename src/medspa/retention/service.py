"""Retention's public functions for the API and the CLI: reading a client's stored retention score.

The scores are written by `retention.scoring` (the worker, the demo seed, the model commands), which
loads the models and pandas; this module stays light so the web process does not import them.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.errors import NotFoundError
from medspa.memberships import service as memberships
from medspa.retention import repository
from medspa.retention.models import ClientRetentionScore, MembershipLapseScore
from medspa.retention.schemas import SURVIVAL_MIN_CLIENTS as MIN_CLIENTS
from medspa.retention.schemas import SURVIVAL_MIN_EVENTS as MIN_EVENTS
from medspa.retention.schemas import MembershipLapseRead, RetentionScoreRead
from medspa.security.actors import Actor, require


def get_retention_score(session: Session, *, actor: Actor, client_id: uuid.UUID) -> RetentionScoreRead:
    """The client's stored retention score. NotFoundError for another organization's client, and for a
    client not scored yet (no appointment, or no active return model)."""
    require(actor, "retention", "read")
    client = clients.get_client(session, actor=actor, client_id=client_id)
    score = repository.find_score(session, actor.organization_id, client.id)
    if score is None:
        raise NotFoundError("retention score of client", client.id)
    return RetentionScoreRead.model_validate(score)


def membership_lapse(session: Session, *, actor: Actor, client_id: uuid.UUID) -> MembershipLapseRead | None:
    """The client's served membership lapse risk (`retention.churn`), or None when they have none stored
    (not an active member, no churn model, or a membership started since the last refresh)."""
    require(actor, "retention", "read")
    score = repository.find_membership_score(session, actor.organization_id, client_id)
    return None if score is None else MembershipLapseRead.model_validate(score)


def why_no_membership_lapse(session: Session, *, actor: Actor) -> str:
    """Why an active member has no membership lapse risk, in words for staff: the clinic has too few
    memberships (or ended ones) for a churn model, or it has enough and the member is not scored yet."""
    require(actor, "retention", "read")
    counts = memberships.membership_counts(session, actor=actor, on=clock.now().date())
    if counts.total < MIN_CLIENTS or counts.ended < MIN_EVENTS:
        return (
            f"this clinic has {counts.total} membership{'' if counts.total == 1 else 's'}, {counts.ended} "
            f"ended; a churn model needs at least {MIN_CLIENTS}, {MIN_EVENTS} of them ended"
        )
    return "not scored yet: membership lapse risks are refreshed with every score (weekly)"


def clients_drifting_away(
    session: Session, *, actor: Actor, minimum_lapse_risk: float, limit: int = 500
) -> list[RetentionScoreRead]:
    """Scored clients with at least one visit whose lapse risk is `minimum_lapse_risk` or more, the most
    at risk first: whom lapse outreach considers (without opening anyone's PHI)."""
    require(actor, "retention", "read")
    rows = session.scalars(
        select(ClientRetentionScore)
        .where(
            ClientRetentionScore.organization_id == actor.organization_id,
            ClientRetentionScore.visits > 0,
            ClientRetentionScore.lapse_risk >= minimum_lapse_risk,
        )
        .order_by(ClientRetentionScore.lapse_risk.desc(), ClientRetentionScore.client_id)
        .limit(limit)
    )
    return [RetentionScoreRead.model_validate(row) for row in rows]


def scored_organizations(session: Session) -> list[uuid.UUID]:
    """The organizations with retention scores (what the worker's daily outreach goes through)."""
    return list(session.scalars(select(ClientRetentionScore.organization_id).distinct()))


def forget_score(session: Session, *, actor: Actor, client_id: uuid.UUID) -> None:
    """Drop the stored scores of a client record merged into another (`clients.merge`): they described
    half a client; the kept record is scored again from its whole history."""
    require(actor, "clients", "merge")
    for model in (ClientRetentionScore, MembershipLapseScore):
        session.execute(
            delete(model).where(model.organization_id == actor.organization_id, model.client_id == client_id)
        )
