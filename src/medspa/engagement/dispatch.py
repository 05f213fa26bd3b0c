"""Sending the messages that are due: decide, send, record, in three steps that never share a transaction.

1. Decide (one write transaction per message): the message is claimed (`queued` -> `sending`, locked
   first, so two dispatchers never take the same one) with the client's row locked (so two messages to
   one client are decided in turn and cannot both pass a cap); it is dropped as `obsolete` when what
   it was about changed (the appointment moved, was cancelled; the offer was taken), and otherwise the
   rules decide (`engagement.rules.decide`: consent, quiet hours, caps, recent contact). Its text is
   rendered then, from the client's sealed record (an audited read), and never stored.
2. Send, outside any transaction: the channel is a network call.
3. Record the outcome: `sent` with the provider's id; on a failure that may pass, `queued` again with
   a growing delay (1, 4, 16 minutes..., at most `MAX_ATTEMPTS` tries); otherwise `failed`.

Exactly once, as far as a network allows: a message is claimed once, and one whose sending was
interrupted (the process died between steps 1 and 3) is marked `failed` by `release_interrupted`
rather than sent again, since it may have gone out: a missed reminder is better than two.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.clients.schemas import ClientRead
from medspa.engagement import channels as channel_types
from medspa.engagement.channels import Channels, Email, SendError, Sms, TransientSendError, scrub
from medspa.engagement.links import link_token, public_link
from medspa.engagement.models import Message, WaitlistOffer
from medspa.engagement.planner import agent as engagement_agent
from medspa.engagement.rules import WEEK, Facts, decide
from medspa.engagement.settings import policy_for, template_for
from medspa.engagement.templates import TemplateInvalidError, render, session_label, window_label
from medspa.kit import clock, tz
from medspa.kit.db import WriterBusyError, unit_of_work
from medspa.kit.errors import NotFoundError
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.security.actors import Actor

logger = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 6
FIRST_RETRY: Final = timedelta(minutes=1)
# A message claimed this long ago and never recorded as sent was interrupted.
INTERRUPTED_AFTER: Final = timedelta(minutes=10)
LIVE: Final = frozenset({"booked", "confirmed"})


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed try: 1, 4, 16, 64 minutes... (at most 6 hours)."""
    delay: timedelta = FIRST_RETRY * 4 ** max(0, attempts - 1)
    return min(delay, timedelta(hours=6))


@dataclass(frozen=True)
class Outgoing:
    message_id: uuid.UUID
    organization_id: uuid.UUID
    channel: str
    email: Email | None = None
    sms: Sms | None = None


@dataclass(frozen=True)
class DispatchReport:
    sent: int = 0
    deferred: int = 0
    suppressed: int = 0
    failed: int = 0


def _why_obsolete(session: Session, agent: Actor, message: Message) -> str | None:
    """Why the message no longer applies, or None while it does."""
    context = message.context
    if message.purpose == "marketing":
        return _booked_since(session, agent, message)
    if message.kind in ("waitlist_offer",) and message.offer_id is not None:
        offer = session.get(WaitlistOffer, message.offer_id)
        if offer is None or offer.state != "open":
            return f"the offer is {offer.state if offer else 'gone'}"
        return None
    if message.appointment_id is None:
        return None
    try:
        appointment = scheduling.get_appointment(session, actor=agent, appointment_id=message.appointment_id)
    except NotFoundError:
        return "the appointment is gone"
    status = appointment.status.value
    if message.kind == "cancellation":
        return None if status == "cancelled" else f"the appointment is {status}"
    if message.kind == "post_care":
        return None if status == "completed" else f"the appointment is {status}"
    if status not in LIVE:
        return f"the appointment is {status}"
    if message.kind == "confirm_request" and status != "booked":
        return "the client has confirmed"
    if "starts_at" in context and datetime.fromisoformat(context["starts_at"]) != appointment.starts_at:
        return "the appointment has moved"
    return None


def _booked_since(session: Session, agent: Actor, message: Message) -> str | None:
    """A message asking a client to come back is of no use once they have booked (any visit after the
    one it follows, or any visit ahead)."""
    since = datetime.fromisoformat(message.context.get("visit_ended_at") or message.created_at.isoformat())
    visits = scheduling.list_appointments(
        session, actor=agent, client_id=message.client_id, starts_from=since, limit=20
    ).items
    if any(
        v.id != message.appointment_id and v.status.value not in ("cancelled", "no_show", "held")
        for v in visits
    ):
        return "the client has booked since"
    return None


def _recent_sends(session: Session, message: Message, now: datetime) -> tuple[list[datetime], list[datetime]]:
    """When the client's messages of the last week were decided on (sent, or being sent): all of them
    (for the caps), and those other than this message's copies by another channel (for recent contact;
    every planned key ends in its channel)."""
    rows = session.execute(
        select(Message.claimed_at, Message.dedup_key).where(
            Message.organization_id == message.organization_id,
            Message.client_id == message.client_id,
            Message.state.in_(("sent", "sending")),
            Message.claimed_at > now - WEEK,
        )
    ).all()
    base = message.dedup_key.removesuffix(f":{message.channel}")
    copies = {f"{base}:{channel}" for channel in ("email", "sms")} if base != message.dedup_key else set()
    sends = [(at, key) for at, key in rows if at is not None]
    return [at for at, _ in sends], [at for at, key in sends if key not in copies]


