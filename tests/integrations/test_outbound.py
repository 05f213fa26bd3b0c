"""Outbound webhooks: our events reach a subscriber over HTTP in the Standard Webhooks format (verified
with the reference library), once per event however often it is handled, retried with backoff when the
subscriber fails, and the subscription disabled after repeated failure."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from standardwebhooks.webhooks import Webhook

from medspa.integrations import outbound
from medspa.integrations.models import WebhookDelivery
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.outbox import Delivered, OutboxEvent
from medspa.security.actors import Actor


class Subscriber:
    """A subscriber's HTTP endpoint on loopback: records what arrives, answers the statuses it is told
    (then 200)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = owner.answers.pop(0) if owner.answers else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    endpoint = Subscriber()
    yield endpoint
    endpoint.close()


def handle_new_events(engine: Engine, owner: Actor, after: int = 0) -> int:
    """What the `webhooks` consumer does with the organization's events after `after`; the last id."""
    with unit_of_work(engine, write=False) as session:
        rows = session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.organization_id == owner.organization_id, OutboxEvent.id > after)
            .order_by(OutboxEvent.id)
        ).all()
        events = [
            Delivered(e.id, e.organization_id, e.topic, e.aggregate_id, dict(e.payload), e.created_at)
            for e in rows
        ]
    handled = outbound.WebhookEventHandler(engine)(events)
    assert handled == {e.id for e in events}
    return max((e.id for e in events), default=after)


def deliveries(engine: Engine, owner: Actor) -> list[WebhookDelivery]:
    with unit_of_work(engine, write=False) as session:
        rows = session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.organization_id == owner.organization_id)
            .order_by(WebhookDelivery.event_id, WebhookDelivery.id)
        ).all()
        session.expunge_all()
        return list(rows)


def test_a_subscriber_receives_our_events_signed_once_each(
    api: TestClient, engine: Engine, owner: Actor, subscriber: Subscriber
) -> None:
    added = api.post("/api/v1/webhook-subscriptions", json={"url": subscriber.url, "topics": ["client.*"]})
    assert added.status_code == 201, added.text
    secret = added.json()["secret"]
    assert secret.startswith("whsec_")
    assert all("secret" not in s for s in api.get("/api/v1/webhook-subscriptions").json()["items"])
    client = api.post("/api/v1/clients", json={"first_name": "Ines", "last_name": "Moreau"}).json()
    api.patch(f"/api/v1/clients/{client['id']}", json={"notes": "prefers mornings"})
    last = handle_new_events(engine, owner)
    handle_new_events(engine, owner)  # every event handled again: nothing more to send
    assert [d.topic for d in deliveries(engine, owner)] == ["client.created", "client.updated"]

    report = outbound.send_due(engine, organization_id=owner.organization_id)
    assert (report.delivered, report.failed) == (2, 0)
    assert outbound.send_due(engine, organization_id=owner.organization_id).delivered == 0
    assert len(subscriber.received) == 2
    verifier = Webhook(secret)
    topics = []
    for headers, body in subscriber.received:
        message = verifier.verify(body, headers)  # the reference library: raises on a bad signature
        topics.append(message["type"])
        assert message["data"]["id"] == client["id"]
        assert "Ines" not in body.decode()  # ids and field names, never PHI
    assert topics == ["client.created", "client.updated"]
    headers, body = subscriber.received[0]
    with pytest.raises(Exception):  # noqa: B017, PT011 - whichever the library raises for a forgery
        verifier.verify(body + b" ", headers)
    assert last > 0


