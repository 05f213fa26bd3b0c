"""Connections and the inbox: adding a connection (its secret sealed), taking a webhook delivery in
(verified, stored once, answered fast), and reading what arrived. Functions flush, never commit, except
`receive`, which is its own unit of work: a delivery is stored before it is answered.

A delivery is applied later, by the inbox's worker (`integrations.apply`), never in the request.
"""

from __future__ import annotations

import base64
import functools
import logging
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine, bindparam, delete, select
from sqlalchemy.orm import Session

from medspa.integrations import outbound
from medspa.integrations.kept import opened_secret
from medspa.integrations.models import (
    Checkpoint,
    Connection,
    InboxEvent,
    WebhookDelivery,
    WebhookSubscription,
)
from medspa.integrations.receiving import DeliveryRefusedError, verify
from medspa.integrations.schemas import (
    POLLED,
    ConnectionCreate,
    ConnectionRead,
    DeliveryRead,
    DeliveryState,
    InboxRead,
    InboxState,
    PollingSet,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionRead,
)
from medspa.kit import clock
from medspa.kit.crud import get_owned, list_owned
from medspa.kit.db import insert_many_unless_conflict, run_in_unit_of_work
from medspa.kit.errors import ConflictError, ValidationFailedError
from medspa.kit.ids import new_id
from medspa.kit.outbox import OutboxConsumer, record_event
from medspa.kit.schemas import Page
from medspa.security import keys
from medspa.security.actors import Actor, Role, require

logger = logging.getLogger(__name__)

KEY_PURPOSE: Final = "integrations"


def _secret_place(connection_id: uuid.UUID) -> str:
    return f"integration_connections.secret.{connection_id}"


def _poll_key_place(connection_id: uuid.UUID) -> str:
    return f"integration_connections.poll_key.{connection_id}"


def _body_place(inbox_id: uuid.UUID) -> str:
    return f"integration_inbox.body.{inbox_id}"


def _read(connection: Connection) -> ConnectionRead:
    return ConnectionRead(
        id=connection.id,
        connector=connection.connector,
        name=connection.name,
        signature_header=connection.signature_header,
        signature_encoding=connection.signature_encoding,
        poll_url=connection.poll_base_url,
        poll_account=connection.poll_account,
        is_active=connection.is_active,
        created_at=connection.created_at,
        webhook_path=f"/api/v1/webhooks/{connection.connector}/{connection.id}",
    )


def add_connection(session: Session, *, actor: Actor, data: ConnectionCreate) -> ConnectionRead:
    """A connection of the organization to an outside system; its secret (and the key of its API, when
    it is polled) is sealed under the organization's `integrations` key and never returned. Emits
    `integration.connection_added`."""
    require(actor, "integrations", "manage")
    now, connection_id = clock.now(), new_id()
    key = keys.data_key(session, actor.organization_id, KEY_PURPOSE)
    connection = Connection(
        id=connection_id,
        organization_id=actor.organization_id,
        connector=data.connector,
        name=data.name,
        secret_sealed=keys.seal_text(key, data.secret, where=_secret_place(connection_id)),
        signature_header=data.signature_header if data.connector == "zenoti" else None,
        signature_encoding=data.signature_encoding,
        poll_base_url=data.poll_url,
        poll_account=data.poll_account,
        poll_key_sealed=(
            None
            if data.poll_key is None
            else keys.seal_text(key, data.poll_key, where=_poll_key_place(connection_id))
        ),
        is_active=True,
        created_at=now,
        updated_at=now,
    )
    session.add(connection)
    session.flush()
    record_event(
        session,
        actor,
        "integration.connection_added",
        connection.id,
        {"id": str(connection.id), "connector": data.connector},
    )
    return _read(connection)


