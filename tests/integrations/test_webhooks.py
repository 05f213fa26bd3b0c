"""Webhook receivers: each connector's signature checked on the raw body, the delivery stored once
(sealed) before the answer, and every refusal storing nothing; then the inbox applied to the system of
record once per delivery, in the order of the source's own times."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text

from medspa.clients import service as clients
from medspa.integrations.apply import _lock as apply_lock
from medspa.integrations.apply import apply_pending
from medspa.integrations.models import Connection, ExternalLink, InboxEvent
from medspa.kit import clock
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.outbox import OutboxEvent
from medspa.security.actors import Actor

MINDBODY_SECRET = "mindbody-shared-secret"
ZENOTI_SECRET = "zenoti-shared-secret"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
JSON = {"Content-Type": "application/json"}


def _b64mac(key: bytes, content: bytes) -> str:
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def connect(api: TestClient, connector: str, secret: str, **extra: Any) -> str:
    answer = api.post(
        "/api/v1/integrations/connections", json={"connector": connector, "secret": secret, **extra}
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert "secret" not in body
    assert body["webhook_path"] == f"/api/v1/webhooks/{connector}/{body['id']}"
    return str(body["id"])


def mindbody_event(event: str, data: dict[str, Any], *, at: datetime | None = None) -> bytes:
    return json.dumps(
        {
            "messageId": str(uuid.uuid4()),
            "eventId": event,
            "eventSchemaVersion": 1,
            "eventInstanceOriginationDateTime": (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
            "eventData": data,
        }
    ).encode()


def mindbody_headers(body: bytes) -> dict[str, str]:
    return {**JSON, "X-Mindbody-Signature": "sha256=" + _b64mac(MINDBODY_SECRET.encode(), body)}


def standard_headers(body: bytes, *, message_id: str | None = None, at: int | None = None) -> dict[str, str]:
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    stamp = str(at if at is not None else int(time.time()))
    key = base64.b64decode(STANDARD_SECRET.removeprefix("whsec_"))
    signature = _b64mac(key, f"{message_id}.{stamp}.".encode() + body)
    return {
        **JSON,
        "webhook-id": message_id,
        "webhook-timestamp": stamp,
        "webhook-signature": f"v1,{signature}",
    }


def inbox_count(engine: Engine, owner: Actor) -> int:
    with unit_of_work(engine, write=False) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(InboxEvent)
                .where(InboxEvent.organization_id == owner.organization_id)
            )
            or 0
        )


def mb_client(client_id: str, email: str, first: str = "Mina", **more: Any) -> dict[str, Any]:
    return {"clientId": client_id, "firstName": first, "lastName": "Bodhi", "email": email, **more}


def test_each_connector_accepts_a_signed_delivery_once_and_refuses_the_rest(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    zenoti = connect(api, "zenoti", ZENOTI_SECRET, signature_header="X-Signature", signature_encoding="hex")
    standard = connect(api, "standard", STANDARD_SECRET)
    body = mindbody_event("client.created", mb_client("100", "mina@example.org"))
    path = f"/api/v1/webhooks/mindbody/{mindbody}"

    first = api.post(path, content=body, headers=mindbody_headers(body))
    assert first.status_code == 202, first.text
    again = api.post(path, content=body, headers=mindbody_headers(body))
    assert again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "duplicate": True}

    zbody = json.dumps(
        {"id": "z-1", "event_type": "guest.created", "event_timestamp": "2026-12-01T10:00:00", "data": {}}
    ).encode()
    zsig = hmac.new(ZENOTI_SECRET.encode(), zbody, hashlib.sha256).hexdigest()
    assert (
        api.post(
            f"/api/v1/webhooks/zenoti/{zenoti}", content=zbody, headers={**JSON, "X-Signature": zsig}
        ).status_code
        == 202
    )
    sbody = json.dumps(
        {"type": "client.created", "data": {"first_name": "Stan", "last_name": "Dard"}}
    ).encode()
    assert (
        api.post(
            f"/api/v1/webhooks/standard/{standard}", content=sbody, headers=standard_headers(sbody)
        ).status_code
        == 202
    )
    stored = inbox_count(engine, owner)
    assert stored == 3

    refusals = {
        "bad signature": api.post(
            path, content=body, headers={**JSON, "X-Mindbody-Signature": "sha256=" + "A" * 44}
        ),
        "no signature": api.post(path, content=body, headers=JSON),
        "signature of another body": api.post(path, content=body + b" ", headers=mindbody_headers(body)),
        "zenoti base64 when hex is set": api.post(
            f"/api/v1/webhooks/zenoti/{zenoti}",
            content=zbody,
            headers={**JSON, "X-Signature": _b64mac(ZENOTI_SECRET.encode(), zbody)},
        ),
        "stale standard": api.post(
            f"/api/v1/webhooks/standard/{standard}",
            content=sbody,
            headers=standard_headers(sbody, at=int(time.time()) - 301),
        ),
        "future standard": api.post(
            f"/api/v1/webhooks/standard/{standard}",
            content=sbody,
            headers=standard_headers(sbody, at=int(time.time()) + 301),
        ),
        "not JSON": api.post(path, content=b"{nope", headers=mindbody_headers(b"{nope")),
        "a JSON list": api.post(path, content=b"[1]", headers=mindbody_headers(b"[1]")),
        "no messageId": api.post(
            path,
            content=b'{"eventId": "x", "eventData": {}}',
            headers=mindbody_headers(b'{"eventId": "x", "eventData": {}}'),
        ),
        "text/plain": api.post(
            path, content=body, headers={**mindbody_headers(body), "Content-Type": "text/plain"}
        ),
        "over 1 MB": api.post(
            path, content=b" " * 1_100_000 + body, headers=mindbody_headers(b" " * 1_100_000 + body)
        ),
        "unknown connection": api.post(
            f"/api/v1/webhooks/mindbody/{uuid.uuid4()}", content=body, headers=mindbody_headers(body)
        ),
        "another connector's id": api.post(
            f"/api/v1/webhooks/zenoti/{mindbody}", content=body, headers=mindbody_headers(body)
        ),
        "unknown connector": api.post(
            f"/api/v1/webhooks/other/{mindbody}", content=body, headers=mindbody_headers(body)
        ),
        "not an id": api.post(
            "/api/v1/webhooks/mindbody/not-an-id", content=body, headers=mindbody_headers(body)
        ),
    }
    expected = {
        "bad signature": 401, "no signature": 401, "signature of another body": 401,
        "zenoti base64 when hex is set": 401, "stale standard": 401, "future standard": 401,
        "not JSON": 400, "a JSON list": 400, "no messageId": 400, "text/plain": 415, "over 1 MB": 413,
        "unknown connection": 404, "another connector's id": 404, "unknown connector": 422, "not an id": 422,
    }  # fmt: skip
    assert {name: answer.status_code for name, answer in refusals.items()} == expected
    assert inbox_count(engine, owner) == stored  # nothing stored by a refusal

    api.delete(f"/api/v1/integrations/connections/{mindbody}")
    other = mindbody_event("client.created", mb_client("101", "x@example.org"))
    assert api.post(path, content=other, headers=mindbody_headers(other)).status_code == 404


def test_secrets_and_bodies_are_stored_sealed(api: TestClient, engine: Engine, owner: Actor) -> None:
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    body = mindbody_event("client.created", mb_client("200", "sealed.person@example.org"))
    api.post(f"/api/v1/webhooks/mindbody/{mindbody}", content=body, headers=mindbody_headers(body))
    with unit_of_work(engine, write=False) as session:
        rows = session.execute(
            text(
                "SELECT c.secret_sealed, i.body_sealed FROM integration_connections c"
                " JOIN integration_inbox i ON i.connection_id = c.id WHERE c.id = :id"
            ),
            {"id": uuid.UUID(mindbody) if engine.dialect.name == "postgresql" else uuid.UUID(mindbody).hex},
        ).all()
    assert len(rows) == 1
    secret, stored = rows[0]
    assert MINDBODY_SECRET not in secret
    assert "sealed.person" not in stored
    listed = api.get("/api/v1/integrations/connections").json()["items"]
    assert all("secret" not in c and MINDBODY_SECRET not in json.dumps(c) for c in listed)


def test_the_inbox_is_applied_once_in_the_sources_order(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    path = f"/api/v1/webhooks/mindbody/{mindbody}"
    start = datetime.now(UTC)

    def deliver(event: str, data: dict[str, Any], at: datetime) -> None:
        body = mindbody_event(event, data, at=at)
        assert api.post(path, content=body, headers=mindbody_headers(body)).status_code == 202
        assert api.post(path, content=body, headers=mindbody_headers(body)).status_code == 200

    deliver("client.created", mb_client("300", "ordered@example.org"), start)
    deliver(
        "client.updated",
        mb_client("300", "ordered@example.org", first="Newest"),
        start + timedelta(minutes=2),
    )
    deliver(
        "client.updated", mb_client("300", "ordered@example.org", first="Older"), start + timedelta(minutes=1)
    )
    deliver("class.booked", {"classId": 5}, start)
    report = apply_pending(engine, organization_id=owner.organization_id)
    assert (report.applied, report.skipped, report.failed) == (2, 2, 0)
    with unit_of_work(engine, write=False) as session:
        found = clients.list_clients(session, actor=owner, email="ordered@example.org").items
        assert [c.first_name for c in found] == ["Newest"]
        states = dict(
            session.execute(
                select(InboxEvent.event_type, InboxEvent.last_error)
                .where(InboxEvent.organization_id == owner.organization_id, InboxEvent.state == "skipped")
                .order_by(InboxEvent.event_type)
            ).all()
        )
        created = session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(
                OutboxEvent.organization_id == owner.organization_id, OutboxEvent.topic == "client.created"
            )
        )
    assert states["class.booked"] == "class.booked is not taken from mindbody yet"
    assert (states["client.updated"] or "").startswith("stale")
    assert created == 1
    assert apply_pending(engine, organization_id=owner.organization_id).applied == 0  # nothing applied twice
    listed = api.get("/api/v1/integrations/inbox", params={"state": "applied"}).json()["items"]
    assert len(listed) == 2
    assert "body_sealed" not in listed[0]


def test_a_known_client_is_matched_by_email_not_duplicated(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    existing = api.post(
        "/api/v1/clients", json={"first_name": "Ana", "last_name": "Lima", "email": "ana.lima@example.org"}
    ).json()
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    body = mindbody_event(
        "client.created", mb_client("400", "Ana.Lima@example.org", first="Ana", mobilePhone="5550104000")
    )
    api.post(f"/api/v1/webhooks/mindbody/{mindbody}", content=body, headers=mindbody_headers(body))
    assert apply_pending(engine, organization_id=owner.organization_id).applied == 1
    with unit_of_work(engine, write=False) as session:
        found = clients.list_clients(session, actor=owner, email="ana.lima@example.org").items
        link = session.scalar(
            select(ExternalLink).where(
                ExternalLink.external_id == "400", ExternalLink.organization_id == owner.organization_id
            )
        )
    assert [c.id for c in found] == [uuid.UUID(existing["id"])]
    assert found[0].phone is not None
    assert link is not None
    assert link.record_id == uuid.UUID(existing["id"])


def test_a_delivery_the_clients_service_refuses_is_skipped_with_the_reason(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    standard = connect(api, "standard", STANDARD_SECRET)
    body = json.dumps(
        {
            "type": "client.created",
            "data": {"id": "s-1", "first_name": "No", "last_name": "Mail", "email": "not-an-address"},
        }
    ).encode()
    api.post(f"/api/v1/webhooks/standard/{standard}", content=body, headers=standard_headers(body))
    report = apply_pending(engine, organization_id=owner.organization_id)
    assert report.skipped == 1
    skipped = api.get("/api/v1/integrations/inbox").json()["items"][0]
    assert skipped["state"] == "skipped"
    assert "email" in skipped["last_error"]


def test_only_an_owner_adds_a_connection_and_bad_ones_are_refused(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    from medspa.security.actors import Role
    from tests.conftest import token_for

    manager = {"Authorization": f"Bearer {token_for(engine, owner, Role.MANAGER)}"}
    desk = {"Authorization": f"Bearer {token_for(engine, owner, Role.FRONT_DESK)}"}
    body = {"connector": "mindbody", "secret": MINDBODY_SECRET}
    assert api.post("/api/v1/integrations/connections", json=body, headers=manager).status_code == 403
    assert api.get("/api/v1/integrations/connections", headers=manager).status_code == 200
    assert api.get("/api/v1/integrations/connections", headers=desk).status_code == 403
    for bad in (
        {"connector": "standard", "secret": "whsec_not base64!"},
        {"connector": "standard", "secret": "plainsecret"},
        {"connector": "other", "secret": MINDBODY_SECRET},
        {"connector": "mindbody", "secret": "short"},
        {"connector": "mindbody", "secret": "x\x00" * 8},
        {"connector": "mindbody", "secret": None},
        {"connector": "mindbody", "secret": "s" * 501},
        {"connector": "zenoti", "secret": ZENOTI_SECRET, "signature_header": "X Bad: header"},
        {"connector": "zenoti", "secret": ZENOTI_SECRET, "signature_encoding": "rot13"},
    ):
        assert api.post("/api/v1/integrations/connections", json=bad).status_code == 422, bad
    assert api.get("/api/v1/integrations/connections").json()["total"] == 0


def test_concurrent_copies_of_one_delivery_store_one_row(
    api: TestClient, engine: Engine, owner: Actor, test_clock: Any
) -> None:
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    body = mindbody_event("client.created", mb_client("500", "racing@example.org"))
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def post() -> None:
        with clock.using(test_clock):
            barrier.wait()
            statuses.append(
                api.post(
                    f"/api/v1/webhooks/mindbody/{mindbody}", content=body, headers=mindbody_headers(body)
                ).status_code
            )

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 5 + [202]
    assert inbox_count(engine, owner) == 1


def _apply_in_threads(engine: Engine, owner: Actor, test_clock: Any, workers: int) -> int:
    """The inbox applied by `workers` threads at once, then once more for what a lost race left for
    later; the `client.created` events written."""
    barrier = threading.Barrier(workers)

    def work() -> None:
        with clock.using(test_clock):
            barrier.wait()
            apply_pending(engine, organization_id=owner.organization_id)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    apply_pending(engine, organization_id=owner.organization_id)
    with unit_of_work(engine, write=False) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(
                    OutboxEvent.organization_id == owner.organization_id,
                    OutboxEvent.topic == "client.created",
                )
            )
            or 0
        )


@pytest.mark.parametrize("workers", [3])
def test_workers_applying_at_once_apply_each_delivery_once(
    api: TestClient, engine: Engine, owner: Actor, test_clock: Any, workers: int
) -> None:
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    for number in range(12):
        body = mindbody_event("client.created", mb_client(f"6{number:02d}", f"c{number}@example.org"))
        api.post(f"/api/v1/webhooks/mindbody/{mindbody}", content=body, headers=mindbody_headers(body))
        again = mindbody_event(
            "client.updated", mb_client(f"6{number:02d}", f"c{number}@example.org", first="Again")
        )
        api.post(f"/api/v1/webhooks/mindbody/{mindbody}", content=again, headers=mindbody_headers(again))
    created = _apply_in_threads(engine, owner, test_clock, workers)
    with unit_of_work(engine, write=False) as session:
        states = session.scalars(
            select(InboxEvent.state).where(InboxEvent.organization_id == owner.organization_id)
        ).all()
    assert created == 12
    assert set(states) <= {"applied", "skipped"}


def test_new_clients_arriving_together_are_created_together_and_the_others_one_at_a_time(
    api: TestClient, engine: Engine, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clients a batch brings that are new to us are created in one go (`clients.create_clients`);
    a delivery named twice in the batch, one already linked, or one whose e-mail is a client's or
    repeated in the batch is applied alone, as before. Either way each is found, searchable, evented
    and audited once."""
    from medspa.integrations import apply
    from medspa.kit.audit_trail import AuditEvent

    known = api.post(
        "/api/v1/clients", json={"first_name": "Known", "last_name": "Here", "email": "known@example.org"}
    ).json()
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    path = f"/api/v1/webhooks/mindbody/{mindbody}"
    start = datetime.now(UTC)

    def deliver(event: str, data: dict[str, Any], seconds: int = 0) -> None:
        body = mindbody_event(event, data, at=start + timedelta(seconds=seconds))
        assert api.post(path, content=body, headers=mindbody_headers(body)).status_code == 202

    deliver("client.created", mb_client("800", "linked@example.org", first="Linked"))
    assert apply_pending(engine, organization_id=owner.organization_id).applied == 1
    for number in range(5):
        deliver("client.created", mb_client(f"81{number}", f"new{number}@example.org", first=f"New{number}"))
    deliver("client.updated", mb_client("800", "linked@example.org", first="Relinked"), 5)
    deliver("client.created", mb_client("820", "KNOWN@example.org", first="Known"))
    deliver("client.created", mb_client("830", "twice@example.org", first="Twice"))
    deliver("client.updated", mb_client("830", "twice@example.org", first="Twiced"), 5)
    deliver("client.created", mb_client("840", "shared@example.org", first="Shared"))
    deliver("client.created", mb_client("841", "Shared@example.org", first="Shared"))
    calls: list[int] = []
    together = apply.clients.create_clients

    def counted(session: Any, *, actor: Actor, data: Any) -> Any:
        calls.append(len(data))
        return together(session, actor=actor, data=data)

    monkeypatch.setattr(apply.clients, "create_clients", counted)
    report = apply_pending(engine, organization_id=owner.organization_id)
    assert (report.applied, report.skipped, report.failed) == (11, 0, 0)
    assert calls == [5]
    with unit_of_work(engine, write=False) as session:
        links = dict(
            session.execute(
                select(ExternalLink.external_id, ExternalLink.record_id).where(
                    ExternalLink.organization_id == owner.organization_id, ExternalLink.kind == "client"
                )
            ).all()
        )
        listed = {c.id: c for c in clients.list_clients(session, actor=owner, limit=50).items}
        created = session.scalars(
            select(OutboxEvent.aggregate_id).where(
                OutboxEvent.organization_id == owner.organization_id, OutboxEvent.topic == "client.created"
            )
        ).all()
        audited = session.scalars(
            select(AuditEvent.resource_ids).where(
                AuditEvent.organization_id == owner.organization_id, AuditEvent.detail == "client.created"
            )
        ).all()
        found = clients.search_clients(session, actor=owner, query="new3").items
        consent = listed[links["813"]]
    # the known one, the one linked before, 5 together, "Twice" and one for the shared e-mail
    assert len(listed) == 9
    assert len(set(created)) == len(created) == 9
    assert len(audited) == 9
    assert sorted(listed[links[f"81{n}"]].first_name for n in range(5)) == [f"New{n}" for n in range(5)]
    assert listed[links["800"]].first_name == "Relinked"
    assert links["820"] == uuid.UUID(known["id"])
    assert listed[links["830"]].first_name == "Twiced"
    assert links["840"] == links["841"]
    assert [c.id for c in found] == [links["813"]]
    assert (consent.consent.email, consent.consent.sms, consent.consent.marketing) == (True, False, False)


