"""One set of migrations serves both databases and matches the models exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, make_url, select, text

from medspa.kit import clock
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import alembic_config, upgrade
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import Reservation
from medspa.schema import metadata
from medspa.security import service as security
from medspa.security.actors import system_actor
from tests.conftest import BACKENDS, database_of_its_own
from tests.invariants import booking_problems
from tests.scheduling.test_availability import NOW, build
from tests.scheduling.test_booking import TEN, request

CLIENT_RESERVATIONS_REVISION = "6f1c2a9d0b37"
WALL_CLOCK_REVISION = "8e3b6f2d4c10"


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, metadata)
    assert differences == []


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (the migration is run down and up again on it)."""
    with database_of_its_own(request.param, tmp_path) as url:
        yield url


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


def test_weekly_spans_stored_with_seconds_become_whole_minutes(fresh_url: str) -> None:
    # given opening hours stored with seconds, as input allowed before (one span only seconds long)
    upgrade(fresh_url, WALL_CLOCK_REVISION + "-1")
    engine = make_engine(fresh_url)
    organization, location = uuid.uuid4(), uuid.uuid4()
    locations = sa.table(
        "locations",
        *(sa.column(c, sa.Uuid()) for c in ("id", "organization_id")),
        *(sa.column(c, sa.String()) for c in ("name", "time_zone")),
        *(
            sa.column(c, sa.Integer())
            for c in ("slot_interval_minutes", "minimum_notice_minutes", "config_version")
        ),
        sa.column("is_active", sa.Boolean()),
    )
    hours = sa.table(
        "opening_hours",
        *(sa.column(c, sa.Uuid()) for c in ("id", "organization_id", "location_id")),
        sa.column("weekday", sa.Integer()),
        sa.column("opens_at", sa.Time()),
        sa.column("closes_at", sa.Time()),
    )
    kept, emptied = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            sa.insert(locations).values(
                id=location,
                organization_id=organization,
                name="L",
                time_zone="UTC",
                slot_interval_minutes=15,
                minimum_notice_minutes=0,
                config_version=0,
                is_active=True,
            )
        )
        connection.execute(
            sa.insert(hours),
            [
                {"id": kept, "organization_id": organization, "location_id": location, "weekday": 0,
                 "opens_at": time(9, 0, 30), "closes_at": time(17, 0, 45, 5)},
                {"id": emptied, "organization_id": organization, "location_id": location, "weekday": 1,
                 "opens_at": time(9, 0, 10), "closes_at": time(9, 0, 50)},
            ],
        )  # fmt: skip
    # when it is upgraded, then they are whole minutes, and the span left empty is gone
    upgrade(fresh_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(hours.c.id, hours.c.opens_at, hours.c.closes_at)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(kept, time(9, 0), time(17, 0))]


SEALED_PHI_REVISION = "9c4f6a8b0d32"


def test_upgrading_seals_existing_clients_and_downgrading_opens_them(fresh_url: str) -> None:
    from datetime import UTC, date

    from sqlalchemy.dialects import postgresql

    from medspa.clients import service as clients

    # given a client stored in plain text, as before PHI was sealed
    upgrade(fresh_url, SEALED_PHI_REVISION + "-1")
    engine = make_engine(fresh_url)
    organization, client = uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    organizations = sa.table(
        "organizations",
        *(sa.column(c, sa.String()) for c in ("slug", "name")),
        sa.column("is_active", sa.Boolean()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        *(sa.column(c, sa.Uuid()) for c in ("id", "organization_id")),
    )
    plain = sa.table(
        "clients",
        *(sa.column(c, sa.Uuid()) for c in ("id", "organization_id")),
        *(sa.column(c, sa.Text()) for c in ("first_name", "last_name", "email", "phone", "notes")),
        *(sa.column(c, sa.String()) for c in ("email_key", "phone_key")),
        sa.column("date_of_birth", sa.Date()),
        sa.column("preferences", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
        sa.column("is_active", sa.Boolean()),
        *(sa.column(c, sa.DateTime(timezone=True)) for c in ("created_at", "updated_at")),
    )
    with engine.begin() as connection:
        connection.execute(
            sa.insert(organizations).values(
                slug="old",
                name="Old",
                is_active=True,
                created_at=now,
                id=organization,
                organization_id=organization,
            )
        )
        connection.execute(
            sa.insert(plain).values(
                id=client, organization_id=organization, first_name="Wilhelmina", last_name="Castellanos",
                email="wilhelmina.castellanos@example.com", phone="(555) 318-6272",
                email_key="wilhelmina.castellanos@example.com", phone_key="5553186272",
                date_of_birth=date(1980, 2, 3), preferences={"notes_for_provider": "sensitive skin"},
                notes="allergic to lidocaine", is_active=True, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    engine.dispose()
    # when it is upgraded, then the row holds none of it, and the client reads and is found as before
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    with engine.connect() as connection:
        stored = " ".join(str(v) for v in connection.execute(text("SELECT * FROM clients")).one())
    for secret in ("Wilhelmina", "Castellanos", "wilhelmina", "6272", "lidocaine", "sensitive", "1980"):
        assert secret not in stored
    if fresh_url.startswith("sqlite"):
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        raw = Path(make_url(fresh_url).database or "").read_bytes()
        assert b"Castellanos" not in raw
        assert b"lidocaine" not in raw
    actor = system_actor(organization, "test")
    with unit_of_work(engine, write=False) as session:
        read = clients.get_client(session, actor=actor, client_id=client)
        assert (read.first_name, read.email, read.date_of_birth) == (
            "Wilhelmina", "wilhelmina.castellanos@example.com", date(1980, 2, 3),
        )  # fmt: skip
        assert read.preferences == {"notes_for_provider": "sensitive skin"}
        assert [c.id for c in clients.search_clients(session, actor=actor, query="castel").items] == [client]
        assert clients.list_clients(session, actor=actor, phone="+1 555 318 6272").total == 1
    engine.dispose()
    # and downgrading opens the fields again
    config = alembic_config(fresh_url)
    command.downgrade(config, SEALED_PHI_REVISION + "-1")
    engine = make_engine(fresh_url)
    with engine.connect() as connection:
        row = connection.execute(sa.select(plain)).one()
    engine.dispose()
    assert (row.first_name, row.phone, row.date_of_birth, row.notes) == (
        "Wilhelmina", "(555) 318-6272", date(1980, 2, 3), "allergic to lidocaine",
    )  # fmt: skip
    assert row.preferences == {"notes_for_provider": "sensitive skin"}
