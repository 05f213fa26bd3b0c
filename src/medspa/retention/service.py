"""Retention's public functions for the API and the CLI: reading a client's stored retention score.

The scores are written by `retention.scoring` (the worker, the demo seed, the model commands), which
loads the models and pandas; this module stays light so the web process does not import them.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from medspa.clients import service as clients
from medspa.kit.errors import NotFoundError
from medspa.retention import repository
from medspa.retention.schemas import RetentionScoreRead
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
