"""Bad input answers a 4xx naming what is wrong, and nothing is stored (ADR 9): text that cannot be
stored, text longer than its column, integers beyond theirs, dates outside the accepted range, instants
without an offset, wall-clock times with seconds or an offset, lists and JSON objects too large, a
waitlist date in the past, a booking beyond the location's horizon, and explicit nulls in PATCH payloads."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from medspa.app import create_app
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.outbox import OutboxEvent
from medspa.resources.models import ProviderLicense
from medspa.security.actors import Actor
from tests.conftest import token_for
from tests.test_api import booking, clinic, created

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATE = "9999-12-31T23:59:59-14:00"
EARLY = "0001-01-01T00:00:00+14:00"


@pytest.fixture(autouse=True)
def frozen_clock(test_clock: ManualClock) -> None:
    test_clock.set(NOW)


@pytest.fixture
def ids(api: TestClient) -> dict[str, str]:
    """The API test clinic, with a device, a booked appointment and a proposal."""
    found = clinic(api)
    device = created(
        api.post(
            "/api/v1/devices", json={"location_id": found["location"], "name": "Laser", "device_type": "co2"}
        )
    )
    appointment = created(api.post("/api/v1/appointments", json=booking(found)))
    return {**found, "device": device["id"], "appointment": appointment["id"]}


def events(engine: Engine, owner: Actor) -> int:
    """How many changes the organization has made: every write records an outbox event."""
    with unit_of_work(engine, write=False) as session:
        query = select(func.count()).where(OutboxEvent.organization_id == owner.organization_id)
        return session.scalar(query) or 0


@pytest.fixture
def nothing_stored(engine: Engine, owner: Actor) -> Iterator[None]:
    """Asserts, once the test is done, that the organization made no change meanwhile (every write
    records an outbox event). Request it after the fixtures that set the test up."""
    before = events(engine, owner)
    yield
    assert events(engine, owner) == before


def fill(template: Any, ids: dict[str, str]) -> Any:
    """`template` with `{location}`, `{provider}`... replaced by the clinic's ids."""
    if isinstance(template, str):
        return template.format(**ids) if "{" in template else template
    if isinstance(template, dict):
        return {fill(k, ids): fill(v, ids) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, ids) for v in template]
    return template


def send(api: TestClient, method: str, path: str, body: Any) -> Any:
    """Send `body` as JSON text (escapes such as \\u0000 and \\ud800 as a client would write them)."""
    return api.request(method, path, content=json.dumps(body), headers={"Content-Type": "application/json"})


def send_with(api: TestClient, method: str, path: str, body: Any, placeholder: str, value: object) -> Any:
    """Send `body` with the string `placeholder` replaced by `value` (which may be of any JSON type)."""
    text = json.dumps(body).replace(json.dumps(placeholder), json.dumps(value))
    return api.request(method, path, content=text, headers={"Content-Type": "application/json"})


def refused(response: Any, field: str, words: str = "") -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_failed"
    assert field in body["fields"], body
    assert words in body["detail"], body


# Placeholders for `fill`, in the shape `booking` expects.
TEMPLATE_IDS = {"client": "{client}", "service": "{service}", "location": "{location}"}
SPAN = {"weekday": 0, "starts_at": "09:00", "ends_at": "17:00"}
# One payload of each kind that takes text, and the field the bad text goes into.
TEXT_FIELDS = [
    ("POST", "/api/v1/locations", {"name": "X", "time_zone": "UTC"}, "name"),
    ("PATCH", "/api/v1/locations/{location}", {}, "name"),
    ("POST", "/api/v1/locations/{location}/closures", {"closed_on": "2026-04-01"}, "reason"),
    ("POST", "/api/v1/providers", {"location_id": "{location}", "name": "P"}, "title"),
    ("PATCH", "/api/v1/providers/{provider}", {}, "title"),
    (
        "POST",
        "/api/v1/providers/{provider}/time-off",
        {"starts_at": "2026-04-01T10:00:00Z", "ends_at": "2026-04-01T11:00:00Z"},
        "reason",
    ),
    (
        "POST",
        "/api/v1/devices/{device}/maintenance",
        {"starts_at": "2026-04-01T10:00:00Z", "ends_at": "2026-04-01T11:00:00Z"},
        "reason",
    ),
    ("POST", "/api/v1/rooms", {"location_id": "{location}", "room_type": "injection"}, "name"),
    ("PATCH", "/api/v1/devices/{device}", {}, "name"),
    (
        "POST",
        "/api/v1/services",
        {
            "category": "c",
            "duration_minutes": 30,
            "required_skill": "s",
            "room_types": ["r"],
            "price_cents": 1,
        },
        "name",
    ),
    ("POST", "/api/v1/clients", {"first_name": "A", "last_name": "B"}, "notes"),
    ("PATCH", "/api/v1/clients/{client}", {}, "notes"),
    ("PATCH", "/api/v1/clients/{client}", {}, "last_name"),
    ("POST", "/api/v1/appointments/{appointment}/cancel", {}, "reason"),
    ("POST", "/api/v1/users", {"email": "a@b.example", "role": "owner"}, "display_name"),
    ("POST", "/api/v1/tokens", {"role": "owner"}, "name"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), TEXT_FIELDS)
