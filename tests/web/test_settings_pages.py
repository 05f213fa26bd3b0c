"""The settings pages: an owner or manager sets a location's hours and closures, each provider's shifts,
breaks and time off, the rooms, the devices and their maintenance, and the services, and each change is
what the service functions then read; other roles are refused and nothing is written; bad input answers
422 with the reason and nothing is written, never a 500."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from medspa.catalog import service as catalog
from medspa.kit.db import unit_of_work
from medspa.kit.outbox import OutboxEvent
from medspa.kit.tz import local_day_bounds
from medspa.resources import service as resources
from medspa.resources.schemas import ProviderRead, WeeklySpan
from medspa.security.permissions import Role
from medspa.web import settings
from tests.factories import make_location, make_provider, make_room
from tests.web.conftest import Demo, booking_service_id, first_day_with_slots, free_slots
from tests.web.test_roles import sign_in

ZONE = "America/New_York"
PAGES = ["", "/staff", "/rooms", "/devices", "/services"]
SERVICE_FORM = {
    "name": "Glow Peel",
    "category": "skin",
    "duration_minutes": "45",
    "setup_minutes": "5",
    "cleanup_minutes": "",
    "required_skill": "facial",
    "required_license": "",
    "room_types": "treatment, facial",
    "device_type": "",
    "price": "$1,120.5",
    "cost": "30",
    "post_care_instructions": "No sun for two days.",
    "follow_up_days": "30",
}


def _url(demo: Demo, suffix: str = "") -> str:
    return f"/locations/{demo.location_id}/settings{suffix}"


def _events(engine: Engine) -> int:
    """How many changes were ever written: every write records an outbox event."""
    with unit_of_work(engine, write=False) as session:
        return session.scalar(select(func.count()).select_from(OutboxEvent)) or 0


@pytest.fixture
def nothing_written(engine: Engine) -> Iterator[None]:
    before = _events(engine)
    yield
    assert _events(engine) == before


def _providers(engine: Engine, demo: Demo) -> list[ProviderRead]:
    with unit_of_work(engine, write=False) as session:
        return resources.list_providers(session, actor=demo.actor, location_id=demo.location_id).items


def _week(*rows: tuple[str, str, str]) -> dict[str, list[str]]:
    return {
        "weekday": [r[0] for r in rows],
        "starts_at": [r[1] for r in rows],
        "ends_at": [r[2] for r in rows],
    }


def _config(engine: Engine, demo: Demo) -> resources.LocationConfig:
    with unit_of_work(engine, write=False) as session:
        return resources.location_config(session, actor=demo.actor, location_id=demo.location_id)


def _ids(engine: Engine, demo: Demo) -> dict[str, uuid.UUID]:
    """An id of each kind the settings routes take, all at the demo location."""
    with unit_of_work(engine, write=False) as session:
        actor, here = demo.actor, demo.location_id
        return {
            "location_id": here,
            "provider_id": resources.list_providers(session, actor=actor, location_id=here).items[0].id,
            "room_id": resources.list_rooms(session, actor=actor, location_id=here).items[0].id,
            "device_id": resources.list_devices(session, actor=actor, location_id=here).items[0].id,
            "service_id": catalog.list_services(session, actor=actor).items[0].id,
        }


def _post_urls(engine: Engine, demo: Demo) -> list[str]:
    """The URL of every change the settings pages make (a provider's shifts and breaks share a route)."""
    ids = _ids(engine, demo)
    routes = [r.path for r in settings.router.routes if isinstance(r, APIRoute) and "POST" in r.methods]
    assert len(routes) == 14
    return sorted(
        {path.format(**ids, schedule=schedule) for path in routes for schedule in ("shifts", "breaks")}
    )


# --- who is offered the pages -------------------------------------------------------------------------


class _Controls(HTMLParser):
    """The form controls of a page that no label names."""

    def __init__(self) -> None:
        super().__init__()
        self.labels = 0
        self.unlabelled: list[str] = []
        self.controls = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "label":
            self.labels += 1
        elif tag in {"input", "select", "textarea"}:
            found = dict(attrs)
            if found.get("type") == "hidden" or found.get("aria-label"):
                return
            self.controls += 1
            if not self.labels:
                self.unlabelled.append(f"{tag} {found.get('name')}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.labels -= 1


@pytest.mark.parametrize("role", [Role.OWNER, Role.MANAGER])
def test_owners_and_managers_open_every_settings_page_with_every_control_labelled(
    client: TestClient, demo_template: Demo, role: Role
) -> None:
    sign_in(client, role)
    day = client.get(f"/locations/{demo_template.location_id}/day")
    assert f'href="{_url(demo_template)}"' in day.text
    for suffix in PAGES:
        page = client.get(_url(demo_template, suffix))
        assert page.status_code == 200, suffix
        assert f'href="{_url(demo_template, suffix)}" aria-current="page"' in page.text
        controls = _Controls()
        controls.feed(page.text)
        assert controls.controls > 3, suffix
        assert controls.unlabelled == [], suffix


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.PROVIDER])
def test_other_roles_are_not_offered_settings_and_are_refused_every_page_and_change(
    client: TestClient, engine: Engine, demo_template: Demo, role: Role, nothing_written: None
) -> None:
    sign_in(client, role)
    day = client.get(f"/locations/{demo_template.location_id}/day")
    assert day.status_code == 200
    assert "/settings" not in day.text
    for suffix in PAGES:
        assert client.get(_url(demo_template, suffix)).status_code == 403, suffix
    for url in _post_urls(engine, demo_template):
        body = {**SERVICE_FORM, **_week(("0", "09:00", "17:00")), "from_date": "2030-01-02", "name": "X"}
        response = client.post(url, data=body)
        assert (url, response.status_code) == (url, 403)


