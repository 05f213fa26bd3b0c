"""Database plumbing: the declarative base, column types, engines and units of work.

One unit of work per request, CLI command or job: `unit_of_work()` commits on success and rolls back
on any error. Services only `flush()`. On SQLite a unit of work that will write begins with
`BEGIN IMMEDIATE`, which serializes writers, so a booking's re-check and its insert cannot interleave
with another writer's (PostgreSQL instead backs bookings with an exclusion constraint).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    Uuid,
    bindparam,
    create_engine,
    event,
    exc,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from medspa.config import load_settings, sqlite_path
from medspa.kit.ids import new_id

logger = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


# A 64-bit autoincrementing key (SQLite autoincrements only INTEGER PRIMARY KEY): for append-only logs
# whose order matters, such as the outbox and appointment histories.
SequenceKey = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """An instant stored as UTC and always read back timezone-aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
        list[int]: JSONType,
    }


class TenantMixin:
    """Every table carries its organization (the tenant), so queries and shards can key on it."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(index=True)


def _sqlite_on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's "begin" hook below emit BEGIN itself, so writers can ask for IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted and overwritten content is zeroed, not left in free pages: a client's old sealed fields,
    # or plaintext from before the fields were sealed, do not linger in the file (ADR 17).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get("medspa_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(database_url: str) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, configured for medspa's transaction rules."""
    if database_url.startswith("sqlite"):
        path = sqlite_path(database_url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=10,
            max_overflow=40,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    engine = create_engine(database_url, pool_size=20, max_overflow=20)
    event.listen(engine.pool, "checkin", _mark_idle)
    event.listen(engine.pool, "checkout", _ping_if_idle(engine))
    return engine


# A pooled PostgreSQL connection is tested before use only when it has sat idle this long: a database
# restart or a dropped network connection shows there, while a connection busy a moment ago is almost
# surely alive. (Pinging on every checkout costs a round trip per request.) A connection that fails the
# test is replaced at once, so the request does not see the failure.
PING_AFTER_IDLE_SECONDS = 5.0


def _mark_idle(_dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(engine: Engine) -> Any:
    def check(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: object) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the driver's own error types differ; any failure means "replace it"
            raise exc.DisconnectionError(f"stale pooled connection: {error}") from error

    return check


@lru_cache(maxsize=8)
def engine_for(database_url: str) -> Engine:
    return make_engine(database_url)


def default_engine() -> Engine:
    return engine_for(load_settings().database_url)


_SQLITE_WRITERS: dict[int, threading.Lock] = {}
_SQLITE_WRITERS_LOCK = threading.Lock()


SQLITE_WRITE_WAIT_SECONDS = 30


class WriterBusyError(TimeoutError):
    """No SQLite write lock within `SQLITE_WRITE_WAIT_SECONDS`: another writer held it all that time.
    Nothing was written; the request may be retried (the API answers 503 with Retry-After)."""


# PostgreSQL's errors that mean "a concurrent transaction got in the way, nothing was done, run it
# again": deadlock detected, serialization failure.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 3
T = TypeVar("T")


def is_transient_conflict(error: BaseException) -> bool:
    """Whether `error` is a database error a retry of the whole unit of work can cure."""
    if not isinstance(error, exc.DBAPIError):
        return False
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return sqlstate in TRANSIENT_SQLSTATES


def _writer_lock(engine: Engine) -> threading.Lock:
    """One lock per SQLite engine. SQLite admits one writer at a time anyway; queueing writers on a lock
    in the process, instead of in SQLite's busy handler (which sleeps and retries), keeps a busy front
    desk fast and fair. Other processes on the same file still wait in the busy handler. A plain Lock,
    not an RLock: the web framework may end a unit of work on another thread than began it."""
    with _SQLITE_WRITERS_LOCK:
        return _SQLITE_WRITERS.setdefault(id(engine), threading.Lock())


# Per engine, its session factories for readers and writers. (A factory keeps its engine alive; a
# process makes only a few engines.)
_FACTORIES: weakref.WeakKeyDictionary[Engine, dict[bool, sessionmaker[Session]]] = weakref.WeakKeyDictionary()
_FACTORIES_LOCK = threading.Lock()


def _session_factory(engine: Engine, write: bool) -> sessionmaker[Session]:
    """The engine's session factory for readers or writers, made once. On SQLite a writer's engine
    carries the `medspa_write` option (its BEGIN becomes BEGIN IMMEDIATE); deriving that option engine
    per unit of work would rebuild its event dispatch every time, a measurable share of a request."""
    with _FACTORIES_LOCK:
        made = _FACTORIES.setdefault(engine, {})
        if write not in made:
            tagged = write and engine.dialect.name == "sqlite"
            bound = engine.execution_options(medspa_write=True) if tagged else engine
            made[write] = sessionmaker(bind=bound, expire_on_commit=False, autoflush=False)
        return made[write]


@contextmanager
def unit_of_work(engine: Engine | None = None, *, write: bool = True) -> Iterator[Session]:
    """A session whose transaction commits when the block ends normally and rolls back otherwise.

    `write=True` (the default) declares that the block may write: on SQLite it then holds the write
    lock from its first statement to its end, so its reads and writes cannot interleave with another
    writer's (this is what makes a booking's re-check safe there)."""
    base = engine or default_engine()
    serialize = write and base.dialect.name == "sqlite"
    factory = _session_factory(base, write)
    lock = _writer_lock(base) if serialize else None
    if lock is not None and not lock.acquire(timeout=SQLITE_WRITE_WAIT_SECONDS):
        raise WriterBusyError(f"no SQLite write lock after {SQLITE_WRITE_WAIT_SECONDS} s")
    from medspa.kit import audit_trail  # (it builds on this module)

    session = factory()
    after: list[audit_trail.Entry] = []
    try:
        yield session
        if not write and base.dialect.name == "sqlite":
            # A SQLite reader cannot become a writer once another writer has committed: its audit
            # entries are appended under the writer lock right after its reads commit (see audit_trail).
            after = audit_trail.take_pending(session)
        session.commit()
    except BaseException as error:
        kept = audit_trail.kept_after_rollback(session, error)
        session.rollback()
        session.close()
        if lock is not None:
            lock.release()
            lock = None
        _append_audit_entries(base, kept, error)
        raise
    finally:
        session.close()
        if lock is not None:
            lock.release()
    if after:
        with unit_of_work(base) as writer:
            audit_trail.append(writer.connection(), after)


def _append_audit_entries(engine: Engine, entries: list[Any], cause: BaseException) -> None:
    """Append what a rolled-back unit of work must still record (failed sign-ins, a denial) in a unit of
    work of its own; a failure to do so is logged and does not hide the error that ended the work."""
    if not entries:
        return
    from medspa.kit import audit_trail

    try:
        with unit_of_work(engine) as writer:
            audit_trail.append(writer.connection(), entries)
    except Exception:
        logger.exception("could not record %d audit entries after %r", len(entries), cause)


# Row-level security on PostgreSQL (ADR 21). Every tenant table carries a policy that shows a
# transaction only the rows of the organization in `app.organization_id`, unless `app.scope` is
# `system`. Both are set per transaction with `set_config(..., true)` (a connection-level SET would
# outlive the transaction and leak to the next user of the pooled connection): at its start, `system`
# for the code of the server itself (the worker, the CLI, sign-in); once a request's credentials name
# its organization (`confine_to_tenant`), that organization only, for the rest of the session.
TENANT_KEY = "medspa_tenant"
_SCOPE = text(
    "SELECT set_config('app.organization_id', :organization, true), set_config('app.scope', :scope, true)"
)


def confine_to_tenant(session: Session, organization_id: uuid.UUID) -> None:
    """From now on, every transaction of `session` sees only the organization's rows (PostgreSQL; on
    SQLite the application's own scoping is the only wall)."""
    session.info[TENANT_KEY] = organization_id
    if session.in_transaction() and session.get_bind().dialect.name == "postgresql":
        _set_scope(session.connection(), organization_id)


def _set_scope(connection: Connection, organization_id: uuid.UUID | None) -> None:
    if organization_id is None:
        connection.execute(_SCOPE, {"organization": "", "scope": "system"})
    else:
        connection.execute(_SCOPE, {"organization": str(organization_id), "scope": "tenant"})


@event.listens_for(Session, "after_begin")
def _scope_transaction(session: Session, _transaction: object, connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        _set_scope(connection, session.info.get(TENANT_KEY))


def row_security_bypass(engine: Engine) -> str | None:
    """Why row-level security would not apply to this engine's database role (superuser, BYPASSRLS, or
    owner of the tables), or None when it applies (or the database is SQLite)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as connection:
        role, superuser, bypass = connection.execute(
            text("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        owned = connection.scalar(
            text(
                "SELECT count(*) FROM pg_tables"
                " WHERE schemaname = current_schema() AND tableowner = current_user"
            )
        )
    reasons = [
        r for r, holds in (("superuser", superuser), ("BYPASSRLS", bypass), ("table owner", owned)) if holds
    ]
    return f"role {role} is {' and '.join(reasons)}" if reasons else None


def insert_ignoring_conflict(
    connection: Connection | Session, model: type[Any], values: dict[str, Any]
) -> None:
    """Insert a row unless one with the same unique key exists (then nothing, and no error): how a row
    that concurrent transactions may all want to create first is made, on either database."""
    dialect = (connection.get_bind() if isinstance(connection, Session) else connection).dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    connection.execute(insert(model).values(values).on_conflict_do_nothing())


@lru_cache(maxsize=32)
def _insert_unless_conflict(dialect: str, table: Table, returning: str) -> Any:
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing().returning(table.c[returning])


def insert_many_unless_conflict(
    session: Session, model: type[Any], rows: list[dict[str, Any]], *, returning: str
) -> list[Any]:
    """`insert_ignoring_conflict` for several rows (keyed by column name) that also says, in the same
    round trip, which went in: the `returning` column of each row inserted (a row whose unique key a
    stored row, or an earlier one of `rows`, holds is not, and raises nothing). One `INSERT ... ON
    CONFLICT DO NOTHING RETURNING` on either database (SQLite answers it since 3.35; several rows go as
    one statement, SQLAlchemy's "insertmanyvalues"); the statement is built once per table and dialect
    and the values sent as parameters, so it costs no statement construction per call."""
    statement = _insert_unless_conflict(session.get_bind().dialect.name, model.__table__, returning)
    return list(session.connection().execute(statement, rows).scalars())


@lru_cache(maxsize=32)
def _insert_arrays(table: Table, columns: tuple[str, ...]) -> Any:
    # Set-returning functions in a select list run in step (PostgreSQL 10 and later): row i of each.
    zipped = select(*(func.unnest(bindparam(name, type_=ARRAY(table.c[name].type))) for name in columns))
    return insert(table).from_select(list(columns), zipped)


def insert_rows(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Insert many rows (each keyed by column name, all with the same columns, none of them JSON) in one
    statement: on PostgreSQL one `INSERT ... SELECT` over an array per column, which costs the server
    one statement and the client one parameter per column, where a many-row `executemany` costs each
    row's parameters and execution; on SQLite an `executemany`, which its driver runs in C."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":  # Core's insert: no per-row ORM bookkeeping
        session.connection().execute(insert(model.__table__), rows)
        return
    columns = tuple(rows[0])
    statement = _insert_arrays(model.__table__, columns)
    session.connection().execute(statement, {name: [row[name] for row in rows] for name in columns})


def run_in_unit_of_work(
    engine: Engine, work: Callable[[Session], T], *, write: bool = True, attempts: int | None = None
) -> T:
    """`work(session)` in a unit of work, run again from the start (at most `attempts` times in all,
    `ATTEMPTS` by default) when PostgreSQL ends it as a deadlock victim or a serialization failure: two
    transactions that lock the same appointments in different orders (a proposal apply and a reschedule
    of one of its bookings) are each correct, and one of them is chosen to lose. Every attempt is a
    fresh transaction, so nothing of a failed one remains. Other errors are raised at once."""
    tries = ATTEMPTS if attempts is None else attempts
    for _ in range(tries - 1):
        try:
            with unit_of_work(engine, write=write) as session:
                return work(session)
        except exc.DBAPIError as error:
            if not is_transient_conflict(error):
                raise
    with unit_of_work(engine, write=write) as session:
        return work(session)
