"""Payments and packages from a connected system: recorded as medspa's own events for the client, once
per source record however often it arrives, and never with an amount that is not one."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from medspa.integrations.apply import apply_pending
from medspa.integrations.normalize import Commerce, Ignored, normalize
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.outbox import OutboxEvent
from medspa.security.actors import Actor
from tests.integrations.test_appointments import tick
from tests.integrations.test_webhooks import STANDARD_SECRET, connect, standard_headers


def send(api: TestClient, connection: str, kind: str, data: dict[str, Any]) -> None:
    tick()
    body = json.dumps({"type": kind, "timestamp": "2026-12-01T10:00:00Z", "data": data}).encode()
    answer = api.post(f"/api/v1/webhooks/standard/{connection}", content=body, headers=standard_headers(body))
    assert answer.status_code == 202, answer.text


def events(engine: Engine, owner: Actor, prefix: str) -> list[OutboxEvent]:
    with unit_of_work(engine, write=False) as session:
        return list(
            session.scalars(
                select(OutboxEvent)
                .where(
                    OutboxEvent.organization_id == owner.organization_id, OutboxEvent.topic.startswith(prefix)
                )
                .order_by(OutboxEvent.id)
            )
        )


def test_a_payment_delivered_twice_is_recorded_once_for_the_client(
    api: TestClient, engine: Engine, owner: Actor, test_clock: ManualClock
) -> None:
    standard = connect(api, "standard", STANDARD_SECRET)
    payment = {"id": "pay-1", "client_id": "c-1", "amount_cents": 45000, "currency": "usd"}
    send(api, standard, "payment.captured", payment)  # before its client: waits
    assert apply_pending(engine, organization_id=owner.organization_id).failed == 1
    send(api, standard, "client.created", {"id": "c-1", "first_name": "Pia", "last_name": "Pay"})
    send(api, standard, "payment.captured", payment)  # the sender's retry, under a new message id
    send(
        api,
        standard,
        "package.sold",
        {"id": "pk-1", "client_id": "c-1", "name": "Six peels", "amount_cents": 90000},
    )
    send(api, standard, "package.redeemed", {"id": "rd-1", "client_id": "c-1", "name": "Six peels"})
    report = apply_pending(engine, organization_id=owner.organization_id)
    assert (report.applied, report.skipped) == (4, 0)
    test_clock.advance(timedelta(seconds=3))  # the first delivery's wait is over: recorded already
    report = apply_pending(engine, organization_id=owner.organization_id)
    assert (report.applied, report.skipped) == (0, 1)
    (paid,) = events(engine, owner, "payment.")
    client = events(engine, owner, "client.created")[0].aggregate_id
    assert paid.aggregate_id == client
    assert (paid.payload["amount_cents"], paid.payload["currency"], paid.payload["external_id"]) == (
        45000,
        "USD",
        "pay-1",
    )
    assert [e.topic for e in events(engine, owner, "package.")] == ["package.sold", "package.redeemed"]


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("12.50", 1250),
        (12.5, 1250),
        (-5, None),
        ("nan", None),
        ("1e30", None),
        (True, None),
        (None, None),
        ("abc", None),
    ],
)
def test_amounts_that_are_not_amounts_are_left_out(amount: object, expected: int | None) -> None:
    change = normalize(
        "mindbody",
        "clientSale.created",
        {"saleId": 9, "purchasingClientId": "100", "totalAmountPaid": amount},
        None,
    )
    assert isinstance(change, Commerce)
    assert change.amount_cents == expected


def test_a_payment_without_its_ids_is_skipped_with_the_reason() -> None:
    assert isinstance(normalize("standard", "payment.captured", {"amount_cents": 5}, None), Ignored)
    zenoti = normalize(
        "zenoti",
        "invoice.closed",
        {"invoice_id": str(uuid.uuid4()), "guest": {"id": "g"}, "amount": 10},
        None,
    )
    assert isinstance(zenoti, Commerce)
    assert (zenoti.topic, zenoti.amount_cents) == ("payment.captured", 1000)
