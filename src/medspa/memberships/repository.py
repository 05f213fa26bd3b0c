"""Queries on memberships."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medspa.memberships.models import Membership


def active_of_client(session: Session, organization_id: uuid.UUID, client_id: uuid.UUID) -> Membership | None:
    return session.scalar(
        select(Membership).where(
            Membership.organization_id == organization_id,
            Membership.client_id == client_id,
            Membership.ended_on.is_(None),
        )
    )


def latest_end_of_client(session: Session, organization_id: uuid.UUID, client_id: uuid.UUID) -> date | None:
    """The latest end date among the client's ended memberships (None without any)."""
    return session.scalar(
        select(func.max(Membership.ended_on)).where(
            Membership.organization_id == organization_id, Membership.client_id == client_id
        )
    )


def of_client(session: Session, organization_id: uuid.UUID, client_id: uuid.UUID) -> list[Membership]:
    """The client's memberships, the latest start first."""
    return list(
        session.scalars(
            select(Membership)
            .where(Membership.organization_id == organization_id, Membership.client_id == client_id)
            .order_by(Membership.started_on.desc(), Membership.created_at.desc(), Membership.id)
        )
    )


def counts(session: Session, organization_id: uuid.UUID, on: date) -> tuple[int, int]:
    """(memberships started by `on`, of which ended by `on`)."""
    started = Membership.started_on <= on
    total = session.scalar(select(func.count()).where(Membership.organization_id == organization_id, started))
    ended = session.scalar(
        select(func.count()).where(
            Membership.organization_id == organization_id, started, Membership.ended_on <= on
        )
    )
    return int(total or 0), int(ended or 0)


def started_by(session: Session, organization_id: uuid.UUID, on: date) -> list[Membership]:
    """Every membership started by `on`, in order of start (then id)."""
    return list(
        session.scalars(
            select(Membership)
            .where(Membership.organization_id == organization_id, Membership.started_on <= on)
            .order_by(Membership.started_on, Membership.id)
        )
    )
