"""HTTP routes for memberships."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from medspa.api import ActorDep, Limit, Offset, SessionDep
from medspa.kit.schemas import Page
from medspa.memberships import service
from medspa.memberships.schemas import MembershipEnd, MembershipRead, MembershipStart, MembershipState
from medspa.security.permissions import permits

router = APIRouter(prefix="/api/v1", tags=["memberships"])


@router.post("/clients/{client_id}/memberships", status_code=201)
@permits("memberships", "manage")
def start_membership(
    client_id: uuid.UUID, data: MembershipStart, session: SessionDep, actor: ActorDep
) -> MembershipRead:
    """Start a membership for the client. 409 when the client already has an active one (or a new one
    would start before the last one ends), nothing written."""
    return service.start_membership(session, actor=actor, client_id=client_id, data=data)


@router.get("/clients/{client_id}/memberships")
@permits("memberships", "read")
def client_memberships(client_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> list[MembershipRead]:
    """The client's memberships, the latest start first."""
    return service.client_memberships(session, actor=actor, client_id=client_id)


@router.get("/memberships")
@permits("memberships", "read")
def list_memberships(
    session: SessionDep,
    actor: ActorDep,
    state: MembershipState | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[MembershipRead]:
    return service.list_memberships(session, actor=actor, state=state, limit=limit, offset=offset)


@router.get("/memberships/{membership_id}")
@permits("memberships", "read")
def get_membership(membership_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> MembershipRead:
    return service.get_membership(session, actor=actor, membership_id=membership_id)


@router.post("/memberships/{membership_id}/end")
@permits("memberships", "manage")
def end_membership(
    membership_id: uuid.UUID, data: MembershipEnd, session: SessionDep, actor: ActorDep
) -> MembershipRead:
    """Record the membership's end (date and reason). 409 when it has ended already; 422 when the date
    is before its start; nothing written either way."""
    return service.end_membership(session, actor=actor, membership_id=membership_id, data=data)
