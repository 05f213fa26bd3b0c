"""Shared set-up for the benchmarks: a busy location built through the service layer."""

from __future__ import annotations

import platform
import random
import statistics
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine

from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceCreate
from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import ConflictError, ValidationFailedError
from medspa.kit.tz import local_to_utc
from medspa.resources import service as resources
from medspa.resources.schemas import DeviceCreate, LocationCreate, ProviderCreate, RoomCreate, WeeklySpan
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import BookingRequest
from medspa.security import service as security
from medspa.security.actors import Actor, system_actor

ZONE = "America/New_York"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BusyLocation:
    actor: Actor
    location_id: uuid.UUID
    plain_service_id: uuid.UUID
    device_service_id: uuid.UUID
    client_ids: list[uuid.UUID]
    first_day: date


def hours(start: str, end: str) -> list[WeeklySpan]:
    return [
        WeeklySpan(weekday=d, starts_at=time.fromisoformat(start), ends_at=time.fromisoformat(end))
        for d in range(7)
    ]


def build_location(
    engine: Engine,
    *,
    first_day: date,
    appointments: int,
    days: int,
    seed: int = 1,
    injection_rooms: int = 4,
    full_shifts: bool = False,
) -> BusyLocation:
    """8 providers, 2 laser rooms and `injection_rooms` injection rooms, 3 devices, open 08:00-20:00
    daily, and `appointments` booked appointments spread over `days` days from `first_day` (booked
    through the service layer, so none overlap). Providers work half days with a break, or with
    `full_shifts` 08:00-20:00 without one."""
    rng = random.Random(seed)
    with unit_of_work(engine) as session:
        org = security.create_organization(session, slug=f"bench-{uuid.uuid4().hex[:10]}", name="Bench")
        actor = system_actor(org.id, "bench")
        location = resources.create_location(
            session,
            actor=actor,
            data=LocationCreate(
                name="Bench", time_zone=ZONE, minimum_notice_minutes=0, opening_hours=hours("08:00", "20:00")
            ),
        )
        for index in range(8):
            resources.create_provider(
                session,
                actor=actor,
                data=ProviderCreate(
                    location_id=location.id,
                    name=f"Provider {index}",
                    skills=["neurotoxin", "laser_hair"],
                    shifts=hours("08:00", "20:00")
                    if full_shifts
                    else hours("08:00", "14:00")
                    if index % 2
                    else hours("12:00", "20:00"),
                    breaks=[]
                    if full_shifts
                    else hours("11:00", "11:30")
                    if index % 2
                    else hours("16:00", "16:30"),
                ),
            )
        for index in range(2 + injection_rooms):
            resources.create_room(
                session,
                actor=actor,
                data=RoomCreate(
                    location_id=location.id,
                    name=f"Room {index}",
                    room_type="laser" if index < 2 else "injection",
                ),
            )
        for index in range(3):
            resources.create_device(
                session,
                actor=actor,
                data=DeviceCreate(
                    location_id=location.id,
                    name=f"Diode {index}",
                    device_type="diode_laser",
                    cooldown_minutes=10,
                ),
            )
        plain = catalog.create_service(
            session,
            actor=actor,
            data=ServiceCreate(
                name="Botox",
                category="injectables",
                duration_minutes=30,
                setup_minutes=5,
                cleanup_minutes=5,
                required_skill="neurotoxin",
                room_types=["injection"],
                price_cents=45000,
            ),
        )
        laser = catalog.create_service(
            session,
            actor=actor,
            data=ServiceCreate(
                name="Laser hair",
                category="laser",
                duration_minutes=30,
                setup_minutes=5,
                cleanup_minutes=5,
                required_skill="laser_hair",
                room_types=["laser"],
                device_type="diode_laser",
                price_cents=15000,
            ),
        )
        client_ids = [
            clients.create_client(
                session, actor=actor, data=ClientCreate(first_name="B", last_name=str(i))
            ).id
            for i in range(200)
        ]
    booked = 0
    with clock.frozen_at(datetime.combine(first_day - timedelta(days=1), time(0), tzinfo=UTC)):
        while booked < appointments:
            with unit_of_work(engine) as session:
                for _ in range(50):
                    day = first_day + timedelta(days=rng.randrange(days))
                    minute = 8 * 60 + 15 * rng.randrange(48)
                    starts_at = local_to_utc(day, time(minute // 60, minute % 60), ZONE)
                    assert starts_at is not None
                    service_id = plain.id if rng.random() < 0.7 else laser.id
                    try:
                        with session.begin_nested():
                            scheduling.book_appointment(
                                session,
                                actor=actor,
                                data=BookingRequest(
                                    client_id=rng.choice(client_ids),
                                    service_id=service_id,
                                    location_id=location.id,
                                    starts_at=starts_at,
                                ),
                            )
                        booked += 1
                    except (ConflictError, ValidationFailedError):
                        continue
                    if booked >= appointments:
                        break
    return BusyLocation(actor, location.id, plain.id, laser.id, client_ids, first_day)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def host_loop_ms() -> float:
    """CPU milliseconds of a fixed pure-Python loop: a yardstick of how fast the (shared, virtual) machine
    is running right now, printed beside figures that depend on it. Lower is faster."""
    import time

    began = time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i * i
    return (time.process_time() - began) * 1000


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_section(name: str, body: str) -> None:
    """Replace the section between `<!-- name:start -->` and `<!-- name:end -->` in docs/benchmarks.md."""
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    path.write_text(f"{before}{start}\n{body.strip()}\n{end}{after}")
