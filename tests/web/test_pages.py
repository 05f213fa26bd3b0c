"""The server-rendered pages through FastAPI's TestClient: sign-in, the day view, slots and booking."""

from __future__ import annotations

import html
import re
import uuid
from collections import Counter
from datetime import date, timedelta

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.api import SESSION_COOKIE
from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.tz import to_local
from medspa.resources import service as resources
from medspa.scheduling import scores
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, BookingRequest, Status
from medspa.web import pages
from medspa.web.board import PIXELS_PER_MINUTE
from tests.factories import make_client
from tests.web.conftest import (
    FRONT_DESK,
    Demo,
    appointments_on,
    booking_service_id,
    first_day_with_slots,
    local_today,
)

HTMX = {"HX-Request": "true"}
SLOT_VALUE = re.compile(r'name="slot" value="([^"]+)"')


def _day_url(demo: Demo, day: date | None = None) -> str:
    url = f"/locations/{demo.location_id}/day"
    return f"{url}?date={day.isoformat()}" if day else url


def _busiest_day(engine: Engine, demo: Demo) -> date:
    with unit_of_work(engine, write=False) as session:
        every = scheduling.list_appointments(
            session, actor=demo.actor, location_id=demo.location_id, limit=1000
        ).items
    days = Counter(to_local(a.starts_at, "America/New_York").date() for a in every)
    return days.most_common(1)[0][0]


def _a_client_id(engine: Engine, demo: Demo) -> uuid.UUID:
    """A new client: free at any time (a demo client may have an appointment then, and is in one place)."""
    with unit_of_work(engine) as session:
        return make_client(session, actor=demo.actor).id


# --- signing in ---------------------------------------------------------------------------------------


def test_home_sends_a_signed_out_visitor_to_the_login_page(client: TestClient) -> None:
    redirect = client.get("/", follow_redirects=False)
    assert redirect.status_code == 303
    assert redirect.headers["location"] == "/login"
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert 'name="organization" value="demo"' in page.text


