"""Right to delete (ADR 17): a manager approves, the client's key is destroyed, a tombstone stays, and
a backup taken before cannot bring the client back through `medspa restore`."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from medspa.cli import app
from medspa.clients import ledger
from medspa.clients import service as clients
from medspa.clients.models import Client, ClientSearchTerm
from medspa.clients.schemas import ClientCreate, ClientUpdate, ErasureRequest
from medspa.kit.audit_trail import AuditEvent
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.errors import ConflictError, PermissionDeniedError
from medspa.kit.migrate import upgrade
from medspa.security import audit, keys
from medspa.security import service as security
from medspa.security.actors import Actor, Role, system_actor
from tests.conftest import BACKENDS, database_of_its_own, token_for

runner = CliRunner()


@pytest.fixture(autouse=True)
def erasure_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "erasures.jsonl"
    monkeypatch.setenv("MEDSPA_ERASURE_LEDGER", str(path))
    return path


def staff(owner: Actor, role: Role, name: str) -> Actor:
    return Actor(owner.organization_id, "user", uuid.uuid4(), role, name)


def register(engine: Engine, actor: Actor, first: str, email: str) -> uuid.UUID:
    data = ClientCreate(first_name=first, last_name="Castellanos", email=email, phone="555-318-6272",
                        notes="allergic to lidocaine", preferences={"reminders": "sms"})  # fmt: skip
    with unit_of_work(engine) as session:
        return clients.create_client(session, actor=actor, data=data).id


def ask(engine: Engine, actor: Actor, client_id: uuid.UUID) -> uuid.UUID:
    with unit_of_work(engine) as session:
        request = ErasureRequest(reason="the client asked in writing")
        return clients.request_erasure(session, actor=actor, client_id=client_id, data=request).id


def decide(engine: Engine, actor: Actor, erasure_id: uuid.UUID, *, approve: bool = True) -> str:
    with unit_of_work(engine) as session:
        return clients.decide_erasure(session, actor=actor, erasure_id=erasure_id, approve=approve).state


def test_an_approved_erasure_leaves_a_tombstone_and_nothing_to_read_or_find(
    engine: Engine, owner: Actor, erasure_ledger: Path
) -> None:
    front_desk, manager = staff(owner, Role.FRONT_DESK, "fd"), staff(owner, Role.MANAGER, "m")
    erased = register(engine, owner, "Wilhelmina", "wilhelmina@example.com")
    kept = register(engine, owner, "Josefina", "josefina@example.com")
    erasure = ask(engine, front_desk, erased)
    with unit_of_work(engine, write=False) as session:  # asking changes nothing yet
        assert clients.get_client(session, actor=owner, client_id=erased).first_name == "Wilhelmina"
    with pytest.raises(PermissionDeniedError):
        decide(engine, front_desk, erasure)
    assert decide(engine, manager, erasure) == "erased"

    with unit_of_work(engine, write=False) as session:
        tombstone = clients.get_client(session, actor=owner, client_id=erased)
        assert tombstone.erased_at is not None
        assert (tombstone.first_name, tombstone.email, tombstone.notes, tombstone.preferences) == (
            "",
            None,
            "",
            {},
        )
        assert not tombstone.is_active
        assert clients.client_names(session, actor=owner, client_ids={erased}) == {erased: "(erased client)"}
        assert clients.search_clients(session, actor=owner, query="Wilhelmina").items == []
        assert clients.list_clients(session, actor=owner, email="wilhelmina@example.com").items == []
        row = session.get(Client, erased)
        assert row is not None
        assert row.phi_key == b""
        assert (row.email_sealed, row.phone_sealed, row.notes_sealed, row.email_key, row.phone_key) == (
            None, None, "", None, None,
        )  # fmt: skip
        assert (
            session.scalars(select(ClientSearchTerm).where(ClientSearchTerm.client_id == erased)).all() == []
        )
        # The other client with the same last name and phone is untouched.
        other = clients.get_client(session, actor=owner, client_id=kept)
        assert (other.first_name, other.notes) == ("Josefina", "allergic to lidocaine")
        assert [c.id for c in clients.search_clients(session, actor=owner, query="Castellanos").items] == [
            kept
        ]
    [entry] = ledger.entries()
    assert (entry.client_id, entry.erasure_id, entry.organization_id) == (
        erased,
        erasure,
        owner.organization_id,
    )
    with unit_of_work(engine, write=False) as session:  # the audit trail still verifies, and says who erased
        assert audit.verify(session, organization_ids=[owner.organization_id]).problems == []
        assert session.scalar(
            select(AuditEvent.id).where(
                AuditEvent.organization_id == owner.organization_id,
                AuditEvent.action == "write",
                AuditEvent.detail == "client.erased",
                AuditEvent.actor == manager.label,
            )
        )
    assert "Wilhelmina" not in erasure_ledger.read_text()
    # An erased client is not changed, erased or asked about again.
    with unit_of_work(engine) as session, pytest.raises(ConflictError, match="erased"):
        clients.update_client(session, actor=owner, client_id=erased, data=ClientUpdate(first_name="Back"))
    with pytest.raises(ConflictError):
        decide(engine, staff(owner, Role.OWNER, "o"), erasure)
    with pytest.raises(ConflictError):
        ask(engine, front_desk, erased)


def test_whoever_asked_cannot_approve_and_a_refusal_erases_nothing(engine: Engine, owner: Actor) -> None:
    manager, other_manager = staff(owner, Role.MANAGER, "m1"), staff(owner, Role.MANAGER, "m2")
    client = register(engine, owner, "Wilhelmina", "w2@example.com")
    erasure = ask(engine, manager, client)
    with pytest.raises(PermissionDeniedError, match="another manager"):
        decide(engine, manager, erasure)
    with pytest.raises(ConflictError, match="waiting"):
        ask(engine, other_manager, client)
    assert decide(engine, other_manager, erasure, approve=False) == "refused"
    with unit_of_work(engine, write=False) as session:
        assert clients.get_client(session, actor=owner, client_id=client).first_name == "Wilhelmina"
    assert ledger.entries() == []


def test_the_erasure_api_as_front_desk_and_manager(engine: Engine, owner: Actor, api: TestClient) -> None:
    client = register(engine, owner, "Wilhelmina", "w3@example.com")
    front_desk = {"Authorization": f"Bearer {token_for(engine, owner, Role.FRONT_DESK)}"}
    manager = {"Authorization": f"Bearer {token_for(engine, owner, Role.MANAGER)}"}
    asked = api.post(f"/api/v1/clients/{client}/erasure-requests", json={"reason": "asked by e-mail"},
                     headers=front_desk)  # fmt: skip
    assert asked.status_code == 201, asked.text
    erasure = asked.json()["id"]
    for bad in ({}, {"reason": ""}, {"reason": "x\x00y"}, {"reason": "x" * 2001}, {"reason": None}):
        assert api.post(f"/api/v1/clients/{client}/erasure-requests", json=bad).status_code == 422
    assert api.post(f"/api/v1/erasure-requests/{erasure}/approve", headers=front_desk).status_code == 403
    assert api.post(f"/api/v1/erasure-requests/{uuid.uuid4()}/approve", headers=manager).status_code == 404
    waiting = api.get("/api/v1/erasure-requests?state=requested", headers=manager).json()["items"]
    assert [w["id"] for w in waiting] == [erasure]
    assert api.get("/api/v1/erasure-requests?state=gone", headers=manager).status_code == 422
    approved = api.post(f"/api/v1/erasure-requests/{erasure}/approve", headers=manager)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "erased"
    assert api.post(f"/api/v1/erasure-requests/{erasure}/approve", headers=manager).status_code == 409
    tombstone = api.get(f"/api/v1/clients/{client}").json()
    assert tombstone["first_name"] == ""
    assert tombstone["erased_at"] is not None
    assert api.patch(f"/api/v1/clients/{client}", json={"notes": "x"}).status_code == 409


def test_concurrent_approvals_and_changes_erase_once_and_leave_nothing_behind(
    engine: Engine, owner: Actor
) -> None:
    """Two managers approve while the front desk edits the client: one approval wins, the other is
    told it was decided; an edit that lands after the erasure is refused, one before is erased too."""
    client = register(engine, owner, "Wilhelmina", "w4@example.com")
    erasure = ask(engine, staff(owner, Role.FRONT_DESK, "fd"), client)
    outcomes: list[str] = []
    barrier = threading.Barrier(3)

    def approve(name: str) -> None:
        barrier.wait()
        try:
            outcomes.append(decide(engine, staff(owner, Role.MANAGER, name), erasure))
        except ConflictError:
            outcomes.append("conflict")

    def edit() -> None:
        barrier.wait()
        try:
            with unit_of_work(engine) as session:
                clients.update_client(session, actor=owner, client_id=client,
                                      data=ClientUpdate(last_name="Okonkwo-Rivers"))  # fmt: skip
            outcomes.append("edited")
        except ConflictError:
            outcomes.append("edit refused")

    threads = [threading.Thread(target=approve, args=(n,)) for n in ("m1", "m2")] + [
        threading.Thread(target=edit)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o for o in outcomes if o in ("erased", "conflict")) == ["conflict", "erased"]
    with unit_of_work(engine, write=False) as session:
        assert (
            session.scalars(select(ClientSearchTerm).where(ClientSearchTerm.client_id == client)).all() == []
        )
        row = session.get(Client, client)
        assert row is not None
        assert (row.phi_key, row.email_key, row.last_name_sealed) == (b"", None, "")
    assert len(ledger.entries()) == 1


@pytest.fixture(params=BACKENDS)
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own: a restore replaces all of it."""
    with database_of_its_own(request.param, tmp_path) as url:
        yield url