def test_a_post_from_another_site_is_refused(
    client: TestClient, demo_template: Demo, nothing_written: None
) -> None:
    sign_in(client, Role.OWNER)
    response = client.post(
        _url(demo_template, "/rooms"),
        data={"name": "Forged", "room_type": "treatment"},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


# --- hours and closures ---------------------------------------------------------------------------------


def test_the_owner_sets_the_opening_hours_and_a_day_without_hours_has_no_slots(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    service_id = booking_service_id(engine, demo_template)
    day, _ = first_day_with_slots(engine, demo_template, service_id)
    others = [d for d in range(7) if d != day.weekday()]
    sign_in(client, Role.OWNER)

    rows = [(str(d), "10:00", "16:00") for d in others] + [(str(others[0]), "17:00", "19:30"), ("", "", "")]
    page = client.post(_url(demo_template, "/hours"), data=_week(*rows))

    assert page.status_code == 200
    assert "Saved the opening hours." in page.text
    with unit_of_work(engine, write=False) as session:
        location = resources.get_location(
            session, actor=demo_template.actor, location_id=demo_template.location_id
        )
    expected = [
        WeeklySpan.model_validate({"weekday": d, "starts_at": "10:00", "ends_at": "16:00"}) for d in others
    ]
    expected.append(
        WeeklySpan.model_validate({"weekday": others[0], "starts_at": "17:00", "ends_at": "19:30"})
    )
    key = lambda s: (s.weekday, s.starts_at)  # noqa: E731
    assert sorted(location.opening_hours, key=key) == sorted(expected, key=key)
    assert free_slots(engine, demo_template, service_id, day, day) == []


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([("0", "17:00", "09:00")], "Row 1 (Monday): the end must be after the start"),
        ([("0", "09:00", "09:00")], "Row 1 (Monday): the end must be after the start"),
        ([("0", "09:00", "")], "Row 1 (Monday): give a time such as 09:30"),
        ([("", "09:00", "17:00")], "Row 1: choose a day of the week"),
        ([("7", "09:00", "17:00")], "Row 1: choose a day of the week"),
        ([("9" * 5000, "09:00", "17:00")], "Row 1: choose a day of the week"),
        ([("-1", "09:00", "17:00")], "Row 1: choose a day of the week"),
        ([("0", "25:00", "26:00")], "give a time such as 09:30"),
        ([("0", "09:00\x00", "17:00")], "invalid input: starts_at"),
        ([("1", "09:00", "13:00"), ("1", "12:00", "17:00")], "Tuesday: two spans overlap"),
        ([("0", "09:00", "17:00")] * 200, "send from 1 to 84 rows"),
        ([], "send from 1 to 84 rows"),
    ],
)
def test_bad_hours_are_refused_with_the_reason_and_nothing_is_saved(
    client: TestClient,
    engine: Engine,
    demo_template: Demo,
    rows: list[tuple[str, str, str]],
    problem: str,
    nothing_written: None,
) -> None:
    sign_in(client, Role.OWNER)
    page = client.post(_url(demo_template, "/hours"), data=_week(*rows))
    assert page.status_code == 422
    assert problem in page.text
    assert 'class="flash error"' in page.text


