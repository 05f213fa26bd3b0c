"""Outbound webhooks: our events to subscribers, in the Standard Webhooks format.

The `webhooks` consumer of the outbox turns each event into one delivery per active subscription whose
topics match it (`webhook_deliveries`, unique per subscription and event, so an event read again adds
nothing). The dispatcher claims due deliveries, sends each outside any transaction, and records the
answer: 2xx is delivered; anything else (or no answer within `TIMEOUT` seconds) is tried again after
`BACKOFF[attempt]`, and abandoned after `MAX_ATTEMPTS`. `DISABLE_AFTER` failures in a row disable the
subscription (with the reason), and its waiting deliveries are abandoned. A claim left by a crash is
released after `CLAIM_SECONDS`.

A message is `{"type": topic, "timestamp": when it happened, "data": the event's payload}`, with the
headers `webhook-id` (`msg_<delivery id>`, the same on every retry, for the subscriber's deduplication),
`webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` under the
subscription's `whsec_` key. Payloads carry ids and field names, never PHI (the outbox's rule).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import httpx
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from medspa.integrations.models import WebhookDelivery, WebhookSubscription
from medspa.integrations.receiving import standard_key
from medspa.kit import clock
from medspa.kit.db import insert_ignoring_conflict, unit_of_work
from medspa.kit.ids import new_id
from medspa.kit.outbox import Delivered
from medspa.security import keys

logger = logging.getLogger(__name__)

CONSUMER: Final = "webhooks"
KEY_PURPOSE: Final = "integrations"
TIMEOUT: Final = 5.0
BACKOFF: Final = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
)
MAX_ATTEMPTS: Final = len(BACKOFF) + 1
DISABLE_AFTER: Final = 20
CLAIM_SECONDS: Final = 60
SEND_BATCH: Final = 50


def secret_place(subscription_id: uuid.UUID) -> str:
    return f"webhook_subscriptions.secret.{subscription_id}"


def matches(topics: str, topic: str) -> bool:
    """Whether a subscription's topics (comma-separated: `*`, `appointment.*`, `client.merged`) take
    `topic`."""
    for wanted in (t.strip() for t in topics.split(",")):
        if wanted == "*" or wanted == topic or (wanted.endswith(".*") and topic.startswith(wanted[:-1])):
            return True
    return False


class WebhookEventHandler:
    """The `webhooks` consumer's handler: a delivery per matching active subscription and event."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, events: Sequence[Delivered]) -> set[int]:
        organizations = {e.organization_id for e in events}
        with unit_of_work(self.engine) as session:
            subscriptions = session.scalars(
                select(WebhookSubscription)
                .where(
                    WebhookSubscription.organization_id.in_(organizations),
                    WebhookSubscription.is_active.is_(True),
                )
                .order_by(WebhookSubscription.created_at, WebhookSubscription.id)
            ).all()
            now = clock.now()
            for event in events:
                for subscription in subscriptions:
                    if subscription.organization_id != event.organization_id:
                        continue
                    if not matches(subscription.topics, event.topic):
                        continue
                    insert_ignoring_conflict(
                        session,
                        WebhookDelivery,
                        {
                            "id": new_id(),
                            "organization_id": event.organization_id,
                            "subscription_id": subscription.id,
                            "event_id": event.id,
                            "topic": event.topic,
                            "payload": event.payload,
                            "occurred_at": event.created_at,
                            "state": "pending",
                            "attempts": 0,
                            "next_attempt_at": now,
                            "claimed_at": None,
                            "last_status": None,
                            "last_error": None,
                            "created_at": now,
                            "delivered_at": None,
                        },
                    )
        return {e.id for e in events}


@dataclass(frozen=True)
class _Claimed:
    delivery_id: uuid.UUID
    subscription_id: uuid.UUID
    url: str
    secret: str
    body: bytes
    message_id: str


