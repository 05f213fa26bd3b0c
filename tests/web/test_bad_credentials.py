"""Bad credentials are refused with 401 (or, for a page, the sign-in page), and leave nothing behind:
malformed, unknown and revoked tokens, forged, tampered and signed-out session cookies."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from medspa.api import SESSION_COOKIE
from medspa.kit.db import unit_of_work
from medspa.kit.outbox import OutboxEvent
from medspa.security import service as security
from medspa.security.actors import Role
from medspa.security.models import ApiToken, WebSession
from medspa.security.schemas import TokenCreate
from tests.web.conftest import Demo

NEW_CLIENT = {"first_name": "Mallory", "last_name": "Intruder", "email": "mallory@example.com"}


def _footprint(engine: Engine) -> tuple[int, int, int]:
    """What a request could have written: events, sessions, token uses."""
    with unit_of_work(engine, write=False) as session:
        events = session.scalar(select(func.count()).select_from(OutboxEvent)) or 0
        sessions = session.scalar(select(func.count()).select_from(WebSession)) or 0
        used = session.scalar(select(func.count()).where(ApiToken.last_used_at.is_not(None))) or 0
    return events, sessions, used


def _token(engine: Engine, demo: Demo, role: Role = Role.OWNER) -> tuple[str, str]:
    with unit_of_work(engine) as session:
        issued = security.issue_token(session, actor=demo.actor, data=TokenCreate(name="t", role=role))
    return issued.token, str(issued.id)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer msp_",
        "Bearer msp_not-a-token",
        "Bearer " + "msp_" + "A" * 10_000,
        "Bearer msp_\u00e9\u00e8".encode("latin-1"),
        "Bearer msp_abc def",
        "Basic dXNlcjpwYXNz",
        "bearer",
        "Token msp_abc",
        "",
    ],
)
def test_a_malformed_or_unknown_token_is_401_and_writes_nothing(
    client: TestClient, engine: Engine, header: str | bytes
) -> None:
    before = _footprint(engine)
    read = client.get("/api/v1/clients", headers={"Authorization": header})
    write = client.post("/api/v1/clients", json=NEW_CLIENT, headers={"Authorization": header})
    assert (read.status_code, write.status_code) == (401, 401)
    assert read.json()["error"] == "unauthenticated"
    assert _footprint(engine) == before


def test_a_revoked_token_is_401_and_is_not_noted_as_used(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    owner, _ = _token(engine, demo_template)
    victim, victim_id = _token(engine, demo_template, Role.FRONT_DESK)
    victim_header = {"Authorization": f"Bearer {victim}"}
    assert client.get("/api/v1/clients?limit=1", headers=victim_header).status_code == 200
    revoked = client.delete(f"/api/v1/tokens/{victim_id}", headers={"Authorization": f"Bearer {owner}"})
    assert revoked.status_code == 204
    activity = client.app.state.activity  # type: ignore[attr-defined]
    activity.take()
    before = _footprint(engine)
    for method, body in (("GET", None), ("POST", NEW_CLIENT)):
        response = client.request(method, "/api/v1/clients", json=body, headers=victim_header)
        assert response.status_code == 401
    assert _footprint(engine) == before
    _, tokens = activity.take()
    assert str(victim_id) not in {str(t) for t in tokens}


@pytest.mark.parametrize(
    "cookie",
    ["", "x", "forged-session-value", "A" * 4000, "msp_\u00e9", "null", "%00", "'\"; DROP TABLE users; --"],
)
def test_a_forged_session_cookie_is_401_for_the_api_and_the_sign_in_page_for_pages(
    client: TestClient, engine: Engine, cookie: str
) -> None:
    before = _footprint(engine)
    sent = {"Cookie": f"{SESSION_COOKIE}={cookie}".encode("latin-1")}
    assert client.get("/api/v1/clients?limit=1", headers=sent).status_code == 401
    assert client.post("/api/v1/clients", json=NEW_CLIENT, headers=sent).status_code == 401
    page = client.get("/", follow_redirects=False, headers=sent)
    assert page.status_code in (303, 307)
    assert "/login" in page.headers["location"]
    assert _footprint(engine) == before


def test_a_tampered_or_signed_out_session_cookie_is_refused(signed_in: TestClient, engine: Engine) -> None:
    client = signed_in
    real = client.cookies.get(SESSION_COOKIE)
    assert real
    assert client.get("/api/v1/clients?limit=1").status_code == 200
    tampered = real[:-1] + ("A" if real[-1] != "A" else "B")
    client.cookies.clear()
    live, forged = {"Cookie": f"{SESSION_COOKIE}={real}"}, {"Cookie": f"{SESSION_COOKIE}={tampered}"}
    before = _footprint(engine)
    assert client.get("/api/v1/clients?limit=1", headers=forged).status_code == 401
    assert client.post("/api/v1/clients", json=NEW_CLIENT, headers=forged).status_code == 401
    assert _footprint(engine) == before
    assert client.get("/api/v1/clients?limit=1", headers=live).status_code == 200  # the real one still works
    client.post("/logout", follow_redirects=False, headers=live)
    before = _footprint(engine)
    # A copy of the cookie kept from before signing out opens nothing.
    assert client.get("/api/v1/clients?limit=1", headers=live).status_code == 401
    assert client.post("/api/v1/clients", json=NEW_CLIENT, headers=live).status_code == 401
    assert _footprint(engine) == before