def test_the_owner_closes_a_day_and_a_period_and_those_days_have_no_slots(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    service_id = booking_service_id(engine, demo_template)
    day, _ = first_day_with_slots(engine, demo_template, service_id)
    sign_in(client, Role.OWNER)

    one = client.post(
        _url(demo_template, "/closures"), data={"first_date": day.isoformat(), "reason": "floods"}
    )
    assert one.status_code == 200
    assert f"Saved: closed on {day.isoformat()}." in one.text
    assert free_slots(engine, demo_template, service_id, day, day) == []

    last = day + timedelta(days=3)
    period = client.post(
        _url(demo_template, "/closures"),
        data={"first_date": day.isoformat(), "last_date": last.isoformat(), "reason": "works"},
    )
    assert period.status_code == 200
    assert "(3 days)" in period.text  # the first day was closed already
    with unit_of_work(engine, write=False) as session:
        closures = resources.list_closures(
            session, actor=demo_template.actor, location_id=demo_template.location_id, first=day, last=last
        )
    assert sorted((c.closed_on, c.reason) for c in closures) == [
        (day, "floods"),
        *[(day + timedelta(days=n), "works") for n in (1, 2, 3)],
    ]
    assert free_slots(engine, demo_template, service_id, day, last) == []
    assert "floods" in client.get(_url(demo_template)).text


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"first_date": ""}, "First date: give a date from"),
        ({"first_date": "9999-12-31"}, "First date: give a date from"),
        ({"first_date": "2199-12-31"}, "First date: give a date from"),
        ({"first_date": "2030-02-31"}, "First date: give a date from"),
        ({"first_date": "2030-01-01\x00"}, "invalid input: first_date"),
        ({"first_date": "2030-01-10", "last_date": "2030-01-01"}, "must not be before the first date"),
        ({"first_date": "2030-01-01", "last_date": "2031-01-02"}, "close at most 366 days at once"),
        ({"first_date": "1900-01-01"}, "First date: give a date from"),
        ({"first_date": "2030-01-01", "last_date": "2150-01-01"}, "Last date: give a date from"),
        ({"first_date": "2030-01-01", "reason": "x" * 201}, "Reason: String should have at most 200"),
        ({"first_date": "2030-01-01", "reason": "a\x00b"}, "invalid input: reason"),
    ],
)
def test_bad_closures_are_refused_with_the_reason_and_nothing_is_saved(
    client: TestClient, demo_template: Demo, form: dict[str, str], problem: str, nothing_written: None
) -> None:
    sign_in(client, Role.OWNER)
    page = client.post(_url(demo_template, "/closures"), data=form)
    assert page.status_code == 422
    assert problem in page.text


# --- staff --------------------------------------------------------------------------------------------