def test_text_that_cannot_be_stored_is_422_naming_the_field(
    api: TestClient,
    ids: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
    nothing_stored: None,
) -> None:
    for bad, words in [("a\x00b", "NUL"), ("a\ud800b", "unicode")]:
        response = send(api, method, fill(path, ids), {**fill(body, ids), field: bad})
        refused(response, field, words)


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
@pytest.mark.parametrize("where", ["key", "value", "nested"])
def test_preferences_hold_only_storable_text(
    api: TestClient, bad: str, where: str, nothing_stored: None
) -> None:
    preferences = {
        "key": {f"drink{bad}": "tea"},
        "value": {"drink": f"tea{bad}"},
        "nested": {"drinks": [{"hot": [f"tea{bad}"]}]},
    }[where]
    response = send(
        api, "POST", "/api/v1/clients", {"first_name": "A", "last_name": "B", "preferences": preferences}
    )
    refused(response, "preferences")


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/api/v1/clients", {"email": "a\x00@b.example"}, "email"),
        ("/api/v1/clients", {"phone": "555\x000100"}, "phone"),
        ("/api/v1/services", {"category": "face\x00"}, "category"),
        ("/api/v1/locations", {"unknown\x00": "1"}, "unknown\x00"),
    ],
)
def test_a_nul_in_a_query_is_422_naming_the_parameter(
    api: TestClient, path: str, query: dict[str, str], field: str
) -> None:
    refused(api.get(path, params=query), field)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        (
            "POST",
            "/api/v1/providers",
            {"location_id": "{location}", "name": "P", "title": "t" * 201},
            "title",
        ),
        ("PATCH", "/api/v1/providers/{provider}", {"title": "t" * 201}, "title"),
        ("POST", "/api/v1/locations", {"name": "L", "time_zone": "U" * 65}, "time_zone"),
        (
            "POST",
            "/api/v1/locations/{location}/closures",
            {"closed_on": "2026-04-01", "reason": "r" * 201},
            "reason",
        ),
        (
            "POST",
            "/api/v1/providers",
            {
                "location_id": "{location}",
                "name": "P",
                "licenses": [{"kind": "rn", "number": "9" * 65, "expires_on": "2027-01-01"}],
            },
            "licenses.0.number",
        ),
        ("POST", "/api/v1/clients", {"first_name": "A", "last_name": "B", "notes": "n" * 10_001}, "notes"),
        ("PATCH", "/api/v1/clients/{client}", {"notes": "n" * 10_001}, "notes"),
        (
            "POST",
            "/api/v1/users",
            {"email": "a@b.example", "display_name": "d" * 201, "role": "owner"},
            "display_name",
        ),
    ],
)
def test_text_longer_than_its_column_is_422(
    api: TestClient, ids: dict[str, str], method: str, path: str, body: Any, field: str, nothing_stored: None
) -> None:
    refused(send(api, method, fill(path, ids), fill(body, ids)), field, "at most")


def test_notes_of_10000_characters_are_kept(api: TestClient) -> None:
    client = created(
        api.post("/api/v1/clients", json={"first_name": "A", "last_name": "B", "notes": "n" * 10_000})
    )
    assert len(client["notes"]) == 10_000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"skills": ["botox"] * 100_000}, "skills"),
        ({"shifts": [SPAN] * 71}, "shifts"),
        ({"licenses": [{"kind": "rn", "expires_on": "2027-01-01"}] * 21}, "licenses"),
    ],
)
def test_lists_longer_than_their_bound_are_422(
    api: TestClient, ids: dict[str, str], body: dict[str, Any], field: str, nothing_stored: None
) -> None:
    refused(api.post("/api/v1/providers", json={"location_id": ids["location"], "name": "P", **body}), field)
    refused(api.patch(f"/api/v1/providers/{ids['provider']}", json=body), field)


