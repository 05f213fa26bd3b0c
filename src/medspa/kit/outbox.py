"""The transactional outbox: events written in the same transaction as the change they describe.

Consumers (webhooks, reminders, models) read unpublished rows after commit, at least once; their handlers
must be idempotent (the event id is the idempotency key).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import String, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from medspa.kit import clock
from medspa.kit.db import Base, SequenceKey


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


class Acting(Protocol):
    @property
    def organization_id(self) -> uuid.UUID: ...

    @property
    def label(self) -> str: ...


def record_event(
    session: Session, actor: Acting, topic: str, aggregate_id: uuid.UUID, payload: dict[str, Any]
) -> None:
    """Write an event in the current transaction (it commits or rolls back with the change).

    `topic` is `<aggregate>.<verb>` (`appointment.booked`); `payload` must be JSON-serializable. The row
    is inserted at once with a prepared statement rather than through the session's flush: every
    booking writes one, and the flush machinery costs more than the insert."""
    session.connection().execute(
        _INSERT,
        {
            "organization_id": actor.organization_id,
            "topic": topic,
            "aggregate_type": topic.split(".", 1)[0],
            "aggregate_id": aggregate_id,
            "actor": actor.label,
            "payload": payload,
            "created_at": clock.now(),
            "published_at": None,
        },
    )


_INSERT = insert(OutboxEvent)
