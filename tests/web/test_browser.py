"""The day view in a real browser: headless Chromium (the system's `/usr/bin/chromium`) driven by
Playwright against uvicorn serving a freshly seeded SQLite database on a free local port."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine

from medspa.app import create_app
from medspa.demo.seed import DEMO_PASSWORD, DEMO_TOTP_SECRET
from medspa.integrations import mappings, service
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.security import totp
from medspa.security.permissions import Role
from tests.web.conftest import (
    BOOKING_SERVICE,
    FRONT_DESK,
    Demo,
    booking_service_id,
    first_day_with_a_waitlist,
    first_day_with_slots,
)
from tests.web.test_roles import ROLES

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(engine: Engine) -> Iterator[str]:
    """The app served by uvicorn in a background thread, optimization jobs run in threads of their own
    (as the worker would); yields its base URL."""

    def worker(job_id: uuid.UUID) -> None:
        threading.Thread(target=scheduling.run_optimization_job, args=(engine, job_id), daemon=True).start()

    port = _free_port()
    app = create_app(engine, optimization_queue=worker)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def chromium() -> Path:
    """The system's Chromium; checked before any database or server is set up for the test."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian package chromium; `make browser` installs it)")
    return CHROMIUM


@pytest.fixture
def page(chromium: Path, server: str) -> Iterator[Any]:
    """A Chromium page; skipped (with the reason) only when Chromium is missing or cannot start."""
    from playwright.sync_api import Error, sync_playwright

    try:
        playwright = sync_playwright().start()
    except Exception as error:  # the Playwright driver itself could not run
        pytest.skip(f"Playwright could not start: {error}")
    try:
        try:
            browser = playwright.chromium.launch(
                executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
            )
        except Error as error:
            pytest.skip(f"Playwright could not start {chromium}: {error.message.splitlines()[0]}")
        context = browser.new_context(viewport={"width": 1500, "height": 1000}, base_url=server)
        context.set_default_timeout(10_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
    finally:
        playwright.stop()


def _screenshot_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get("MEDSPA_SCREENSHOT_DIR")
    target = Path(chosen) if chosen else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    return target


def test_front_desk_signs_in_sees_the_day_and_books_a_slot(
    page: Any, engine: Engine, demo_template: Demo, tmp_path: Path
) -> None:
    with unit_of_work(engine, write=False) as session:
        providers = resources.list_providers(
            session, actor=demo_template.actor, location_id=demo_template.location_id
        ).items
    service_id = booking_service_id(engine, demo_template)
    day, slots = first_day_with_slots(engine, demo_template, service_id)

    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto("/")
    assert page.url.endswith("/login")
    page.fill("input[name=email]", FRONT_DESK)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/locations/{demo_template.location_id}/day")
    assert page.locator(".board .column").count() == len(providers) == 7

    page.goto(f"/locations/{demo_template.location_id}/day?date={day.isoformat()}")
    blocks_before = page.locator("article.appt").count()
    page.click("summary:has-text('New client')")
    page.fill("input[name=first_name]", "Ines")
    page.fill("input[name=last_name]", "Moreau")
    page.fill("input[name=phone]", "+1 555 010 4242")
    page.click("button:has-text('Add client')")
    page.wait_for_selector("#client-choice input[name=client_id]:checked")
    page.select_option("select[name=service_id]", label=f"{BOOKING_SERVICE} · 60 min")
    page.fill("input[name=date]", day.isoformat())
    page.click("button:has-text('Find slots')")
    page.wait_for_selector("#slots button.slot")
    assert page.locator("#slots button.slot").count() == len(slots)

    page.locator("#slots button.slot").first.click()

    page.wait_for_selector("#slots .flash.ok")
    assert "Booked Ines Moreau for HydraFacial" in page.inner_text("#slots")
    new_block = page.locator("article.appt.new")
    new_block.wait_for()
    assert "Ines Moreau" in new_block.inner_text()
    assert slots[0].room_name in new_block.inner_text()
    assert page.locator("article.appt").count() == blocks_before + 1
    shot = _screenshot_dir(tmp_path) / "day-view.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")

    page.locator("article.appt.new summary").click()
    page.locator("article.appt.new button:has-text('Check in')").click()
    checked_in = page.locator("article.appt.status-checked_in", has_text="Ines Moreau")
    checked_in.wait_for()
    assert "Checked in Ines Moreau" in page.inner_text("#day .flash.ok")
    checked_in.locator("summary").click()
    checked_in.locator("input[name=reason]").fill("client rescheduling by phone")
    checked_in.locator("button:has-text('Cancel')").click()
    page.wait_for_selector("#day .flash.ok:has-text('Cancelled Ines Moreau')")
    assert page.locator("article.appt").count() == blocks_before
    # Expected refusals answer 4xx on purpose; anything else in the console (a script error, a blocked
    # resource, a Content-Security-Policy violation) is a fault.
    assert [p for p in problems if "status of 4" not in p] == []


