"""Controlled overbooking: a booking beside a likely no-show while the provider's expected overflow stays
within the location's cap, through the agent gate, on the provider's lane (one overbooked visit at a
time), taking the provider's time over when the booking beside it goes."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medspa.engagement import overbooking
from medspa.engagement.schemas import OverbookingRead
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import ConflictError, ResourceBusyError, ValidationFailedError
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, BookingRequest, RescheduleRequest
from medspa.security import gate
from medspa.security.actors import Actor, Role
from medspa.security.schemas import AgentPolicyUpdate
from tests.engagement.conftest import Clinic
from tests.factories import make_room


@pytest.fixture
def day(clinic: Clinic) -> datetime:
    """09:00 in New York three days or more from the clock's date (on a day without a change of the
    clocks), as UTC; the clinic has a second room."""
    with unit_of_work(clinic.engine) as session:
        make_room(session, actor=clinic.owner, location_id=clinic.location_id)
    ahead = 3
    while clinic.local_day_start(ahead + 1) - clinic.local_day_start(ahead) != timedelta(hours=24):
        ahead += 1  # a day without a change of the clocks, so that hours after 09:00 are wall-clock hours
    return clinic.local_day_start(ahead) + timedelta(hours=9)


def request(clinic: Clinic, client_id: uuid.UUID, starts_at: datetime) -> BookingRequest:
    return BookingRequest(
        client_id=client_id,
        service_id=clinic.service_id,
        location_id=clinic.location_id,
        starts_at=starts_at,
        provider_id=clinic.provider_id,
    )


def overbook(clinic: Clinic, client_id: uuid.UUID, starts_at: datetime) -> OverbookingRead:
    with unit_of_work(clinic.engine) as session:
        return overbooking.overbook(session, actor=clinic.owner, data=request(clinic, client_id, starts_at))


def risky_booking(clinic: Clinic, starts_at: datetime, no_show: float) -> AppointmentRead:
    booked = clinic.book(clinic.client(email=f"{uuid.uuid4().hex[:8]}@example.com").id, starts_at)
    with unit_of_work(clinic.engine) as session:
        scheduling.store_no_show_scores(
            session,
            actor=clinic.owner,
            probabilities={booked.id: no_show},
            model_version="test",
            scored_at=clock.now(),
        )
    return booked


def appointment(clinic: Clinic, appointment_id: uuid.UUID) -> AppointmentRead:
    with unit_of_work(clinic.engine, write=False) as session:
        return scheduling.get_appointment(session, actor=clinic.owner, appointment_id=appointment_id)


def test_overbooking_is_off_until_a_manager_sets_a_cap(clinic: Clinic, day: datetime) -> None:
    risky_booking(clinic, day, 0.5)
    with pytest.raises(ConflictError, match="overbooking is off"):
        overbook(clinic, clinic.client().id, day)


def test_overbookings_stop_at_the_cap_of_expected_overflow(clinic: Clinic, day: datetime) -> None:
    clinic.set_policy(overbooking_cap_minutes=60)
    hosts = [risky_booking(clinic, day + timedelta(hours=h), 0.5) for h in range(3)]
    first = overbook(clinic, clinic.client().id, day)
    # A client with no history has the prior P(no-show) 0.08: 60 min x 0.92 x 0.5 = 27.6 min.
    assert first.state == "ran"
    assert first.appointment is not None
    assert first.expected_overflow_minutes == pytest.approx(27.6)
    explanation = first.appointment.overbooking
    assert explanation is not None
    assert "no-show risk 50%" in explanation
    assert "28 of 60 min" in explanation
    assert "Dr. Reyes" in explanation
    assert "@" not in explanation  # no client's name or address in it
    with pytest.raises(ResourceBusyError, match="already has an overbooked visit"):
        overbook(clinic, clinic.client().id, day)  # one overbooked visit at a time on the provider
    second = overbook(clinic, clinic.client().id, day + timedelta(hours=1))
    assert second.state == "ran"  # 55.2 of 60
    with pytest.raises(ConflictError, match="to 83 min, over the cap of 60 min"):
        overbook(clinic, clinic.client().id, day + timedelta(hours=2))
    assert appointment(clinic, hosts[2].id).overbooking is None


def test_an_overbooking_needs_a_booking_to_stand_beside(clinic: Clinic, day: datetime) -> None:
    clinic.set_policy(overbooking_cap_minutes=60)
    with pytest.raises(ConflictError, match="free at that time: book it as usual"):
        overbook(clinic, clinic.client().id, day)
    data = request(clinic, clinic.client().id, day).model_copy(update={"provider_id": None})
    refused = pytest.raises(ValidationFailedError, match="names the provider")
    with unit_of_work(clinic.engine) as session, refused:
        overbooking.overbook(session, actor=clinic.owner, data=data)


def test_the_overbooked_visit_takes_the_time_over_when_the_booking_beside_it_goes(
    clinic: Clinic, day: datetime
) -> None:
    clinic.set_policy(overbooking_cap_minutes=60)
    host = risky_booking(clinic, day, 0.5)
    extra = overbook(clinic, clinic.client().id, day).appointment
    assert extra is not None
    with pytest.raises(ResourceBusyError):  # the provider's time is taken twice over already
        clinic.book(clinic.client().id, day + timedelta(minutes=30))
    with unit_of_work(clinic.engine) as session:
        scheduling.cancel_appointment(session, actor=clinic.owner, appointment_id=host.id, reason="ill")
    now = appointment(clinic, extra.id)
    assert now.overbooking is None
    assert now.status == "booked"
    with unit_of_work(clinic.engine, write=False) as session:
        history = scheduling.appointment_history(session, actor=clinic.owner, appointment_id=extra.id)
        slots = scheduling.find_slots(
            session,
            actor=clinic.owner,
            location_id=clinic.location_id,
            service_id=clinic.service_id,
            first_date=(day - timedelta(hours=9)).date(),
            last_date=(day - timedelta(hours=9)).date(),
        )
    assert any("no longer overbooked" in (step.reason or "") for step in history)
    assert all(s.ends_at <= day or s.starts_at >= day + timedelta(hours=1) for s in slots)
    with pytest.raises(ResourceBusyError):  # the time is the overbooked visit's now, not free
        clinic.book(clinic.client().id, day)


def test_a_moved_overbooked_visit_becomes_an_ordinary_booking(clinic: Clinic, day: datetime) -> None:
    clinic.set_policy(overbooking_cap_minutes=60)
    risky_booking(clinic, day, 0.5)
    extra = overbook(clinic, clinic.client().id, day).appointment
    assert extra is not None
    with unit_of_work(clinic.engine) as session:
        moved = scheduling.reschedule_appointment(
            session,
            actor=clinic.owner,
            appointment_id=extra.id,
            data=RescheduleRequest(starts_at=day + timedelta(hours=2)),
        )
    assert moved.overbooking is None
    with pytest.raises(ResourceBusyError):
        clinic.book(clinic.client().id, day + timedelta(hours=2))
    clinic.book(clinic.client().id, day + timedelta(hours=4))  # the lane holds nothing else


def test_above_the_gates_daily_count_an_overbooking_waits_for_a_manager(
    clinic: Clinic, day: datetime
) -> None:
    clinic.set_policy(overbooking_cap_minutes=120)
    with unit_of_work(clinic.engine) as session:
        gate.set_policy(
            session,
            actor=clinic.owner,
            action=overbooking.KIND,
            data=AgentPolicyUpdate(tier=2, daily_limit=0),
        )
    risky_booking(clinic, day, 0.5)
    waiting = overbook(clinic, clinic.client().id, day)
    assert waiting.state == "queued"
    assert waiting.appointment is None
    assert "limit is 0" in waiting.why
    with unit_of_work(clinic.engine) as session:
        manager = Actor(
            clinic.owner.organization_id, "user", uuid.uuid4(), Role.MANAGER, "manager@clinic.example"
        )
        decided = gate.decide(session, actor=manager, action_id=waiting.action_id, approve=True)
    assert decided.state == "approved", decided.outcome
    with unit_of_work(clinic.engine, write=False) as session:
        booked = scheduling.list_appointments(session, actor=clinic.owner, limit=50).items
    assert sum(1 for a in booked if a.overbooking) == 1


def test_the_api_answers_201_202_409_and_422(clinic: Clinic, day: datetime, api: TestClient) -> None:
    headers: dict[str, str] = {}
    client_id = clinic.client().id
    body = request(clinic, client_id, day).model_dump(mode="json")
    risky_booking(clinic, day, 0.5)
    assert api.post("/api/v1/appointments/overbook", json=body, headers=headers).status_code == 409
    clinic.set_policy(overbooking_cap_minutes=60)
    done = api.post("/api/v1/appointments/overbook", json=body, headers=headers)
    assert done.status_code == 201, done.text
    assert done.json()["appointment"]["overbooking"].startswith("Overbooked beside")
    for bad in (
        {**body, "provider_id": None},
        {**body, "starts_at": "2027-99-01"},
        {**body, "client_id": "\x00"},
    ):
        assert api.post("/api/v1/appointments/overbook", json=bad, headers=headers).status_code == 422
    with unit_of_work(clinic.engine) as session:
        gate.set_policy(session, actor=clinic.owner, action=overbooking.KIND, data=AgentPolicyUpdate(tier=3))
    later = {
        **body,
        "client_id": str(clinic.client().id),
        "starts_at": (day + timedelta(hours=1)).isoformat(),
    }
    risky_booking(clinic, day + timedelta(hours=1), 0.6)
    queued = api.post("/api/v1/appointments/overbook", json=later, headers=headers)
    assert queued.status_code == 202
    assert queued.json()["state"] == "queued"


def test_concurrent_overbookings_of_one_provider_keep_within_the_cap(clinic: Clinic, day: datetime) -> None:
    """Eight at once, each alone within the cap, two together at it: exactly two are booked."""
    clinic.set_policy(overbooking_cap_minutes=56)
    for hour in range(8):
        risky_booking(clinic, day + timedelta(hours=hour), 0.5)
    clients = [clinic.client().id for _ in range(8)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(index: int) -> None:
        with clock.using(clinic.clock):
            try:
                result = overbook(clinic, clients[index], day + timedelta(hours=index))
                outcome = result.state
            except ConflictError as error:
                outcome = str(error)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("ran") == 2, outcomes
    assert all("over the cap" in o for o in outcomes if o != "ran")


def test_the_optimizer_plans_a_day_with_an_overbooked_visit(clinic: Clinic, day: datetime) -> None:
    clinic.set_policy(overbooking_cap_minutes=60)
    risky_booking(clinic, day, 0.5)
    assert overbook(clinic, clinic.client().id, day).appointment is not None
    proposal = scheduling.optimize_day(
        clinic.engine,
        actor=clinic.owner,
        location_id=clinic.location_id,
        service_date=(day - timedelta(hours=9)).date(),
        time_limit_seconds=2,
    )
    assert proposal.status == "proposed"


def test_an_approval_after_the_booking_beside_it_went_books_nothing(clinic: Clinic, day: datetime) -> None:
    clinic.set_policy(overbooking_cap_minutes=60)
    with unit_of_work(clinic.engine) as session:
        gate.set_policy(session, actor=clinic.owner, action=overbooking.KIND, data=AgentPolicyUpdate(tier=3))
    host = risky_booking(clinic, day, 0.5)
    waiting = overbook(clinic, clinic.client().id, day)
    with unit_of_work(clinic.engine) as session:
        scheduling.cancel_appointment(session, actor=clinic.owner, appointment_id=host.id, reason="ill")
    with unit_of_work(clinic.engine) as session:
        manager = Actor(
            clinic.owner.organization_id, "user", uuid.uuid4(), Role.MANAGER, "manager@clinic.example"
        )
        decided = gate.decide(session, actor=manager, action_id=waiting.action_id, approve=True)
    assert decided.state == "failed"
    assert "free at that time" in (decided.outcome or "")
    with unit_of_work(clinic.engine, write=False) as session:
        assert not [
            a
            for a in scheduling.list_appointments(session, actor=clinic.owner, limit=50).items
            if a.overbooking
        ]


def race(clinic: Clinic, at: datetime, first: str) -> OverbookingRead | ConflictError:
    """Overbook beside a risky booking at `at` while it is cancelled, the `first` thread started first."""
    host = risky_booking(clinic, at, 0.5)
    client_id = clinic.client().id
    results: list[OverbookingRead | ConflictError] = []
    barrier = threading.Barrier(2)

    def overbook_it() -> None:
        with clock.using(clinic.clock):
            barrier.wait()
            try:
                results.append(overbook(clinic, client_id, at))
            except ConflictError as error:
                results.append(error)

    def cancel_it() -> None:
        with clock.using(clinic.clock):
            barrier.wait()
            with unit_of_work(clinic.engine) as session:
                scheduling.cancel_appointment(session, actor=clinic.owner, appointment_id=host.id, reason="x")

    order = [overbook_it, cancel_it] if first == "overbook" else [cancel_it, overbook_it]
    threads = [threading.Thread(target=f) for f in order]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results[0]


@pytest.mark.parametrize("first", ["overbook", "cancel"])
def test_an_overbooking_racing_the_cancellation_beside_it_never_leaves_it_marked_alone(
    clinic: Clinic, day: datetime, first: str
) -> None:
    """Whichever commits first, the end is consistent: either the overbooking was refused (nothing to
    stand beside), or it was booked and then took the provider's time over."""
    clinic.set_policy(overbooking_cap_minutes=60)
    for round_ in range(4):
        outcome = race(clinic, day + timedelta(hours=2 * round_), first)
        if isinstance(outcome, OverbookingRead):
            assert outcome.appointment is not None
            assert appointment(clinic, outcome.appointment.id).overbooking is None
        else:
            assert "free at that time" in str(outcome)


