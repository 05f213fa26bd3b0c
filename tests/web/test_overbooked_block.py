"""An overbooked visit is marked on the day page, beside the booking it shares its provider's time with,
with the reason it was allowed."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.engagement import overbooking
from medspa.engagement import service as engagement
from medspa.engagement.schemas import PolicyUpdate
from medspa.kit import tz
from medspa.kit.db import unit_of_work
from medspa.kit.errors import MedspaError
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import BookingRequest
from medspa.security.actors import Role
from tests.factories import make_client
from tests.web.conftest import Demo, booked_visits
from tests.web.test_roles import sign_in


def test_the_day_page_marks_an_overbooked_visit_and_says_why(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    actor = demo_template.actor
    location, booked = booked_visits(engine, demo_template, 2, 5)
    with unit_of_work(engine) as session:
        engagement.set_policy(
            session, actor=actor, location_id=location.id, data=PolicyUpdate(overbooking_cap_minutes=240)
        )
        client = make_client(session, actor=actor)
    made = None
    for host in booked:  # the first whose provider's time has a free room beside it
        data = BookingRequest(
            client_id=client.id,
            service_id=host.service_id,
            location_id=location.id,
            starts_at=host.starts_at,
            provider_id=host.provider_id,
        )
        try:
            with unit_of_work(engine) as session:
                made = overbooking.overbook(session, actor=actor, data=data).appointment
            break
        except MedspaError:
            continue
    assert made is not None
    assert made.overbooking is not None
    day = tz.to_local(made.starts_at, location.time_zone).date()
    page = signed_in.get(f"/locations/{location.id}/day", params={"date": day.isoformat()})
    assert page.status_code == 200
    block = page.text.split(f'id="appt-{made.id}"', 1)[1].split("</article>", 1)[0]
    assert "overbooked" in block.split(">", 1)[0].split('class="', 1)[1].split('"')[0].split()
    assert "Overbooked" in block
    assert "Overbooked beside" in block


def test_a_manager_sets_the_overbooking_cap_on_the_messages_page(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    actor = demo_template.actor
    base = f"/locations/{demo_template.location_id}/messages"
    desk = sign_in(client, Role.FRONT_DESK)
    assert "Overbooking: off" in desk.get(base).text
    assert desk.post(f"{base}/overbooking", data={"cap": "45"}).status_code == 403
    desk.post("/logout")
    signed_in = sign_in(client, Role.MANAGER)
    for bad in ("", "-5", "481", "abc", "1e3", "\x00"):
        refused = signed_in.post(f"{base}/overbooking", data={"cap": bad})
        assert refused.status_code == 422, bad
        assert ("invalid input" if "\x00" in bad else "whole number of minutes") in refused.text
    saved = signed_in.post(f"{base}/overbooking", data={"cap": "45"})
    assert saved.status_code == 200
    assert "within 45 minutes a day" in saved.text
    with unit_of_work(engine, write=False) as session:
        policy = engagement.get_policy(session, actor=actor, location_id=demo_template.location_id)
    assert policy.overbooking_cap_minutes == 45


def test_the_desk_overbooks_from_the_booking_form(
    signed_in: TestClient, engine: Engine, demo_template: Demo
) -> None:
    actor = demo_template.actor
    location, visits = booked_visits(engine, demo_template, 2, 7)
    with unit_of_work(engine) as session:
        client = make_client(session, actor=actor)
    base = f"/locations/{location.id}"
    form = {"client_id": str(client.id), "date": "", "service_id": ""}
    made = None
    for visit in visits[:25]:
        with unit_of_work(engine) as session:
            engagement.set_policy(
                session, actor=actor, location_id=location.id, data=PolicyUpdate(overbooking_cap_minutes=0)
            )
            scheduling.store_no_show_scores(
                session,
                actor=actor,
                probabilities={visit.id: 0.65},
                model_version="test",
                scored_at=visit.created_at,
            )
        day = tz.to_local(visit.starts_at, location.time_zone).date().isoformat()
        form = {"client_id": str(client.id), "date": day, "service_id": str(visit.service_id)}
        query = {"service_id": form["service_id"], "date": day}
        assert "overbook beside" not in signed_in.get(f"{base}/slots", params=query).text  # off: not offered
        with unit_of_work(engine) as session:
            engagement.set_policy(
                session, actor=actor, location_id=location.id, data=PolicyUpdate(overbooking_cap_minutes=120)
            )
        fragment = signed_in.get(f"{base}/slots", params=query).text
        assert "Or overbook beside a likely no-show" in fragment
        assert "no-show risk 65%" in fragment
        value = f"{visit.starts_at.isoformat()}|{visit.provider_id}"
        done = signed_in.post(f"{base}/overbook", data={**form, "beside": value})
        if done.status_code == 200:
            made = done
            break
    assert made is not None
    assert "Overbooked" in made.text
    assert "Overbooked beside" in made.text
    for bad in ("", "nonsense", "2027-01-01T10:00:00|x", f"2027-01-01T10:00:00|{client.id}"):
        refused = signed_in.post(f"{base}/overbook", data={**form, "beside": bad})
        assert refused.status_code == 422, bad
    no_client = signed_in.post(f"{base}/overbook", data={**form, "client_id": "", "beside": value})
    assert no_client.status_code == 422
