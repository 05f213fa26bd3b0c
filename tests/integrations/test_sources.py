"""The real receivers and pollers against fake Mindbody and Zenoti servers over HTTP on loopback: webhooks
duplicated and reordered arrive in the inbox once each, what was dropped (or never sent) is found by
polling, Zenoti's rate limit is waited out, and a poll interrupted mid-way resumes from its checkpoint."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from medspa.clients import service as clients
from medspa.integrations import service
from medspa.integrations.apply import apply_pending
from medspa.integrations.fakes import FakeMindbody, FakeZenoti, Knobs, World
from medspa.integrations.models import Checkpoint, InboxEvent
from medspa.integrations.polling import Poller, PollError, PollOptions
from medspa.integrations.schemas import ConnectionCreate
from medspa.kit.db import unit_of_work
from medspa.security.actors import Actor
from tests.serving import free_port, running_server

SECRET = "fake-source-shared-secret"
API_KEY = "fake-source-api-key"
ACCOUNT = "-99"


class FakeTime:
    """Seconds that pass only when someone sleeps: shared by a fake (its rate limit) and the poller."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def connect(engine: Engine, owner: Actor, connector: str, base_url: str) -> uuid.UUID:
    data = ConnectionCreate(
        connector=connector,  # type: ignore[arg-type]
        secret=SECRET,
        poll_url=base_url,
        poll_account=ACCOUNT,
        poll_key=API_KEY,
    )
    with unit_of_work(engine) as session:
        return service.add_connection(session, actor=owner, data=data).id


def inbox(engine: Engine, connection_id: uuid.UUID) -> list[tuple[InboxEvent, dict[str, Any]]]:
    with unit_of_work(engine, write=False) as session:
        rows = session.scalars(
            select(InboxEvent)
            .where(InboxEvent.connection_id == connection_id)
            .order_by(InboxEvent.received_at)
        ).all()
        return [(row, json.loads(service.open_body(session, row))) for row in rows]


def world(clients: int = 5, appointments: int = 10) -> World:
    made = World(seed=7)
    made.populate(clients=clients, appointments=appointments)
    return made


def paced_zenoti(fake_time: FakeTime, *, calls_per_window: int) -> FakeZenoti:
    """A Zenoti of 250 appointments (three pages) whose rate limit counts `fake_time`'s seconds."""
    return FakeZenoti(
        world(clients=20, appointments=250),
        api_key=API_KEY,
        account=ACCOUNT,
        secret=SECRET,
        calls_per_window=calls_per_window,
        window_seconds=60,
        monotonic=fake_time.monotonic,
    )


def paced_poller(engine: Engine, fake_time: FakeTime, *, calls_per_minute: int) -> Poller:
    options = PollOptions(days_after=40, calls_per_minute=calls_per_minute)
    return Poller(engine, options=options, sleep=fake_time.sleep, monotonic=fake_time.monotonic)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def served(engine: Engine) -> Iterator[str]:
    with running_server(engine) as base_url:
        yield base_url


def test_mindbody_webhooks_duplicated_and_reordered_arrive_once_each(
    engine: Engine, owner: Actor, served: str
) -> None:
    fake = FakeMindbody(
        world(),
        api_key=API_KEY,
        account=ACCOUNT,
        secret=SECRET,
        knobs=Knobs(duplicate=0.5, reorder=6, seed=3),
    )
    with fake:
        connection_id = connect(engine, owner, "mindbody", fake.base_url)
        fake.target = f"{served}/api/v1/webhooks/mindbody/{connection_id}"

        fake.change(24)
        fake.flush()

        answers = [answer for sent in fake.sent for answer in sent.answers]
        assert len(fake.sent) == 24
        assert len(answers) > 24  # some sent twice
        assert sorted(set(answers)) == [200, 202]
        assert answers.count(202) == 24
        assert fake.acknowledged() == {s.delivery_id for s in fake.sent}
        stored = inbox(engine, connection_id)
        assert sorted(row.source_event_id for row, _ in stored) == sorted(fake.acknowledged())
        by_id = {s.delivery_id: s for s in fake.sent}
        for row, envelope in stored:
            assert row.event_type == by_id[row.source_event_id].event_type
            assert envelope == json.loads(by_id[row.source_event_id].body)


