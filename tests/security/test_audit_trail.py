"""The audit trail: reads of PHI, writes, exports, sign-ins, failed sign-ins and denials each leave a
row, in the same transaction as the work; `security.audit.verify` names an edited, deleted, inserted or
reordered row; on PostgreSQL the table refuses UPDATE, DELETE and TRUNCATE."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, Executable, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from medspa.clients import service as clients
from medspa.kit import audit_trail
from medspa.kit.audit_trail import NO_ORGANIZATION, AuditEvent, AuditHead, stored_hash
from medspa.kit.db import unit_of_work
from medspa.kit.errors import AuthenticationError, PermissionDeniedError
from medspa.retention import export
from medspa.security import audit
from medspa.security import service as security
from medspa.security.actors import Actor, Role, system_actor
from medspa.security.schemas import UserCreate
from tests.conftest import token_for
from tests.factories import make_client


def chain(engine: Engine, organization_id: uuid.UUID) -> list[AuditEvent]:
    with unit_of_work(engine, write=False) as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.organization_id == organization_id)
                .order_by(AuditEvent.seq)
            )
        )


def problems(engine: Engine, organization_id: uuid.UUID) -> list[audit.Problem]:
    with unit_of_work(engine, write=False) as session:
        return audit.verify(session, organization_ids=[organization_id]).problems


def tamper(engine: Engine, *statements: tuple[str | Executable, dict[str, object]]) -> None:
    """Change the table as someone with the database's files or its superuser would (on PostgreSQL the
    append-only triggers are bypassed for this transaction only)."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        for statement, parameters in statements:
            connection.execute(text(statement) if isinstance(statement, str) else statement, parameters)


