"""Holds, bookings, reschedules and the lifecycle, with their reservations, history and outbox events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, func, select

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import (
    ConflictError,
    IllegalTransitionError,
    ResourceBusyError,
    ValidationFailedError,
)
from medspa.kit.ids import new_id
from medspa.kit.outbox import OutboxEvent
from medspa.scheduling import repository
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import Appointment, Reservation
from medspa.scheduling.schemas import BookingRequest, HoldRequest, RescheduleRequest, Status
from medspa.security.actors import Actor
from tests.factories import make_client, make_device, make_provider, make_room
from tests.scheduling.test_availability import NOW, Clinic, build

TEN = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York


@pytest.fixture(autouse=True)
def frozen_clock() -> object:
    with clock.frozen_at(NOW):
        yield


def request(clinic: Clinic, starts_at: datetime = TEN, **extra: object) -> BookingRequest:
    return BookingRequest(
        client_id=clinic.client_id,
        service_id=clinic.service_id,
        location_id=clinic.location_id,
        starts_at=starts_at,
        **extra,  # type: ignore[arg-type]
    )


def count(engine: Engine, model: type, actor: Actor) -> int:
    with unit_of_work(engine, write=False) as session:
        return (
            session.scalar(
                select(func.count()).select_from(model).where(model.organization_id == actor.organization_id)
            )
            or 0
        )


def reservations(engine: Engine, appointment_id: object) -> dict[str, tuple[datetime, datetime, bool]]:
    with unit_of_work(engine, write=False) as session:
        # An active reservation of a kind wins over the inactive ones a reschedule left behind.
        rows = session.scalars(
            select(Reservation)
            .where(Reservation.appointment_id == appointment_id)
            .order_by(Reservation.is_active, Reservation.starts_at)
        )
        return {r.resource_kind: (r.starts_at, r.ends_at, r.is_active) for r in rows}


def reservation_row(
    owner: Actor, clinic: Clinic, appointment_id: UUID, kind: str, resource_id: UUID, starts_at: datetime
) -> dict[str, Any]:
    """An active reservation row for `repository.insert_reservations`, one hour long unless changed."""
    return {
        "id": new_id(),
        "organization_id": owner.organization_id,
        "appointment_id": appointment_id,
        "location_id": clinic.location_id,
        "resource_kind": kind,
        "resource_id": resource_id,
        "starts_at": starts_at,
        "ends_at": starts_at + timedelta(hours=1),
        "is_active": True,
    }


def topics(engine: Engine, actor: Actor) -> list[str]:
    with unit_of_work(engine, write=False) as session:
        query = select(OutboxEvent.topic).where(OutboxEvent.organization_id == actor.organization_id)
        return list(session.scalars(query.order_by(OutboxEvent.id)))


def test_an_expired_hold_is_released_by_the_sweep_not_by_an_unrelated_booking(
    engine: Engine, owner: Actor
) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        hold = scheduling.hold_slot(
            session, actor=owner, data=HoldRequest(**request(clinic).model_dump()), hold_minutes=5
        )
    with clock.frozen_at(NOW + timedelta(minutes=6)):
        with unit_of_work(engine) as session:  # an hour after it: it does not need the hold's time
            scheduling.book_appointment(session, actor=owner, data=request(clinic, TEN + timedelta(hours=1)))
        with unit_of_work(engine, write=False) as session:
            assert (
                scheduling.get_appointment(session, actor=owner, appointment_id=hold.id).status is Status.HELD
            )
        with unit_of_work(engine) as session:
            released = scheduling.release_expired_holds(session)
        with unit_of_work(engine, write=False) as session:
            swept = scheduling.get_appointment(session, actor=owner, appointment_id=hold.id)
    assert released >= 1
    assert (swept.status, swept.cancellation_reason) == (Status.CANCELLED, "hold expired")
    assert reservations(engine, hold.id)["provider"][2] is False
    assert topics(engine, owner).count("appointment.hold_expired") == 1


def test_booking_reserves_provider_room_with_buffers_and_device_with_cooldown(
    engine: Engine, owner: Actor
) -> None:
    clinic = build(engine, owner, shift=("09:00", "17:00"), setup=10, cleanup=15, device_type="co2_laser")
    with unit_of_work(engine) as session:
        device = make_device(session, actor=owner, location_id=clinic.location_id, cooldown=20)
    with unit_of_work(engine) as session:
        booked = scheduling.book_appointment(session, actor=owner, data=request(clinic))
    assert booked.status is Status.BOOKED
    assert (booked.provider_id, booked.room_id, booked.device_id) == (
        clinic.provider_id,
        clinic.room_id,
        device.id,
    )
    assert booked.ends_at == TEN + timedelta(hours=1)
    assert reservations(engine, booked.id) == {
        "client": (TEN, TEN + timedelta(minutes=60), True),
        "provider": (TEN, TEN + timedelta(minutes=60), True),
        "room": (TEN - timedelta(minutes=10), TEN + timedelta(minutes=75), True),
        "device": (TEN, TEN + timedelta(minutes=80), True),
    }
    assert topics(engine, owner)[-1] == "appointment.booked"


def test_a_second_booking_of_the_same_provider_is_refused_naming_the_provider(
    engine: Engine, owner: Actor
) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        make_room(session, actor=owner, location_id=clinic.location_id)
        scheduling.book_appointment(session, actor=owner, data=request(clinic))
    before = (count(engine, Appointment, owner), topics(engine, owner))
    with pytest.raises(ResourceBusyError) as caught, unit_of_work(engine) as session:
        scheduling.book_appointment(
            session,
            actor=owner,
            data=request(clinic, TEN + timedelta(minutes=30), provider_id=clinic.provider_id),
        )
    assert caught.value.resource_kind == "provider"
    assert caught.value.resource_id == clinic.provider_id
    assert (count(engine, Appointment, owner), topics(engine, owner)) == before


def test_a_busy_room_is_named_when_the_provider_is_free(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, cleanup=15)
    with unit_of_work(engine) as session:
        other = make_provider(session, actor=owner, location_id=clinic.location_id)
        scheduling.book_appointment(
            session, actor=owner, data=request(clinic, provider_id=clinic.provider_id)
        )
    with pytest.raises(ResourceBusyError) as caught, unit_of_work(engine) as session:
        # Starts when the first ends, but the room is still being cleaned.
        scheduling.book_appointment(
            session, actor=owner, data=request(clinic, TEN + timedelta(hours=1), provider_id=other.id)
        )
    assert (caught.value.resource_kind, caught.value.resource_id) == ("room", clinic.room_id)


def test_off_grid_too_soon_and_out_of_hours_starts_are_422(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, notice=120)
    cases = [
        (TEN + timedelta(minutes=7), "grid"),
        (TEN + timedelta(seconds=30), "grid"),
        (datetime(2026, 3, 3, 23, 0, tzinfo=UTC), "opening hours"),  # 18:00 local
        (datetime(2026, 3, 1, 1, 0, tzinfo=UTC), "minutes from now"),
    ]
    for starts_at, message in cases:
        with pytest.raises(ValidationFailedError, match=message) as caught, unit_of_work(engine) as session:
            scheduling.book_appointment(session, actor=owner, data=request(clinic, starts_at))
        assert caught.value.field == "starts_at"
    assert count(engine, Appointment, owner) == 0


def test_a_provider_off_duty_or_unqualified_is_a_conflict(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, shift=("09:00", "12:00"))
    with pytest.raises(ConflictError, match="on duty"), unit_of_work(engine) as session:
        scheduling.book_appointment(
            session,
            actor=owner,
            data=request(clinic, TEN + timedelta(hours=3), provider_id=clinic.provider_id),
        )
    with unit_of_work(engine) as session:
        laser = make_provider(session, actor=owner, location_id=clinic.location_id, skills=["laser_hair"])
    with pytest.raises(ConflictError, match="lacks"), unit_of_work(engine) as session:
        scheduling.book_appointment(session, actor=owner, data=request(clinic, provider_id=laser.id))
    assert count(engine, Appointment, owner) == 0


def test_hold_confirm_and_expiry(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        hold = scheduling.hold_slot(
            session, actor=owner, data=HoldRequest(**request(clinic).model_dump()), hold_minutes=10
        )
    assert hold.status is Status.HELD
    assert hold.hold_expires_at == NOW + timedelta(minutes=10)
    with unit_of_work(engine) as session:
        confirmed = scheduling.confirm_hold(session, actor=owner, appointment_id=hold.id)
    assert (confirmed.status, confirmed.hold_expires_at) == (Status.BOOKED, None)

    with unit_of_work(engine) as session:
        late = scheduling.hold_slot(
            session,
            actor=owner,
            data=HoldRequest(**request(clinic, TEN + timedelta(hours=1)).model_dump()),
            hold_minutes=5,
        )
    with clock.frozen_at(NOW + timedelta(minutes=6)):
        with pytest.raises(IllegalTransitionError, match="expired"), unit_of_work(engine) as session:
            scheduling.confirm_hold(session, actor=owner, appointment_id=late.id)
        with unit_of_work(engine) as session:
            taker = scheduling.book_appointment(
                session, actor=owner, data=request(clinic, TEN + timedelta(hours=1))
            )
        with unit_of_work(engine, write=False) as session:
            expired = scheduling.get_appointment(session, actor=owner, appointment_id=late.id)
            history = scheduling.appointment_history(session, actor=owner, appointment_id=late.id)
    assert taker.status is Status.BOOKED
    assert (expired.status, expired.cancellation_reason) == (Status.CANCELLED, "hold expired")
    assert [(h.from_status, h.to_status, h.actor) for h in history] == [
        (None, Status.HELD, "system:test"),
        (Status.HELD, Status.CANCELLED, "system:holds"),
    ]
    assert reservations(engine, late.id)["provider"][2] is False


def test_the_whole_lifecycle_is_recorded_and_illegal_steps_are_refused(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        appointment = scheduling.book_appointment(session, actor=owner, data=request(clinic))
    steps = [
        scheduling.confirm_appointment,
        scheduling.check_in,
        scheduling.start_service,
        scheduling.complete_appointment,
    ]
    for step in steps:
        with unit_of_work(engine) as session:
            step(session, actor=owner, appointment_id=appointment.id)
    with (
        pytest.raises(IllegalTransitionError, match="is completed; it cannot be cancelled"),
        unit_of_work(engine) as session,
    ):
        scheduling.cancel_appointment(session, actor=owner, appointment_id=appointment.id, reason="too late")
    with unit_of_work(engine, write=False) as session:
        history = scheduling.appointment_history(session, actor=owner, appointment_id=appointment.id)
        final = scheduling.get_appointment(session, actor=owner, appointment_id=appointment.id)
    assert [h.to_status for h in history] == [
        Status.BOOKED,
        Status.CONFIRMED,
        Status.CHECKED_IN,
        Status.IN_SERVICE,
        Status.COMPLETED,
    ]
    assert all(h.actor == "system:test" and h.occurred_at == NOW for h in history)
    assert final.status is Status.COMPLETED
    assert topics(engine, owner)[-5:] == [
        "appointment.booked",
        "appointment.confirmed",
        "appointment.checked_in",
        "appointment.started",
        "appointment.completed",
    ]


def test_cancel_frees_the_resources_and_records_reason_and_actor(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        first = scheduling.book_appointment(session, actor=owner, data=request(clinic))
    with unit_of_work(engine) as session:
        cancelled = scheduling.cancel_appointment(
            session, actor=owner, appointment_id=first.id, reason="client unwell"
        )
    assert (cancelled.status, cancelled.cancellation_reason, cancelled.cancelled_by) == (
        Status.CANCELLED,
        "client unwell",
        "system:test",
    )
    with unit_of_work(engine) as session:
        again = scheduling.book_appointment(session, actor=owner, data=request(clinic))
    assert again.provider_id == clinic.provider_id
    assert topics(engine, owner)[-2:] == ["appointment.cancelled", "appointment.booked"]


def test_no_show_only_after_the_start(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        appointment = scheduling.book_appointment(session, actor=owner, data=request(clinic))
    with (
        pytest.raises(IllegalTransitionError, match="once the appointment has started"),
        unit_of_work(engine) as session,
    ):
        scheduling.mark_no_show(session, actor=owner, appointment_id=appointment.id)
    with clock.frozen_at(TEN + timedelta(minutes=15)), unit_of_work(engine) as session:
        marked = scheduling.mark_no_show(session, actor=owner, appointment_id=appointment.id)
    assert marked.status is Status.NO_SHOW
    assert reservations(engine, appointment.id)["provider"][2] is False


def test_reschedule_moves_the_reservations_or_changes_nothing(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, shift=("09:00", "17:00"))
    with unit_of_work(engine) as session:
        other_client = make_client(session, actor=owner)
        moving = scheduling.book_appointment(session, actor=owner, data=request(clinic))
        blocker = request(clinic, TEN + timedelta(hours=3))
        blocker.client_id = other_client.id
        scheduling.book_appointment(session, actor=owner, data=blocker)
    with unit_of_work(engine) as session:
        moved = scheduling.reschedule_appointment(
            session,
            actor=owner,
            appointment_id=moving.id,
            data=RescheduleRequest(starts_at=TEN + timedelta(minutes=30)),
        )
    assert moved.starts_at == TEN + timedelta(minutes=30)
    assert reservations(engine, moving.id)["provider"] == (
        TEN + timedelta(minutes=30),
        TEN + timedelta(minutes=90),
        True,
    )
    with pytest.raises(ResourceBusyError), unit_of_work(engine) as session:
        scheduling.reschedule_appointment(
            session,
            actor=owner,
            appointment_id=moving.id,
            data=RescheduleRequest(starts_at=TEN + timedelta(hours=3)),
        )
    with unit_of_work(engine, write=False) as session:
        unchanged = scheduling.get_appointment(session, actor=owner, appointment_id=moving.id)
    assert unchanged.starts_at == TEN + timedelta(minutes=30)
    assert reservations(engine, moving.id)["provider"][2] is True
    assert topics(engine, owner)[-1] == "appointment.rescheduled"


def test_another_organization_cannot_see_or_touch_an_appointment(engine: Engine, owner: Actor) -> None:
    from medspa.kit.errors import NotFoundError
    from medspa.security import service as security
    from medspa.security.actors import system_actor

    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        appointment = scheduling.book_appointment(session, actor=owner, data=request(clinic))
        stranger_org = security.create_organization(
            session, slug=f"x-{appointment.id.hex[:10]}", name="Other"
        )
    stranger = system_actor(stranger_org.id)
    with pytest.raises(NotFoundError), unit_of_work(engine) as session:
        scheduling.get_appointment(session, actor=stranger, appointment_id=appointment.id)
    with pytest.raises(NotFoundError), unit_of_work(engine) as session:
        scheduling.cancel_appointment(session, actor=stranger, appointment_id=appointment.id, reason="x")


def test_a_booking_uses_the_room_its_slot_offered(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        make_room(session, actor=owner, location_id=clinic.location_id)
        second = make_provider(session, actor=owner, location_id=clinic.location_id)
        found = scheduling.find_slots(
            session,
            actor=owner,
            location_id=clinic.location_id,
            service_id=clinic.service_id,
            first_date=TEN.date(),
            last_date=TEN.date(),
        )
    offered = {(s.provider_id, s.starts_at): s.room_id for s in found}
    assert (
        offered[(clinic.provider_id, TEN)] != offered[(second.id, TEN)]
    )  # providers start at different rooms
    with unit_of_work(engine) as session:
        booked = scheduling.book_appointment(
            session, actor=owner, data=request(clinic, provider_id=second.id)
        )
    assert booked.room_id == offered[(second.id, TEN)]


def test_a_deactivated_location_offers_and_books_nothing(engine: Engine, owner: Actor) -> None:
    from medspa.resources import service as resources

    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        resources.deactivate_location(session, actor=owner, location_id=clinic.location_id)
    with pytest.raises(ConflictError, match="deactivated"), unit_of_work(engine) as session:
        scheduling.book_appointment(session, actor=owner, data=request(clinic))
    with pytest.raises(ConflictError, match="deactivated"), unit_of_work(engine) as session:
        scheduling.find_slots(
            session,
            actor=owner,
            location_id=clinic.location_id,
            service_id=clinic.service_id,
            first_date=TEN.date(),
            last_date=TEN.date(),
        )
    assert count(engine, Appointment, owner) == 0


def test_a_reservation_reaching_into_a_window_from_two_days_before_still_blocks_it(
    engine: Engine, owner: Actor
) -> None:
    # given a booked appointment, and on another resource of its location one reservation as long as any
    # can be (setup, service and cooldown at their limits) that ends inside a window, and one that ends
    # just before it
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        booked = scheduling.book_appointment(session, actor=owner, data=request(clinic))
    window = TEN + timedelta(days=3)
    resource = new_id()
    longest = repository.LONGEST_RESERVATION
    rows = [
        reservation_row(
            owner, clinic, booked.id, "device", resource, window + timedelta(minutes=30) - longest
        ),
        reservation_row(owner, clinic, booked.id, "device", new_id(), window - longest),
    ]
    rows[0]["ends_at"] = window + timedelta(minutes=30)
    rows[1]["ends_at"] = window
    with unit_of_work(engine) as session:
        repository.insert_reservations(session, rows[:1])
        repository.insert_reservations(session, rows[1:])
        # then reading the window finds the first (its start is long before the window) and not the second
        busy, _ = repository.busy_reservations(
            session,
            clinic.location_id,
            window,
            window + timedelta(days=1),
            NOW,
            [rows[0]["resource_id"], rows[1]["resource_id"]],
        )
        assert busy == [(resource, rows[0]["starts_at"], rows[0]["ends_at"])]
        # and a reservation longer than any booking can make is refused before it is written
        too_long = {
            **rows[0],
            "id": new_id(),
            "starts_at": rows[0]["ends_at"] - longest - timedelta(minutes=1),
        }
        with pytest.raises(ValueError, match="longer than"):
            repository.insert_reservations(session, [too_long])
