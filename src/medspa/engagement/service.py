"""Engagement's public functions: what staff read and set (messages, policies, templates, offers), what
clients do through their links and replies, and what the worker runs (the `engagement` outbox
consumer, the dispatcher, the offers' sweep). Functions flush, never commit.

The work is in modules of its own: `planner` (events -> messages and freed times), `rules` (consent,
quiet hours, caps), `dispatch` (sending), `offers` (waitlist backfill), `inbound` (replies, unsubscribe
links), `channels` (SMTP, SMS), `templates` and `settings` (each location's wording and limits).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.engagement import inbound
from medspa.engagement.channels import Channels, configured
from medspa.engagement.dispatch import DispatchReport, dispatch_due, release_interrupted
from medspa.engagement.models import EngagementPolicy, Message, MessageTemplate, WaitlistOffer
from medspa.engagement.offers import Acceptance, accept_offer, find_offer, sweep
from medspa.engagement.outreach import reach_out
from medspa.engagement.overbooking import overbook
from medspa.engagement.planner import CONSUMER, EngagementHandler, agent, plan_event
from medspa.engagement.risk import ask_everywhere, call_list, remind_now
from medspa.engagement.rules import DEFAULTS
from medspa.engagement.schemas import (
    MessageRead,
    OfferRead,
    PolicyRead,
    PolicyUpdate,
    PreviewRead,
    TemplateBody,
    TemplateRead,
)
from medspa.engagement.settings import policy_columns, policy_for, template_for
from medspa.engagement.templates import BUILT_IN, Template, TemplateInvalidError, check
from medspa.kit import clock, tz
from medspa.kit.crud import list_owned
from medspa.kit.errors import NotFoundError, ValidationFailedError
from medspa.kit.outbox import OutboxEvent, move_cursor, record_event
from medspa.kit.schemas import Page
from medspa.resources import service as resources
from medspa.security.actors import Actor, require

__all__ = [
    "CONSUMER",
    "Acceptance",
    "Channels",
    "DispatchReport",
    "EngagementHandler",
    "OfferView",
    "accept_offer",
    "ask_everywhere",
    "call_list",
    "configured",
    "dispatch_due",
    "get_policy",
    "get_template",
    "list_messages",
    "list_offers",
    "offer_view",
    "overbook",
    "plan_event",
    "preview_template",
    "reach_out",
    "reassign_client",
    "receive_sms",
    "release_interrupted",
    "remind_now",
    "set_policy",
    "set_template",
    "start_after_history",
    "sweep",
    "unsubscribe",
]


def start_after_history(session: Session) -> None:
    """Move the `engagement` consumer past every event written so far (a seeded or imported history:
    its bookings and cancellations call for no messages)."""
    head = session.scalar(select(func.max(OutboxEvent.id))) or 0
    move_cursor(session, CONSUMER, int(head))


receive_sms = inbound.receive_sms
unsubscribe = inbound.unsubscribe


def list_messages(
    session: Session,
    *,
    actor: Actor,
    client_id: uuid.UUID | None = None,
    appointment_id: uuid.UUID | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[MessageRead]:
    """Messages, newest first, with what became of each (sent, or why not)."""
    require(actor, "messages", "read")
    filters = []
    if client_id is not None:
        filters.append(Message.client_id == client_id)
    if appointment_id is not None:
        filters.append(Message.appointment_id == appointment_id)
    if state is not None:
        filters.append(Message.state == state)
    if actor.location_ids is not None:
        filters.append(Message.location_id.in_(actor.location_ids))
    rows, total = list_owned(
        session,
        Message,
        actor.organization_id,
        *filters,
        order_by=(Message.created_at.desc(), Message.id),
        limit=limit,
        offset=offset,
    )
    return Page(items=[MessageRead.model_validate(m) for m in rows], total=total, limit=limit, offset=offset)


def _policy_read(session: Session, actor: Actor, location_id: uuid.UUID) -> PolicyRead:
    policy = policy_for(session, actor.organization_id, location_id)
    return PolicyRead(location_id=location_id, is_default=policy == DEFAULTS, **policy_columns(policy))


def get_policy(session: Session, *, actor: Actor, location_id: uuid.UUID) -> PolicyRead:
    """The location's limits on messages (the defaults until a manager sets them)."""
    require(actor, "engagement", "read")
    resources.get_location(session, actor=actor, location_id=location_id)
    return _policy_read(session, actor, location_id)


def set_policy(session: Session, *, actor: Actor, location_id: uuid.UUID, data: PolicyUpdate) -> PolicyRead:
    """Change the location's limits (the fields given). Emits `engagement_policy.updated`."""
    require(actor, "engagement", "manage")
    resources.get_location(session, actor=actor, location_id=location_id)
    values = policy_columns(policy_for(session, actor.organization_id, location_id)) | data.model_dump(
        exclude_none=True
    )
    if values["weekly_cap"] < values["daily_cap"]:
        raise ValidationFailedError("weekly_cap", "must not be below the daily cap")
    row = session.scalar(
        select(EngagementPolicy)
        .where(
            EngagementPolicy.organization_id == actor.organization_id,
            EngagementPolicy.location_id == location_id,
        )
        .with_for_update()
    )
    if row is None:
        row = EngagementPolicy(organization_id=actor.organization_id, location_id=location_id)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_by, row.updated_at = actor.label, clock.now()
    session.flush()
    record_event(session, actor, "engagement_policy.updated", location_id, {"location_id": str(location_id)})
    return _policy_read(session, actor, location_id)


