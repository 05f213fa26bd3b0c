"""Moving an appointment from the day page (its Move form, or a drop on the grid, which posts the same):
to a free time it moves, onto a taken one it stays and the page says why; a provider moves only their
own."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.tz import to_local
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, SlotRead
from medspa.security.actors import Role
from tests.web.conftest import Demo, book_new_client, booking_service_id, free_slots, local_today
from tests.web.test_roles import sign_in


def booked_with_room_to_move(engine: Engine, demo: Demo) -> tuple[AppointmentRead, SlotRead, str]:
    """A new booking at a free slot, another free start (of any provider) apart from it, and the zone."""
    service_id = booking_service_id(engine, demo)
    today = local_today(engine, demo)
    slots = free_slots(engine, demo, service_id, today + timedelta(days=1), today + timedelta(days=20))
    later = next(s for s in slots if s.starts_at >= slots[0].ends_at + timedelta(hours=2))
    return book_new_client(engine, demo, service_id, slots[0]), later, "America/New_York"


def test_the_desk_moves_a_booking_to_a_free_time_and_is_told_why_not_onto_a_taken_one(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    booked, later, zone = booked_with_room_to_move(engine, demo_template)
    desk = sign_in(client, Role.FRONT_DESK)
    url = f"/appointments/{booked.id}/move"
    local = to_local(later.starts_at, zone)
    assert desk.post(url, data={"date": local.date().isoformat(), "time": "25:99"}).status_code == 422
    assert desk.post(url, data={"date": "x", "time": "10:00"}).status_code == 422
    moved = desk.post(
        url,
        data={
            "date": local.date().isoformat(),
            "time": local.strftime("%H:%M"),
            "provider_id": str(later.provider_id),
        },
    )
    assert moved.status_code == 200, moved.text
    assert "Moved " in moved.text
    with unit_of_work(engine, write=False) as session:
        now = scheduling.get_appointment(session, actor=demo_template.actor, appointment_id=booked.id)
        others = [
            a
            for a in scheduling.list_appointments(
                session, actor=demo_template.actor, location_id=demo_template.location_id, limit=1000
            ).items
            if a.provider_id == now.provider_id
            and a.id != now.id
            and a.status.value in ("booked", "confirmed")
            and a.starts_at > clock.now() + timedelta(days=1)  # a time one could move to, were it free
        ]
    assert now.starts_at == later.starts_at
    taken = others[0]
    at = to_local(taken.starts_at, zone)
    refused = desk.post(
        url,
        data={
            "date": at.date().isoformat(),
            "time": at.strftime("%H:%M"),
            "provider_id": str(taken.provider_id),
        },
    )
    assert refused.status_code == 409
    assert "Could not move it" in refused.text
    with unit_of_work(engine, write=False) as session:
        still = scheduling.get_appointment(session, actor=demo_template.actor, appointment_id=booked.id)
    assert still.starts_at == later.starts_at