def test_a_dropped_mindbody_cancellation_is_found_by_polling_as_its_webhook_would_say_it(
    engine: Engine, owner: Actor, served: str
) -> None:
    fake = FakeMindbody(world(), api_key=API_KEY, account=ACCOUNT, secret=SECRET, knobs=Knobs(seed=5))
    with fake:
        connection_id = connect(engine, owner, "mindbody", fake.base_url)
        fake.target = f"{served}/api/v1/webhooks/mindbody/{connection_id}"
        poller = Poller(engine)
        poller.poll(connection_id)
        appointment_id = sorted(fake.world.appointments)[0]

        fake.knobs = replace(fake.knobs, drop=1.0)
        cancellation = fake.queue(fake.world.cancel(appointment_id))
        fake.flush()
        assert cancellation is not None
        assert cancellation.fate == "dropped"
        assert cancellation.answers == []
        report = poller.poll(connection_id)

        assert (report.stored, report.duplicates) == (1, 14)  # the others as they were
        modified = fake.world.appointments[appointment_id].modified_at
        found = [(row, body) for row, body in inbox(engine, connection_id) if row.source_time == modified]
        assert len(found) == 1
        row, envelope = found[0]
        assert row.event_type == "appointmentBooking.cancelled"
        assert row.source_event_id.startswith(f"poll:appointment:{appointment_id}:")
        webhook = json.loads(cancellation.body)
        assert envelope["eventId"] == webhook["eventId"] == "appointmentBooking.cancelled"
        assert envelope["eventData"] == webhook["eventData"]
        assert envelope["eventData"]["status"] == "Cancelled"


def test_zenoti_sends_no_cancellation_and_polling_finds_it(engine: Engine, owner: Actor, served: str) -> None:
    fake = FakeZenoti(world(), api_key=API_KEY, account=ACCOUNT, secret=SECRET)
    with fake:
        connection_id = connect(engine, owner, "zenoti", fake.base_url)
        fake.target = f"{served}/api/v1/webhooks/zenoti/{connection_id}"
        appointment_id = sorted(fake.world.appointments)[0]

        changes = fake.change(6)
        assert fake.queue(fake.world.cancel(appointment_id)) is None
        fake.flush()
        webhooks = {row.source_event_id for row, _ in inbox(engine, connection_id)}
        assert webhooks == fake.acknowledged()
        sent = [c for c in changes if c.action != "cancelled"]  # Zenoti sends no cancellation
        assert len(webhooks) == len(fake.sent) == len(sent) > 0
        Poller(engine).poll(connection_id)

        polled = [(r, e) for r, e in inbox(engine, connection_id) if r.source_event_id.startswith("poll:")]
        cancelled = [e["data"] for r, e in polled if e["data"]["status"] == -1]
        assert {r.event_type for r, _ in polled} == {"appointment.updated"}
        assert str(uuid.UUID(int=appointment_id)) in {d["appointment_id"] for d in cancelled}


def test_zenoti_rate_limit_is_waited_out_by_its_retry_after_across_pages(
    engine: Engine, owner: Actor, fake_time: FakeTime
) -> None:
    fake = paced_zenoti(fake_time, calls_per_window=2)
    with fake:
        connection_id = connect(engine, owner, "zenoti", fake.base_url)
        poller = paced_poller(engine, fake_time, calls_per_minute=60)

        report = poller.poll(connection_id)

        assert [(r.query.get("page"), r.status) for r in fake.requests] == [
            ("1", 200),
            ("2", 200),
            ("3", 429),
            ("3", 200),
        ]
        assert fake_time.slept == [60.0]
        assert (report.pages, report.stored, report.duplicates) == (3, 250, 0)
        assert len(inbox(engine, connection_id)) == 250


def test_the_poller_keeps_its_own_pace_below_the_limit(
    engine: Engine, owner: Actor, fake_time: FakeTime
) -> None:
    fake = paced_zenoti(fake_time, calls_per_window=60)
    with fake:
        connection_id = connect(engine, owner, "zenoti", fake.base_url)
        poller = paced_poller(engine, fake_time, calls_per_minute=2)

        poller.poll(connection_id)

        assert [r.status for r in fake.requests] == [200, 200, 200]
        assert fake_time.slept == [60.0]


def test_an_interrupted_poll_resumes_from_its_checkpoint_and_stores_each_record_once(
    engine: Engine, owner: Actor
) -> None:
    fake = FakeMindbody(world(clients=450, appointments=3), api_key=API_KEY, account=ACCOUNT, secret=SECRET)
    with fake:
        connection_id = connect(engine, owner, "mindbody", fake.base_url)
        poller = Poller(engine)
        fake.fail_next(after=1)

        with pytest.raises(PollError, match="answered 503"):
            poller.poll(connection_id)
        assert len(inbox(engine, connection_id)) == 200
        with unit_of_work(engine, write=False) as session:
            checkpoint = session.scalars(
                select(Checkpoint).where(Checkpoint.connection_id == connection_id)
            ).one()
            assert checkpoint.stream == "clients"
            assert checkpoint.position["offset"] == 200
        fake.requests.clear()
        report = poller.poll(connection_id)

        assert [(r.path.rsplit("/", 1)[1], r.query["offset"]) for r in fake.requests] == [
            ("clients", "200"),
            ("clients", "400"),
            ("staffappointments", "0"),
        ]
        assert (report.stored, report.duplicates) == (253, 0)
        stored = inbox(engine, connection_id)
        assert len(stored) == len({row.source_event_id for row, _ in stored}) == 453
        clients_seen = {e["eventData"]["clientId"] for r, e in stored if r.event_type == "client.updated"}
        assert clients_seen == {str(c) for c in fake.world.clients}