def test_a_phi_read_through_the_api_writes_a_row_naming_actor_organization_and_request(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    with unit_of_work(engine) as session:
        client = make_client(session, actor=owner)

    response = api.get(f"/api/v1/clients/{client.id}", headers={"X-Request-ID": "front-desk-42"})

    assert response.status_code == 200
    assert response.headers["x-request-id"] == "front-desk-42"
    last = chain(engine, owner.organization_id)[-1]
    assert (last.action, last.resource_type, last.resource_ids) == ("read", "client", [str(client.id)])
    assert (last.actor, last.organization_id, last.request_id) == (
        "token:test",
        owner.organization_id,
        "front-desk-42",
    )


def test_a_request_without_a_sane_id_gets_one_of_its_own(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    response = api.get("/api/v1/clients", headers={"X-Request-ID": "no spaces; please"})

    given = response.headers["x-request-id"]
    assert len(given) == 32
    assert given != "no spaces; please"
    last = chain(engine, owner.organization_id)[-1]
    assert (last.action, last.detail, last.request_id) == ("read", "list", given)


def test_a_write_writes_its_row_in_its_transaction(engine: Engine, owner: Actor) -> None:
    before = chain(engine, owner.organization_id)

    with unit_of_work(engine) as session:
        client = make_client(session, actor=owner)

    rows = chain(engine, owner.organization_id)
    assert len(rows) == len(before) + 1
    assert (rows[-1].action, rows[-1].detail, rows[-1].resource_ids) == (
        "write",
        "client.created",
        [str(client.id)],
    )
    assert rows[-1].prev_hash == before[-1].row_hash


def test_a_rolled_back_write_leaves_no_row(engine: Engine, owner: Actor) -> None:
    before = chain(engine, owner.organization_id)

    def write_then_fail() -> None:
        with unit_of_work(engine) as session:
            make_client(session, actor=owner)
            raise RuntimeError("the request failed after the write")

    with pytest.raises(RuntimeError):
        write_then_fail()

    assert [r.id for r in chain(engine, owner.organization_id)] == [r.id for r in before]
    with unit_of_work(engine, write=False) as session:
        assert clients.list_clients(session, actor=owner).total == 0


def test_sign_ins_and_failed_sign_ins_write_rows_even_when_the_failure_rolls_back(engine: Engine) -> None:
    slug = f"t-{uuid.uuid4().hex[:12]}"
    with unit_of_work(engine) as session:
        organization = security.create_organization(session, slug=slug, name="Sign-in Clinic")
        owner = system_actor(organization.id, "test")
        user = security.create_user(
            session,
            actor=owner,
            data=UserCreate(
                email="ana@clinic.example", display_name="Ana", role=Role.FRONT_DESK, password="a" * 12
            ),
        )
    address = f"10.0.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"

    with pytest.raises(AuthenticationError), unit_of_work(engine) as session:
        security.sign_in(
            session, organization_slug=slug, email=user.email, password="wrong-password", address=address
        )
    with pytest.raises(AuthenticationError), unit_of_work(engine) as session:
        security.sign_in(
            session, organization_slug="no-such-clinic", email="x@y.z", password="nothing!", address=address
        )
    with unit_of_work(engine) as session:
        security.sign_in(
            session, organization_slug=slug, email=user.email, password="a" * 12, address=address
        )

    rows = chain(engine, owner.organization_id)
    failed, signed_in = rows[-2], rows[-1]
    assert (failed.action, failed.resource_ids, failed.detail) == (
        "sign_in_failed",
        [str(user.id)],
        f"from {address}",
    )
    assert (signed_in.action, signed_in.actor, signed_in.resource_ids) == (
        "sign_in",
        "user:ana@clinic.example",
        [str(user.id)],
    )
    unknown = [r for r in chain(engine, NO_ORGANIZATION) if r.detail == f"from {address}"]
    assert [(r.action, r.resource_ids) for r in unknown] == [("sign_in_failed", [])]
    assert problems(engine, owner.organization_id) == []


def test_a_permission_denial_writes_a_row_and_nothing_else(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    provider = {"Authorization": f"Bearer {token_for(engine, owner, Role.PROVIDER)}"}
    before = chain(engine, owner.organization_id)

    response = api.post("/api/v1/clients", json={"first_name": "A", "last_name": "B"}, headers=provider)

    assert response.status_code == 403
    rows = chain(engine, owner.organization_id)
    assert len(rows) == len(before) + 1
    assert (rows[-1].action, rows[-1].actor, rows[-1].detail) == ("denied", "token:test", "clients.create")
    with unit_of_work(engine, write=False) as session:
        assert clients.list_clients(session, actor=owner).total == 0


@pytest.fixture
def five_rows(engine: Engine, owner: Actor) -> list[AuditEvent]:
    """A chain of five rows: the organization's creation and four clients'."""
    with unit_of_work(engine) as session:
        for _ in range(4):
            make_client(session, actor=owner)
    rows = chain(engine, owner.organization_id)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert problems(engine, owner.organization_id) == []
    return rows


def test_verify_names_an_edited_row(engine: Engine, owner: Actor, five_rows: list[AuditEvent]) -> None:
    tamper(engine, ("UPDATE audit_events SET action = 'xread' WHERE id = :id", {"id": five_rows[2].id}))

    found = problems(engine, owner.organization_id)

    assert [(p.kind, p.row_id, p.seq) for p in found] == [("edited", five_rows[2].id, 3)]


def test_verify_names_the_row_after_a_deleted_one(
    engine: Engine, owner: Actor, five_rows: list[AuditEvent]
) -> None:
    tamper(engine, ("DELETE FROM audit_events WHERE id = :id", {"id": five_rows[2].id}))

    found = problems(engine, owner.organization_id)

    assert [(p.kind, p.row_id, p.seq) for p in found] == [("deleted", five_rows[3].id, 4)]
    assert "seq 3 missing" in found[0].detail


def test_verify_names_an_inserted_row_even_one_hashed_like_the_others(
    engine: Engine, owner: Actor, five_rows: list[AuditEvent]
) -> None:
    # The attacker knows the algorithm: makes room at seq 3 and forges a row that links to seq 2.
    org = owner.organization_id
    row = {
        "organization_id": org,
        "seq": 3,
        "occurred_at": five_rows[2].occurred_at,
        "actor": "user:nobody@clinic.example",
        "action": "read",
        "resource_type": "client",
        "resource_ids": [],
        "detail": "list",
        "request_id": None,
        "justification": None,
        "prev_hash": five_rows[1].row_hash,
    }
    forged = stored_hash(row)
    shifts = [
        ("UPDATE audit_events SET seq = :to WHERE id = :id", {"to": -r.seq, "id": r.id})
        for r in five_rows[2:]
    ] + [
        ("UPDATE audit_events SET seq = :to WHERE id = :id", {"to": r.seq + 1, "id": r.id})
        for r in five_rows[2:]
    ]
    tamper(
        engine,
        *shifts,
        (insert(AuditEvent).values(**row, row_hash=forged), {}),
    )

    found = problems(engine, org)

    inserted = [r for r in chain(engine, org) if r.row_hash == forged]
    assert [(p.kind, p.row_id, p.seq) for p in found] == [("inserted", inserted[0].id, 3)]


def test_verify_names_a_reordered_row(engine: Engine, owner: Actor, five_rows: list[AuditEvent]) -> None:
    second, third = five_rows[1], five_rows[2]
    tamper(
        engine,
        ("UPDATE audit_events SET seq = -1 WHERE id = :id", {"id": second.id}),
        ("UPDATE audit_events SET seq = 2 WHERE id = :id", {"id": third.id}),
        ("UPDATE audit_events SET seq = 3 WHERE id = :id", {"id": second.id}),
    )

    found = problems(engine, owner.organization_id)

    assert [(p.kind, p.row_id, p.seq) for p in found] == [("reordered", third.id, 2)]


def test_a_chain_cut_short_is_caught_by_its_head_and_by_the_head_file(
    engine: Engine, owner: Actor, five_rows: list[AuditEvent], tmp_path: Path
) -> None:
    head_file = tmp_path / "heads.jsonl"
    with unit_of_work(engine, write=False) as session:
        assert audit.write_heads(session, head_file) >= 1
    org, last = owner.organization_id, five_rows[-1]

    tamper(engine, ("DELETE FROM audit_events WHERE id = :id", {"id": last.id}))
    assert [(p.kind, p.seq) for p in problems(engine, org)] == [("deleted", None)]
    # Whoever cut the chain also moves the database's head back: the head file outside still knows.
    moved_back = (
        update(AuditHead)
        .where(AuditHead.organization_id == org)
        .values(seq=4, row_hash=five_rows[3].row_hash)
    )
    tamper(engine, (moved_back, {}))
    assert problems(engine, org) == []
    with unit_of_work(engine, write=False) as session:
        found = audit.verify(session, recorded=audit.read_heads(head_file), organization_ids=[org]).problems
    assert [(p.kind, p.row_id) for p in found] == [("deleted", None)]
    assert "seq 5 missing at the end" in found[0].detail


def test_concurrent_writers_keep_one_unbroken_chain(engine: Engine, owner: Actor) -> None:
    errors: list[BaseException] = []

    def write_clients() -> None:
        try:
            for _ in range(5):
                with unit_of_work(engine) as session:
                    make_client(session, actor=owner)
                    clients.list_clients(session, actor=owner, limit=5)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write_clients) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    rows = chain(engine, owner.organization_id)
    assert [r.seq for r in rows] == list(range(1, 1 + 1 + 8 * 5 * 2))
    assert problems(engine, owner.organization_id) == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'x' WHERE organization_id = :org",
        "DELETE FROM audit_events WHERE organization_id = :org",
        "TRUNCATE audit_events",
    ],
)
def test_postgresql_refuses_to_update_delete_or_truncate_the_audit_table(
    engine: Engine, owner: Actor, statement: str
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the append-only triggers are PostgreSQL's (SQLite's file is anyone's who holds it)")
    before = chain(engine, owner.organization_id)

    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement), {"org": owner.organization_id})

    assert [(r.id, r.row_hash) for r in chain(engine, owner.organization_id)] == [
        (r.id, r.row_hash) for r in before
    ]


