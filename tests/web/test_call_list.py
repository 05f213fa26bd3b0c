"""The day page lists the day's booked, unconfirmed visits likely to be missed, for the desk to ring;
a provider, who does not ring clients, does not see it."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.clients import service as clients
from medspa.kit import tz
from medspa.kit.db import unit_of_work
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead
from medspa.security.actors import Role
from tests.web.conftest import Demo, booked_visits
from tests.web.test_roles import sign_in


def test_the_day_page_lists_whom_to_call(client: TestClient, engine: Engine, demo_template: Demo) -> None:
    actor = demo_template.actor
    location, visits = booked_visits(engine, demo_template, 2, 14)
    by_day: dict[date, list[AppointmentRead]] = {}
    for visit in visits:
        by_day.setdefault(tz.to_local(visit.starts_at, location.time_zone).date(), []).append(visit)
    risky, safe = next(v for v in by_day.values() if len(v) >= 2)[:2]
    with unit_of_work(engine) as session:
        scheduling.store_no_show_scores(
            session,
            actor=actor,
            probabilities={risky.id: 0.71, safe.id: 0.05},
            model_version="test",
            scored_at=risky.created_at,
        )
        person = clients.get_client(session, actor=actor, client_id=risky.client_id)
        other = clients.get_client(session, actor=actor, client_id=safe.client_id)
    day = tz.to_local(risky.starts_at, location.time_zone).date().isoformat()
    page = f"/locations/{location.id}/day?date={day}"
    desk = sign_in(client, Role.FRONT_DESK).get(page).text
    listed = desk.split('id="call-list"', 1)[1].split("</section>", 1)[0]
    assert f"{person.first_name} {person.last_name}" in listed
    assert "no-show risk 71%" in listed
    assert f"#appt-{risky.id}" in listed
    if person.phone:
        assert person.phone in listed
    assert f"{other.first_name} {other.last_name}" not in listed or other.id == person.id
    block = desk.split(f'<article id="appt-{risky.id}"', 1)[1].split("</article>", 1)[0]
    risk = block.split('<div class="risk"', 1)[1].split("</div>", 1)[0]
    assert "No-show risk 71%" in risk
    assert "test" not in risk  # the model's version is no explanation
    ahead = (risky.starts_at - risky.created_at).days
    assert f"booked {ahead} day" in risk
    assert "earlier visit" in risk or "a first visit" in risk
    client.post("/logout")
    assert 'id="call-list"' not in sign_in(client, Role.PROVIDER).get(page).text


def test_the_risk_in_words() -> None:
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    start = datetime(2027, 1, 10, 15, tzinfo=UTC)

    def words(record: tuple[int, int] | None, days: float) -> str:
        booking = SimpleNamespace(starts_at=start, created_at=start - timedelta(days=days))
        return scheduling.risk_in_words(booking, record)  # type: ignore[arg-type]

    assert words(None, 40) == "a first visit; booked 40 days ahead"
    assert words((3, 2), 1) == "missed 2 of 5 earlier visits; booked 1 day ahead"
    assert words((1, 0), 0.2) == "came to all 1 earlier visit; booked the same day"
    assert words((0, 1), 7) == "missed 1 of 1 earlier visit; booked 7 days ahead"


def test_remind_and_request_deposit_from_the_call_list_once_each(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    from sqlalchemy import select

    from medspa.engagement.models import Message
    from medspa.kit.outbox import OutboxEvent

    actor = demo_template.actor
    location, visits = booked_visits(engine, demo_template, 2, 14)
    risky = sorted(visits, key=lambda v: (v.starts_at, str(v.id)))[0]
    with unit_of_work(engine) as session:
        scheduling.store_no_show_scores(
            session,
            actor=actor,
            probabilities={risky.id: 0.64},
            model_version="test",
            scored_at=risky.created_at,
        )
    day = tz.to_local(risky.starts_at, location.time_zone).date().isoformat()
    page = f"/locations/{location.id}/day?date={day}"
    remind, deposit = (f"/appointments/{risky.id}/call/{step}" for step in ("remind", "deposit"))
    htmx = {"HX-Request": "true", "HX-Target": "day"}

    provider = sign_in(client, Role.PROVIDER)
    assert provider.post(remind, headers=htmx).status_code == 403
    assert provider.post(deposit, headers=htmx).status_code == 403
    client.post("/logout")

    desk = sign_in(client, Role.FRONT_DESK)
    listed = desk.get(page).text.split('id="call-list"', 1)[1].split("</section>", 1)[0]
    assert f'hx-post="{remind}"' in listed
    assert f'hx-post="{deposit}"' in listed
    first = desk.post(remind, headers=htmx)
    assert first.status_code == 200
    assert "Reminder on its way" in first.text
    again = desk.post(remind, headers=htmx)
    assert "was asked for" in again.text
    noted = desk.post(deposit, headers=htmx)
    assert "Deposit to take noted" in noted.text
    desk.post(deposit, headers=htmx)
    listed = desk.get(page).text.split('id="call-list"', 1)[1].split("</section>", 1)[0]
    assert "reminded" in listed
    assert "deposit to take" in listed
    assert f'hx-post="{remind}"' not in listed
    with unit_of_work(engine, write=False) as session:
        sent = session.scalars(
            select(Message.channel)
            .where(Message.appointment_id == risky.id, Message.dedup_key.like("desk-reminder:%"))
            .order_by(Message.channel)
        ).all()
        history = scheduling.appointment_history(session, actor=actor, appointment_id=risky.id)
        events = session.scalars(
            select(OutboxEvent.topic).where(
                OutboxEvent.aggregate_id == risky.id, OutboxEvent.topic == "appointment.deposit_requested"
            )
        ).all()
    assert list(sent) == ["email", "sms"]  # one per channel, however often it was clicked
    assert sum(1 for h in history if (h.reason or "").startswith("deposit requested")) == 1
    assert len(events) == 1
    done = desk.post(f"/appointments/{risky.id}/cancel", data={"reason": "asked"}, headers=htmx)
    assert done.status_code == 200
    refused = desk.post(deposit, headers=htmx)
    assert refused.status_code == 409
    assert "still to come" in refused.text
    assert desk.post(remind, headers=htmx).status_code == 409