@pytest.mark.parametrize(
    ("preferences", "words"),
    [
        ({f"k{i}": i for i in range(101)}, "at most 100"),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "deeper"),
        ({"a": [1] * 101}, "list longer"),
        ({"a": "x" * 1001}, "text longer"),
        ({"k" * 101: 1}, "key longer"),
        ({"a": 2**60}, "2^53"),
    ],
)
def test_preferences_are_a_bounded_json_object(
    api: TestClient, preferences: dict[str, Any], words: str, nothing_stored: None
) -> None:
    response = api.post(
        "/api/v1/clients", json={"first_name": "A", "last_name": "B", "preferences": preferences}
    )
    refused(response, "preferences", words)


def test_preferences_that_are_not_finite_are_422(api: TestClient, nothing_stored: None) -> None:
    response = api.post(
        "/api/v1/clients",
        content='{"first_name": "A", "last_name": "B", "preferences": {"a": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    refused(response, "preferences", "not finite")


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        (
            "POST",
            "/api/v1/services",
            {
                "name": "S",
                "category": "c",
                "duration_minutes": 30,
                "required_skill": "s",
                "room_types": ["r"],
                "price_cents": 2_147_483_648,
            },
            "price_cents",
        ),
        ("PATCH", "/api/v1/services/{service}", {"cost_cents": 2_147_483_648}, "cost_cents"),
        ("PATCH", "/api/v1/devices/{device}", {"cooldown_minutes": 2**63}, "cooldown_minutes"),
        (
            "POST",
            "/api/v1/holds",
            {**booking(TEMPLATE_IDS, "2026-03-03T15:00:00Z"), "hold_minutes": 2**63},
            "hold_minutes",
        ),
    ],
)
def test_integers_beyond_their_column_are_422(
    api: TestClient, ids: dict[str, str], method: str, path: str, body: Any, field: str, nothing_stored: None
) -> None:
    refused(send(api, method, fill(path, ids), fill(body, ids)), field)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/locations",
        "/api/v1/providers",
        "/api/v1/rooms",
        "/api/v1/devices",
        "/api/v1/services",
        "/api/v1/clients",
        "/api/v1/appointments",
    ],
)
def test_an_offset_beyond_64_bits_is_422(api: TestClient, path: str) -> None:
    refused(api.get(path, params={"offset": 9223372036854775808}), "offset")


def test_a_move_limit_beyond_any_day_is_422(api: TestClient, ids: dict[str, str]) -> None:
    response = api.post(
        f"/api/v1/locations/{ids['location']}/optimize", params={"date": "2026-03-03", "max_moves": 2**63}
    )
    refused(response, "max_moves")


