"""The inbox's worker: each received delivery applied to the system of record through the same service
functions the pages and the API use, as the connection's integration actor (`service.integration_actor`),
and marked applied (or skipped, with the reason) in the same transaction, in a savepoint of its own
within a batch. So an effect happens once per delivery: a crash before the commit leaves the rows
`received` and they are applied again from scratch; after the commit they are never read again. A
failure is undone alone, counted on its row (`attempts`, `last_error`) and retried on later passes, up
to `MAX_ATTEMPTS`, then the row is `failed`.

A delivery whose values our schemas refuse (a start outside the dates we take, say) is skipped with the
reason: trying again would not change them.

A delivery that cannot be applied yet (`NotYetError`: an appointment whose client has not arrived, a service
or provider of the source not mapped to ours, a booking our calendar cannot take until another change
lands) is tried again later, no sooner than `not_before`, with backoff, up to `MAX_WAITS` times; any
other failure is retried the same way up to `MAX_ATTEMPTS`. Then the row is `failed`, with the reason,
and staff can send it back (`service.retry_inbox_event`).

Appointments: the source's location, service and provider are ours by the connection's mappings
(`ExternalLink` of kind `location`, `service`, `provider`; a location need not be mapped when the
organization has one); a new one is booked through scheduling's booking path (the same guards as the
desk's), a changed start or provider rescheduled, and its status brought to the source's by the
lifecycle's own steps (check-in, start, complete, no-show, cancel). A status our lifecycle cannot reach
from ours (a completed visit the source calls booked) is skipped with the reason.

A client's link (`ExternalLink`) keeps the source's time of the state applied: an update older than it is
skipped ("stale"), so deliveries out of order never put an older state over a newer one. A client the
source has not named before is matched to ours by e-mail (exactly one active client with it) before a new
one is created, and new clients of one connection are created by one transaction at a time (the
connection's row locked), so two deliveries about one new client never make two. The new clients a batch
brings are created together, in a few statements (`_new_clients_together`, ADR 27).
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate, ClientUpdate
from medspa.integrations.models import Connection, ExternalLink, InboxEvent
from medspa.integrations.normalize import (
    CLIENT_EVENT_TYPES,
    AppointmentChange,
    Cancellation,
    Change,
    ClientChange,
    Commerce,
    Ignored,
    normalize,
)
from medspa.integrations.receiving import envelope_data
from medspa.integrations.service import integration_actor, open_body
from medspa.kit import clock
from medspa.kit.db import insert_rows, run_in_unit_of_work
from medspa.kit.errors import IllegalTransitionError, MedspaError
from medspa.kit.ids import new_id
from medspa.kit.outbox import record_event
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import BookingRequest, RescheduleRequest, Status
from medspa.security.actors import Actor

logger = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 5
# The link kind that marks an appointment the source ended before we held it (its record id is the
# connection's: there is no record of ours).
GONE: Final = "appointment_gone"
MAX_WAITS: Final = 12  # about an hour and a half of backoff in all
BACKOFF_SECONDS: Final = (2, 5, 15, 30, 60, 120, 300, 600)
BATCH: Final = 200
# Deliveries applied per transaction: on SQLite a transaction holds the one write lock the receivers
# also need, so fewer; on PostgreSQL more, each row locked alone.
PER_TRANSACTION: Final = {False: 20, True: 100}


class NotYetError(Exception):
    """The delivery cannot be applied yet; why (kept on the row while it waits)."""


@dataclass
class ApplyReport:
    applied: int = 0
    skipped: int = 0
    failed: int = 0


def apply_pending(
    engine: Engine, *, limit: int = BATCH, organization_id: uuid.UUID | None = None
) -> ApplyReport:
    """Apply the received deliveries that are due, oldest first, at most `limit` in all, in transactions
    of up to `PER_TRANSACTION` deliveries; what became of them (counted once their transaction has
    committed)."""
    report = ApplyReport()
    per_transaction = PER_TRANSACTION[engine.dialect.name == "postgresql"]
    passed: set[uuid.UUID] = set()  # tried in this pass and not applied: not taken again in it
    while limit > 0:
        batch = functools.partial(
            _apply_batch, size=min(limit, per_transaction), organization_id=organization_id, passed=passed
        )
        outcome = run_in_unit_of_work(engine, batch)
        report.applied += outcome.applied
        report.skipped += outcome.skipped
        report.failed += outcome.failed
        passed |= outcome.passed
        if outcome.taken == 0:
            break
        limit -= outcome.taken
    return report


@dataclass
class _Batch:
    taken: int = 0
    applied: int = 0
    skipped: int = 0
    failed: int = 0
    passed: set[uuid.UUID] = field(default_factory=set)


def _apply_batch(
    session: Session, *, size: int, organization_id: uuid.UUID | None, passed: set[uuid.UUID]
) -> _Batch:
    """Apply up to `size` due deliveries in this transaction, each in a savepoint of its own, so one that
    fails is undone alone and counted (`attempts`, `last_error`) while the others are applied. Rows
    another worker holds are passed over (`SKIP LOCKED` on PostgreSQL).

    Deliveries that must wait (`NotYetError`) are tried again in the same batch while the others' effects
    let more of them land (an appointment booked into a time the source freed by a move that arrived
    after it); what still waits then is counted and backs off."""
    now = clock.now()
    query = select(InboxEvent).where(
        InboxEvent.state == "received", or_(InboxEvent.not_before.is_(None), InboxEvent.not_before <= now)
    )
    if organization_id is not None:
        query = query.where(InboxEvent.organization_id == organization_id)
    if passed:
        query = query.where(InboxEvent.id.notin_(passed))
    rows = session.scalars(
        query.order_by(InboxEvent.received_at, InboxEvent.id).limit(size).with_for_update(skip_locked=True)
    ).all()
    outcome = _Batch(taken=len(rows))
    # Clients before the rest: an appointment that arrived just before its client lands in this batch.
    pending = sorted(rows, key=lambda row: row.event_type.casefold() not in CLIENT_EVENT_TYPES)
    connections: dict[uuid.UUID, Connection] = {}
    waits: dict[uuid.UUID, str] = {}
    session.info[_LOCKED] = set()
    session.info[_MAPPED] = {}
    changes: dict[uuid.UUID, Change] = {}
    together = _new_clients_together(session, pending, connections, changes)
    outcome.applied += len(together)
    pending = [row for row in pending if row.id not in together]
    while pending:
        waiting: list[InboxEvent] = []
        for row in pending:
            connection = _connection(session, connections, row)
            held = set(_locked(session))
            try:
                with session.begin_nested():
                    note = _apply(session, connection, row, changes.get(row.id))
            except NotYetError as wait:
                session.info[_LOCKED] = held
                waits[row.id] = str(wait)
                waiting.append(row)
                continue
            except ValidationError as error:  # our schemas refuse its values: no retry will change that
                session.info[_LOCKED] = held
                note = f"the details do not fit: {_problems(error)}"
            except Exception as error:
                session.info[_LOCKED] = held
                logger.warning("inbox %s: applying failed: %s", row.id, error)
                _later(row, f"{type(error).__name__}: {error}", MAX_ATTEMPTS)
                outcome.failed += 1
                outcome.passed.add(row.id)
                continue
            row.state = "applied" if note is None else "skipped"
            row.last_error = note
            row.processed_at = clock.now()
            if note is None:
                outcome.applied += 1
            else:
                outcome.skipped += 1
        if len(waiting) == len(pending):  # nothing more landed: the rest waits
            for row in waiting:
                _later(row, f"waiting: {waits[row.id]}", MAX_WAITS)
                outcome.failed += 1
                outcome.passed.add(row.id)
            break
        pending = waiting
    session.flush()
    return outcome


def _later(row: InboxEvent, reason: str, most: int) -> None:
    """Count a try that did not apply the row: tried again after a backoff, or `failed` after `most`."""
    now = clock.now()
    row.attempts += 1
    row.last_error = reason[:500]
    if row.attempts >= most:
        row.state, row.processed_at, row.not_before = "failed", now, None
    else:
        wait = BACKOFF_SECONDS[min(row.attempts, len(BACKOFF_SECONDS)) - 1]
        row.not_before = now + timedelta(seconds=wait)


def _connection(session: Session, connections: dict[uuid.UUID, Connection], row: InboxEvent) -> Connection:
    """The row's connection, read once per batch."""
    connection = connections.get(row.connection_id) or session.get_one(Connection, row.connection_id)
    connections[connection.id] = connection
    return connection


