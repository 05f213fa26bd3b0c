"""32 clients race over HTTP for the same 10 slots: one booking per slot wins, the rest get 409, and no
provider, room or device ends up double-booked (checked over every reservation).

Run twice: against one server, and against four (each its own event loop and worker threads, as
`medspa serve --workers 4` has), so that bookings race inside one process and across processes."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import aliased

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.scheduling.models import Reservation
from medspa.security.actors import Actor
from tests.conftest import token_for
from tests.factories import make_client, make_location, make_provider, make_room, make_service
from tests.serving import running_server

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIRST = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # 09:00 in New York
CLIENTS = 32
SLOTS = [FIRST + timedelta(minutes=30 * i) for i in range(10)]


def double_bookings(engine: Engine, actor: Actor) -> int:
    """Pairs of active reservations of one resource whose times overlap, over the whole organization."""
    a, b = aliased(Reservation), aliased(Reservation)
    query = (
        select(func.count())
        .select_from(a)
        .join(b, (a.resource_id == b.resource_id) & (a.id < b.id))
        .where(
            a.starts_at < b.ends_at,
            b.starts_at < a.ends_at,
            a.is_active.is_(True),
            b.is_active.is_(True),
            a.organization_id == actor.organization_id,
        )
    )
    with unit_of_work(engine, write=False) as session:
        return int(session.execute(query).scalar_one())


@pytest.mark.slow
@pytest.mark.parametrize("servers", [1, 4], ids=["one-server", "four-servers"])
def test_racing_clients_book_each_slot_exactly_once(engine: Engine, owner: Actor, servers: int) -> None:
    with clock.frozen_at(NOW):
        with unit_of_work(engine) as session:
            location = make_location(session, actor=owner)
            make_provider(session, actor=owner, location_id=location.id)
            make_room(session, actor=owner, location_id=location.id)
            service = make_service(session, actor=owner, duration=30)
            clients = [make_client(session, actor=owner).id for _ in range(CLIENTS)]
        token = token_for(engine, owner)

        def race(index: int) -> list[int]:
            order = list(SLOTS)
            random.Random(index).shuffle(order)
            codes = []
            with httpx.Client(
                base_url=bases[index % servers], headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as http:
                for starts_at in order:
                    response = http.post(
                        "/api/v1/appointments",
                        json={
                            "client_id": str(clients[index]),
                            "service_id": str(service.id),
                            "location_id": str(location.id),
                            "starts_at": starts_at.isoformat(),
                        },
                    )
                    codes.append(response.status_code)
            return codes

        with ExitStack() as stack:
            bases = [stack.enter_context(running_server(engine)) for _ in range(servers)]
            for base in bases:
                # The web framework completes a route's set-up on its first match. The servers' apps
                # share their routers, and doing that from four threads at once races in pydantic's
                # warning filters; one process serves one app, so only this test needs the warm-up.
                warm = httpx.post(f"{base}/api/v1/appointments", json={})
                assert warm.status_code == 422, warm.text
            with ThreadPoolExecutor(CLIENTS) as pool:
                codes = [code for result in pool.map(race, range(CLIENTS)) for code in result]
            with httpx.Client(base_url=bases[0], headers={"Authorization": f"Bearer {token}"}) as http:
                booked = http.get("/api/v1/appointments", params={"limit": 500}).json()["items"]

    assert codes.count(201) == len(SLOTS)
    assert codes.count(409) == CLIENTS * len(SLOTS) - len(SLOTS)
    assert sorted(a["starts_at"] for a in booked) == sorted(
        s.isoformat().replace("+00:00", "Z") for s in SLOTS
    )
    assert double_bookings(engine, owner) == 0
