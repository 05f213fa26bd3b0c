"""Booking latency while a day is being optimized, on SQLite and PostgreSQL: an optimization job (ADR 15)
against the solve run inside a writing transaction, the shape before it. A crowded day (3 providers and
rooms, 120 clients waiting) is solved for `--seconds`; one second in, three bookings of another day are
made one after the other, each its own unit of work, and timed. Writes docs/benchmarks.md.

    .venv/bin/python bench/booking_during_solve.py [--seconds 6] [--postgres-admin-url postgresql://...]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from pathlib import Path

from sqlalchemy import Engine

from booking import drop_postgres, fresh_postgres
from common import hours, machine, write_section
from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceCreate
from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate
from medspa.kit import clock
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import upgrade
from medspa.resources import service as resources
from medspa.resources.schemas import LocationCreate, ProviderCreate, RoomCreate
from medspa.scheduling import proposals
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import BookingRequest, WaitlistCreate
from medspa.security import service as security
from medspa.security.actors import Actor, system_actor

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DAY = date(2026, 3, 3)


def crowded_day(engine: Engine) -> tuple[Actor, uuid.UUID, uuid.UUID, uuid.UUID]:
    """The actor, location, service and a client to book for."""
    rng = random.Random(5)
    with unit_of_work(engine) as session:
        organization = security.create_organization(session, slug=f"b-{uuid.uuid4().hex[:8]}", name="Bench")
        actor = system_actor(organization.id, "bench")
        location = resources.create_location(
            session,
            actor=actor,
            data=LocationCreate(
                name="Bench", time_zone="America/New_York", opening_hours=hours("09:00", "17:00")
            ),
        )
        for index in range(3):
            resources.create_provider(
                session,
                actor=actor,
                data=ProviderCreate(
                    location_id=location.id,
                    name=f"P{index}",
                    skills=["neurotoxin"],
                    shifts=hours("09:00", "17:00"),
                ),
            )
            resources.create_room(
                session,
                actor=actor,
                data=RoomCreate(location_id=location.id, name=f"R{index}", room_type="injection"),
            )
        service = catalog.create_service(
            session,
            actor=actor,
            data=ServiceCreate(
                name="Botox",
                category="injectables",
                duration_minutes=30,
                required_skill="neurotoxin",
                room_types=["injection"],
                price_cents=45000,
                cost_cents=14000,
            ),
        )
        booker = clients.create_client(
            session,
            actor=actor,
            data=ClientCreate(first_name="Book", last_name="Er", email="booker@example.com"),
        )
        for index in range(120):
            client = clients.create_client(
                session,
                actor=actor,
                data=ClientCreate(first_name="Wait", last_name=f"{index}", email=f"w{index}@example.com"),
            )
            start = rng.randrange(9 * 4, 16 * 4) * 15
            end = min(17 * 60, start + rng.choice((45, 60, 90, 120)))
            scheduling.add_to_waitlist(
                session,
                actor=actor,
                data=WaitlistCreate(
                    client_id=client.id,
                    service_id=service.id,
                    location_id=location.id,
                    service_date=DAY,
                    window_starts_at=wall(start // 60, start % 60),
                    window_ends_at=wall(end // 60, end % 60),
                    priority=rng.choice(("member", "standard")),
                ),
            )
    return actor, location.id, service.id, booker.id


def measure(engine: Engine, seconds: float, shape: str) -> list[float]:
    """Latencies (s) of three bookings made while the day is solved in `shape`: "job" or "transaction"."""
    actor, location_id, service_id, client_id = crowded_day(engine)
    solve: Callable[[], object]
    if shape == "job":

        def solve() -> object:
            return scheduling.optimize_day(
                engine, actor=actor, location_id=location_id, service_date=DAY, time_limit_seconds=seconds
            )

    else:

        def solve() -> object:  # the day read, solved and stored in one writing transaction
            with unit_of_work(engine) as session:
                day = proposals.read_day(
                    session, actor=actor, location_id=location_id, service_date=DAY, max_moves=None
                )
                planned = proposals.plan_day(day, time_limit_seconds=seconds, max_moves=None)
                return proposals.store_proposal(session, actor=actor, planned=planned, created_by=actor.label)

    solver = threading.Thread(target=solve)
    solver.start()
    time.sleep(1.0)
    latencies = []
    for index in range(3):
        began = time.monotonic()
        with unit_of_work(engine) as session:
            scheduling.book_appointment(
                session,
                actor=actor,
                data=BookingRequest(
                    client_id=client_id,
                    service_id=service_id,
                    location_id=location_id,
                    starts_at=datetime(2026, 3, 4, 14, 0, tzinfo=UTC) + timedelta(minutes=30 * index),
                ),
            )
        latencies.append(time.monotonic() - began)
    solver.join()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    rows = []
    with clock.frozen_at(NOW), tempfile.TemporaryDirectory() as folder:
        for database in ("sqlite", "postgresql"):
            for shape in ("transaction", "job"):
                name = None
                if database == "sqlite":
                    url = f"sqlite:///{Path(folder) / f'{shape}.db'}"
                else:
                    name, url = fresh_postgres(args.postgres_admin_url)
                try:
                    upgrade(url)
                    engine = make_engine(url)
                    latencies = measure(engine, args.seconds, shape)
                    engine.dispose()
                finally:
                    if name is not None:
                        drop_postgres(args.postgres_admin_url, name)
                shown = ", ".join(f"{x:.2f}" for x in latencies)
                print(f"{database} {shape}: {shown} s")
                rows.append(f"| {database} | {shape} | {shown} |")
    today = datetime.now(UTC).date().isoformat()
    write_section(
        "booking-during-solve",
        f"""## Booking during a solve (`bench/booking_during_solve.py`)

A crowded day (3 providers and rooms, 120 clients waiting) is optimized for {args.seconds:g} s; one second
in, three bookings of another day are made one after the other, each a unit of work of its own. "job"
is how the day is optimized (ADR 15: no transaction open while solving); "transaction" reads, solves
and stores in one writing transaction, as before it. Machine: {machine()}; {today}.

| database | solve shape | booking latencies (s) |
| --- | --- | --- |
{chr(10).join(rows)}
""",
    )


if __name__ == "__main__":
    main()
