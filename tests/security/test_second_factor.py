"""The TOTP second factor: RFC 6238's codes, required of owners and managers, each code used once, a
pending sign-in that expires; and the two-step sign-in page, which answers bad input with 4xx."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from medspa.app import create_app
from medspa.kit import clock
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import AuthenticationError
from medspa.security import service as security
from medspa.security import totp
from medspa.security.actors import Actor, Role
from medspa.security.models import Organization, WebSession
from medspa.security.schemas import UserCreate

PASSWORD = "correct horse battery"
SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # RFC 6238's "12345678901234567890"
ORIGIN = "http://testserver"


@pytest.mark.parametrize(
    ("unix_time", "code"),
    [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")],
)
def test_codes_are_rfc_6238s(unix_time: int, code: str) -> None:
    assert totp.code_at(SECRET, totp.step_at(datetime.fromtimestamp(unix_time, UTC))) == code


def test_a_code_of_the_step_before_or_after_is_accepted_and_no_further() -> None:
    now = datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)
    step = totp.step_at(now)
    for offset, expected in [(-2, None), (-1, step - 1), (0, step), (1, step + 1), (2, None)]:
        assert totp.matching_step(SECRET, totp.code_at(SECRET, step + offset), now, after=None) == expected


@pytest.mark.parametrize("text", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "\x00" * 6, "9" * 100_000])
def test_text_that_is_not_six_digits_matches_nothing(text: str) -> None:
    assert totp.matching_step(SECRET, text, datetime.now(UTC), after=None) is None


def slug_of(engine: Engine, owner: Actor) -> str:
    with unit_of_work(engine, write=False) as session:
        organization = session.get(Organization, owner.organization_id)
        assert organization is not None
        return organization.slug


def add_user(engine: Engine, owner: Actor, role: Role, *, enrol: bool) -> str:
    email = f"{role.value}-{uuid.uuid4().hex[:8]}@clinic.example"
    with unit_of_work(engine) as session:
        security.create_user(
            session,
            actor=owner,
            data=UserCreate(email=email, display_name=role.value, role=role, password=PASSWORD),
        )
        if enrol:
            security.enrol_totp(session, actor=owner, email=email, secret=SECRET)
    return email


def sessions_of(engine: Engine, owner: Actor) -> int:
    with unit_of_work(engine, write=False) as session:
        query = select(func.count()).where(WebSession.organization_id == owner.organization_id)
        return int(session.scalar(query) or 0)


def test_an_owner_without_a_second_factor_cannot_sign_in(engine: Engine, owner: Actor) -> None:
    email = add_user(engine, owner, Role.OWNER, enrol=False)
    with unit_of_work(engine) as session, pytest.raises(AuthenticationError, match="second factor"):
        security.sign_in(session, organization_slug=slug_of(engine, owner), email=email, password=PASSWORD)
    assert sessions_of(engine, owner) == 0


def test_front_desk_signs_in_with_a_password_alone(engine: Engine, owner: Actor) -> None:
    email = add_user(engine, owner, Role.FRONT_DESK, enrol=False)
    with unit_of_work(engine) as session:
        step = security.sign_in(
            session, organization_slug=slug_of(engine, owner), email=email, password=PASSWORD
        )
    assert not step.needs_code
    assert sessions_of(engine, owner) == 1


def test_a_code_signs_in_once_and_a_wrong_or_replayed_one_does_not(engine: Engine, owner: Actor) -> None:
    email = add_user(engine, owner, Role.MANAGER, enrol=True)
    slug = slug_of(engine, owner)
    now = datetime.now(UTC)
    code = totp.code_at(SECRET, totp.step_at(now))
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    with clock.frozen_at(now), unit_of_work(engine) as session:
        pending = security.sign_in(session, organization_slug=slug, email=email, password=PASSWORD)
        assert pending.needs_code
        with pytest.raises(AuthenticationError, match="wrong"):
            security.confirm_sign_in(session, pending=pending.secret, code=wrong)
    assert sessions_of(engine, owner) == 0
    with clock.frozen_at(now), unit_of_work(engine) as session:
        cookie = security.confirm_sign_in(session, pending=pending.secret, code=code)
        assert security.authenticate_session(session, secret=cookie).role is Role.MANAGER
    assert sessions_of(engine, owner) == 1

    with clock.frozen_at(now + timedelta(seconds=5)), unit_of_work(engine) as session:
        again = security.sign_in(session, organization_slug=slug, email=email, password=PASSWORD)
        with pytest.raises(AuthenticationError, match="already used"):
            security.confirm_sign_in(session, pending=again.secret, code=code)
        with pytest.raises(AuthenticationError, match="expired"):  # the first pending sign-in is spent
            security.confirm_sign_in(session, pending=pending.secret, code=code)
    assert sessions_of(engine, owner) == 1


def test_a_pending_sign_in_expires(engine: Engine, owner: Actor) -> None:
    email = add_user(engine, owner, Role.OWNER, enrol=True)
    start = datetime.now(UTC)
    with clock.frozen_at(start), unit_of_work(engine) as session:
        pending = security.sign_in(
            session, organization_slug=slug_of(engine, owner), email=email, password=PASSWORD
        )
    later = start + timedelta(minutes=security.PENDING_MINUTES, seconds=1)
    with (
        clock.frozen_at(later),
        unit_of_work(engine) as session,
        pytest.raises(AuthenticationError, match="expired"),
    ):
        security.confirm_sign_in(
            session, pending=pending.secret, code=totp.code_at(SECRET, totp.step_at(later))
        )
    assert sessions_of(engine, owner) == 0


# --- the pages -----------------------------------------------------------------------------------------


@pytest.fixture
def browser(engine: Engine, test_clock: ManualClock) -> TestClient:
    return TestClient(create_app(engine, clock=test_clock), headers={"Origin": ORIGIN})


def test_an_owner_with_only_a_password_reaches_no_page(
    engine: Engine, owner: Actor, browser: TestClient
) -> None:
    email = add_user(engine, owner, Role.OWNER, enrol=True)
    with browser:
        answer = browser.post(
            "/login",
            data={"organization": slug_of(engine, owner), "email": email, "password": PASSWORD},
            follow_redirects=False,
        )
        assert (answer.status_code, answer.headers["location"]) == (303, "/login/code")
        home = browser.get("/", follow_redirects=False)
        assert (home.status_code, home.headers["location"]) == (303, "/login")
        assert browser.get("/api/v1/services").status_code == 401
        assert "Enter the 6-digit code" in browser.get("/login/code").text

        code = totp.code_at(SECRET, totp.step_at(datetime.now(UTC)))
        signed = browser.post("/login/code", data={"code": code}, follow_redirects=False)
        assert (signed.status_code, signed.headers["location"]) == (303, "/")
        assert browser.get("/api/v1/services").status_code == 200


@pytest.mark.parametrize("code", ["", "\x00", "\x00" * 6, "1" * 100_000, "12 34 56", "<b>1</b>"])
def test_bad_codes_answer_4xx_and_open_no_session(
    engine: Engine, owner: Actor, browser: TestClient, code: str
) -> None:
    email = add_user(engine, owner, Role.OWNER, enrol=True)
    with browser:
        browser.post(
            "/login",
            data={"organization": slug_of(engine, owner), "email": email, "password": PASSWORD},
            follow_redirects=False,
        )
        answer = browser.post("/login/code", data={"code": code}, follow_redirects=False)
    assert 400 <= answer.status_code < 500
    assert sessions_of(engine, owner) == 0


@pytest.mark.parametrize("pending", ["", "x" * 4000, "not-a-pending-sign-in"])
def test_a_code_without_a_real_pending_sign_in_opens_nothing(
    engine: Engine, owner: Actor, browser: TestClient, pending: str
) -> None:
    with browser:
        browser.cookies.set("medspa_pending_sign_in", pending, path="/login")
        answer = browser.post("/login/code", data={"code": "123456"}, follow_redirects=False)
    assert answer.status_code in (303, 401)
    assert sessions_of(engine, owner) == 0