def test_a_cancellation_landing_between_the_check_and_the_booking_waits_for_it(
    clinic: Clinic, day: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancellation of the booking beside is run exactly while the overbooking is being written: it
    waits for the overbooking's transaction (the booking beside is locked), then hands its time over."""
    clinic.set_policy(overbooking_cap_minutes=60)
    host = risky_booking(clinic, day, 0.5)
    original = scheduling.overbook_appointment
    finished = threading.Event()

    def cancel() -> None:
        with clock.using(clinic.clock), unit_of_work(clinic.engine) as session:
            scheduling.cancel_appointment(session, actor=clinic.owner, appointment_id=host.id, reason="x")
        finished.set()

    def meanwhile(*args: Any, **kwargs: Any) -> AppointmentRead:
        canceller = threading.Thread(target=cancel)
        canceller.start()
        assert not finished.wait(1.0)  # it must wait for this transaction
        return original(*args, **kwargs)

    monkeypatch.setattr(scheduling, "overbook_appointment", meanwhile)
    made = overbook(clinic, clinic.client().id, day).appointment
    assert made is not None
    assert finished.wait(10)
    assert appointment(clinic, made.id).overbooking is None
    assert appointment(clinic, host.id).status == "cancelled"


def test_no_input_makes_the_overbooking_endpoint_fail(clinic: Clinic, day: datetime, api: TestClient) -> None:
    clinic.set_policy(overbooking_cap_minutes=60)
    risky_booking(clinic, day, 0.5)
    good = request(clinic, clinic.client().id, day).model_dump(mode="json")
    values: list[Any] = [
        None,
        "",
        "\x00",
        "x" * 100_000,
        -1,
        10**30,
        [],
        {},
        "9999-12-31T23:59:00Z",
        "0001-01-01T00:00:00Z",
        "2027-01-01T10:00:00",
        str(uuid.uuid4()),
    ]
    answers = []
    for field in good:
        for value in values:
            code = api.post("/api/v1/appointments/overbook", json={**good, field: value}).status_code
            if not (code == 201 and value is None and field in ("room_id", "device_id")):  # optional
                answers.append(code)
    assert (
        api.post(
            "/api/v1/appointments/overbook", content=b"{", headers={"Content-Type": "application/json"}
        ).status_code
        == 422
    )
    assert all(code in (403, 404, 409, 422) for code in answers), sorted(set(answers))
    policy = f"/api/v1/locations/{clinic.location_id}/engagement-policy"
    for cap in (-1, 481, 10**30, "x", "\x00", [], 1.5):
        assert api.patch(policy, json={"overbooking_cap_minutes": cap}).status_code == 422, cap
    assert api.get(policy).json()["overbooking_cap_minutes"] == 60