# --- dates and instants ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/appointments", booking(TEMPLATE_IDS, "{instant}"), "starts_at"),
        ("POST", "/api/v1/holds", booking(TEMPLATE_IDS, "{instant}"), "starts_at"),
        ("POST", "/api/v1/appointments/{appointment}/reschedule", {"starts_at": "{instant}"}, "starts_at"),
        (
            "POST",
            "/api/v1/providers/{provider}/time-off",
            {"starts_at": "2026-04-01T10:00:00Z", "ends_at": "{instant}"},
            "ends_at",
        ),
        (
            "POST",
            "/api/v1/devices/{device}/maintenance",
            {"starts_at": "{instant}", "ends_at": "2026-04-01T11:00:00Z"},
            "starts_at",
        ),
    ],
)
def test_instants_outside_the_accepted_range_are_422(
    api: TestClient,
    ids: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
    nothing_stored: None,
) -> None:
    for instant in [LATE, EARLY, "2200-01-01T00:00:00Z", "1899-12-31T23:59:00Z", 1_800_000_000]:
        body_with = fill(body, {**ids, "instant": "{instant}"})
        refused(send_with(api, method, fill(path, ids), body_with, "{instant}", instant), field)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/locations/{location}/closures", {"closed_on": "{day}"}, "closed_on"),
        (
            "POST",
            "/api/v1/waitlist",
            {
                "client_id": "{client}",
                "service_id": "{service}",
                "location_id": "{location}",
                "service_date": "{day}",
                "window_starts_at": "10:00",
                "window_ends_at": "11:00",
            },
            "service_date",
        ),
        (
            "POST",
            "/api/v1/providers",
            {"location_id": "{location}", "name": "P", "licenses": [{"kind": "rn", "expires_on": "{day}"}]},
            "licenses.0.expires_on",
        ),
        (
            "POST",
            "/api/v1/clients",
            {"first_name": "A", "last_name": "B", "date_of_birth": "{day}"},
            "date_of_birth",
        ),
    ],
)
def test_dates_outside_the_accepted_range_are_422(
    api: TestClient, ids: dict[str, str], method: str, path: str, body: Any, field: str, nothing_stored: None
) -> None:
    for day in ["9999-12-31", "0001-01-01", "2200-01-01", "1899-12-31", 20260401]:
        body_with = fill(body, {**ids, "day": "{day}"})
        refused(send_with(api, method, fill(path, ids), body_with, "{day}", day), field)


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
@pytest.mark.parametrize(
    ("method", "path", "query", "field"),
    [
        (
            "GET",
            "/api/v1/availability",
            {"location_id": "{location}", "service_id": "{service}", "from": "{day}", "to": "{day}"},
            "from",
        ),
        ("GET", "/api/v1/locations/{location}/closures", {"from": "2026-01-01", "to": "{day}"}, "to"),
        ("GET", "/api/v1/waitlist", {"location_id": "{location}", "date": "{day}"}, "date"),
        ("POST", "/api/v1/locations/{location}/optimize", {"date": "{day}"}, "date"),
    ],
)
def test_query_dates_outside_the_accepted_range_are_422(
    api: TestClient,
    ids: dict[str, str],
    method: str,
    path: str,
    query: dict[str, str],
    field: str,
    day: str,
    nothing_stored: None,
) -> None:
    refused(api.request(method, fill(path, ids), params=fill(query, {**ids, "day": day})), field, "between")


def test_availability_on_the_last_accepted_date_answers(api: TestClient, ids: dict[str, str]) -> None:
    query = {
        "location_id": ids["location"],
        "service_id": ids["service"],
        "from": "2199-12-31",
        "to": "2199-12-31",
    }
    response = api.get("/api/v1/availability", params=query)
    assert response.status_code == 200
    assert len(response.json()) > 0


@pytest.mark.parametrize("field", ["from", "to"])
@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2027-01-01T00:00:00", "UTC offset"),
        ("2027-01-01", "UTC offset"),
        (LATE, "between"),
        (EARLY, "between"),
    ],
)
def test_list_filters_need_an_offset_and_a_sane_instant(
    api: TestClient, field: str, value: str, words: str
) -> None:
    refused(api.get("/api/v1/appointments", params={field: value}), field, words)


# --- wall-clock times --------------------------------------------------------------------------------------


WALL_CLOCK_PROBLEMS = ["09:00:30", "09:00+05:00", "09:00Z", 12345, "9:00", "09:00:00.5", "24:00"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        (
            "POST",
            "/api/v1/locations",
            {"name": "L", "time_zone": "UTC", "opening_hours": [{**SPAN, "starts_at": "{bad}"}]},
            "opening_hours.0.starts_at",
        ),
        (
            "PATCH",
            "/api/v1/locations/{location}",
            {"opening_hours": [{**SPAN, "ends_at": "{bad}"}]},
            "opening_hours.0.ends_at",
        ),
        (
            "POST",
            "/api/v1/providers",
            {"location_id": "{location}", "name": "P", "shifts": [{**SPAN, "starts_at": "{bad}"}]},
            "shifts.0.starts_at",
        ),
        (
            "PATCH",
            "/api/v1/providers/{provider}",
            {"breaks": [{**SPAN, "starts_at": "{bad}"}]},
            "breaks.0.starts_at",
        ),
        (
            "POST",
            "/api/v1/waitlist",
            {
                "client_id": "{client}",
                "service_id": "{service}",
                "location_id": "{location}",
                "service_date": "2026-03-03",
                "window_starts_at": "{bad}",
                "window_ends_at": "23:00",
            },
            "window_starts_at",
        ),
    ],
)
def test_wall_clock_times_are_whole_minutes_without_an_offset(
    api: TestClient, ids: dict[str, str], method: str, path: str, body: Any, field: str, nothing_stored: None
) -> None:
    for bad in WALL_CLOCK_PROBLEMS:
        body_with = fill(body, {**ids, "bad": "{bad}"})
        refused(send_with(api, method, fill(path, ids), body_with, "{bad}", bad), field, "wall-clock time")


