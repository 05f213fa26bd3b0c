"""The erasure ledger: one line per erased client, in a file outside the database
(`MEDSPA_ERASURE_LEDGER`, `./var/erasures.jsonl` beside the SQLite file by default).

A backup taken before an erasure still holds the client's sealed fields and wrapped record key, and the
organization's keys still open them. So every erasure is also written here, appended and synced before
the transaction that erases commits, and `medspa restore` erases again every client the ledger names
(`replay`). The ledger holds ids and times only, never PHI. Keep it with the key file, apart from the
database backups: it must outlive them."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from medspa.config import load_settings

FORMAT = "medspa-erasure/1"


@dataclass(frozen=True)
class Entry:
    organization_id: uuid.UUID
    client_id: uuid.UUID
    erasure_id: uuid.UUID
    erased_at: datetime


class LedgerError(Exception):
    """The ledger cannot be read or written: the message names the file and the line."""


def path() -> Path:
    return load_settings().erasure_ledger


def append(entry: Entry) -> None:
    """Add `entry` and sync it to disk (a line is written whole by one `write` on an O_APPEND file)."""
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {
            "format": FORMAT,
            "organization_id": str(entry.organization_id),
            "client_id": str(entry.client_id),
            "erasure_id": str(entry.erasure_id),
            "erased_at": entry.erased_at.isoformat(),
        },
        sort_keys=True,
    )
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, (line + "\n").encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise LedgerError(f"cannot write the erasure ledger {target}: {error}") from error


def entries() -> list[Entry]:
    """Every entry, oldest first (none when there is no ledger yet)."""
    source = path()
    if not source.exists():
        return []
    found = []
    for number, line in enumerate(source.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            if document.get("format") != FORMAT:
                raise ValueError(f"format is not {FORMAT}")
            found.append(
                Entry(
                    organization_id=uuid.UUID(document["organization_id"]),
                    client_id=uuid.UUID(document["client_id"]),
                    erasure_id=uuid.UUID(document["erasure_id"]),
                    erased_at=datetime.fromisoformat(document["erased_at"]),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise LedgerError(f"{source} line {number} is not an erasure entry: {error}") from error
    return found
