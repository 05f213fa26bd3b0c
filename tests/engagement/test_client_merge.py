"""Merging a second record of a client into the one kept: everything it held moves (appointments with a
line in their history, waitlist entries, messages), the kept record fills its gaps, the stricter contact
permission holds, and the second record stays, inactive, pointing at the kept one. Refusals write
nothing; two managers merging the same pair at once end with one merge."""

from __future__ import annotations

import threading
import uuid
from datetime import date, time, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from medspa.clients import service as clients
from medspa.clients.merge import merge_clients
from medspa.clients.schemas import ClientCreate, ConsentChange
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import ConflictError
from medspa.kit.outbox import OutboxEvent
from medspa.retention.models import ClientRetentionScore
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import WaitlistCreate
from medspa.security.actors import Role
from tests.conftest import token_for
from tests.engagement.conftest import Clinic
from tests.factories import store_retention_score


def _two_records(clinic: Clinic) -> tuple[uuid.UUID, uuid.UUID]:
    """Nova Campbell twice: the first with an e-mail, SMS allowed on a phone; the second with the same
    phone, her birth date, a note and a preference, and SMS refused there."""
    with unit_of_work(clinic.engine) as session:
        kept = clients.create_client(
            session,
            actor=clinic.owner,
            data=ClientCreate(
                first_name="Nova",
                last_name="Campbell",
                email="nova.campbell@example.org",
                phone="(555) 318-6272",
                notes="prefers mornings",
                preferences={"music": "none"},
                consent=ConsentChange(sms=True),
            ),
        )
        second = clients.create_client(
            session,
            actor=clinic.owner,
            data=ClientCreate(
                first_name="Nova",
                last_name="Campbell",
                phone="555-318-6272",
                date_of_birth=date(1990, 4, 2),
                notes="sensitive skin",
                preferences={"music": "jazz", "drink": "tea"},
                consent=ConsentChange(sms=False),
            ),
        )
    return kept.id, second.id


def _manager(api: TestClient, clinic: Clinic, role: Role = Role.MANAGER) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(clinic.engine, clinic.owner, role)}"}