def _values(
    session: Session, agent: Actor, message: Message, client: ClientRead, zone_name: str, location_name: str
) -> dict[str, Any]:
    """What the message's template may say, on the location's wall clock and in the clinic's words."""
    context = message.context
    values: dict[str, Any] = {
        "first_name": client.first_name,
        "location": location_name,
        "service": "",
        "provider": "",
        "when": "",
        "time": "",
        "date": "",
        "previous": "",
        "expires": "",
        "offer_url": "",
        "instructions": "",
        "window": window_label(*context["window_days"]) if "window_days" in context else "",
        "session": (
            session_label(context["session_number"], context["series_sessions"])
            if "session_number" in context
            else ""
        ),
        "unsubscribe_url": public_link(
            "unsubscribe", link_token(session, message.organization_id, "unsubscribe", message.id)
        ),
    }
    service_id: uuid.UUID | None = None
    provider_id: uuid.UUID | None = None
    if message.appointment_id is not None:
        appointment = scheduling.get_appointment(session, actor=agent, appointment_id=message.appointment_id)
        service_id, provider_id = appointment.service_id, appointment.provider_id
    if message.offer_id is not None:
        offer = session.get(WaitlistOffer, message.offer_id)
        if offer is not None:
            service_id, provider_id = offer.service_id, offer.provider_id
            values["expires"] = tz.local_label(
                offer.expires_at, zone_name, on=tz.to_local(offer.expires_at, zone_name).date()
            )
            values["offer_url"] = public_link(
                "offers", link_token(session, offer.organization_id, "offer", offer.id)
            )
    if service_id is not None:
        service = catalog.get_service(session, actor=agent, service_id=service_id)
        values["service"] = service.name
        values["instructions"] = service.post_care_instructions
    if provider_id is not None:
        values["provider"] = resources.get_provider(session, actor=agent, provider_id=provider_id).name
    if "starts_at" in context:
        starts_at = datetime.fromisoformat(context["starts_at"])
        local = tz.to_local(starts_at, zone_name)
        values["when"] = tz.local_label(starts_at, zone_name)
        values["time"] = tz.clock_label(local.hour, local.minute)
        values["date"] = f"{local.strftime('%a, %b')} {local.day}"
    if "previous_starts_at" in context:
        values["previous"] = tz.local_label(datetime.fromisoformat(context["previous_starts_at"]), zone_name)
    return values


