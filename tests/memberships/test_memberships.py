"""Memberships: one active per client, an end never before the start, and nothing written on refusal;
the API answers bad input with 4xx; two starts at once for one client give exactly one."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from medspa.kit import clock
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import ConflictError, NotFoundError, ValidationFailedError
from medspa.kit.outbox import OutboxEvent
from medspa.memberships import service as memberships
from medspa.memberships.schemas import EndReason, MembershipEnd, MembershipStart, MembershipState
from medspa.security.actors import Actor
from tests.factories import make_client

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
GOLD = MembershipStart(plan="Glow Gold", monthly_price_cents=14_900, started_on=date(2026, 3, 1))


@pytest.fixture
def client_id(engine: Engine, owner: Actor, test_clock: ManualClock) -> uuid.UUID:
    test_clock.set(NOW)
    with unit_of_work(engine) as session:
        return make_client(session, actor=owner).id


def _events(engine: Engine, owner: Actor) -> list[tuple[str, dict[str, Any]]]:
    with unit_of_work(engine, write=False) as session:
        rows = session.execute(
            select(OutboxEvent.topic, OutboxEvent.payload)
            .where(
                OutboxEvent.organization_id == owner.organization_id, OutboxEvent.topic.like("membership.%")
            )
            .order_by(OutboxEvent.id)
        )
        return [(topic, dict(payload)) for topic, payload in rows]


def _rows(engine: Engine, owner: Actor) -> list[tuple[str, date, date | None, str | None]]:
    from medspa.memberships.models import Membership

    with unit_of_work(engine, write=False) as session:
        return [
            (m.plan, m.started_on, m.ended_on, m.end_reason)
            for m in session.scalars(
                select(Membership)
                .where(Membership.organization_id == owner.organization_id)
                .order_by(Membership.started_on, Membership.id)
            )
        ]


def test_a_membership_starts_ends_and_a_new_one_may_start_after(
    engine: Engine, owner: Actor, client_id: uuid.UUID
) -> None:
    # given a client with an active membership
    with unit_of_work(engine) as session:
        started = memberships.start_membership(session, actor=owner, client_id=client_id, data=GOLD)
    assert (started.state, started.ended_on) == (MembershipState.ACTIVE, None)
    # when it ends, and another starts on the day it ended
    with unit_of_work(engine) as session:
        ended = memberships.end_membership(
            session,
            actor=owner,
            membership_id=started.id,
            data=MembershipEnd(ended_on=date(2026, 9, 30), reason=EndReason.PRICE),
        )
        second = memberships.start_membership(
            session,
            actor=owner,
            client_id=client_id,
            data=MembershipStart(plan="Glow", monthly_price_cents=9_900, started_on=date(2026, 9, 30)),
        )
    # then both are the client's, the latest first, and each step emitted its event (ids only)
    assert (ended.state, ended.ended_on, ended.end_reason) == (
        MembershipState.ENDED,
        date(2026, 9, 30),
        EndReason.PRICE,
    )
    with unit_of_work(engine, write=False) as session:
        listed = memberships.client_memberships(session, actor=owner, client_id=client_id)
        active = memberships.list_memberships(session, actor=owner, state=MembershipState.ACTIVE)
        gone = memberships.list_memberships(session, actor=owner, state=MembershipState.ENDED)
    assert [m.id for m in listed] == [second.id, started.id]
    assert [m.id for m in active.items] == [second.id]
    assert [m.id for m in gone.items] == [started.id]
    ids = {"client_id": str(client_id)}
    assert _events(engine, owner) == [
        ("membership.started", {"id": str(started.id)} | ids),
        ("membership.ended", {"id": str(started.id)} | ids),
        ("membership.started", {"id": str(second.id)} | ids),
    ]


def test_a_second_active_membership_is_refused_and_nothing_is_written(
    engine: Engine, owner: Actor, client_id: uuid.UUID
) -> None:
    with unit_of_work(engine) as session:
        memberships.start_membership(session, actor=owner, client_id=client_id, data=GOLD)
    before = (_rows(engine, owner), _events(engine, owner))
    with (
        pytest.raises(ConflictError, match="already has an active membership"),
        unit_of_work(engine) as session,
    ):
        memberships.start_membership(
            session, actor=owner, client_id=client_id, data=GOLD.model_copy(update={"plan": "Other"})
        )
    assert (_rows(engine, owner), _events(engine, owner)) == before


def test_a_start_before_the_last_end_is_refused(engine: Engine, owner: Actor, client_id: uuid.UUID) -> None:
    with unit_of_work(engine) as session:
        first = memberships.start_membership(session, actor=owner, client_id=client_id, data=GOLD)
        memberships.end_membership(
            session,
            actor=owner,
            membership_id=first.id,
            data=MembershipEnd(ended_on=date(2026, 6, 1), reason=EndReason.OTHER),
        )
    before = _rows(engine, owner)
    with pytest.raises(ConflictError, match="ends on 2026-06-01"), unit_of_work(engine) as session:
        memberships.start_membership(
            session,
            actor=owner,
            client_id=client_id,
            data=GOLD.model_copy(update={"started_on": date(2026, 5, 1)}),
        )
    assert _rows(engine, owner) == before


def test_an_end_before_the_start_or_a_second_end_is_refused_and_nothing_changes(
    engine: Engine, owner: Actor, client_id: uuid.UUID
) -> None:
    with unit_of_work(engine) as session:
        started = memberships.start_membership(session, actor=owner, client_id=client_id, data=GOLD)
    before = (_rows(engine, owner), _events(engine, owner))
    early = MembershipEnd(ended_on=date(2026, 2, 28), reason=EndReason.MOVED_AWAY)
    with (
        pytest.raises(ValidationFailedError, match="before the membership started"),
        unit_of_work(engine) as session,
    ):
        memberships.end_membership(session, actor=owner, membership_id=started.id, data=early)
    assert (_rows(engine, owner), _events(engine, owner)) == before
    with unit_of_work(engine) as session:
        memberships.end_membership(
            session,
            actor=owner,
            membership_id=started.id,
            data=MembershipEnd(ended_on=date(2026, 3, 1), reason=EndReason.MEDICAL),
        )
    after_end = (_rows(engine, owner), _events(engine, owner))
    with (
        pytest.raises(ConflictError, match=r"ended already \(on 2026-03-01\)"),
        unit_of_work(engine) as session,
    ):
        memberships.end_membership(
            session,
            actor=owner,
            membership_id=started.id,
            data=MembershipEnd(ended_on=date(2026, 4, 1), reason=EndReason.OTHER),
        )
    assert (_rows(engine, owner), _events(engine, owner)) == after_end


def test_another_organizations_client_and_membership_are_not_found(
    engine: Engine, owner: Actor, client_id: uuid.UUID
) -> None:
    from medspa.security import service as security
    from medspa.security.actors import system_actor

    with unit_of_work(engine) as session:
        started = memberships.start_membership(session, actor=owner, client_id=client_id, data=GOLD)
        other = security.create_organization(session, slug=f"o-{uuid.uuid4().hex[:10]}", name="Other")
    stranger = system_actor(other.id, "test")
    with pytest.raises(NotFoundError), unit_of_work(engine) as session:
        memberships.start_membership(session, actor=stranger, client_id=client_id, data=GOLD)
    with pytest.raises(NotFoundError), unit_of_work(engine) as session:
        memberships.end_membership(
            session,
            actor=stranger,
            membership_id=started.id,
            data=MembershipEnd(ended_on=date(2026, 4, 1), reason=EndReason.OTHER),
        )
    assert _rows(engine, owner) == [("Glow Gold", date(2026, 3, 1), None, None)]


@pytest.mark.parametrize("attempt", range(3))
def test_two_starts_at_once_for_one_client_give_exactly_one(
    engine: Engine, owner: Actor, client_id: uuid.UUID, test_clock: ManualClock, attempt: int
) -> None:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def start(plan: str) -> None:
        with clock.using(test_clock):
            barrier.wait()
            try:
                with unit_of_work(engine) as session:
                    memberships.start_membership(
                        session, actor=owner, client_id=client_id, data=GOLD.model_copy(update={"plan": plan})
                    )
                outcomes.append("started")
            except ConflictError:
                outcomes.append("refused")

    threads = [threading.Thread(target=start, args=(plan,)) for plan in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "started"]
    rows = _rows(engine, owner)
    assert len(rows) == 1
    assert rows[0][0] in {"A", "B"}
    assert [topic for topic, _ in _events(engine, owner)] == ["membership.started"]


# --- the API -------------------------------------------------------------------------------------------


def _count(engine: Engine, owner: Actor) -> int:
    from medspa.memberships.models import Membership

    with unit_of_work(engine, write=False) as session:
        return int(
            session.scalar(select(func.count()).where(Membership.organization_id == owner.organization_id))
            or 0
        )


GOOD = {"plan": "Glow Gold", "monthly_price_cents": 14900, "started_on": "2026-03-01"}


@pytest.mark.parametrize(
    "body",
    [
        GOOD | {"plan": "Gold\x00"},
        GOOD | {"plan": "x" * 201},
        GOOD | {"plan": ""},
        GOOD | {"plan": None},
        GOOD | {"monthly_price_cents": -1},
        GOOD | {"monthly_price_cents": 10**12},
        GOOD | {"monthly_price_cents": None},
        GOOD | {"monthly_price_cents": "12.5"},
        GOOD | {"started_on": "9999-01-01"},
        GOOD | {"started_on": "2200-01-01"},
        GOOD | {"started_on": None},
        GOOD | {"started_on": "2026-02-30"},
        GOOD | {"location_id": "not-a-uuid"},
        GOOD | {"surprise": 1},
        {"plan": "Glow Gold"},
    ],
)
def test_a_malformed_start_is_422_and_writes_nothing(
    api: TestClient, engine: Engine, owner: Actor, client_id: uuid.UUID, body: dict[str, Any]
) -> None:
    response = api.post(f"/api/v1/clients/{client_id}/memberships", json=body)
    assert response.status_code == 422, response.text
    assert _count(engine, owner) == 0


def test_the_api_starts_lists_and_ends_and_answers_409_and_422_by_the_rules(
    api: TestClient, engine: Engine, owner: Actor, client_id: uuid.UUID
) -> None:
    created = api.post(f"/api/v1/clients/{client_id}/memberships", json=GOOD)
    assert created.status_code == 201, created.text
    membership = created.json()
    assert (membership["state"], membership["plan"], membership["monthly_price_cents"]) == (
        "active",
        "Glow Gold",
        14900,
    )
    second = api.post(f"/api/v1/clients/{client_id}/memberships", json=GOOD)
    assert (second.status_code, second.json()["error"]) == (409, "conflict")
    end_url = f"/api/v1/memberships/{membership['id']}/end"
    for bad in (
        {"ended_on": "2026-02-01", "reason": "price"},  # before the start: a rule, 422
        {"ended_on": "2026-04-01", "reason": "because\x00"},
        {"ended_on": "2026-04-01", "reason": None},
        {"ended_on": "3000-01-01", "reason": "price"},
        {"ended_on": None, "reason": "price"},
    ):
        refused = api.post(end_url, json=bad)
        assert refused.status_code == 422, (bad, refused.text)
    assert api.get(f"/api/v1/clients/{client_id}/memberships").json()[0]["state"] == "active"
    ended = api.post(end_url, json={"ended_on": "2026-04-01", "reason": "not_using"})
    assert (ended.status_code, ended.json()["state"], ended.json()["end_reason"]) == (
        200,
        "ended",
        "not_using",
    )
    again = api.post(end_url, json={"ended_on": "2026-05-01", "reason": "price"})
    assert again.status_code == 409
    assert api.get(f"/api/v1/memberships/{membership['id']}").json()["ended_on"] == "2026-04-01"
    listed = api.get("/api/v1/memberships?state=ended").json()
    assert [m["id"] for m in listed["items"]] == [membership["id"]]
    assert api.get("/api/v1/memberships?state=active").json()["items"] == []
    assert api.get("/api/v1/memberships?state=lapsed").status_code == 422
    assert api.post(f"/api/v1/clients/{uuid.uuid4()}/memberships", json=GOOD).status_code == 404
    assert (
        api.post(
            f"/api/v1/memberships/{uuid.uuid4()}/end", json={"ended_on": "2026-04-01", "reason": "price"}
        ).status_code
        == 404
    )


def test_the_database_refuses_a_second_active_row_even_without_the_service(
    engine: Engine, owner: Actor, client_id: uuid.UUID
) -> None:
    from sqlalchemy.exc import IntegrityError

    from medspa.memberships.models import Membership

    def row(ended_on: date | None) -> Membership:
        return Membership(
            organization_id=owner.organization_id,
            client_id=client_id,
            plan="Raw",
            monthly_price_cents=100,
            started_on=date(2026, 1, 1),
            ended_on=ended_on,
            created_at=NOW,
        )

    with unit_of_work(engine) as session:  # ended rows are many; the active one is alone
        session.add_all([row(date(2026, 1, 2)), row(date(2026, 1, 3)), row(None)])
    with unit_of_work(engine) as session:
        session.add(row(None))
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()
    assert len(_rows(engine, owner)) == 3
