"""Where a booking route's unit of work runs (ADR 8): on the event loop itself on PostgreSQL, in a
worker thread on SQLite, while a `SessionDep` writer of the process is open, or when turned off."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from medspa import api as api_module
from medspa.app import create_app
from medspa.clients import service as clients
from medspa.security.actors import Actor
from tests.conftest import token_for


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


def test_the_booking_path_runs_on_the_event_loop_only_on_postgresql(
    engine: Engine, api: TestClient, places: list[bool]
) -> None:
    cancel_unknown(api)
    assert places == [engine.dialect.name == "postgresql"]


def test_it_uses_a_thread_while_a_spanning_writer_of_the_process_is_open(
    api: TestClient, places: list[bool]
) -> None:
    with api_module.spanning_writers.open():
        cancel_unknown(api)
    cancel_unknown(api)
    assert places[0] is False


def test_it_can_be_turned_off(
    engine: Engine, owner: Actor, places: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(api_module.INLINE_VARIABLE, "0")
    with TestClient(create_app(engine)) as client:
        client.headers["Authorization"] = f"Bearer {token_for(engine, owner)}"
        cancel_unknown(client)
    assert places == [False]


def test_a_dependency_style_writer_counts_as_spanning_until_it_has_committed(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    during: list[int] = []
    original = clients.create_client

    def recording(session: Session, **kwargs: Any) -> Any:
        during.append(api_module.spanning_writers.count)
        return original(session, **kwargs)

    monkeypatch.setattr(clients, "create_client", recording)
    response = api.post("/api/v1/clients", json={"first_name": "Ada", "last_name": "Lovelace"})
    assert response.status_code == 201, response.text
    assert during == [1]
    assert api_module.spanning_writers.count == 0
    assert api.get("/api/v1/clients").status_code == 200
    assert api_module.spanning_writers.count == 0