@dataclass
class SendReport:
    delivered: int = 0
    failed: int = 0


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(standard_key(secret), f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def _claim(session: Session, now: datetime, organization_id: uuid.UUID | None) -> list[_Claimed]:
    """Due deliveries of active subscriptions, claimed (`sending`) in this transaction."""
    stale = now - timedelta(seconds=CLAIM_SECONDS)
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.state == "sending", WebhookDelivery.claimed_at < stale)
        .values(state="pending")
    )
    rows = session.execute(
        select(WebhookDelivery, WebhookSubscription)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(
            WebhookDelivery.state == "pending",
            WebhookDelivery.next_attempt_at <= now,
            *([] if organization_id is None else [WebhookDelivery.organization_id == organization_id]),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.event_id)
        .limit(SEND_BATCH)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    ).all()
    claimed = []
    for delivery, subscription in rows:
        if not subscription.is_active:
            delivery.state, delivery.last_error = "abandoned", "the subscription is disabled"
            continue
        key = keys.data_key(session, subscription.organization_id, KEY_PURPOSE)
        secret = keys.open_text(key, subscription.secret_sealed, where=secret_place(subscription.id))
        message = {
            "type": delivery.topic,
            "timestamp": delivery.occurred_at.isoformat(),
            "data": delivery.payload,
        }
        delivery.state, delivery.claimed_at = "sending", now
        claimed.append(
            _Claimed(
                delivery_id=delivery.id,
                subscription_id=subscription.id,
                url=subscription.url,
                secret=secret,
                body=json.dumps(message).encode(),
                message_id=f"msg_{delivery.id.hex}",
            )
        )
    return claimed


def send_due(
    engine: Engine, *, client: httpx.Client | None = None, organization_id: uuid.UUID | None = None
) -> SendReport:
    """Send the deliveries that are due (a batch; of one organization when given), and record what
    became of each."""
    with unit_of_work(engine) as session:
        claimed = _claim(session, clock.now(), organization_id)
    report = SendReport()
    if not claimed:
        return report
    http = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
    disabled: set[uuid.UUID] = set()  # subscriptions disabled during this batch: nothing more sent to them
    try:
        for item in claimed:
            if item.subscription_id in disabled:
                _record(engine, item.delivery_id, None, "the subscription was disabled", ok=False)
                continue
            stamp = int(clock.now().timestamp())
            headers = {
                "content-type": "application/json",
                "webhook-id": item.message_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(item.secret, item.message_id, stamp, item.body),
                "user-agent": "medspa-webhooks",
            }
            status: int | None = None
            error: str | None = None
            try:
                status = http.post(item.url, content=item.body, headers=headers).status_code
            except httpx.HTTPError as failure:
                error = f"{type(failure).__name__}: {failure}"[:500]
            ok = status is not None and 200 <= status < 300
            if not _record(engine, item.delivery_id, status, error, ok=ok):
                disabled.add(item.subscription_id)
            report.delivered += ok
            report.failed += not ok
    finally:
        if client is None:
            http.close()
    return report


def _record(
    engine: Engine, delivery_id: uuid.UUID, status: int | None, error: str | None, *, ok: bool
) -> bool:
    """Record a delivery's answer (or why it was not sent); whether its subscription is still active."""
    with unit_of_work(engine) as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.state != "sending":
            return True
        subscription = session.get(WebhookSubscription, delivery.subscription_id, with_for_update=True)
        now = clock.now()
        if subscription is None or not subscription.is_active:
            delivery.state, delivery.claimed_at = "abandoned", None
            delivery.last_error = "the subscription is disabled"
            return False
        delivery.attempts += 1
        delivery.last_status, delivery.claimed_at = status, None
        if ok:
            delivery.state, delivery.delivered_at, delivery.last_error = "delivered", now, None
            subscription.failures_in_a_row = 0
            return True
        delivery.last_error = error or f"answered {status}"
        if delivery.attempts >= MAX_ATTEMPTS:
            delivery.state = "abandoned"
        else:
            delivery.state = "pending"
            delivery.next_attempt_at = now + BACKOFF[delivery.attempts - 1]
        subscription.failures_in_a_row += 1
        if subscription.is_active and subscription.failures_in_a_row >= DISABLE_AFTER:
            subscription.is_active, subscription.updated_at = False, now
            subscription.disabled_reason = (
                f"disabled after {DISABLE_AFTER} failed deliveries in a row; the last: {delivery.last_error}"
            )[:500]
            delivery.state = "abandoned"
            session.flush()
            session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.subscription_id == subscription.id,
                    WebhookDelivery.state == "pending",
                )
                .values(state="abandoned", last_error="the subscription was disabled")
                .execution_options(synchronize_session=False)
            )
            logger.warning(
                "webhook subscription %s disabled: %s", subscription.id, subscription.disabled_reason
            )
            return False
        return True
