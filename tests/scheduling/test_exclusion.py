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
