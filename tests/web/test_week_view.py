"""The week view of a location: a row per provider (room, device), a cell per day, each appointment a
short line that opens its day; previous and next weeks; a bad date or `by` answered with 422."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.kit.db import unit_of_work
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.security.permissions import Role
from medspa.web import week as week_module
from medspa.web.board import VIEW_PROBLEM
from medspa.web.forms import DATE_PROBLEM
from tests.web.conftest import (
    BOOKING_SERVICE,
    Demo,
    local_today,
    new_booking,
)
from tests.web.test_roles import sign_in

ROW_HEAD = re.compile(r'<th scope="row">([^<]*)<small>')


def week_url(demo: Demo, day: date | str | None = None, by: str = "") -> str:
    query = "&".join(part for part in (f"date={day}" if day else "", f"by={by}" if by else "") if part)
    return f"/locations/{demo.location_id}/week" + (f"?{query}" if query else "")


def rows(page: str) -> dict[str, list[str]]:
    """The week table's rows by their heading's name, each as its seven day cells' markup."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    found = {}
    for row in body.split("<tr>")[1:]:
        heading = ROW_HEAD.search(row)
        assert heading is not None
        found[heading.group(1).strip()] = row.split("</th>", 1)[1].split("<td>")[1:]
    return found


def item(page: str, appointment_id: object) -> str:
    """The `<li ...>...</li>` of an appointment in the week."""
    at = page.index(f'id="week-appt-{appointment_id}"')
    return page[page.rindex("<li ", 0, at) : page.index("</li>", at) + len("</li>")]


