"""The waitlist in the day view: add from the booking form, book a waiting client from the list at a
start that fits their window, take one off; each through the same service functions as the API."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.catalog import service as catalog
from medspa.kit.db import unit_of_work
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.web.board import local_today
from tests.factories import make_client
from tests.web.conftest import Demo

HTMX = {"HX-Request": "true"}


def test_the_desk_adds_books_and_removes_waitlisted_clients(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    actor = demo_template.actor
    with unit_of_work(engine) as session:
        location = resources.get_location(session, actor=actor, location_id=demo_template.location_id)
        service = next(
            s for s in catalog.list_services(session, actor=actor, limit=100).items if s.name == "HydraFacial"
        )
        # A day past the seeded waitlist (a week) with free HydraFacial times, whatever today is.
        day = next(
            d
            for d in (local_today(location) + timedelta(days=n) for n in range(8, 40))
            if scheduling.find_slots(
                session,
                actor=actor,
                location_id=location.id,
                service_id=service.id,
                first_date=d,
                last_date=d,
            )
        )
        first = make_client(session, actor=actor)
        second = make_client(session, actor=actor)
    base = f"/locations/{demo_template.location_id}"
    form = {
        "service_id": str(service.id),
        "date": day.isoformat(),
        "window_from": "09:00",
        "window_to": "17:00",
    }

    missing_client = signed_in.post(f"{base}/waitlist", data=form, headers=HTMX)
    added = signed_in.post(f"{base}/waitlist", data={**form, "client_id": str(first.id)}, headers=HTMX)
    signed_in.post(f"{base}/waitlist", data={**form, "client_id": str(second.id)}, headers=HTMX)
    with unit_of_work(engine, write=False) as session:
        entries = scheduling.list_waitlist(session, actor=actor, location_id=location.id, service_date=day)
    by_client = {e.client_id: e.id for e in entries}
    options = signed_in.get(f"/waitlist/{by_client[first.id]}/options", headers=HTMX)
    slot = re.search(r'name="slot" value="([^"]+)"', options.text)
    assert slot is not None
    booked = signed_in.post(
        f"/waitlist/{by_client[first.id]}/book", data={"slot": slot.group(1)}, headers=HTMX
    )
    again = signed_in.post(
        f"/waitlist/{by_client[first.id]}/book", data={"slot": slot.group(1)}, headers=HTMX
    )
    removed = signed_in.post(f"/waitlist/{by_client[second.id]}/remove", headers=HTMX)

    assert missing_client.status_code == 422
    assert "Choose or add a client first." in missing_client.text
    assert added.status_code == 200
    assert "Added to the waitlist." in added.text
    assert booked.status_code == 200
    assert "Booked from the waitlist at" in booked.text
    assert again.status_code == 409
    assert "booked already" in again.text
    assert removed.status_code == 200
    assert "Taken off the waitlist." in removed.text
    with unit_of_work(engine, write=False) as session:
        waiting = scheduling.list_waitlist(session, actor=actor, location_id=location.id, service_date=day)
        done = scheduling.list_waitlist(
            session, actor=actor, location_id=location.id, service_date=day, status="booked"
        )
    assert waiting == []
    assert [e.client_id for e in done] == [first.id]
    assert done[0].appointment_id is not None


def test_the_messages_page_previews_every_kind_and_a_manager_edits_the_wording(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    from medspa.security.actors import Role
    from tests.web.test_roles import sign_in

    page = f"/locations/{demo_template.location_id}/messages"
    desk = sign_in(client, Role.FRONT_DESK)
    seen = desk.get(page)
    refused = desk.post(f"{page}/reminder/sms", data={"text_body": "Hi {{ first_name }}"})
    desk.post("/logout")
    manager = sign_in(client, Role.MANAGER)
    broken = manager.post(f"{page}/reminder/sms", data={"text_body": "Hi {{ nobody }}"})
    saved = manager.post(
        f"{page}/reminder/sms", data={"text_body": "Hi {{ first_name }}, see you {{ when }}."}
    )

    assert seen.status_code == 200
    assert "Booked: Signature facial on Thu, Dec 10 at 9:30 AM" in seen.text  # the sample confirmation
    assert seen.text.count('<details class="template">') == 20
    assert "Save" not in seen.text
    assert refused.status_code == 403
    assert broken.status_code == 422
    assert "does not render" in broken.text
    assert saved.status_code == 200
    assert "Hi Nova, see you Thu, Dec 10 at 9:30 AM." in saved.text
    assert "this location&#39;s own" in saved.text or "this location's own" in saved.text