def _outgoing(
    session: Session, agent: Actor, message: Message, client: ClientRead, zone_name: str, location_name: str
) -> Outgoing:
    values = _values(session, agent, message, client, zone_name, location_name)
    template = template_for(
        session, message.organization_id, message.location_id, message.kind, message.channel
    )
    try:
        rendered = render(template, values)
    except TemplateInvalidError:
        logger.exception(
            "message %s: the location's template does not render; using the built-in one", message.id
        )
        from medspa.engagement.templates import BUILT_IN

        rendered = render(BUILT_IN[(message.kind, message.channel)], values)
    if message.channel == "email":
        unsubscribe = values["unsubscribe_url"]
        return Outgoing(
            message.id,
            message.organization_id,
            "email",
            email=Email(
                to=client.email or "",
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                message_id=f"<{message.id}@medspa>",
                headers={
                    "List-Unsubscribe": f"<{unsubscribe}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            ),
        )
    return Outgoing(
        message.id, message.organization_id, "sms", sms=Sms(to=client.phone or "", body=rendered.text)
    )


def prepare(session: Session, message_id: uuid.UUID) -> Outgoing | None:
    """Step 1 for one message, in the caller's transaction: claim it and decide. The message to send, or
    None (not due or taken by another dispatcher, deferred, suppressed, obsolete)."""
    now = clock.now()
    message = session.scalar(
        select(Message)
        .where(Message.id == message_id, Message.state == "queued", Message.next_attempt_at <= now)
        .with_for_update(skip_locked=True)
    )
    if message is None:
        return None
    agent = engagement_agent(message.organization_id)
    obsolete = _why_obsolete(session, agent, message)
    if obsolete:
        message.state, message.outcome = "obsolete", obsolete
        return None
    try:
        client = clients.get_client(session, actor=agent, client_id=message.client_id, lock=True)
    except NotFoundError:
        message.state, message.outcome = "suppressed", "the client is gone"
        return None
    if client.erased_at is not None or not client.is_active:
        message.state, message.outcome = "suppressed", "the client is erased or deactivated"
        return None
    zone_name, location_name = "UTC", ""
    if message.location_id is not None:
        location = resources.get_location(session, actor=agent, location_id=message.location_id)
        zone_name, location_name = location.time_zone, location.name
    policy = policy_for(session, message.organization_id, message.location_id)
    facts = Facts(
        channel="email" if message.channel == "email" else "sms",
        purpose="marketing" if message.purpose == "marketing" else "appointment",
        is_reply=message.is_reply,
        not_after=message.not_after,
        has_address=bool(client.email if message.channel == "email" else client.phone),
        channel_consent=client.consent.email if message.channel == "email" else client.consent.sms,
        marketing_consent=client.consent.marketing,
    )
    sends, contacts = _recent_sends(session, message, now)
    decision = decide(facts, policy, zone_name, now, sends, recent_contacts=contacts)
    if decision.action == "defer":
        message.next_attempt_at = decision.until or now
        message.outcome = f"waiting: {decision.reason}"
        return None
    if decision.action == "suppress":
        message.state, message.outcome = "suppressed", decision.reason
        return None
    outgoing = _outgoing(session, agent, message, client, zone_name, location_name)
    message.state, message.claimed_at, message.attempts = "sending", now, message.attempts + 1
    return outgoing


def send(channels: Channels, outgoing: Outgoing) -> str:
    """Step 2: hand the message to its channel; the provider's id. SendError when it could not."""
    if outgoing.email is not None:
        if channels.email is None:
            raise channel_types.ChannelNotConfiguredError("e-mail", "MEDSPA_SMTP_URL")
        return channels.email.send(outgoing.email)
    if outgoing.sms is None:
        raise channel_types.PermanentSendError("nothing to send")
    if channels.sms is None:
        raise channel_types.ChannelNotConfiguredError("SMS", "MEDSPA_SMS_URL")
    return channels.sms.send(outgoing.sms)


def record(session: Session, outgoing: Outgoing, *, provider_id: str | None, error: SendError | None) -> str:
    """Step 3: the outcome of a send, on the claimed message; its new state."""
    message = session.scalar(select(Message).where(Message.id == outgoing.message_id).with_for_update())
    if message is None or message.state != "sending":
        return message.state if message else "missing"
    now = clock.now()
    if error is None:
        message.state, message.sent_at, message.provider_message_id = "sent", now, provider_id
        message.outcome = "sent"
    elif isinstance(error, TransientSendError) and message.attempts < MAX_ATTEMPTS:
        message.state, message.next_attempt_at = "queued", now + retry_delay(message.attempts)
        message.outcome = f"try {message.attempts} failed: {error}"[:1000]
    else:
        message.state, message.outcome = "failed", f"try {message.attempts} failed: {error}"[:1000]
    return message.state


def give_up(session: Session, message_id: uuid.UUID, why: str) -> None:
    """Mark a queued message `failed` with `why` (scrubbed of addresses and numbers)."""
    session.execute(
        update(Message)
        .where(Message.id == message_id, Message.state == "queued")
        .values(state="failed", outcome=scrub(why)[:1000])
    )


def release_interrupted(session: Session) -> int:
    """Mark `failed` the messages whose sending was interrupted (claimed, never recorded): they may have
    gone out, and are not sent twice. How many."""
    cutoff = clock.now() - INTERRUPTED_AFTER
    result = session.execute(
        update(Message)
        .where(Message.state == "sending", Message.claimed_at < cutoff)
        .values(state="failed", outcome="interrupted while sending; not sent again, as it may have gone out")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def due_ids(
    session: Session, now: datetime, limit: int, organization_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    query = select(Message.id).where(Message.state == "queued", Message.next_attempt_at <= now)
    if organization_id is not None:
        query = query.where(Message.organization_id == organization_id)
    return list(session.scalars(query.order_by(Message.next_attempt_at, Message.id).limit(limit)))


def dispatch_due(
    engine: Engine, channels: Channels, *, limit: int = 100, organization_id: uuid.UUID | None = None
) -> DispatchReport:
    """Send what is due (at most `limit` messages; of one organization, when given), each through the
    three steps."""
    with unit_of_work(engine, write=False) as session:
        ids = due_ids(session, clock.now(), limit, organization_id)
    sent = deferred = suppressed = failed = 0
    for message_id in ids:
        try:
            with unit_of_work(engine) as session:
                outgoing = prepare(session, message_id)
                state = (
                    None
                    if outgoing
                    else session.scalar(select(Message.state).where(Message.id == message_id))
                )
        except WriterBusyError:
            continue  # the database is busy: the next round tries again
        except Exception as fault:
            # Not a rule but a fault (a record it needs is gone, a template raised): it would fail the same
            # way every round, so it fails once, saying why.
            logger.exception("message %s: deciding failed; it is marked failed", message_id)
            with unit_of_work(engine) as session:
                give_up(session, message_id, f"could not be prepared: {type(fault).__name__}: {fault}")
            failed += 1
            continue
        if outgoing is None:
            deferred += state == "queued"
            suppressed += state in ("suppressed", "obsolete")
            continue
        provider_id: str | None = None
        error: SendError | None = None
        try:
            provider_id = send(channels, outgoing)
        except SendError as failure:
            error = failure
            logger.warning("message %s by %s: %s", message_id, outgoing.channel, failure)
        with unit_of_work(engine) as session:
            outcome = record(session, outgoing, provider_id=provider_id, error=error)
        sent += outcome == "sent"
        failed += outcome == "failed"
    return DispatchReport(sent=sent, deferred=deferred, suppressed=suppressed, failed=failed)
