"""The audit trail: who read, wrote, exported, signed in, failed to or was refused what, and when.

Any domain notes an entry with the functions here (`record_read`, `record_write`, `record_export`,
`record_sign_in`, `record_failed_sign_in`); the entry waits in the session (`session.info`) and is
appended when the session commits, by a `before_commit` listener, in the same transaction as the work
it describes: a rolled-back change leaves no audit row. Two kinds of entry outlive a rollback, because
what they record happened even though the work did not: a failed sign-in, and a permission denial
(`kit.errors.PermissionDeniedError` carries who was refused). `kit.db.unit_of_work` writes those in a
transaction of their own after the rollback (`kept_after_rollback`). A reading unit of work on SQLite
commits its reads first and then appends its entries under the writer lock (SQLite cannot turn a reader
into a writer once another writer has committed); the response waits for that append, so no PHI leaves
without its audit row committed.

Each organization's rows form one hash chain (`audit_events`): row `seq` n stores the `row_hash` of row
n - 1 as its `prev_hash`, and its own `row_hash` is SHA-256 over a canonical JSON of all its fields and
`prev_hash` (`chain_hash`). The chain's head (last seq and hash) is kept in `audit_heads`, one row per
organization, locked (`FOR UPDATE`) while a transaction appends, so concurrent transactions never fork
a chain; SQLite's writers are serialized anyway. Entries with no organization (a failed sign-in to an
unknown clinic) go on the chain of `NO_ORGANIZATION`. `security.audit` verifies the chains.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import BigInteger, Connection, String, UniqueConstraint, event, insert, select, update
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column

from medspa.kit import clock, request_ids
from medspa.kit.db import Base, SequenceKey, insert_ignoring_conflict
from medspa.kit.errors import PermissionDeniedError

GENESIS = "0" * 64
NO_ORGANIZATION = uuid.UUID(int=0)
PENDING = "medspa.audit.pending"


class AuditEvent(Base):
    """One row of an organization's chain. Never updated or deleted (on PostgreSQL triggers refuse it)."""

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("organization_id", "seq"),)

    id: Mapped[int] = mapped_column(SequenceKey, primary_key=True, autoincrement=True)
    organization_id: Mapped[uuid.UUID]
    seq: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_ids: Mapped[list[str]]
    detail: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))
    justification: Mapped[str | None] = mapped_column(String(500))
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The last row of an organization's chain (seq 0 and `GENESIS` before its first row)."""

    __tablename__ = "audit_heads"

    organization_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    row_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class Acting(Protocol):
    @property
    def organization_id(self) -> uuid.UUID: ...

    @property
    def label(self) -> str: ...


@dataclass(frozen=True)
class Entry:
    """An audit entry waiting for its transaction to commit. `survives_rollback`: written even when the
    work's transaction rolls back (failed sign-ins)."""

    organization_id: uuid.UUID
    actor: str
    action: str
    resource_type: str
    resource_ids: tuple[str, ...]
    detail: str
    occurred_at: datetime
    request_id: str | None
    justification: str | None = None
    survives_rollback: bool = False


def note(session: Session, entry: Entry) -> None:
    """Keep `entry` in the session until it commits (then it is appended, in that transaction)."""
    session.info.setdefault(PENDING, []).append(entry)


def _entry(
    organization_id: uuid.UUID,
    actor: str,
    action: str,
    resource_type: str,
    ids: Iterable[object],
    detail: str = "",
    *,
    justification: str | None = None,
    survives_rollback: bool = False,
) -> Entry:
    return Entry(
        organization_id=organization_id,
        actor=actor[:200],
        action=action,
        resource_type=resource_type[:64],
        resource_ids=tuple(sorted({str(i) for i in ids})),
        detail=detail[:200],
        occurred_at=clock.now(),
        request_id=request_ids.current(),
        justification=justification[:500] if justification else None,
        survives_rollback=survives_rollback,
    )


def record_read(
    session: Session,
    actor: Acting,
    resource_type: str,
    ids: Iterable[object],
    *,
    detail: str = "",
    justification: str | None = None,
) -> None:
    """A read of PHI: the records (`ids`, possibly none: a search that found nothing) shown to `actor`."""
    note(
        session,
        _entry(
            actor.organization_id,
            actor.label,
            "read",
            resource_type,
            ids,
            detail,
            justification=justification,
        ),
    )


def record_write(
    session: Session, actor: Acting, resource_type: str, resource_id: object, detail: str
) -> None:
    """A change of a record (`detail`: what happened, e.g. the event topic `client.updated`)."""
    note(session, _entry(actor.organization_id, actor.label, "write", resource_type, [resource_id], detail))


def record_export(
    session: Session, actor: Acting, resource_type: str, *, detail: str, justification: str | None = None
) -> None:
    """Records of the organization leaving the system in bulk (`detail`: what and where to)."""
    note(
        session,
        _entry(
            actor.organization_id,
            actor.label,
            "export",
            resource_type,
            [],
            detail,
            justification=justification,
        ),
    )


def record_sign_in(session: Session, *, organization_id: uuid.UUID, user_id: uuid.UUID, actor: str) -> None:
    note(session, _entry(organization_id, actor, "sign_in", "user", [user_id], "session opened"))


def record_failed_sign_in(
    session: Session, *, organization_id: uuid.UUID | None, user_id: uuid.UUID | None, detail: str
) -> None:
    """A refused sign-in; kept even when the caller rolls back. An unknown organization's goes on the
    `NO_ORGANIZATION` chain; `user_id` is the account tried when it exists."""
    note(
        session,
        _entry(
            organization_id or NO_ORGANIZATION,
            "anonymous",
            "sign_in_failed",
            "user",
            [user_id] if user_id else [],
            detail,
            survives_rollback=True,
        ),
    )


