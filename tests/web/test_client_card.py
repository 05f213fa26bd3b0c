"""Finding a client from the box on every page, and the client card: contact and consents, preferences
and notes, visit history and upcoming bookings, no-shows and the served risks, for each role as it may
see them."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate, ClientRead
from medspa.kit.db import unit_of_work
from medspa.kit.tz import to_local
from medspa.memberships import service as memberships
from medspa.memberships.schemas import MembershipRead
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import Status
from medspa.security.actors import Role
from tests.factories import store_membership_lapse, store_retention_score
from tests.web.conftest import Demo, booked_visits
from tests.web.test_roles import sign_in


def regular_with_a_note(engine: Engine, demo: Demo) -> tuple[ClientRead, int]:
    """A demo client with a note for the provider and completed visits, and how many."""
    with unit_of_work(engine, write=False) as session:
        done = scheduling.list_appointments(
            session, actor=demo.actor, status=Status.COMPLETED, limit=500
        ).items
        visits: dict[uuid.UUID, int] = {}
        for a in done:
            visits[a.client_id] = visits.get(a.client_id, 0) + 1
        for client_id, count in sorted(visits.items(), key=lambda kv: -kv[1]):
            client = clients.get_client(session, actor=demo.actor, client_id=client_id)
            if client.preferences and "notes_for_provider" in client.preferences:
                return client, count
    raise AssertionError("the demo has no client with a note and a visit")


def test_the_search_box_finds_a_client_by_part_of_the_name_or_the_phone_written_another_way(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    person, _ = regular_with_a_note(engine, demo_template)
    desk = sign_in(client, Role.FRONT_DESK)
    day = desk.get(f"/locations/{demo_template.location_id}/day").text
    assert 'action="/clients"' in day  # the box is on the page
    assert person.phone is not None
    digits = person.phone[-10:]
    other_format = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    for query in (person.last_name[:4].lower(), f"{person.first_name} {person.last_name[:3]}", other_format):
        found = desk.get("/clients", params={"q": query})
        assert found.status_code == 200
        assert f"/clients/{person.id}" in found.text, query
    typed = desk.get(
        "/clients",
        params={"q": person.last_name},
        headers={"HX-Request": "true", "HX-Target": "client-results"},
    )
    assert typed.text.lstrip().startswith('<div id="client-results"')
    assert "No client found" in desk.get("/clients", params={"q": "zzqxv"}).text
    assert desk.get("/clients", params={"q": "x" * 10_000}).status_code == 200
    assert desk.get("/clients", params={"q": "a\x00b"}).status_code == 422


def test_the_client_card_shows_history_notes_and_risk_to_each_role_as_it_may(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    person, visits = regular_with_a_note(engine, demo_template)
    note = str(person.preferences["notes_for_provider"]) if person.preferences else ""
    card = f"/clients/{person.id}"
    desk = sign_in(client, Role.FRONT_DESK).get(card)
    assert desk.status_code == 200
    text = desk.text
    assert f"{person.first_name} {person.last_name}" in text
    assert note in text
    assert f"{visits} completed visit" in text
    assert "No-shows:" in text
    assert "Lapse risk" in text or "Not scored by the return model yet" in text
    assert "appointment e-mails" in text
    client.post("/logout")
    provider = sign_in(client, Role.PROVIDER).get(card).text
    assert note in provider  # the provider sees what they need
    assert "Lapse risk" not in provider  # not the retention figures
    assert "Not scored" not in provider
    client.post("/logout")
    marketing = sign_in(client, Role.MARKETING).get(card).text
    assert note not in marketing  # no clinical notes for marketing
    assert sign_in(client, Role.FRONT_DESK).get(f"/clients/{uuid.uuid4()}").status_code == 404


def test_every_block_of_the_day_opens_its_clients_card(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    location, visits = booked_visits(engine, demo_template, 1, 14)
    day = to_local(visits[0].starts_at, location.time_zone).date().isoformat()
    page = sign_in(client, Role.FRONT_DESK).get(f"/locations/{location.id}/day?date={day}").text
    blocks = page.count('<article id="appt-')
    assert blocks > 0
    assert page.count('<div class="client"><a href="/clients/') == blocks


def test_adding_a_client_already_on_file_offers_the_existing_record_first(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    person, _ = regular_with_a_note(engine, demo_template)
    assert person.phone is not None
    desk = sign_in(client, Role.FRONT_DESK)
    url = f"/locations/{demo_template.location_id}/clients"
    digits = person.phone[-10:]
    form = {"first_name": "Someone", "last_name": "Else", "phone": f"{digits[:3]}.{digits[3:6]}.{digits[6:]}"}
    warned = desk.post(url, data=form, headers={"HX-Request": "true"})
    assert warned.status_code == 200
    assert "Already a client?" in warned.text
    assert f'href="/clients/{person.id}"' in warned.text
    assert "Add the new client anyway" in warned.text
    with unit_of_work(engine, write=False) as session:
        assert not clients.search_clients(session, actor=demo_template.actor, query="Someone Else").items
    added = desk.post(url, data={**form, "anyway": "yes"}, headers={"HX-Request": "true"})
    assert "Added Someone." in added.text
    assert desk.post(url, data={**form, "date_of_birth": "not a date"}).status_code == 422


def test_clients_drifting_away_are_listed_by_what_is_at_stake(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    regular, _ = regular_with_a_note(engine, demo_template)
    with unit_of_work(engine) as session:
        done = scheduling.list_appointments(
            session, actor=demo_template.actor, status=Status.COMPLETED, limit=500
        ).items
        someone_else = next(a.client_id for a in done if a.client_id != regular.id)
        for client_id, risk in ((regular.id, 0.55), (someone_else, 0.9)):
            store_retention_score(
                session,
                organization_id=demo_template.organization_id,
                client_id=client_id,
                lapse_risk=risk,
                visits=3,
                last_visit_on=date(2026, 1, 5),
                next_action="staff_outreach",
            )
        names = clients.client_names(
            session, actor=demo_template.actor, client_ids={regular.id, someone_else}
        )
    page = sign_in(client, Role.FRONT_DESK).get("/clients/drifting")
    assert page.status_code == 200
    assert names[regular.id] in page.text
    assert names[someone_else] in page.text
    assert "55%" in page.text
    assert "A call from the staff" in page.text
    client.post("/logout")
    assert sign_in(client, Role.PROVIDER).get("/clients/drifting").status_code == 403


def test_a_manager_corrects_a_finished_visit_from_its_block(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    with unit_of_work(engine, write=False) as session:
        done = scheduling.list_appointments(
            session, actor=demo_template.actor, status=Status.COMPLETED, limit=500
        ).items
        location = resources.get_location(
            session, actor=demo_template.actor, location_id=demo_template.location_id
        )
    visit = done[-1]
    local_day = to_local(visit.starts_at, location.time_zone).date()
    day = f"/locations/{location.id}/day?date={local_day.isoformat()}"
    desk_page = sign_in(client, Role.FRONT_DESK).get(day).text
    assert "Correct to no-show" not in desk_page
    client.post("/logout")
    manager = sign_in(client, Role.MANAGER)
    block = manager.get(day).text.split(f'id="appt-{visit.id}"', 1)[1].split("</article>", 1)[0]
    assert "Correct to no-show" in block
    url = f"/appointments/{visit.id}/correct"
    assert manager.post(url, data={"status": "no_show", "reason": ""}).status_code == 422
    assert manager.post(url, data={"status": "booked", "reason": "x"}).status_code == 422
    answer = manager.post(url, data={"status": "no_show", "reason": "never came"})
    assert answer.status_code == 200
    assert "Corrected" in answer.text
    with unit_of_work(engine, write=False) as session:
        history = scheduling.appointment_history(session, actor=demo_template.actor, appointment_id=visit.id)
    assert history[-1].reason == "corrected: never came"


def test_a_manager_merges_a_second_record_from_the_card_and_the_desk_may_not(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    person, visits = regular_with_a_note(engine, demo_template)
    assert person.phone is not None
    with unit_of_work(engine) as session:
        second = clients.create_client(
            session,
            actor=demo_template.actor,
            data=ClientCreate(first_name="Someone", last_name="Else", phone=f"+1 {person.phone[-10:]}"),
        )
    card = f"/clients/{person.id}"
    desk = sign_in(client, Role.FRONT_DESK)
    assert "Possible second records" not in desk.get(card).text
    refused = desk.post(f"{card}/merge", data={"duplicate_id": str(second.id)})
    assert refused.status_code == 403
    client.cookies.clear()

    manager = sign_in(client, Role.MANAGER)
    page = manager.get(card).text
    assert "Possible second records of this client" in page
    assert f'value="{second.id}"' in page
    assert manager.post(f"{card}/merge", data={"duplicate_id": "not-an-id"}).status_code == 422
    assert manager.post(f"{card}/merge", data={"duplicate_id": str(person.id)}).status_code == 422
    with unit_of_work(engine, write=False) as session:
        assert clients.get_client(session, actor=demo_template.actor, client_id=second.id).is_active
    merged = manager.post(f"{card}/merge", data={"duplicate_id": str(second.id)})
    assert merged.status_code == 200
    assert "Merged:" in merged.text
    assert "Possible second records" not in merged.text
    old = manager.get(f"/clients/{second.id}").text
    assert "This record was merged into another" in old
    assert f'href="/clients/{person.id}"' in old
    again = manager.post(f"{card}/merge", data={"duplicate_id": str(second.id)})
    assert again.status_code == 409
    assert "merged into another already" in again.text
    with unit_of_work(engine, write=False) as session:
        kept = clients.get_client(session, actor=demo_template.actor, client_id=person.id)
        gone = clients.get_client(session, actor=demo_template.actor, client_id=second.id)
    assert gone.merged_into_id == person.id
    assert not gone.is_active
    assert kept.is_active
    assert visits > 0


def test_the_providers_note_is_on_the_block_and_in_the_days_huddle(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    person, _ = regular_with_a_note(engine, demo_template)
    note = str((person.preferences or {})["notes_for_provider"])
    with unit_of_work(engine, write=False) as session:
        visit = scheduling.list_appointments(
            session, actor=demo_template.actor, client_id=person.id, status=Status.COMPLETED, limit=1
        ).items[0]
        location = resources.get_location(session, actor=demo_template.actor, location_id=visit.location_id)
        marketing = dataclasses.replace(demo_template.actor, role=Role.MARKETING)
        assert clients.provider_notes(session, actor=marketing, client_ids=[person.id]) == {}
    day = to_local(visit.starts_at, location.time_zone).date().isoformat()
    page = sign_in(client, Role.PROVIDER).get(f"/locations/{location.id}/day?date={day}").text
    block = page[page.index(f'<article id="appt-{visit.id}"') :]
    block = block[: block.index("</article>")]
    assert f"✎ {note}" in block
    huddle = page[page.index('id="huddle"') :]
    huddle = huddle[: huddle.index("</section>")]
    assert f"#appt-{visit.id}" in huddle
    assert note in huddle


def _members(engine: Engine, demo: Demo) -> tuple[MembershipRead, uuid.UUID]:
    """An active member of the demo clinic, and a client without any membership."""
    with unit_of_work(engine, write=False) as session:
        book = memberships.list_memberships(session, actor=demo.actor, limit=500).items
        everyone = clients.list_clients(session, actor=demo.actor, limit=500).items
    member = next(m for m in sorted(book, key=lambda m: (m.started_on, m.id)) if m.ended_on is None)
    holders = {m.client_id for m in book}
    return member, next(c.id for c in sorted(everyone, key=lambda c: c.id) if c.id not in holders)


def test_the_card_shows_the_membership_and_its_served_lapse_risk_in_plain_words_or_why_there_is_none(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    # given a member of the demo clinic, whose 40 clients hold too few memberships for a churn model
    member, _ = _members(engine, demo_template)
    card = f"/clients/{member.client_id}"
    desk = sign_in(client, Role.FRONT_DESK)
    text = desk.get(card).text
    assert f"<strong>{member.plan}</strong> since {member.started_on.isoformat()}" in text
    with unit_of_work(engine, write=False) as session:
        counts = memberships.membership_counts(session, actor=demo_template.actor, on=member.started_on.max)
    said = f"this clinic has {counts.total} memberships, {counts.ended} ended"
    assert f"No membership lapse risk: {said}; a churn model needs at least 30, 10 of them ended." in text
    # when the scoring job has stored the member's risk
    with unit_of_work(engine) as session:
        store_membership_lapse(
            session,
            organization_id=demo_template.organization_id,
            client_id=member.client_id,
            membership_id=member.id,
            lapse_risk=0.2345,
            memberships=326,
        )
    # then the card says it in words, with the book it comes from
    text = desk.get(card).text
    assert (
        "A 23% chance of ending in the next 3 months, after 7 months as a member, from the churn model of "
        "this clinic's 326 memberships." in text
    )
    client.post("/logout")
    provider = sign_in(client, Role.PROVIDER).get(card).text
    assert f"<strong>{member.plan}</strong>" in provider  # the plan, not the retention figures
    assert "chance of ending" not in provider
    assert "End the membership" not in provider


def test_the_desk_starts_and_ends_a_membership_from_the_card_and_bad_input_changes_nothing(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    _, person = _members(engine, demo_template)
    card = f"/clients/{person}"
    desk = sign_in(client, Role.FRONT_DESK)
    assert "No active membership." in desk.get(card).text
    good = {"plan": "Glow Plus", "monthly_price": "149.50", "started_on": "2026-01-15"}
    for bad, problem in (
        (good | {"monthly_price": "-5"}, "monthly_price_cents"),
        (good | {"monthly_price": "12.345"}, "monthly price in dollars"),
        (good | {"monthly_price": "lots"}, "monthly price in dollars"),
        (good | {"started_on": "9999-01-01"}, "started_on"),
        (good | {"plan": ""}, "plan"),
        (good | {"plan": "Glow\x00"}, ""),
    ):
        refused = desk.post(f"{card}/memberships", data=bad)
        assert refused.status_code == 422, bad
        assert problem in refused.text
    with unit_of_work(engine, write=False) as session:
        assert memberships.client_memberships(session, actor=demo_template.actor, client_id=person) == []
    started = desk.post(f"{card}/memberships", data=good)
    assert started.status_code == 200
    assert "Membership started: Glow Plus since 2026-01-15." in started.text
    assert "$149.50 a month" in started.text
    second = desk.post(f"{card}/memberships", data=good)
    assert second.status_code == 409
    assert "already has an active membership" in second.text
    with unit_of_work(engine, write=False) as session:
        (held,) = memberships.client_memberships(session, actor=demo_template.actor, client_id=person)
    end = {"membership_id": str(held.id), "ended_on": "2026-01-01", "reason": "price"}
    early = desk.post(f"{card}/memberships/end", data=end)
    assert early.status_code == 422
    assert "before the membership started" in early.text
    assert desk.post(f"{card}/memberships/end", data=end | {"reason": "bored"}).status_code == 422
    assert desk.post(f"{card}/memberships/end", data=end | {"membership_id": "x"}).status_code == 422
    elsewhere = f"/clients/{uuid.uuid4()}/memberships/end"
    assert desk.post(elsewhere, data=end | {"ended_on": "2026-02-01"}).status_code == 404
    ended = desk.post(f"{card}/memberships/end", data=end | {"ended_on": "2026-03-01"})
    assert ended.status_code == 200
    assert "Membership ended on 2026-03-01." in ended.text
    assert "2026-01-15 to 2026-03-01 (price)" in ended.text
    again = desk.post(f"{card}/memberships/end", data=end | {"ended_on": "2026-04-01"})
    assert again.status_code == 409
    client.post("/logout")
    provider = sign_in(client, Role.PROVIDER)
    assert provider.post(f"{card}/memberships", data=good | {"started_on": "2026-03-01"}).status_code == 403
    with unit_of_work(engine, write=False) as session:
        (kept,) = memberships.client_memberships(session, actor=demo_template.actor, client_id=person)
    assert (kept.started_on, kept.ended_on) == (date(2026, 1, 15), date(2026, 3, 1))