def test_pages_deny_a_request_without_a_session(client: TestClient, demo_template: Demo) -> None:
    page = client.get(_day_url(demo_template), follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login"
    fragment = client.get(f"/locations/{demo_template.location_id}/slots", headers=HTMX)
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"] == "/login"
    client.cookies.set(SESSION_COOKIE, "not-a-session")
    forged = client.get(_day_url(demo_template), follow_redirects=False)
    assert forged.status_code == 303
    assert forged.headers["location"] == "/login"


def test_every_page_but_signing_in_and_out_and_a_clients_links_needs_a_session(
    client: TestClient, demo_template: Demo
) -> None:
    # A client's links (an offer, unsubscribing) carry a signed token instead: tests/engagement.
    open_paths = {"/login", "/login/code", "/logout", "/offers/{token}", "/unsubscribe/{token}"}
    checked = 0
    for route in [r for router in pages.ROUTERS for r in router.routes]:
        assert isinstance(route, APIRoute)
        if route.path in open_paths:
            continue
        path = route.path.format(
            location_id=demo_template.location_id,
            appointment_id=uuid.uuid4(),
            action="check_in",
            proposal_id=uuid.uuid4(),
            job_id=uuid.uuid4(),
            action_id=uuid.uuid4(),
            erasure_id=uuid.uuid4(),
            decision="approve",
            access_id=uuid.uuid4(),
            entry_id=uuid.uuid4(),
            kind="reminder",
            channel="email",
            client_id=uuid.uuid4(),
            provider_id=uuid.uuid4(),
            room_id=uuid.uuid4(),
            device_id=uuid.uuid4(),
            service_id=uuid.uuid4(),
            schedule="shifts",
            connection_id=uuid.uuid4(),
            inbox_id=uuid.uuid4(),
        )
        for method in sorted(route.methods):
            response = client.request(method, path, follow_redirects=False)
            assert (method, path, response.status_code) == (method, path, 303)
            assert response.headers["location"] == "/login"
            checked += 1
    assert checked == 61


def test_wrong_password_shows_the_form_again_with_one_message(client: TestClient) -> None:
    response = client.post(
        "/login",
        data={"organization": "demo", "email": FRONT_DESK, "password": "wrong"},
        follow_redirects=False,
    )
    assert response.status_code == 401
    assert response.text.count('class="flash error"') == 1
    assert "wrong organization, email or password" in response.text
    assert f'value="{FRONT_DESK}"' in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_signing_in_sets_a_strict_cookie_and_opens_the_first_location(
    client: TestClient, demo_template: Demo
) -> None:
    response = client.post(
        "/login",
        data={"organization": "demo", "email": FRONT_DESK, "password": "medspa-demo"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 303
    assert home.headers["location"] == f"/locations/{demo_template.location_id}/day"
    assert client.get("/login", follow_redirects=False).headers["location"] == "/"


def test_a_post_from_another_site_or_without_origin_is_refused(client: TestClient) -> None:
    data = {"organization": "demo", "email": FRONT_DESK, "password": "medspa-demo"}
    foreign = client.post("/login", data=data, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert "cross-site" in foreign.text
    bare = TestClient(client.app).post("/login", data=data, follow_redirects=False)
    assert bare.status_code == 403
    assert SESSION_COOKIE not in client.cookies


def test_signing_out_ends_the_session(signed_in: TestClient, demo_template: Demo) -> None:
    response = signed_in.post("/logout", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert signed_in.get(_day_url(demo_template), follow_redirects=False).headers["location"] == "/login"


# --- the day view -------------------------------------------------------------------------------------


def test_day_view_shows_a_column_per_provider_and_every_appointment_of_the_day(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = _busiest_day(engine, demo_template)
    appointments = appointments_on(engine, demo_template, day)
    with unit_of_work(engine, write=False) as session:
        providers = resources.list_providers(
            session, actor=demo_template.actor, location_id=demo_template.location_id
        ).items
        names = clients.client_names(
            session, actor=demo_template.actor, client_ids={a.client_id for a in appointments}
        )

    page = signed_in.get(_day_url(demo_template, day))

    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.text.count('class="column"') == len(providers) == 7
    for provider in providers:
        assert f'data-provider="{provider.id}"' in page.text
    shown = [a for a in appointments if a.status is not Status.CANCELLED]
    assert shown
    assert page.text.count('<article id="appt-') == len(shown)
    for appointment in appointments:
        present = f'id="appt-{appointment.id}"' in page.text
        assert present is (appointment.status is not Status.CANCELLED)
    for appointment in shown:
        assert html.escape(names[appointment.client_id]) in page.text
        assert f"status-{appointment.status.value}" in page.text
    # Blocks sit at their local wall-clock time on an axis that starts at the 9 AM opening.
    first = shown[0]
    local = to_local(first.starts_at, "America/New_York")
    top = round((local.hour * 60 + local.minute - 9 * 60) * PIXELS_PER_MINUTE)
    assert re.search(rf'<article id="appt-{first.id}"[^>]*style="top: {top}px;', page.text)
    assert f"?date={date.fromordinal(day.toordinal() - 1).isoformat()}" in page.text
    assert f"?date={date.fromordinal(day.toordinal() + 1).isoformat()}" in page.text


def test_day_view_shades_the_time_a_provider_is_off(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    today = local_today(engine, demo_template)
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    with unit_of_work(engine, write=False) as session:
        providers = {
            p.name: p.id
            for p in resources.list_providers(
                session, actor=demo_template.actor, location_id=demo_template.location_id
            ).items
        }

    page = signed_in.get(_day_url(demo_template, monday))

    columns = {
        chunk.split('"', 1)[0]: chunk for chunk in page.text.split('<div class="column" data-provider="')[1:]
    }
    # Jordan Reyes works Tuesday to Friday; Dr. Elena Marsh works Monday 9-5 with a half-hour lunch.
    assert ">Not working<" in columns[str(providers["Jordan Reyes"])]
    marsh = columns[str(providers["Dr. Elena Marsh"])]
    assert ">Not working<" not in marsh
    assert marsh.count(">Break<") == 1
    assert marsh.count(">Off shift<") == 1  # 5 PM to the 7 PM close


def test_day_view_of_an_htmx_navigation_is_only_the_day_section(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    day = _busiest_day(engine, demo_template)
    fragment = signed_in.get(_day_url(demo_template, day), headers={**HTMX, "HX-Target": "day"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<section id="day"')
    assert "<html" not in fragment.text


def test_an_unknown_location_is_a_not_found_page(signed_in: TestClient) -> None:
    page = signed_in.get(f"/locations/{uuid.uuid4()}/day")
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]
    assert "not found" in page.text


def test_malformed_input_is_an_html_page_not_a_500(signed_in: TestClient, demo_template: Demo) -> None:
    bad_id = signed_in.get("/locations/not-an-id/day")
    assert bad_id.status_code == 422
    assert "text/html" in bad_id.headers["content-type"]
    assert "invalid input" in bad_id.text


# --- slots and booking --------------------------------------------------------------------------------


def test_slots_fragment_lists_what_find_slots_returns(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    service_id = booking_service_id(engine, demo_template)
    day, slots = first_day_with_slots(engine, demo_template, service_id)

    fragment = signed_in.get(
        f"/locations/{demo_template.location_id}/slots",
        params={"service_id": str(service_id), "date": day.isoformat(), "provider_id": ""},
        headers=HTMX,
    )

    assert fragment.status_code == 200
    values = SLOT_VALUE.findall(fragment.text)
    assert len(values) == len(slots)
    first = slots[0]
    assert html.unescape(values[0]).startswith(first.starts_at.isoformat())
    assert html.escape(first.provider_name) in fragment.text
    assert first.room_name in fragment.text
    assert first.device_name is not None
    assert first.device_name in fragment.text


def _offered_slot(client: TestClient, demo: Demo, service_id: uuid.UUID, day: date) -> str:
    fragment = client.get(
        f"/locations/{demo.location_id}/slots",
        params={"service_id": str(service_id), "date": day.isoformat()},
        headers=HTMX,
    )
    return html.unescape(SLOT_VALUE.findall(fragment.text)[0])


def test_booking_a_slot_from_the_form_books_it_and_updates_the_day(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    service_id = booking_service_id(engine, demo_template)
    day, slots = first_day_with_slots(engine, demo_template, service_id)
    client_id = _a_client_id(engine, demo_template)
    slot = _offered_slot(signed_in, demo_template, service_id, day)
    before = {a.id for a in appointments_on(engine, demo_template, day)}

    response = signed_in.post(
        f"/locations/{demo_template.location_id}/appointments",
        data={
            "client_id": str(client_id),
            "service_id": str(service_id),
            "date": day.isoformat(),
            "slot": slot,
        },
        headers=HTMX,
    )

    assert response.status_code == 200
    assert "Booked " in response.text
    assert '<section id="day" class="day" hx-swap-oob="outerHTML"' in response.text
    assert response.headers["HX-Push-Url"] == _day_url(demo_template, day)
    new = [a for a in appointments_on(engine, demo_template, day) if a.id not in before]
    assert len(new) == 1
    booked = new[0]
    assert booked.status is Status.BOOKED
    assert (booked.client_id, booked.service_id) == (client_id, service_id)
    assert (booked.starts_at, booked.provider_id, booked.room_id, booked.device_id) == (
        slots[0].starts_at,
        slots[0].provider_id,
        slots[0].room_id,
        slots[0].device_id,
    )
    assert re.search(rf'id="appt-{booked.id}"[^>]* class="appt status-booked new"', response.text)


def test_booking_a_slot_someone_just_took_answers_409_with_fresh_slots(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    service_id = booking_service_id(engine, demo_template)
    day, _ = first_day_with_slots(engine, demo_template, service_id)
    client_id = _a_client_id(engine, demo_template)
    slot = _offered_slot(signed_in, demo_template, service_id, day)
    form = {"client_id": str(client_id), "service_id": str(service_id), "date": day.isoformat(), "slot": slot}
    url = f"/locations/{demo_template.location_id}/appointments"
    assert signed_in.post(url, data=form, headers=HTMX).status_code == 200
    count = len(appointments_on(engine, demo_template, day))

    again = signed_in.post(url, data=form, headers=HTMX)

    assert again.status_code == 409
    assert "Could not book" in again.text
    assert "already booked at that time" in again.text
    assert not re.search(r"\([0-9a-f]{8}-[0-9a-f]{4}-", again.text), "record ids are not for the front desk"
    assert again.text.lstrip().startswith('<div id="slots"')
    assert '<section id="day" class="day" hx-swap-oob="outerHTML"' in again.text
    assert slot not in [html.unescape(v) for v in SLOT_VALUE.findall(again.text)]
    assert len(appointments_on(engine, demo_template, day)) == count


def test_booking_without_a_client_asks_for_one_and_books_nothing(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    service_id = booking_service_id(engine, demo_template)
    day, _ = first_day_with_slots(engine, demo_template, service_id)
    slot = _offered_slot(signed_in, demo_template, service_id, day)
    count = len(appointments_on(engine, demo_template, day))
    response = signed_in.post(
        f"/locations/{demo_template.location_id}/appointments",
        data={"service_id": str(service_id), "date": day.isoformat(), "slot": slot},
        headers=HTMX,
    )
    assert response.status_code == 422
    assert "Choose or add a client first" in response.text
    assert len(appointments_on(engine, demo_template, day)) == count


# --- clients ------------------------------------------------------------------------------------------


def test_client_search_finds_exact_email_and_phone(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    with unit_of_work(engine, write=False) as session:
        known = clients.list_clients(session, actor=demo_template.actor, limit=1).items[0]
    assert known.email is not None
    assert known.phone is not None
    url = f"/locations/{demo_template.location_id}/clients"
    by_email = signed_in.get(url, params={"q": known.email.upper()}, headers=HTMX)
    by_phone = signed_in.get(url, params={"q": known.phone}, headers=HTMX)
    nobody = signed_in.get(url, params={"q": "nobody@nowhere.example"}, headers=HTMX)
    for found in (by_email, by_phone):
        assert found.status_code == 200
        assert f'value="{known.id}" checked' in found.text
    assert 'name="client_id"' not in nobody.text
    assert "No client found by that name, e-mail or phone" in nobody.text


def test_a_client_name_with_markup_is_escaped_everywhere(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    evil = "<script>alert('pwned')</script>"
    added = signed_in.post(
        f"/locations/{demo_template.location_id}/clients",
        data={"first_name": evil, "last_name": "Doe", "email": "evil@example.com"},
        headers=HTMX,
    )
    assert added.status_code == 200
    assert evil not in added.text
    assert "&lt;script&gt;" in added.text
    assert '<details id="new-client" class="new-client" hx-swap-oob="outerHTML">' in added.text
    service_id = booking_service_id(engine, demo_template)
    day, slots = first_day_with_slots(engine, demo_template, service_id)
    with unit_of_work(engine) as session:
        client = clients.list_clients(session, actor=demo_template.actor, email="evil@example.com").items[0]
        scheduling.book_appointment(
            session,
            actor=demo_template.actor,
            data=BookingRequest(
                client_id=client.id,
                service_id=service_id,
                location_id=demo_template.location_id,
                starts_at=slots[0].starts_at,
            ),
        )

    page = signed_in.get(_day_url(demo_template, day))

    assert page.status_code == 200
    assert evil not in page.text
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; Doe" in page.text


def test_a_new_client_needs_a_name_and_a_way_to_reach_them(
    signed_in: TestClient, demo_template: Demo
) -> None:
    url = f"/locations/{demo_template.location_id}/clients"
    nameless = signed_in.post(
        url, data={"first_name": "", "last_name": "Doe", "email": "a@b.example"}, headers=HTMX
    )
    unreachable = signed_in.post(url, data={"first_name": "Ann", "last_name": "Doe"}, headers=HTMX)
    assert nameless.status_code == 422
    assert "first_name" in nameless.text
    assert unreachable.status_code == 422
    assert "email or a phone" in unreachable.text


# --- the lifecycle from a block -----------------------------------------------------------------------


def _book_one(engine: Engine, demo: Demo) -> AppointmentRead:
    service_id = booking_service_id(engine, demo)
    _, slots = first_day_with_slots(engine, demo, service_id)
    with unit_of_work(engine) as session:
        client = clients.create_client(
            session,
            actor=demo.actor,
            data=ClientCreate(first_name="Nora", last_name="Vale", phone="5550101234"),
        )
        return scheduling.book_appointment(
            session,
            actor=demo.actor,
            data=BookingRequest(
                client_id=client.id,
                service_id=service_id,
                location_id=demo.location_id,
                starts_at=slots[0].starts_at,
            ),
        )


def test_lifecycle_buttons_move_the_appointment_and_redraw_the_day(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    appointment = _book_one(engine, demo_template)
    url = f"/appointments/{appointment.id}"
    day = to_local(appointment.starts_at, "America/New_York").date()
    page = signed_in.get(_day_url(demo_template, day))
    block = page.text.split(f'<article id="appt-{appointment.id}"', 1)[1].split("</article>", 1)[0]
    # Booked and not yet started: no "start", "complete" or "no-show" (before its start) on offer.
    assert re.findall(rf'hx-post="{url}/(\w+)"', block) == ["confirm", "check_in", "move", "cancel"]

    confirmed = signed_in.post(f"{url}/confirm", headers=HTMX)
    checked_in = signed_in.post(f"{url}/check_in", headers=HTMX)
    refused = signed_in.post(f"{url}/complete", headers=HTMX)

    assert confirmed.status_code == 200
    assert f'id="appt-{appointment.id}" class="appt status-confirmed"' in confirmed.text
    assert checked_in.status_code == 200
    assert checked_in.text.lstrip().startswith('<section id="day"')
    assert f'id="appt-{appointment.id}" class="appt status-checked_in"' in checked_in.text
    assert "Checked in Nora Vale" in checked_in.text
    assert refused.status_code == 409
    assert "is checked in; it cannot be completed" in refused.text
    with unit_of_work(engine, write=False) as session:
        now = scheduling.get_appointment(session, actor=demo_template.actor, appointment_id=appointment.id)
    assert now.status is Status.CHECKED_IN


def test_cancelling_from_a_block_needs_a_reason_and_removes_the_block(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    appointment = _book_one(engine, demo_template)
    url = f"/appointments/{appointment.id}/cancel"

    no_reason = signed_in.post(url, data={"reason": "  "}, headers=HTMX)
    cancelled = signed_in.post(url, data={"reason": "client is ill"}, headers=HTMX)

    assert no_reason.status_code == 422
    assert "Give a reason to cancel" in no_reason.text
    assert cancelled.status_code == 200
    assert f'id="appt-{appointment.id}"' not in cancelled.text
    with unit_of_work(engine, write=False) as session:
        now = scheduling.get_appointment(session, actor=demo_template.actor, appointment_id=appointment.id)
    assert (now.status, now.cancellation_reason) == (Status.CANCELLED, "client is ill")
    assert now.cancelled_by == f"user:{FRONT_DESK}"


def test_day_view_flags_a_booking_the_model_finds_likely_to_be_missed(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    today = local_today(engine, demo_template)
    day, upcoming = next(
        (day, found)
        for day in (today + timedelta(days=n) for n in range(1, 5))
        if len(found := [a for a in appointments_on(engine, demo_template, day) if a.status is Status.BOOKED])
        > 1
    )
    risky, safe = upcoming[0], upcoming[1]
    with unit_of_work(engine) as session:
        scores.store_no_show_scores(
            session,
            actor=demo_template.actor,
            probabilities={risky.id: 0.31, safe.id: 0.05},
            model_version="v-test",
            scored_at=clock.now(),
        )

    page = signed_in.get(_day_url(demo_template, day))

    assert page.text.count('<div class="risk"') == 1
    block = page.text.split(f'id="appt-{risky.id}"', 1)[1].split("</article>", 1)[0]
    assert "No-show risk 31%" in block
    assert "v-test" not in block  # the model's version explains nothing to the desk
    assert "day ahead" in block or "days ahead" in block or "booked the same day" in block


@pytest.mark.parametrize(("secure_cookies", "marked"), [("", False), ("1", True)])
def test_the_session_cookie_is_secure_when_served_over_tls(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, secure_cookies: str, marked: bool
) -> None:
    """`medspa serve` with TLS or behind a TLS proxy sets MEDSPA_SECURE_COOKIES=1 (the browser then sends
    the session only over HTTPS, even where the proxy's scheme header is not trusted)."""
    monkeypatch.setenv("MEDSPA_SECURE_COOKIES", secure_cookies)
    response = client.post(
        "/login",
        data={"organization": "demo", "email": FRONT_DESK, "password": "medspa-demo"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert ("secure" in response.headers["set-cookie"].lower()) == marked


def test_the_api_takes_a_change_with_the_session_cookie_only_from_this_site(signed_in: TestClient) -> None:
    """A signed-in browser's cookie also authenticates the API, so an API change made with it must show
    the same origin as the pages' forms do: another site's page cannot book or edit with it (CSRF)."""
    body = {"first_name": "Cross", "last_name": "Site"}
    assert signed_in.get("/api/v1/clients?limit=1").status_code == 200  # reading needs no origin
    refused = [
        signed_in.post("/api/v1/clients", json=body, headers={"Origin": ""}),  # no origin at all
        signed_in.post("/api/v1/clients", json=body, headers={"Origin": "https://evil.example"}),
        signed_in.post(
            "/api/v1/clients", json=body, headers={"Origin": "", "Referer": "https://evil.example/page"}
        ),
    ]
    assert [response.status_code for response in refused] == [403, 403, 403]
    assert signed_in.get("/api/v1/clients?email=nobody@x.example").status_code == 200
    made = signed_in.post("/api/v1/clients", json=body)  # the client sends this site's Origin
    assert made.status_code == 201, made.text


def test_a_page_kept_waiting_for_the_database_says_so_and_saves_nothing(
    signed_in: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's single writer busy past the wait: the page answers 503 with a message and Retry-After."""
    from medspa.kit import db

    monkeypatch.setattr(db, "SQLITE_WRITE_WAIT_SECONDS", 0.2)
    lock = db._writer_lock(engine)
    assert lock.acquire(timeout=10)
    try:
        response = signed_in.post(
            f"/appointments/{uuid.uuid4()}/confirm", headers={"HX-Request": "true"}, follow_redirects=False
        )
    finally:
        lock.release()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "The database is busy with another change" in response.text