def _change(session: Session, connection: Connection, row: InboxEvent) -> Change:
    """The delivery normalized (`normalize`): its body opened and read as its connector sends it."""
    envelope = json.loads(open_body(session, row))
    return normalize(
        connection.connector, row.event_type, envelope_data(connection.connector, envelope), row.source_time
    )


def _apply(session: Session, connection: Connection, row: InboxEvent, change: Change | None) -> str | None:
    """Apply the delivery (its `change` when normalized already); None when applied, else why nothing
    was done."""
    if change is None:
        change = _change(session, connection, row)
    actor = integration_actor(connection)
    return _effect(session, actor, connection, change)


@dataclass(frozen=True)
class _NewClient:
    row: InboxEvent
    external_id: str
    source_time: datetime | None
    data: ClientCreate


def _new_clients_together(
    session: Session,
    rows: list[InboxEvent],
    connections: dict[uuid.UUID, Connection],
    changes: dict[uuid.UUID, Change],
) -> set[uuid.UUID]:
    """Create together the clients new to us that the batch's deliveries bring (`clients.create_clients`:
    a few statements for them all instead of a dozen each), with their links, in one savepoint, and mark
    their rows applied; the ids of those rows. The other client deliveries are normalized into `changes`
    and left to `_client`, one at a time.

    A delivery is taken here when its details fit a new client and no link holds its source id, no other
    delivery of the batch names that id, and its e-mail is neither an active client's nor repeated in the
    batch (those are matched to ours by `_client`). When some are new, the connection's lock is taken
    (as `_client` takes it for a new client) and the links looked up again under it, so two workers never
    both make one client; a batch of updates to clients we hold takes no lock. If creating them together
    fails, the savepoint is undone and each is applied alone, so one bad delivery fails alone."""
    found: dict[uuid.UUID, list[_NewClient]] = {}
    for row in rows:
        if row.event_type.casefold() not in CLIENT_EVENT_TYPES:
            continue
        connection = _connection(session, connections, row)
        try:
            change = changes[row.id] = _change(session, connection, row)
            if not isinstance(change, ClientChange) or change.external_id is None:
                continue
            data = ClientCreate.model_validate(change.fields)
        except Exception:  # `_apply` meets it again, and counts it
            continue
        new = _NewClient(row, change.external_id, change.source_time, data)
        found.setdefault(connection.id, []).append(new)
    together: set[uuid.UUID] = set()
    for connection_id, candidates in found.items():
        together |= _create_together(session, connections[connection_id], candidates)
    return together


