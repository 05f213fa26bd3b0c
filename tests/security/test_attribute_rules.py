"""The rules beside the matrix: providers change only their own appointments, staff see only their
locations, marketing never sees clinical fields, a contractor works only until their expiry, and
another organization's record is 404 like a missing one. On both databases."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from medspa.app import create_app
from medspa.clients import service as clients
from medspa.clients.schemas import ClientUpdate
from medspa.kit import clock
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, BookingRequest, RescheduleRequest, Status
from medspa.security import service as security
from medspa.security.actors import Actor, Role, system_actor
from medspa.security.models import Organization
from medspa.security.schemas import UserCreate
from tests.conftest import token_for
from tests.factories import make_client, make_location, make_provider, make_room, make_service

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TEN = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York
PASSWORD = "correct horse battery"


@dataclass
class Clinic:
    slug: str
    locations: list[uuid.UUID]
    providers: list[uuid.UUID]  # two at the first location
    service_id: uuid.UUID
    client_ids: list[uuid.UUID]


@pytest.fixture
def clinic(engine: Engine, owner: Actor) -> Clinic:
    return make_clinic(engine, owner)


def make_clinic(engine: Engine, owner: Actor) -> Clinic:
    """Two locations (two providers and two rooms at the first), a service and two clients."""
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        first, second = (make_location(session, actor=owner) for _ in range(2))
        providers = [make_provider(session, actor=owner, location_id=first.id).id for _ in range(2)]
        for _ in range(2):
            make_room(session, actor=owner, location_id=first.id)
        service = make_service(session, actor=owner, duration=60)
        client_ids = [make_client(session, actor=owner).id for _ in range(2)]
        slug = _slug(session, owner)
    return Clinic(slug, [first.id, second.id], providers, service.id, client_ids)


def add_user(engine: Engine, owner: Actor, role: Role, **fields: object) -> Actor:
    """A user of `role`, signed in: the actor their browser session carries."""
    email = f"{role.value}-{uuid.uuid4().hex[:8]}@clinic.example"
    with unit_of_work(engine) as session:
        security.create_user(
            session,
            actor=owner,
            data=UserCreate(email=email, display_name=role.value, role=role, password=PASSWORD, **fields),
        )
        slug = _slug(session, owner)
        step = security.sign_in(session, organization_slug=slug, email=email, password=PASSWORD)
        return security.authenticate_session(session, secret=step.secret)


def _slug(session: Session, owner: Actor) -> str:
    organization = session.get(Organization, owner.organization_id)
    assert organization is not None
    return organization.slug


def book(engine: Engine, owner: Actor, clinic: Clinic, provider: int, client: int) -> AppointmentRead:
    data = BookingRequest(
        client_id=clinic.client_ids[client],
        service_id=clinic.service_id,
        location_id=clinic.locations[0],
        starts_at=TEN,
        provider_id=clinic.providers[provider],
    )
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        return scheduling.book_appointment(session, actor=owner, data=data)


def status_of(engine: Engine, owner: Actor, appointment_id: uuid.UUID) -> Status:
    with unit_of_work(engine, write=False) as session:
        return scheduling.get_appointment(session, actor=owner, appointment_id=appointment_id).status


# --- providers change only their own appointments ------------------------------------------------------


def test_a_provider_cancels_their_own_appointment_but_not_another_providers(
    engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    mine, theirs = book(engine, owner, clinic, 0, 0), book(engine, owner, clinic, 1, 1)
    provider = add_user(engine, owner, Role.PROVIDER, provider_id=clinic.providers[0])
    assert provider.provider_id == clinic.providers[0]

    with clock.frozen_at(NOW), unit_of_work(engine) as session, pytest.raises(PermissionDeniedError):
        scheduling.cancel_appointment(session, actor=provider, appointment_id=theirs.id, reason="no")
    with clock.frozen_at(NOW), unit_of_work(engine) as session, pytest.raises(PermissionDeniedError):
        scheduling.check_in(session, actor=provider, appointment_id=theirs.id)
    assert status_of(engine, owner, theirs.id) is Status.BOOKED
    to_colleague = RescheduleRequest(starts_at=TEN + timedelta(hours=2), provider_id=clinic.providers[1])
    with clock.frozen_at(NOW), unit_of_work(engine) as session, pytest.raises(PermissionDeniedError):
        scheduling.reschedule_appointment(session, actor=provider, appointment_id=mine.id, data=to_colleague)
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        later = RescheduleRequest(starts_at=TEN + timedelta(hours=2))
        moved = scheduling.reschedule_appointment(session, actor=provider, appointment_id=mine.id, data=later)
    assert (moved.starts_at, moved.provider_id) == (TEN + timedelta(hours=2), clinic.providers[0])

    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        cancelled = scheduling.cancel_appointment(
            session, actor=provider, appointment_id=mine.id, reason="ill"
        )
    assert cancelled.status is Status.CANCELLED


def test_a_provider_neither_runs_nor_reads_the_optimizer_nor_books(
    engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    provider = add_user(engine, owner, Role.PROVIDER, provider_id=clinic.providers[0])
    with unit_of_work(engine) as session, pytest.raises(PermissionDeniedError):
        scheduling.request_optimization(
            session,
            actor=provider,
            location_id=clinic.locations[0],
            service_date=TEN.date(),
            time_limit_seconds=1,
            max_moves=None,
        )
    data = BookingRequest(
        client_id=clinic.client_ids[0],
        service_id=clinic.service_id,
        location_id=clinic.locations[0],
        starts_at=TEN,
    )
    with clock.frozen_at(NOW), unit_of_work(engine) as session, pytest.raises(PermissionDeniedError):
        scheduling.book_appointment(session, actor=provider, data=data)


def test_a_providers_token_changes_no_appointment(
    engine: Engine, owner: Actor, clinic: Clinic, test_clock: ManualClock
) -> None:
    """A token has no provider record of its own, so a provider's token may change no appointment."""
    appointment = book(engine, owner, clinic, 0, 0)
    with TestClient(create_app(engine, clock=test_clock)) as client:
        client.headers["Authorization"] = f"Bearer {token_for(engine, owner, Role.PROVIDER)}"
        response = client.post(f"/api/v1/appointments/{appointment.id}/cancel", json={"reason": "x"})
        assert response.status_code == 403
        assert client.get(f"/api/v1/appointments/{appointment.id}").status_code == 200
    assert status_of(engine, owner, appointment.id) is Status.BOOKED


