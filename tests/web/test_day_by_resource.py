"""The day view's columns by room or by device: each block under its room's (device's) column, none of
them draggable (a move to another provider is the provider view's), the Move form still there; an
unknown `by` answered with 422; a button pressed in a room view answers with the day by room."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.kit.db import unit_of_work
from medspa.resources import service as resources
from medspa.security.permissions import Role
from medspa.web.board import NO_DEVICE, VIEW_PROBLEM
from tests.web.conftest import (
    Demo,
    appointments_on,
    local_today,
    new_booking,
)
from tests.web.test_roles import sign_in

HTMX = {"HX-Request": "true"}


def day_url(demo: Demo, day: date, by: str = "") -> str:
    return f"/locations/{demo.location_id}/day?date={day.isoformat()}" + (f"&by={by}" if by else "")


def columns(page: str) -> dict[str, str]:
    """The board's columns by their label, each as its markup."""
    found = {}
    for chunk in page.split('<div class="column"')[1:]:
        label = chunk.split('aria-label="', 1)[1].split('"', 1)[0]
        found[label] = chunk
    return found


def test_by_room_each_block_stands_in_its_rooms_column_and_none_can_be_dragged(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day, booked = new_booking(engine, demo_template)
    shown = [a for a in appointments_on(engine, demo_template, day) if a.status.value != "cancelled"]
    with unit_of_work(engine, write=False) as session:
        rooms = {
            r.id: r.name for r in resources.list_rooms(session, actor=demo_template.actor, limit=500).items
        }
        here = resources.list_rooms(
            session, actor=demo_template.actor, location_id=demo_template.location_id, limit=500
        ).items
    desk = sign_in(client, Role.FRONT_DESK)

    page = desk.get(day_url(demo_template, day, by="room"))

    assert page.status_code == 200
    board = columns(page.text)
    assert list(board) == [r.name for r in sorted(here, key=lambda r: (r.name, r.id))]
    for appointment in shown:
        holding = [name for name, markup in board.items() if f'id="appt-{appointment.id}"' in markup]
        assert holding == [rooms[appointment.room_id]]
    assert "data-provider=" not in page.text
    assert 'draggable="true"' not in page.text
    assert f'<form class="move" hx-post="/appointments/{booked.id}/move"' in page.text
    assert 'aria-current="page">Room</a>' in page.text


def test_by_device_a_block_stands_in_its_devices_column_or_under_no_device(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day, _ = new_booking(engine, demo_template)
    shown = [a for a in appointments_on(engine, demo_template, day) if a.status.value != "cancelled"]
    with unit_of_work(engine, write=False) as session:
        devices = {
            d.id: d.name for d in resources.list_devices(session, actor=demo_template.actor, limit=500).items
        }
    desk = sign_in(client, Role.FRONT_DESK)

    page = desk.get(day_url(demo_template, day, by="device"))

    assert page.status_code == 200
    board = columns(page.text)
    for appointment in shown:
        expected = devices[appointment.device_id] if appointment.device_id else NO_DEVICE
        holding = [name for name, markup in board.items() if f'id="appt-{appointment.id}"' in markup]
        assert holding == [expected]
    assert (NO_DEVICE in board) is any(a.device_id is None for a in shown)
    assert page.text.count('<article id="appt-') == len(shown)


def test_the_provider_view_stays_the_default_and_its_blocks_can_be_dragged(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day, booked = new_booking(engine, demo_template)
    desk = sign_in(client, Role.FRONT_DESK)

    page = desk.get(day_url(demo_template, day))

    assert page.status_code == 200
    assert f'data-provider="{booked.provider_id}"' in page.text
    assert 'draggable="true" data-move="/appointments/' + str(booked.id) in page.text
    assert 'aria-current="page">Provider</a>' in page.text
    assert f'href="{day_url(demo_template, day, by="room").replace("&", "&amp;")}"' in page.text


@pytest.mark.parametrize("by", ["bogus", "ROOM", "rooms", "provider,room"])
def test_an_unknown_by_shows_the_providers_columns_with_why_and_422(
    client: TestClient, engine: Engine, demo_template: Demo, by: str
) -> None:
    desk = sign_in(client, Role.FRONT_DESK)

    page = desk.get(day_url(demo_template, local_today(engine, demo_template), by=by))

    assert page.status_code == 422
    assert VIEW_PROBLEM in page.text
    assert "data-provider=" in page.text


def test_a_by_with_a_nul_is_refused_as_invalid_input_not_a_500(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    desk = sign_in(client, Role.FRONT_DESK)
    page = desk.get(day_url(demo_template, local_today(engine, demo_template), by="room%00"))
    assert page.status_code == 422
    assert "invalid input: by" in page.text


def test_a_button_pressed_in_the_room_view_answers_with_the_day_by_room(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day, booked = new_booking(engine, demo_template)
    desk = sign_in(client, Role.FRONT_DESK)
    page = "http://testserver" + day_url(demo_template, day, by="room")

    confirmed = desk.post(f"/appointments/{booked.id}/confirm", headers={**HTMX, "HX-Current-URL": page})

    assert confirmed.status_code == 200
    assert confirmed.text.lstrip().startswith('<section id="day"')
    assert f'id="appt-{booked.id}" class="appt status-confirmed"' in confirmed.text
    assert 'aria-current="page">Room</a>' in confirmed.text
    assert "data-provider=" not in confirmed.text
    # Without a page address (or with another view's), the providers' columns, as before.
    checked_in = desk.post(f"/appointments/{booked.id}/check_in", headers=HTMX)
    assert checked_in.status_code == 200
    assert "data-provider=" in checked_in.text


def test_marketing_has_no_day_by_room(client: TestClient, engine: Engine, demo_template: Demo) -> None:
    sign_in(client, Role.MARKETING)
    page = client.get(day_url(demo_template, local_today(engine, demo_template), by="room"))
    assert page.status_code == 403
    assert "appt-" not in page.text
