"""Appointments from a connected system: booked, moved and taken through our lifecycle by scheduling's own
functions, with the source's locations, services and providers mapped to ours; a delivery that cannot
land yet (its client not received, a mapping not made, the time still held) waits and lands later."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from medspa.integrations.apply import MAX_WAITS, apply_pending
from medspa.integrations.models import ExternalLink, InboxEvent
from medspa.kit import clock
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.outbox import OutboxEvent
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead
from medspa.security.actors import Actor
from tests.factories import make_location, make_provider, make_room, make_service
from tests.integrations.test_webhooks import (
    MINDBODY_SECRET,
    ZENOTI_SECRET,
    connect,
    mb_client,
    mindbody_event,
    mindbody_headers,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # a Monday; the clinic is in New York (UTC-5)


@dataclass
class Clinic:
    location: uuid.UUID
    service: uuid.UUID
    providers: tuple[uuid.UUID, uuid.UUID]


@pytest.fixture
def clinic(engine: Engine, owner: Actor, test_clock: ManualClock) -> Clinic:
    test_clock.set(NOW)
    with unit_of_work(engine) as session:
        location = make_location(session, actor=owner)
        first = make_provider(session, actor=owner, location_id=location.id)
        second = make_provider(session, actor=owner, location_id=location.id)
        make_room(session, actor=owner, location_id=location.id)
        make_room(session, actor=owner, location_id=location.id)
        service = make_service(session, actor=owner)
    return Clinic(location.id, service.id, (first.id, second.id))


def mapped(api: TestClient, clinic: Clinic, connection: str) -> None:
    for kind, external, ours in (
        ("location", "1", clinic.location),
        ("service", "55", clinic.service),
        ("provider", "7", clinic.providers[0]),
        ("provider", "8", clinic.providers[1]),
    ):
        answer = api.put(
            f"/api/v1/integrations/connections/{connection}/mappings",
            json={"kind": kind, "external_id": external, "record_id": str(ours)},
        )
        assert answer.status_code == 200, answer.text


def connected(api: TestClient, clinic: Clinic) -> str:
    """A Mindbody connection with the clinic mapped, and its client 100 sent."""
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    mapped(api, clinic, mindbody)
    send_mindbody(api, mindbody, "client.created", mb_client("100", "ana@example.org"), NOW)
    return mindbody


def mb_appointment(
    number: str, start: str, *, staff: int = 7, status: str = "Booked", client: str = "100"
) -> dict[str, Any]:
    return {
        "siteId": 1,
        "appointmentId": int(number),
        "status": status,
        "locationId": 1,
        "clientId": client,
        "staffId": staff,
        "sessionTypeId": 55,
        "startDateTime": start,
        "endDateTime": start,
    }


def tick() -> None:
    """Let the next delivery be received a moment later: the inbox takes them in the order received."""
    ticking = clock.current()
    assert isinstance(ticking, ManualClock)
    ticking.advance(timedelta(milliseconds=1))


def send_mindbody(api: TestClient, connection: str, event: str, data: dict[str, Any], at: datetime) -> None:
    tick()
    body = mindbody_event(event, data, at=at)
    answer = api.post(f"/api/v1/webhooks/mindbody/{connection}", content=body, headers=mindbody_headers(body))
    assert answer.status_code == 202, answer.text


def linked(engine: Engine, owner: Actor, external_id: str) -> AppointmentRead:
    with unit_of_work(engine, write=False) as session:
        record = session.scalar(
            select(ExternalLink.record_id).where(
                ExternalLink.organization_id == owner.organization_id,
                ExternalLink.kind == "appointment",
                ExternalLink.external_id == external_id,
            )
        )
        assert record is not None, f"no appointment linked to {external_id}"
        return scheduling.get_appointment(session, actor=owner, appointment_id=record)


def topics(engine: Engine, owner: Actor, topic: str) -> int:
    with unit_of_work(engine, write=False) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.organization_id == owner.organization_id, OutboxEvent.topic == topic)
            )
            or 0
        )


def states(engine: Engine, owner: Actor) -> list[tuple[str, str, str | None]]:
    with unit_of_work(engine, write=False) as session:
        rows = session.execute(
            select(InboxEvent.event_type, InboxEvent.state, InboxEvent.last_error)
            .where(InboxEvent.organization_id == owner.organization_id)
            .order_by(InboxEvent.received_at, InboxEvent.id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_mindbody_appointment_is_booked_moved_confirmed_and_cancelled_once(
    api: TestClient, engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    mindbody = connected(api, clinic)
    send_mindbody(
        api, mindbody, "appointmentBooking.created", mb_appointment("501", "2026-12-08T10:00:00"), NOW
    )
    assert apply_pending(engine, organization_id=owner.organization_id).applied == 2
    booked = linked(engine, owner, "501")
    # The source's wall clock is the location's: 10:00 in New York is 15:00 UTC.
    assert booked.starts_at == datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
    assert (booked.provider_id, booked.status) == (clinic.providers[0], "booked")

    later = NOW + timedelta(minutes=1)
    moved = mb_appointment("501", "2026-12-08T11:30:00", staff=8, status="Confirmed")
    send_mindbody(api, mindbody, "appointmentBooking.updated", moved, later)
    assert apply_pending(engine, organization_id=owner.organization_id).applied == 1
    now_there = linked(engine, owner, "501")
    assert now_there.starts_at == datetime(2026, 12, 8, 16, 30, tzinfo=UTC)
    assert (now_there.provider_id, now_there.status) == (clinic.providers[1], "confirmed")

    # The cancellation arrives twice (two deliveries of it): one cancellation, one event for the rest.
    for minutes in (2, 3):
        gone = mb_appointment("501", "2026-12-08T11:30:00", staff=8, status="Cancelled")
        send_mindbody(api, mindbody, "appointmentBooking.cancelled", gone, NOW + timedelta(minutes=minutes))
    report = apply_pending(engine, organization_id=owner.organization_id)
    assert (report.applied, report.skipped) == (1, 1)
    assert linked(engine, owner, "501").status == "cancelled"
    assert topics(engine, owner, "appointment.cancelled") == 1
    assert topics(engine, owner, "appointment.booked") == 1
    assert topics(engine, owner, "appointment.rescheduled") == 1
    with unit_of_work(engine, write=False) as session:
        history = scheduling.appointment_history(session, actor=owner, appointment_id=now_there.id)
    assert {step.actor for step in history} == {f"integration:mindbody:{mindbody}"}


def test_an_older_update_after_a_newer_one_changes_nothing(
    api: TestClient, engine: Engine, owner: Actor, clinic: Clinic, test_clock: ManualClock
) -> None:
    mindbody = connected(api, clinic)
    newest = mb_appointment("502", "2026-12-08T14:00:00", status="Confirmed")
    send_mindbody(api, mindbody, "appointmentBooking.created", newest, NOW + timedelta(minutes=5))
    test_clock.advance(timedelta(seconds=1))  # received after the newer one
    older = mb_appointment("502", "2026-12-08T09:00:00")
    send_mindbody(api, mindbody, "appointmentBooking.updated", older, NOW + timedelta(minutes=1))
    apply_pending(engine, organization_id=owner.organization_id)
    kept = linked(engine, owner, "502")
    assert (kept.starts_at, kept.status) == (datetime(2026, 12, 8, 19, 0, tzinfo=UTC), "confirmed")
    assert [s[1] for s in states(engine, owner)] == ["applied", "applied", "skipped"]


def test_an_appointment_before_its_client_waits_and_then_lands(
    api: TestClient, engine: Engine, owner: Actor, clinic: Clinic, test_clock: ManualClock
) -> None:
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    mapped(api, clinic, mindbody)
    send_mindbody(
        api, mindbody, "appointmentBooking.created", mb_appointment("503", "2026-12-08T10:00:00"), NOW
    )
    first = apply_pending(engine, organization_id=owner.organization_id)
    assert (first.applied, first.failed) == (0, 1)
    (waiting,) = states(engine, owner)
    assert waiting[1] == "received"
    assert "client 100 has not been received" in (waiting[2] or "")
    # Not tried again before its time, even when asked.
    assert apply_pending(engine, organization_id=owner.organization_id).failed == 0
    send_mindbody(api, mindbody, "client.created", mb_client("100", "ana@example.org"), NOW)
    test_clock.advance(timedelta(seconds=3))
    assert apply_pending(engine, organization_id=owner.organization_id).applied == 2
    assert linked(engine, owner, "503").status == "booked"


def test_an_unmapped_service_waits_gives_up_and_is_sent_back_once_mapped(
    api: TestClient, engine: Engine, owner: Actor, clinic: Clinic, test_clock: ManualClock
) -> None:
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    send_mindbody(api, mindbody, "client.created", mb_client("100", "ana@example.org"), NOW)
    send_mindbody(
        api, mindbody, "appointmentBooking.created", mb_appointment("504", "2026-12-08T10:00:00"), NOW
    )
    for _ in range(MAX_WAITS):
        apply_pending(engine, organization_id=owner.organization_id)
        test_clock.advance(timedelta(minutes=11))
    _, state, reason = states(engine, owner)[1]
    assert state == "failed"
    assert "provider 7 is not mapped" in (reason or "")
    # The only location needs no mapping; the service and provider do.
    mapped(api, clinic, mindbody)
    with unit_of_work(engine, write=False) as session:
        failed_id = session.scalar(
            select(InboxEvent.id).where(
                InboxEvent.organization_id == owner.organization_id, InboxEvent.state == "failed"
            )
        )
    answer = api.post(f"/api/v1/integrations/inbox/{failed_id}/retry")
    assert answer.status_code == 200
    assert answer.json()["state"] == "received"
    assert api.post(f"/api/v1/integrations/inbox/{failed_id}/retry").status_code == 409
    assert api.post(f"/api/v1/integrations/inbox/{uuid.uuid4()}/retry").status_code == 404
    assert apply_pending(engine, organization_id=owner.organization_id).applied == 1
    assert linked(engine, owner, "504").provider_id == clinic.providers[0]


def test_mappings_name_our_own_records_only(api: TestClient, clinic: Clinic) -> None:
    mindbody = connect(api, "mindbody", MINDBODY_SECRET)
    path = f"/api/v1/integrations/connections/{mindbody}/mappings"
    wrong = [
        ({"kind": "service", "external_id": "55", "record_id": str(uuid.uuid4())}, 404),
        ({"kind": "service", "external_id": "55", "record_id": str(clinic.location)}, 404),
        ({"kind": "room", "external_id": "55", "record_id": str(clinic.service)}, 422),
        ({"kind": "service", "external_id": "", "record_id": str(clinic.service)}, 422),
        ({"kind": "service", "external_id": "5\x005", "record_id": str(clinic.service)}, 422),
        ({"kind": "service", "external_id": "x" * 201, "record_id": str(clinic.service)}, 422),
        ({"kind": "service", "external_id": None, "record_id": str(clinic.service)}, 422),
    ]
    for body, status in wrong:
        assert api.put(path, json=body).status_code == status, body
    assert (
        api.put(f"/api/v1/integrations/connections/{uuid.uuid4()}/mappings", json=wrong[0][0]).status_code
        == 404
    )
    assert api.get(path).json()["total"] == 0
    mapped(api, clinic, mindbody)
    mapped(api, clinic, mindbody)  # set again: moved in place, not doubled
    assert api.get(path).json()["total"] == 4


def zenoti_appointment(status: int, start: str, at: datetime) -> bytes:
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
            "event_type": "appointment.updated",
            "event_timestamp": at.isoformat(),
            "data": {
                "appointment_id": "z-9",
                "guest": {"id": "g-1"},
                "therapist": {"id": "t-7"},
                "service": {"id": "s-55", "name": "Toxin"},
                "center_id": "c-1",
                "start_time": start,
                "end_time": start,
                "status": status,
            },
        }
    ).encode()


def test_zenoti_statuses_by_number_and_a_polled_cancellation(
    api: TestClient, engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    zenoti = connect(api, "zenoti", ZENOTI_SECRET, signature_header="X-Signature", signature_encoding="hex")
    for kind, external, ours in (
        ("service", "s-55", clinic.service),
        ("provider", "t-7", clinic.providers[0]),
        ("location", "c-1", clinic.location),
    ):
        body = {"kind": kind, "external_id": external, "record_id": str(ours)}
        assert api.put(f"/api/v1/integrations/connections/{zenoti}/mappings", json=body).status_code == 200

    def send(body: bytes) -> None:
        import hashlib
        import hmac

        signature = hmac.new(ZENOTI_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Signature": signature}
        tick()
        assert api.post(f"/api/v1/webhooks/zenoti/{zenoti}", content=body, headers=headers).status_code == 202

    guest = {
        "id": "g-1",
        "personal_info": {"first_name": "Zia", "last_name": "Noti", "email": "zia@example.org"},
    }
    send(
        json.dumps(
            {
                "id": "e0",
                "event_id": "e0",
                "event_type": "guest.created",
                "event_timestamp": NOW.isoformat(),
                "data": guest,
            }
        ).encode()
    )
    send(zenoti_appointment(4, "2026-12-08T13:00:00", NOW + timedelta(minutes=1)))
    apply_pending(engine, organization_id=owner.organization_id)
    confirmed = linked(engine, owner, "z-9")
    assert (confirmed.status, confirmed.starts_at) == ("confirmed", datetime(2026, 12, 8, 18, 0, tzinfo=UTC))
    send(zenoti_appointment(-1, "2026-12-08T13:00:00", NOW + timedelta(minutes=2)))
    send(zenoti_appointment(99, "2026-12-08T13:00:00", NOW + timedelta(minutes=3)))
    apply_pending(engine, organization_id=owner.organization_id)
    assert linked(engine, owner, "z-9").status == "cancelled"
    assert "status we do not know: 99" in (states(engine, owner)[-1][2] or "")
    assert topics(engine, owner, "appointment.cancelled") == 1


def test_a_time_still_held_waits_for_the_source_to_free_it(
    api: TestClient, engine: Engine, owner: Actor, clinic: Clinic, test_clock: ManualClock
) -> None:
    """Out of order: the source moved appointment 601 away from 10:00 and booked 602 there, and 602's
    booking arrives first. It waits until the move has landed, then takes the time."""
    mindbody = connected(api, clinic)
    send_mindbody(api, mindbody, "client.created", mb_client("101", "bo@example.org", first="Bo"), NOW)
    send_mindbody(
        api, mindbody, "appointmentBooking.created", mb_appointment("601", "2026-12-08T10:00:00"), NOW
    )
    apply_pending(engine, organization_id=owner.organization_id)
    taker = mb_appointment("602", "2026-12-08T10:00:00", client="101")
    send_mindbody(api, mindbody, "appointmentBooking.created", taker, NOW + timedelta(minutes=2))
    assert apply_pending(engine, organization_id=owner.organization_id).failed == 1
    mover = mb_appointment("601", "2026-12-08T15:00:00")
    send_mindbody(api, mindbody, "appointmentBooking.updated", mover, NOW + timedelta(minutes=1))
    test_clock.advance(timedelta(seconds=3))
    apply_pending(engine, organization_id=owner.organization_id)
    assert linked(engine, owner, "601").starts_at == datetime(2026, 12, 8, 20, 0, tzinfo=UTC)
    assert linked(engine, owner, "602").starts_at == datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
    assert linked(engine, owner, "602").provider_id == clinic.providers[0]


def test_an_unmapped_provider_is_not_guessed(
    api: TestClient, engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    mindbody = connected(api, clinic)
    send_mindbody(
        api,
        mindbody,
        "appointmentBooking.created",
        mb_appointment("505", "2026-12-08T10:00:00", staff=99),
        NOW,
    )
    apply_pending(engine, organization_id=owner.organization_id)
    assert "provider 99 is not mapped" in (states(engine, owner)[1][2] or "")
    assert topics(engine, owner, "appointment.booked") == 0


def test_a_cancellation_before_its_booking_leaves_nothing_booked(
    api: TestClient, engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    mindbody = connected(api, clinic)
    gone = mb_appointment("506", "2026-12-08T10:00:00", status="Cancelled")
    send_mindbody(api, mindbody, "appointmentBooking.cancelled", gone, NOW + timedelta(minutes=2))
    booked = mb_appointment("506", "2026-12-08T10:00:00")
    send_mindbody(api, mindbody, "appointmentBooking.created", booked, NOW + timedelta(minutes=1))
    confirmed = mb_appointment("507", "2026-12-08T12:00:00", status="NoShow")
    send_mindbody(api, mindbody, "appointmentBooking.updated", confirmed, NOW + timedelta(minutes=2))
    report = apply_pending(engine, organization_id=owner.organization_id)
    assert (report.applied, report.skipped) == (1, 3)
    assert topics(engine, owner, "appointment.booked") == 0
    reasons = [s[2] for s in states(engine, owner)[1:]]
    assert reasons == [
        "cancelled at the source before it reached us: nothing to record",
        "stale: the source ended it after this state",
        "no-show at the source before it reached us: nothing to record",
    ]


def test_copies_of_one_booking_applied_by_workers_at_once_book_it_once(
    api: TestClient, engine: Engine, owner: Actor, clinic: Clinic, test_clock: ManualClock
) -> None:
    """Each booking arrives three times (the source's retries under new message ids, so three inbox
    rows); four workers take one row each at a time. Every appointment is booked once."""
    mindbody = connected(api, clinic)
    starts = ("2026-12-08T09:00:00", "2026-12-08T10:00:00", "2026-12-08T11:00:00", "2026-12-08T12:00:00")
    for number, start in enumerate(starts):
        for _ in range(3):
            visit = mb_appointment(f"70{number}", start, staff=7 + number % 2)
            send_mindbody(api, mindbody, "appointmentBooking.created", visit, NOW)
    apply_pending(engine, organization_id=owner.organization_id, limit=1)  # the client first
    barrier = threading.Barrier(4)

    def work() -> None:
        with clock.using(test_clock):
            barrier.wait()
            while apply_pending(engine, organization_id=owner.organization_id, limit=1).applied:
                pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    test_clock.advance(timedelta(minutes=1))
    apply_pending(engine, organization_id=owner.organization_id)  # what a lost race left for later
    assert topics(engine, owner, "appointment.booked") == 4
    assert {s[1] for s in states(engine, owner)} == {"applied", "skipped"}
    assert [linked(engine, owner, f"70{n}").status for n in range(4)] == ["booked"] * 4


def test_the_sources_past_and_far_ahead_appointments_are_recorded_but_the_desk_keeps_its_rules(
    api: TestClient, engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    """A connected system's bookings were made under its own notice and horizon: one that has already
    happened (first seen after it was completed, or moved within the past) is recorded and stepped to the
    source's status, and one beyond our horizon is booked; our own booking path still refuses both."""
    mindbody = connected(api, clinic)
    done = mb_appointment("601", "2026-12-04T10:00:00", status="Completed")
    send_mindbody(api, mindbody, "appointmentBooking.updated", done, NOW)
    ahead = mb_appointment("602", "2028-01-11T10:00:00")  # past the location's 365-day horizon
    send_mindbody(api, mindbody, "appointmentBooking.created", ahead, NOW)
    report = apply_pending(engine, organization_id=owner.organization_id)
    assert (report.applied, report.skipped, report.failed) == (3, 0, 0), states(engine, owner)
    past = linked(engine, owner, "601")
    assert (past.starts_at, past.status) == (datetime(2026, 12, 4, 15, 0, tzinfo=UTC), "completed")
    assert linked(engine, owner, "602").starts_at == datetime(2028, 1, 11, 15, 0, tzinfo=UTC)

    earlier = mb_appointment("603", "2026-12-05T11:00:00", status="Booked")
    send_mindbody(api, mindbody, "appointmentBooking.created", earlier, NOW)
    moved = mb_appointment("603", "2026-12-05T13:00:00", staff=8, status="Completed")
    send_mindbody(api, mindbody, "appointmentBooking.updated", moved, NOW + timedelta(minutes=1))
    assert apply_pending(engine, organization_id=owner.organization_id).applied == 2
    corrected = linked(engine, owner, "603")
    assert (corrected.starts_at, corrected.provider_id, corrected.status) == (
        datetime(2026, 12, 5, 18, 0, tzinfo=UTC),
        clinic.providers[1],
        "completed",
    )

    for start in ("2026-12-04T19:00:00Z", "2028-01-11T19:00:00Z"):
        answer = api.post(
            "/api/v1/appointments",
            json={
                "client_id": str(past.client_id),
                "service_id": str(clinic.service),
                "location_id": str(clinic.location),
                "starts_at": start,
            },
        )
        assert answer.status_code == 422, answer.text
        assert "starts_at" in answer.text


def test_a_start_outside_the_dates_we_take_is_skipped_with_the_reason_not_retried(
    api: TestClient, engine: Engine, owner: Actor, clinic: Clinic
) -> None:
    mindbody = connected(api, clinic)
    for number, start in (("701", "9999-12-31T10:00:00"), ("702", "0001-01-01T10:00:00")):
        done = mb_appointment(number, start, status="Completed")
        send_mindbody(api, mindbody, "appointmentBooking.created", done, NOW)
    report = apply_pending(engine, organization_id=owner.organization_id)
    assert (report.applied, report.skipped, report.failed) == (1, 2, 0)  # the client, then the two
    skipped = [s for s in states(engine, owner) if s[1] == "skipped"]
    assert len(skipped) == 2
    assert all("starts_at" in (reason or "") for _, _, reason in skipped)
    assert topics(engine, owner, "appointment.booked") == 0