def test_the_week_lists_an_appointment_in_its_providers_row_on_its_day(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day, booked = new_booking(engine, demo_template)
    with unit_of_work(engine, write=False) as session:
        provider = resources.get_provider(session, actor=demo_template.actor, provider_id=booked.provider_id)
    desk = sign_in(client, Role.FRONT_DESK)

    page = desk.get(week_url(demo_template, day))

    assert page.status_code == 200
    table = rows(page.text)
    cells = table[provider.name]
    assert len(cells) == 7
    holding = [index for index, cell in enumerate(cells) if f'id="week-appt-{booked.id}"' in cell]
    assert holding == [day.weekday()]
    assert page.text.count(f'id="week-appt-{booked.id}"') == 1
    line = item(page.text, booked.id)
    assert line in cells[day.weekday()]
    assert line.startswith('<li class="status-booked">')
    link = f'href="/locations/{demo_template.location_id}/day?date={day.isoformat()}#appt-{booked.id}"'
    assert link in line
    assert f"{BOOKING_SERVICE} · " in line
    assert '<span class="state">Booked</span>' in line
    assert '<caption id="week-caption">Appointments by provider and day' in page.text
    assert page.text.count('<th scope="col"') == 8
    # The day headers open each day; the day page links back to its week.
    monday = day - timedelta(days=day.weekday())
    base = f"/locations/{demo_template.location_id}"
    for offset in range(7):
        shown = (monday + timedelta(days=offset)).isoformat()
        assert f'href="{base}/day?date={shown}" title="Open the day"' in page.text
    day_page = desk.get(f"{base}/day?date={day.isoformat()}")
    assert f'href="{base}/week?date={day.isoformat()}">Week</a>' in day_page.text


def test_any_day_of_a_week_shows_that_week_with_links_to_the_weeks_before_and_after(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    today = local_today(engine, demo_template)
    monday = today - timedelta(days=today.weekday()) + timedelta(days=14)
    desk = sign_in(client, Role.FRONT_DESK)

    pages = [desk.get(week_url(demo_template, monday + timedelta(days=offset))) for offset in (0, 3, 6)]

    previous, following = (week_url(demo_template, monday + timedelta(days=d)) for d in (-7, 7))
    for page in pages:
        assert page.status_code == 200
        assert f"week of {monday.isoformat()}" in page.text  # the title
        assert f'href="{previous}">‹ Previous week</a>' in page.text
        assert f'href="{following}">Next week ›</a>' in page.text
        assert f'href="{week_url(demo_template, today)}">This week</a>' in page.text
        assert "This week</span>" not in page.text  # not this week: no tag
    this_week = desk.get(week_url(demo_template))
    assert f"week of {(today - timedelta(days=today.weekday())).isoformat()}" in this_week.text
    assert "This week</span>" in this_week.text


def test_a_cancelled_visit_is_listed_and_marked(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day, booked = new_booking(engine, demo_template)
    with unit_of_work(engine) as session:
        scheduling.cancel_appointment(
            session, actor=demo_template.actor, appointment_id=booked.id, reason="client asked"
        )
    desk = sign_in(client, Role.FRONT_DESK)

    page = desk.get(week_url(demo_template, day))

    assert page.status_code == 200
    line = item(page.text, booked.id)
    assert line.startswith('<li class="status-cancelled cancelled">')
    assert '<span class="state">Cancelled</span>' in line


@pytest.mark.parametrize(
    ("query", "problem"),
    [("not-a-date", DATE_PROBLEM), ("1800-01-01", DATE_PROBLEM), ("2099-13-40", DATE_PROBLEM)],
)
def test_a_bad_date_shows_this_week_with_why_and_422(
    client: TestClient, engine: Engine, demo_template: Demo, query: str, problem: str
) -> None:
    today = local_today(engine, demo_template)
    desk = sign_in(client, Role.FRONT_DESK)

    page = desk.get(week_url(demo_template, query))

    assert page.status_code == 422
    assert problem in page.text
    assert f"week of {(today - timedelta(days=today.weekday())).isoformat()}" in page.text
    assert '<table class="week">' in page.text


def test_an_unknown_by_shows_the_providers_rows_with_why_and_422(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    desk = sign_in(client, Role.FRONT_DESK)

    page = desk.get(week_url(demo_template, local_today(engine, demo_template), by="bogus"))

    assert page.status_code == 422
    assert VIEW_PROBLEM in page.text
    assert "Appointments by provider and day" in page.text


def test_rows_by_room_list_an_appointment_in_its_rooms_row(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day, booked = new_booking(engine, demo_template)
    with unit_of_work(engine, write=False) as session:
        room = resources.get_room(session, actor=demo_template.actor, room_id=booked.room_id)
        rooms = resources.list_rooms(
            session, actor=demo_template.actor, location_id=demo_template.location_id, limit=500
        ).items
    desk = sign_in(client, Role.FRONT_DESK)

    page = desk.get(week_url(demo_template, day, by="room"))

    assert page.status_code == 200
    table = rows(page.text)
    assert list(table) == [r.name for r in sorted(rooms, key=lambda r: (r.name, r.id))]
    holding = [i for i, cell in enumerate(table[room.name]) if f"week-appt-{booked.id}" in cell]
    assert holding == [day.weekday()]
    # Its link opens the day by room too.
    assert f"day?date={day.isoformat()}&amp;by=room#appt-{booked.id}" in page.text


def test_the_week_reads_its_appointments_in_one_query(
    client: TestClient, engine: Engine, demo_template: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = scheduling.list_appointments

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(week_module.scheduling, "list_appointments", counted)
    desk = sign_in(client, Role.FRONT_DESK)

    assert desk.get(week_url(demo_template, local_today(engine, demo_template))).status_code == 200

    assert len(calls) == 1
    assert calls[0]["limit"] == week_module.WEEK_LIMIT


@pytest.mark.parametrize("role", [Role.PROVIDER, Role.CONTRACTOR, Role.MANAGER])
def test_every_role_with_the_day_view_has_the_week(
    client: TestClient, engine: Engine, demo_template: Demo, role: Role
) -> None:
    day, booked = new_booking(engine, demo_template)
    sign_in(client, role)
    page = client.get(week_url(demo_template, day))
    assert page.status_code == 200
    assert f'id="week-appt-{booked.id}"' in page.text


def test_marketing_has_no_week_view(client: TestClient, engine: Engine, demo_template: Demo) -> None:
    sign_in(client, Role.MARKETING)
    page = client.get(week_url(demo_template, local_today(engine, demo_template)))
    assert page.status_code == 403
    assert "week-appt-" not in page.text