@pytest.mark.parametrize(
    ("odd", "field"),
    [
        ({"first_name": "N" * 300}, "first_name"),
        ({"email": "not-an-address"}, "email"),
        ({"date_of_birth": "1800-01-01"}, "date_of_birth"),
        ({"date_of_birth": "9999-12-31"}, "date_of_birth"),
        ({"phone": "12"}, "phone"),
        ({"last_name": ""}, "last_name"),
        ({"first_name": "\u202eevil", "last_name": "\u0000"}, "last_name"),
    ],
)
def test_an_odd_new_client_among_good_ones_is_skipped_alone_naming_the_field(
    api: TestClient, engine: Engine, owner: Actor, odd: dict[str, Any], field: str
) -> None:
    """Created together, the good ones land; the one whose details do not fit is left out of the batch
    and skipped with the reason, as it would be alone."""
    standard = connect(api, "standard", STANDARD_SECRET)
    for number in range(4):
        data = {"id": f"o-{number}", "first_name": "Ok", "last_name": f"Fine{number}"}
        data |= odd if number == 2 else {"email": f"o{number}@example.org"}
        body = json.dumps({"type": "client.created", "data": data}).encode()
        answer = api.post(
            f"/api/v1/webhooks/standard/{standard}", content=body, headers=standard_headers(body)
        )
        if answer.status_code == 400:  # a NUL never reaches the inbox: refused at the door
            assert "\\u0000" in body.decode()
            continue
        assert answer.status_code == 202, answer.text
    report = apply_pending(engine, organization_id=owner.organization_id)
    assert report.failed == 0
    assert report.applied == 3
    with unit_of_work(engine, write=False) as session:
        names = sorted(c.last_name for c in clients.list_clients(session, actor=owner, limit=10).items)
        skipped = session.scalars(
            select(InboxEvent.last_error).where(
                InboxEvent.organization_id == owner.organization_id, InboxEvent.state == "skipped"
            )
        ).all()
    assert names == ["Fine0", "Fine1", "Fine3"]
    assert len(skipped) == report.skipped
    assert all(field in (reason or "") for reason in skipped)