def _unlinked(session: Session, connection: Connection, candidates: list[_NewClient]) -> list[_NewClient]:
    """Those of `candidates` whose source id no client link of the connection holds (one query)."""
    if not candidates:
        return []
    linked = set(
        session.scalars(
            select(ExternalLink.external_id).where(
                ExternalLink.connection_id == connection.id,
                ExternalLink.kind == "client",
                ExternalLink.external_id.in_([new.external_id for new in candidates]),
            )
        )
    )
    return [new for new in candidates if new.external_id not in linked]


def _create_together(
    session: Session, connection: Connection, candidates: list[_NewClient]
) -> set[uuid.UUID]:
    named = Counter(new.external_id for new in candidates)
    given = [new.data.email for new in candidates if new.data.email]
    unlinked = _unlinked(session, connection, [new for new in candidates if named[new.external_id] == 1])
    if not unlinked:  # updates of clients we hold: the connection's lock is not needed
        return set()
    if _lock(session, connection):  # look again under the lock: another worker may have made some
        unlinked = _unlinked(session, connection, unlinked)
    actor = integration_actor(connection)
    matching = clients.emails_matching(session, actor=actor, emails=given) if given else set()
    fresh = [new for new in unlinked if new.data.email not in matching]
    if not fresh:
        return set()
    try:
        with session.begin_nested():
            record_ids = clients.create_clients(session, actor=actor, data=[new.data for new in fresh])
            now = clock.now()
            insert_rows(
                session,
                ExternalLink,
                [
                    {
                        "id": new_id(),
                        "organization_id": connection.organization_id,
                        "connection_id": connection.id,
                        "kind": "client",
                        "external_id": new.external_id,
                        "record_id": record_id,
                        "source_time": new.source_time,
                        "updated_at": now,
                    }
                    for new, record_id in zip(fresh, record_ids, strict=True)
                ],
            )
    except Exception as error:  # each is applied alone instead, and fails alone
        logger.warning(
            "creating %d new clients together failed; applying them one at a time: %s", len(fresh), error
        )
        return set()
    now = clock.now()
    for new in fresh:
        new.row.state, new.row.last_error, new.row.processed_at = "applied", None, now
    return {new.row.id for new in fresh}


