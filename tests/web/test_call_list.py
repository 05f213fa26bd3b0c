"""The day page lists the day's booked, unconfirmed visits likely to be missed, for the desk to ring;
a provider, who does not ring clients, does not see it."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.clients import service as clients
from medspa.kit import tz
from medspa.kit.db import unit_of_work
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead
from medspa.security.actors import Role
from tests.web.conftest import Demo, booked_visits
from tests.web.test_roles import sign_in


def test_the_day_page_lists_whom_to_call(client: TestClient, engine: Engine, demo_template: Demo) -> None:
    actor = demo_template.actor
    location, visits = booked_visits(engine, demo_template, 2, 14)
    by_day: dict[date, list[AppointmentRead]] = {}
    for visit in visits:
        by_day.setdefault(tz.to_local(visit.starts_at, location.time_zone).date(), []).append(visit)
    risky, safe = next(v for v in by_day.values() if len(v) >= 2)[:2]
    with unit_of_work(engine) as session:
        scheduling.store_no_show_scores(
            session,
            actor=actor,
            probabilities={risky.id: 0.71, safe.id: 0.05},
            model_version="test",
            scored_at=risky.created_at,
        )
        person = clients.get_client(session, actor=actor, client_id=risky.client_id)
        other = clients.get_client(session, actor=actor, client_id=safe.client_id)
    day = tz.to_local(risky.starts_at, location.time_zone).date().isoformat()
    page = f"/locations/{location.id}/day?date={day}"
    desk = sign_in(client, Role.FRONT_DESK).get(page).text
    listed = desk.split('id="call-list"', 1)[1].split("</section>", 1)[0]
    assert f"{person.first_name} {person.last_name}" in listed
    assert "no-show risk 71%" in listed
    assert f"#appt-{risky.id}" in listed
    if person.phone:
        assert person.phone in listed
    assert f"{other.first_name} {other.last_name}" not in listed or other.id == person.id
    client.post("/logout")
    assert 'id="call-list"' not in sign_in(client, Role.PROVIDER).get(page).text
