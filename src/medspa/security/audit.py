"""Verifying the audit trail (`kit.audit_trail`), and keeping each chain's head outside the database.

`verify` walks every organization's chain in `seq` order, recomputes each row's hash, follows the
`prev_hash` links, and names the first row where a chain goes wrong and how:

- edited: the row's fields no longer give its `row_hash` (or, when a later row's link points at no
  row, the row it should point at was rewritten with a hash of its own);
- deleted: a gap in `seq` (rows missing before the row named), or the chain ends before the head kept
  in `audit_heads` or in the head file;
- inserted: the next row links to the row before this one, so this one is extra;
- reordered: the row links to a row of the chain other than the one before it, or a later row has a
  smaller id (rows of one chain are inserted in `seq` order).

A hash chain without a secret proves order and completeness only against a copy of its head kept where
whoever edits the database cannot reach: `write_heads` appends each chain's head to a JSON-lines file
(`MEDSPA_AUDIT_HEAD_FILE`; the worker does it every five minutes, `medspa audit heads` on demand), and
`verify` checks that each chain still holds the newest head recorded there.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from medspa.kit import clock
from medspa.kit.audit_trail import GENESIS, HASHED, AuditEvent, AuditHead, stored_hash


@dataclass(frozen=True)
class Problem:
    """Where a chain goes wrong: its organization, the kind (edited, deleted, inserted, reordered), the
    row named (id and seq; None when the missing rows are at the chain's end) and what was seen."""

    organization_id: uuid.UUID
    kind: str
    row_id: int | None
    seq: int | None
    detail: str

    def __str__(self) -> str:
        where = f"row id {self.row_id} (seq {self.seq})" if self.row_id is not None else "end of chain"
        return f"organization {self.organization_id}: {self.kind}: {where}: {self.detail}"


@dataclass(frozen=True)
class RecordedHead:
    organization_id: uuid.UUID
    seq: int
    row_hash: str
    written_at: str


@dataclass(frozen=True)
class Verification:
    chains: int
    rows: int
    heads_checked: int
    problems: list[Problem]

    @property
    def is_intact(self) -> bool:
        return not self.problems


def row_hash_of(row: AuditEvent) -> str:
    """The hash `row` should carry, from its stored fields and `prev_hash`."""
    return stored_hash({name: getattr(row, name) for name in (*HASHED, "prev_hash")})


def check_chain(organization_id: uuid.UUID, rows: Sequence[AuditEvent]) -> Problem | None:
    """The first problem of one chain (its rows in `seq` order, then id), or None when it is intact."""
    by_hash = {row.row_hash: row for row in rows}
    expected_prev, expected_seq, previous = GENESIS, 1, None
    for index, row in enumerate(rows):
        following = rows[index + 1] if index + 1 < len(rows) else None

        def problem(kind: str, detail: str, named: AuditEvent = row) -> Problem:
            return Problem(organization_id, kind, named.id, named.seq, detail)

        linked = by_hash.get(row.prev_hash)
        if row.prev_hash != expected_prev and linked is not None and linked is not row:
            return problem(
                "reordered", f"it links to row id {linked.id} (seq {linked.seq}), not the row before it"
            )
        if following is not None and following.prev_hash == expected_prev:
            return problem("inserted", f"the next row (id {following.id}) links past it to the row before")
        if previous is not None and row.seq == previous.seq:
            return problem("inserted", f"a second row at seq {row.seq} (beside id {previous.id})")
        if previous is not None and row.id < previous.id:
            return problem(
                "reordered", f"stored after row id {previous.id} (seq {previous.seq}) but ahead of it"
            )
        if row_hash_of(row) != row.row_hash:
            return problem("edited", "its fields do not give its hash")
        if row.seq != expected_seq:
            missing = (
                f"seq {expected_seq}" if row.seq == expected_seq + 1 else f"seq {expected_seq}..{row.seq - 1}"
            )
            return problem("deleted", f"{missing} missing before it")
        if row.prev_hash != expected_prev:
            if previous is None:
                return problem("edited", "the first row does not start from the chain's beginning")
            return problem("edited", "the row links to no row: the row before it was rewritten", previous)
        expected_prev, expected_seq, previous = row.row_hash, row.seq + 1, row
    return None


def _check_head(
    organization_id: uuid.UUID, rows: Sequence[AuditEvent], seq: int, row_hash: str, where: str
) -> Problem | None:
    """Whether the chain still holds the head (`seq`, `row_hash`) recorded `where`."""
    if seq == 0:
        return None
    last = rows[-1].seq if rows else 0
    if last < seq:
        first = last + 1
        missing = f"seq {first}" if first == seq else f"seq {first}..{seq}"
        return Problem(
            organization_id, "deleted", None, None, f"{missing} missing at the end ({where} has {seq})"
        )
    at = next((row for row in rows if row.seq == seq), None)
    if at is not None and at.row_hash != row_hash:
        return Problem(
            organization_id, "edited", at.id, at.seq, f"its hash differs from the one {where} recorded"
        )
    return None


def read_heads(path: Path) -> dict[uuid.UUID, RecordedHead]:
    """The newest head recorded for each chain in the head file (the highest seq); {} without a file."""
    heads: dict[uuid.UUID, RecordedHead] = {}
    if not path.exists():
        return heads
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        head = RecordedHead(
            uuid.UUID(data["organization_id"]),
            int(data["seq"]),
            str(data["row_hash"]),
            str(data["written_at"]),
        )
        known = heads.get(head.organization_id)
        if known is None or head.seq > known.seq:
            heads[head.organization_id] = head
    return heads


def _chains(
    session: Session, organization_ids: Iterable[uuid.UUID] | None
) -> dict[uuid.UUID, list[AuditEvent]]:
    query = select(AuditEvent).order_by(AuditEvent.organization_id, AuditEvent.seq, AuditEvent.id)
    if organization_ids is not None:
        query = query.where(AuditEvent.organization_id.in_(list(organization_ids)))
    chains: dict[uuid.UUID, list[AuditEvent]] = {}
    for row in session.scalars(query).yield_per(2000):
        chains.setdefault(row.organization_id, []).append(row)
    return chains


def verify(
    session: Session,
    *,
    recorded: dict[uuid.UUID, RecordedHead] | None = None,
    organization_ids: Iterable[uuid.UUID] | None = None,
) -> Verification:
    """Check every chain (or those of `organization_ids`) and its head, in `audit_heads` and in the
    `recorded` heads (read from the head file). Reads only."""
    only = None if organization_ids is None else set(organization_ids)
    # The heads before the rows: on PostgreSQL each statement sees the commits made before it, so rows
    # read second reach at least the heads read first (a chain may have grown meanwhile; that is fine).
    heads_query = select(AuditHead)
    if only is not None:
        heads_query = heads_query.where(AuditHead.organization_id.in_(list(only)))
    stored = {head.organization_id: head for head in session.scalars(heads_query)}
    chains = _chains(session, only)
    outside = {k: v for k, v in (recorded or {}).items() if only is None or k in only}
    problems: list[Problem] = []
    for organization_id in sorted(set(chains) | set(stored) | set(outside)):
        rows = chains.get(organization_id, [])
        found = check_chain(organization_id, rows)
        head = stored.get(organization_id)
        if found is None and head is not None:
            found = _check_head(organization_id, rows, head.seq, head.row_hash, "the database's chain head")
        recorded_head = outside.get(organization_id)
        if found is None and recorded_head is not None:
            where = f"the head file (written {recorded_head.written_at})"
            found = _check_head(organization_id, rows, recorded_head.seq, recorded_head.row_hash, where)
        if found is not None:
            problems.append(found)
    return Verification(
        chains=len(chains),
        rows=sum(len(rows) for rows in chains.values()),
        heads_checked=len(outside),
        problems=problems,
    )


def write_heads(session: Session, path: Path) -> int:
    """Append each chain's head (from `audit_heads`) to the head file, one JSON line each, and flush it to
    disk; the number of heads written. Meant for storage the database's users cannot rewrite (another
    machine, an append-only bucket): a copy beside the database guards only against edits made through
    the database."""
    written_at = clock.now().isoformat()
    lines = [
        json.dumps(
            {
                "organization_id": str(head.organization_id),
                "seq": head.seq,
                "row_hash": head.row_hash,
                "written_at": written_at,
            },
            sort_keys=True,
        )
        for head in session.scalars(select(AuditHead).order_by(AuditHead.organization_id))
        if head.seq > 0
    ]
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
            file.flush()

            os.fsync(file.fileno())
    return len(lines)


def describe(verification: Verification) -> str:
    return f"{verification.rows} rows in {verification.chains} chains"
