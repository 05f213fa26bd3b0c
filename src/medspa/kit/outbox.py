"""The transactional outbox: events written in the same transaction as the change they describe.

Consumers (webhooks, reminders, models) read the events after commit, in `id` order, from a cursor kept
in `outbox_cursors`, at least once; their handlers must be idempotent (the event id is the idempotency
key). `OutboxConsumer` is the reading loop every consumer shares:

- The cursor of a consumer moves only past events its handler reported handled, and only over a prefix
  without holes, so a failing handler or a crash never loses an event: it is read again next time.
- Holes: on PostgreSQL an event id is taken before its transaction commits, so a reader can see id 8
  before id 7 commits (ADR 4). The cursor stops before a hole until the hole fills, or until it has been
  seen for `gap_grace` (then it was a rolled-back transaction). Events after a hole are handled once per
  process meanwhile and re-read, not re-handled.
- Several readers of one consumer are safe: the cursor never moves backwards, and handlers are
  idempotent. On PostgreSQL a reader holds the cursor row (`FOR UPDATE SKIP LOCKED`) while it drains,
  so readers in other processes skip the drain instead of repeating it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, String, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from medspa.kit import audit_trail, clock
from medspa.kit.audit_trail import Acting
from medspa.kit.db import Base, SequenceKey, unit_of_work

logger = logging.getLogger(__name__)


class OutboxEvent(Base):
    """An event. `id` grows with every event written, so consumers can read from a cursor."""

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(SequenceKey, primary_key=True, autoincrement=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(index=True)
    topic: Mapped[str] = mapped_column(String(64), index=True)
    aggregate_type: Mapped[str] = mapped_column(String(32))
    aggregate_id: Mapped[uuid.UUID]
    payload: Mapped[dict[str, Any]]
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None] = mapped_column(index=True)


class OutboxCursor(Base):
    """How far a consumer has read the outbox: every event with `id <= last_event_id` is handled.

    The one table without `organization_id`: a cursor is a position in this database's outbox, which
    holds every tenant's events; a shard of tenants has its own outbox and its own cursors."""

    __tablename__ = "outbox_cursors"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(SequenceKey)
    updated_at: Mapped[datetime]


def record_event(
    session: Session, actor: Acting, topic: str, aggregate_id: uuid.UUID, payload: dict[str, Any]
) -> None:
    """Write an event in the current transaction (it commits or rolls back with the change), and note
    the change in the audit trail (`kit.audit_trail.record_write`: every write of the domains emits an
    event, so this is where every write is audited).

    `topic` is `<aggregate>.<verb>` (`appointment.booked`); `payload` must be JSON-serializable. The row
    is inserted at once with a prepared statement rather than through the session's flush: every
    booking writes one, and the flush machinery costs more than the insert."""
    record_events(session, actor, topic, [(aggregate_id, payload)])


def record_events(
    session: Session, actor: Acting, topic: str, events: Sequence[tuple[uuid.UUID, dict[str, Any]]]
) -> None:
    """`record_event` for several aggregates (`events`: each one's id and payload), in one statement."""
    if not events:
        return
    now, aggregate_type = clock.now(), topic.split(".", 1)[0]
    session.connection().execute(
        _INSERT,
        [
            {
                "organization_id": actor.organization_id,
                "topic": topic,
                "aggregate_type": aggregate_type,
                "aggregate_id": aggregate_id,
                "actor": actor.label,
                "payload": payload,
                "created_at": now,
                "published_at": None,
            }
            for aggregate_id, payload in events
        ],
    )
    for aggregate_id, _ in events:
        audit_trail.record_write(session, actor, aggregate_type, aggregate_id, topic)


_INSERT = insert(OutboxEvent)


@dataclass(frozen=True)
class Delivered:
    """An event as a consumer receives it (detached from any session)."""

    id: int
    organization_id: uuid.UUID
    topic: str
    aggregate_id: uuid.UUID
    payload: dict[str, Any]
    created_at: datetime


BatchHandler = Callable[[Sequence[Delivered]], set[int]]
"""Handles events (in id order) and returns the ids it handled; an id left out is read again later."""


@dataclass(frozen=True)
class DrainReport:
    read: int
    handled: int
    cursor: int
    skipped: bool = False  # another reader held the cursor


def head_event_id(engine: Engine) -> int:
    """The id of the newest event committed so far (0 when the outbox is empty)."""
    with unit_of_work(engine, write=False) as session:
        return int(session.scalar(select(func.max(OutboxEvent.id))) or 0)


def cursor_position(engine: Engine, consumer: str) -> int:
    with unit_of_work(engine, write=False) as session:
        cursor = session.get(OutboxCursor, consumer)
        return cursor.last_event_id if cursor else 0