def test_wall_clock_times_read_back_as_they_can_be_sent(api: TestClient, ids: dict[str, str]) -> None:
    location = api.get(f"/api/v1/locations/{ids['location']}").json()
    assert location["opening_hours"][0]["starts_at"] == "09:00:00"
    again = api.patch(
        f"/api/v1/locations/{ids['location']}", json={"opening_hours": location["opening_hours"]}
    )
    assert again.status_code == 200
    assert again.json()["opening_hours"] == location["opening_hours"]


# --- the location's own bounds: past dates and the booking horizon -----------------------------------------


def waitlist_entry(ids: dict[str, str]) -> dict[str, str]:
    return {
        "client_id": ids["client"],
        "service_id": ids["service"],
        "location_id": ids["location"],
        "window_starts_at": "10:00",
        "window_ends_at": "11:00",
    }


def test_a_waitlist_entry_for_a_date_that_has_passed_is_422(
    api: TestClient, ids: dict[str, str], nothing_stored: None
) -> None:
    entry = waitlist_entry(ids)
    # NOW is 07:00 on 2026-03-01 in New York: the 28th of February has passed there, the 1st has not.
    refused(
        api.post("/api/v1/waitlist", json={**entry, "service_date": "2020-01-01"}),
        "service_date",
        "has passed",
    )
    refused(
        api.post("/api/v1/waitlist", json={**entry, "service_date": "2026-02-28"}),
        "service_date",
        "has passed",
    )
    refused(
        api.post("/api/v1/waitlist", json={**entry, "service_date": "2027-03-02"}), "service_date", "horizon"
    )


def test_a_waitlist_entry_from_today_to_the_horizon_is_taken(api: TestClient, ids: dict[str, str]) -> None:
    entry = waitlist_entry(ids)
    for day in ("2026-03-01", "2027-03-01"):
        assert (
            created(api.post("/api/v1/waitlist", json={**entry, "service_date": day}))["service_date"] == day
        )


@pytest.mark.parametrize("starts_at", ["2999-01-05T15:00:00Z", "2027-03-02T15:00:00Z"])
def test_bookings_holds_and_moves_beyond_the_horizon_are_422(
    api: TestClient, ids: dict[str, str], starts_at: str, nothing_stored: None
) -> None:
    refused(api.post("/api/v1/appointments", json=booking(ids, starts_at)), "starts_at")
    refused(api.post("/api/v1/holds", json=booking(ids, starts_at)), "starts_at")
    moved = api.post(f"/api/v1/appointments/{ids['appointment']}/reschedule", json={"starts_at": starts_at})
    refused(moved, "starts_at")
    assert api.get(f"/api/v1/appointments/{ids['appointment']}").json()["starts_at"] == "2026-03-03T15:00:00Z"


def test_the_horizon_is_the_locations_own(api: TestClient, ids: dict[str, str]) -> None:
    last_day = "2027-03-01T15:00:00Z"  # 365 days after 2026-03-01, the location's today
    assert api.post("/api/v1/holds", json=booking(ids, last_day)).status_code == 201
    refused(
        api.post("/api/v1/appointments", json=booking(ids, "2027-03-02T15:00:00Z")), "starts_at", "2027-03-01"
    )
    widened = api.patch(f"/api/v1/locations/{ids['location']}", json={"booking_horizon_days": 730})
    assert widened.json()["booking_horizon_days"] == 730
    assert api.post("/api/v1/appointments", json=booking(ids, "2027-03-02T15:00:00Z")).status_code == 201
    for bad in (0, 3651, None):
        refused(
            api.patch(f"/api/v1/locations/{ids['location']}", json={"booking_horizon_days": bad}),
            "booking_horizon_days",
        )
    refused(
        api.post("/api/v1/locations", json={"name": "L", "time_zone": "UTC", "booking_horizon_days": 0}),
        "booking_horizon_days",
    )


