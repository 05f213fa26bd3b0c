"""HTTP routes for messages, each location's engagement policy and templates, waitlist offers, and the
SMS provider's webhook for replies."""

from __future__ import annotations

import logging
import os
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from medspa.api import ActorDep, Limit, Offset, SessionDep
from medspa.config import load_settings
from medspa.engagement import service
from medspa.engagement.inbound import is_signed
from medspa.engagement.schemas import (
    CallListRead,
    ChannelName,
    MessageKind,
    MessageRead,
    MessageState,
    OfferRead,
    OfferState,
    OverbookingRead,
    PolicyRead,
    PolicyUpdate,
    PreviewRead,
    TemplateBody,
    TemplateRead,
)
from medspa.kit.db import run_in_unit_of_work
from medspa.kit.errors import AuthenticationError, NotFoundError, ValidationFailedError
from medspa.kit.schemas import BoundedDate, Page
from medspa.scheduling.schemas import BookingRequest
from medspa.security import service as security
from medspa.security.permissions import permits, public

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["engagement"])
OrganizationSlug = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
# An SMS reply's form is small; anything bigger is not one.
MAX_SMS_FORM_BYTES = 16_000


@router.get("/messages")
@permits("messages", "read")
def list_messages(
    session: SessionDep,
    actor: ActorDep,
    client_id: uuid.UUID | None = None,
    appointment_id: uuid.UUID | None = None,
    state: MessageState | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[MessageRead]:
    """Messages to clients, newest first: kind, channel, state, and why one was not sent."""
    return service.list_messages(
        session,
        actor=actor,
        client_id=client_id,
        appointment_id=appointment_id,
        state=state,
        limit=limit,
        offset=offset,
    )


@router.get("/locations/{location_id}/engagement-policy")
@permits("engagement", "read")
def get_policy(location_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> PolicyRead:
    return service.get_policy(session, actor=actor, location_id=location_id)


@router.patch("/locations/{location_id}/engagement-policy")
@permits("engagement", "manage")
def set_policy(
    location_id: uuid.UUID, data: PolicyUpdate, session: SessionDep, actor: ActorDep
) -> PolicyRead:
    """Quiet hours (location wall clock), caps per client, reminder offsets, offer limits."""
    return service.set_policy(session, actor=actor, location_id=location_id, data=data)


@router.get("/locations/{location_id}/message-templates/{kind}/{channel}")
@permits("engagement", "read")
def get_template(
    location_id: uuid.UUID, kind: MessageKind, channel: ChannelName, session: SessionDep, actor: ActorDep
) -> TemplateRead:
    return service.get_template(session, actor=actor, location_id=location_id, kind=kind, channel=channel)


@router.put("/locations/{location_id}/message-templates/{kind}/{channel}")
@permits("engagement", "manage")
def set_template(
    location_id: uuid.UUID,
    kind: MessageKind,
    channel: ChannelName,
    data: TemplateBody,
    session: SessionDep,
    actor: ActorDep,
) -> TemplateRead:
    """The location's own wording (Jinja2; 422 naming the problem when it does not render)."""
    return service.set_template(
        session, actor=actor, location_id=location_id, kind=kind, channel=channel, data=data
    )


@router.post("/locations/{location_id}/message-templates/{kind}/{channel}/preview")
@permits("engagement", "read")
def preview_template(
    location_id: uuid.UUID,
    kind: MessageKind,
    channel: ChannelName,
    session: SessionDep,
    actor: ActorDep,
    data: TemplateBody | None = None,
) -> PreviewRead:
    """The template given (or the one in force) rendered with sample values."""
    return service.preview_template(
        session, actor=actor, location_id=location_id, kind=kind, channel=channel, data=data
    )


@router.get("/locations/{location_id}/call-list")
@permits("appointments", "read")
def call_list(
    location_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    on: Annotated[BoundedDate | None, Query(alias="date")] = None,
) -> list[CallListRead]:
    """The day's booked, unconfirmed visits at high risk of a no-show (tomorrow at the location by
    default), the riskiest first."""
    return service.call_list(session, actor=actor, location_id=location_id, local_day=on)


@router.get("/waitlist-offers")
@permits("waitlist", "read")
def list_offers(
    session: SessionDep,
    actor: ActorDep,
    location_id: uuid.UUID | None = None,
    state: OfferState | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[OfferRead]:
    """Offers of freed times to waitlisted clients, newest first, with their state."""
    return service.list_offers(
        session, actor=actor, location_id=location_id, state=state, limit=limit, offset=offset
    )


@router.post(
    "/appointments/overbook",
    status_code=201,
    responses={202: {"model": OverbookingRead, "description": "waiting for a manager's approval"}},
)
@permits("appointments", "overbook")
def overbook_appointment(
    data: BookingRequest, session: SessionDep, actor: ActorDep, response: Response
) -> OverbookingRead:
    """Book beside the named provider's own booking while the provider's expected overflow that day
    (minutes beyond capacity, from the served no-show probabilities) stays within the location's
    `overbooking_cap_minutes`. 201 with the appointment when booked; 202 when the agent gate holds it
    for a manager's approval; 409 with the reason when the policy does not allow it (nothing written)."""
    result = service.overbook(session, actor=actor, data=data)
    if result.appointment is None:
        response.status_code = 202
    return result


@router.post("/sms/{organization}/replies", response_class=Response)
@public
async def receive_sms(organization: OrganizationSlug, request: Request) -> Response:
    """The SMS provider's webhook for a client's reply (form fields `From`, `Body`), signed with
    `X-Twilio-Signature` over `MEDSPA_PUBLIC_URL` + this path. 401 for a bad or missing signature
    (nothing done), 404 when no SMS channel is configured. Answers TwiML."""
    channels = service.configured(os.environ)
    if channels.sms is None:
        raise NotFoundError("SMS channel", organization)
    if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise ValidationFailedError("body", "an SMS reply comes as application/x-www-form-urlencoded")
    # (The form is parsed, and checked for NUL, by a dependency every route has: `kit.limits`.)
    form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
    if sum(len(key) + len(value) for key, value in form.items()) > MAX_SMS_FORM_BYTES:
        raise ValidationFailedError("body", "too large for an SMS reply")
    url = f"{load_settings().public_url.rstrip('/')}{request.url.path}"
    if not is_signed(channels.sms.auth_token, url, form, request.headers.get("X-Twilio-Signature", "")):
        logger.warning("SMS reply to %s refused: bad signature", organization)
        raise AuthenticationError("the reply's signature does not match")
    sender, body = form.get("From", ""), form.get("Body", "")
    if "\x00" in sender + body or len(body) > 1600 or len(sender) > 32:
        raise ValidationFailedError("Body", "not an SMS reply")

    def act(session: Session) -> str:
        found = security.find_organization(session, slug=organization)
        if found is None:
            raise NotFoundError("organization", organization)
        return service.receive_sms(
            session, organization_id=found.id, sender=sender, body=body, clinic=found.name
        )

    answer = await run_in_threadpool(run_in_unit_of_work, request.app.state.engine, act)
    escaped = answer.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    twiml = f"<Response><Message>{escaped}</Message></Response>" if answer else "<Response/>"
    return Response(f'<?xml version="1.0" encoding="UTF-8"?>{twiml}', media_type="text/xml")