def move_cursor(session: Session, consumer: str, event_id: int) -> None:
    """Move `consumer`'s cursor forward to `event_id` (never backwards); creates it when missing."""
    cursor = session.get(OutboxCursor, consumer)
    if cursor is None:
        session.add(OutboxCursor(consumer=consumer, last_event_id=event_id, updated_at=clock.now()))
    else:
        session.execute(
            update(OutboxCursor)
            .where(OutboxCursor.consumer == consumer, OutboxCursor.last_event_id < event_id)
            .values(last_event_id=event_id, updated_at=clock.now())
        )
    session.flush()


def prune_events(session: Session, *, created_before: datetime) -> int:
    """Delete the events created before `created_before` that every consumer has read past; how many.

    Nothing is deleted while there is no consumer, so events wait for their first reader, and a consumer
    that stops reading keeps everything after its cursor."""
    floor = session.scalar(select(func.min(OutboxCursor.last_event_id)))
    if floor is None:
        return 0
    result = session.execute(
        delete(OutboxEvent).where(OutboxEvent.id <= floor, OutboxEvent.created_at < created_before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


class OutboxConsumer:
    """Reads the outbox for one named consumer and hands batches of events to `handle`."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        handle: BatchHandler,
        *,
        batch_size: int = 500,
        gap_grace_seconds: float = 60.0,
    ) -> None:
        self.engine, self.name, self.handle = engine, name, handle
        self.batch_size = batch_size
        self.gap_grace_seconds = gap_grace_seconds
        self._handled: set[int] = set()  # handled ids above the cursor (behind a hole)
        self._holes: dict[int, float] = {}  # first missing id -> when this reader first saw it
        self._failed = False  # the last batch left events unhandled

    @property
    def has_pending(self) -> bool:
        """Events were read but the cursor could not pass them yet (a hole, or a failed handler)."""
        return bool(self._handled) or self._failed

    def drain(self, *, max_batches: int = 1000) -> DrainReport:
        """Read and handle batches until the outbox is drained (or `max_batches` were read)."""
        read = handled = 0
        report = DrainReport(0, 0, 0)
        for _ in range(max_batches):
            report = self.drain_once()
            read += report.read
            handled += report.handled
            if report.skipped or report.read < self.batch_size:
                break
        return DrainReport(read, handled, report.cursor, report.skipped)

    def drain_once(self) -> DrainReport:
        """One batch: read events after the cursor, hand the new ones over, move the cursor."""
        if self.engine.dialect.name != "postgresql":
            return self._drain_from(cursor_position(self.engine, self.name), None)
        with unit_of_work(self.engine) as lease:
            lease.execute(
                pg_insert(OutboxCursor)
                .values(consumer=self.name, last_event_id=0, updated_at=clock.now())
                .on_conflict_do_nothing(index_elements=["consumer"])
            )
        with unit_of_work(self.engine) as lease:
            held = lease.scalar(
                select(OutboxCursor.last_event_id)
                .where(OutboxCursor.consumer == self.name)
                .with_for_update(skip_locked=True)
            )
            if held is None:
                return DrainReport(0, 0, 0, skipped=True)
            return self._drain_from(int(held), lease)

    def _drain_from(self, cursor: int, lease: Session | None) -> DrainReport:
        """Handle the events after `cursor`; the cursor moves in `lease` (the session holding the
        cursor row on PostgreSQL) or in a unit of work of its own."""
        with unit_of_work(self.engine, write=False) as session:
            rows = session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.id > cursor)
                .order_by(OutboxEvent.id)
                .limit(self.batch_size + len(self._handled))
            ).all()
            events = [
                Delivered(e.id, e.organization_id, e.topic, e.aggregate_id, dict(e.payload), e.created_at)
                for e in rows
            ]
        fresh = [e for e in events if e.id not in self._handled]
        handled: set[int] = set()
        if fresh:
            try:
                handled = self.handle(fresh) & {e.id for e in fresh}
            except Exception:
                logger.exception(
                    "outbox consumer %s: handler failed on events %s..%s",
                    self.name,
                    fresh[0].id,
                    fresh[-1].id,
                )
        self._failed = len(handled) < len(fresh)
        self._handled |= handled
        settled = self._settled(cursor, events)
        if settled > cursor:
            if lease is not None:
                move_cursor(lease, self.name, settled)
            else:
                with unit_of_work(self.engine) as session:
                    move_cursor(session, self.name, settled)
        self._handled = {i for i in self._handled if i > settled}
        self._holes = {i: t for i, t in self._holes.items() if i > settled}
        return DrainReport(len(fresh), len(handled), max(settled, cursor))

    def _settled(self, cursor: int, events: Sequence[Delivered]) -> int:
        """The last id of the handled prefix after `cursor`, crossing only holes older than the grace."""
        settled, now = cursor, time.monotonic()
        for event in events:
            if event.id != settled + 1:
                first_seen = self._holes.setdefault(settled + 1, now)
                if now - first_seen < self.gap_grace_seconds:
                    break
            if event.id not in self._handled:
                break
            settled = event.id
        return settled
