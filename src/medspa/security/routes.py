"""HTTP routes for users and API tokens."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from medspa.api import ActorDep, SessionDep
from medspa.security import service
from medspa.security.permissions import permits
from medspa.security.schemas import IssuedToken, TokenCreate, TokenRead, UserCreate, UserRead

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
