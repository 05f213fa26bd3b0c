"""HTTP routes for the stored model outputs of clients."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from medspa.api import ActorDep, SessionDep
from medspa.retention import service
from medspa.retention.schemas import RetentionScoreRead
from medspa.security.permissions import permits

router = APIRouter(prefix="/api/v1", tags=["retention"])


@router.get("/clients/{client_id}/retention")
@permits("retention", "read")
def get_retention_score(client_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RetentionScoreRead:
    """The client's retention score (lapse risk, expected next visit) from the active return model;
    404 until the worker has scored the client."""
    return service.get_retention_score(session, actor=actor, client_id=client_id)