def _effect(session: Session, actor: Actor, connection: Connection, change: Change) -> str | None:
    if isinstance(change, Ignored):
        return change.reason
    if isinstance(change, ClientChange):
        return _client(session, actor, connection, change)
    if isinstance(change, AppointmentChange):
        return _appointment(session, actor, connection, change)
    if isinstance(change, Commerce):
        return _commerce(session, actor, connection, change)
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


# The connections whose row this transaction holds locked (kept in `session.info` by `_apply_batch`,
# which forgets a lock taken in a savepoint that was rolled back: the database released it).
_LOCKED: Final = "medspa.integrations.locked"


def _locked(session: Session) -> set[uuid.UUID]:
    held: set[uuid.UUID] = session.info.setdefault(_LOCKED, set())
    return held


def _lock(session: Session, connection: Connection) -> bool:
    """Records new to us are made one connection at a time: the connection's row is the lock, taken
    once per transaction (and not against the receivers, see below). Whether it was taken now (False:
    this transaction held it already)."""
    held = _locked(session)
    if connection.id in held:
        return False
    # FOR NO KEY UPDATE: the receivers' inserts into the inbox check their connection with a key-share
    # lock, which FOR UPDATE would make wait until this transaction ends.
    session.scalar(
        select(Connection.id).where(Connection.id == connection.id).with_for_update(key_share=True)
    )
    held.add(connection.id)
    return True


def _held_link(session: Session, connection: Connection, kind: str, external_id: str) -> ExternalLink | None:
    """The link of the source's record (locked); when there is none yet, the connection's lock is taken
    first and the link looked up again, so of two deliveries about one new record, the second sees what
    the first made. When the transaction held the lock already, the first look was made under it."""
    link = _link(session, connection, kind, external_id)
    if link is None and _lock(session, connection):
        link = _link(session, connection, kind, external_id)
    return link


def _ended_unseen(
    session: Session, connection: Connection, external_id: str, source_time: datetime | None, what: str
) -> str:
    """An appointment the source cancelled (or marked a no-show) before any change of it reached us:
    nothing to record, but a tombstone link (`GONE`) keeps its time, so a delivery of an older state of
    it arriving later does not book it."""
    gone = _link(session, connection, GONE, external_id)
    if gone is None:
        _add_link(session, connection, GONE, external_id, connection.id, source_time)
    elif source_time is not None and (gone.source_time is None or source_time > gone.source_time):
        gone.source_time, gone.updated_at = source_time, clock.now()
    return f"{what} at the source before it reached us: nothing to record"


def _stale(link: ExternalLink, source_time: datetime | None) -> bool:
    return link.source_time is not None and source_time is not None and source_time <= link.source_time


def _client(session: Session, actor: Actor, connection: Connection, change: ClientChange) -> str | None:
    if change.external_id is None:
        _lock(session, connection)
        link = None
    else:
        link = _held_link(session, connection, "client", change.external_id)
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
        _add_link(session, connection, "client", change.external_id, record_id, change.source_time)
    return None


def _add_link(
    session: Session,
    connection: Connection,
    kind: str,
    external_id: str,
    record_id: uuid.UUID,
    source_time: datetime | None,
) -> None:
    link = ExternalLink(
        organization_id=connection.organization_id,
        connection_id=connection.id,
        kind=kind,
        external_id=external_id,
        record_id=record_id,
        source_time=source_time,
        updated_at=clock.now(),
    )
    session.add(link)
    session.flush()


def _same_email(session: Session, actor: Actor, email: Any) -> uuid.UUID | None:
    if not isinstance(email, str) or not email:
        return None
    found = clients.active_ids_with_email(session, actor=actor, email=email, limit=2)
    return found[0] if len(found) == 1 else None