def set_polling(
    session: Session, *, actor: Actor, connection_id: uuid.UUID, data: PollingSet | None
) -> ConnectionRead:
    """Poll the connection's API with these settings from the next pass (None: stop polling it). When
    the API's address or the account changes, or polling stops, the checkpoints go: the next pass starts
    from the beginning of the account's records (what was stored already is a duplicate then). The key is
    sealed like the secret. Emits `integration.polling_changed` (never with the key)."""
    require(actor, "integrations", "manage")
    connection = get_owned(session, Connection, actor.organization_id, connection_id, "connection", lock=True)
    if connection.connector not in POLLED:
        raise ValidationFailedError("connector", "only Mindbody and Zenoti connections are polled")
    url, account = (None, None) if data is None else (data.poll_url, data.poll_account)
    if (url, account) != (connection.poll_base_url, connection.poll_account):
        session.execute(delete(Checkpoint).where(Checkpoint.connection_id == connection.id))
    connection.poll_base_url, connection.poll_account = url, account
    connection.poll_key_sealed = (
        None
        if data is None
        else keys.seal_text(
            keys.data_key(session, actor.organization_id, KEY_PURPOSE),
            data.poll_key,
            where=_poll_key_place(connection.id),
        )
    )
    connection.updated_at = clock.now()
    session.flush()
    record_event(
        session,
        actor,
        "integration.polling_changed",
        connection.id,
        {"id": str(connection.id), "polled": data is not None},
    )
    return _read(connection)


def list_connections(
    session: Session, *, actor: Actor, limit: int = 50, offset: int = 0
) -> Page[ConnectionRead]:
    require(actor, "integrations", "read")
    rows, total = list_owned(
        session,
        Connection,
        actor.organization_id,
        order_by=(Connection.created_at, Connection.id),
        limit=limit,
        offset=offset,
    )
    return Page(items=[_read(c) for c in rows], total=total, limit=limit, offset=offset)


def deactivate_connection(session: Session, *, actor: Actor, connection_id: uuid.UUID) -> ConnectionRead:
    """Stop taking the connection's deliveries (they answer 404 from now on); what arrived stays."""
    require(actor, "integrations", "manage")
    connection = get_owned(session, Connection, actor.organization_id, connection_id, "connection", lock=True)
    connection.is_active, connection.updated_at = False, clock.now()
    session.flush()
    record_event(
        session, actor, "integration.connection_deactivated", connection.id, {"id": str(connection.id)}
    )
    return _read(connection)


