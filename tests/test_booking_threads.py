"""Where a booking route's unit of work runs (ADR 13): in one hop to a worker thread, never on the event
loop, so a booking that waits for a lock never stalls the requests that hold it."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from medspa import api as api_module
from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.scheduling import repository
from medspa.scheduling import service as scheduling
from medspa.security.actors import Actor
from tests.conftest import token_for
from tests.scheduling.test_availability import NOW, build
from tests.scheduling.test_booking import request, reservation_row
from tests.serving import running_server


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def places(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each authentication on the booking path: whether it ran on the event loop's thread."""
    seen: list[bool] = []
    original = api_module.authenticate

    def recording(request: Any, session: Session) -> Actor:
        seen.append(on_event_loop())
        return original(request, session)

    monkeypatch.setattr(api_module, "authenticate", recording)
    return seen


def cancel_unknown(client: TestClient) -> None:
    # Any booking-path route will do: this one authenticates, then answers 404.
    response = client.post(f"/api/v1/appointments/{uuid.uuid4()}/cancel", json={"reason": "test"})
    assert response.status_code == 404, response.text


def test_the_booking_path_never_runs_its_unit_of_work_on_the_event_loop(
    api: TestClient, places: list[bool]
) -> None:
    cancel_unknown(api)
    assert places == [False]


@pytest.mark.slow
def test_a_booking_waiting_on_a_dependency_style_writers_lock_does_not_stall_the_server(
    engine: Engine, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request written in the dependency style holds a provider's time, uncommitted, while a booking
    for that time arrives at the same server. The booking must wait for the lock without holding the
    event loop, which the writer needs to reach its commit; on the loop, both would wait for ever
    (as they did when the booking path ran there on PostgreSQL; ADR 8, superseded by ADR 13)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("seen through PostgreSQL's lock waits")
    at = NOW + timedelta(days=2, hours=15)  # 10:00 in New York
    with clock.frozen_at(NOW):
        clinic = build(engine, owner, shift=("09:00", "17:00"))
        with unit_of_work(engine) as session:
            earlier = scheduling.book_appointment(
                session, actor=owner, data=request(clinic, at - timedelta(hours=1))
            )
        token = token_for(engine, owner)
        holding, release = threading.Event(), threading.Event()
        original = clients.create_client

        def holding_the_provider(session: Session, **kwargs: Any) -> Any:
            repository.insert_reservations(
                session, [reservation_row(owner, clinic, earlier.id, "provider", clinic.provider_id, at)]
            )
            holding.set()
            release.wait(10)
            return original(session, **kwargs)

        monkeypatch.setattr(clients, "create_client", holding_the_provider)
        answers: dict[str, int] = {}
        headers = {"Authorization": f"Bearer {token}"}

        def post(name: str, base: str, path: str, body: dict[str, str]) -> None:
            try:
                answers[name] = httpx.post(base + path, json=body, headers=headers, timeout=15).status_code
            except httpx.HTTPError as error:
                answers[name] = -1
                raise AssertionError(f"{name}: {error!r}") from error

        with running_server(engine) as base:
            writer = threading.Thread(
                target=post, args=("writer", base, "/api/v1/clients", {"first_name": "Ada", "last_name": "L"})
            )
            booking = threading.Thread(
                target=post,
                args=(
                    "booking",
                    base,
                    "/api/v1/appointments",
                    {
                        "client_id": str(clinic.client_id),
                        "service_id": str(clinic.service_id),
                        "location_id": str(clinic.location_id),
                        "starts_at": at.isoformat(),
                        "provider_id": str(clinic.provider_id),
                    },
                ),
            )
            try:
                writer.start()
                assert holding.wait(10)
                booking.start()
                waiting_for_lock(engine)  # the booking now waits for the writer's lock
                release.set()
                writer.join(20)
                booking.join(20)
            finally:
                release.set()
                stalled = writer.is_alive() or booking.is_alive()
                if stalled:  # free the server, so that the test fails instead of hanging
                    terminate_lock_waiters(engine)
                    writer.join(20)
                    booking.join(20)
        assert not stalled, "the server stalled: a unit of work on the event loop waited for a lock"
        assert answers == {"writer": 201, "booking": 409}


def waiting_for_lock(engine: Engine) -> None:
    for _ in range(100):  # up to 10 s
        with engine.connect() as connection:
            waiting = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting:
            return
        time.sleep(0.1)
    raise AssertionError("the booking never waited for the writer's lock")


def terminate_lock_waiters(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
