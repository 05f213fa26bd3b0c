"""On PostgreSQL the database itself refuses overlapping active reservations of one resource."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import Reservation
from medspa.scheduling.schemas import BookingRequest
from medspa.security.actors import Actor
from tests.scheduling.test_availability import NOW, build

TEN = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


def test_an_overlapping_reservation_written_behind_the_service_is_refused(
    engine: Engine, owner: Actor
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the exclusion constraint exists on PostgreSQL; SQLite serializes bookings instead")
    clinic = build(engine, owner)
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        appointment = scheduling.book_appointment(
            session,
            actor=owner,
            data=BookingRequest(
                client_id=clinic.client_id,
                service_id=clinic.service_id,
                location_id=clinic.location_id,
                starts_at=TEN,
            ),
        )
    overlapping = Reservation(
        id=uuid.uuid4(),
        organization_id=owner.organization_id,
        appointment_id=appointment.id,
        location_id=clinic.location_id,
        resource_kind="provider",
        resource_id=clinic.provider_id,
        starts_at=TEN + timedelta(minutes=59),
        ends_at=TEN + timedelta(minutes=90),
    )
    with unit_of_work(engine) as session:
        session.add(overlapping)
        with pytest.raises(IntegrityError, match="ex_reservations_no_overlap"):
            session.flush()
        session.rollback()


def test_a_booking_that_loses_a_room_to_a_concurrent_one_takes_another_room(
    engine: Engine, owner: Actor
) -> None:
    """Transaction A books and holds its transaction open; B books the same time with another provider.
    B cannot see A's room as taken until A commits; it must end up in the other room, not fail."""
    import threading
    import time

    from tests.factories import make_client, make_provider, make_room

    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        second_provider = make_provider(session, actor=owner, location_id=clinic.location_id)
        second_room = make_room(session, actor=owner, location_id=clinic.location_id)
        second_client = make_client(session, actor=owner)
    request_a = BookingRequest(
        client_id=clinic.client_id,
        service_id=clinic.service_id,
        location_id=clinic.location_id,
        starts_at=TEN,
        provider_id=clinic.provider_id,
    )
    request_b = request_a.model_copy(
        update={"provider_id": second_provider.id, "client_id": second_client.id}
    )
    outcome: dict[str, object] = {}

    def book_b() -> None:
        try:
            with clock.frozen_at(NOW), unit_of_work(engine) as session:
                outcome["b"] = scheduling.book_appointment(session, actor=owner, data=request_b)
        except Exception as error:  # reported to the main thread through `outcome`
            outcome["b"] = error

    with clock.frozen_at(NOW):
        with unit_of_work(engine) as session:
            a = scheduling.book_appointment(session, actor=owner, data=request_a)
            racer = threading.Thread(target=book_b)
            racer.start()
            time.sleep(0.5)  # B is now waiting: on the exclusion constraint, or on SQLite's write lock
        racer.join(timeout=30)
    b = outcome["b"]
    assert not isinstance(b, Exception), b
    assert a.room_id == clinic.room_id
    assert b.room_id == second_room.id  # type: ignore[attr-defined]
    assert b.provider_id == second_provider.id  # type: ignore[attr-defined]