@pytest.mark.parametrize("workers", [4])
def test_workers_creating_new_clients_together_at_once_make_each_once(
    api: TestClient,
    engine: Engine,
    owner: Actor,
    test_clock: Any,
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    """Each client's creation and a later update of it land in different workers' batches: whichever
    worker takes the connection's lock first makes the client; the other finds its link."""
    from medspa.integrations import apply

    monkeypatch.setattr(apply, "PER_TRANSACTION", {False: 7, True: 7})
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    path = f"/api/v1/webhooks/mindbody/{mindbody}"
    start = datetime.now(UTC)
    for event, first, seconds in (("client.created", "First", 0), ("client.updated", "Later", 60)):
        for number in range(28):
            body = mindbody_event(
                event,
                mb_client(f"9{number:02d}", f"w{number}@example.org", first=first),
                at=start + timedelta(seconds=seconds),
            )
            assert api.post(path, content=body, headers=mindbody_headers(body)).status_code == 202
    created = _apply_in_threads(engine, owner, test_clock, workers)
    with unit_of_work(engine, write=False) as session:
        names = [c.first_name for c in clients.list_clients(session, actor=owner, limit=100).items]
        states = session.scalars(
            select(InboxEvent.state).where(InboxEvent.organization_id == owner.organization_id)
        ).all()
    assert created == 28
    assert names == ["Later"] * 28
    assert set(states) <= {"applied", "skipped"}


def test_a_delivery_is_received_while_applying_holds_the_connections_lock(
    api: TestClient, engine: Engine, owner: Actor, test_clock: Any
) -> None:
    """Applying takes the connection's row lock to create new records one at a time; the receivers'
    inserts (which check their connection) must not wait for that transaction to end."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: a receipt waits for any writing transaction")
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    body = mindbody_event("client.created", mb_client("700", "during@example.org"))
    answers: list[int] = []

    def post() -> None:
        with clock.using(test_clock):
            answers.append(
                api.post(
                    f"/api/v1/webhooks/mindbody/{mindbody}", content=body, headers=mindbody_headers(body)
                ).status_code
            )

    with unit_of_work(engine) as session:
        connection = session.get(Connection, uuid.UUID(mindbody))
        assert connection is not None
        assert apply_lock(session, connection)
        receiver = threading.Thread(target=post)
        receiver.start()
        receiver.join(timeout=10)
        received_while_held = not receiver.is_alive()
    receiver.join()
    assert received_while_held
    assert answers == [202]


def test_a_failing_delivery_is_undone_alone_retried_and_given_up_after_five_tries(
    api: TestClient, engine: Engine, owner: Actor, monkeypatch: pytest.MonkeyPatch, test_clock: ManualClock
) -> None:
    from medspa.integrations import apply

    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    for number, first in enumerate(("Good", "Broken", "Fine")):
        body = mindbody_event(
            "client.created", mb_client(f"70{number}", f"f{number}@example.org", first=first)
        )
        api.post(f"/api/v1/webhooks/mindbody/{mindbody}", content=body, headers=mindbody_headers(body))
    real, real_together = apply.clients.create_client, apply.clients.create_clients
    together: list[int] = []

    def create(session: Any, *, actor: Actor, data: Any) -> Any:
        made = real(session, actor=actor, data=data)  # written, then the failure: the savepoint undoes it
        if data.first_name == "Broken":
            raise RuntimeError("the source's record could not be taken")
        return made

    def create_together(session: Any, *, actor: Actor, data: Any) -> Any:
        together.append(len(data))
        made = real_together(session, actor=actor, data=data)
        if any(one.first_name == "Broken" for one in data):
            raise RuntimeError("the source's record could not be taken")
        return made

    monkeypatch.setattr(apply.clients, "create_client", create)
    monkeypatch.setattr(apply.clients, "create_clients", create_together)
    first = apply_pending(engine, organization_id=owner.organization_id)
    # The three new clients are tried together first; that fails, so each is applied alone.
    assert together[0] == 3
    assert (first.applied, first.failed) == (2, 1)
    # Tried again after a backoff, not before.
    assert apply_pending(engine, organization_id=owner.organization_id).failed == 0
    for _ in range(4):
        test_clock.advance(timedelta(minutes=11))
        apply_pending(engine, organization_id=owner.organization_id)
    with unit_of_work(engine, write=False) as session:
        broken = session.scalars(
            select(InboxEvent).where(
                InboxEvent.organization_id == owner.organization_id, InboxEvent.state == "failed"
            )
        ).all()
        created = session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(
                OutboxEvent.organization_id == owner.organization_id, OutboxEvent.topic == "client.created"
            )
        )
        names = sorted(c.first_name for c in clients.list_clients(session, actor=owner, limit=10).items)
    assert len(broken) == 1
    assert broken[0].attempts == 5
    assert "could not be taken" in (broken[0].last_error or "")
    assert created == 2
    assert names == ["Fine", "Good"]
    assert (
        apply_pending(engine, organization_id=owner.organization_id).failed == 0
    )  # given up: not tried again


def test_the_worker_is_told_to_go_on_while_the_inbox_holds_more_than_a_batch(
    api: TestClient, engine: Engine, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medspa.integrations import apply
    from medspa.integrations.service import apply_inbox

    monkeypatch.setattr(apply, "BATCH", 3)
    everyone = apply.apply_pending  # this organization's deliveries only: the database is shared

    def ours(engine: Engine, *, limit: int) -> apply.ApplyReport:
        return everyone(engine, limit=limit, organization_id=owner.organization_id)

    monkeypatch.setattr(apply, "apply_pending", ours)
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    for number in range(5):
        body = mindbody_event("client.created", mb_client(f"9{number}", f"b{number}@example.org"))
        api.post(f"/api/v1/webhooks/mindbody/{mindbody}", content=body, headers=mindbody_headers(body))
    assert apply_inbox(engine) is True  # three of five: more wait
    assert apply_inbox(engine) is False  # the last two: drained
    assert inbox_states(engine, owner) == {"applied"}


def inbox_states(engine: Engine, owner: Actor) -> set[str]:
    with unit_of_work(engine, write=False) as session:
        return set(
            session.scalars(
                select(InboxEvent.state).where(InboxEvent.organization_id == owner.organization_id)
            )
        )