def test_polling_again_stores_only_what_changed_and_the_inbox_applies_polled_clients(
    engine: Engine, owner: Actor
) -> None:
    fake = FakeMindbody(world(clients=4, appointments=0), api_key=API_KEY, account=ACCOUNT, secret=SECRET)
    with fake:
        connection_id = connect(engine, owner, "mindbody", fake.base_url)
        poller = Poller(engine)
        first = poller.poll(connection_id)
        again = poller.poll(connection_id)
        client_id = sorted(fake.world.clients)[0]
        fake.world.clients[client_id].last_name = "Renamed"
        fake.world.clients[client_id].modified_at = fake.world.stamp()
        changed = poller.poll(connection_id)

        assert (first.stored, again.stored, again.duplicates) == (4, 0, 4)
        assert (changed.stored, changed.duplicates) == (1, 3)
        report = apply_pending(engine, organization_id=owner.organization_id)
        assert (report.applied, report.failed) == (5, 0)
        with unit_of_work(engine, write=False) as session:
            names = sorted(c.last_name for c in clients.list_clients(session, actor=owner, limit=50).items)
        assert "Renamed" in names
        assert len(names) == 4


def test_a_connection_with_a_wrong_key_stops_alone_with_an_error_that_names_no_secret(
    engine: Engine, owner: Actor, caplog: pytest.LogCaptureFixture
) -> None:
    refusing = FakeMindbody(world(), api_key="another-key", account=ACCOUNT, secret=SECRET)
    answering = FakeMindbody(
        world(clients=2, appointments=1), api_key=API_KEY, account=ACCOUNT, secret=SECRET
    )
    with refusing, answering:
        refused = connect(engine, owner, "mindbody", refusing.base_url)
        answered = connect(engine, owner, "mindbody", answering.base_url)

        outcomes = Poller(engine).poll_all()

        assert isinstance(outcomes[refused], PollError)
        assert "answered 401" in str(outcomes[refused])
        assert API_KEY not in caplog.text
        assert inbox(engine, refused) == []
        assert len(inbox(engine, answered)) == 3


def test_the_worker_polls_connections_with_polling_settings(
    engine: Engine, owner: Actor, tmp_path: Path
) -> None:
    from medspa.retention.serving import ModelCache
    from medspa.worker import BackgroundWorker

    fake = FakeMindbody(world(clients=3, appointments=2), api_key=API_KEY, account=ACCOUNT, secret=SECRET)
    with fake:
        connection_id = connect(engine, owner, "mindbody", fake.base_url)
        worker = BackgroundWorker(
            engine, cache=ModelCache(tmp_path), poll_seconds=0.05, source_poll_seconds=0.1
        )
        worker.start()
        try:
            for _ in range(200):
                if len(inbox(engine, connection_id)) == 5:
                    break
                time.sleep(0.02)
        finally:
            worker.stop()

        assert len(inbox(engine, connection_id)) == 5


def test_a_webhook_not_acknowledged_is_retried_with_backoff_until_it_is_or_the_tries_run_out(
    engine: Engine, owner: Actor, served: str
) -> None:
    down = f"http://127.0.0.1:{free_port()}/nothing-listens-here"
    fake = FakeMindbody(
        world(), api_key=API_KEY, account=ACCOUNT, secret=SECRET, knobs=Knobs(retries=2, backoff_seconds=0.5)
    )
    with fake:
        connection_id = connect(engine, owner, "mindbody", fake.base_url)
        slept: list[float] = []
        fake.sleep, fake.target = slept.append, down
        [lost] = [fake.queue(change) for change in fake.world.change(1)]
        fake.flush()

        def back_up(seconds: float) -> None:  # the receiver comes back while the fake waits
            slept.append(seconds)
            fake.target = f"{served}/api/v1/webhooks/mindbody/{connection_id}"

        fake.sleep, fake.target = back_up, down
        [kept] = [fake.queue(change) for change in fake.world.change(1)]
        fake.flush()

        assert lost is not None
        assert kept is not None
        assert (lost.fate, lost.answers) == ("failed", [None, None, None])
        assert (kept.fate, kept.answers) == ("acknowledged", [None, 202])
        assert slept == [0.5, 1.0, 0.5]
        assert [row.source_event_id for row, _ in inbox(engine, connection_id)] == [kept.delivery_id]


