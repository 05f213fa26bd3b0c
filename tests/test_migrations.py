"""One set of migrations serves both databases and matches the models exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, make_url, select, text

from medspa.kit import clock
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import alembic_config, upgrade
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import Reservation
from medspa.schema import metadata
from medspa.security import service as security
from medspa.security.actors import system_actor
from tests.conftest import BACKENDS, POSTGRES_URL
from tests.invariants import booking_problems
from tests.scheduling.test_availability import NOW, build
from tests.scheduling.test_booking import TEN, request

CLIENT_RESERVATIONS_REVISION = "6f1c2a9d0b37"


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, metadata)
    assert differences == []


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the migration is run down and up again on it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    assert POSTGRES_URL is not None
    name = f"medspa_test_migration_{uuid.uuid4().hex[:12]}"
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


def test_upgrading_gives_every_live_appointment_its_clients_reservation(fresh_url: str) -> None:
    # given a database with a live and a cancelled booking, as it was before clients were reserved
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    with unit_of_work(engine) as session:
        organization = security.create_organization(session, slug="m", name="Migration Clinic")
    owner = system_actor(organization.id, "test")
    clinic = build(engine, owner)
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        live = scheduling.book_appointment(session, actor=owner, data=request(clinic))
        gone = scheduling.book_appointment(
            session, actor=owner, data=request(clinic, TEN + timedelta(hours=1))
        )
        scheduling.cancel_appointment(session, actor=owner, appointment_id=gone.id, reason="x")
    command.downgrade(alembic_config(fresh_url), CLIENT_RESERVATIONS_REVISION + "-1")
    assert client_reservations(engine) == []
    # when it is upgraded, then the live booking (only) reserves its client for its own time
    upgrade(fresh_url)
    assert client_reservations(engine) == [(live.id, clinic.client_id, live.starts_at, live.ends_at)]
    assert booking_problems(engine, organization.id, NOW) == []
    engine.dispose()


def client_reservations(engine: Engine) -> list[tuple[uuid.UUID, uuid.UUID, datetime, datetime]]:
    with unit_of_work(engine, write=False) as session:
        rows = session.execute(
            select(
                Reservation.appointment_id,
                Reservation.resource_id,
                Reservation.starts_at,
                Reservation.ends_at,
            ).where(Reservation.resource_kind == "client", Reservation.is_active.is_(True))
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]
