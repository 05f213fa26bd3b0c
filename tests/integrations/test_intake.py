"""Receipts taken together: deliveries reaching a server at once are verified and stored in one
transaction (`service.receive_many`, gathered by `integrations.intake`), and each is answered as it would
be alone: stored once, a duplicate (of a stored row or of another in the same batch) answered with the
stored id, a refusal storing nothing and logged once."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from medspa.integrations import intake as intake_module
from medspa.integrations import service
from medspa.integrations.intake import Intake, _Waiting
from medspa.integrations.models import Connection, InboxEvent
from medspa.integrations.receiving import DeliveryRefusedError
from medspa.integrations.service import Incoming, Receipt, receive_many
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.security.actors import Actor
from tests.integrations.test_webhooks import (
    MINDBODY_SECRET,
    STANDARD_SECRET,
    connect,
    inbox_count,
    mb_client,
    mindbody_event,
    mindbody_headers,
    standard_headers,
)


def _lower(headers: dict[str, str]) -> dict[str, str]:
    """Headers as the server hands them on (its mapping ignores case)."""
    return {name.lower(): value for name, value in headers.items()}


def _mindbody(connection: str, body: bytes, headers: dict[str, str] | None = None) -> Incoming:
    return Incoming(
        "mindbody", uuid.UUID(connection), body, _lower(headers or mindbody_headers(body)), datetime.now(UTC)
    )


def _answers(outcomes: list[Receipt | DeliveryRefusedError]) -> list[int]:
    return [outcome.status for outcome in outcomes]


def test_deliveries_taken_together_are_each_answered_as_alone(
    api: TestClient, engine: Engine, owner: Actor, caplog: pytest.LogCaptureFixture
) -> None:
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    standard = connect(api, "standard", STANDARD_SECRET)
    retired = connect(api, "mindbody", MINDBODY_SECRET)
    api.delete(f"/api/v1/integrations/connections/{retired}")
    earlier = mindbody_event("client.created", mb_client("1", "one@example.org"))
    (stored,) = receive_many(engine, [_mindbody(mindbody, earlier)])
    assert isinstance(stored, Receipt)
    new = mindbody_event("client.created", mb_client("2", "two@example.org"))
    nul = mindbody_event("client.created", mb_client("3", "three@example.org")).replace(
        b"three", b"th\x00ree"
    )
    sbody = json.dumps({"type": "client.created", "data": {"id": "s-1"}}).encode()
    batch = [
        _mindbody(mindbody, new),  # new
        _mindbody(mindbody, new),  # the same delivery again, in the same batch
        _mindbody(mindbody, earlier),  # stored before
        _mindbody(mindbody, new, {"Content-Type": "application/json", "X-Mindbody-Signature": "sha256=AAAA"}),
        _mindbody(str(uuid.uuid4()), new),  # no such connection
        _mindbody(retired, new),  # deactivated
        _mindbody(mindbody, nul),
        Incoming("standard", uuid.UUID(standard), sbody, _lower(standard_headers(sbody)), datetime.now(UTC)),
    ]
    with caplog.at_level(logging.WARNING, logger="medspa.integrations.service"):
        outcomes = receive_many(engine, batch)
    assert _answers(outcomes) == [202, 200, 200, 401, 404, 404, 400, 202]
    first, again, before = outcomes[0], outcomes[1], outcomes[2]
    assert isinstance(first, Receipt)
    assert isinstance(again, Receipt)
    assert isinstance(before, Receipt)
    assert (again.inbox_id, again.duplicate) == (first.inbox_id, True)
    assert (before.inbox_id, before.duplicate) == (stored.inbox_id, True)
    refused = [o for o in outcomes if isinstance(o, DeliveryRefusedError)]
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == len(refused)
    assert inbox_count(engine, owner) == 1 + len([o for o in outcomes if o.status == 202])
    with unit_of_work(engine, write=False) as session:
        ids = set(
            session.scalars(select(InboxEvent.id).where(InboxEvent.organization_id == owner.organization_id))
        )
    assert {o.inbox_id for o in outcomes if isinstance(o, Receipt)} <= ids


def test_a_shared_transaction_that_fails_is_retried_one_delivery_at_a_time(
    api: TestClient, engine: Engine, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    real = intake_module.receive_many
    sizes: list[int] = []

    def flaky(engine: Engine, deliveries: Any) -> Any:
        sizes.append(len(deliveries))
        if len(deliveries) > 1:
            raise RuntimeError("the shared transaction failed")
        if b'"3"' in deliveries[0].body:
            raise RuntimeError("this one cannot be stored")
        return real(engine, deliveries)

    monkeypatch.setattr(intake_module, "receive_many", flaky)
    bodies = [mindbody_event("client.created", mb_client(str(n), f"{n}@example.org")) for n in range(4)]
    waiting = [_Waiting(_mindbody(mindbody, body)) for body in bodies]
    Intake(engine)._store(waiting)
    assert sizes == [4, 1, 1, 1, 1]
    answers = [w.answer.exception(timeout=5) or w.answer.result(timeout=5) for w in waiting]
    assert [getattr(a, "status", None) for a in answers] == [202, 202, 202, None]
    assert isinstance(answers[3], RuntimeError)
    assert inbox_count(engine, owner) == 3


def test_senders_at_once_are_each_answered_once_their_delivery_is_stored(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    path = f"/api/v1/webhooks/mindbody/{mindbody}"
    bodies = [mindbody_event("client.created", mb_client(str(n), f"{n}@example.org")) for n in range(40)]
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def send(mine: list[bytes]) -> None:
        for body in mine:
            for _ in range(2):  # every delivery sent twice: one 202, one 200 with the same id
                answer = api.post(path, content=body, headers=mindbody_headers(body))
                with lock:
                    answers.append((answer.status_code, answer.json()["id"]))

    threads = [threading.Thread(target=send, args=(bodies[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(status for status, _ in answers) == [200] * 40 + [202] * 40
    assert len({inbox_id for _, inbox_id in answers}) == 40
    assert inbox_count(engine, owner) == 40
    assert intake_module.intake_for(engine) is intake_module.intake_for(engine)


def test_a_sender_that_gave_up_does_not_stop_the_intake(
    api: TestClient, engine: Engine, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer given up (its request cancelled) is not given; its delivery is stored all the same, and
    the intake goes on storing: a failure it did not expect is every waiting sender's error, not the
    end of its thread."""
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    bodies = [mindbody_event("client.created", mb_client(str(n), f"g{n}@example.org")) for n in range(3)]
    intake = Intake(engine)
    gave_up, kept = _Waiting(_mindbody(mindbody, bodies[0])), _Waiting(_mindbody(mindbody, bodies[1]))
    assert gave_up.answer.cancel()
    intake._store([gave_up, kept])
    assert kept.answer.result(timeout=5).status == 202
    assert inbox_count(engine, owner) == 2

    def broken(batch: Any) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(intake, "_store", broken)
    failed = intake.submit(_mindbody(mindbody, bodies[2]))
    assert isinstance(failed.exception(timeout=5), RuntimeError)
    monkeypatch.undo()
    assert intake.submit(_mindbody(mindbody, bodies[2])).result(timeout=5).status == 202
    assert intake._thread.is_alive()


