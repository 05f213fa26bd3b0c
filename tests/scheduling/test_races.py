"""Two changes of one appointment (or of one client's time) racing each other never break the booking
core's invariant (`tests/invariants.py`): the loser answers 409 with the state the winner left.

Each race is made deterministic: the first change runs in a transaction held open on one thread; the
second starts on another and is let run until it waits for one of the first's locks (PostgreSQL: seen in
`pg_stat_activity`; SQLite: writers wait for one another anyway); then the first commits. Without a lock
or a condition on the appointment, the second would act on what it read before the first committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import IllegalTransitionError, ResourceBusyError
from medspa.scheduling import service as scheduling
from medspa.scheduling.errors import ClientBusyError
from medspa.scheduling.schemas import AppointmentRead, BookingRequest, HoldRequest, RescheduleRequest, Status
from medspa.security.actors import Actor
from tests.factories import make_client, make_location, make_provider, make_room, make_service
from tests.invariants import booking_problems

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TEN = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York
HOUR = timedelta(hours=1)


@dataclass
class Clinic:
    location_id: Any
    service_id: Any
    service_name: str
    providers: list[Any]
    clients: list[Any]


@pytest.fixture
def clinic(engine: Engine, owner: Actor) -> Clinic:
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        location = make_location(session, actor=owner)
        providers = [make_provider(session, actor=owner, location_id=location.id).id for _ in range(2)]
        for _ in range(2):
            make_room(session, actor=owner, location_id=location.id)
        service = make_service(session, actor=owner, duration=60, setup=10, cleanup=5)
        clients = [make_client(session, actor=owner).id for _ in range(4)]
    return Clinic(location.id, service.id, service.name, providers, clients)


def booking(clinic: Clinic, starts_at: datetime, *, client: int = 0, provider: int = 0) -> BookingRequest:
    return BookingRequest(
        client_id=clinic.clients[client],
        service_id=clinic.service_id,
        location_id=clinic.location_id,
        starts_at=starts_at,
        provider_id=clinic.providers[provider],
    )


def book(engine: Engine, owner: Actor, data: BookingRequest, at: datetime = NOW) -> AppointmentRead:
    with clock.frozen_at(at), unit_of_work(engine) as session:
        return scheduling.book_appointment(session, actor=owner, data=data)


Work = Callable[[Session], Any]


def race(
    engine: Engine, first: Work, second: Work, *, at: tuple[datetime, datetime] = (NOW, NOW)
) -> list[Any]:
    """Run `first` in a transaction held open until `second`, on another thread, waits for it (or ends);
    then let `first` commit. Each runs with its own clock. Their results (or the errors they raised)."""
    results: list[Any] = [None, None]
    first_done, release = threading.Event(), threading.Event()

    def run(index: int, work: Work, hold: bool) -> None:
        try:
            with clock.frozen_at(at[index]), unit_of_work(engine) as session:
                results[index] = work(session)
                if hold:
                    first_done.set()
                    release.wait(30)
        except Exception as error:  # handed to the test
            results[index] = error
        finally:
            first_done.set()

    one = threading.Thread(target=run, args=(0, first, True))
    one.start()
    assert first_done.wait(30)
    two = threading.Thread(target=run, args=(1, second, False))
    two.start()
    _until_waiting(engine, two)
    release.set()
    one.join(30)
    two.join(30)
    return results


def _until_waiting(engine: Engine, thread: threading.Thread) -> None:
    """Until `thread` waits for a lock another transaction holds (PostgreSQL) or has ended; on SQLite a
    writer waits for the one before it in the process, so a short pause lets it get there."""
    if engine.dialect.name != "postgresql":
        thread.join(0.3)
        return
    deadline = time.monotonic() + 10
    with engine.connect() as connection:
        while thread.is_alive() and time.monotonic() < deadline:
            waiting = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            connection.rollback()
            if waiting:
                return
            time.sleep(0.02)


def assert_sound(engine: Engine, owner: Actor, at: datetime = NOW) -> None:
    assert booking_problems(engine, owner.organization_id, at) == []


def test_a_confirm_racing_a_cancel_loses_and_the_time_is_free_again(
    engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    # given a booking
    appointment = book(engine, owner, booking(clinic, TEN))
    # when a cancel and a confirm race (the cancel first)
    cancelled, confirmed = race(
        engine,
        lambda s: scheduling.cancel_appointment(s, actor=owner, appointment_id=appointment.id, reason="x"),
        lambda s: scheduling.confirm_appointment(s, actor=owner, appointment_id=appointment.id),
    )
    # then the confirm is refused with the state it lost to, and nothing holds the time
    assert cancelled.status is Status.CANCELLED
    assert isinstance(confirmed, IllegalTransitionError), confirmed
    assert confirmed.extra == {"current_status": "cancelled"}
    assert "is cancelled; it cannot be confirmed" in confirmed.detail
    assert str(appointment.id) not in confirmed.detail
    assert_sound(engine, owner)
    again = book(engine, owner, booking(clinic, TEN, client=1))
    assert again.provider_id == appointment.provider_id


def test_a_cancel_racing_a_confirm_cancels_after_it(engine: Engine, owner: Actor, clinic: Clinic) -> None:
    appointment = book(engine, owner, booking(clinic, TEN))
    confirmed, cancelled = race(
        engine,
        lambda s: scheduling.confirm_appointment(s, actor=owner, appointment_id=appointment.id),
        lambda s: scheduling.cancel_appointment(s, actor=owner, appointment_id=appointment.id, reason="x"),
    )
    assert (confirmed.status, cancelled.status) == (Status.CONFIRMED, Status.CANCELLED)
    with unit_of_work(engine, write=False) as session:
        steps = scheduling.appointment_history(session, actor=owner, appointment_id=appointment.id)
    assert [(h.from_status, h.to_status) for h in steps] == [
        (None, Status.BOOKED),
        (Status.BOOKED, Status.CONFIRMED),
        (Status.CONFIRMED, Status.CANCELLED),
    ]
    assert_sound(engine, owner)


def test_a_holds_confirm_racing_its_expiry_cannot_both_win(
    engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    # given a ten-minute hold; the sweep runs just after it expires, the client confirms just before
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        data = HoldRequest(**booking(clinic, TEN).model_dump(), hold_minutes=10)
        hold = scheduling.hold_slot(session, actor=owner, data=data, hold_minutes=10)
    before, after = NOW + timedelta(minutes=9), NOW + timedelta(minutes=11)
    released, confirmed = race(
        engine,
        scheduling.release_expired_holds,
        lambda s: scheduling.confirm_hold(s, actor=owner, appointment_id=hold.id),
        at=(after, before),
    )
    assert released >= 1  # (every organization's expired holds: other tests' too)
    assert isinstance(confirmed, IllegalTransitionError), confirmed
    assert confirmed.extra == {"current_status": "cancelled"}
    assert_sound(engine, owner, after)


def test_a_hold_confirmed_first_is_not_released_by_a_racing_sweep(
    engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        data = HoldRequest(**booking(clinic, TEN).model_dump(), hold_minutes=10)
        hold = scheduling.hold_slot(session, actor=owner, data=data, hold_minutes=10)
    before, after = NOW + timedelta(minutes=9), NOW + timedelta(minutes=11)
    confirmed, released = race(
        engine,
        lambda s: scheduling.confirm_hold(s, actor=owner, appointment_id=hold.id),
        scheduling.release_expired_holds,
        at=(before, after),
    )
    assert confirmed.status is Status.BOOKED
    with unit_of_work(engine, write=False) as session:
        now = scheduling.get_appointment(session, actor=owner, appointment_id=hold.id)
    assert now.status is Status.BOOKED
    del released
    assert_sound(engine, owner, after)


def test_concurrent_reschedules_leave_one_place_taken(engine: Engine, owner: Actor, clinic: Clinic) -> None:
    # given a booking at 10:00 that two people move at once, to 11:00 and to 13:00
    appointment = book(engine, owner, booking(clinic, TEN))

    def move(to: datetime) -> Work:
        return lambda s: scheduling.reschedule_appointment(
            s, actor=owner, appointment_id=appointment.id, data=RescheduleRequest(starts_at=to)
        )

    first, second = race(engine, move(TEN + HOUR), move(TEN + 3 * HOUR))
    # then both apply, one after the other; only the last place is taken
    assert first.starts_at == TEN + HOUR
    assert second.starts_at == TEN + 3 * HOUR
    assert_sound(engine, owner)
    for index, free in enumerate((TEN, TEN + HOUR), start=1):
        taken = book(engine, owner, booking(clinic, free, client=index))
        assert taken.provider_id == clinic.providers[0]


def test_a_cancel_racing_a_reschedule_releases_the_new_place(
    engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    appointment = book(engine, owner, booking(clinic, TEN))
    moved, cancelled = race(
        engine,
        lambda s: scheduling.reschedule_appointment(
            s, actor=owner, appointment_id=appointment.id, data=RescheduleRequest(starts_at=TEN + HOUR)
        ),
        lambda s: scheduling.cancel_appointment(s, actor=owner, appointment_id=appointment.id, reason="x"),
    )
    assert (moved.starts_at, cancelled.status) == (TEN + HOUR, Status.CANCELLED)
    assert_sound(engine, owner)
    book(engine, owner, booking(clinic, TEN + HOUR, client=1))


def test_one_client_cannot_be_booked_in_two_places_by_racing_requests(
    engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    first, second = race(
        engine,
        lambda s: scheduling.book_appointment(s, actor=owner, data=booking(clinic, TEN)),
        lambda s: scheduling.book_appointment(
            s, actor=owner, data=booking(clinic, TEN + timedelta(minutes=30), provider=1)
        ),
    )
    assert first.status is Status.BOOKED
    assert isinstance(second, ClientBusyError), second
    assert second.status_code == 409
    assert_sound(engine, owner)


def test_a_client_is_in_one_place_at_a_time(engine: Engine, owner: Actor, clinic: Clinic) -> None:
    # given a client booked at 10:00
    first = book(engine, owner, booking(clinic, TEN))
    # then another provider cannot take them at 10:30, and the refusal names the other appointment
    with pytest.raises(ClientBusyError) as refused:
        book(engine, owner, booking(clinic, TEN + timedelta(minutes=30), provider=1))
    assert refused.value.detail.endswith(
        f"already has an appointment at that time: {clinic.service_name} on Tue Mar 3 at 10:00 AM"
    )
    assert str(first.id) not in refused.value.detail
    # but back to back is fine, and a rescheduled or cancelled booking frees the client's time
    book(engine, owner, booking(clinic, TEN + HOUR, provider=1))
    with pytest.raises(ClientBusyError), clock.frozen_at(NOW), unit_of_work(engine) as session:
        scheduling.reschedule_appointment(
            session,
            actor=owner,
            appointment_id=first.id,
            data=RescheduleRequest(starts_at=TEN + timedelta(minutes=30)),
        )
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        scheduling.cancel_appointment(session, actor=owner, appointment_id=first.id, reason="x")
    book(engine, owner, booking(clinic, TEN, provider=1))
    assert_sound(engine, owner)


def test_a_taken_provider_is_named_not_numbered(engine: Engine, owner: Actor, clinic: Clinic) -> None:
    book(engine, owner, booking(clinic, TEN))
    with pytest.raises(ResourceBusyError) as refused:
        book(engine, owner, booking(clinic, TEN, client=1))
    assert refused.value.detail.startswith("provider Provider ")
    assert str(clinic.providers[0]) not in refused.value.detail