# --- null in PATCH payloads --------------------------------------------------------------------------------

# Every field of every update, by route: those that null clears, and those it may not.
KEPT_ON_NULL = (
    [
        ("/api/v1/locations/{location}", field)
        for field in (
            "name",
            "time_zone",
            "slot_interval_minutes",
            "minimum_notice_minutes",
            "booking_horizon_days",
            "opening_hours",
        )
    ]
    + [
        ("/api/v1/providers/{provider}", field)
        for field in ("name", "title", "skills", "licenses", "shifts", "breaks")
    ]
    + [("/api/v1/rooms/{room}", field) for field in ("name", "room_type")]
    + [("/api/v1/devices/{device}", field) for field in ("name", "device_type", "cooldown_minutes")]
    + [
        ("/api/v1/services/{service}", field)
        for field in (
            "name",
            "category",
            "duration_minutes",
            "setup_minutes",
            "cleanup_minutes",
            "required_skill",
            "room_types",
            "price_cents",
            "cost_cents",
        )
    ]
    + [("/api/v1/clients/{client}", field) for field in ("first_name", "last_name", "preferences", "notes")]
)


@pytest.mark.parametrize(("path", "field"), KEPT_ON_NULL)
def test_null_for_a_field_that_cannot_be_empty_is_422(
    api: TestClient, ids: dict[str, str], path: str, field: str, nothing_stored: None
) -> None:
    url = fill(path, ids)
    before = api.get(url).json()
    refused(api.patch(url, json={field: None}), field, "must not be null; leave it out to keep it")
    assert api.get(url).json() == before


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/api/v1/clients/{client}", "email", "ana@example.org"),
        ("/api/v1/clients/{client}", "phone", "+1 555 010 0199"),
        ("/api/v1/clients/{client}", "date_of_birth", "1990-05-01"),
        ("/api/v1/services/{service}", "required_license", "np"),
        ("/api/v1/services/{service}", "device_type", "co2"),
    ],
)
def test_null_clears_a_field_that_may_be_empty(
    api: TestClient, ids: dict[str, str], path: str, field: str, value: str
) -> None:
    url = fill(path, ids)
    assert api.patch(url, json={field: value}).json()[field] is not None
    cleared = api.patch(url, json={field: None})
    assert cleared.status_code == 200
    assert cleared.json()[field] is None
    assert api.get(url).json()[field] is None


def test_a_field_left_out_keeps_its_value(api: TestClient, ids: dict[str, str]) -> None:
    url = f"/api/v1/locations/{ids['location']}"
    before = api.get(url).json()
    after = api.patch(url, json={"minimum_notice_minutes": 30}).json()
    assert after == {**before, "minimum_notice_minutes": 30}


def test_the_openapi_document_says_which_fields_null_clears(api: TestClient) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    name = schemas["LocationUpdate"]["properties"]["name"]
    assert "anyOf" not in name
    assert name["type"] == "string"
    email = schemas["ClientUpdate"]["properties"]["email"]
    assert {"type": "null"} in email["anyOf"]


# --- the size of a request ---------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_before_it_is_read(api: TestClient, nothing_stored: None) -> None:
    notes = "n" * 10_000_000
    response = api.post("/api/v1/clients", json={"first_name": "A", "last_name": "B", "notes": notes})
    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "detail": "the request body is larger than 1,000,000 bytes",
    }


