"""Follow-up cadences and lapse outreach: marketing messages, so only to clients who allow marketing,
dropped once the client has booked, through the agent gate (tier 2: a volume above the organization's
daily limit waits for a person)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from medspa.clients.schemas import ConsentChange
from medspa.engagement import service as engagement
from medspa.kit.db import unit_of_work
from medspa.scheduling import service as scheduling
from medspa.security import gate
from medspa.security.schemas import AgentPolicyUpdate
from tests.engagement.conftest import Clinic, Mailbox
from tests.factories import make_service, store_retention_score

VISIT_DAY = datetime(2027, 1, 12, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York
MARKETING = ConsentChange(marketing=True)


def visit(
    clinic: Clinic, client_id: uuid.UUID, starts_at: datetime, service_id: uuid.UUID | None = None
) -> None:
    """A visit that happened: booked an hour before, completed."""
    clinic.at(starts_at - timedelta(hours=1))
    appointment = clinic.book(client_id, starts_at, **({"service_id": service_id} if service_id else {}))
    clinic.at(starts_at)
    with unit_of_work(clinic.engine) as session:
        for step in (scheduling.check_in, scheduling.start_service, scheduling.complete_appointment):
            step(session, actor=clinic.owner, appointment_id=appointment.id)


def test_a_follow_up_asks_to_book_again_at_the_services_cadence(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    with unit_of_work(clinic.engine) as session:
        toxin = make_service(session, actor=clinic.owner, duration=30, follow_up_days=90).id
    returning = clinic.client(email="returning@example.org", consent=MARKETING)
    rebooked = clinic.client(email="rebooked@example.org", consent=MARKETING)
    private = clinic.client(email="private@example.org")  # e-mail allowed, marketing not (and no phone)
    visit(clinic, returning.id, VISIT_DAY, toxin)
    visit(clinic, rebooked.id, VISIT_DAY + timedelta(hours=1), toxin)
    visit(clinic, private.id, VISIT_DAY + timedelta(hours=2), toxin)
    clinic.run()
    clinic.at(VISIT_DAY + timedelta(days=60))
    clinic.book(rebooked.id, VISIT_DAY + timedelta(days=61), service_id=toxin)
    clinic.run()
    clinic.at(VISIT_DAY + timedelta(days=89, hours=23))
    clinic.run()
    assert not any("next" in m["Subject"] for m in box.to("returning@example.org"))
    clinic.at(VISIT_DAY + timedelta(days=90, hours=3))
    clinic.run()

    follow_ups = {
        m.client_id: (m.state, m.outcome)
        for m in clinic.messages()
        if m.kind == "follow_up" and m.channel == "email"
    }
    assert [m["Subject"] for m in box.to("returning@example.org")][-1].startswith(
        "Time for your next Service"
    )
    assert follow_ups[rebooked.id] == ("obsolete", "the client has booked since")
    assert follow_ups[private.id] == ("suppressed", "the client does not allow marketing messages")
    assert follow_ups[returning.id][0] == "sent"


def score(clinic: Clinic, client_id: uuid.UUID, lapse_risk: float) -> None:
    with unit_of_work(clinic.engine) as session:
        store_retention_score(
            session,
            organization_id=clinic.owner.organization_id,
            client_id=client_id,
            lapse_risk=lapse_risk,
            last_visit_on=date(2027, 1, 12),
        )


def test_lapse_outreach_reaches_drifting_clients_once_a_month_within_the_gates_volume(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    drifting = [clinic.client(email=f"drift{n}@example.org", consent=MARKETING) for n in range(3)]
    loyal = clinic.client(email="loyal@example.org", consent=MARKETING)
    for n, client in enumerate([*drifting, loyal]):
        visit(clinic, client.id, VISIT_DAY + timedelta(hours=n))
    clinic.run()
    clinic.at(VISIT_DAY + timedelta(days=75))
    for client in drifting:
        score(clinic, client.id, 0.85)
    score(clinic, loyal.id, 0.2)
    with unit_of_work(clinic.engine) as session:
        gate.set_policy(
            session,
            actor=clinic.owner,
            action="engagement.lapse_outreach",
            data=AgentPolicyUpdate(tier=2, daily_limit=2),
        )

    first = engagement.reach_out(clinic.engine, [clinic.owner.organization_id])
    again = engagement.reach_out(clinic.engine, [clinic.owner.organization_id])
    clinic.run()

    assert first == {clinic.owner.organization_id: 3}
    assert again == {clinic.owner.organization_id: 0}
    reached = [c for c in drifting if any("We miss you" in m["Subject"] for m in box.to(c.email or ""))]
    assert len(reached) == 2  # the third waits for a person: over the day's volume
    assert not any("We miss you" in m["Subject"] for m in box.to("loyal@example.org"))
    with unit_of_work(clinic.engine, write=False) as session:
        queued = gate.list_actions(session, actor=clinic.owner, state="queued").items
    assert [a.action for a in queued] == ["engagement.lapse_outreach"]


def test_a_risky_booking_is_asked_to_confirm_and_put_on_the_call_list(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    morning = datetime(2027, 1, 12, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York
    clinic.at(morning)
    risky = clinic.client(email="risky@example.org")
    steady = clinic.client(email="steady@example.org")
    sure = clinic.client(email="sure@example.org")
    wednesday = datetime(2027, 1, 13, 15, 0, tzinfo=UTC)
    bookings = {
        c.id: clinic.book(c.id, wednesday + timedelta(hours=n)) for n, c in enumerate((risky, steady, sure))
    }
    with unit_of_work(clinic.engine) as session:
        scheduling.confirm_appointment(session, actor=clinic.owner, appointment_id=bookings[sure.id].id)
        scheduling.store_no_show_scores(
            session,
            actor=clinic.owner,
            probabilities={
                bookings[risky.id].id: 0.45,
                bookings[steady.id].id: 0.05,
                bookings[sure.id].id: 0.6,
            },
            model_version="test",
            scored_at=morning,
        )
    clinic.run()

    asked = engagement.ask_everywhere(clinic.engine, [clinic.owner.organization_id])
    engagement.ask_everywhere(clinic.engine, [clinic.owner.organization_id])  # asked once only
    clinic.run()
    with unit_of_work(clinic.engine, write=False) as session:
        calls = engagement.call_list(session, actor=clinic.owner, location_id=clinic.location_id)

    assert asked == 1
    assert [m["Subject"].split(":")[0] for m in box.to("risky@example.org")] == ["Booked", "Please confirm"]
    assert [m["Subject"].split(":")[0] for m in box.to("steady@example.org")] == ["Booked"]
    assert [(c.client_id, c.no_show_probability) for c in calls] == [(risky.id, 0.45)]
    assert calls[0].local_start == "Wed, Jan 13, 2027 at 10:00 AM"