def test_a_batch_takes_the_inboxs_keys_in_order_so_two_writers_wait_instead_of_deadlocking(
    api: TestClient, engine: Engine, owner: Actor, test_clock: Any
) -> None:
    """One transaction holds delivery 1 (stored, not yet committed) while a batch listing 2 before 1
    arrives; then the first stores 2 as well. Taken in key order, the batch waits at 1 holding nothing,
    the first commits, and the batch finds both stored. Taken as listed, the batch would hold 2 while
    waiting for 1, and the first's 2 would wait for the batch: a deadlock, which PostgreSQL breaks by
    failing one of them (`run_in_unit_of_work` would retry it, after a second's wait)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    bodies = [mindbody_event("client.created", mb_client(str(n), f"d{n}@example.org")) for n in range(2)]
    bodies.sort(key=lambda body: json.loads(body)["messageId"])
    answers: list[Any] = []

    def batch() -> None:
        with clock.using(test_clock):
            try:
                with unit_of_work(engine) as session:  # no retry: a deadlock shows
                    listed = [_mindbody(mindbody, body) for body in reversed(bodies)]
                    answers.extend(service._receive_many(session, deliveries=listed))
            except Exception as error:
                answers.append(error)

    with unit_of_work(engine) as session:
        connection = session.get_one(Connection, uuid.UUID(mindbody))

        def store(n: int) -> int:
            return service.store_delivery(
                session, connection, source_event_id=json.loads(bodies[n])["messageId"],
                event_type="client.created", source_time=None, text=bodies[n].decode(),
            ).status  # fmt: skip

        assert store(0) == 202
        other = threading.Thread(target=batch)
        other.start()
        _until_a_transaction_waits_for_a_lock(engine)  # the batch, at delivery 1
        assert store(1) == 202
    other.join(timeout=30)
    assert [getattr(a, "status", a) for a in answers] == [200, 200]
    assert inbox_count(engine, owner) == 2


def _until_a_transaction_waits_for_a_lock(engine: Engine) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            waiting = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the batch never waited for the held delivery")


def test_deliveries_racing_the_connections_deactivation_are_stored_or_refused_never_half(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    """While an owner deactivates the connection, senders keep sending: each delivery is answered 202
    (stored before the deactivation committed) or 404 (after), and exactly the 202s are in the inbox."""
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    path = f"/api/v1/webhooks/mindbody/{mindbody}"
    bodies = [mindbody_event("client.created", mb_client(str(n), f"r{n}@example.org")) for n in range(120)]
    answers: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(7)

    def send(mine: list[bytes]) -> None:
        start.wait()
        for body in mine:
            status = api.post(path, content=body, headers=mindbody_headers(body)).status_code
            with lock:
                answers.append(status)

    def deactivate() -> None:
        start.wait()
        time.sleep(0.05)
        assert api.delete(f"/api/v1/integrations/connections/{mindbody}").status_code == 200

    threads = [threading.Thread(target=send, args=(bodies[i::6],)) for i in range(6)]
    threads.append(threading.Thread(target=deactivate))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(answers) <= {202, 404}
    assert len(answers) == 120
    assert inbox_count(engine, owner) == answers.count(202)