# --- locations -----------------------------------------------------------------------------------------


def test_a_user_linked_to_a_location_sees_only_it(engine: Engine, owner: Actor, clinic: Clinic) -> None:
    first, second = clinic.locations
    desk = add_user(engine, owner, Role.FRONT_DESK, location_ids=[second])
    assert desk.location_ids == frozenset({second})
    appointment = book(engine, owner, clinic, 0, 0)  # at the first location
    with unit_of_work(engine, write=False) as session:
        assert [loc.id for loc in resources.list_locations(session, actor=desk).items] == [second]
        assert resources.get_location(session, actor=desk, location_id=second).id == second
        with pytest.raises(NotFoundError):
            resources.get_location(session, actor=desk, location_id=first)
        with pytest.raises(NotFoundError):
            scheduling.get_appointment(session, actor=desk, appointment_id=appointment.id)
        assert scheduling.list_appointments(session, actor=desk).total == 0
    with clock.frozen_at(NOW), unit_of_work(engine) as session, pytest.raises(NotFoundError):
        scheduling.cancel_appointment(session, actor=desk, appointment_id=appointment.id, reason="x")
    assert status_of(engine, owner, appointment.id) is Status.BOOKED


def test_a_user_linked_to_no_location_sees_every_one(engine: Engine, owner: Actor, clinic: Clinic) -> None:
    desk = add_user(engine, owner, Role.FRONT_DESK)
    assert desk.location_ids is None
    with unit_of_work(engine, write=False) as session:
        assert {loc.id for loc in resources.list_locations(session, actor=desk).items} == set(
            clinic.locations
        )


