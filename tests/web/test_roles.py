"""Each demo role's pages offer exactly what the permission matrix lets the role do: no button that
would answer 403, and every refused action refused on the server too."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.demo.seed import DEMO_PASSWORD, DEMO_TOTP_SECRET, STAFF
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.resources import service as resources
from medspa.scheduling.schemas import Status
from medspa.security import totp
from medspa.security.permissions import Role, allows
from tests.web.conftest import Demo, appointments_on, first_day_with_a_waitlist

ROLES = {role: email for email, _name, role in STAFF}
CANCEL = re.compile(r'hx-post="/appointments/([0-9a-f-]{36})/cancel"')
CHECK_IN = re.compile(r'hx-post="/appointments/([0-9a-f-]{36})/check_in"')


def sign_in(client: TestClient, role: Role) -> TestClient:
    response = client.post(
        "/login",
        data={"organization": "demo", "email": ROLES[role], "password": DEMO_PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303
    if response.headers["location"] == "/login/code":
        code = totp.code_at(DEMO_TOTP_SECRET, totp.step_at(clock.now()))
        response = client.post("/login/code", data={"code": code}, follow_redirects=False)
        assert response.status_code == 303
    assert response.headers["location"] == "/"
    return client


def marsh_id(engine: Engine, demo: Demo) -> object:
    with unit_of_work(engine, write=False) as session:
        providers = resources.list_providers(session, actor=demo.actor, location_id=demo.location_id).items
    return next(p.id for p in providers if p.name == "Dr. Elena Marsh")


def test_every_role_has_a_demo_user() -> None:
    assert set(ROLES) == set(Role)


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.MARKETING])
def test_the_day_view_offers_exactly_what_the_role_may_do(
    client: TestClient, engine: Engine, demo_template: Demo, role: Role
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    sign_in(client, role)
    html = client.get(f"/locations/{demo_template.location_id}/day?date={day.isoformat()}").text

    assert ('id="booking"' in html) == allows(role, "appointments", "book")
    assert ('id="new-client"' in html) == allows(role, "clients", "create")
    assert ('id="optimize"' in html) == allows(role, "optimizer", "run")

    live = [
        a
        for a in appointments_on(engine, demo_template, day)
        if a.status in (Status.BOOKED, Status.CONFIRMED)
    ]
    assert live, "the demo day has bookings to act on"
    own = {str(a.id) for a in live if a.provider_id == marsh_id(engine, demo_template)}
    cancellable = set(CANCEL.findall(html))
    if not allows(role, "appointments", "cancel"):
        assert cancellable == set()
    elif role is Role.PROVIDER:
        assert cancellable == own
    else:
        assert cancellable >= {str(a.id) for a in live}
    if allows(role, "appointments", "check_in") and role is not Role.PROVIDER:
        assert set(CHECK_IN.findall(html)) == {str(a.id) for a in live}


def test_a_provider_is_refused_another_providers_appointment_and_the_optimizer(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    marsh = marsh_id(engine, demo_template)
    live = [a for a in appointments_on(engine, demo_template, day) if a.status is Status.BOOKED]
    theirs = next(a for a in live if a.provider_id != marsh)
    sign_in(client, Role.PROVIDER)

    refused = client.post(f"/appointments/{theirs.id}/cancel", data={"reason": "not mine"})
    assert refused.status_code == 403
    optimize = client.post(
        f"/locations/{demo_template.location_id}/proposals", data={"date": day.isoformat()}
    )
    assert optimize.status_code == 403
    new_client = client.post(
        f"/locations/{demo_template.location_id}/clients", data={"first_name": "A", "last_name": "B"}
    )
    assert new_client.status_code == 403
    after = {a.id: a.status for a in appointments_on(engine, demo_template, day)}
    assert after[theirs.id] is Status.BOOKED


def test_marketing_has_no_day_view_and_is_told_what_it_may_use(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    sign_in(client, Role.MARKETING)
    home = client.get("/")
    assert home.status_code == 200
    assert "has no day view" in home.text
    assert "clients.read" in home.text
    assert "clients.read_clinical" not in home.text
    day = client.get(f"/locations/{demo_template.location_id}/day")
    assert day.status_code == 403
