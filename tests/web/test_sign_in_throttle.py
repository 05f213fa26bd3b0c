"""The sign-in throttle: a few failures per account and per network address in a window, then 429 with
Retry-After, refused before any password hash is computed; a success clears the account's failures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine

from medspa.app import create_app
from medspa.kit.clock import ManualClock
from medspa.security import service as security
from tests.hashing import CountingHasher
from tests.web.conftest import FRONT_DESK, ORIGIN

RIGHT = "medspa-demo"
START = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher(security._hasher)
    monkeypatch.setattr(security, "_hasher", counting)
    return counting


@pytest.fixture
def client(engine: Engine, test_clock: ManualClock) -> Iterator[TestClient]:
    """A browser-like client of the demo clinic whose application tells time by the test's clock."""
    with TestClient(create_app(engine, clock=test_clock), headers={"Origin": ORIGIN}) as browser:
        yield browser


def sign_in(
    client: TestClient, password: str, email: str = FRONT_DESK, organization: str = "demo"
) -> Response:
    data = {"organization": organization, "email": email, "password": password}
    return client.post("/login", data=data, follow_redirects=False)


def test_after_five_failures_the_account_waits_and_no_hash_is_computed(
    client: TestClient, test_clock: ManualClock, hashes: CountingHasher
) -> None:
    test_clock.set(START)
    assert [sign_in(client, f"wrong-{i}").status_code for i in range(security.ACCOUNT_FAILURES)] == [401] * 5
    assert hashes.computed == 5
    test_clock.set(START + timedelta(minutes=5))
    refused = sign_in(client, RIGHT)  # even the right password waits
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(10 * 60)  # the first failure leaves the window then
    assert "too many failed sign-ins; try again in 10 minutes" in refused.text
    assert "set-cookie" not in refused.headers
    assert hashes.computed == 5  # refused before any hash
    assert sign_in(client, RIGHT, email="manager@lumen.example").status_code == 303  # another account
    test_clock.set(START + timedelta(minutes=15, seconds=1))
    assert sign_in(client, RIGHT).status_code == 303


def test_a_success_clears_the_accounts_failures(client: TestClient, test_clock: ManualClock) -> None:
    test_clock.set(START)
    assert [sign_in(client, "wrong").status_code for _ in range(4)] == [401] * 4
    assert sign_in(client, RIGHT).status_code == 303
    assert [sign_in(client, "wrong").status_code for _ in range(5)] == [401] * 5
    assert sign_in(client, "wrong").status_code == 429


def test_one_address_trying_many_accounts_is_held_back_too(
    client: TestClient, test_clock: ManualClock, hashes: CountingHasher
) -> None:
    test_clock.set(START)
    tried = [
        sign_in(client, "guess", email=f"someone-{i}@lumen.example").status_code
        for i in range(security.ADDRESS_FAILURES)
    ]
    assert tried == [401] * security.ADDRESS_FAILURES
    assert sign_in(client, RIGHT).status_code == 429  # from this address, any account waits
    assert hashes.computed == 0  # unknown accounts: nothing to hash, and nothing is hashed after


@pytest.mark.parametrize(
    ("organization", "email"),
    [
        ("demo\x00", FRONT_DESK),
        ("demo", "front\x00desk@lumen.example"),
        ("d" * 5000, FRONT_DESK),
        ("demo", "e" * 100_000),
    ],
)
def test_unusable_credentials_are_a_failure_like_any_other(
    client: TestClient, test_clock: ManualClock, organization: str, email: str
) -> None:
    """Refused as a failure (401), or before the form is read for text no database can store (422)."""
    test_clock.set(START)
    assert sign_in(client, RIGHT, email=email, organization=organization).status_code in (401, 422)
