"""Property: whatever the front desks do at once, the booking core's invariant holds after every step.

A Hypothesis state machine drives one clinic through steps; each step is a handful of operations (book,
hold, confirm a hold, confirm, cancel, reschedule, apply the latest proposal) run at the same moment by
several workers, each on a thread and a transaction of its own (run again from the start when PostgreSQL
makes it a deadlock victim, as the API does). Other steps move the clock past holds and run the sweep,
put a client on the waitlist, or optimize the day into a new proposal. After every step the invariant of
`tests/invariants.py` is read from the database. An operation may be refused (409, 422: the workers race
for the same times, a proposal is stale), but nothing else may go wrong: any other error fails.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine

from medspa.kit import clock
from medspa.kit.clock import ManualClock
from medspa.kit.db import run_in_unit_of_work, unit_of_work
from medspa.kit.errors import MedspaError
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import BookingRequest, HoldRequest, RescheduleRequest, WaitlistCreate
from medspa.security.actors import Actor
from tests.factories import make_client, make_device, make_location, make_provider, make_room, make_service
from tests.invariants import booking_problems

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("America/New_York")
DAY_OPENS = datetime(2026, 3, 3, 9, 0, tzinfo=ZONE).astimezone(UTC)
STARTS = [DAY_OPENS + timedelta(minutes=30 * i) for i in range(12)]  # 09:00 .. 14:30
WORKERS = 4


@dataclass
class World:
    engine: Engine
    actor: Actor
    location_id: uuid.UUID
    services: list[uuid.UUID]
    providers: list[uuid.UUID]
    clients: list[uuid.UUID]


def build_world(engine: Engine, owner: Actor) -> World:
    with clock.frozen_at(START), unit_of_work(engine) as session:
        location = make_location(session, actor=owner)
        providers = [
            make_provider(session, actor=owner, location_id=location.id, skills=["neurotoxin", "laser"]).id
            for _ in range(2)
        ]
        for _ in range(2):
            make_room(session, actor=owner, location_id=location.id)
        make_device(session, actor=owner, location_id=location.id, device_type="laser", cooldown=15)
        services = [
            make_service(session, actor=owner, duration=30, setup=5, cleanup=5).id,
            make_service(session, actor=owner, duration=60, skill="laser", device_type="laser").id,
        ]
        clients = [make_client(session, actor=owner).id for _ in range(5)]
    return World(engine, owner, location.id, services, providers, clients)


# One operation: (kind, a few numbers that pick its client, service, start, provider or appointment).
Operation = tuple[str, int, int, int, int]
operations = st.tuples(
    st.sampled_from(
        ["book", "hold", "confirm_hold", "confirm", "cancel", "reschedule", "reschedule", "apply", "apply"]
    ),
    st.integers(0, 4),
    st.integers(0, 1),
    st.integers(0, len(STARTS) - 1),
    st.integers(-1, 1),
)


class FrontDesks(RuleBasedStateMachine):
    world: World

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.clock.set(START)
        self.appointments: list[uuid.UUID] = []
        self.proposals: list[uuid.UUID] = []

    def _run(self, operation: Operation, target: int, start: threading.Barrier) -> Any:
        world = self.world
        # The workers act at the same moment: on PostgreSQL with their transactions open; SQLite admits
        # one writer at a time, so there they start together and queue. A deadlock victim's second
        # attempt runs alone.
        together = world.engine.dialect.name == "postgresql"
        if not together:
            start.wait(10)
        attempts: list[int] = []

        def work(session: Any) -> Any:
            attempts.append(1)
            if together and len(attempts) == 1:
                start.wait(10)
            return self._operate(session, operation, target)

        with clock.using(self.clock):
            return run_in_unit_of_work(world.engine, work)

    def _operate(self, session: Any, operation: Operation, target: int) -> Any:
        kind, who, what, when, pick = operation
        world = self.world
        actor = world.actor
        provider = None if pick < 0 else world.providers[pick]
        if kind in ("book", "hold"):
            data = BookingRequest(
                client_id=world.clients[who],
                service_id=world.services[what],
                location_id=world.location_id,
                starts_at=STARTS[when],
                provider_id=provider,
            )
            if kind == "book":
                return scheduling.book_appointment(session, actor=actor, data=data)
            held = HoldRequest(**data.model_dump(), hold_minutes=10)
            return scheduling.hold_slot(session, actor=actor, data=held, hold_minutes=10)
        if kind == "apply":
            if not self.proposals:
                return None
            return scheduling.apply_proposal(session, actor=actor, proposal_id=self.proposals[-1])
        if not self.appointments:
            return None
        # A step's workers all act on one appointment: that is where changes race.
        appointment_id = self.appointments[target % len(self.appointments)]
        if kind == "confirm_hold":
            return scheduling.confirm_hold(session, actor=actor, appointment_id=appointment_id)
        if kind == "confirm":
            return scheduling.confirm_appointment(session, actor=actor, appointment_id=appointment_id)
        if kind == "cancel":
            return scheduling.cancel_appointment(
                session, actor=actor, appointment_id=appointment_id, reason="changed plans"
            )
        move = RescheduleRequest(starts_at=STARTS[when], provider_id=provider)
        return scheduling.reschedule_appointment(
            session, actor=actor, appointment_id=appointment_id, data=move
        )

    def _attempt(self, operation: Operation, target: int, start: threading.Barrier) -> Any:
        try:
            return self._run(operation, target, start)
        except MedspaError as refused:  # a race lost or a time taken: the answer is a 4xx
            if refused.status_code not in (404, 409, 422):
                raise
            return None

    @rule(batch=st.lists(operations, min_size=2, max_size=WORKERS), aim=st.integers(0, 50))
    def front_desks_act_at_once(self, batch: list[Operation], aim: int) -> None:
        start = threading.Barrier(len(batch))
        with ThreadPoolExecutor(len(batch)) as pool:
            results = list(pool.map(lambda op: self._attempt(op, aim, start), batch))
        for (kind, *_), result in zip(batch, results, strict=True):
            if kind in ("book", "hold") and result is not None:
                self.appointments.append(result.id)

    @rule(minutes=st.sampled_from([3, 11, 25]))
    def time_passes_and_the_sweep_runs(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))
        with clock.using(self.clock), unit_of_work(self.world.engine) as session:
            scheduling.release_expired_holds(session)

    @rule(who=st.integers(0, 4), what=st.integers(0, 1), opens=st.integers(0, 4))
    def a_client_joins_the_waitlist(self, who: int, what: int, opens: int) -> None:
        world = self.world
        entry = WaitlistCreate(
            client_id=world.clients[who],
            service_id=world.services[what],
            location_id=world.location_id,
            service_date=DAY_OPENS.astimezone(ZONE).date(),
            window_starts_at=time(9 + opens),
            window_ends_at=time(15),
        )
        with clock.using(self.clock), unit_of_work(world.engine) as session:
            scheduling.add_to_waitlist(session, actor=world.actor, data=entry)

    @precondition(lambda machine: len(machine.proposals) < 3)
    @rule(max_moves=st.sampled_from([None, 0, 2]))
    def the_day_is_optimized(self, max_moves: int | None) -> None:
        world = self.world
        try:
            with clock.using(self.clock):
                proposal = scheduling.optimize_day(
                    world.engine,
                    actor=world.actor,
                    location_id=world.location_id,
                    service_date=date(2026, 3, 3),
                    time_limit_seconds=0.5,
                    max_moves=max_moves,
                )
        except MedspaError as refused:  # the day cannot be planned now: 409
            if refused.status_code != 409:
                raise
            return
        self.proposals.append(proposal.id)

    @invariant()
    def every_live_appointment_holds_exactly_its_time_and_none_overlap(self) -> None:
        problems = booking_problems(self.world.engine, self.world.actor.organization_id, self.clock.now())
        assert problems == []


@pytest.mark.slow
def test_concurrent_front_desks_never_break_the_booking_invariant(engine: Engine, owner: Actor) -> None:
    FrontDesks.world = build_world(engine, owner)
    run_state_machine_as_test(
        FrontDesks,
        settings=settings(
            max_examples=40,
            stateful_step_count=15,
            deadline=None,
            derandomize=True,
            database=None,
            # Threads decide the interleavings, so a failure does not replay exactly: report it as found.
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
