"""A course of sessions (a laser series): after each visit but the last, a request to book the next
session ("n of N") at the series' interval; after the last, the service's cadence naming its window; a
visit after a long gap starts a new course."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceUpdate
from medspa.clients.schemas import ConsentChange
from medspa.kit.db import unit_of_work
from medspa.scheduling import service as scheduling
from tests.engagement.conftest import Clinic, Mailbox
from tests.factories import make_service

FIRST = datetime(2027, 1, 12, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York (EST until March 14)
INTERVAL = timedelta(days=28)
CADENCE = timedelta(days=180)


def series_service(clinic: Clinic, **cadence: int) -> uuid.UUID:
    """A 30-minute service named Laser with the follow-up fields given."""
    with unit_of_work(clinic.engine) as session:
        laser = make_service(session, actor=clinic.owner, duration=30).id
        data = ServiceUpdate.model_validate({"name": "Laser", **cadence})
        catalog.update_service(session, actor=clinic.owner, service_id=laser, data=data)
    return laser


def completed_visit(
    clinic: Clinic, client_id: uuid.UUID, starts_at: datetime, service_id: uuid.UUID
) -> uuid.UUID:
    """A visit that happened (booked an hour before, completed when it started), planned."""
    clinic.at(starts_at - timedelta(hours=1))
    appointment = clinic.book(client_id, starts_at, service_id=service_id)
    clinic.at(starts_at)
    with unit_of_work(clinic.engine) as session:
        for step in (scheduling.check_in, scheduling.start_service, scheduling.complete_appointment):
            step(session, actor=clinic.owner, appointment_id=appointment.id)
    clinic.run()
    return appointment.id


def follow_up_due(clinic: Clinic, appointment_id: uuid.UUID) -> datetime:
    (message,) = [
        m
        for m in clinic.messages()
        if m.kind == "follow_up" and m.channel == "email" and m.appointment_id == appointment_id
    ]
    return message.due_at.astimezone(UTC)


def test_a_series_asks_for_each_next_session_then_follows_the_cadence(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    # given a laser service given as 3 sessions 28 days apart, then every 6 to 12 months
    box, _ = mailbox
    laser = series_service(
        clinic, follow_up_days=180, follow_up_days_max=365, series_sessions=3, series_interval_days=28
    )
    client = clinic.client(email="series@example.org", consent=ConsentChange(marketing=True))
    subjects: list[str] = []

    def sent_at(due: datetime) -> None:
        clinic.at(due + timedelta(hours=1))
        clinic.run()
        subjects.extend(str(m["Subject"]) for m in box.to("series@example.org")[len(subjects) :])

    # when the client comes to each session a day after being asked
    first = completed_visit(clinic, client.id, FIRST, laser)
    assert follow_up_due(clinic, first) == FIRST + INTERVAL
    sent_at(FIRST + INTERVAL)
    second_at = FIRST + INTERVAL + timedelta(days=1)
    second = completed_visit(clinic, client.id, second_at, laser)
    assert follow_up_due(clinic, second) == second_at + INTERVAL
    sent_at(second_at + INTERVAL)
    last_at = second_at + INTERVAL + timedelta(days=1)
    last = completed_visit(clinic, client.id, last_at, laser)
    # then after the last session the cadence, at the start of its window
    assert follow_up_due(clinic, last) == last_at + CADENCE
    clinic.at(last_at + CADENCE - timedelta(days=1))
    clinic.run()
    assert len(box.to("series@example.org")) == len(subjects)
    sent_at(last_at + CADENCE)
    assert subjects == [
        "Book your next Laser session (2 of 3)",
        "Book your next Laser session (3 of 3)",
        "Time for your next Laser?",
    ]
    assert "we suggest one between 6 and 12 months after the last" in Mailbox.text(
        box.to("series@example.org")[-1]
    )

    # and a visit after more than three intervals away starts a new course: session 2 is asked for
    again_at = last_at + CADENCE + timedelta(days=1)
    again = completed_visit(clinic, client.id, again_at, laser)
    assert follow_up_due(clinic, again) == again_at + INTERVAL


def test_a_visit_of_another_service_does_not_count_as_a_session(clinic: Clinic) -> None:
    laser = series_service(clinic, follow_up_days=90, series_sessions=2, series_interval_days=28)
    client = clinic.client(email="other@example.org", consent=ConsentChange(marketing=True))
    completed_visit(clinic, client.id, FIRST, clinic.service_id)
    first = completed_visit(clinic, client.id, FIRST + timedelta(days=7), laser)
    assert follow_up_due(clinic, first) == FIRST + timedelta(days=7) + INTERVAL
    second = completed_visit(clinic, client.id, FIRST + timedelta(days=14), laser)
    assert follow_up_due(clinic, second) == FIRST + timedelta(days=14 + 90)
