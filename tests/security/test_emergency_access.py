"""Break-glass: a user limited to some locations opens access to another one for at most four hours,
with a written reason; it is audited, shows on the managers' alert list, and ends on time."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from medspa.api import SESSION_COOKIE
from medspa.app import create_app
from medspa.kit.audit_trail import AuditEvent
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import ConflictError, NotFoundError, PermissionDeniedError
from medspa.scheduling import service as scheduling
from medspa.security import emergency
from medspa.security import service as security
from medspa.security.actors import Actor
from medspa.security.models import User
from medspa.security.permissions import Role
from medspa.security.schemas import EmergencyAccessOpen
from tests.security.test_attribute_rules import NOW, PASSWORD, Clinic, add_user, book, make_clinic

REASON = "client collapsed in the lobby; need her allergy notes"


@pytest.fixture
def clinic(engine: Engine, owner: Actor) -> Clinic:
    return make_clinic(engine, owner)


def manager_of(owner: Actor) -> Actor:
    return Actor(owner.organization_id, "user", uuid.uuid4(), Role.MANAGER, "manager@clinic.example")


def _signed_in_again(engine: Engine, user: Actor) -> Actor:
    """The user's actor as their next request builds it (grants open now included)."""
    with unit_of_work(engine, write=False) as session:
        row = session.get(User, user.actor_id)
        assert row is not None
        return security.user_actor(session, row)


def _open(engine: Engine, user: Actor, location: uuid.UUID, minutes: int = 60) -> uuid.UUID:
    with unit_of_work(engine) as session:
        data = EmergencyAccessOpen(location_id=location, reason=REASON, minutes=minutes)
        return emergency.open_access(session, actor=user, data=data, location_exists=True).id


def test_emergency_access_opens_another_location_until_it_expires(
    engine: Engine, owner: Actor, clinic: Clinic, test_clock: ManualClock
) -> None:
    first, second = clinic.locations
    test_clock.set(NOW)
    desk = add_user(engine, owner, Role.FRONT_DESK, location_ids=[second])
    appointment = book(engine, owner, clinic, 0, 0)  # at the first location, outside the desk's
    with unit_of_work(engine, write=False) as session, pytest.raises(NotFoundError):
        scheduling.get_appointment(session, actor=desk, appointment_id=appointment.id)

    grant = _open(engine, desk, first, minutes=240)
    opened = _signed_in_again(engine, desk)
    assert opened.location_ids == frozenset({first, second})
    with unit_of_work(engine, write=False) as session:
        assert (
            scheduling.get_appointment(session, actor=opened, appointment_id=appointment.id).id
            == appointment.id
        )
        row = session.scalar(
            select(AuditEvent).where(
                AuditEvent.organization_id == owner.organization_id, AuditEvent.action == "emergency_access"
            )
        )
        assert row is not None
        assert (row.actor, row.justification, row.resource_ids) == (desk.label, REASON, [str(first)])
        alerts = emergency.list_open(session, actor=manager_of(owner))
        assert [(a.id, a.user_label, a.reason) for a in alerts] == [(grant, desk.label, REASON)]

    test_clock.set(NOW + timedelta(hours=4, seconds=1))  # four hours later it is over
    ended = _signed_in_again(engine, desk)
    assert ended.location_ids == frozenset({second})
    with unit_of_work(engine, write=False) as session, pytest.raises(NotFoundError):
        scheduling.get_appointment(session, actor=ended, appointment_id=appointment.id)


def test_a_manager_or_the_holder_ends_it_early(engine: Engine, owner: Actor, clinic: Clinic) -> None:
    first, second = clinic.locations
    desk = add_user(engine, owner, Role.FRONT_DESK, location_ids=[second])
    other_desk = add_user(engine, owner, Role.FRONT_DESK, location_ids=[second])
    grant = _open(engine, desk, first)
    with unit_of_work(engine) as session, pytest.raises(PermissionDeniedError):
        emergency.close_access(session, actor=other_desk, access_id=grant)
    with unit_of_work(engine) as session:
        closed = emergency.close_access(session, actor=manager_of(owner), access_id=grant)
    assert closed.closed_by is not None
    assert _signed_in_again(engine, desk).location_ids == frozenset({second})


def test_emergency_access_is_refused_when_it_makes_no_sense(
    engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    first, second = clinic.locations
    everywhere = add_user(engine, owner, Role.FRONT_DESK)
    with pytest.raises(ConflictError, match="every location"):
        _open(engine, everywhere, first)
    desk = add_user(engine, owner, Role.FRONT_DESK, location_ids=[second])
    with pytest.raises(ConflictError, match="already"):
        _open(engine, desk, second)
    data = EmergencyAccessOpen(location_id=uuid.uuid4(), reason=REASON)
    with unit_of_work(engine) as session, pytest.raises(NotFoundError):
        emergency.open_access(session, actor=desk, data=data, location_exists=False)


def test_the_emergency_access_api(
    engine: Engine, owner: Actor, clinic: Clinic, test_clock: ManualClock
) -> None:
    first, second = clinic.locations
    test_clock.set(NOW)
    desk = add_user(engine, owner, Role.FRONT_DESK, location_ids=[second])
    with TestClient(create_app(engine, clock=test_clock)) as client:
        with unit_of_work(engine) as session:
            user = session.get(User, desk.actor_id)
            assert user is not None
            step = security.sign_in(
                session, organization_slug=clinic.slug, email=user.email, password=PASSWORD
            )
        client.cookies.set(SESSION_COOKIE, step.secret)
        origin = {"Origin": "http://testserver"}
        for bad in (
            {"location_id": str(first), "reason": "short"},
            {"location_id": str(first), "reason": REASON, "minutes": 241},
            {"location_id": str(first), "reason": REASON, "minutes": 0},
            {"location_id": "nope", "reason": REASON},
            {"location_id": str(first), "reason": "x\x00" * 10},
            {},
        ):
            assert client.post("/api/v1/emergency-access", json=bad, headers=origin).status_code == 422, bad
        assert (
            client.post(
                "/api/v1/emergency-access",
                json={"location_id": str(uuid.uuid4()), "reason": REASON},
                headers=origin,
            ).status_code
            == 404
        )
        assert client.get(f"/api/v1/locations/{first}").status_code == 404
        opened = client.post(
            "/api/v1/emergency-access", json={"location_id": str(first), "reason": REASON}, headers=origin
        )
        assert opened.status_code == 201, opened.text
        assert client.get(f"/api/v1/locations/{first}").status_code == 200
        assert client.get("/api/v1/emergency-access").status_code == 403  # the alert list is the managers'
        closed = client.post(f"/api/v1/emergency-access/{opened.json()['id']}/close", headers=origin)
        assert closed.status_code == 200
        assert client.get(f"/api/v1/locations/{first}").status_code == 404