def _with_slots(engine: Engine, demo: Demo) -> tuple[date, uuid.UUID, uuid.UUID, uuid.UUID]:
    """A day, a service two providers have free slots for that day, and those two providers."""
    with unit_of_work(engine, write=False) as session:
        services = catalog.list_services(session, actor=demo.actor, limit=500).items
    for service in services:
        try:
            day, slots = first_day_with_slots(engine, demo, service.id)
        except AssertionError:  # no free slot for this one in the next two weeks
            continue
        providers = list(dict.fromkeys(s.provider_id for s in slots))
        if len(providers) >= 2:
            return day, service.id, providers[0], providers[1]
    raise AssertionError("no demo service has two providers free on a day")


def _slot_providers(engine: Engine, demo: Demo, service_id: uuid.UUID, day: date) -> set[uuid.UUID]:
    return {s.provider_id for s in free_slots(engine, demo, service_id, day, day)}


def test_the_owner_changes_a_providers_shifts_and_their_slots_follow(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day, service_id, provider_id, other_id = _with_slots(engine, demo_template)
    before = next(p for p in _providers(engine, demo_template) if p.id == provider_id)
    sign_in(client, Role.OWNER)
    off = (day.weekday() + 1) % 7

    page = client.post(
        _url(demo_template, f"/staff/{provider_id}/shifts"), data=_week((str(off), "08:00", "12:30"))
    )

    assert page.status_code == 200
    assert f"Saved {before.name}&#39;s shifts." in page.text
    after = next(p for p in _providers(engine, demo_template) if p.id == provider_id)
    assert after.shifts == [
        WeeklySpan.model_validate({"weekday": off, "starts_at": "08:00", "ends_at": "12:30"})
    ]
    assert after.breaks == before.breaks
    assert provider_id not in _slot_providers(engine, demo_template, service_id, day)
    assert other_id in _slot_providers(engine, demo_template, service_id, day)


def test_the_owner_changes_a_providers_breaks_and_their_shifts_stay(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    provider = _providers(engine, demo_template)[0]
    sign_in(client, Role.OWNER)
    page = client.post(
        _url(demo_template, f"/staff/{provider.id}/breaks"), data=_week(("2", "12:00", "12:45"), ("", "", ""))
    )
    assert page.status_code == 200
    after = next(p for p in _providers(engine, demo_template) if p.id == provider.id)
    assert after.breaks == [
        WeeklySpan.model_validate({"weekday": 2, "starts_at": "12:00", "ends_at": "12:45"})
    ]
    assert after.shifts == provider.shifts


def test_time_off_takes_the_providers_slots_away_that_day(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day, service_id, provider_id, other_id = _with_slots(engine, demo_template)
    sign_in(client, Role.OWNER)

    page = client.post(
        _url(demo_template, f"/staff/{provider_id}/time-off"),
        data={"from_date": day.isoformat(), "reason": "training"},
    )

    assert page.status_code == 200
    assert "Saved time off for" in page.text
    config = _config(engine, demo_template)
    assert (provider_id, *local_day_bounds(day, ZONE)) in config.time_off
    providers = _slot_providers(engine, demo_template, service_id, day)
    assert provider_id not in providers
    assert other_id in providers


def test_time_off_between_two_times_keeps_the_rest_of_the_day(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day, _, provider_id, _ = _with_slots(engine, demo_template)
    sign_in(client, Role.OWNER)
    page = client.post(
        _url(demo_template, f"/staff/{provider_id}/time-off"),
        data={"from_date": day.isoformat(), "from_time": "09:00", "until_time": "13:00"},
    )
    assert page.status_code == 200
    start, _ = local_day_bounds(day, ZONE)
    config = _config(engine, demo_template)
    assert (provider_id, start + timedelta(hours=9), start + timedelta(hours=13)) in config.time_off


def test_a_provider_of_another_location_or_an_unknown_schedule_is_refused(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    with unit_of_work(engine) as session:
        elsewhere = make_location(session, actor=demo_template.actor)
        stranger = make_provider(session, actor=demo_template.actor, location_id=elsewhere.id)
    before = _events(engine)
    mine = _providers(engine, demo_template)[0].id
    sign_in(client, Role.OWNER)
    week = _week(("0", "09:00", "12:00"))
    for path in ("shifts", "breaks", "time-off"):
        response = client.post(_url(demo_template, f"/staff/{stranger.id}/{path}"), data=week)
        assert (path, response.status_code) == (path, 404)
        assert "provider not found" in response.text
    unknown = client.post(_url(demo_template, f"/staff/{mine}/holidays"), data=week)
    assert unknown.status_code == 422
    assert "invalid input: schedule" in unknown.text
    assert _events(engine) == before


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({}, "From date: give a date from"),
        ({"from_date": "10000-01-01"}, "From date: give a date from"),
        ({"from_date": "2030-01-01", "until_date": "2199-01-01"}, "Until date: give a date from"),
        ({"from_date": "2030-01-02", "until_date": "2030-01-01"}, "Until: the end must be after the start"),
        (
            {"from_date": "2030-01-02", "from_time": "15:00", "until_time": "09:00"},
            "Until: the end must be after the start",
        ),
        ({"from_date": "2030-01-02", "from_time": "9 o'clock"}, "From: give a time such as 09:30"),
        ({"from_date": "2030-03-10", "from_time": "02:30"}, "From: that time does not exist that day"),
        ({"from_date": "2030-01-02", "reason": "\x00"}, "invalid input: reason"),
    ],
)
def test_bad_time_off_is_refused_with_the_reason_and_nothing_is_saved(
    client: TestClient,
    engine: Engine,
    demo_template: Demo,
    form: dict[str, str],
    problem: str,
    nothing_written: None,
) -> None:
    provider = _providers(engine, demo_template)[0]
    sign_in(client, Role.OWNER)
    page = client.post(_url(demo_template, f"/staff/{provider.id}/time-off"), data=form)
    assert page.status_code == 422
    assert problem in page.text


# --- rooms and devices ----------------------------------------------------------------------------------


def test_the_owner_adds_renames_and_retires_a_room(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    sign_in(client, Role.OWNER)

    def rooms() -> dict[str, str]:
        with unit_of_work(engine, write=False) as session:
            found = resources.list_rooms(
                session, actor=demo_template.actor, location_id=demo_template.location_id
            )
        return {r.name: r.room_type for r in found.items}

    added = client.post(_url(demo_template, "/rooms"), data={"name": " Suite 9 ", "room_type": "laser"})
    assert added.status_code == 200
    assert "Saved: added the room Suite 9." in added.text
    assert rooms()["Suite 9"] == "laser"
    with unit_of_work(engine, write=False) as session:
        items = resources.list_rooms(
            session, actor=demo_template.actor, location_id=demo_template.location_id
        ).items
    room_id = next(r.id for r in items if r.name == "Suite 9")

    renamed = client.post(
        _url(demo_template, f"/rooms/{room_id}"), data={"name": "Suite 10", "room_type": "facial"}
    )
    assert renamed.status_code == 200
    assert rooms()["Suite 10"] == "facial"
    assert "Suite 9" not in rooms()

    retired = client.post(_url(demo_template, f"/rooms/{room_id}/deactivate"))
    assert retired.status_code == 200
    assert "Saved: the room Suite 10 is no longer used." in retired.text
    assert "Suite 10" not in rooms()


def test_a_manager_adds_a_room_too(client: TestClient, engine: Engine, demo_template: Demo) -> None:
    sign_in(client, Role.MANAGER)
    assert (
        client.post(
            _url(demo_template, "/rooms"), data={"name": "Annex", "room_type": "treatment"}
        ).status_code
        == 200
    )
    with unit_of_work(engine, write=False) as session:
        items = resources.list_rooms(
            session, actor=demo_template.actor, location_id=demo_template.location_id
        ).items
    assert "Annex" in {r.name for r in items}


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"name": "", "room_type": "laser"}, "Name: String should have at least 1 character"),
        ({"name": "A\x00", "room_type": "laser"}, "invalid input: name"),
        ({"name": "x" * 5000, "room_type": "laser"}, "Name: String should have at most 200"),
        ({"name": "Suite", "room_type": "Laser Room"}, "Room type: use lowercase letters"),
        ({"name": "Suite"}, "Room type: String should have at least 1 character"),
    ],
)
def test_a_bad_room_is_refused_with_the_reason_and_nothing_is_saved(
    client: TestClient, demo_template: Demo, form: dict[str, str], problem: str, nothing_written: None
) -> None:
    sign_in(client, Role.OWNER)
    page = client.post(_url(demo_template, "/rooms"), data=form)
    assert page.status_code == 422
    assert problem in page.text


