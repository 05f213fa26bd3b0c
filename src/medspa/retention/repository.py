"""Queries on the retention tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from medspa.retention.models import ClientRetentionScore, MembershipLapseScore

SCORE_FIELDS = (
    "visits",
    "last_visit_on",
    "expected_next_visit_on",
    "horizon_days",
    "probability_return",
    "expected_visits",
    "lapse_risk",
    "model_version",
    "scored_at",
    "next_action",
    "next_action_reason",
    "next_action_send_after",
)


def find_score(
    session: Session, organization_id: uuid.UUID, client_id: uuid.UUID
) -> ClientRetentionScore | None:
    return session.scalar(
        select(ClientRetentionScore).where(
            ClientRetentionScore.organization_id == organization_id,
            ClientRetentionScore.client_id == client_id,
        )
    )


def upsert_scores(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or overwrite one score per (organization, client) in one statement per 500 rows, so that
    concurrent refreshes of one client cannot both insert."""
    if not rows:
        return
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(rows), 500):
        statement = insert(ClientRetentionScore).values(list(rows[start : start + 500]))
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["organization_id", "client_id"],
                set_={name: statement.excluded[name] for name in SCORE_FIELDS},
            )
        )
    session.flush()


def replace_membership_scores(
    session: Session, organization_id: uuid.UUID, rows: Sequence[dict[str, Any]]
) -> None:
    """The organization's membership lapse scores become `rows` (members no longer active lose theirs)."""
    session.execute(
        delete(MembershipLapseScore).where(MembershipLapseScore.organization_id == organization_id)
    )
    if rows:
        session.execute(insert(MembershipLapseScore), list(rows))
    session.flush()


def find_membership_score(
    session: Session, organization_id: uuid.UUID, client_id: uuid.UUID
) -> MembershipLapseScore | None:
    return session.scalar(
        select(MembershipLapseScore).where(
            MembershipLapseScore.organization_id == organization_id,
            MembershipLapseScore.client_id == client_id,
        )
    )
