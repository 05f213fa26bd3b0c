"""Bad input on the pages: a date that is not one or lies outside the accepted range, a slot out of
range, a NUL in a form or query. Each answers 422 with the reason on the page, shows no stale results,
and changes nothing."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from medspa.kit.db import unit_of_work
from medspa.kit.outbox import OutboxEvent
from medspa.web.forms import DATE_PROBLEM
from tests.web.conftest import Demo, booking_service_id, first_day_with_slots, local_today

HTMX = {"HX-Request": "true"}
BAD_DATES = ["9999-12-31", "0001-01-01", "2200-01-01", "2026-02-31"]
SLOT_BUTTON = re.compile(r'name="slot" value="')


@pytest.fixture
def nothing_stored(engine: Engine) -> Iterator[None]:
    """Asserts, once the test is done, that nothing was written (every write records an outbox event)."""

    def count() -> int:
        with unit_of_work(engine, write=False) as session:
            return session.scalar(select(func.count()).select_from(OutboxEvent)) or 0

    before = count()
    yield
    assert count() == before


@pytest.mark.parametrize("day", BAD_DATES)
def test_the_day_page_for_a_date_out_of_range_shows_today_and_why(
    signed_in: TestClient, engine: Engine, demo_template: Demo, day: str
) -> None:
    page = signed_in.get(f"/locations/{demo_template.location_id}/day", params={"date": day})
    assert page.status_code == 422
    assert DATE_PROBLEM in page.text
    assert f'data-date="{local_today(engine, demo_template).isoformat()}"' in page.text


@pytest.mark.parametrize("day", BAD_DATES)
def test_the_day_section_for_a_date_out_of_range_is_swapped_in_with_the_reason(
    signed_in: TestClient, engine: Engine, demo_template: Demo, day: str
) -> None:
    fragment = signed_in.get(
        f"/locations/{demo_template.location_id}/day",
        params={"date": day},
        headers={**HTMX, "HX-Target": "day"},
    )
    assert fragment.status_code == 422
    assert fragment.text.lstrip().startswith('<section id="day"')
    assert DATE_PROBLEM in fragment.text


@pytest.mark.parametrize("day", BAD_DATES)
def test_slots_for_a_date_out_of_range_are_none_with_the_reason(
    signed_in: TestClient, engine: Engine, demo_template: Demo, day: str
) -> None:
    service_id = booking_service_id(engine, demo_template)
    fragment = signed_in.get(
        f"/locations/{demo_template.location_id}/slots",
        params={"service_id": str(service_id), "date": day},
        headers=HTMX,
    )
    # 422 is swapped in (the page's htmx config), so the slots of an earlier search do not stay.
    assert fragment.status_code == 422
    assert fragment.text.lstrip().startswith('<div id="slots"')
    assert DATE_PROBLEM in fragment.text
    assert not SLOT_BUTTON.search(fragment.text)


def test_a_slot_out_of_range_books_nothing(
    signed_in: TestClient, engine: Engine, demo_template: Demo, nothing_stored: None
) -> None:
    service_id = booking_service_id(engine, demo_template)
    day, [slot, *_] = first_day_with_slots(engine, demo_template, service_id)
    with unit_of_work(engine, write=False) as session:
        client_id = session.scalar(
            select(OutboxEvent.aggregate_id).where(OutboxEvent.topic == "client.created")
        )
    response = signed_in.post(
        f"/locations/{demo_template.location_id}/appointments",
        data={
            "client_id": str(client_id),
            "service_id": str(service_id),
            "date": day.isoformat(),
            "slot": f"9999-12-31T10:00:00-14:00|{slot.provider_id}|{slot.room_id}|",
        },
        headers=HTMX,
    )
    assert response.status_code == 422
    assert "Pick one of the slots" in response.text


def test_optimizing_a_date_out_of_range_says_why(
    signed_in: TestClient, demo_template: Demo, nothing_stored: None
) -> None:
    response = signed_in.post(
        f"/locations/{demo_template.location_id}/proposals", data={"date": "9999-12-31"}, headers=HTMX
    )
    assert response.status_code == 422
    assert DATE_PROBLEM in response.text


def test_a_nul_in_a_form_or_query_is_422_and_changes_nothing(
    signed_in: TestClient, demo_template: Demo, nothing_stored: None
) -> None:
    cancel = signed_in.post(f"/appointments/{uuid.uuid4()}/cancel", data={"reason": "ill\x00"}, headers=HTMX)
    search = signed_in.get(f"/locations/{demo_template.location_id}/clients", params={"q": "a\x00@b.example"})
    login = signed_in.post(
        "/login", data={"organization": "demo\x00", "email": "a@b.example", "password": "x"}
    )
    for response in (cancel, search, login):
        assert response.status_code == 422
        assert "text/html" in response.headers["content-type"]
        assert "invalid input" in response.text


def test_the_merge_call_list_and_my_day_answer_bad_input_with_4xx_and_change_nothing(
    client: TestClient, engine: Engine, demo_template: Demo, nothing_stored: None
) -> None:
    from medspa.security.actors import Role
    from tests.web.test_roles import sign_in

    someone = uuid.uuid4()
    junk = ["", "\x00", "x" * 5000, "-1", "99999999999999999999", "null", "9999-12-31", str(someone)]
    manager = sign_in(client, Role.MANAGER)
    answers = []
    for value in junk:
        segment = quote(value or "x", safe="")
        answers.append(manager.post(f"/clients/{someone}/merge", data={"duplicate_id": value}))
        answers.append(manager.post(f"/clients/{segment}/merge", data={"duplicate_id": str(someone)}))
        answers.append(manager.post(f"/appointments/{segment}/call/remind", headers=HTMX))
        answers.append(manager.post(f"/appointments/{segment}/call/deposit", headers=HTMX))
        answers.append(manager.get("/my-day", params={"date": value}))
    answers.append(manager.post(f"/clients/{someone}/merge", content=b"\xff\xfe", headers=HTMX))
    statuses = sorted({a.status_code for a in answers})
    assert all(400 <= s < 500 for s in statuses), statuses