def test_a_room_of_another_location_is_not_found_here(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    with unit_of_work(engine) as session:
        elsewhere = make_location(session, actor=demo_template.actor)
        room = make_room(session, actor=demo_template.actor, location_id=elsewhere.id)
    before = _events(engine)
    sign_in(client, Role.OWNER)
    for path in (f"/rooms/{room.id}", f"/rooms/{room.id}/deactivate"):
        response = client.post(_url(demo_template, path), data={"name": "Taken", "room_type": "laser"})
        assert response.status_code == 404
        assert "room not found" in response.text
    assert _events(engine) == before
    with unit_of_work(engine, write=False) as session:
        assert resources.get_room(session, actor=demo_template.actor, room_id=room.id) == room


def test_the_owner_adds_changes_maintains_and_retires_a_device(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    sign_in(client, Role.OWNER)

    def device(name: str) -> Any:
        with unit_of_work(engine, write=False) as session:
            found = resources.list_devices(
                session, actor=demo_template.actor, location_id=demo_template.location_id
            )
        return next((d for d in found.items if d.name == name), None)

    added = client.post(
        _url(demo_template, "/devices"),
        data={"name": "Pico 2", "device_type": "pico_laser", "cooldown_minutes": "15"},
    )
    assert added.status_code == 200
    new = device("Pico 2")
    assert (new.device_type, new.cooldown_minutes) == ("pico_laser", 15)

    changed = client.post(
        _url(demo_template, f"/devices/{new.id}"),
        data={"name": "Pico 2", "device_type": "pico_laser", "cooldown_minutes": ""},
    )
    assert changed.status_code == 200
    assert device("Pico 2").cooldown_minutes == 0

    down = client.post(
        _url(demo_template, f"/devices/{new.id}/maintenance"),
        data={"from_date": "2030-01-07", "until_date": "2030-01-08", "reason": "service visit"},
    )
    assert down.status_code == 200
    config = _config(engine, demo_template)
    start, _ = local_day_bounds(date(2030, 1, 7), ZONE)
    _, end = local_day_bounds(date(2030, 1, 8), ZONE)
    assert (new.id, start, end) in config.maintenance
    assert "Mon, Jan 7, 2030 at 12:00 AM" in client.get(_url(demo_template, "/devices")).text

    retired = client.post(_url(demo_template, f"/devices/{new.id}/deactivate"))
    assert retired.status_code == 200
    assert device("Pico 2") is None


@pytest.mark.parametrize(
    "cooldown",
    ["-5", "1441", "9" * 400, "1e3", "ten", "\x00"],
)
def test_a_bad_cool_down_is_refused_and_nothing_is_saved(
    client: TestClient, demo_template: Demo, cooldown: str, nothing_written: None
) -> None:
    sign_in(client, Role.OWNER)
    page = client.post(
        _url(demo_template, "/devices"),
        data={"name": "Pico 3", "device_type": "laser", "cooldown_minutes": cooldown},
    )
    assert page.status_code == 422
    assert ("invalid input: cooldown_minutes" if "\x00" in cooldown else "Cool-down minutes: ") in page.text


# --- services -----------------------------------------------------------------------------------------


def _service(engine: Engine, demo: Demo, name: str) -> Any:
    with unit_of_work(engine, write=False) as session:
        found = catalog.list_services(session, actor=demo.actor, limit=500).items
    return next((s for s in found if s.name == name), None)


def test_the_owner_adds_changes_and_withdraws_a_service(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    sign_in(client, Role.OWNER)

    added = client.post(_url(demo_template, "/services"), data=SERVICE_FORM)

    assert added.status_code == 200
    assert "Saved: added the service Glow Peel." in added.text
    new = _service(engine, demo_template, "Glow Peel")
    assert new.model_dump(exclude={"id"}) == {
        "name": "Glow Peel",
        "category": "skin",
        "duration_minutes": 45,
        "setup_minutes": 5,
        "cleanup_minutes": 0,
        "required_skill": "facial",
        "required_license": None,
        "room_types": ["facial", "treatment"],
        "device_type": None,
        "price_cents": 112050,
        "cost_cents": 3000,
        "post_care_instructions": "No sun for two days.",
        "follow_up_days": 30,
        "follow_up_days_max": None,
        "series_sessions": None,
        "series_interval_days": None,
        "is_active": True,
    }

    changed = client.post(
        _url(demo_template, f"/services/{new.id}"),
        data={
            **SERVICE_FORM,
            "duration_minutes": "60",
            "price": "99",
            "device_type": "led",
            "follow_up_days": "",
        },
    )
    assert changed.status_code == 200
    after = _service(engine, demo_template, "Glow Peel")
    assert (after.duration_minutes, after.price_cents, after.device_type, after.follow_up_days) == (
        60,
        9900,
        "led",
        None,
    )

    withdrawn = client.post(_url(demo_template, f"/services/{new.id}/deactivate"))
    assert withdrawn.status_code == 200
    assert _service(engine, demo_template, "Glow Peel") is None
    assert "Glow Peel" not in client.get(_url(demo_template, "/services")).text


def test_the_owner_sets_and_clears_a_services_follow_up_window_and_series(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    sign_in(client, Role.OWNER)
    cadence = {"follow_up_days_max": "45", "series_sessions": "6", "series_interval_days": "28"}

    added = client.post(_url(demo_template, "/services"), data={**SERVICE_FORM, **cadence})

    assert "Saved: added the service Glow Peel." in added.text
    new = _service(engine, demo_template, "Glow Peel")
    fields = ("follow_up_days", "follow_up_days_max", "series_sessions", "series_interval_days")
    assert [getattr(new, name) for name in fields] == [30, 45, 6, 28]
    form = client.get(_url(demo_template, "/services")).text
    assert 'name="series_interval_days" type="number" min="1" max="365" step="1" value="28"' in form
    cleared = client.post(
        _url(demo_template, f"/services/{new.id}"),
        data={**SERVICE_FORM, "follow_up_days_max": "", "series_sessions": "", "series_interval_days": ""},
    )
    assert cleared.status_code == 200
    after = _service(engine, demo_template, "Glow Peel")
    assert [getattr(after, name) for name in fields] == [30, None, None, None]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"name": ""}, "Name: String should have at least 1 character"),
        ({"duration_minutes": "0"}, "Duration: Input should be greater than 0"),
        ({"duration_minutes": "-30"}, "Duration: Input should be greater than 0"),
        ({"duration_minutes": "721"}, "Duration: Input should be less than or equal to 720"),
        ({"duration_minutes": "9" * 5000}, "Duration: "),
        ({"duration_minutes": ""}, "Duration: Input should be a valid integer"),
        ({"setup_minutes": "-1"}, "Set-up minutes: Input should be greater than or equal to 0"),
        ({"price": "-5"}, "Price: give an amount in dollars"),
        ({"price": "12.345"}, "Price: give an amount in dollars"),
        ({"price": "999999999"}, "Price: Input should be less than or equal to"),
        ({"price": ""}, "Price: give an amount in dollars"),
        ({"room_types": ""}, "Room types: List should have at least 1 item"),
        ({"room_types": "Big Room"}, "Room types: use lowercase letters"),
        ({"follow_up_days": "100000"}, "Follow-up days: Input should be less than or equal to 730"),
        ({"follow_up_days_max": "20"}, "Follow-up window ends: must not be before the earliest day (30)"),
        ({"follow_up_days": "", "follow_up_days_max": "20"}, "Follow-up window ends: needs the earliest day"),
        ({"series_sessions": "6"}, "Days between sessions: a series needs both"),
        ({"series_interval_days": "28"}, "Sessions in a course: a series needs both"),
        (
            {"series_sessions": "1", "series_interval_days": "28"},
            "Sessions in a course: Input should be greater than or equal to 2",
        ),
        ({"post_care_instructions": "\x00"}, "invalid input: post_care_instructions"),
        ({"post_care_instructions": "x" * 4001}, "Aftercare instructions: String should have at most 4000"),
    ],
)
def test_a_bad_service_is_refused_with_the_reason_and_nothing_is_saved(
    client: TestClient,
    engine: Engine,
    demo_template: Demo,
    change: dict[str, str],
    problem: str,
    nothing_written: None,
) -> None:
    existing = _ids(engine, demo_template)["service_id"]
    sign_in(client, Role.OWNER)
    for path in ("/services", f"/services/{existing}"):
        page = client.post(_url(demo_template, path), data={**SERVICE_FORM, **change})
        assert (path, page.status_code) == (path, 422)
        assert problem in page.text


