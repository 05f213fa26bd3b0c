"""The approval queue of a manager or owner: automated actions waiting for a person (ADR 20) and client
erasure requests waiting for a second person (ADR 17), each approved or refused from one page."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from medspa.api import SessionDep
from medspa.clients import service as clients
from medspa.kit.errors import MedspaError
from medspa.resources import service as resources
from medspa.security import gate
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.forms import LIST_LIMIT
from medspa.web.guards import PageActor, PageRoute, SameOrigin, readable, templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/approvals")
@permits("agent_actions", "read")
def approvals(request: Request, session: SessionDep, actor: PageActor) -> Response:
    return _page(request, session, actor)


@router.post("/approvals/actions/{action_id}/{decision}", dependencies=SameOrigin)
@permits("agent_actions", "decide")
def decide_action(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    action_id: uuid.UUID,
    decision: Literal["approve", "reject"],
) -> Response:
    try:
        with session.begin_nested():
            done = gate.decide(session, actor=actor, action_id=action_id, approve=decision == "approve")
    except MedspaError as error:
        return _page(
            request,
            session,
            actor,
            message=f"Nothing was done: {readable(error)}.",
            status_code=error.status_code,
        )
    verb = {
        "approved": "Approved and carried out",
        "rejected": "Rejected",
        "failed": "Approved, but it failed",
    }
    message = f"{verb.get(done.state, done.state.capitalize())}: {done.summary}."
    return _page(request, session, actor, message=message, kind="error" if done.state == "failed" else "ok")


@router.post("/approvals/erasures/{erasure_id}/{decision}", dependencies=SameOrigin)
@permits("clients", "erase")
def decide_erasure(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    erasure_id: uuid.UUID,
    decision: Literal["approve", "refuse"],
) -> Response:
    try:
        with session.begin_nested():
            done = clients.decide_erasure(
                session, actor=actor, erasure_id=erasure_id, approve=decision == "approve"
            )
    except MedspaError as error:
        return _page(
            request,
            session,
            actor,
            message=f"Nothing was done: {readable(error)}.",
            status_code=error.status_code,
        )
    message = "The client was erased." if done.state == "erased" else "The erasure request was refused."
    return _page(request, session, actor, message=message, kind="ok")


def _page(
    request: Request,
    session: Session,
    actor: Actor,
    *,
    message: str | None = None,
    kind: str = "error",
    status_code: int = 200,
) -> Response:
    actions = gate.list_actions(session, actor=actor, state="queued", limit=LIST_LIMIT).items
    erasures = (
        clients.list_erasures(session, actor=actor, state="requested", limit=LIST_LIMIT).items
        if actor.can("clients", "erase")
        else []
    )
    context = {
        "actor": actor,
        "locations": resources.list_locations(session, actor=actor, limit=LIST_LIMIT).items,
        "actions": actions,
        "erasures": erasures,
        "names": clients.client_names(session, actor=actor, client_ids={e.client_id for e in erasures}),
        "message": message,
        "kind": kind,
    }
    return templates.TemplateResponse(request, "approvals.html", context, status_code=status_code)
