"""The approval queue of a manager or owner: automated actions waiting for a person (ADR 20), client
erasure requests waiting for a second person (ADR 17), each approved or refused from one page, and the
alert list of emergency (break-glass) access opened lately, which a manager may end."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from medspa.api import SessionDep
from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.errors import MedspaError
from medspa.resources import service as resources
from medspa.security import emergency, gate
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
    def work() -> tuple[str, str]:
        done = gate.decide(session, actor=actor, action_id=action_id, approve=decision == "approve")
        verb = {
            "approved": "Approved and carried out",
            "rejected": "Rejected",
            "failed": "Approved, but it failed",
        }
        message = f"{verb.get(done.state, done.state.capitalize())}: {done.summary}."
        return message, "error" if done.state == "failed" else "ok"

    return _decided(request, session, actor, work)


@router.post("/approvals/erasures/{erasure_id}/{decision}", dependencies=SameOrigin)
@permits("clients", "erase")
def decide_erasure(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    erasure_id: uuid.UUID,
    decision: Literal["approve", "refuse"],
) -> Response:
    def work() -> tuple[str, str]:
        done = clients.decide_erasure(
            session, actor=actor, erasure_id=erasure_id, approve=decision == "approve"
        )
        return (
            "The client was erased." if done.state == "erased" else "The erasure request was refused."
        ), "ok"

    return _decided(request, session, actor, work)


@router.post("/approvals/emergency/{access_id}/close", dependencies=SameOrigin)
@permits("emergency_access", "close")
def close_emergency(
    request: Request, session: SessionDep, actor: PageActor, access_id: uuid.UUID
) -> Response:
    def work() -> tuple[str, str]:
        emergency.close_access(session, actor=actor, access_id=access_id)
        return "The emergency access was ended.", "ok"

    return _decided(request, session, actor, work)


def _decided(
    request: Request, session: Session, actor: Actor, work: Callable[[], tuple[str, str]]
) -> Response:
    """Do `work` in a savepoint and show the page with what it says; when it is refused, nothing of it
    stays and the page says why (with the refusal's status)."""
    try:
        with session.begin_nested():
            message, kind = work()
    except MedspaError as error:
        problem = f"Nothing was done: {readable(error)}."
        return _page(request, session, actor, message=problem, status_code=error.status_code)
    return _page(request, session, actor, message=message, kind=kind)


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
    locations = resources.list_locations(session, actor=actor, limit=LIST_LIMIT).items
    emergencies = emergency.list_open(session, actor=actor) if actor.can("emergency_access", "read") else []
    context = {
        "actor": actor,
        "locations": locations,
        "location_names": {location.id: location.name for location in locations},
        "emergencies": emergencies,
        "now": clock.now(),
        "actions": actions,
        "erasures": erasures,
        "names": clients.client_names(session, actor=actor, client_ids={e.client_id for e in erasures}),
        "message": message,
        "kind": kind,
    }
    return templates.TemplateResponse(request, "approvals.html", context, status_code=status_code)
