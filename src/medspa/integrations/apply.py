"""The inbox's worker: each received delivery applied to the system of record through the same service
functions the pages and the API use, as the connection's integration actor (`service.integration_actor`),
and marked applied (or skipped, with the reason) in the same transaction, in a savepoint of its own
within a batch. So an effect happens once per delivery: a crash before the commit leaves the rows
`received` and they are applied again from scratch; after the commit they are never read again. A
failure is undone alone, counted on its row (`attempts`, `last_error`) and retried on later passes, up
to `MAX_ATTEMPTS`, then the row is `failed`.

A client's link (`ExternalLink`) keeps the source's time of the state applied: an update older than it is
skipped ("stale"), so deliveries out of order never put an older state over a newer one. A client the
source has not named before is matched to ours by e-mail (exactly one active client with it) before a new
one is created, and new clients of one connection are created one at a time (the connection's row locked),
so two deliveries about one new client never make two.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate, ClientUpdate
from medspa.integrations.models import Connection, ExternalLink, InboxEvent
from medspa.integrations.normalize import Cancellation, Change, ClientChange, Ignored, normalize
from medspa.integrations.receiving import envelope_data
from medspa.integrations.service import integration_actor, open_body
from medspa.kit import clock
from medspa.kit.db import run_in_unit_of_work
from medspa.kit.errors import IllegalTransitionError, MedspaError
from medspa.scheduling import service as scheduling
from medspa.security.actors import Actor

logger = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 5
BATCH: Final = 200
# Deliveries applied per transaction: on SQLite a transaction holds the one write lock the receivers
# also need, so fewer; on PostgreSQL more, each row locked alone.
PER_TRANSACTION: Final = {False: 20, True: 100}


@dataclass
class ApplyReport:
    applied: int = 0
    skipped: int = 0
    failed: int = 0


def apply_pending(
    engine: Engine, *, limit: int = BATCH, organization_id: uuid.UUID | None = None
) -> ApplyReport:
    """Apply the received deliveries, oldest first, at most `limit` in all, in transactions of up to
    `per_transaction` (`PER_TRANSACTION`) deliveries; what became of them."""
    report = ApplyReport()
    per_transaction = PER_TRANSACTION[engine.dialect.name == "postgresql"]
    failed: set[uuid.UUID] = set()  # tried again on a later pass, not in this one
    while limit > 0:
        size = min(limit, per_transaction)
        batch = functools.partial(
            _apply_batch, size=size, organization_id=organization_id, report=report, failed=failed
        )
        taken = run_in_unit_of_work(engine, batch)
        if taken == 0:
            break
        limit -= taken
    return report


def _apply_batch(
    session: Session,
    *,
    size: int,
    organization_id: uuid.UUID | None,
    report: ApplyReport,
    failed: set[uuid.UUID],
) -> int:
    """Apply up to `size` waiting deliveries in this transaction, each in a savepoint of its own, so one
    that fails is undone alone and counted (`attempts`, `last_error`) while the others are applied; how
    many were taken. Rows another worker holds are passed over (`SKIP LOCKED` on PostgreSQL)."""
    query = select(InboxEvent).where(InboxEvent.state == "received")
    if organization_id is not None:
        query = query.where(InboxEvent.organization_id == organization_id)
    if failed:
        query = query.where(InboxEvent.id.notin_(failed))
    rows = session.scalars(
        query.order_by(InboxEvent.received_at, InboxEvent.id).limit(size).with_for_update(skip_locked=True)
    ).all()
    connections: dict[uuid.UUID, Connection] = {}
    outcomes = {"applied": 0, "skipped": 0, "retry": 0}
    for row in rows:
        connection = connections.get(row.connection_id) or session.get(Connection, row.connection_id)
        if connection is None:  # pragma: no cover - the foreign key keeps it
            continue
        connections[connection.id] = connection
        try:
            with session.begin_nested():
                note = _apply(session, connection, row)
        except Exception as error:
            logger.warning("inbox %s: applying failed: %s", row.id, error)
            row.attempts += 1
            row.last_error = f"{type(error).__name__}: {error}"[:500]
            if row.attempts >= MAX_ATTEMPTS:
                row.state, row.processed_at = "failed", clock.now()
            outcomes["retry"] += 1
            failed.add(row.id)
            continue
        row.state = "applied" if note is None else "skipped"
        row.last_error = note
        row.processed_at = clock.now()
        outcomes[row.state] += 1
    session.flush()
    report.applied += outcomes["applied"]
    report.skipped += outcomes["skipped"]
    report.failed += outcomes["retry"]
    return len(rows)


def _apply(session: Session, connection: Connection, row: InboxEvent) -> str | None:
    """Apply the delivery; None when applied, else why nothing was done."""
    envelope = json.loads(open_body(session, row))
    change = normalize(
        connection.connector, row.event_type, envelope_data(connection.connector, envelope), row.source_time
    )
    actor = integration_actor(connection)
    return _effect(session, actor, connection, change)


def _effect(session: Session, actor: Actor, connection: Connection, change: Change) -> str | None:
    if isinstance(change, Ignored):
        return change.reason
    if isinstance(change, ClientChange):
        return _client(session, actor, connection, change)
    return _cancel(session, actor, connection, change)


def _link(session: Session, connection: Connection, kind: str, external_id: str) -> ExternalLink | None:
    return session.scalar(
        select(ExternalLink)
        .where(
            ExternalLink.connection_id == connection.id,
            ExternalLink.kind == kind,
            ExternalLink.external_id == external_id,
        )
        .with_for_update()
    )


def _stale(link: ExternalLink, source_time: datetime | None) -> bool:
    return link.source_time is not None and source_time is not None and source_time <= link.source_time


def _client(session: Session, actor: Actor, connection: Connection, change: ClientChange) -> str | None:
    # New clients of one connection are made one at a time: the connection's row is the lock.
    session.scalar(select(Connection.id).where(Connection.id == connection.id).with_for_update())
    link = _link(session, connection, "client", change.external_id) if change.external_id else None
    now = clock.now()
    if link is not None:
        if _stale(link, change.source_time):
            return "stale: an older state of the client than the one applied"
        try:
            update = ClientUpdate.model_validate(change.fields)
        except ValidationError as error:
            return f"the client's details do not fit: {_problems(error)}"
        clients.update_client(session, actor=actor, client_id=link.record_id, data=update)
        link.source_time = change.source_time or link.source_time
        link.updated_at = now
        return None
    existing = _same_email(session, actor, change.fields.get("email"))
    try:
        if existing is not None:
            record_id = existing
            clients.update_client(
                session, actor=actor, client_id=existing, data=ClientUpdate.model_validate(change.fields)
            )
        else:
            record_id = clients.create_client(
                session, actor=actor, data=ClientCreate.model_validate(change.fields)
            ).id
    except ValidationError as error:
        return f"the client's details do not fit: {_problems(error)}"
    if change.external_id is not None:
        session.add(
            ExternalLink(
                organization_id=connection.organization_id,
                connection_id=connection.id,
                kind="client",
                external_id=change.external_id,
                record_id=record_id,
                source_time=change.source_time,
                updated_at=now,
            )
        )
        session.flush()
    return None


def _same_email(session: Session, actor: Actor, email: Any) -> uuid.UUID | None:
    if not isinstance(email, str) or not email:
        return None
    try:
        found = clients.list_clients(session, actor=actor, email=email, limit=2).items
    except MedspaError:
        return None
    return found[0].id if len(found) == 1 else None


def _cancel(session: Session, actor: Actor, connection: Connection, change: Cancellation) -> str | None:
    link = _link(session, connection, "appointment", change.external_id)
    if link is None:
        return "no appointment of ours is linked to it"
    if _stale(link, change.source_time):
        return "stale: older than the appointment's state applied"
    try:
        with session.begin_nested():
            scheduling.cancel_appointment(
                session, actor=actor, appointment_id=link.record_id, reason=change.reason
            )
    except IllegalTransitionError as error:
        return f"nothing to cancel: {error.detail}"
    link.source_time = change.source_time or link.source_time
    link.updated_at = clock.now()
    return None


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())[:400]