def test_a_backup_from_before_an_erasure_restores_without_the_erased_client(
    own_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, erasure_ledger: Path
) -> None:
    monkeypatch.setenv("MEDSPA_DATABASE_URL", own_database)
    upgrade(own_database)
    engine = make_engine(own_database)
    with unit_of_work(engine) as session:
        org = security.create_organization(session, slug="clinic", name="Clinic")
    owner = system_actor(org.id, "test")
    erased = register(engine, owner, "Wilhelmina", "w@example.com")
    kept = register(engine, owner, "Josefina", "j@example.com")
    backup_file = tmp_path / "before.backup"
    made = runner.invoke(app, ["backup", str(backup_file)])
    assert made.exit_code == 0, made.output
    assert runner.invoke(app, ["backup", str(backup_file)]).exit_code == 1  # never overwritten
    decide(engine, staff(owner, Role.MANAGER, "m"), ask(engine, staff(owner, Role.FRONT_DESK, "f"), erased))
    engine.dispose()

    restored = runner.invoke(app, ["restore", str(backup_file)])
    assert restored.exit_code == 0, restored.output
    assert "1 of 1 erasures" in " ".join(restored.output.split())
    engine = make_engine(own_database)
    with unit_of_work(engine, write=False) as session:
        assert clients.get_client(session, actor=owner, client_id=erased).erased_at is not None
        assert clients.search_clients(session, actor=owner, query="Wilhelmina").items == []
        assert clients.get_client(session, actor=owner, client_id=kept).first_name == "Josefina"
        erasures = clients.list_erasures(session, actor=owner).items
        assert [(e.client_id, e.state) for e in erasures] == [(erased, "erased")]
        row = session.get(Client, erased)
        assert row is not None
        assert row.phi_key == b""
    engine.dispose()
    # Restoring again changes nothing more; a damaged ledger stops a restore before it starts.
    again = runner.invoke(app, ["restore", str(backup_file)])
    assert "1 of 1 erasures" in " ".join(again.output.split())
    with erasure_ledger.open("a") as handle:
        handle.write(json.dumps({"format": "something else"}) + "\n")
    refused = runner.invoke(app, ["restore", str(backup_file)])
    assert refused.exit_code == 1
    assert "line 2" in " ".join(refused.output.split())
    assert runner.invoke(app, ["restore", str(tmp_path / "missing.backup")]).exit_code == 1


def test_a_restore_without_its_key_file_cannot_read_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key file is not in a backup: restored elsewhere with another key file, nothing opens."""
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    upgrade(url)
    engine = make_engine(url)
    with unit_of_work(engine) as session:
        org = security.create_organization(session, slug="clinic", name="Clinic")
    client = register(engine, system_actor(org.id), "Wilhelmina", "w@example.com")
    other_keys = keys.using_provider(keys.LocalKeyFile(tmp_path / "another.keys"))
    with other_keys, unit_of_work(engine, write=False) as session, pytest.raises(keys.KeyMaterialError):
        clients.get_client(session, actor=system_actor(org.id), client_id=client)
    engine.dispose()
