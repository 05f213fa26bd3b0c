"""What clients send back: SMS replies (through the provider's signed webhook) and unsubscribe links.

SMS replies, by their first word (case and punctuation ignored):
- a stop word (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT, OPT OUT): no more SMS, at
  once (every message not yet sent is decided after this), answered with the one confirmation the
  carriers require;
- START, UNSTOP, YES: SMS allowed again;
- C or CONFIRM: the client's next booked appointment (within `CONFIRM_WITHIN`) is confirmed;
- HELP, INFO: who is writing and how to stop.
A reply reaches the clients whose phone number it came from (a family may share one).

The webhook's signature is Twilio's: base64 HMAC-SHA1, under the account's auth token, of the URL the
provider posted to followed by every form field's name and value in name order.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from medspa.clients import service as clients
from medspa.clients.schemas import ConsentChange
from medspa.engagement import links
from medspa.engagement.models import Message
from medspa.engagement.planner import agent
from medspa.kit import clock
from medspa.kit.errors import MedspaError
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import Status

STOP_WORDS: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS: Final = frozenset({"START", "UNSTOP", "YES"})
CONFIRM_WORDS: Final = frozenset({"C", "CONFIRM"})
HELP_WORDS: Final = frozenset({"HELP", "INFO"})
CONFIRM_WITHIN: Final = timedelta(days=8)


def twilio_signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    payload = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def is_signed(auth_token: str, url: str, form: Mapping[str, str], signature: str) -> bool:
    """Whether `signature` is the provider's for this request (compared in constant time)."""
    return hmac.compare_digest(twilio_signature(auth_token, url, form), signature)


def intent(body: str) -> str | None:
    """`stop`, `start`, `confirm`, `help`, or None, from the first word of a reply."""
    text = re.sub(r"[^A-Z ]", "", body.upper()).strip()
    if text.replace(" ", "") == "OPTOUT":
        return "stop"
    first = text.split(" ", 1)[0] if text else ""
    for name, words in (
        ("stop", STOP_WORDS),
        ("start", START_WORDS),
        ("confirm", CONFIRM_WORDS),
        ("help", HELP_WORDS),
    ):
        if first in words:
            return name
    return None


def receive_sms(session: Session, *, organization_id: uuid.UUID, sender: str, body: str, clinic: str) -> str:
    """Act on an SMS reply from `sender`; the text to answer with (empty: no answer)."""
    actor = agent(organization_id)
    wanted = intent(body)
    try:
        found = clients.list_clients(session, actor=actor, phone=sender, limit=20).items
    except MedspaError:
        found = []
    if wanted == "stop":
        for client in found:
            clients.change_consent(
                session,
                actor=actor,
                client_id=client.id,
                change=ConsentChange(sms=False),
                source="SMS reply STOP",
            )
        return f"{clinic}: you will get no more texts from us. Reply START to receive them again."
    if wanted == "start":
        for client in found:
            clients.change_consent(
                session,
                actor=actor,
                client_id=client.id,
                change=ConsentChange(sms=True),
                source="SMS reply START",
            )
        return f"{clinic}: texts are on again. Reply STOP to stop them."
    if wanted == "help":
        return f"{clinic}: appointment messages. Reply C to confirm your next visit, STOP to stop texts."
    if wanted == "confirm":
        return _confirm_next(session, organization_id, [c.id for c in found], clinic)
    return ""


def _confirm_next(
    session: Session, organization_id: uuid.UUID, client_ids: list[uuid.UUID], clinic: str
) -> str:
    actor = agent(organization_id)
    now = clock.now()
    upcoming = [
        appointment
        for client_id in client_ids
        for appointment in scheduling.list_appointments(
            session,
            actor=actor,
            client_id=client_id,
            status=Status.BOOKED,
            starts_from=now,
            starts_before=now + CONFIRM_WITHIN,
            limit=5,
        ).items
    ]
    if not upcoming:
        return f"{clinic}: we found no visit of yours to confirm. Please call us."
    first = min(upcoming, key=lambda a: a.starts_at)
    scheduling.confirm_appointment(session, actor=actor, appointment_id=first.id)
    return f"{clinic}: thank you, your visit is confirmed."


def unsubscribe(session: Session, *, token: str) -> str | None:
    """Follow an unsubscribe link: e-mail off for the client it was sent to (marketing off, when it came
    with a marketing message). What was turned off, or None for a link that is not genuine."""
    message_id = links.record_id_of(token)
    if message_id is None:
        return None
    message = session.scalar(select(Message).where(Message.id == message_id))
    if message is None or not links.is_genuine(session, message.organization_id, "unsubscribe", token):
        return None
    actor = agent(message.organization_id)
    marketing = message.purpose == "marketing"
    change = ConsentChange(marketing=False) if marketing else ConsentChange(email=False)
    with contextlib.suppress(MedspaError):  # erased since: nothing is sent to them anyway
        clients.change_consent(
            session, actor=actor, client_id=message.client_id, change=change, source="unsubscribe link"
        )
    return "marketing messages" if marketing else "e-mails"
