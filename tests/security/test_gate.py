"""The agent policy gate: tier 1 runs, tier 2 runs within its thresholds, tier 3 never runs without a
person's approval, whatever the sequence of submissions, decisions and policy changes."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationFailedError
from medspa.kit.outbox import OutboxEvent, record_event
from medspa.security import gate
from medspa.security.actors import Actor, Role
from medspa.security.models import AgentAction
from medspa.security.schemas import AgentPolicyUpdate
from tests.conftest import token_for

EFFECT = "test_gate.effect"


def _effect(session: Session, agent: Actor, payload: dict[str, Any]) -> str:
    record_event(session, agent, EFFECT, uuid.UUID(payload["subject"]), {"kind": payload["kind"]})
    return f"did {payload['kind']}"


def _fails(session: Session, agent: Actor, payload: dict[str, Any]) -> str:
    _effect(session, agent, payload)  # work the failure must undo
    raise ValueError("the slot is gone")


for _name, _tier, _handler, _limits in (
    ("test.routine", gate.Tier.RUNS, _effect, {}),
    ("test.bounded", gate.Tier.WITHIN_THRESHOLDS, _effect, {"daily_limit": 3, "value_limit_cents": 5000}),
    ("test.human", gate.Tier.NEEDS_APPROVAL, _effect, {}),
    ("test.fails", gate.Tier.RUNS, _fails, {}),
):
    gate.register(gate.Kind(_name, _tier, _handler, f"a test action ({_name})", **_limits))

NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


def agent_of(owner: Actor) -> Actor:
    return Actor(owner.organization_id, "agent", None, Role.OWNER, "test-agent")


def person(owner: Actor, role: Role = Role.MANAGER) -> Actor:
    return Actor(owner.organization_id, "user", uuid.uuid4(), role, f"{role.value}@clinic.example")


def submit(engine: Engine, owner: Actor, action: str, value: int | None = None) -> tuple[uuid.UUID, str]:
    subject = uuid.uuid4()
    with unit_of_work(engine) as session:
        done = gate.submit(
            session,
            agent=agent_of(owner),
            action=action,
            trigger="outbox:1 appointment.cancelled",
            summary=f"{action} for a test",
            payload={"subject": str(subject), "kind": action},
            subject_id=subject,
            value_cents=value,
        )
    return done.id, done.state


def effects(engine: Engine, owner: Actor) -> int:
    with unit_of_work(engine, write=False) as session:
        return (
            session.scalar(
                select(func.count()).where(
                    OutboxEvent.organization_id == owner.organization_id, OutboxEvent.topic == EFFECT
                )
            )
            or 0
        )


def test_tier_one_runs_tier_three_waits_for_a_person(engine: Engine, owner: Actor) -> None:
    _, state = submit(engine, owner, "test.routine")
    assert (state, effects(engine, owner)) == ("ran", 1)
    waiting, state = submit(engine, owner, "test.human")
    assert (state, effects(engine, owner)) == ("queued", 1)
    with unit_of_work(engine) as session, pytest.raises(PermissionDeniedError):
        gate.decide(session, actor=person(owner, Role.FRONT_DESK), action_id=waiting, approve=True)
    with unit_of_work(engine) as session, pytest.raises(PermissionDeniedError, match="person"):
        gate.decide(session, actor=agent_of(owner), action_id=waiting, approve=True)
    manager = person(owner)
    with unit_of_work(engine) as session:
        approved = gate.decide(session, actor=manager, action_id=waiting, approve=True)
    assert (approved.state, approved.decided_by, approved.agent) == (
        "approved",
        manager.label,
        "agent:test-agent",
    )
    assert approved.trigger == "outbox:1 appointment.cancelled"
    assert approved.outcome == "did test.human"
    assert effects(engine, owner) == 2
    with unit_of_work(engine) as session, pytest.raises(ConflictError):
        gate.decide(session, actor=manager, action_id=waiting, approve=True)
    rejected, _ = submit(engine, owner, "test.human")
    with unit_of_work(engine) as session:
        assert gate.decide(session, actor=manager, action_id=rejected, approve=False).state == "rejected"
    assert effects(engine, owner) == 2
    with unit_of_work(engine) as session, pytest.raises(NotFoundError):
        gate.decide(session, actor=manager, action_id=uuid.uuid4(), approve=True)


def test_tier_two_runs_within_its_daily_limit_and_value_then_waits(
    engine: Engine, owner: Actor, test_clock: ManualClock
) -> None:
    test_clock.set(NOW)
    states = [submit(engine, owner, "test.bounded")[1] for _ in range(4)]
    assert states == ["ran", "ran", "ran", "queued"]
    assert submit(engine, owner, "test.bounded", value=5001)[1] == "queued"
    test_clock.set(NOW + timedelta(hours=24, seconds=1))  # the day's runs leave the window
    assert submit(engine, owner, "test.bounded", value=5000)[1] == "ran"
    assert submit(engine, owner, "test.bounded", value=9000)[1] == "queued"


def test_a_policy_may_be_made_stricter_never_looser(engine: Engine, owner: Actor) -> None:
    owner_person = person(owner, Role.OWNER)
    with unit_of_work(engine) as session, pytest.raises(ValidationFailedError):
        gate.set_policy(session, actor=owner_person, action="test.human", data=AgentPolicyUpdate(tier=1))
    with unit_of_work(engine) as session, pytest.raises(PermissionDeniedError):
        gate.set_policy(session, actor=person(owner), action="test.routine", data=AgentPolicyUpdate(tier=3))
    with unit_of_work(engine) as session:
        made = gate.set_policy(
            session, actor=owner_person, action="test.routine", data=AgentPolicyUpdate(tier=3)
        )
    assert (made.tier, made.least_tier) == (3, 1)
    assert submit(engine, owner, "test.routine")[1] == "queued"
    with unit_of_work(engine) as session:
        gate.set_policy(
            session, actor=owner_person, action="test.bounded", data=AgentPolicyUpdate(tier=2, daily_limit=0)
        )
    assert submit(engine, owner, "test.bounded")[1] == "queued"


def test_a_failing_action_is_logged_failed_and_leaves_none_of_its_work(engine: Engine, owner: Actor) -> None:
    action, state = submit(engine, owner, "test.fails")
    assert state == "failed"
    assert effects(engine, owner) == 0
    with unit_of_work(engine, write=False) as session:
        row = session.get(AgentAction, action)
        assert row is not None
        assert row.outcome == "ValueError: the slot is gone"


def test_the_gate_through_the_api(engine: Engine, owner: Actor, api: TestClient) -> None:
    waiting, _ = submit(engine, owner, "test.human")
    front_desk = {"Authorization": f"Bearer {token_for(engine, owner, Role.FRONT_DESK)}"}
    manager = {"Authorization": f"Bearer {token_for(engine, owner, Role.MANAGER)}"}
    assert api.get("/api/v1/agent-actions?state=queued", headers=front_desk).status_code == 403
    queue = api.get("/api/v1/agent-actions?state=queued", headers=manager).json()["items"]
    assert [q["id"] for q in queue] == [str(waiting)]
    assert api.get("/api/v1/agent-actions?state=lost", headers=manager).status_code == 422
    assert api.post(f"/api/v1/agent-actions/{waiting}/approve", headers=front_desk).status_code == 403
    approved = api.post(f"/api/v1/agent-actions/{waiting}/approve", headers=manager)
    assert approved.status_code == 200, approved.text
    assert approved.json()["decided_by"].startswith("token:")
    assert api.post(f"/api/v1/agent-actions/{waiting}/reject", headers=manager).status_code == 409
    assert api.post("/api/v1/agent-actions/not-an-id/approve", headers=manager).status_code == 422
    policies = {p["action"]: p for p in api.get("/api/v1/agent-policies", headers=manager).json()}
    assert policies["test.human"]["tier"] == 3
    assert api.put("/api/v1/agent-policies/test.human", json={"tier": 1}).status_code == 422
    assert (
        api.put("/api/v1/agent-policies/test.routine", json={"tier": 2}, headers=manager).status_code == 403
    )
    for bad in ({"tier": 0}, {"tier": 4}, {"tier": None}, {"tier": 2, "daily_limit": -1}, {}):
        assert api.put("/api/v1/agent-policies/test.routine", json=bad).status_code == 422
    assert api.put("/api/v1/agent-policies/no.such", json={"tier": 3}).status_code == 404
    assert api.put("/api/v1/agent-policies/" + "x" * 65, json={"tier": 3}).status_code == 422
    assert (
        api.put("/api/v1/agent-policies/test.routine", json={"tier": 2, "daily_limit": 1}).status_code == 200
    )


def test_concurrent_tier_two_submissions_never_pass_the_daily_limit(
    engine: Engine, owner: Actor, test_clock: ManualClock
) -> None:
    test_clock.set(NOW)
    barrier = threading.Barrier(8)
    states: list[str] = []

    def one() -> None:
        barrier.wait()
        for _ in range(5):
            try:
                states.append(submit(engine, owner, "test.bounded")[1])
                return
            except ConflictError:  # a transient conflict between first writers: try again
                continue

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(states) == ["queued"] * 5 + ["ran"] * 3
    assert effects(engine, owner) == 3


class GateMachine(RuleBasedStateMachine):
    """Any sequence of submissions, approvals, rejections, policy changes and passing time: a tier-3
    action's work happens only after a person approved it, exactly once per approval."""

    engine: Engine
    owner: Actor
    clock: ManualClock

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[uuid.UUID] = []
        self.now = NOW

    @rule(action=st.sampled_from(["test.routine", "test.bounded", "test.human", "test.fails"]),
          value=st.none() | st.integers(0, 10_000))  # fmt: skip
    def submit(self, action: str, value: int | None) -> None:
        done, state = submit(self.engine, self.owner, action, value)
        if state == "queued":
            self.queued.append(done)

    @rule(data=st.data(), approve=st.booleans(), role=st.sampled_from(list(Role)))
    def decide(self, data: st.DataObject, approve: bool, role: Role) -> None:
        if not self.queued:
            return
        action = data.draw(st.sampled_from(self.queued))
        try:
            with unit_of_work(self.engine) as session:
                gate.decide(session, actor=person(self.owner, role), action_id=action, approve=approve)
            self.queued.remove(action)
        except PermissionDeniedError:
            assert role not in (Role.OWNER, Role.MANAGER)

    @rule(action=st.sampled_from(["test.routine", "test.bounded", "test.human"]), tier=st.integers(1, 3),
          limit=st.none() | st.integers(0, 4))  # fmt: skip
    def set_policy(self, action: str, tier: int, limit: int | None) -> None:
        try:
            with unit_of_work(self.engine) as session:
                gate.set_policy(session, actor=person(self.owner, Role.OWNER), action=action,
                                data=AgentPolicyUpdate(tier=tier, daily_limit=limit))  # fmt: skip
        except ValidationFailedError:
            assert tier < gate.kinds()[action].tier

    @rule(hours=st.integers(1, 30))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        self.clock.set(self.now)

    @invariant()
    def tier_three_runs_only_when_approved(self) -> None:
        with unit_of_work(self.engine, write=False) as session:
            rows = session.scalars(
                select(AgentAction).where(AgentAction.organization_id == self.owner.organization_id)
            ).all()
            effects_by_subject = set(
                session.scalars(
                    select(OutboxEvent.aggregate_id).where(
                        OutboxEvent.organization_id == self.owner.organization_id, OutboxEvent.topic == EFFECT
                    )
                )
            )
        for row in rows:
            did = row.subject_id in effects_by_subject
            if gate.kinds()[row.action].tier == gate.Tier.NEEDS_APPROVAL:  # the kind's, whatever the row says
                assert did == (row.state == "approved")
                assert row.state in ("queued", "approved", "rejected", "failed")
                if row.state == "approved":
                    assert row.decided_by is not None
                    assert row.decided_by.startswith("user:")
            assert did == (row.state in ("ran", "approved")), (row.action, row.state)
            if row.state == "ran":
                assert row.decided_by is None


def test_no_tier_three_action_ever_runs_without_approval(
    engine: Engine, owner: Actor, test_clock: ManualClock
) -> None:
    test_clock.set(NOW)

    class Machine(GateMachine):
        pass

    def fresh_owner() -> Actor:
        from medspa.security import service as security

        with unit_of_work(engine) as session:
            org = security.create_organization(session, slug=f"g-{uuid.uuid4().hex[:12]}", name="Gate")
        return Actor(org.id, "system", None, Role.OWNER, "test")

    def setup(self: GateMachine) -> None:
        GateMachine.__init__(self)
        self.engine, self.owner, self.clock = engine, fresh_owner(), test_clock
        test_clock.set(NOW)

    Machine.__init__ = setup  # type: ignore[method-assign]
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