def test_front_desk_optimizes_a_day_and_applies_the_proposal(
    page: Any, engine: Engine, demo_template: Demo, tmp_path: Path
) -> None:
    day = first_day_with_a_waitlist(engine, demo_template)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto("/login")
    page.fill("input[name=email]", FRONT_DESK)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/locations/{demo_template.location_id}/day")

    page.goto(f"/locations/{demo_template.location_id}/day?date={day.isoformat()}")
    waiting = page.locator(".waitlist .waiting li").count()
    assert waiting > 0
    shot = _screenshot_dir(tmp_path)
    page.locator("#waitlist").screenshot(path=str(shot / "day-waitlist.png"))
    page.fill("#optimize input[name=time_limit_seconds]", "1")
    page.click("button:has-text('Optimize this day')")
    # The job's page polls until the proposal is stored, then opens it (at once, if the job was quicker).
    page.wait_for_url("**/proposals/*", timeout=30_000)

    assert page.inner_text("h1").startswith("Proposal for ")
    assert page.inner_text("#gain").startswith(("+$", "$"))
    proposed = page.locator("tr.row-proposed")
    placements = proposed.count()
    assert placements > 0
    assert page.locator("input[name=requests]:checked").count() == placements
    assert page.locator("tr[data-request]").count() >= waiting
    page.screenshot(path=str(shot / "proposal.png"), full_page=True)
    print(f"screenshots: {shot}")

    if placements > 1:  # leave the last one out: a partial apply
        page.locator("input[name=requests]").last.uncheck()
    page.click("button:has-text('Apply selected')")
    page.wait_for_selector(".flash.ok")
    booked = max(placements - 1, 1)
    assert f"Booked {booked} placement" in page.inner_text(".flash.ok")
    assert page.locator("tr.row-booked").count() == booked
    assert page.locator("tr.row-left_out").count() == placements - booked
    assert page.locator("tr.row-proposed").count() == 0
    assert page.locator("button:has-text('Apply selected')").count() == 0
    page.screenshot(path=str(shot / "proposal-applied.png"), full_page=True)

    page.click("a:has-text('Back to the day')")
    page.wait_for_url(f"**/locations/{demo_template.location_id}/day?date={day.isoformat()}")
    assert page.locator(".waitlist .waiting li").count() == waiting - booked
    assert [p for p in problems if "status of 4" not in p] == []


# --- every role's pages at a desktop's and a phone's width ---------------------------------------------

WIDTHS = (1280, 390)


def pages_of(role: Role, demo: Demo, engine: Engine) -> list[str]:
    with unit_of_work(engine, write=False) as session:
        someone = scheduling.list_appointments(session, actor=demo.actor, limit=1).items[0].client_id
    day = f"/locations/{demo.location_id}/day"
    week = f"/locations/{demo.location_id}/week"
    pages = [day, f"{day}?by=room", week, f"{week}?by=device", "/clients?q=an", f"/clients/{someone}"]
    if role in (Role.FRONT_DESK, Role.MANAGER, Role.OWNER):
        pages.append(f"/locations/{demo.location_id}/messages")
    if role in (Role.MANAGER, Role.OWNER):
        pages.append("/approvals")
        settings = f"/locations/{demo.location_id}/settings"
        tabs = ("staff", "rooms", "devices", "services", "integrations")
        pages += [settings, *(f"{settings}/{tab}" for tab in tabs)]
    if role in (Role.FRONT_DESK, Role.MANAGER, Role.OWNER):
        pages.append("/clients/drifting")
    if role is Role.PROVIDER:
        pages.append("/my-day")
    return pages