def test_a_user_cannot_be_linked_to_another_organizations_location(
    engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    with unit_of_work(engine) as session, pytest.raises(NotFoundError):
        security.create_user(
            session,
            actor=owner,
            data=UserCreate(
                email="x@clinic.example", display_name="x", role=Role.FRONT_DESK, location_ids=[uuid.uuid4()]
            ),
        )


# --- marketing -----------------------------------------------------------------------------------------


def test_marketing_sees_clients_without_their_clinical_fields(
    engine: Engine, owner: Actor, clinic: Clinic, api: TestClient
) -> None:
    client_id = clinic.client_ids[0]
    with unit_of_work(engine) as session:
        clients.update_client(
            session,
            actor=owner,
            client_id=client_id,
            data=ClientUpdate(
                date_of_birth=date(1990, 5, 1), notes="allergic to lidocaine", preferences={"a": 1}
            ),
        )
    api.headers["Authorization"] = f"Bearer {token_for(engine, owner, Role.MARKETING)}"
    seen = api.get(f"/api/v1/clients/{client_id}").json()
    assert (seen["date_of_birth"], seen["preferences"], seen["notes"]) == (None, None, None)
    assert seen["first_name"] == "Client"
    listed = api.get("/api/v1/clients").json()["items"]
    assert {(c["date_of_birth"], c["notes"]) for c in listed} == {(None, None)}
    api.headers["Authorization"] = f"Bearer {token_for(engine, owner, Role.FRONT_DESK)}"
    seen = api.get(f"/api/v1/clients/{client_id}").json()
    assert (seen["date_of_birth"], seen["notes"]) == ("1990-05-01", "allergic to lidocaine")


# --- contractors ---------------------------------------------------------------------------------------


def test_a_contractor_works_until_their_expiry_and_not_after(
    engine: Engine, owner: Actor, clinic: Clinic, test_clock: ManualClock
) -> None:
    start = datetime.now(UTC)
    email = "temp@clinic.example"
    with unit_of_work(engine) as session:
        security.create_user(
            session,
            actor=owner,
            data=UserCreate(
                email=email,
                display_name="temp",
                role=Role.CONTRACTOR,
                password=PASSWORD,
                expires_at=start + timedelta(hours=1),
            ),
        )
        slug = _slug(session, owner)
        secret = security.sign_in(session, organization_slug=slug, email=email, password=PASSWORD).secret
        assert security.authenticate_session(session, secret=secret).role is Role.CONTRACTOR
    with clock.frozen_at(start + timedelta(hours=1, seconds=1)), unit_of_work(engine) as session:
        with pytest.raises(AuthenticationError):
            security.authenticate_session(session, secret=secret)
        with pytest.raises(AuthenticationError):
            security.sign_in(session, organization_slug=slug, email=email, password=PASSWORD)


def test_a_contractor_needs_an_expiry() -> None:
    with pytest.raises(ValueError, match="expires_at"):
        UserCreate(email="t@c.example", display_name="t", role=Role.CONTRACTOR)


def test_an_expired_token_is_refused(engine: Engine, owner: Actor, test_clock: ManualClock) -> None:
    token = token_for(engine, owner, Role.CONTRACTOR, days=1)
    with TestClient(create_app(engine, clock=test_clock)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        assert client.get("/api/v1/services").status_code == 200
        test_clock.set(datetime.now(UTC) + timedelta(days=1, minutes=1))
        response = client.get("/api/v1/services")
    assert response.status_code == 401
    assert response.json()["detail"] == "token expired"


# --- other organizations -------------------------------------------------------------------------------


def test_another_organizations_record_is_404_like_a_missing_one(
    engine: Engine, owner: Actor, clinic: Clinic, test_clock: ManualClock
) -> None:
    appointment = book(engine, owner, clinic, 0, 0)
    with unit_of_work(engine) as session:
        other = security.create_organization(session, slug=f"o-{uuid.uuid4().hex[:12]}", name="Other")
    stranger = token_for(engine, system_actor(other.id, "test"), Role.OWNER)
    with TestClient(create_app(engine, clock=test_clock)) as client:
        client.headers["Authorization"] = f"Bearer {stranger}"
        for path in (
            f"/api/v1/clients/{clinic.client_ids[0]}",
            f"/api/v1/appointments/{appointment.id}",
            f"/api/v1/locations/{clinic.locations[0]}",
            f"/api/v1/providers/{clinic.providers[0]}",
            f"/api/v1/services/{clinic.service_id}",
        ):
            foreign, missing = client.get(path), client.get(path.rsplit("/", 1)[0] + f"/{uuid.uuid4()}")
            assert (foreign.status_code, missing.status_code) == (404, 404), path
            assert foreign.json()["error"] == missing.json()["error"] == "not_found"
        cancel = client.post(f"/api/v1/appointments/{appointment.id}/cancel", json={"reason": "x"})
        assert cancel.status_code == 404
    assert status_of(engine, owner, appointment.id) is Status.BOOKED
