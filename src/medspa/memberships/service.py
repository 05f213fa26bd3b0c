"""Memberships: starting and ending a client's membership, and reading them. Reading needs
`("memberships", "read")`, starting and ending `("memberships", "manage")`; functions flush, never
commit. Events carry ids only (`membership.started`, `membership.ended`), never PHI.

One active membership per client: `start_membership` locks the client's row (PostgreSQL; SQLite's
writer is alone anyway) and then looks for an active one, so two starts for one client happen one after
the other and the second is refused; the partial unique index over active memberships refuses a second
active row even to code that skipped the check.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.crud import get_owned, list_owned
from medspa.kit.errors import ConflictError, ValidationFailedError
from medspa.kit.outbox import record_event
from medspa.kit.schemas import Page
from medspa.memberships import repository
from medspa.memberships.models import Membership
from medspa.memberships.schemas import (
    MembershipCounts,
    MembershipEnd,
    MembershipRead,
    MembershipStart,
    MembershipState,
)
from medspa.resources import service as resources
from medspa.security.actors import Actor, require


def start_membership(
    session: Session, *, actor: Actor, client_id: uuid.UUID, data: MembershipStart
) -> MembershipRead:
    """Start a membership for the client. NotFoundError for an unknown client or location (or another
    organization's); ConflictError (409) when the client is deactivated, already has an active
    membership, or `started_on` is before the end of their last one. Emits `membership.started`."""
    require(actor, "memberships", "manage")
    if not clients.is_active(session, actor=actor, client_id=client_id, lock=True):
        raise ConflictError("this client's record is inactive; a membership cannot start")
    if data.location_id is not None:
        resources.get_location(session, actor=actor, location_id=data.location_id)
    current = repository.active_of_client(session, actor.organization_id, client_id)
    if current is not None:
        raise ConflictError(
            f"the client already has an active membership ({current.plan}, since "
            f"{current.started_on.isoformat()}); end it first"
        )
    last_end = repository.latest_end_of_client(session, actor.organization_id, client_id)
    if last_end is not None and data.started_on < last_end:
        raise ConflictError(
            f"the client's last membership ends on {last_end.isoformat()}; a new one starts on or after it"
        )
    membership = Membership(
        organization_id=actor.organization_id,
        client_id=client_id,
        location_id=data.location_id,
        plan=data.plan,
        monthly_price_cents=data.monthly_price_cents,
        started_on=data.started_on,
        created_at=clock.now(),
    )
    try:
        with session.begin_nested():
            session.add(membership)
            session.flush()
    except IntegrityError:  # the partial unique index: another start won in between
        raise ConflictError("the client already has an active membership; end it first") from None
    record_event(
        session,
        actor,
        "membership.started",
        membership.id,
        {"id": str(membership.id), "client_id": str(client_id)},
    )
    return MembershipRead.model_validate(membership)


def end_membership(
    session: Session, *, actor: Actor, membership_id: uuid.UUID, data: MembershipEnd
) -> MembershipRead:
    """Record the end of a membership on `data.ended_on` (today, a past date, or a later one: the end of
    a notice period) for `data.reason`. The membership's row is locked while deciding. NotFoundError
    for an unknown or foreign id; ConflictError (409) when its end is recorded already;
    ValidationFailedError (422) when `ended_on` is before it started. Emits `membership.ended`."""
    require(actor, "memberships", "manage")
    membership = get_owned(session, Membership, actor.organization_id, membership_id, "membership", lock=True)
    if membership.ended_on is not None:
        raise ConflictError(f"this membership has ended already (on {membership.ended_on.isoformat()})")
    if data.ended_on < membership.started_on:
        raise ValidationFailedError(
            "ended_on", f"is before the membership started ({membership.started_on.isoformat()})"
        )
    membership.ended_on = data.ended_on
    membership.end_reason = data.reason.value
    membership.ended_at = clock.now()
    session.flush()
    record_event(
        session,
        actor,
        "membership.ended",
        membership.id,
        {"id": str(membership.id), "client_id": str(membership.client_id)},
    )
    return MembershipRead.model_validate(membership)


def get_membership(session: Session, *, actor: Actor, membership_id: uuid.UUID) -> MembershipRead:
    """The membership; NotFoundError for an unknown or foreign id."""
    require(actor, "memberships", "read")
    return MembershipRead.model_validate(
        get_owned(session, Membership, actor.organization_id, membership_id, "membership")
    )


def client_memberships(session: Session, *, actor: Actor, client_id: uuid.UUID) -> list[MembershipRead]:
    """The client's memberships, the latest start first. NotFoundError for an unknown client."""
    require(actor, "memberships", "read")
    clients.is_active(session, actor=actor, client_id=client_id)
    return [
        MembershipRead.model_validate(m)
        for m in repository.of_client(session, actor.organization_id, client_id)
    ]


def active_membership(session: Session, *, actor: Actor, client_id: uuid.UUID) -> MembershipRead | None:
    """The client's active membership, or None."""
    require(actor, "memberships", "read")
    found = repository.active_of_client(session, actor.organization_id, client_id)
    return None if found is None else MembershipRead.model_validate(found)


def list_memberships(
    session: Session,
    *,
    actor: Actor,
    state: MembershipState | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[MembershipRead]:
    """The organization's memberships in order of start; `state` keeps the active ones (no end
    recorded) or the ended ones."""
    require(actor, "memberships", "read")
    filters: list[ColumnElement[bool]] = []
    if state is MembershipState.ACTIVE:
        filters.append(Membership.ended_on.is_(None))
    elif state is MembershipState.ENDED:
        filters.append(Membership.ended_on.is_not(None))
    rows, total = list_owned(
        session,
        Membership,
        actor.organization_id,
        *filters,
        order_by=(Membership.started_on, Membership.id),
        limit=limit,
        offset=offset,
    )
    return Page(
        items=[MembershipRead.model_validate(m) for m in rows], total=total, limit=limit, offset=offset
    )


def memberships_started_by(session: Session, *, actor: Actor, on: date) -> list[MembershipRead]:
    """Every membership started on or before `on`, in order of start: the book a churn model learns."""
    require(actor, "memberships", "read")
    return [
        MembershipRead.model_validate(m) for m in repository.started_by(session, actor.organization_id, on)
    ]


def membership_counts(session: Session, *, actor: Actor, on: date) -> MembershipCounts:
    """How many memberships started by `on`, and how many of those ended by `on`."""
    require(actor, "memberships", "read")
    total, ended = repository.counts(session, actor.organization_id, on)
    return MembershipCounts(total=total, ended=ended)


def reassign_client(
    session: Session, *, actor: Actor, from_client_id: uuid.UUID, to_client_id: uuid.UUID
) -> dict[str, int]:
    """Give the memberships of one client record to another (a merge of two records of one client,
    `clients.merge`); how many moved. 409 when both records have an active membership: one client holds
    one at a time, so the desk ends one first."""
    require(actor, "clients", "merge")
    rows = session.scalars(
        select(Membership)
        .where(
            Membership.organization_id == actor.organization_id,
            Membership.client_id.in_((from_client_id, to_client_id)),
        )
        .order_by(Membership.started_on, Membership.id)
    ).all()
    if sum(1 for m in rows if m.ended_on is None) > 1:
        raise ConflictError("both records have an active membership: end one of them before merging")
    moved = [m for m in rows if m.client_id == from_client_id]
    for membership in moved:
        membership.client_id = to_client_id
    session.flush()
    return {"memberships": len(moved)}