def test_a_manager_merges_a_second_record_and_its_history_moves(clinic: Clinic, api: TestClient) -> None:
    kept_id, second_id = _two_records(clinic)
    start = clinic.local_day_start(2)
    first = clinic.book(kept_id, start + timedelta(hours=10))
    other = clinic.book(second_id, start + timedelta(hours=13))
    later = clinic.local_day_start(3)
    with unit_of_work(clinic.engine) as session:
        entry = scheduling.add_to_waitlist(
            session,
            actor=clinic.owner,
            data=WaitlistCreate(
                client_id=second_id,
                service_id=clinic.service_id,
                location_id=clinic.location_id,
                service_date=(later + timedelta(hours=12)).date(),
                window_starts_at=time(9),
                window_ends_at=time(17),
            ),
        )
        store_retention_score(
            session, organization_id=clinic.owner.organization_id, client_id=second_id, lapse_risk=0.4
        )
    clinic.run()
    messages_of_second = [m.id for m in clinic.messages(client_id=second_id)]

    answer = api.post(
        f"/api/v1/clients/{kept_id}/merge",
        json={"duplicate_id": str(second_id)},
        headers=_manager(api, clinic),
    )

    assert answer.status_code == 200, answer.text
    merged = answer.json()
    assert merged["date_of_birth"] == "1990-04-02"  # the gap filled from the second record
    assert merged["email"] == "nova.campbell@example.org"  # its own kept
    assert merged["notes"] == "prefers mornings\nsensitive skin"
    assert merged["preferences"] == {"music": "none", "drink": "tea"}  # its own value wins
    assert merged["consent"]["sms"] is False  # the STOP given on the second record holds
    assert merged["consent"]["email"] is True
    with unit_of_work(clinic.engine, write=False) as session:
        moved = scheduling.get_appointment(session, actor=clinic.owner, appointment_id=other.id)
        assert moved.client_id == kept_id
        history = scheduling.appointment_history(session, actor=clinic.owner, appointment_id=other.id)
        assert f"client record {second_id} merged into {kept_id}" in [h.reason for h in history]
        untouched = scheduling.appointment_history(session, actor=clinic.owner, appointment_id=first.id)
        assert all("merged" not in (h.reason or "") for h in untouched)
        waiting = scheduling.get_waitlist_entry(session, actor=clinic.owner, entry_id=entry.id)
        assert waiting.client_id == kept_id
        score = session.scalar(
            select(ClientRetentionScore).where(ClientRetentionScore.client_id == second_id)
        )
        assert score is None
        event = session.scalars(
            select(OutboxEvent)
            .where(
                OutboxEvent.organization_id == clinic.owner.organization_id,
                OutboxEvent.topic == "client.merged",
            )
            .order_by(OutboxEvent.id)
        ).one()
        assert event.payload["merged_id"] == str(second_id)
        assert event.payload["appointments"] == 1
        assert event.payload["waitlist_entries"] == 1
        assert "sensitive" not in str(event.payload)  # no PHI in the event
    assert messages_of_second
    assert {m.id for m in clinic.messages(client_id=kept_id)} >= set(messages_of_second)
    assert clinic.messages(client_id=second_id) == []

    gone = api.get(f"/api/v1/clients/{second_id}").json()
    assert gone["is_active"] is False
    assert gone["merged_into_id"] == str(kept_id)
    assert gone["notes"] == "sensitive skin"  # the second record's own fields stay as its history
    found = api.get("/api/v1/clients", params={"q": "Campbell"}).json()["items"]
    assert [c["id"] for c in found] == [str(kept_id)]
    duplicates = api.post(
        "/api/v1/clients/duplicates", json={"first_name": "N", "last_name": "C", "phone": "5553186272"}
    ).json()
    assert [c["id"] for c in duplicates] == [str(kept_id)]

    again = api.post(
        f"/api/v1/clients/{kept_id}/merge",
        json={"duplicate_id": str(second_id)},
        headers=_manager(api, clinic),
    )
    assert again.status_code == 409
    assert "merged into another already" in again.json()["detail"]


def _state(clinic: Clinic, *ids: uuid.UUID) -> list[Any]:
    with unit_of_work(clinic.engine, write=False) as session:
        records = [clients.get_client(session, actor=clinic.owner, client_id=i).model_dump() for i in ids]
        visits = scheduling.list_appointments(session, actor=clinic.owner, limit=500).items
    return [records, sorted((str(v.id), str(v.client_id)) for v in visits)]


def test_refusals_write_nothing(clinic: Clinic, api: TestClient) -> None:
    kept_id, second_id = _two_records(clinic)
    clinic.book(second_id, clinic.local_day_start(2) + timedelta(hours=10))
    with unit_of_work(clinic.engine) as session:
        another = clients.create_client(
            session,
            actor=clinic.owner,
            data=ClientCreate(first_name="Nova", last_name="Campbell", date_of_birth=date(1985, 1, 1)),
        )
    before = _state(clinic, kept_id, second_id, another.id)
    manager = _manager(api, clinic)

    def merge(keep: Any, duplicate: Any, headers: dict[str, str] = manager) -> Any:
        return api.post(f"/api/v1/clients/{keep}/merge", json={"duplicate_id": duplicate}, headers=headers)

    assert merge(kept_id, str(kept_id)).status_code == 422
    born_apart = merge(another.id, str(second_id))
    assert born_apart.status_code == 409
    assert "different birth dates" in born_apart.json()["detail"]
    assert merge(kept_id, str(second_id), _manager(api, clinic, Role.FRONT_DESK)).status_code == 403
    assert merge(kept_id, str(second_id), _manager(api, clinic, Role.PROVIDER)).status_code == 403
    assert merge(kept_id, str(uuid.uuid4())).status_code == 404
    for body in (None, "", "not-a-uuid", 7, [str(second_id)], "\x00"):
        assert merge(kept_id, body).status_code == 422
    assert api.post(f"/api/v1/clients/{kept_id}/merge", json={}, headers=manager).status_code == 422
    api.post(f"/api/v1/clients/{second_id}/erasure-requests", json={"reason": "asked"})
    waiting = merge(kept_id, str(second_id))
    assert waiting.status_code == 409
    assert "erasure request" in waiting.json()["detail"]
    api.delete(f"/api/v1/clients/{another.id}")
    assert merge(another.id, str(kept_id)).status_code == 409  # a deactivated record is not the one to keep
    after = _state(clinic, kept_id, second_id, another.id)
    before[0][2]["is_active"] = False  # the deactivation above, nothing else
    for record in (*before[0], *after[0]):
        record.pop("updated_at")
    assert after == before


