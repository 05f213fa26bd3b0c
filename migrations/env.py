"""Alembic environment: one set of migrations for SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from medspa.kit.db import make_engine
from medspa.schema import metadata

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = make_engine(url)
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _sqlite_foreign_keys(connection, on=False)
    try:
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":  # data migrations see every tenant's rows (ADR 21)
                connection.exec_driver_sql("SELECT set_config('app.scope', 'system', true)")
            context.run_migrations()
            if sqlite:
                _refuse_dangling_references(connection)
    finally:
        if sqlite:
            _sqlite_foreign_keys(connection, on=True)


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    """SQLite changes a column's type by rebuilding its table (copy, drop, rename), which a table that
    others reference survives only with foreign keys off, as SQLite's own procedure for schema changes
    says. The pragma works only outside a transaction, so it is sent on the driver's connection."""
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")  # type: ignore[attr-defined]


def _refuse_dangling_references(connection: Connection) -> None:
    """Before the migration commits: every foreign key must still hold, or nothing is changed."""
    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if dangling:
        raise RuntimeError(f"a migration left {len(dangling)} references dangling, e.g. {tuple(dangling[0])}")


run_migrations_online()