def test_a_chunked_body_over_the_limit_is_413(api: TestClient, nothing_stored: None) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"first_name": "A", "last_name": "B", "notes": "'
        for _ in range(20):
            yield b"n" * 100_000
        yield b'"}'

    response = api.post("/api/v1/clients", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_the_body_limit_is_a_setting(engine: Engine, owner: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSPA_MAX_BODY_BYTES", "100")
    with TestClient(create_app(engine)) as small:
        small.headers["Authorization"] = f"Bearer {token_for(engine, owner)}"
        assert small.post("/api/v1/clients", json={"first_name": "A", "last_name": "B"}).status_code == 201
        assert (
            small.post(
                "/api/v1/clients", json={"first_name": "A", "last_name": "B", "notes": "n" * 100}
            ).status_code
            == 413
        )


# --- errors in the house format, documented ----------------------------------------------------------------


def test_unknown_paths_and_methods_and_unreadable_bodies_answer_in_the_house_format(api: TestClient) -> None:
    missing = api.get("/api/v1/nowhere")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong = api.put("/api/v1/clients")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")
    unreadable = api.post(
        "/api/v1/clients", content=b"\xff\xfe", headers={"Content-Type": "application/json"}
    )
    refused(unreadable, "body")
    broken = api.post(
        "/api/v1/clients", content=b'{"first_name": ', headers={"Content-Type": "application/json"}
    )
    refused(broken, "body", "JSON")


def test_every_operation_documents_its_error_answers(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            if path == "/api/v1/health":
                assert statuses == {"200"}
                continue
            expected = {"401", "403", "404", "409", "422", "503"} | (
                {"413"} if "requestBody" in operation else set()
            )
            assert expected <= statuses, (method, path)
            schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ValidationErrorRead"}
    assert "HTTPValidationError" not in document["components"]["schemas"]


# --- every input is bounded, by its documented schema ------------------------------------------------------

UNBOUNDED_FORMATS = {"uuid", "date", "date-time"}  # fixed-length text, parsed


def _unbounded(schema: dict[str, Any], components: dict[str, Any], where: str) -> list[str]:
    """The places in a request schema where a string, integer, array or object has no upper bound."""
    if "$ref" in schema:
        return _unbounded(components[schema["$ref"].rsplit("/", 1)[-1]], components, where)
    found: list[str] = []
    for choice in schema.get("anyOf", []) + schema.get("allOf", []):
        found += _unbounded(choice, components, where)
    kind = schema.get("type")
    if kind == "string" and not (
        "maxLength" in schema
        or "enum" in schema
        or "const" in schema
        or schema.get("format") in UNBOUNDED_FORMATS
        or schema.get("pattern", "").endswith("(:00)?$")  # a wall-clock time: at most 8 characters
    ):
        found.append(where)
    if kind in ("integer", "number") and "maximum" not in schema and "exclusiveMaximum" not in schema:
        found.append(where)
    if kind == "array":
        if "maxItems" not in schema:
            found.append(where)
        found += _unbounded(schema.get("items", {}), components, f"{where}[]")
    if kind == "object":
        if schema.get("additionalProperties") and "maxProperties" not in schema:
            found.append(where)
        for name, prop in schema.get("properties", {}).items():
            found += _unbounded(prop, components, f"{where}.{name}")
    return found


def test_every_request_field_and_parameter_has_an_upper_bound(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    components = document["components"]["schemas"]
    unbounded: list[str] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                unbounded += _unbounded(parameter["schema"], components, f"{label} {parameter['name']}")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                unbounded += _unbounded(body["schema"], components, f"{label} body")
    assert unbounded == []


def test_a_license_stored_before_the_bounds_still_reads(
    engine: Engine, api: TestClient, ids: dict[str, str]
) -> None:
    # Before the bounds a license could be stored as never expiring (9999-12-31), and on SQLite (which
    # does not enforce a column's length) with a number of any length.
    number = "9" * (80 if engine.dialect.name == "sqlite" else 64)
    with unit_of_work(engine) as session:
        session.execute(
            update(ProviderLicense)
            .where(ProviderLicense.provider_id == uuid.UUID(ids["provider"]))
            .values(expires_on=date(9999, 12, 31), number=number)
        )
    provider = api.get(f"/api/v1/providers/{ids['provider']}")
    assert provider.status_code == 200
    assert provider.json()["licenses"] == [{"kind": "np", "number": number, "expires_on": "9999-12-31"}]


def test_a_sender_of_a_body_over_the_limit_reads_the_413_not_a_reset(engine: Engine) -> None:
    """Over a real connection: the server reads the oversize body (up to `DRAIN_BYTES`) before it answers
    and closes, so a client still sending gets the 413 rather than a broken pipe."""
    import socket
    from urllib.parse import urlsplit

    from tests.serving import running_server

    body = b"x" * 2_000_000
    with running_server(engine) as base:
        port = urlsplit(base).port
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
                head = (
                    f"POST /api/v1/webhooks/mindbody/{uuid.uuid4()} HTTP/1.1\r\nHost: x\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                connection.sendall(head.encode())
                time.sleep(0.2)  # the server has the head: an early answer and close come now
                connection.sendall(body)
                answer = connection.recv(200)
            assert answer.startswith(b"HTTP/1.1 413"), answer
