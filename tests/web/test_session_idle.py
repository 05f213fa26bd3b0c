"""A browser session ends 30 minutes after its last use and 12 hours after sign-in; its last use is kept
by each server process and written every half minute, so another process counts idleness from it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.app import create_app
from medspa.kit.clock import ManualClock
from medspa.security import activity
from tests.web.conftest import FRONT_DESK, ORIGIN

START = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)


def browser(engine: Engine, test_clock: ManualClock) -> TestClient:
    """A browser-like client of one server process (an application of its own) of the demo clinic."""
    return TestClient(create_app(engine, clock=test_clock), headers={"Origin": ORIGIN})


@pytest.fixture
def process(engine: Engine, test_clock: ManualClock) -> Iterator[TestClient]:
    with browser(engine, test_clock) as client:
        yield client


def sign_in(client: TestClient) -> str:
    data = {"organization": "demo", "email": FRONT_DESK, "password": "medspa-demo"}
    response = client.post("/login", data=data, follow_redirects=False)
    assert response.status_code == 303
    return response.cookies["medspa_session"]


def signed_in(client: TestClient, cookie: str) -> bool:
    """Whether the cookie still opens the pages (the home page sends a signed-out browser to /login)."""
    client.cookies.set("medspa_session", cookie)
    answer = client.get("/", follow_redirects=False)
    return answer.headers["location"] != "/login"


def test_a_session_in_use_stays_open_and_ends_after_thirty_idle_minutes(
    process: TestClient, test_clock: ManualClock
) -> None:
    test_clock.set(START)
    cookie = sign_in(process)
    for minutes in (29, 58, 87):  # each use 29 minutes after the one before
        test_clock.set(START + timedelta(minutes=minutes))
        assert signed_in(process, cookie)
    test_clock.set(START + timedelta(minutes=87 + 30))
    assert not signed_in(process, cookie)
    test_clock.set(START + timedelta(minutes=87 + 31))
    assert not signed_in(process, cookie)  # and it stays ended


def test_a_session_ends_twelve_hours_after_sign_in_however_busy(
    process: TestClient, test_clock: ManualClock
) -> None:
    test_clock.set(START)
    cookie = sign_in(process)
    for step in range(1, 36):  # a use every 20 minutes, 11 h 40 min in all
        test_clock.set(START + timedelta(minutes=20 * step))
        assert signed_in(process, cookie)
    test_clock.set(START + timedelta(hours=12))
    assert not signed_in(process, cookie)


@pytest.mark.parametrize("written", [True, False])
def test_another_process_counts_idleness_from_the_written_last_use(
    engine: Engine, test_clock: ManualClock, written: bool
) -> None:
    test_clock.set(START)
    with browser(engine, test_clock) as first, browser(engine, test_clock) as second:
        cookie = sign_in(first)
        test_clock.set(START + timedelta(minutes=20))
        assert signed_in(first, cookie)
        if written:  # what the first process's flusher does every half minute
            assert activity.flush(engine, first.app.state.activity) >= 1
        test_clock.set(START + timedelta(minutes=45))  # 25 minutes after the last use, 45 after sign-in
        assert signed_in(second, cookie) == written
