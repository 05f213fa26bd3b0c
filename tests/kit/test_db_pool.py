"""PostgreSQL's connection pool: a connection idle long enough is tested before use and replaced when the
server has dropped it; one used a moment ago is handed out without a round trip."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from medspa.kit import db
from medspa.kit.db import make_engine
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.skipif(POSTGRES_URL is None, reason="needs MEDSPA_TEST_DATABASE_URL (PostgreSQL)")


@pytest.fixture
def pg() -> Iterator[Engine]:
    assert POSTGRES_URL is not None
    engine = make_engine(POSTGRES_URL)
    yield engine
    engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    original = engine.dialect.do_ping

    def counting(dbapi_connection: object) -> bool:
        pings.append(1)
        return original(dbapi_connection)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return pings


def test_a_connection_used_a_moment_ago_is_not_pinged(pg: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    first = backend_pid(pg)
    pings = count_pings(pg, monkeypatch)
    assert backend_pid(pg) == first
    assert pings == []


def test_an_idle_connection_the_server_dropped_is_replaced(
    pg: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg.connect() as victim, pg.connect() as other:
        dropped = int(victim.execute(text("SELECT pg_backend_pid()")).scalar_one())
        victim.rollback()
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    pings = count_pings(pg, monkeypatch)
    # The pool hands out the dropped connection first (it went back first); without the test this
    # query would fail with "terminating connection due to administrator command".
    with pg.connect() as connection:
        replacement = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
    assert replacement != dropped
    assert pings
