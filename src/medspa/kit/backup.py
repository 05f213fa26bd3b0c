"""`medspa backup` and `medspa restore` of the whole database, SQLite or PostgreSQL.

SQLite is copied with its online backup API (a consistent copy while the server runs; restoring writes
the backup's pages into the database file, so stop the server first). PostgreSQL goes through
`pg_dump --format=custom` and `pg_restore --clean --single-transaction`, which must be installed (the
PostgreSQL client tools of the server's major version or newer).

Neither the key file nor the erasure ledger is in a backup: both live outside the database and must be
backed up apart from it (a backup with its key file is every client record in clear; a restore without
the ledger would bring erased clients back).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import make_url

from medspa.config import sqlite_path


class BackupError(Exception):
    """The backup or restore did not happen; the message says why."""


def backup(database_url: str, target: Path) -> None:
    """Write a consistent copy of the database to `target` (refused when it exists)."""
    if target.exists():
        raise BackupError(f"{target} exists already: name a new file")
    file = sqlite_path(database_url)
    if file is not None:
        if not file.exists():
            raise BackupError(f"no database at {file}")
        _sqlite_copy(file, target)
        return
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={target}", _libpq(database_url)])


def restore(database_url: str, source: Path) -> None:
    """Replace the database's contents with the backup at `source`, in one transaction."""
    if not source.is_file():
        raise BackupError(f"no backup at {source}")
    file = sqlite_path(database_url)
    if file is not None:
        _sqlite_copy(source, file)
        return
    _run(
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            f"--dbname={_libpq(database_url)}",
            str(source),
        ]
    )


def _sqlite_copy(source: Path, target: Path) -> None:
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reader:
            if reader.execute("PRAGMA quick_check").fetchone() != ("ok",):
                raise BackupError(f"{source} is damaged (SQLite quick_check)")
            writer = sqlite3.connect(target)
            try:
                reader.backup(writer)
            finally:
                writer.close()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{source} is not a SQLite database: {error}") from error


def _libpq(database_url: str) -> str:
    """The URL as libpq reads it (`postgresql://`, without SQLAlchemy's driver name)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (the PostgreSQL client tools)")
    return found


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupError(f"{Path(command[0]).name} failed: {last}")