def sign_in_as(page: Any, role: Role) -> None:
    page.goto("/login")
    page.fill("input[name=organization]", "demo")
    page.fill("input[name=email]", ROLES[role])
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_load_state("networkidle")
    if page.url.endswith("/login/code"):
        page.fill("input[name=code]", totp.code_at(DEMO_TOTP_SECRET, totp.step_at(clock.now())))
        page.press("input[name=code]", "Enter")
        page.wait_for_load_state("networkidle")


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.PROVIDER, Role.MANAGER, Role.OWNER])
def test_each_roles_pages_fit_a_phone_and_pass_axe(
    page: Any,
    engine: Engine,
    demo_template: Demo,
    role: Role,
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    problems = []
    sign_in_as(page, role)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for path in pages_of(role, demo_template, engine):
            page.goto(path)
            page.wait_for_load_state("networkidle")
            assert page.url.endswith(path), f"{role.value} could not open {path}: at {page.url}"
            scroll = page.evaluate("document.documentElement.scrollWidth")
            found = axe.run(page).response["violations"]
            bad = [
                f"{v['id']} ({len(v['nodes'])})" for v in found if v.get("impact") in ("serious", "critical")
            ]
            print(f"{role.value} {width}px {path}: {scroll} px wide; axe serious/critical: {bad or 'none'}")
            if scroll > width:
                problems.append(f"{path} at {width} px is {scroll} px wide")
            if bad:
                problems.append(f"{path} at {width} px: {bad}")
    assert problems == []


SETTINGS_TABS = ("", "/staff", "/rooms", "/devices", "/services", "/integrations")
# Every control of the page that is shown, whose height is under 44 px (a touch target too small).
SMALL_CONTROLS = """() => [...document.querySelectorAll('main :is(input, select, textarea, button, summary)')]
  .filter(e => e.offsetParent !== null && e.getBoundingClientRect().height < 44)
  .map(e => `${e.tagName} ${e.name || e.textContent.trim().slice(0, 30)}`)"""


def test_the_settings_pages_fit_a_phone_with_every_form_open_and_save_from_it(
    page: Any, engine: Engine, demo_template: Demo
) -> None:
    sign_in_as(page, Role.OWNER)
    page.set_viewport_size({"width": 390, "height": 900})
    settings = f"/locations/{demo_template.location_id}/settings"
    problems = []
    for tab in SETTINGS_TABS:
        page.goto(settings + tab)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        scroll = page.evaluate("document.documentElement.scrollWidth")
        if scroll > 390:
            problems.append(f"{tab or '/'} with every form open is {scroll} px wide")
        small = page.evaluate(SMALL_CONTROLS)
        if small:
            problems.append(f"{tab or '/'}: under 44 px tall: {small[:5]}")
    assert problems == []

    page.goto(f"{settings}/rooms")
    form = page.locator("form[action$='/settings/rooms']")
    form.get_by_label("Name").fill("Phone Suite")
    form.get_by_label("Room type").fill("treatment")
    form.get_by_role("button", name="Add room").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("status").inner_text() == "Saved: added the room Phone Suite."
    with unit_of_work(engine, write=False) as session:
        rooms = resources.list_rooms(
            session, actor=demo_template.actor, location_id=demo_template.location_id
        )
    assert "Phone Suite" in {room.name for room in rooms.items}


def test_a_keyboard_user_keeps_their_place_after_an_update(
    page: Any, engine: Engine, demo_template: Demo
) -> None:
    """Skip link first; an appointment's actions say whose they are; after an action updates the day,
    focus is on that appointment again, not lost to the page's body."""
    from medspa.kit.tz import to_local
    from tests.web.conftest import booked_visits

    location, visits = booked_visits(engine, demo_template, 1, 14)
    assert visits, "the demo clinic has bookings in the next two weeks"
    visit = min(visits, key=lambda v: v.starts_at)
    day = to_local(visit.starts_at, location.time_zone).date()
    sign_in_as(page, Role.FRONT_DESK)
    page.goto(f"/locations/{demo_template.location_id}/day?date={day.isoformat()}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    block = page.locator(f"#appt-{visit.id}")
    article_id = block.get_attribute("id")
    summary = block.locator("summary")
    label = summary.get_attribute("aria-label") or ""
    assert label.startswith("Actions for ")
    assert block.locator(".client").inner_text() in label
    summary.focus()
    page.keyboard.press("Enter")
    first = block.locator("details.actions button").first
    first.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#day .flash")
    page.wait_for_timeout(200)
    focused = page.evaluate("document.activeElement === document.body ? null : document.activeElement.id")
    assert focused == article_id


def test_the_desk_drags_a_booking_to_another_time_and_is_told_why_a_taken_one_is_refused(
    page: Any, engine: Engine, demo_template: Demo
) -> None:
    from datetime import timedelta

    from medspa.kit.tz import to_local
    from tests.web.conftest import book_new_client, free_slots, local_today

    service_id = booking_service_id(engine, demo_template)
    today = local_today(engine, demo_template)
    zone = "America/New_York"
    for offset in range(1, 21):
        day = today + timedelta(days=offset)
        slots = free_slots(engine, demo_template, service_id, day, day)
        pairs = [(a, b) for a in slots for b in slots if b.starts_at >= a.ends_at + timedelta(minutes=30)]
        if pairs:
            first, later = pairs[0]
            break
    else:
        raise AssertionError("no day with two free times apart")
    booked = book_new_client(engine, demo_template, service_id, first)
    sign_in_as(page, Role.FRONT_DESK)
    page.goto(f"/locations/{demo_template.location_id}/day?date={day.isoformat()}")
    board = page.locator(".board")
    first_minute = int(board.get_attribute("data-first-minute") or 0)
    per_minute = int(board.get_attribute("data-pixels-per-hour") or 0) / 60

    def y_of(instant: Any) -> float:
        local = to_local(instant, zone)
        return (local.hour * 60 + local.minute - first_minute) * per_minute + 5

    block = page.locator(f"#appt-{booked.id}")
    column = page.locator(f'.column[data-provider="{later.provider_id}"]')
    block.drag_to(
        column, source_position={"x": 10, "y": 5}, target_position={"x": 12, "y": y_of(later.starts_at)}
    )
    page.wait_for_selector("#day .flash.ok")
    assert "Moved " in page.inner_text("#day .flash.ok")
    with unit_of_work(engine, write=False) as session:
        moved = scheduling.get_appointment(session, actor=demo_template.actor, appointment_id=booked.id)
    taken = book_new_client(engine, demo_template, service_id, first)  # the time just left, taken
    assert moved.starts_at == later.starts_at
    page.reload()
    page.locator(f"#appt-{booked.id}").drag_to(
        page.locator(f'.column[data-provider="{taken.provider_id}"]'),
        source_position={"x": 10, "y": 5},
        target_position={"x": 12, "y": y_of(taken.starts_at)},
    )
    page.wait_for_selector("#day .flash.error")
    assert "Could not move it" in page.inner_text("#day .flash.error")
    with unit_of_work(engine, write=False) as session:
        still = scheduling.get_appointment(session, actor=demo_template.actor, appointment_id=booked.id)
    assert still.starts_at == later.starts_at


@pytest.mark.parametrize("width", WIDTHS)
def test_the_desk_finds_a_client_as_they_type_and_opens_the_card(
    page: Any, engine: Engine, demo_template: Demo, width: int
) -> None:
    from medspa.clients import service as clients

    with unit_of_work(engine, write=False) as session:
        someone = scheduling.list_appointments(session, actor=demo_template.actor, limit=1).items[0]
        person = clients.get_client(session, actor=demo_template.actor, client_id=someone.client_id)
    page.set_viewport_size({"width": width, "height": 900})
    sign_in_as(page, Role.FRONT_DESK)
    page.goto("/clients")
    page.locator("#client-query").press_sequentially(person.last_name[:4], delay=40)
    result = page.locator(f'#client-results a[href="/clients/{person.id}"]')
    result.wait_for()
    result.click()
    page.wait_for_url(f"**/clients/{person.id}")
    assert person.last_name in page.inner_text("h1")
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_a_provider_checks_in_a_visit_on_my_day_and_stays_on_it(
    page: Any, engine: Engine, demo_template: Demo, width: int
) -> None:
    from medspa.kit.tz import to_local
    from tests.web.conftest import booked_visits
    from tests.web.test_roles import marsh_id

    marsh = marsh_id(engine, demo_template)
    location, visits = booked_visits(engine, demo_template, 1, 14)
    visit = min((v for v in visits if v.provider_id == marsh), key=lambda v: (v.starts_at, str(v.id)))
    day = to_local(visit.starts_at, location.time_zone).date().isoformat()
    page.set_viewport_size({"width": width, "height": 900})
    sign_in_as(page, Role.PROVIDER)
    page.goto(f"/my-day?date={day}")
    assert page.locator(".board .column").count() == 1
    block = page.locator(f"#appt-{visit.id}")
    block.locator("summary").click()
    block.locator("button:has-text('Check in')").click()
    page.wait_for_selector("#day .flash.ok")
    # HTMX settles a swapped element's attributes a moment after the swap: wait for the new status class.
    page.wait_for_selector(f"#appt-{visit.id}.status-checked_in")
    assert page.locator(".board .column").count() == 1  # still my day, not the clinic's
    assert "My day" in page.inner_text("#day-title")
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_the_desk_reminds_a_risky_booking_from_the_call_list(
    page: Any, engine: Engine, demo_template: Demo, width: int
) -> None:
    from medspa.kit.tz import to_local
    from tests.web.conftest import booked_visits

    location, visits = booked_visits(engine, demo_template, 2, 14)
    risky = min(visits, key=lambda v: (v.starts_at, str(v.id)))
    with unit_of_work(engine) as session:
        scheduling.store_no_show_scores(
            session,
            actor=demo_template.actor,
            probabilities={risky.id: 0.66},
            model_version="test",
            scored_at=risky.created_at,
        )
    day = to_local(risky.starts_at, location.time_zone).date().isoformat()
    page.set_viewport_size({"width": width, "height": 900})
    sign_in_as(page, Role.PROVIDER)
    page.goto(f"/locations/{location.id}/day?date={day}")
    assert page.locator("#call-list").count() == 0  # providers do not ring clients
    page.context.clear_cookies()
    sign_in_as(page, Role.FRONT_DESK)
    page.goto(f"/locations/{location.id}/day?date={day}")
    page.locator("#call-list button:has-text('Remind')").first.click()
    page.wait_for_selector("#day .flash.ok:has-text('Reminder on its way')")
    page.locator("#call-list button:has-text('Request deposit')").first.click()
    page.wait_for_selector("#day .flash.ok:has-text('Deposit to take noted')")
    listed = page.inner_text("#call-list")
    assert "reminded" in listed
    assert "deposit to take" in listed
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_a_manager_merges_a_second_record_and_the_desk_is_not_offered_it(
    page: Any, engine: Engine, demo_template: Demo
) -> None:
    from medspa.clients import service as clients
    from medspa.clients.schemas import ClientCreate

    with unit_of_work(engine) as session:
        someone = scheduling.list_appointments(session, actor=demo_template.actor, limit=1).items[0]
        person = clients.get_client(session, actor=demo_template.actor, client_id=someone.client_id)
        assert person.phone is not None
        second = clients.create_client(
            session,
            actor=demo_template.actor,
            data=ClientCreate(first_name=person.first_name, last_name="Twice", phone=person.phone),
        )
    sign_in_as(page, Role.FRONT_DESK)
    page.goto(f"/clients/{person.id}")
    assert page.locator("text=Possible second records").count() == 0
    page.context.clear_cookies()
    sign_in_as(page, Role.MANAGER)
    page.goto(f"/clients/{person.id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f'form:has(input[value="{second.id}"]) button').click()
    page.wait_for_selector("main .flash.ok:has-text('Merged')")
    assert page.locator("text=Possible second records").count() == 0
    page.goto(f"/clients/{second.id}")
    assert "merged into another" in page.inner_text("main")


@pytest.mark.parametrize("width", [1280, 390])
def test_the_desk_opens_the_week_and_goes_from_it_to_a_day_and_a_visit(
    page: Any, engine: Engine, demo_template: Demo, width: int
) -> None:
    from tests.web.conftest import new_booking

    day, booked = new_booking(engine, demo_template)
    base = f"/locations/{demo_template.location_id}"
    sign_in_as(page, Role.FRONT_DESK)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{base}/week?date={day.isoformat()}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    item = page.locator(f"#week-appt-{booked.id}")
    item.scroll_into_view_if_needed()
    assert BOOKING_SERVICE in item.inner_text()

    page.get_by_role("link", name=day.strftime("%a %b ") + str(day.day)).first.click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"{base}/day?date={day.isoformat()}")
    assert page.locator(f"#appt-{booked.id}").count() == 1

    page.get_by_role("link", name="Week", exact=True).click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"{base}/week?date={day.isoformat()}")
    page.locator(f"#week-appt-{booked.id}").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"{base}/day?date={day.isoformat()}#appt-{booked.id}")
    assert page.locator(f"#appt-{booked.id}").is_visible()


