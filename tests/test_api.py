"""The REST API: authentication, tenancy, CRUD, lists, availability, booking, transitions and 422s."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.app import create_app
from medspa.kit.clock import ManualClock
from medspa.security.actors import Actor, Role
from tests.conftest import token_for

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOURS = [{"weekday": d, "starts_at": "09:00", "ends_at": "17:00"} for d in range(7)]


@pytest.fixture(autouse=True)
def frozen_clock(test_clock: ManualClock) -> None:
    test_clock.set(NOW)


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def clinic(api: TestClient) -> dict[str, str]:
    """A location with one provider, one room, one service and one client, made through the API."""
    location = created(
        api.post(
            "/api/v1/locations",
            json={
                "name": "Downtown",
                "time_zone": "America/New_York",
                "minimum_notice_minutes": 0,
                "opening_hours": HOURS,
            },
        )
    )
    provider = created(
        api.post(
            "/api/v1/providers",
            json={
                "location_id": location["id"],
                "name": "Priya Nair",
                "skills": ["neurotoxin"],
                "licenses": [{"kind": "np", "expires_on": "2027-12-31"}],
                "shifts": [{"weekday": d, "starts_at": "09:00", "ends_at": "17:00"} for d in range(7)],
                "breaks": [{"weekday": d, "starts_at": "12:00", "ends_at": "12:30"} for d in range(7)],
            },
        )
    )
    room = created(
        api.post(
            "/api/v1/rooms", json={"location_id": location["id"], "name": "Inj 1", "room_type": "injection"}
        )
    )
    service = created(
        api.post(
            "/api/v1/services",
            json={
                "name": "Botox",
                "category": "injectables",
                "duration_minutes": 30,
                "setup_minutes": 5,
                "cleanup_minutes": 5,
                "required_skill": "neurotoxin",
                "room_types": ["injection"],
                "price_cents": 45000,
                "cost_cents": 14000,
            },
        )
    )
    client = created(
        api.post(
            "/api/v1/clients",
            json={
                "first_name": "Ana",
                "last_name": "Lima",
                "email": "Ana.Lima@example.org",
                "phone": "+1 (555) 010-0100",
            },
        )
    )
    return {
        "location": location["id"],
        "provider": provider["id"],
        "room": room["id"],
        "service": service["id"],
        "client": client["id"],
    }


def booking(ids: dict[str, str], starts_at: str = "2026-03-03T15:00:00Z") -> dict[str, str]:
    return {
        "client_id": ids["client"],
        "service_id": ids["service"],
        "location_id": ids["location"],
        "starts_at": starts_at,
    }


def test_health_needs_no_credentials(engine: Engine) -> None:
    with TestClient(create_app(engine)) as anonymous:
        response = anonymous.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_everything_else_needs_a_valid_token(engine: Engine) -> None:
    with TestClient(create_app(engine)) as anonymous:
        missing = anonymous.get("/api/v1/locations")
        wrong = anonymous.get("/api/v1/locations", headers={"Authorization": "Bearer msp_not-a-token"})
    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthenticated"
    assert wrong.status_code == 401


def test_crud_of_every_entity(api: TestClient) -> None:
    ids = clinic(api)
    location = api.get(f"/api/v1/locations/{ids['location']}").json()
    assert location["time_zone"] == "America/New_York"
    assert len(location["opening_hours"]) == 7
    patched = api.patch(
        f"/api/v1/locations/{ids['location']}", json={"name": "Uptown", "time_zone": "America/Chicago"}
    )
    assert (patched.status_code, patched.json()["name"], patched.json()["time_zone"]) == (
        200,
        "Uptown",
        "America/Chicago",
    )
    provider = api.patch(
        f"/api/v1/providers/{ids['provider']}", json={"skills": ["filler", "neurotoxin"]}
    ).json()
    assert provider["skills"] == ["filler", "neurotoxin"]
    assert provider["licenses"] == [{"kind": "np", "number": "", "expires_on": "2027-12-31"}]
    assert (
        api.patch(f"/api/v1/rooms/{ids['room']}", json={"room_type": "treatment"}).json()["room_type"]
        == "treatment"
    )
    device = created(
        api.post(
            "/api/v1/devices",
            json={
                "location_id": ids["location"],
                "name": "CO2",
                "device_type": "co2_laser",
                "cooldown_minutes": 20,
            },
        )
    )
    assert api.get(f"/api/v1/devices/{device['id']}").json()["cooldown_minutes"] == 20
    assert (
        api.patch(f"/api/v1/services/{ids['service']}", json={"price_cents": 47500}).json()["price_cents"]
        == 47500
    )
    assert (
        api.patch(f"/api/v1/clients/{ids['client']}", json={"notes": "prefers mornings"}).json()["notes"]
        == "prefers mornings"
    )
    for path in ("providers", "rooms", "devices", "services", "clients"):
        record_id = device["id"] if path == "devices" else ids[path[:-1]]
        deactivated = api.delete(f"/api/v1/{path}/{record_id}")
        assert deactivated.status_code == 200
        assert deactivated.json()["is_active"] is False
    assert api.get("/api/v1/providers").json()["items"] == []
    assert api.get("/api/v1/services").json()["items"] == []


def test_lists_are_paginated_and_clients_filter_by_exact_email_and_phone(api: TestClient) -> None:
    ids = clinic(api)
    for number in range(3):
        created(
            api.post(
                "/api/v1/clients",
                json={"first_name": "C", "last_name": str(number), "email": f"c{number}@example.org"},
            )
        )
    page = api.get("/api/v1/clients?limit=2&offset=1").json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (4, 2, 1, 2)
    by_email = api.get("/api/v1/clients", params={"email": "ana.lima@EXAMPLE.org"}).json()["items"]
    by_phone = api.get("/api/v1/clients", params={"phone": "15550100100"}).json()["items"]
    assert [c["id"] for c in by_email] == [ids["client"]]
    assert [c["id"] for c in by_phone] == [ids["client"]]
    assert api.get("/api/v1/clients", params={"email": "ana@example.org"}).json()["items"] == []


def test_availability_booking_and_transitions(api: TestClient) -> None:
    ids = clinic(api)
    slots = api.get(
        "/api/v1/availability",
        params={
            "location_id": ids["location"],
            "service_id": ids["service"],
            "from": "2026-03-03",
            "to": "2026-03-03",
        },
    )
    assert slots.status_code == 200
    starts = [s["local_start"][11:16] for s in slots.json()]
    assert starts[0] == "09:15"  # five minutes of setup after a 09:00 opening, on the 15-minute grid
    assert "11:45" not in starts  # the 12:00 break
    assert slots.json()[0]["provider_id"] == ids["provider"]
    assert slots.json()[0]["room_id"] == ids["room"]

    appointment = created(api.post("/api/v1/appointments", json=booking(ids, slots.json()[0]["starts_at"])))
    assert appointment["status"] == "booked"
    again = api.post("/api/v1/appointments", json=booking(ids, slots.json()[0]["starts_at"]))
    assert again.status_code == 409
    assert again.json()["error"] == "resource_busy"
    assert again.json()["detail"] == "provider Priya Nair is already booked at that time"

    for action, status in (
        ("confirm", "confirmed"),
        ("check-in", "checked_in"),
        ("start", "in_service"),
        ("complete", "completed"),
    ):
        response = api.post(f"/api/v1/appointments/{appointment['id']}/{action}")
        assert (response.status_code, response.json()["status"]) == (200, status)
    illegal = api.post(f"/api/v1/appointments/{appointment['id']}/cancel", json={"reason": "late"})
    assert illegal.status_code == 409
    assert illegal.json() == {
        "error": "illegal_transition",
        "detail": "Ana Lima's Botox on Tue Mar 3 at 9:15 AM is completed; it cannot be cancelled",
        "current_status": "completed",
    }
    history = api.get(f"/api/v1/appointments/{appointment['id']}/history").json()
    assert [h["to_status"] for h in history] == [
        "booked",
        "confirmed",
        "checked_in",
        "in_service",
        "completed",
    ]
    assert all(h["actor"] == "token:test" for h in history)


def test_hold_then_confirm_over_http(api: TestClient) -> None:
    ids = clinic(api)
    hold = created(api.post("/api/v1/holds", json={**booking(ids), "hold_minutes": 15}))
    assert hold["status"] == "held"
    assert hold["hold_expires_at"] == "2026-03-01T12:15:00Z"
    confirmed = api.post(f"/api/v1/holds/{hold['id']}/confirm")
    assert (confirmed.status_code, confirmed.json()["status"]) == (200, "booked")


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/api/v1/locations", {"name": "X", "time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        (
            "/api/v1/locations",
            {"name": "X", "time_zone": "UTC", "slot_interval_minutes": 7},
            "slot_interval_minutes",
        ),
        (
            "/api/v1/locations",
            {
                "name": "X",
                "time_zone": "UTC",
                "opening_hours": [{"weekday": 1, "starts_at": "17:00", "ends_at": "09:00"}],
            },
            "opening_hours.0.ends_at",
        ),
        (
            "/api/v1/services",
            {
                "name": "X",
                "category": "c",
                "duration_minutes": 30,
                "required_skill": "s",
                "room_types": ["r"],
                "price_cents": -1,
            },
            "price_cents",
        ),
        (
            "/api/v1/services",
            {
                "name": "X",
                "category": "c",
                "duration_minutes": 0,
                "required_skill": "s",
                "room_types": ["r"],
                "price_cents": 1,
            },
            "duration_minutes",
        ),
        ("/api/v1/clients", {"first_name": "A", "last_name": "B", "email": "not-an-email"}, "email"),
        (
            "/api/v1/clients",
            {"first_name": "A", "last_name": "B", "date_of_birth": "2090-01-01"},
            "date_of_birth",
        ),
        ("/api/v1/clients", {"first_name": "A", "last_name": "B", "favourite": "x"}, "favourite"),
    ],
)
def test_bad_payloads_are_422_naming_the_field_and_store_nothing(
    api: TestClient, path: str, payload: dict[str, Any], field: str
) -> None:
    before = api.get(path).json()["total"]
    response = api.post(path, json=payload)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_failed"
    assert field in response.json()["fields"]
    assert api.get(path).json()["total"] == before


def test_time_off_ending_before_it_starts_is_422(api: TestClient) -> None:
    ids = clinic(api)
    response = api.post(
        f"/api/v1/providers/{ids['provider']}/time-off",
        json={"starts_at": "2026-03-03T15:00:00Z", "ends_at": "2026-03-03T14:00:00Z"},
    )
    assert response.status_code == 422
    assert response.json()["fields"] == ["ends_at"]


@pytest.mark.parametrize(
    ("starts_at", "message"),
    [
        ("2026-03-03T15:07:00Z", "grid"),
        ("2026-03-03T23:30:00Z", "opening hours"),
        ("2026-03-03T15:00:00", "UTC offset"),
    ],
)
def test_bad_booking_times_are_422_and_book_nothing(api: TestClient, starts_at: str, message: str) -> None:
    ids = clinic(api)
    response = api.post("/api/v1/appointments", json=booking(ids, starts_at))
    assert response.status_code == 422
    assert response.json()["fields"] == ["starts_at"]
    assert message in response.json()["detail"]
    assert api.get("/api/v1/appointments").json()["total"] == 0


def test_unknown_ids_are_404(api: TestClient) -> None:
    ids = clinic(api)
    missing = "00000000-0000-4000-8000-000000000000"
    for path in ("locations", "providers", "rooms", "devices", "services", "clients", "appointments"):
        response = api.get(f"/api/v1/{path}/{missing}")
        assert (response.status_code, response.json()["error"]) == (404, "not_found")
    response = api.post("/api/v1/appointments", json={**booking(ids), "client_id": missing})
    assert response.status_code == 404
    assert api.get("/api/v1/appointments").json()["total"] == 0


def test_another_organizations_records_are_404_never_403(engine: Engine, api: TestClient) -> None:
    from medspa.kit.db import unit_of_work
    from medspa.security import service as security
    from medspa.security.actors import system_actor

    ids = clinic(api)
    with unit_of_work(engine) as session:
        other = security.create_organization(session, slug=f"other-{ids['client'][:8]}", name="Other")
    stranger = token_for(engine, system_actor(other.id))
    headers = {"Authorization": f"Bearer {stranger}"}
    assert api.get(f"/api/v1/clients/{ids['client']}", headers=headers).status_code == 404
    assert (
        api.patch(f"/api/v1/clients/{ids['client']}", json={"notes": "x"}, headers=headers).status_code == 404
    )
    assert api.get("/api/v1/clients", headers=headers).json()["items"] == []
    assert api.post("/api/v1/appointments", json=booking(ids), headers=headers).status_code == 404


def test_roles_are_enforced(engine: Engine, owner: Actor, api: TestClient) -> None:
    ids = clinic(api)
    desk = {"Authorization": f"Bearer {token_for(engine, owner, Role.FRONT_DESK)}"}
    provider = {"Authorization": f"Bearer {token_for(engine, owner, Role.PROVIDER)}"}
    refused = api.post(
        "/api/v1/rooms",
        json={"location_id": ids["location"], "name": "R", "room_type": "injection"},
        headers=desk,
    )
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert (
        api.post("/api/v1/clients", json={"first_name": "A", "last_name": "B"}, headers=provider).status_code
        == 403
    )
    assert api.post("/api/v1/appointments", json=booking(ids), headers=desk).status_code == 201
    assert api.post("/api/v1/tokens", json={"role": "owner"}, headers=desk).status_code == 403


def test_openapi_is_served(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    assert "/api/v1/availability" in schema["paths"]
    assert api.get("/docs").status_code == 200


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_everything_from_medspa_itself(api: TestClient, page: str) -> None:
    """On a clinic's closed network the docs work: every script, style and icon they load is ours."""
    html = api.get(page).text
    loaded = re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]?([^'" )>]+)""", html)
    assert loaded
    assert not [u for u in loaded if "//" in u], loaded
    for url in loaded:
        if url.startswith("/api-docs-assets/"):
            assert api.get(url).status_code == 200, url
    assert any(u.endswith(".js") for u in loaded)


def test_waitlist_optimize_and_apply_over_http(api: TestClient, engine: Engine) -> None:
    from medspa.scheduling import service as scheduling

    handed: list[uuid.UUID] = []
    api.app.state.optimization_queue = handed.append  # type: ignore[attr-defined]
    ids = clinic(api)
    waiting = created(
        api.post(
            "/api/v1/waitlist",
            json={
                "client_id": ids["client"],
                "service_id": ids["service"],
                "location_id": ids["location"],
                "service_date": "2026-03-03",
                "window_starts_at": "10:00",
                "window_ends_at": "11:00",
            },
        )
    )
    assert waiting["status"] == "waiting"
    bad_window = api.post("/api/v1/waitlist", json={**waiting, "window_ends_at": "09:00"} | {"id": None})
    assert bad_window.status_code == 422

    def optimize(**params: object) -> dict[str, Any]:
        """202 with the job, handed to the worker; the worker runs it; the job as it ended."""
        started = api.post(
            f"/api/v1/locations/{ids['location']}/optimize",
            params={"date": "2026-03-03", "time_limit_seconds": 2, **params},
        )
        assert started.status_code == 202
        job = started.json()
        assert job["status"] == "queued"
        assert started.headers["location"] == job["status_url"] == f"/api/v1/optimization-jobs/{job['id']}"
        assert api.get(job["status_url"]).json()["status"] == "queued"  # until a worker runs it
        assert handed.pop() == uuid.UUID(job["id"])
        scheduling.run_optimization_job(engine, uuid.UUID(job["id"]))
        ended: dict[str, Any] = api.get(job["status_url"]).json()
        assert ended["elapsed_seconds"] is not None
        return ended

    done = optimize()
    assert (done["status"], done["error"]) == ("done", None)
    proposal = api.get(f"/api/v1/proposals/{done['proposal_id']}").json()
    [item] = proposal["items"]
    assert (item["kind"], item["status"], item["starts_at"]) == ("waitlist", "booked", "2026-03-03T15:00:00Z")
    assert proposal["gain_cents"] > 0
    assert api.get("/api/v1/appointments").json()["total"] == 0  # shadow mode
    applied = api.post(f"/api/v1/proposals/{proposal['id']}/apply", json={})
    assert (applied.status_code, applied.json()["status"]) == (200, "applied")
    assert api.get("/api/v1/appointments").json()["total"] == 1
    listed = api.get("/api/v1/waitlist", params={"location_id": ids["location"], "date": "2026-03-03"}).json()
    assert listed == []
    replanned = api.get(f"/api/v1/proposals/{optimize(max_moves=1)['proposal_id']}").json()
    assert [(i["kind"], i["status"]) for i in replanned["items"]] == [("appointment", "kept")]
    assert (replanned["moves"], replanned["max_moves"]) == (0, 1)
    assert optimize(date="2026-03-08")["status"] == "done"  # a daylight-saving day is planned too
    created(api.post(f"/api/v1/locations/{ids['location']}/closures", json={"closed_on": "2026-03-09"}))
    closed = optimize(date="2026-03-09")
    assert (closed["status"], closed["proposal_id"]) == ("failed", None)
    assert closed["error"] == "the location is closed on Monday, 2026-03-09 (a closure)"
    negative = api.post(
        f"/api/v1/locations/{ids['location']}/optimize", params={"date": "2026-03-03", "max_moves": -1}
    )
    assert (negative.status_code, negative.json()["fields"]) == (422, ["max_moves"])
    huge = api.post(
        f"/api/v1/locations/{ids['location']}/optimize",
        params={"date": "2026-03-03", "max_moves": 9223372036854775808},
    )
    assert (huge.status_code, huge.json()["fields"]) == (422, ["max_moves"])
    edge = api.post(f"/api/v1/locations/{ids['location']}/optimize", params={"date": "9999-12-31"})
    assert (edge.status_code, edge.json()["fields"]) == (422, ["date"])
    assert api.get(f"/api/v1/optimization-jobs/{uuid.uuid4()}").status_code == 404
    assert handed == []


def test_a_lost_database_connection_is_503_and_other_database_errors_500(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from medspa.scheduling import service as scheduling

    def lost(*_args: object, **_kwargs: object) -> None:
        raise OperationalError(
            "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True
        )

    def broken(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("SELECT 1", {}, Exception("disk full"))

    body = {
        "client_id": str(uuid.uuid4()),
        "service_id": str(uuid.uuid4()),
        "location_id": str(uuid.uuid4()),
        "starts_at": "2027-01-04T15:00:00Z",
    }
    monkeypatch.setattr(scheduling, "book_appointment", lost)
    response = api.post("/api/v1/appointments", json=body)
    assert (response.status_code, response.json()["error"], response.headers["Retry-After"]) == (
        503,
        "database_unavailable",
        "1",
    )
    monkeypatch.setattr(scheduling, "book_appointment", broken)
    response = api.post("/api/v1/appointments", json=body)
    assert (response.status_code, response.json()["error"]) == (500, "internal_error")


def test_the_token_list_says_when_each_token_was_last_used(api: TestClient, test_clock: ManualClock) -> None:
    """Listed without the tokens themselves; a use is written by the process's flusher (here at once)."""
    from medspa.security import activity

    test_clock.set(datetime(2026, 12, 4, 9, 30, tzinfo=UTC))
    issued = api.post("/api/v1/tokens", json={"name": "kiosk", "role": "front_desk"}).json()
    listed = {token["id"]: token for token in api.get("/api/v1/tokens").json()}
    assert listed[issued["id"]]["last_used_at"] is None
    assert "token" not in listed[issued["id"]]
    test_clock.set(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))
    used = api.get("/api/v1/locations", headers={"Authorization": f"Bearer {issued['token']}"})
    assert used.status_code == 200
    activity.flush(api.app.state.engine, api.app.state.activity)
    listed = {token["id"]: token for token in api.get("/api/v1/tokens").json()}
    assert listed[issued["id"]]["last_used_at"].startswith("2026-12-04T10:00:00")
    assert listed[issued["id"]]["prefix"] == issued["prefix"]
