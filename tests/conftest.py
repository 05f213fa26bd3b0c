"""Fixtures shared by the suite: migrated databases (SQLite always, PostgreSQL when
MEDSPA_TEST_DATABASE_URL is set), one fresh organization per test, and an API client.

Every record belongs to an organization, so tests share one migrated database per backend and stay
independent by each using an organization of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.app import create_app
from medspa.kit import clock
from medspa.kit.clock import ManualClock
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import upgrade
from medspa.security import service as security
from medspa.security.actors import Actor, Role, system_actor
from medspa.security.schemas import TokenCreate

POSTGRES_URL = os.environ.get("MEDSPA_TEST_DATABASE_URL") or None
# The suite must pass whatever the date and time of day it runs at: `MEDSPA_TEST_NOW=2026-12-03T23:59:30Z`
# runs it with the machine's clock moved there (and ticking on from it). `make test` runs it this way at
# a few instants chosen to catch mistakes (around midnight UTC, late evening UTC, a daylight-saving change).
TEST_NOW = os.environ.get("MEDSPA_TEST_NOW")
_travel: time_machine.travel | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _travel
    if TEST_NOW:
        _travel = time_machine.travel(datetime.fromisoformat(TEST_NOW), tick=True)
        _travel.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _travel is not None:
        _travel.stop()


def pytest_report_header(config: pytest.Config) -> str:
    return f"medspa: the clock starts at {datetime.now(UTC).isoformat(timespec='seconds')}"


BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


@pytest.fixture(scope="session", autouse=True)
def huey_queue_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Huey's queue (where the app hands optimization jobs to the worker) in a file of the test run's
    own, never the working directory's `var/huey.db`."""
    path = tmp_path_factory.mktemp("huey") / "huey.db"
    with _environment("MEDSPA_HUEY_PATH", str(path)):
        yield path


@pytest.fixture(scope="session", autouse=True)
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The key file that wraps the organizations' PHI data keys, of the test run's own (created on first
    use, as in a clinic), never the working directory's `var/medspa.keys`."""
    path = tmp_path_factory.mktemp("keys") / "medspa.keys"
    with _environment("MEDSPA_KEY_FILE", str(path)):
        yield path


@contextmanager
def database_of_its_own(backend: str, directory: Path) -> Iterator[str]:
    """An empty database for one test (a migration run down and up, a restore that replaces it all):
    a SQLite file in `directory`, or a PostgreSQL database created beside the suite's and dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'own.db'}"
        return
    assert POSTGRES_URL is not None
    from sqlalchemy import create_engine, make_url, text

    name = f"medspa_test_own_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(POSTGRES_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name)
    fresh = create_engine(url)
    with fresh.connect() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        connection.commit()
    fresh.dispose()
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("db") / "medspa.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    assert POSTGRES_URL is not None
    upgrade(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    built = make_engine(url)
    yield built
    built.dispose()


@pytest.fixture
def owner(engine: Engine) -> Actor:
    """A fresh organization and its owner, acting as the system."""
    with unit_of_work(engine) as session:
        org = security.create_organization(session, slug=f"t-{uuid.uuid4().hex[:12]}", name="Test Clinic")
    return system_actor(org.id, "test")


def token_for(engine: Engine, actor: Actor, role: Role = Role.OWNER, *, days: int | None = None) -> str:
    with unit_of_work(engine) as session:
        data = TokenCreate(name="test", role=role, expires_in_days=days)
        return security.issue_token(session, actor=actor, data=data).token


@pytest.fixture(autouse=True)
def test_clock() -> Iterator[ManualClock]:
    """The test's clock: the system's until the test sets it. The test's own thread tells time by it, and
    so does every application the fixtures build (`api`, servers), so setting it moves all of them."""
    manual = ManualClock()
    with clock.using(manual):
        yield manual


@pytest.fixture
def api(engine: Engine, owner: Actor, test_clock: ManualClock) -> Iterator[TestClient]:
    """An HTTP client of the app, authenticated as the owner of a fresh organization."""
    with TestClient(create_app(engine, clock=test_clock)) as client:
        client.headers["Authorization"] = f"Bearer {token_for(engine, owner)}"
        yield client