def denial_entry(error: PermissionDeniedError) -> Entry | None:
    """The audit entry of a refusal whose actor is known (a role lacking a permission)."""
    if error.organization_id is None:
        return None
    return _entry(
        error.organization_id, error.actor or "unknown", "denied", "permission", [], error.permission or ""
    )


def record_refusal(session: Session, error: Exception) -> None:
    """Note a denial that the caller catches and shows (a page's message) instead of ending its unit of
    work with it; any other error is no refusal and is ignored. The entry survives a rollback."""
    if isinstance(error, PermissionDeniedError):
        denial = denial_entry(error)
        if denial is not None:
            note(session, replace(denial, survives_rollback=True))


def take_pending(session: Session) -> list[Entry]:
    """The entries waiting in `session`, removed from it."""
    pending: list[Entry] = session.info.pop(PENDING, None) or []
    return pending


def kept_after_rollback(session: Session, error: BaseException) -> list[Entry]:
    """What of a rolled-back unit of work must still be recorded: its entries that survive a rollback,
    and the denial that ended it, if one did. Removes every entry from the session."""
    kept = [e for e in take_pending(session) if e.survives_rollback]
    if isinstance(error, PermissionDeniedError):
        denial = denial_entry(error)
        if denial is not None:
            kept.append(denial)
    return kept


HASHED = (
    "organization_id",
    "seq",
    "occurred_at",
    "actor",
    "action",
    "resource_type",
    "resource_ids",
    "detail",
    "request_id",
    "justification",
)


def chain_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a row (`values`: its columns) that its hash covers, in their canonical form."""
    fields = {name: values[name] for name in HASHED}
    fields["organization_id"] = str(values["organization_id"])
    fields["occurred_at"] = values["occurred_at"].astimezone(UTC).isoformat(timespec="microseconds")
    fields["resource_ids"] = list(values["resource_ids"])
    return fields


def stored_hash(values: Mapping[str, Any]) -> str:
    """The `row_hash` a row with these columns (and `prev_hash`) must carry."""
    return chain_hash(chain_fields(values), values["prev_hash"])


def chain_hash(fields: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 (hex) of the canonical JSON of `fields` and `prev_hash` (sorted keys, no spaces, ASCII)."""
    body = json.dumps(
        {**fields, "prev_hash": prev_hash}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(body.encode("ascii")).hexdigest()


def _locked_head(connection: Connection, organization_id: uuid.UUID) -> tuple[int, str]:
    """The chain's head, created at seq 0 when missing, locked until the transaction ends (PostgreSQL)."""
    values = {"organization_id": organization_id, "seq": 0, "row_hash": GENESIS, "updated_at": clock.now()}
    insert_ignoring_conflict(connection, AuditHead, values)
    row = connection.execute(
        select(AuditHead.seq, AuditHead.row_hash)
        .where(AuditHead.organization_id == organization_id)
        .with_for_update()
    ).one()
    return int(row.seq), str(row.row_hash)


def append(connection: Connection, entries: Sequence[Entry]) -> None:
    """Append `entries` to their organizations' chains in the connection's transaction. Chains are
    locked in organization-id order, so two transactions appending to the same chains cannot deadlock."""
    by_organization: dict[uuid.UUID, list[Entry]] = {}
    for entry in entries:
        by_organization.setdefault(entry.organization_id, []).append(entry)
    for organization_id in sorted(by_organization):
        seq, prev = _locked_head(connection, organization_id)
        rows = []
        for entry in by_organization[organization_id]:
            seq += 1
            row: dict[str, Any] = {
                "organization_id": organization_id,
                "seq": seq,
                "occurred_at": entry.occurred_at,
                "actor": entry.actor,
                "action": entry.action,
                "resource_type": entry.resource_type,
                "resource_ids": list(entry.resource_ids),
                "detail": entry.detail,
                "request_id": entry.request_id,
                "justification": entry.justification,
                "prev_hash": prev,
            }
            row["row_hash"] = prev = stored_hash(row)
            rows.append(row)
        connection.execute(insert(AuditEvent), rows)
        connection.execute(
            update(AuditHead)
            .where(AuditHead.organization_id == organization_id)
            .values(seq=seq, row_hash=prev, updated_at=clock.now())
        )


@event.listens_for(Session, "before_commit")
def _append_pending(session: Session) -> None:
    """Append the transaction's entries as it commits: once, at the outermost commit. A savepoint's
    release leaves its entries pending (they are dropped with it if the transaction is rolled back), so a
    transaction of many savepoints locks the chain's head and writes its entries once."""
    if session.in_nested_transaction():
        return
    session.info.pop(_MARKS, None)
    pending = take_pending(session)
    if pending:
        append(session.connection(), pending)


_MARKS = "medspa.audit.marks"


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.setdefault(_MARKS, {})[id(transaction)] = len(session.info.get(PENDING, ()))


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rolled-back transaction's entries are gone with it (`kept_after_rollback` took the ones of a
    unit of work to keep); a rolled-back savepoint's too, but for those that survive a rollback."""
    marks: dict[int, int] = session.info.get(_MARKS, {})
    if previous_transaction.nested:
        mark = marks.pop(id(previous_transaction), None)
        pending: list[Entry] = session.info.get(PENDING, [])
        if mark is not None and len(pending) > mark:
            pending[mark:] = [e for e in pending[mark:] if e.survives_rollback]
    elif not session.in_transaction():
        session.info.pop(PENDING, None)
        session.info.pop(_MARKS, None)