def list_inbox(
    session: Session,
    *,
    actor: Actor,
    connection_id: uuid.UUID | None = None,
    state: InboxState | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[InboxRead]:
    """Deliveries as they arrived, newest first, with what became of them (never their bodies)."""
    require(actor, "integrations", "read")
    filters = []
    if connection_id is not None:
        filters.append(InboxEvent.connection_id == connection_id)
    if state is not None:
        filters.append(InboxEvent.state == state)
    rows, total = list_owned(
        session,
        InboxEvent,
        actor.organization_id,
        *filters,
        order_by=(InboxEvent.received_at.desc(), InboxEvent.id),
        limit=limit,
        offset=offset,
    )
    return Page(items=[InboxRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


def retry_inbox_event(session: Session, *, actor: Actor, inbox_id: uuid.UUID) -> InboxRead:
    """Send a failed or skipped delivery back to be applied on the worker's next pass (after a mapping
    was made, say), its tries counted afresh. 409 for one waiting or applied. Emits
    `integration.inbox_retried`."""
    require(actor, "integrations", "manage")
    row = get_owned(session, InboxEvent, actor.organization_id, inbox_id, "inbox event", lock=True)
    if row.state not in ("failed", "skipped"):
        raise ConflictError(f"the delivery is {row.state}: only a failed or skipped one is sent back")
    row.state, row.attempts, row.not_before, row.processed_at = "received", 0, None, None
    session.flush()
    record_event(session, actor, "integration.inbox_retried", row.id, {"id": str(row.id)})
    return InboxRead.model_validate(row)


def integration_actor(connection: Connection) -> Actor:
    """Who applies a connection's events: a named integration actor with the front desk's rights."""
    return Actor(
        organization_id=connection.organization_id,
        kind="integration",
        actor_id=connection.id,
        role=Role.FRONT_DESK,
        name=f"{connection.connector}:{connection.id}",
    )


def open_secret(session: Session, connection: Connection) -> str:
    key = keys.data_key(session, connection.organization_id, KEY_PURPOSE)
    return keys.open_text(key, connection.secret_sealed, where=_secret_place(connection.id))


def open_poll_key(session: Session, connection: Connection) -> str | None:
    """The key of the connection's API (None when it is not polled)."""
    if connection.poll_key_sealed is None:
        return None
    key = keys.data_key(session, connection.organization_id, KEY_PURPOSE)
    return keys.open_text(key, connection.poll_key_sealed, where=_poll_key_place(connection.id))


def open_body(session: Session, event: InboxEvent) -> str:
    key = keys.data_key(session, event.organization_id, KEY_PURPOSE)
    return keys.open_text(key, event.body_sealed, where=_body_place(event.id))


@dataclass(frozen=True)
class Receipt:
    """What a delivery's sender is answered: 202 when stored now, 200 when it had arrived before."""

    status: int
    inbox_id: uuid.UUID | None
    duplicate: bool


_CONNECTION_TABLE: Final = Connection.__table__
# What a receipt needs of its connections, read on every pass as rows (no ORM object to build).
_RECEIPT_CONNECTIONS: Final = select(
    _CONNECTION_TABLE.c.id,
    _CONNECTION_TABLE.c.organization_id,
    _CONNECTION_TABLE.c.connector,
    _CONNECTION_TABLE.c.is_active,
    _CONNECTION_TABLE.c.secret_sealed,
    _CONNECTION_TABLE.c.signature_header,
    _CONNECTION_TABLE.c.signature_encoding,
).where(_CONNECTION_TABLE.c.id.in_(bindparam("ids", expanding=True)))


def receive(
    engine: Engine, *, connector: str, connection_id: uuid.UUID, body: bytes, headers: Mapping[str, str]
) -> Receipt:
    """Take one webhook delivery in: the connection must exist, be active and be of `connector`; the
    signature must hold (`receiving.verify`); then the raw body is sealed and stored with its
    deduplication key (connection, source event id) before the answer. A duplicate stores nothing more.
    DeliveryRefusedError (nothing stored) for anything else, with one log line. (`receive_many` with
    one delivery.)"""
    (outcome,) = receive_many(engine, [Incoming(connector, connection_id, body, headers, clock.now())])
    if isinstance(outcome, DeliveryRefusedError):
        raise outcome
    return outcome


@dataclass(frozen=True)
class Incoming:
    """A webhook delivery as it reached us, with the time it did (by the request's clock)."""

    connector: str
    connection_id: uuid.UUID
    body: bytes
    headers: Mapping[str, str]
    now: datetime


def receive_many(engine: Engine, deliveries: Sequence[Incoming]) -> list[Receipt | DeliveryRefusedError]:
    """Take deliveries in together, as `receive` takes one, in one transaction: what became of each, in
    order (a refusal, logged once, stores nothing). The connections' rows are read in one query and the
    new rows inserted in one statement, so deliveries arriving together cost about one receipt's round
    trips (`integrations.intake` gathers them). Each is answered only once the transaction committed.

    The connection's row is read on every pass, so a deactivated connection refuses at once in every
    server process; its opened secret and the organization's unwrapped `integrations` key are kept in
    the process (`kept.opened_secret`, `keys.kept_data_key`), which is safe as explained there."""
    outcomes = run_in_unit_of_work(engine, functools.partial(_receive_many, deliveries=deliveries))
    for delivery, outcome in zip(deliveries, outcomes, strict=True):
        if isinstance(outcome, DeliveryRefusedError):
            log_refusal(delivery.connector, delivery.connection_id, outcome)
    return outcomes


def _receive_many(
    session: Session, *, deliveries: Sequence[Incoming]
) -> list[Receipt | DeliveryRefusedError]:
    wanted = {delivery.connection_id for delivery in deliveries}
    found = {row.id: row for row in session.connection().execute(_RECEIPT_CONNECTIONS, {"ids": list(wanted)})}
    outcomes: list[Receipt | DeliveryRefusedError | None] = []
    rows: list[dict[str, object]] = []
    for delivery in deliveries:
        try:
            rows.append(_checked(session, found.get(delivery.connection_id), delivery))
            outcomes.append(None)
        except DeliveryRefusedError as refusal:
            outcomes.append(refusal)
    stored = _store_rows(session, rows)
    at = iter(rows)
    return [outcome if outcome is not None else stored[next(at)["id"]] for outcome in outcomes]


def _checked(session: Session, found: Any, delivery: Incoming) -> dict[str, object]:
    """The inbox row of a delivery whose connection is active and of its connector and whose signature
    holds; DeliveryRefusedError otherwise."""
    if found is None or not found.is_active or found.connector != delivery.connector:
        raise DeliveryRefusedError(404, "no such active connection")
    key = keys.kept_data_key(session, found.organization_id, KEY_PURPOSE)
    verified = verify(
        delivery.connector,
        secret=opened_secret(key, found.secret_sealed, where=_secret_place(delivery.connection_id)),
        body=delivery.body,
        headers=delivery.headers,
        now=delivery.now,
        signature_header=found.signature_header,
        signature_encoding=found.signature_encoding,
    )
    try:
        text = delivery.body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DeliveryRefusedError(400, "the body is not UTF-8") from error
    if "\x00" in text:
        raise DeliveryRefusedError(400, "the body holds a NUL character")
    return _inbox_row(
        key,
        organization_id=found.organization_id,
        connection_id=delivery.connection_id,
        source_event_id=verified.source_event_id,
        event_type=verified.event_type,
        source_time=verified.source_time,
        text=text,
        now=delivery.now,
    )


def store_delivery(
    session: Session,
    connection: Connection,
    *,
    source_event_id: str,
    event_type: str,
    source_time: datetime | None,
    text: str,
) -> Receipt:
    """Store one event of the connection in the inbox, its body (the envelope as the connector sends it,
    so `normalize` reads a polled change as it reads a webhook) sealed, unless the inbox already holds
    its deduplication key (connection, source event id): then nothing more is stored (`duplicate`).
    Webhooks (`receive`) and polling both come in here."""
    row = _inbox_row(
        keys.data_key(session, connection.organization_id, KEY_PURPOSE),
        organization_id=connection.organization_id,
        connection_id=connection.id,
        source_event_id=source_event_id,
        event_type=event_type,
        source_time=source_time,
        text=text,
        now=clock.now(),
    )
    return _store_rows(session, [row])[row["id"]]


def _inbox_row(
    key: bytes,
    *,
    organization_id: uuid.UUID,
    connection_id: uuid.UUID,
    source_event_id: str,
    event_type: str,
    source_time: datetime | None,
    text: str,
    now: datetime,
) -> dict[str, object]:
    inbox_id = new_id()
    return {
        "id": inbox_id,
        "organization_id": organization_id,
        "connection_id": connection_id,
        "source_event_id": source_event_id,
        "event_type": event_type,
        "source_time": source_time,
        "body_sealed": keys.seal_text(key, text, where=_body_place(inbox_id)),
        "state": "received",
        "attempts": 0,
        "last_error": None,
        "received_at": now,
        "processed_at": None,
    }


def _store_rows(session: Session, rows: list[dict[str, object]]) -> dict[object, Receipt]:
    """Insert inbox rows unless the inbox holds their deduplication keys (or an earlier row of `rows`
    does): the receipt of each by its new id. One `INSERT ... ON CONFLICT DO NOTHING RETURNING id` for
    them all (it says which went in), and one query more only when some were duplicates (their stored
    ids)."""
    if not rows:
        return {}
    # In one order of their unique keys, so that two processes storing the same deliveries at once wait
    # for each other instead of deadlocking (the sort is stable: of copies, the first stays first).
    ordered = sorted(rows, key=lambda row: (str(row["connection_id"]), str(row["source_event_id"])))
    inserted = set(insert_many_unless_conflict(session, InboxEvent, ordered, returning="id"))
    receipts: dict[object, Receipt] = {
        row["id"]: Receipt(202, row["id"], False)  # type: ignore[arg-type]
        for row in rows
        if row["id"] in inserted
    }
    duplicates = [row for row in rows if row["id"] not in inserted]
    if duplicates:
        keys_wanted = {(row["connection_id"], row["source_event_id"]) for row in duplicates}
        stored = {
            (found.connection_id, found.source_event_id): found.id
            for found in session.connection().execute(
                _STORED_IDS,
                {
                    "connection_ids": list({c for c, _ in keys_wanted}),
                    "source_event_ids": list({e for _, e in keys_wanted}),
                },
            )
        }
        for row in duplicates:
            receipts[row["id"]] = Receipt(200, stored[(row["connection_id"], row["source_event_id"])], True)
    return receipts


_INBOX: Final = InboxEvent.__table__
_STORED_IDS: Final = select(_INBOX.c.connection_id, _INBOX.c.source_event_id, _INBOX.c.id).where(
    _INBOX.c.connection_id.in_(bindparam("connection_ids", expanding=True)),
    _INBOX.c.source_event_id.in_(bindparam("source_event_ids", expanding=True)),
)


def log_refusal(connector: str, connection_id: uuid.UUID, refusal: DeliveryRefusedError) -> None:
    """The one log line of a refused delivery (never its body or signature)."""
    logger.warning("webhook %s/%s refused (%s): %s", connector, connection_id, refusal.status, refusal.reason)


# --- outbound webhooks: subscribers to our events -----------------------------------------------------


def _subscription_read(subscription: WebhookSubscription) -> SubscriptionRead:
    return SubscriptionRead(
        id=subscription.id,
        url=subscription.url,
        topics=subscription.topics.split(","),
        is_active=subscription.is_active,
        failures_in_a_row=subscription.failures_in_a_row,
        disabled_reason=subscription.disabled_reason,
        created_at=subscription.created_at,
    )


def add_subscription(session: Session, *, actor: Actor, data: SubscriptionCreate) -> SubscriptionCreated:
    """A subscriber to the organization's events (`topics`), signed with a new `whsec_` secret that is
    returned this once and stored sealed. Emits `integration.subscription_added`."""
    require(actor, "integrations", "manage")
    now, subscription_id = clock.now(), new_id()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    key = keys.data_key(session, actor.organization_id, KEY_PURPOSE)
    subscription = WebhookSubscription(
        id=subscription_id,
        organization_id=actor.organization_id,
        url=data.url,
        topics=",".join(dict.fromkeys(data.topics)),
        secret_sealed=keys.seal_text(key, secret, where=outbound.secret_place(subscription_id)),
        is_active=True,
        failures_in_a_row=0,
        disabled_reason=None,
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    session.flush()
    record_event(
        session, actor, "integration.subscription_added", subscription.id, {"id": str(subscription.id)}
    )
    return SubscriptionCreated(**_subscription_read(subscription).model_dump(), secret=secret)


def list_subscriptions(
    session: Session, *, actor: Actor, limit: int = 50, offset: int = 0
) -> Page[SubscriptionRead]:
    require(actor, "integrations", "read")
    rows, total = list_owned(
        session,
        WebhookSubscription,
        actor.organization_id,
        order_by=(WebhookSubscription.created_at, WebhookSubscription.id),
        limit=limit,
        offset=offset,
    )
    return Page(items=[_subscription_read(s) for s in rows], total=total, limit=limit, offset=offset)


def deactivate_subscription(
    session: Session, *, actor: Actor, subscription_id: uuid.UUID
) -> SubscriptionRead:
    """Stop sending to the subscriber; deliveries still waiting are abandoned."""
    require(actor, "integrations", "manage")
    subscription = get_owned(
        session,
        WebhookSubscription,
        actor.organization_id,
        subscription_id,
        "webhook subscription",
        lock=True,
    )
    subscription.is_active, subscription.updated_at = False, clock.now()
    subscription.disabled_reason = f"removed by {actor.label}"[:500]
    session.flush()
    record_event(
        session, actor, "integration.subscription_removed", subscription.id, {"id": str(subscription.id)}
    )
    return _subscription_read(subscription)


def list_deliveries(
    session: Session,
    *,
    actor: Actor,
    subscription_id: uuid.UUID | None = None,
    state: DeliveryState | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[DeliveryRead]:
    """Our events' deliveries to subscribers, newest first, and what became of each."""
    require(actor, "integrations", "read")
    filters = []
    if subscription_id is not None:
        filters.append(WebhookDelivery.subscription_id == subscription_id)
    if state is not None:
        filters.append(WebhookDelivery.state == state)
    rows, total = list_owned(
        session,
        WebhookDelivery,
        actor.organization_id,
        *filters,
        order_by=(WebhookDelivery.created_at.desc(), WebhookDelivery.event_id.desc()),
        limit=limit,
        offset=offset,
    )
    return Page(items=[DeliveryRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


# --- what the worker runs -------------------------------------------------------------------------------


def webhook_consumer(engine: Engine, *, gap_grace_seconds: float = 60.0) -> OutboxConsumer:
    """The `webhooks` consumer of the outbox: each event -> a delivery per matching subscription."""
    return OutboxConsumer(
        engine, outbound.CONSUMER, outbound.WebhookEventHandler(engine), gap_grace_seconds=gap_grace_seconds
    )


def apply_inbox(engine: Engine) -> bool:
    """Apply the connected systems' waiting deliveries (`integrations.apply`), a batch of them; whether
    the batch was full (more may be waiting: the worker goes on at once instead of pausing)."""
    from medspa.integrations import apply

    report = apply.apply_pending(engine, limit=apply.BATCH)
    return report.applied + report.skipped + report.failed >= apply.BATCH


def send_webhooks(engine: Engine) -> outbound.SendReport:
    """Send our events' deliveries that are due (`integrations.outbound`)."""
    return outbound.send_due(engine)