def test_an_export_writes_a_row(engine: Engine, owner: Actor, tmp_path: Path) -> None:
    with unit_of_work(engine, write=False) as session:
        rows = export.export_appointment_history(session, actor=owner, path=tmp_path / "history.csv")

    last = chain(engine, owner.organization_id)[-1]
    assert (last.action, last.resource_type, last.detail) == (
        "export",
        "appointment",
        f"appointment-history: {rows} rows",
    )


def test_a_rolled_back_savepoint_takes_its_entries_with_it(engine: Engine, owner: Actor) -> None:
    before = chain(engine, owner.organization_id)

    with unit_of_work(engine) as session:
        kept = make_client(session, actor=owner)
        savepoint = session.begin_nested()
        make_client(session, actor=owner)
        savepoint.rollback()

    rows = chain(engine, owner.organization_id)
    assert [(r.detail, r.resource_ids) for r in rows[len(before) :]] == [("client.created", [str(kept.id)])]


def test_released_savepoints_keep_their_entries_until_the_transaction_writes_them_all_at_once(
    engine: Engine, owner: Actor
) -> None:
    """Entries of savepoints released one after another are written together at the commit (the chain's
    head locked once, not once per savepoint); a later savepoint rolled back takes only its own."""
    before = chain(engine, owner.organization_id)

    with unit_of_work(engine) as session:
        with session.begin_nested():
            first = make_client(session, actor=owner)
        with session.begin_nested():
            second = make_client(session, actor=owner)
        written = session.scalar(
            select(AuditHead.seq).where(AuditHead.organization_id == owner.organization_id)
        )
        assert written == (before[-1].seq if before else None)
        savepoint = session.begin_nested()
        make_client(session, actor=owner)
        savepoint.rollback()

    rows = chain(engine, owner.organization_id)[len(before) :]
    assert [(r.detail, r.resource_ids) for r in rows] == [
        ("client.created", [str(first.id)]),
        ("client.created", [str(second.id)]),
    ]
    assert problems(engine, owner.organization_id) == []


def test_a_denial_a_page_catches_and_shows_is_recorded_when_its_unit_of_work_commits(
    engine: Engine, owner: Actor
) -> None:
    provider = Actor(owner.organization_id, "user", None, Role.PROVIDER, "pat@clinic.example")
    before = chain(engine, owner.organization_id)

    with unit_of_work(engine) as session:
        try:
            with session.begin_nested():
                make_client(session, actor=provider)
        except PermissionDeniedError as error:
            audit_trail.record_refusal(session, error)

    rows = chain(engine, owner.organization_id)[len(before) :]
    assert [(r.action, r.actor, r.detail) for r in rows] == [
        ("denied", "user:pat@clinic.example", "clients.create")
    ]