def test_an_unknown_service_is_not_found(
    client: TestClient, demo_template: Demo, nothing_written: None
) -> None:
    sign_in(client, Role.OWNER)
    page = client.post(_url(demo_template, f"/services/{uuid.uuid4()}"), data=SERVICE_FORM)
    assert page.status_code == 404
    assert "service not found" in page.text


# --- no bad body ends in a 500 ----------------------------------------------------------------------------

MALFORMED: list[dict[str, Any]] = [
    {},
    dict.fromkeys(("name", "room_type", "device_type", "price", "first_date", "from_date", "weekday"), ""),
    dict.fromkeys((*SERVICE_FORM, "room_type", "cooldown_minutes", "last_date", "from_date"), "\x00"),
    dict.fromkeys((*SERVICE_FORM, "room_type", "cooldown_minutes", "first_date", "from_date"), "9" * 10000),
    dict.fromkeys((*SERVICE_FORM, "cooldown_minutes", "from_time", "until_time"), "-99999999999999999999"),
    {
        "first_date": "9999-12-31",
        "last_date": "9999-12-31",
        "from_date": "9999-12-31",
        "until_date": "0001-01-01",
    },
    {"first_date": "2199-12-31", "from_date": "2199-12-31", "from_time": "23:59", "until_time": "23:59"},
    {"first_date": "1900-01-01", "from_date": "1900-01-01", "until_time": "00:00"},
    {**_week(*[("0", "09:00", "17:00")] * 71), "name": "x"},
    {"weekday": ["0", "1"], "starts_at": ["09:00"], "ends_at": []},
    {**_week(("6", "23:59", "23:58")), "name": " ", "room_type": " "},
    {**SERVICE_FORM, "duration_minutes": "1e309", "price": "1e309", "follow_up_days": "nan"},
]


@pytest.mark.parametrize("body", range(len(MALFORMED)))
def test_no_malformed_body_to_any_settings_route_is_a_server_error(
    client: TestClient, engine: Engine, demo_template: Demo, body: int
) -> None:
    urls = _post_urls(engine, demo_template)
    assert len(urls) == 15
    sign_in(client, Role.OWNER)
    answers = {}
    for url in urls:
        response = client.post(url, data=MALFORMED[body])
        answers[url] = response.status_code
        assert response.status_code < 500, (url, response.text[:300])
        assert "text/html" in response.headers["content-type"]
    # Only the routes that take no input at all may accept what they were sent.
    accepted = {url for url, status in answers.items() if status == 200}
    assert accepted <= {url for url in urls if url.endswith("/deactivate")}
