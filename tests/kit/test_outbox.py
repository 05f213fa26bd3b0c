"""The outbox consumer: at least once, from a cursor that moves only past handled events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from medspa.kit import clock
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import upgrade
from medspa.kit.outbox import (
    Delivered,
    OutboxConsumer,
    OutboxEvent,
    cursor_position,
    head_event_id,
    move_cursor,
    prune_events,
    record_event,
)
from medspa.security.actors import Actor, system_actor


def emit(engine: Engine, actor: Actor, count: int) -> list[int]:
    aggregates = [uuid.uuid4() for _ in range(count)]
    with unit_of_work(engine) as session:
        for n, aggregate_id in enumerate(aggregates):
            record_event(session, actor, "test.happened", aggregate_id, {"n": n})
        query = select(OutboxEvent.id).where(OutboxEvent.aggregate_id.in_(aggregates))
        return list(session.scalars(query.order_by(OutboxEvent.id)))


def consumer(engine: Engine, handle: object, **options: float) -> OutboxConsumer:
    name, head = f"test-{uuid.uuid4().hex[:12]}", head_event_id(engine)
    with unit_of_work(engine) as session:
        move_cursor(session, name, head)
    return OutboxConsumer(engine, name, handle, **options)  # type: ignore[arg-type]


class Flaky:
    """Fails on its first call, then handles everything of the actor's organization."""

    def __init__(self, organization_id: uuid.UUID) -> None:
        self.organization_id, self.calls, self.seen = organization_id, 0, list[int]()

    def __call__(self, events: Sequence[Delivered]) -> set[int]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("model store unreachable")
        mine = [e.id for e in events if e.organization_id == self.organization_id]
        self.seen.extend(mine)
        return {e.id for e in events}


def test_a_failing_handler_loses_no_event(engine: Engine, owner: Actor) -> None:
    # given three events and a handler that fails the first time
    handler = Flaky(owner.organization_id)
    reader = consumer(engine, handler)
    start = cursor_position(engine, reader.name)
    ids = emit(engine, owner, 3)
    # when it fails, then the cursor stays where it was
    first = reader.drain_once()
    assert (first.read, first.handled, cursor_position(engine, reader.name)) == (3, 0, start)
    assert reader.has_pending
    # when it is retried, then every event is handled once and the cursor passes them
    reader.drain()
    assert handler.seen == ids
    assert cursor_position(engine, reader.name) == ids[-1]
    assert not reader.has_pending


def test_an_event_left_unhandled_is_read_again_and_later_ones_are_not_repeated(
    engine: Engine, owner: Actor
) -> None:
    # given a handler that handles everything but the second event the first time
    ids: list[int] = []
    calls: list[list[int]] = []

    def handle(events: Sequence[Delivered]) -> set[int]:
        calls.append([e.id for e in events])
        return {e.id for e in events if len(calls) > 1 or e.id != ids[1]}

    reader = consumer(engine, handle)
    start = cursor_position(engine, reader.name)
    ids.extend(emit(engine, owner, 3))
    reader.drain_once()
    assert cursor_position(engine, reader.name) == ids[0]
    # when read again, then only the unhandled event is handed over, and the cursor passes all
    reader.drain_once()
    assert calls == [ids, [ids[1]]]
    assert cursor_position(engine, reader.name) == ids[2] != start


def test_a_hole_in_the_ids_holds_the_cursor_until_filled_or_old(engine: Engine, owner: Actor) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("explicit ids would fall behind PostgreSQL's sequence; the logic is the same")
    # given events N+1 and N+3 committed while N+2 is not (yet)
    handled: list[int] = []

    def handle(events: Sequence[Delivered]) -> set[int]:
        handled.extend(e.id for e in events)
        return {e.id for e in events}

    reader = consumer(engine, handle, gap_grace_seconds=3600)
    head = cursor_position(engine, reader.name)
    now = datetime(2026, 3, 1, tzinfo=UTC)

    def insert(event_id: int) -> None:
        with unit_of_work(engine) as session:
            session.add(
                OutboxEvent(
                    id=event_id,
                    organization_id=owner.organization_id,
                    topic="test.happened",
                    aggregate_type="test",
                    aggregate_id=uuid.uuid4(),
                    payload={},
                    actor="test",
                    created_at=now,
                )
            )

    insert(head + 1)
    insert(head + 3)
    # when read, then both are handled but the cursor waits at the hole
    reader.drain_once()
    assert handled == [head + 1, head + 3]
    assert cursor_position(engine, reader.name) == head + 1
    # when the missing event commits, then it alone is handed over and the cursor passes all three
    insert(head + 2)
    reader.drain_once()
    assert handled == [head + 1, head + 3, head + 2]
    assert cursor_position(engine, reader.name) == head + 3
    # and a hole that never fills is passed once it is older than the grace period
    insert(head + 5)
    impatient = OutboxConsumer(engine, reader.name, handle, gap_grace_seconds=0)
    impatient.drain_once()
    assert cursor_position(engine, reader.name) == head + 5


def test_pruning_deletes_only_old_events_every_consumer_has_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    upgrade(url)
    engine = make_engine(url)
    actor = system_actor(uuid.uuid4(), "test")
    with clock.frozen_at(datetime(2026, 1, 1, tzinfo=UTC)):
        old = emit(engine, actor, 3)
    recent = emit(engine, actor, 2)
    later = datetime(2026, 6, 1, tzinfo=UTC)

    def prune() -> int:
        with unit_of_work(engine) as session:
            return prune_events(session, created_before=later)

    assert prune() == 0  # no consumer yet: every event waits for its first reader
    with unit_of_work(engine) as session:
        move_cursor(session, "fast", recent[-1])
        move_cursor(session, "slow", old[1])
    assert prune() == 2  # the two old events the slow consumer has read
    with unit_of_work(engine) as session:
        move_cursor(session, "slow", recent[-1])
    assert prune() == 1  # the last old one; the recent ones are kept however far the cursors are
    with unit_of_work(engine, write=False) as session:
        left = list(session.scalars(select(OutboxEvent.id).order_by(OutboxEvent.id)))
    assert left == recent
    engine.dispose()
