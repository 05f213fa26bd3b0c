"""A provider's own day: their column alone, their buttons, and after an update made from it, still their
column alone; other roles have no "my day"."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.kit.tz import to_local
from medspa.security.permissions import Role
from tests.web.conftest import Demo, booked_visits
from tests.web.test_roles import marsh_id, sign_in

COLUMN = re.compile(r'<div class="column" data-provider="([0-9a-f-]{36})"')


def test_a_provider_sees_their_own_day_and_keeps_it_after_an_update(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    marsh = str(marsh_id(engine, demo_template))
    location, visits = booked_visits(engine, demo_template, 1, 14)
    own = sorted((v for v in visits if str(v.provider_id) == marsh), key=lambda v: (v.starts_at, str(v.id)))
    assert own, "Dr. Marsh has bookings in the next two weeks"
    visit = own[0]
    day = to_local(visit.starts_at, location.time_zone).date().isoformat()
    provider = sign_in(client, Role.PROVIDER)

    page = provider.get(f"/my-day?date={day}")
    assert page.status_code == 200
    assert COLUMN.findall(page.text) == [marsh]
    assert "My day:" in page.text
    assert 'href="/my-day"' in page.text  # the top bar's link, marked as the current page
    assert 'hx-get="/my-day?date=' in page.text  # the day's navigation stays on my day
    assert f"/appointments/{visit.id}/check_in" in page.text
    own = page.text.count('<article id="appt-')
    assert f"· {own} appointment" in page.text  # the count is of their own visits, not the clinic's
    assert f'href="/locations/{location.id}/day" aria-current' not in page.text  # my day is the current page

    whole = provider.get(f"/locations/{location.id}/day?date={day}").text
    assert len(COLUMN.findall(whole)) > 1

    updated = provider.post(
        f"/appointments/{visit.id}/check_in",
        headers={
            "HX-Request": "true",
            "HX-Target": "day",
            "HX-Current-URL": f"http://testserver/my-day?date={day}",
        },
    )
    assert updated.status_code == 200
    assert COLUMN.findall(updated.text) == [marsh]
    assert "My day:" in updated.text
    assert provider.get("/my-day?date=not-a-date").status_code == 422


def test_other_roles_have_no_my_day(client: TestClient) -> None:
    desk = sign_in(client, Role.FRONT_DESK)
    assert 'href="/my-day"' not in desk.get("/").text
    refused = desk.get("/my-day")
    assert refused.status_code == 404
    assert "provider" in refused.text