def _commerce(session: Session, actor: Actor, connection: Connection, change: Commerce) -> str | None:
    """Record the source's payment or package as our event for the client, once per source record (its
    link, of kind `payment`, `package.sold` or `package.redeemed`, says it was recorded)."""
    kind = "payment" if change.topic == "payment.captured" else change.topic
    if _link(session, connection, kind, change.external_id) is not None:
        return f"{change.topic} {change.external_id} is recorded already"
    client_id = _linked_id(session, connection, "client", change.client_id)
    if client_id is None:
        raise NotYetError(f"the source's client {change.client_id} has not been received")
    payload = {
        "client_id": str(client_id),
        "connection_id": str(connection.id),
        "external_id": change.external_id,
        "amount_cents": change.amount_cents,
        "currency": change.currency,
        "name": change.name,
        "source_time": change.source_time.isoformat() if change.source_time else None,
    }
    record_event(session, actor, change.topic, client_id, payload)
    _add_link(session, connection, kind, change.external_id, client_id, change.source_time)
    return None


def _cancel(session: Session, actor: Actor, connection: Connection, change: Cancellation) -> str | None:
    link = _held_link(session, connection, "appointment", change.external_id)
    if link is None:
        return _ended_unseen(session, connection, change.external_id, change.source_time, "cancelled")
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


# What `_mapped` found in this transaction, by (connection, kind, source id; None for the lone location):
# the mappings a batch's deliveries name are few, and each is read once per batch (`_apply_batch` resets it).
_MAPPED: Final = "medspa.integrations.mapped"


def _mapped(
    session: Session, actor: Actor, connection: Connection, kind: str, external_id: str | None
) -> Any:
    """Ours for the source's `external_id` of `kind` (None when the source gave none); NotYetError when the
    connection has no mapping for it. A location need not be mapped when the organization has one."""
    found: dict[tuple[uuid.UUID, str, str | None], uuid.UUID | None] = session.info.setdefault(_MAPPED, {})
    key = (connection.id, kind, external_id)
    if key in found:
        return found[key]
    if external_id is not None:
        link = _linked_id(session, connection, kind, external_id)
        if link is not None:
            found[key] = link
            return link
    if kind == "location":
        lone = (connection.id, kind, None)  # the organization's one location, or None when it has several
        if lone not in found:
            locations = resources.list_locations(session, actor=actor, limit=2).items
            found[lone] = locations[0].id if len(locations) == 1 else None
        if found[lone] is not None:
            return found[lone]
    if external_id is None:
        return None
    raise NotYetError(f"the source's {kind} {external_id} is not mapped to one of ours")


def _linked_id(session: Session, connection: Connection, kind: str, external_id: str) -> uuid.UUID | None:
    """Our record's id for the source's `external_id` of `kind`, read without loading or locking the link."""
    return session.scalar(
        select(ExternalLink.record_id).where(
            ExternalLink.connection_id == connection.id,
            ExternalLink.kind == kind,
            ExternalLink.external_id == external_id,
        )
    )


