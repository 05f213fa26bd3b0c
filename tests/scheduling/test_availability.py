"""find_slots: every rule that decides a bookable start, on the service layer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.resources import service as resources
from medspa.resources.schemas import ClosureCreate, PeriodCreate
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import BookingRequest, HoldRequest, SlotRead
from medspa.security.actors import Actor
from tests.factories import make_client, make_device, make_location, make_provider, make_room, make_service

NOW = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
DAY = date(2026, 3, 3)  # a Tuesday; New York is on EST (UTC-5)


@pytest.fixture(autouse=True)
def frozen_clock() -> object:
    with clock.frozen_at(NOW):
        yield


@dataclass
class Clinic:
    location_id: uuid.UUID
    provider_id: uuid.UUID
    room_id: uuid.UUID
    service_id: uuid.UUID
    client_id: uuid.UUID


def build(
    engine: Engine,
    actor: Actor,
    *,
    zone: str = "America/New_York",
    hours: tuple[str, str] = ("09:00", "17:00"),
    shift: tuple[str, str] = ("09:00", "12:00"),
    duration: int = 60,
    setup: int = 0,
    cleanup: int = 0,
    device_type: str | None = None,
    license_kind: str | None = None,
    licenses: list[tuple[str, date]] | None = None,
    breaks: tuple[str, str] | None = None,
    notice: int = 0,
) -> Clinic:
    with unit_of_work(engine) as session:
        location = make_location(session, actor=actor, time_zone=zone, hours=hours, notice=notice)
        provider = make_provider(
            session, actor=actor, location_id=location.id, shift=shift, breaks=breaks, licenses=licenses
        )
        room = make_room(session, actor=actor, location_id=location.id)
        service = make_service(
            session,
            actor=actor,
            duration=duration,
            setup=setup,
            cleanup=cleanup,
            device_type=device_type,
            license_kind=license_kind,
        )
        client = make_client(session, actor=actor)
    return Clinic(location.id, provider.id, room.id, service.id, client.id)


def slots(
    engine: Engine, actor: Actor, clinic: Clinic, first: date = DAY, last: date | None = None
) -> list[SlotRead]:
    with unit_of_work(engine, write=False) as session:
        return scheduling.find_slots(
            session,
            actor=actor,
            location_id=clinic.location_id,
            service_id=clinic.service_id,
            first_date=first,
            last_date=last or first,
        )


def local_times(found: list[SlotRead]) -> list[str]:
    return [s.local_start[11:16] for s in found]


def book(engine: Engine, actor: Actor, clinic: Clinic, starts_at: datetime) -> None:
    with unit_of_work(engine) as session:
        scheduling.book_appointment(
            session,
            actor=actor,
            data=BookingRequest(
                client_id=clinic.client_id,
                service_id=clinic.service_id,
                location_id=clinic.location_id,
                starts_at=starts_at,
            ),
        )


def test_slots_follow_the_shift_on_the_grid(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    found = slots(engine, owner, clinic)
    assert local_times(found) == [
        "09:00",
        "09:15",
        "09:30",
        "09:45",
        "10:00",
        "10:15",
        "10:30",
        "10:45",
        "11:00",
    ]
    assert found[0].starts_at == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    assert found[0].ends_at == datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    assert {s.provider_id for s in found} == {clinic.provider_id}
    assert {s.room_id for s in found} == {clinic.room_id}


def test_room_setup_and_cleanup_must_fit_inside_opening_hours(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, hours=("09:00", "12:00"), shift=("09:00", "12:00"), setup=10, cleanup=10)
    assert local_times(slots(engine, owner, clinic)) == [
        "09:15",
        "09:30",
        "09:45",
        "10:00",
        "10:15",
        "10:30",
        "10:45",
    ]


def test_breaks_are_not_bookable(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, breaks=("10:00", "10:30"))
    assert local_times(slots(engine, owner, clinic)) == ["09:00", "10:30", "10:45", "11:00"]


def test_a_provider_without_the_skill_gets_no_slots(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        other = make_service(session, actor=owner, skill="co2")
    clinic.service_id = other.id
    assert slots(engine, owner, clinic) == []


def test_a_license_counts_only_through_its_expiry_date(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, license_kind="rn", licenses=[("rn", DAY)])
    found = slots(engine, owner, clinic, DAY, DAY + timedelta(days=1))
    assert {s.local_start[:10] for s in found} == {"2026-03-03"}


def test_an_expired_license_blocks_every_slot(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, license_kind="rn", licenses=[("rn", DAY - timedelta(days=1))])
    assert slots(engine, owner, clinic) == []


def test_closures_and_closed_weekdays_have_no_slots(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        resources.add_closure(
            session, actor=owner, location_id=clinic.location_id, data=ClosureCreate(closed_on=DAY)
        )
    found = slots(engine, owner, clinic, DAY, DAY + timedelta(days=1))
    assert {s.local_start[:10] for s in found} == {"2026-03-04"}


def test_time_off_removes_the_time_it_covers(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        resources.add_time_off(
            session,
            actor=owner,
            provider_id=clinic.provider_id,
            data=PeriodCreate(
                starts_at=datetime(2026, 3, 3, 14, 0, tzinfo=UTC),
                ends_at=datetime(2026, 3, 3, 15, 30, tzinfo=UTC),
            ),
        )
    assert local_times(slots(engine, owner, clinic)) == ["10:30", "10:45", "11:00"]


def test_existing_bookings_block_their_provider(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    book(engine, owner, clinic, datetime(2026, 3, 3, 15, 0, tzinfo=UTC))  # 10:00-11:00 local
    assert local_times(slots(engine, owner, clinic)) == ["09:00", "11:00"]


def test_room_buffers_block_around_a_booking(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, shift=("09:00", "17:00"), duration=30, setup=15, cleanup=15)
    with unit_of_work(engine) as session:
        second = make_provider(session, actor=owner, location_id=clinic.location_id, shift=("09:00", "17:00"))
    book(engine, owner, clinic, datetime(2026, 3, 3, 15, 0, tzinfo=UTC))  # 10:00-10:30, room 09:45-10:45
    free_for_second = [s for s in slots(engine, owner, clinic) if s.provider_id == second.id]
    times = local_times(free_for_second)
    # The only room is reserved 09:45-10:45; another booking needs it from 15 minutes before its start
    # until 15 after its end, and opening (09:00) leaves no room for one before: the first is 11:00.
    assert times[0] == "11:00"
    assert times[-1] == "16:15"


def test_device_cooldown_and_maintenance_are_reserved(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, shift=("09:00", "17:00"), device_type="co2_laser")
    with unit_of_work(engine) as session:
        device = make_device(session, actor=owner, location_id=clinic.location_id, cooldown=30)
        second = make_provider(session, actor=owner, location_id=clinic.location_id, shift=("09:00", "17:00"))
        make_room(session, actor=owner, location_id=clinic.location_id)
        resources.add_maintenance(
            session,
            actor=owner,
            device_id=device.id,
            data=PeriodCreate(
                starts_at=datetime(2026, 3, 3, 20, 0, tzinfo=UTC),
                ends_at=datetime(2026, 3, 3, 22, 0, tzinfo=UTC),
            ),
        )
    book(engine, owner, clinic, datetime(2026, 3, 3, 14, 0, tzinfo=UTC))  # 09:00-10:00, device to 10:30
    times = local_times([s for s in slots(engine, owner, clinic) if s.provider_id == second.id])
    # The device is busy until 10:30 (cooldown); from 15:00 it is in maintenance, and a 60-minute service
    # plus 30 minutes of cooldown must end by then: the last start is 13:30.
    assert times[0] == "10:30"
    assert times[-1] == "13:30"
    assert all(s.device_id == device.id for s in slots(engine, owner, clinic))


def test_unexpired_holds_block_and_expired_holds_do_not(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        scheduling.hold_slot(
            session,
            actor=owner,
            data=HoldRequest(
                client_id=clinic.client_id,
                service_id=clinic.service_id,
                location_id=clinic.location_id,
                starts_at=datetime(2026, 3, 3, 14, 0, tzinfo=UTC),
            ),
            hold_minutes=10,
        )
    assert local_times(slots(engine, owner, clinic))[0] == "10:00"
    with clock.frozen_at(NOW + timedelta(minutes=11)):
        assert local_times(slots(engine, owner, clinic))[0] == "09:00"


def test_minimum_notice_hides_starts_too_soon(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, notice=60)
    with clock.frozen_at(datetime(2026, 3, 3, 14, 20, tzinfo=UTC)):  # 09:20 local
        assert local_times(slots(engine, owner, clinic)) == ["10:30", "10:45", "11:00"]


def test_spring_forward_in_new_york(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, hours=("00:00", "23:00"), shift=("00:00", "06:00"), duration=60)
    before = slots(engine, owner, clinic, date(2026, 3, 7))
    change = slots(engine, owner, clinic, date(2026, 3, 8))
    after = slots(engine, owner, clinic, date(2026, 3, 9))
    assert before[0].starts_at == datetime(2026, 3, 7, 5, 0, tzinfo=UTC)
    assert after[0].starts_at == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)
    # 02:00-02:59 do not exist on 8 March: the shift 00:00-06:00 lasts five real hours.
    assert not any(t.startswith("02:") for t in local_times(change))
    assert change[0].starts_at == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    assert change[-1].ends_at == datetime(2026, 3, 8, 10, 0, tzinfo=UTC)
    assert (len(before), len(change), len(after)) == (21, 17, 21)
    assert all(s.ends_at - s.starts_at == timedelta(hours=1) for s in change)


def test_fall_back_in_new_york(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, hours=("00:00", "23:00"), shift=("00:00", "06:00"), duration=60)
    change = slots(engine, owner, clinic, date(2026, 11, 1))
    # 01:00-01:59 happen twice; the shift lasts seven real hours, each wall-clock start is offered once.
    assert change[0].starts_at == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
    assert change[-1].ends_at == datetime(2026, 11, 1, 11, 0, tzinfo=UTC)
    assert len({s.starts_at for s in change}) == len(change)
    starts = local_times(change)
    assert starts.count("01:00") == 1
    assert starts[-1] == "05:00"


def test_a_zone_without_daylight_saving_keeps_its_offset(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner, zone="America/Phoenix")
    march = slots(engine, owner, clinic, date(2026, 3, 8))
    november = slots(engine, owner, clinic, date(2026, 11, 1))
    assert march[0].starts_at == datetime(2026, 3, 8, 16, 0, tzinfo=UTC)
    assert november[0].starts_at == datetime(2026, 11, 1, 16, 0, tzinfo=UTC)
    assert local_times(march) == local_times(november)


def test_a_reversed_or_too_long_range_is_refused(engine: Engine, owner: Actor) -> None:
    from medspa.kit.errors import ValidationFailedError

    clinic = build(engine, owner)
    with pytest.raises(ValidationFailedError, match="to: must not be before from"):
        slots(engine, owner, clinic, DAY, DAY - timedelta(days=1))
    with pytest.raises(ValidationFailedError, match="at most 62 days"):
        slots(engine, owner, clinic, DAY, DAY + timedelta(days=90))
