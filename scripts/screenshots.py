"""The screenshots in docs/screenshots: the demo clinic (a small one) served locally and photographed in
headless Chromium as the role that uses each page, at desktop width and at a phone's.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import uvicorn
from playwright.sync_api import Page, sync_playwright

from medspa.app import create_app
from medspa.demo.seed import DEMO_PASSWORD, DEMO_TOTP_SECRET, STAFF, seed_demo
from medspa.integrations import mappings
from medspa.integrations import service as integrations
from medspa.integrations.schemas import ConnectionCreate, MappingSet
from medspa.kit import clock
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import upgrade
from medspa.kit.tz import to_local
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import Status
from medspa.security import totp
from medspa.security.actors import system_actor
from medspa.security.permissions import Role

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
EMAILS = {role: email for email, _name, role in STAFF}


def sign_in(page: Page, role: Role) -> None:
    page.context.clear_cookies()
    page.goto("/login")
    page.fill("input[name=organization]", "demo")
    page.fill("input[name=email]", EMAILS[role])
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_load_state("networkidle")
    if page.url.endswith("/login/code"):
        page.fill("input[name=code]", totp.code_at(DEMO_TOTP_SECRET, totp.step_at(clock.now())))
        page.press("input[name=code]", "Enter")
        page.wait_for_load_state("networkidle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/screenshots")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'shots.db'}"
    upgrade(url)
    engine = make_engine(url)
    demo = seed_demo(engine, client_count=300, past_days=21, future_days=7)
    actor = system_actor(demo.organization_id, "screenshots")
    with unit_of_work(engine, write=False) as session:
        location = resources.get_location(session, actor=actor, location_id=demo.location_id)
        booked = scheduling.list_appointments(
            session,
            actor=actor,
            location_id=location.id,
            status=Status.BOOKED,
            starts_from=clock.now(),
            limit=1,
        ).items[0]
        marsh = next(
            p.id
            for p in resources.list_providers(session, actor=actor, location_id=location.id).items
            if p.name == "Dr. Elena Marsh"
        )
        theirs = scheduling.list_appointments(
            session,
            actor=actor,
            location_id=location.id,
            status=Status.BOOKED,
            starts_from=clock.now(),
            limit=500,
        ).items
    with unit_of_work(engine) as session:  # a connection with a mapping, for the Integrations tab
        data = ConnectionCreate(connector="mindbody", name="Mindbody", secret="screenshots-secret")
        connection = integrations.add_connection(session, actor=actor, data=data)
        mapping = MappingSet(kind="service", external_id="55", record_id=booked.service_id)
        mappings.set_mapping(session, actor=actor, connection_id=connection.id, data=mapping)
    their_day = min(
        to_local(a.starts_at, location.time_zone).date() for a in theirs if a.provider_id == marsh
    )
    tomorrow = (to_local(clock.now(), location.time_zone).date() + timedelta(days=1)).isoformat()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    day = f"/locations/{location.id}/day?date={tomorrow}"
    shots = [
        (Role.FRONT_DESK, 1400, day, "day.png"),
        (Role.FRONT_DESK, 1400, f"/locations/{location.id}/week?date={tomorrow}", "week.png"),
        (Role.FRONT_DESK, 1400, f"{day}&by=room", "day-by-room.png"),
        (Role.FRONT_DESK, 1400, f"/clients/{booked.client_id}", "client-card.png"),
        (Role.FRONT_DESK, 1400, "/clients/drifting", "drifting.png"),
        (Role.FRONT_DESK, 390, day, "day-phone.png"),
        (Role.FRONT_DESK, 390, f"/clients/{booked.client_id}", "client-card-phone.png"),
        (Role.PROVIDER, 390, f"/my-day?date={their_day.isoformat()}", "my-day-phone.png"),
        (Role.OWNER, 1400, f"/locations/{location.id}/settings/staff", "settings.png"),
        (Role.OWNER, 1400, f"/locations/{location.id}/settings/integrations", "integrations.png"),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
        context = browser.new_context(
            base_url=f"http://127.0.0.1:{port}", viewport={"width": 1400, "height": 1000}
        )
        page = context.new_page()
        signed_in: Role | None = None
        for role, width, path, name in shots:
            if role is not signed_in:
                sign_in(page, role)
                signed_in = role
            page.set_viewport_size({"width": width, "height": 1000 if width > 600 else 844})
            page.goto(path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / name), full_page=width > 600)
            print(out / name)
        browser.close()
    server.should_exit = True


if __name__ == "__main__":
    main()
