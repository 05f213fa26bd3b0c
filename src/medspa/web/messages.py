"""A location's messages to clients: what was sent lately and what became of each, the location's limits
(and its cap on overbooking, which a manager sets here), and the wording of every kind of message,
previewed with sample values and edited by a manager."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from medspa.api import SessionDep
from medspa.engagement import service as engagement
from medspa.engagement.schemas import PolicyUpdate, TemplateBody
from medspa.engagement.templates import BUILT_IN
from medspa.kit import audit_trail
from medspa.kit.errors import MedspaError, NotFoundError
from medspa.resources import service as resources
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.guards import PageActor, PageRoute, SameOrigin, readable, templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)
KINDS = sorted({kind for kind, _ in BUILT_IN})


def _page(
    request: Request,
    session: Session,
    actor: Actor,
    location_id: uuid.UUID,
    *,
    message: str | None = None,
    kind: str = "ok",
    status_code: int = 200,
) -> Response:
    location = resources.get_location(session, actor=actor, location_id=location_id)
    wording = []
    for name in KINDS:
        for channel in ("email", "sms"):
            template = engagement.get_template(
                session, actor=actor, location_id=location_id, kind=name, channel=channel
            )
            preview = engagement.preview_template(
                session, actor=actor, location_id=location_id, kind=name, channel=channel, data=None
            )
            wording.append((template, preview))
    context = {
        "actor": actor,
        "location": location,
        "locations": resources.list_locations(session, actor=actor, limit=100).items,
        "current_location_id": location.id,
        "policy": engagement.get_policy(session, actor=actor, location_id=location_id),
        "recent": engagement.list_messages(session, actor=actor, limit=50).items
        if actor.can("messages", "read")
        else [],
        "wording": wording,
        "message": message,
        "kind": kind,
    }
    return templates.TemplateResponse(request, "messages.html", context, status_code=status_code)


def _refused(
    request: Request, session: Session, actor: Actor, location_id: uuid.UUID, error: MedspaError
) -> Response:
    """The page again, saying why a change was refused (and the refusal in the audit trail)."""
    audit_trail.record_refusal(session, error)
    return _page(
        request,
        session,
        actor,
        location_id,
        message=readable(error),
        kind="error",
        status_code=error.status_code,
    )


@router.get("/locations/{location_id}/messages")
@permits("engagement", "read")
def messages_page(
    request: Request, session: SessionDep, actor: PageActor, location_id: uuid.UUID
) -> Response:
    return _page(request, session, actor, location_id)


@router.post("/locations/{location_id}/messages/overbooking", dependencies=SameOrigin)
@permits("engagement", "manage")
def save_overbooking_cap(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    cap: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Set the location's cap on the expected overflow of overbooking, in minutes per provider and day
    (0: no overbooking)."""
    try:
        data = PolicyUpdate.model_validate({"overbooking_cap_minutes": cap.strip()})
        with session.begin_nested():
            engagement.set_policy(session, actor=actor, location_id=location_id, data=data)
    except ValidationError:
        problem = "the cap is a whole number of minutes from 0 to 480"
        return _page(request, session, actor, location_id, message=problem, kind="error", status_code=422)
    except MedspaError as error:
        return _refused(request, session, actor, location_id, error)
    return _page(request, session, actor, location_id, message="Overbooking cap saved.")


@router.post("/locations/{location_id}/messages/{kind}/{channel}", dependencies=SameOrigin)
@permits("engagement", "manage")
def save_template(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    location_id: uuid.UUID,
    kind: str,
    channel: str,
    subject: Annotated[str, Form()] = "",
    text_body: Annotated[str, Form()] = "",
    html_body: Annotated[str, Form()] = "",
) -> Response:
    """Save the location's wording of one kind of message (refused, naming the problem, when it does not
    render with the sample values)."""
    if (kind, channel) not in BUILT_IN:
        raise NotFoundError("message template", f"{kind}/{channel}")
    try:
        data = TemplateBody(subject=subject, text_body=text_body, html_body=html_body)
        with session.begin_nested():
            engagement.set_template(
                session, actor=actor, location_id=location_id, kind=kind, channel=channel, data=data
            )
    except ValidationError as error:
        problem = "; ".join(str(e["msg"]) for e in error.errors())
        return _page(request, session, actor, location_id, message=problem, kind="error", status_code=422)
    except MedspaError as error:
        return _refused(request, session, actor, location_id, error)
    return _page(
        request, session, actor, location_id, message=f"Saved the {kind.replace('_', ' ')} {channel}."
    )
