"""A unit of work that a concurrent one got in the way of: run again when PostgreSQL chose it as a
deadlock victim, 409 when it keeps losing, 503 with Retry-After when SQLite's writer stays busy."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from medspa.kit import db
from medspa.kit.db import make_engine, run_in_unit_of_work, unit_of_work
from medspa.scheduling import routes
from medspa.security import service as security
from tests.conftest import POSTGRES_URL

needs_postgres = pytest.mark.skipif(
    POSTGRES_URL is None, reason="needs MEDSPA_TEST_DATABASE_URL (PostgreSQL)"
)


class _DeadlockError(Exception):
    """What the PostgreSQL driver raises for a deadlock victim, as far as the code reads it."""

    sqlstate = "40P01"


@pytest.fixture
def pg() -> Iterator[tuple[Engine, list[uuid.UUID]]]:
    """PostgreSQL and two rows of its own to lock (two fresh organizations: no table is made, so a test
    stopped half-way leaves nothing in the schema)."""
    assert POSTGRES_URL is not None
    engine = make_engine(POSTGRES_URL)
    with unit_of_work(engine) as session:
        rows = [
            security.create_organization(session, slug=f"t-{uuid.uuid4().hex[:12]}", name="n").id
            for _ in range(2)
        ]
    try:
        yield engine, rows
    finally:
        engine.dispose()


def _lock_both_in_opposite_orders(
    pg: tuple[Engine, list[uuid.UUID]], attempts: int
) -> tuple[list[BaseException], int, int]:
    """Two units of work change rows A and B in opposite orders, each holding its first row's lock until
    the other holds its own: a deadlock, of which PostgreSQL makes one the victim. The errors that
    escaped, the attempts made, and the changes that landed (each unit marks each row once)."""
    engine, rows = pg
    mark = text("UPDATE organizations SET name = name || '+' WHERE id = :id")
    both_hold_one = threading.Barrier(2, timeout=10)
    tried: list[int] = []
    escaped: list[BaseException] = []

    def worker(order: list[uuid.UUID]) -> None:
        def work(session: Session) -> None:
            tried.append(1)
            first, second = order
            session.execute(mark, {"id": first})
            if len(tried) <= 2:  # only the first two attempts meet; a retry runs alone
                both_hold_one.wait()
            session.execute(mark, {"id": second})

        try:
            run_in_unit_of_work(engine, work, attempts=attempts)
        except BaseException as error:  # the test reports what escaped
            escaped.append(error)

    threads = [threading.Thread(target=worker, args=(order,)) for order in (rows, rows[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with engine.connect() as connection:
        names = connection.execute(
            text("SELECT name FROM organizations WHERE id IN (:a, :b)"), {"a": rows[0], "b": rows[1]}
        ).scalars()
        total = sum(name.count("+") for name in names)
    return escaped, len(tried), total


@needs_postgres
def test_a_deadlock_victim_is_run_again_and_both_changes_land(pg: tuple[Engine, list[uuid.UUID]]) -> None:
    escaped, tried, total = _lock_both_in_opposite_orders(pg, attempts=db.ATTEMPTS)
    assert escaped == []
    assert tried >= 3  # the two that met, and at least one attempt more of the victim
    assert total == 4  # both units marked both rows; the victim's first attempt left nothing


@needs_postgres
def test_without_a_retry_the_victim_fails_and_leaves_nothing(pg: tuple[Engine, list[uuid.UUID]]) -> None:
    escaped, tried, total = _lock_both_in_opposite_orders(pg, attempts=1)
    assert tried == 2
    assert len(escaped) == 1
    assert db.is_transient_conflict(escaped[0])
    assert total == 2


@pytest.mark.parametrize(
    ("error", "status", "code", "attempts"),
    [
        # a deadlock victim every time: run again, then 409
        (
            OperationalError("UPDATE appointments ...", {}, _DeadlockError("deadlock detected")),
            409,
            "concurrent_change",
            db.ATTEMPTS,
        ),
        # any other database error: not run again
        (DBAPIError("SELECT ...", {}, Exception("disk I/O error")), 500, "internal_error", 1),
    ],
)
def test_a_booking_step_is_run_again_only_after_a_transient_conflict(
    api: TestClient, monkeypatch: pytest.MonkeyPatch, error: DBAPIError, status: int, code: str, attempts: int
) -> None:
    calls: list[int] = []

    def failing(*_args: object, **_kwargs: object) -> None:
        calls.append(1)
        raise error

    monkeypatch.setattr(routes.service, "confirm_hold", failing)
    response = api.post(f"/api/v1/holds/{uuid.uuid4()}/confirm")
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert len(calls) == attempts


def test_a_writer_kept_waiting_answers_503_with_retry_after(
    api: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("only SQLite has a single writer")
    monkeypatch.setattr(db, "SQLITE_WRITE_WAIT_SECONDS", 0.2)
    lock = db._writer_lock(engine)
    assert lock.acquire(timeout=10)
    try:
        starts = datetime(2027, 1, 5, 15, tzinfo=UTC).isoformat()
        body = {
            "client_id": str(uuid.uuid4()),
            "service_id": str(uuid.uuid4()),
            "location_id": str(uuid.uuid4()),
            "starts_at": starts,
        }
        response = api.post("/api/v1/appointments", json=body)
    finally:
        lock.release()
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "database_busy"
    assert response.headers["Retry-After"] == "5"
    assert api.post("/api/v1/appointments", json=body).status_code == 404  # free again: the real answer