def _appointment(
    session: Session, actor: Actor, connection: Connection, change: AppointmentChange
) -> str | None:
    link = _held_link(session, connection, "appointment", change.external_id)
    if link is not None and _stale(link, change.source_time):
        return "stale: older than the appointment's state applied"
    target = Status(change.status)
    if link is None:
        if target in (Status.CANCELLED, Status.NO_SHOW):
            return _ended_unseen(
                session, connection, change.external_id, change.source_time, target.value.replace("_", "-")
            )
        gone = _link(session, connection, GONE, change.external_id)
        if gone is not None and _stale(gone, change.source_time):
            return "stale: the source ended it after this state"
    client_id = _linked_id(session, connection, "client", change.client_id)
    if client_id is None:
        raise NotYetError(f"the source's client {change.client_id} has not been received")
    location_id = _mapped(session, actor, connection, "location", change.location_id)
    if location_id is None:
        raise NotYetError("the organization has several locations and the source named none")
    provider_id = _mapped(session, actor, connection, "provider", change.provider_id)
    starts_at = _aware(session, actor, change.starts_at, location_id)
    if link is None:
        service_id = _mapped(session, actor, connection, "service", change.service_id)
        if service_id is None or starts_at is None:
            return "a new appointment without its service or start"
        request = BookingRequest(
            client_id=client_id,
            service_id=service_id,
            location_id=location_id,
            starts_at=starts_at,
            provider_id=provider_id,
        )
        booked = _or_wait(
            lambda: scheduling.book_appointment(session, actor=actor, data=request, imported=True)
        )
        _add_link(session, connection, "appointment", change.external_id, booked.id, change.source_time)
        return _reach(session, actor, booked.id, Status(booked.status), target)
    ours = scheduling.get_appointment(session, actor=actor, appointment_id=link.record_id)
    moved = starts_at is not None and starts_at != ours.starts_at
    if (moved or (provider_id is not None and provider_id != ours.provider_id)) and target not in (
        Status.CANCELLED,
        Status.NO_SHOW,
    ):
        if Status(ours.status) not in scheduling.RESCHEDULABLE:
            return f"ours is {ours.status}: it can no longer be moved"
        move = RescheduleRequest(starts_at=starts_at or ours.starts_at, provider_id=provider_id)
        ours = _or_wait(
            lambda: scheduling.reschedule_appointment(
                session, actor=actor, appointment_id=link.record_id, data=move, imported=True
            )
        )
    link.source_time = change.source_time or link.source_time
    link.updated_at = clock.now()
    return _reach(session, actor, link.record_id, Status(ours.status), target)


def _aware(
    session: Session, actor: Actor, starts_at: datetime | None, location_id: uuid.UUID
) -> datetime | None:
    """The source's start; a wall-clock time (no offset) is the location's (read only then)."""
    if starts_at is None or starts_at.tzinfo is not None:
        return starts_at
    location = resources.get_location(session, actor=actor, location_id=location_id)
    return starts_at.replace(tzinfo=ZoneInfo(location.time_zone))


def _or_wait(write: Any) -> Any:
    """A booking or a move our calendar refuses now (the time taken, outside hours) may fit once the
    source's other changes have landed (the appointment that held the time moved away): wait."""
    try:
        with_savepoint = write()
    except (ValidationError, IllegalTransitionError):
        raise
    except MedspaError as error:
        raise NotYetError(f"our calendar refuses it for now: {error.detail}") from error
    return with_savepoint


FORWARD: Final = (
    Status.HELD,
    Status.BOOKED,
    Status.CONFIRMED,
    Status.CHECKED_IN,
    Status.IN_SERVICE,
    Status.COMPLETED,
)


def _path(current: Status, target: Status) -> list[Status] | None:
    """The shortest run of our lifecycle's steps (`TRANSITIONS`) from `current` to `target`."""
    paths: dict[Status, list[Status]] = {current: []}
    frontier = [current]
    while frontier and target not in paths:
        step = frontier.pop(0)
        for following in sorted(scheduling.TRANSITIONS[step]):
            if following not in paths:
                paths[following] = [*paths[step], following]
                frontier.append(following)
    return paths.get(target)


def _reach(
    session: Session, actor: Actor, appointment_id: uuid.UUID, current: Status, target: Status
) -> str | None:
    """Take our appointment from its status `current` to the source's by the lifecycle's own steps; None
    when it is there, else why not (ours is further along, or the lifecycle does not go there from
    ours)."""
    if current == target:
        return None
    if current in FORWARD and target in FORWARD and FORWARD.index(current) > FORWARD.index(target):
        return f"ours is {current.value}, further along than the source's {target.value}"
    path = _path(current, target)
    if path is None:
        return f"ours is {current.value} and the source's {target.value}: our lifecycle does not go there"
    steps = {
        Status.BOOKED: scheduling.confirm_hold,
        Status.CONFIRMED: scheduling.confirm_appointment,
        Status.CHECKED_IN: scheduling.check_in,
        Status.IN_SERVICE: scheduling.start_service,
        Status.COMPLETED: scheduling.complete_appointment,
        Status.NO_SHOW: scheduling.mark_no_show,
    }
    for step in path:
        if step == Status.CANCELLED:
            reason = "cancelled in the connected system"
            scheduling.cancel_appointment(session, actor=actor, appointment_id=appointment_id, reason=reason)
        else:
            steps[step](session, actor=actor, appointment_id=appointment_id)
    return None


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())[:400]
