"""HTTP routes for users and API tokens."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response

from medspa.api import ActorDep, Limit, Offset, SessionDep
from medspa.kit.errors import NotFoundError
from medspa.kit.schemas import Page
from medspa.resources import service as resources
from medspa.security import emergency, gate, service
from medspa.security.actors import system_actor
from medspa.security.permissions import permits
from medspa.security.schemas import (
    AgentActionRead,
    AgentPolicyRead,
    AgentPolicyUpdate,
    EmergencyAccessOpen,
    EmergencyAccessRead,
    IssuedToken,
    TokenCreate,
    TokenRead,
    UserCreate,
    UserRead,
)

router = APIRouter(prefix="/api/v1", tags=["security"])


@router.post("/users", status_code=201)
@permits("users", "create")
def create_user(data: UserCreate, session: SessionDep, actor: ActorDep) -> UserRead:
    return service.create_user(session, actor=actor, data=data)


@router.post("/tokens", status_code=201)
@permits("tokens", "create")
def issue_token(data: TokenCreate, session: SessionDep, actor: ActorDep) -> IssuedToken:
    return service.issue_token(session, actor=actor, data=data)


@router.get("/tokens")
@permits("tokens", "list")
def list_tokens(session: SessionDep, actor: ActorDep) -> list[TokenRead]:
    """The organization's API tokens with when each was last used and revoked (managers and owners)."""
    return service.list_tokens(session, actor=actor)


@router.delete("/tokens/{token_id}", status_code=204)
@permits("tokens", "revoke")
def revoke_token(token_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    service.revoke_token(session, actor=actor, token_id=token_id)
    return Response(status_code=204)


AgentActionState = Literal["ran", "queued", "approved", "rejected", "failed"]
ActionName = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9_.\-]+$")]


@router.get("/agent-actions")
@permits("agent_actions", "read")
def list_agent_actions(
    session: SessionDep,
    actor: ActorDep,
    state: AgentActionState | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AgentActionRead]:
    """The log of automated actions, newest first, each with its agent, trigger and who approved it;
    `state=queued` is the approval queue (managers and owners)."""
    return gate.list_actions(session, actor=actor, state=state, limit=limit, offset=offset)


@router.post("/agent-actions/{action_id}/approve")
@permits("agent_actions", "decide")
def approve_agent_action(action_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> AgentActionRead:
    """Run a queued action now, as its agent, with the approver named in the log."""
    return gate.decide(session, actor=actor, action_id=action_id, approve=True)


@router.post("/agent-actions/{action_id}/reject")
@permits("agent_actions", "decide")
def reject_agent_action(action_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> AgentActionRead:
    return gate.decide(session, actor=actor, action_id=action_id, approve=False)


@router.get("/agent-policies")
@permits("agent_policies", "read")
def list_agent_policies(session: SessionDep, actor: ActorDep) -> list[AgentPolicyRead]:
    """Every kind of automated action with its tier and thresholds in force here."""
    return gate.list_policies(session, actor=actor)


@router.put("/agent-policies/{action}")
@permits("agent_policies", "manage")
def set_agent_policy(
    action: ActionName, data: AgentPolicyUpdate, session: SessionDep, actor: ActorDep
) -> AgentPolicyRead:
    """Make a kind stricter (owners): a higher tier, or tier 2's thresholds. Never below its own tier."""
    return gate.set_policy(session, actor=actor, action=action, data=data)


@router.post("/emergency-access", status_code=201)
@permits("emergency_access", "open")
def open_emergency_access(
    data: EmergencyAccessOpen, session: SessionDep, actor: ActorDep
) -> EmergencyAccessRead:
    """Break-glass: open access to a location outside your own for at most 4 hours (`minutes`), with a
    written reason. It is audited and shows on the managers' alert list."""
    try:
        resources.get_location(
            session, actor=system_actor(actor.organization_id), location_id=data.location_id
        )
    except NotFoundError:
        exists = False
    else:
        exists = True
    return emergency.open_access(session, actor=actor, data=data, location_exists=exists)


@router.get("/emergency-access")
@permits("emergency_access", "read")
def list_emergency_access(session: SessionDep, actor: ActorDep) -> list[EmergencyAccessRead]:
    """The alert list: emergency access open now or ended within the last day."""
    return emergency.list_open(session, actor=actor)


@router.post("/emergency-access/{access_id}/close")
@permits("emergency_access", "open")
def close_emergency_access(access_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> EmergencyAccessRead:
    """End emergency access now: its holder, or a manager or owner."""
    return emergency.close_access(session, actor=actor, access_id=access_id)
