"""A manager corrects a finished visit's outcome (completed <-> no-show), with the reason in its history;
nothing else can be corrected, and no one else may."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from medspa.app import create_app
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import IllegalTransitionError, PermissionDeniedError
from medspa.kit.outbox import OutboxEvent
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import Status
from medspa.security.actors import Actor, Role
from tests.conftest import token_for
from tests.scheduling.test_availability import NOW, build
from tests.scheduling.test_booking import TEN, request


@pytest.fixture(autouse=True)
def frozen_clock() -> object:
    with clock.frozen_at(NOW):
        yield


def test_a_manager_corrects_a_no_show_to_completed_and_back(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        booked = scheduling.book_appointment(session, actor=owner, data=request(clinic))
    manager = Actor(owner.organization_id, "user", uuid.uuid4(), Role.MANAGER, "manager@clinic.example")
    desk = Actor(owner.organization_id, "user", uuid.uuid4(), Role.FRONT_DESK, "desk@clinic.example")
    with (
        unit_of_work(engine) as session,
        pytest.raises(IllegalTransitionError, match="only a completed visit"),
    ):
        scheduling.correct_status(
            session, actor=manager, appointment_id=booked.id, to_status=Status.COMPLETED, reason="x"
        )
    with clock.frozen_at(TEN + timedelta(minutes=20)), unit_of_work(engine) as session:
        scheduling.mark_no_show(session, actor=owner, appointment_id=booked.id)
    with unit_of_work(engine) as session, pytest.raises(PermissionDeniedError):
        scheduling.correct_status(
            session, actor=desk, appointment_id=booked.id, to_status=Status.COMPLETED, reason="came late"
        )
    with unit_of_work(engine) as session:
        corrected = scheduling.correct_status(
            session, actor=manager, appointment_id=booked.id, to_status=Status.COMPLETED, reason="came late"
        )
    assert corrected.status is Status.COMPLETED
    with unit_of_work(engine, write=False) as session:
        history = scheduling.appointment_history(session, actor=owner, appointment_id=booked.id)
        topics = list(
            session.scalars(
                select(OutboxEvent.topic)
                .where(OutboxEvent.aggregate_id == booked.id)
                .order_by(OutboxEvent.id)
            )
        )
    assert (history[-1].from_status, history[-1].to_status) == (Status.NO_SHOW, Status.COMPLETED)
    assert history[-1].reason == "corrected: came late"
    assert history[-1].actor == "user:manager@clinic.example"
    assert topics[-1] == "appointment.corrected"
    with unit_of_work(engine) as session, pytest.raises(IllegalTransitionError):
        scheduling.correct_status(
            session, actor=manager, appointment_id=booked.id, to_status=Status.COMPLETED, reason="again"
        )


def test_the_api_answers_corrections(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        booked = scheduling.book_appointment(session, actor=owner, data=request(clinic))
    with clock.frozen_at(TEN + timedelta(minutes=20)), unit_of_work(engine) as session:
        scheduling.mark_no_show(session, actor=owner, appointment_id=booked.id)
    api = TestClient(create_app(engine))
    manager = {"Authorization": f"Bearer {token_for(engine, owner, Role.MANAGER)}"}
    desk = {"Authorization": f"Bearer {token_for(engine, owner, Role.FRONT_DESK)}"}
    url = f"/api/v1/appointments/{booked.id}/correct"
    assert api.post(url, json={"status": "completed", "reason": "came"}, headers=desk).status_code == 403
    for bad in (
        {"status": "booked", "reason": "x"},
        {"status": "completed", "reason": ""},
        {"status": None},
        {},
    ):
        assert api.post(url, json=bad, headers=manager).status_code == 422, bad
    done = api.post(url, json={"status": "completed", "reason": "came late"}, headers=manager)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    assert api.post(url, json={"status": "completed", "reason": "x"}, headers=manager).status_code == 409
