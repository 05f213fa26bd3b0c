"""The approvals page: a manager approves or rejects queued automated actions and erases a client on
another person's request; other roles are not offered it and are refused."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.clients import service as clients
from medspa.clients.schemas import ErasureRequest
from medspa.kit.db import unit_of_work
from medspa.security import gate
from medspa.security.actors import Actor
from medspa.security.permissions import Role
from tests.security.test_gate import EFFECT, effects  # registers the test kinds
from tests.web.conftest import Demo
from tests.web.test_roles import sign_in


def _queue(engine: Engine, demo: Demo) -> uuid.UUID:
    agent = Actor(demo.organization_id, "agent", None, Role.OWNER, "reminders")
    subject = uuid.uuid4()
    with unit_of_work(engine) as session:
        queued = gate.submit(
            session,
            agent=agent,
            action="test.human",
            trigger="outbox:7 appointment.cancelled",
            summary="offer the 10:00 slot to a waitlisted client",
            payload={"subject": str(subject), "kind": "t"},
            subject_id=subject,
        )
    return queued.id


def test_a_manager_approves_and_rejects_queued_actions_from_the_page(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    approved, rejected = _queue(engine, demo_template), _queue(engine, demo_template)
    sign_in(client, Role.MANAGER)
    page = client.get("/approvals")
    assert page.status_code == 200
    assert page.text.count("<td>offer the 10:00 slot to a waitlisted client") == 2
    done = client.post(f"/approvals/actions/{approved}/approve")
    assert done.status_code == 200
    assert "Approved and carried out" in done.text
    assert client.post(f"/approvals/actions/{rejected}/reject").status_code == 200
    again = client.post(f"/approvals/actions/{approved}/reject")
    assert again.status_code == 409
    assert "Nothing was done" in again.text
    assert "Nothing is waiting" in client.get("/approvals").text
    actor = Actor(demo_template.organization_id, "system", None, Role.OWNER, "t")
    assert effects(engine, actor) == 1
    assert client.post(f"/approvals/actions/{uuid.uuid4()}/approve").status_code == 404
    assert client.post(f"/approvals/actions/{approved}/delete").status_code == 422
    assert EFFECT


def test_a_manager_erases_a_client_the_front_desk_asked_about(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    with unit_of_work(engine, write=False) as session:
        someone = clients.list_clients(session, actor=demo_template.actor, limit=1).items[0]
    desk = Actor(
        demo_template.organization_id, "user", uuid.uuid4(), Role.FRONT_DESK, "frontdesk@lumen.example"
    )
    with unit_of_work(engine) as session:
        erasure = clients.request_erasure(
            session, actor=desk, client_id=someone.id, data=ErasureRequest(reason="asked by phone")
        ).id
    sign_in(client, Role.MANAGER)
    page = client.get("/approvals").text
    assert f"{someone.first_name} {someone.last_name}" in page
    assert "asked by phone" in page
    erased = client.post(f"/approvals/erasures/{erasure}/approve")
    assert erased.status_code == 200
    assert "The client was erased." in erased.text
    with unit_of_work(engine, write=False) as session:
        assert (
            clients.get_client(session, actor=demo_template.actor, client_id=someone.id).erased_at is not None
        )


def test_other_roles_are_not_offered_the_approvals_and_are_refused(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    action = _queue(engine, demo_template)
    sign_in(client, Role.FRONT_DESK)
    assert 'href="/approvals"' not in client.get("/").text
    assert client.get("/approvals").status_code == 403
    assert client.post(f"/approvals/actions/{action}/approve").status_code == 403


def test_the_manager_sees_emergency_access_on_the_alert_list_and_ends_it(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    from medspa.resources import service as resources
    from medspa.resources.schemas import LocationCreate
    from medspa.security import emergency
    from medspa.security.schemas import EmergencyAccessOpen

    with unit_of_work(engine) as session:
        annex = resources.create_location(
            session,
            actor=demo_template.actor,
            data=LocationCreate(name="Annex", time_zone="America/New_York"),
        )
    from sqlalchemy import select

    from medspa.security.models import User

    with unit_of_work(engine, write=False) as session:
        desk_id = session.scalar(select(User.id).where(User.email == "frontdesk@lumen.example"))
    desk = Actor(
        demo_template.organization_id,
        "user",
        desk_id,
        Role.FRONT_DESK,
        "frontdesk@lumen.example",
        location_ids=frozenset({demo_template.location_id}),
    )
    reason = "a client at the annex fainted; checking her allergies"
    with unit_of_work(engine) as session:
        grant = emergency.open_access(
            session,
            actor=desk,
            data=EmergencyAccessOpen(location_id=annex.id, reason=reason),
            location_exists=True,
        )
    sign_in(client, Role.MANAGER)
    page = client.get("/approvals").text
    assert reason in page
    assert "Annex" in page
    ended = client.post(f"/approvals/emergency/{grant.id}/close")
    assert ended.status_code == 200
    assert "The emergency access was ended." in ended.text
    assert "ended by user:manager@lumen.example" in ended.text