@pytest.mark.parametrize("attempt", range(3))
def test_two_managers_merging_one_pair_both_ways_at_once_end_with_one_merge(
    clinic: Clinic, test_clock: Any, attempt: int
) -> None:
    kept_id, second_id = _two_records(clinic)
    clinic.book(second_id, clinic.local_day_start(2) + timedelta(hours=10))
    clinic.book(kept_id, clinic.local_day_start(2) + timedelta(hours=13))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def merge(keep: uuid.UUID, duplicate: uuid.UUID) -> None:
        with clock.using(test_clock):
            barrier.wait()
            try:
                with unit_of_work(clinic.engine) as session:
                    merge_clients(session, actor=clinic.owner, keep_id=keep, duplicate_id=duplicate)
                outcomes.append("merged")
            except ConflictError:
                outcomes.append("refused")

    threads = [
        threading.Thread(target=merge, args=pair) for pair in ((kept_id, second_id), (second_id, kept_id))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["merged", "refused"]
    with unit_of_work(clinic.engine, write=False) as session:
        records = [clients.get_client(session, actor=clinic.owner, client_id=i) for i in (kept_id, second_id)]
        visits = scheduling.list_appointments(session, actor=clinic.owner, limit=500).items
    survivor = next(r for r in records if r.merged_into_id is None)
    merged = next(r for r in records if r.merged_into_id is not None)
    assert merged.merged_into_id == survivor.id
    assert survivor.is_active
    assert not merged.is_active
    assert {v.client_id for v in visits} == {survivor.id}


def test_memberships_move_with_the_record_and_two_active_ones_refuse_the_merge(clinic: Clinic) -> None:
    from medspa.memberships import service as memberships
    from medspa.memberships.schemas import MembershipEnd, MembershipStart

    kept_id, second_id = _two_records(clinic)
    today = clock.now().date()
    plan = MembershipStart(plan="Glow", monthly_price_cents=9900, started_on=today - timedelta(days=90))
    with unit_of_work(clinic.engine) as session:
        old = memberships.start_membership(session, actor=clinic.owner, client_id=second_id, data=plan)
        memberships.start_membership(session, actor=clinic.owner, client_id=kept_id, data=plan)
    with unit_of_work(clinic.engine) as session:
        memberships.end_membership(
            session,
            actor=clinic.owner,
            membership_id=old.id,
            data=MembershipEnd(ended_on=today - timedelta(days=10), reason="price"),
        )
    with unit_of_work(clinic.engine) as session:
        merge_clients(session, actor=clinic.owner, keep_id=kept_id, duplicate_id=second_id)
    with unit_of_work(clinic.engine, write=False) as session:
        held = memberships.client_memberships(session, actor=clinic.owner, client_id=kept_id)
    assert sorted(str(m.id) for m in held if m.ended_on is not None) == [str(old.id)]
    assert len(held) == 2

    other_kept, other_second = _two_records(clinic)
    with unit_of_work(clinic.engine) as session:
        for client_id in (other_kept, other_second):
            memberships.start_membership(session, actor=clinic.owner, client_id=client_id, data=plan)
    with (
        pytest.raises(ConflictError, match="both records have an active membership"),
        unit_of_work(clinic.engine) as session,
    ):
        merge_clients(session, actor=clinic.owner, keep_id=other_kept, duplicate_id=other_second)