def _known(kind: str, channel: str) -> None:
    if (kind, channel) not in BUILT_IN:
        raise NotFoundError("message template", f"{kind}/{channel}")


def get_template(
    session: Session, *, actor: Actor, location_id: uuid.UUID, kind: str, channel: str
) -> TemplateRead:
    """The wording of one kind of message on one channel at the location (its own, else the built-in)."""
    require(actor, "engagement", "read")
    _known(kind, channel)
    resources.get_location(session, actor=actor, location_id=location_id)
    template = template_for(session, actor.organization_id, location_id, kind, channel)
    return TemplateRead(
        location_id=location_id,
        kind=kind,
        channel=channel,
        subject=template.subject,
        text_body=template.text,
        html_body=template.html,
        is_built_in=template == BUILT_IN[(kind, channel)],
    )


def preview_template(
    session: Session,
    *,
    actor: Actor,
    location_id: uuid.UUID,
    kind: str,
    channel: str,
    data: TemplateBody | None,
) -> PreviewRead:
    """The template (`data`, or the one in force) rendered with sample values; ValidationFailedError
    naming the problem when it does not render."""
    require(actor, "engagement", "read")
    _known(kind, channel)
    resources.get_location(session, actor=actor, location_id=location_id)
    template = (
        Template(data.subject, data.text_body, data.html_body)
        if data is not None
        else template_for(session, actor.organization_id, location_id, kind, channel)
    )
    try:
        rendered = check(template)
    except TemplateInvalidError as error:
        raise ValidationFailedError("text_body", f"the template does not render: {error}") from error
    return PreviewRead(subject=rendered.subject, text=rendered.text, html=rendered.html)


def set_template(
    session: Session, *, actor: Actor, location_id: uuid.UUID, kind: str, channel: str, data: TemplateBody
) -> TemplateRead:
    """Save the location's own wording, once it renders with the sample values. Emits
    `message_template.updated`."""
    require(actor, "engagement", "manage")
    preview_template(session, actor=actor, location_id=location_id, kind=kind, channel=channel, data=data)
    row = session.scalar(
        select(MessageTemplate)
        .where(
            MessageTemplate.organization_id == actor.organization_id,
            MessageTemplate.location_id == location_id,
            MessageTemplate.kind == kind,
            MessageTemplate.channel == channel,
        )
        .with_for_update()
    )
    if row is None:
        row = MessageTemplate(
            organization_id=actor.organization_id, location_id=location_id, kind=kind, channel=channel
        )
        session.add(row)
    row.subject, row.text_body, row.html_body = data.subject, data.text_body, data.html_body
    row.updated_by, row.updated_at = actor.label, clock.now()
    session.flush()
    record_event(session, actor, "message_template.updated", location_id, {"kind": kind, "channel": channel})
    return get_template(session, actor=actor, location_id=location_id, kind=kind, channel=channel)


def list_offers(
    session: Session,
    *,
    actor: Actor,
    location_id: uuid.UUID | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[OfferRead]:
    """Waitlist offers, newest first."""
    require(actor, "waitlist", "read")
    filters = []
    if location_id is not None:
        actor.require_location(location_id)
        filters.append(WaitlistOffer.location_id == location_id)
    if actor.location_ids is not None:
        filters.append(WaitlistOffer.location_id.in_(actor.location_ids))
    if state is not None:
        filters.append(WaitlistOffer.state == state)
    rows, total = list_owned(
        session,
        WaitlistOffer,
        actor.organization_id,
        *filters,
        order_by=(WaitlistOffer.created_at.desc(), WaitlistOffer.id),
        limit=limit,
        offset=offset,
    )
    return Page(items=[OfferRead.model_validate(o) for o in rows], total=total, limit=limit, offset=offset)


@dataclass(frozen=True)
class OfferView:
    """What the offer's page shows the client (no name: whoever holds the link sees it)."""

    state: str
    service: str
    provider: str
    location: str
    when: str
    expires: str
    starts_at: datetime


def offer_view(session: Session, *, token: str) -> OfferView | None:
    """The offer a link names, for its page; None for a link that is not genuine."""
    offer = find_offer(session, token)
    if offer is None:
        return None
    actor = agent(offer.organization_id)
    location = resources.get_location(session, actor=actor, location_id=offer.location_id)
    state = offer.state
    if state == "open" and offer.expires_at <= clock.now():
        state = "expired"
    return OfferView(
        state=state,
        service=catalog.get_service(session, actor=actor, service_id=offer.service_id).name,
        provider=resources.get_provider(session, actor=actor, provider_id=offer.provider_id).name,
        location=location.name,
        when=tz.local_label(offer.starts_at, location.time_zone),
        expires=tz.local_label(offer.expires_at, location.time_zone),
        starts_at=offer.starts_at,
    )


def reassign_client(
    session: Session, *, actor: Actor, from_client_id: uuid.UUID, to_client_id: uuid.UUID
) -> dict[str, int]:
    """Give the messages and waitlist offers of one client record to another (a merge of two records of
    one client, `clients.merge`), so the kept record's history and its caps count them; how many moved."""
    require(actor, "clients", "merge")
    moved = {}
    for name, model in (("messages", Message), ("offers", WaitlistOffer)):
        result = session.execute(
            update(model)
            .where(model.organization_id == actor.organization_id, model.client_id == from_client_id)
            .values(client_id=to_client_id)
            .execution_options(synchronize_session=False)
        )
        moved[name] = int(getattr(result, "rowcount", 0) or 0)
    return moved
