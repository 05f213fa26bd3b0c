"""The front desk's steps for a booking likely to be missed, through the API: a reminder now (once per
start, however often or concurrently asked) and a deposit to take (a task in the visit's history)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from medspa.clients.schemas import ConsentChange
from medspa.engagement.models import Message
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.scheduling import service as scheduling
from medspa.security.actors import Role
from tests.conftest import token_for
from tests.engagement.conftest import Clinic


def _desk_reminders(clinic: Clinic, appointment_id: Any) -> list[str]:
    with unit_of_work(clinic.engine, write=False) as session:
        return list(
            session.scalars(
                select(Message.channel)
                .where(Message.appointment_id == appointment_id, Message.dedup_key.like("desk-reminder:%"))
                .order_by(Message.channel)
            )
        )


def test_a_reminder_and_a_deposit_task_once_per_start(clinic: Clinic, api: TestClient) -> None:
    person = clinic.client(phone="+1 555 010 4400", consent=ConsentChange(sms=True))
    visit = clinic.book(person.id, clinic.local_day_start(2) + timedelta(hours=10))
    desk = {"Authorization": f"Bearer {token_for(clinic.engine, clinic.owner, Role.FRONT_DESK)}"}
    provider = {"Authorization": f"Bearer {token_for(clinic.engine, clinic.owner, Role.PROVIDER)}"}
    remind, deposit = (f"/api/v1/appointments/{visit.id}/{p}" for p in ("reminders", "deposit-requests"))

    assert api.post(remind, headers=provider).status_code == 403
    assert api.post(deposit, headers=provider).status_code == 403
    assert api.post(remind, headers=desk).json() == {"asked": True}
    assert api.post(remind, headers=desk).json() == {"asked": False}
    assert _desk_reminders(clinic, visit.id) == ["email", "sms"]
    assert api.post(deposit, headers=desk).status_code == 200
    assert api.post(deposit, headers=desk).status_code == 200
    with unit_of_work(clinic.engine, write=False) as session:
        history = scheduling.appointment_history(session, actor=clinic.owner, appointment_id=visit.id)
    assert sum(1 for h in history if (h.reason or "").startswith("deposit requested")) == 1
    sent = clinic.run()
    assert sent.sent >= 2

    moved = api.post(
        f"/api/v1/appointments/{visit.id}/reschedule",
        json={"starts_at": (visit.starts_at + timedelta(hours=2)).isoformat()},
    )
    assert moved.status_code == 200, moved.text
    assert api.post(remind, headers=desk).json() == {"asked": True}  # a new start: a new reminder
    assert api.post(f"/api/v1/appointments/{visit.id}/cancel", json={"reason": "asked"}).status_code == 200
    assert api.post(remind, headers=desk).status_code == 409
    assert api.post(deposit, headers=desk).status_code == 409
    assert api.post("/api/v1/appointments/not-an-id/reminders", headers=desk).status_code == 422
    assert api.post("/api/v1/appointments/00000000-0000-0000-0000-000000000000/reminders").status_code == 404


def test_concurrent_reminders_plan_one_message_per_channel(clinic: Clinic, test_clock: Any) -> None:
    person = clinic.client(phone="+1 555 010 4401", consent=ConsentChange(sms=True))
    visit = clinic.book(person.id, clinic.local_day_start(2) + timedelta(hours=11))
    barrier = threading.Barrier(4)
    answers: list[object] = []

    def remind() -> None:
        from medspa.engagement import service as engagement

        with clock.using(test_clock):
            barrier.wait()
            try:
                with unit_of_work(clinic.engine) as session:
                    answers.append(
                        engagement.remind_now(session, actor=clinic.owner, appointment_id=visit.id)
                    )
            except Exception as error:  # a conflict on the message's key is a lost race, not a bug
                answers.append(type(error).__name__)

    threads = [threading.Thread(target=remind) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert True in answers
    assert _desk_reminders(clinic, visit.id) == ["email", "sms"]