def test_a_failing_subscriber_is_retried_with_backoff_then_disabled(
    api: TestClient, engine: Engine, owner: Actor, subscriber: Subscriber, test_clock: ManualClock
) -> None:
    added = api.post(
        "/api/v1/webhook-subscriptions", json={"url": subscriber.url, "topics": ["client.created"]}
    ).json()
    test_clock.set(test_clock.now())
    api.post("/api/v1/clients", json={"first_name": "Retry", "last_name": "Me"})
    handle_new_events(engine, owner)
    subscriber.answers = [500, 503]
    assert outbound.send_due(engine, organization_id=owner.organization_id).failed == 1
    assert outbound.send_due(engine, organization_id=owner.organization_id).failed == 0  # not due yet
    test_clock.set(test_clock.now() + outbound.BACKOFF[0])
    assert outbound.send_due(engine, organization_id=owner.organization_id).failed == 1
    test_clock.set(test_clock.now() + outbound.BACKOFF[1])
    assert outbound.send_due(engine, organization_id=owner.organization_id).delivered == 1
    [delivery] = deliveries(engine, owner)
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 3, 200)
    ids = {h["webhook-id"] for h, _ in subscriber.received}
    assert len(ids) == 1  # the same message id on every retry, for the subscriber's deduplication

    subscriber.answers = [500] * (outbound.DISABLE_AFTER + 5)
    for number in range(outbound.DISABLE_AFTER):
        api.post("/api/v1/clients", json={"first_name": "Fail", "last_name": f"N{number}"})
    after = max(d.event_id for d in deliveries(engine, owner))
    handle_new_events(engine, owner, after)
    outbound.send_due(engine, organization_id=owner.organization_id)
    listed = api.get("/api/v1/webhook-subscriptions").json()["items"]
    assert listed[0]["id"] == added["id"]
    assert listed[0]["is_active"] is False
    assert "failed deliveries in a row" in listed[0]["disabled_reason"]
    api.post("/api/v1/clients", json={"first_name": "After", "last_name": "Disabled"})
    handle_new_events(engine, owner, after)
    states = {d.state for d in deliveries(engine, owner) if d.event_id > after}
    assert states == {"abandoned"}


def test_an_unreachable_subscriber_counts_as_a_failure(api: TestClient, engine: Engine, owner: Actor) -> None:
    api.post(
        "/api/v1/webhook-subscriptions", json={"url": "http://127.0.0.1:9/nowhere", "topics": ["client.*"]}
    )
    api.post("/api/v1/clients", json={"first_name": "No", "last_name": "Answer"})
    handle_new_events(engine, owner)
    assert outbound.send_due(engine, organization_id=owner.organization_id).failed == 1
    [delivery] = deliveries(engine, owner)
    assert delivery.state == "pending"
    assert delivery.last_status is None
    assert "Connect" in (delivery.last_error or "")


def test_subscriptions_refuse_bad_input_and_other_roles(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    from medspa.security.actors import Role
    from tests.conftest import token_for

    manager = {"Authorization": f"Bearer {token_for(engine, owner, Role.MANAGER)}"}
    assert (
        api.post(
            "/api/v1/webhook-subscriptions", json={"url": "https://x.example/h"}, headers=manager
        ).status_code
        == 403
    )
    for bad in (
        {"url": "ftp://x.example/h"},
        {"url": "https://user:pw@x.example/h"},
        {"url": "https://x.example/a b"},
        {"url": "not a url at all"},
        {"url": "https://" + "x" * 2000},
        {"url": None},
        {"url": "https://x.example/h", "topics": []},
        {"url": "https://x.example/h", "topics": ["DROP TABLE"]},
        {"url": "https://x.example/h", "topics": ["a\x00.b"]},
        {"url": "https://x.example/h", "topics": ["client.*"] * 51},
    ):
        assert api.post("/api/v1/webhook-subscriptions", json=bad).status_code == 422, bad
    assert api.get("/api/v1/webhook-subscriptions").json()["total"] == 0
    created = api.post("/api/v1/webhook-subscriptions", json={"url": "https://x.example/h"}).json()
    gone = api.delete(f"/api/v1/webhook-subscriptions/{created['id']}")
    assert gone.json()["is_active"] is False
    assert api.delete(f"/api/v1/webhook-subscriptions/{uuid.uuid4()}").status_code == 404


def test_the_consumer_drains_the_outbox_into_deliveries(
    api: TestClient, engine: Engine, owner: Actor, subscriber: Subscriber
) -> None:
    from medspa.kit.outbox import OutboxConsumer

    api.post("/api/v1/webhook-subscriptions", json={"url": subscriber.url, "topics": ["client.created"]})
    for number in range(3):
        api.post("/api/v1/clients", json={"first_name": "Drained", "last_name": f"N{number}"})
    consumer = OutboxConsumer(
        engine, f"webhooks-test-{uuid.uuid4().hex[:8]}", outbound.WebhookEventHandler(engine)
    )
    consumer.drain()
    consumer.drain()
    assert [d.topic for d in deliveries(engine, owner)] == ["client.created"] * 3
    assert outbound.send_due(engine, organization_id=owner.organization_id).delivered == 3
    assert [json.loads(b)["type"] for _, b in subscriber.received] == ["client.created"] * 3
    assert timedelta(0) <= outbound.BACKOFF[0]