def test_in_the_room_view_no_block_drags_and_the_switch_goes_back_to_providers(
    page: Any, engine: Engine, demo_template: Demo
) -> None:
    from tests.web.conftest import new_booking

    day, booked = new_booking(engine, demo_template)
    sign_in_as(page, Role.FRONT_DESK)
    page.goto(f"/locations/{demo_template.location_id}/day?date={day.isoformat()}")
    page.get_by_role("link", name="Room", exact=True).click()
    page.wait_for_selector('.view-switch a[aria-current="page"]:text("Room")')
    assert page.url.endswith(f"?date={day.isoformat()}&by=room")
    assert page.locator(f"#appt-{booked.id}").get_attribute("draggable") is None
    assert page.locator(".column[data-provider]").count() == 0

    page.get_by_role("link", name="Provider", exact=True).click()
    page.wait_for_selector('.view-switch a[aria-current="page"]:text("Provider")')
    assert page.locator(f"#appt-{booked.id}").get_attribute("draggable") == "true"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_owner_connects_a_system_and_maps_a_service_from_the_integrations_tab(
    page: Any, engine: Engine, demo_template: Demo, width: int, tmp_path: Path
) -> None:
    from axe_playwright_python.sync_playwright import Axe

    secret = "mindbody-secret-from-the-browser"
    sign_in_as(page, Role.OWNER)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"/locations/{demo_template.location_id}/settings")
    page.locator("nav.tabs").get_by_role("link", name="Integrations").click()
    page.wait_for_load_state("networkidle")

    add = page.locator("form[action$='/settings/integrations']")
    add.get_by_label("System").select_option("mindbody")
    add.get_by_label("Name").fill("Front office")
    add.get_by_label("Shared secret").fill(secret)
    add.get_by_role("button", name="Add connection").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("status").inner_text().startswith("Saved: connected Front office (mindbody).")
    assert secret not in page.content()

    page.get_by_text("Mappings of Front office").click()
    mapping = page.locator("form[action$='/mappings']")
    mapping.get_by_label("Their id").fill("55")
    mapping.get_by_label("Our record").select_option(label=BOOKING_SERVICE)
    mapping.get_by_role("button", name="Map").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("status").inner_text() == f"Saved: their service 55 is {BOOKING_SERVICE}."

    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate(SMALL_CONTROLS) == []
    page.screenshot(path=str(_screenshot_dir(tmp_path) / f"integrations-{width}.png"), full_page=True)
    found = Axe().run(page).response["violations"]
    assert [v["id"] for v in found if v.get("impact") in ("serious", "critical")] == []
    service_id = booking_service_id(engine, demo_template)
    with unit_of_work(engine, write=False) as session:
        (connection,) = service.list_connections(session, actor=demo_template.actor).items
        links = mappings.list_mappings(session, actor=demo_template.actor, connection_id=connection.id)
    assert connection.name == "Front office"
    assert [(link.kind, link.external_id, link.record_id) for link in links.items] == [
        ("service", "55", service_id)
    ]