@pytest.mark.parametrize("connector", ["mindbody", "zenoti"])
def test_after_webhooks_duplicated_reordered_and_dropped_one_poll_leaves_no_change_unseen(
    engine: Engine, owner: Actor, served: str, connector: str
) -> None:
    knobs = Knobs(duplicate=0.3, reorder=5, drop=0.25, seed=11)
    kind = FakeMindbody if connector == "mindbody" else FakeZenoti
    fake = kind(world(), api_key=API_KEY, account=ACCOUNT, secret=SECRET, knobs=knobs)
    with fake:
        connection_id = connect(engine, owner, connector, fake.base_url)
        fake.target = f"{served}/api/v1/webhooks/{connector}/{connection_id}"
        fake.change(40)
        fake.flush()
        assert fake.dropped()
        Poller(engine).poll(connection_id)

        rows = inbox(engine, connection_id)
        seen = set()
        for row, envelope in rows:
            data = envelope["eventData"] if connector == "mindbody" else envelope["data"]
            record = data.get("appointmentId") or data.get("appointment_id") or data.get("clientId")
            seen.add((str(record), row.source_time))
        expected = {
            (str(a.id) if connector == "mindbody" else str(uuid.UUID(int=a.id)), a.modified_at)
            for a in fake.world.appointments.values()
        }
        if connector == "mindbody":
            expected |= {(str(c.id), c.modified_at) for c in fake.world.clients.values()}
        assert expected <= seen
        webhooks = {row.source_event_id for row, _ in rows if not row.source_event_id.startswith("poll:")}
        assert webhooks == fake.acknowledged()


def test_polling_is_set_changed_and_stopped_on_a_connection_and_bad_settings_change_nothing(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    from medspa.security.actors import Role
    from tests.conftest import token_for

    fake = FakeMindbody(world(clients=3, appointments=0), api_key=API_KEY, account=ACCOUNT, secret=SECRET)
    with fake:
        added = api.post("/api/v1/integrations/connections", json={"connector": "mindbody", "secret": SECRET})
        connection_id = uuid.UUID(added.json()["id"])
        polling = f"/api/v1/integrations/connections/{connection_id}/polling"
        assert Poller(engine).poll(connection_id).pages == 0  # not polled yet

        wrong = {"poll_url": fake.base_url, "poll_account": ACCOUNT, "poll_key": "a-wrong-api-key"}
        answer = api.put(polling, json=wrong)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["poll_url"], answer.json()["poll_account"]) == (fake.base_url, ACCOUNT)
        assert "a-wrong-api-key" not in answer.text
        with pytest.raises(PollError, match="answered 401"):
            Poller(engine).poll(connection_id)

        right = {**wrong, "poll_key": API_KEY}
        assert api.put(polling, json=right).status_code == 200
        assert Poller(engine).poll(connection_id).stored == 3
        with unit_of_work(engine, write=False) as session:
            streams = session.scalars(select(Checkpoint).where(Checkpoint.connection_id == connection_id))
            assert list(streams)

        manager = {"Authorization": f"Bearer {token_for(engine, owner, Role.MANAGER)}"}
        standard = api.post(
            "/api/v1/integrations/connections",
            json={
                "connector": "standard",
                "secret": "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            },
        ).json()["id"]
        for path, body, status in (
            (polling, right, 403),
            (f"/api/v1/integrations/connections/{standard}/polling", right, 422),
            (f"/api/v1/integrations/connections/{uuid.uuid4()}/polling", right, 404),
            (polling, {**right, "poll_key": None}, 422),
            (polling, {**right, "poll_url": "ftp://example.org/api"}, 422),
            (polling, {**right, "poll_url": "https://user:pw@example.org/api"}, 422),
            (polling, {**right, "poll_account": "a b"}, 422),
            (polling, {**right, "poll_key": "k\x00" * 8}, 422),
            (polling, {**right, "poll_key": "k" * 501}, 422),
        ):
            headers = manager if status == 403 else {}
            assert api.put(path, json=body, headers=headers).status_code == status, (path, body)
        # None of those touched the settings: the next pass finds nothing new and keeps its checkpoints.
        again = Poller(engine).poll(connection_id)
        assert (again.stored, again.duplicates) == (0, 3)

        moved = {**right, "poll_url": fake.base_url.replace("127.0.0.1", "localhost")}
        assert api.put(polling, json=moved).status_code == 200
        with unit_of_work(engine, write=False) as session:
            kept = session.scalars(select(Checkpoint).where(Checkpoint.connection_id == connection_id))
            assert list(kept) == []  # another address: polled from the beginning

        stopped = api.delete(polling)
        assert stopped.status_code == 200
        assert (stopped.json()["poll_url"], stopped.json()["poll_account"]) == (None, None)
        assert Poller(engine).poll(connection_id).pages == 0
