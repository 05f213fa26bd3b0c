"""Fixtures for the web pages: one small seeded demo database per test session, copied for each test."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.app import create_app
from medspa.catalog import service as catalog
from medspa.demo.seed import DEMO_PASSWORD, seed_demo
from medspa.kit import clock
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import upgrade
from medspa.kit.tz import local_day_bounds, to_local
from medspa.resources import service as resources
from medspa.resources.schemas import LocationRead
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, BookingRequest, SlotRead, Status
from medspa.security.actors import Actor, system_actor

ORIGIN = "http://testserver"
FRONT_DESK = "frontdesk@lumen.example"
BOOKING_SERVICE = "HydraFacial"


@dataclass(frozen=True)
class Demo:
    """The seeded template database and what the tests need to know about it."""

    path: Path
    organization_id: uuid.UUID
    location_id: uuid.UUID

    @property
    def actor(self) -> Actor:
        return system_actor(self.organization_id, "web-tests")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    path = tmp_path_factory.mktemp("web-demo") / "template.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    try:
        summary = seed_demo(engine, client_count=40, past_days=3, future_days=3)
    finally:
        engine.dispose()  # closes every connection, which checkpoints the WAL into the file we copy
    return Demo(path, summary.organization_id, summary.location_id)


@pytest.fixture
def database_url(demo_template: Demo, tmp_path: Path) -> str:
    copy = tmp_path / "medspa.db"
    shutil.copyfile(demo_template.path, copy)
    return f"sqlite:///{copy}"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    """A browser-like client (it sends the page's Origin on every request), not signed in. An
    optimization job is run as soon as it is handed over (after the response, as the worker would)."""

    def run_at_once(job_id: uuid.UUID) -> None:
        scheduling.run_optimization_job(engine, job_id)

    app = create_app(engine, optimization_queue=run_at_once)
    with TestClient(app, headers={"Origin": ORIGIN}) as test_client:
        yield test_client


@pytest.fixture
def signed_in(client: TestClient) -> TestClient:
    response = client.post(
        "/login",
        data={"organization": "demo", "email": FRONT_DESK, "password": DEMO_PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303
    return client


def local_today(engine: Engine, demo: Demo) -> date:
    with unit_of_work(engine, write=False) as session:
        location = resources.get_location(session, actor=demo.actor, location_id=demo.location_id)
    return to_local(clock.now(), location.time_zone).date()


def booking_service_id(engine: Engine, demo: Demo) -> uuid.UUID:
    with unit_of_work(engine, write=False) as session:
        services = catalog.list_services(session, actor=demo.actor, limit=500).items
    return next(s.id for s in services if s.name == BOOKING_SERVICE)


def first_day_with_slots(engine: Engine, demo: Demo, service_id: uuid.UUID) -> tuple[date, list[SlotRead]]:
    """The first local date from tomorrow on with free slots for the service, and those slots."""
    today = local_today(engine, demo)
    for offset in range(1, 15):
        day = today + timedelta(days=offset)
        slots = free_slots(engine, demo, service_id, day, day)
        if slots:
            return day, slots
    raise AssertionError("the demo has no free slot in the next two weeks")


def new_booking(engine: Engine, demo: Demo) -> tuple[date, AppointmentRead]:
    """A new client's booking of the booking service at the first free slot from tomorrow on, and its
    local day."""
    service_id = booking_service_id(engine, demo)
    day, slots = first_day_with_slots(engine, demo, service_id)
    return day, book_new_client(engine, demo, service_id, slots[0])


def first_day_with_a_waitlist(engine: Engine, demo: Demo) -> date:
    """The first local date from today on with clients waiting for a place (the demo seeds some)."""
    today = local_today(engine, demo)
    with unit_of_work(engine, write=False) as session:
        for offset in range(15):
            day = today + timedelta(days=offset)
            if scheduling.list_waitlist(
                session, actor=demo.actor, location_id=demo.location_id, service_date=day
            ):
                return day
    raise AssertionError("the demo has no waitlist in the next two weeks")


def appointments_on(engine: Engine, demo: Demo, day: date) -> list[AppointmentRead]:
    """The demo location's appointments starting on a local day."""
    start, end = local_day_bounds(day, "America/New_York")
    with unit_of_work(engine, write=False) as session:
        return scheduling.list_appointments(
            session,
            actor=demo.actor,
            location_id=demo.location_id,
            starts_from=start,
            starts_before=end,
            limit=500,
        ).items


def booked_visits(
    engine: Engine, demo: Demo, days_ahead: int, days: int
) -> tuple[LocationRead, list[AppointmentRead]]:
    """The demo location and its booked visits from `days_ahead` days after its today, for `days` days."""
    with unit_of_work(engine, write=False) as session:
        location = resources.get_location(session, actor=demo.actor, location_id=demo.location_id)
        today = to_local(clock.now(), location.time_zone).date()
        start, _ = local_day_bounds(today + timedelta(days=days_ahead), location.time_zone)
        visits = scheduling.list_appointments(
            session,
            actor=demo.actor,
            location_id=location.id,
            status=Status.BOOKED,
            starts_from=start,
            starts_before=start + timedelta(days=days),
            limit=500,
        ).items
    return location, visits


def book_new_client(engine: Engine, demo: Demo, service_id: uuid.UUID, slot: SlotRead) -> AppointmentRead:
    """A new client booked at the slot with its provider."""
    from tests.factories import make_client

    with unit_of_work(engine) as session:
        client = make_client(session, actor=demo.actor)
        return scheduling.book_appointment(
            session,
            actor=demo.actor,
            data=BookingRequest(
                client_id=client.id,
                service_id=service_id,
                location_id=demo.location_id,
                starts_at=slot.starts_at,
                provider_id=slot.provider_id,
            ),
        )


def free_slots(engine: Engine, demo: Demo, service_id: uuid.UUID, first: date, last: date) -> list[SlotRead]:
    with unit_of_work(engine, write=False) as session:
        return scheduling.find_slots(
            session,
            actor=demo.actor,
            location_id=demo.location_id,
            service_id=service_id,
            first_date=first,
            last_date=last,
        )
