"""A client's PHI at rest (ADR 17): sealed in the database, found again by keyed indexes only.

The front desk finds "Camp" -> Campbell, "nova.campbell" and a phone number in any format, while the
database holds neither the names, nor the e-mail addresses, nor the phone numbers it was searched by."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url

from medspa.clients import phi
from medspa.clients import service as clients
from medspa.clients.models import Client, ClientSearchTerm
from medspa.clients.schemas import ClientCreate, ClientUpdate
from medspa.demo import catalog_data
from medspa.demo.seed import STAFF, seed_demo
from medspa.kit.db import unit_of_work
from medspa.security.actors import Actor, system_actor


def _create(engine: Engine, actor: Actor, **fields: object) -> uuid.UUID:
    with unit_of_work(engine) as session:
        return clients.create_client(session, actor=actor, data=ClientCreate.model_validate(fields)).id


def _search(engine: Engine, actor: Actor, query: str) -> list[str]:
    with unit_of_work(engine, write=False) as session:
        found = clients.search_clients(session, actor=actor, query=query)
    return [f"{c.first_name} {c.last_name}" for c in found.items]


@pytest.fixture
def front_desk_clients(engine: Engine, owner: Actor) -> Actor:
    _create(
        engine,
        owner,
        first_name="Nova",
        last_name="Campbell",
        email="nova.campbell@example.com",
        phone="(555) 318-6272",
    )
    _create(
        engine,
        owner,
        first_name="Campbell",
        last_name="Ortiz",
        email="cortiz@example.com",
        phone="555-010-2233",
    )
    _create(engine, owner, first_name="Noémie", last_name="Camper", email="noemie@example.com")
    _create(engine, owner, first_name="Ada", last_name="Lovelace", phone="+44 20 7946 0958")
    return owner


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Camp", ["Nova Campbell", "Noémie Camper", "Campbell Ortiz"]),
        ("campbell", ["Nova Campbell", "Campbell Ortiz"]),
        ("Campbell Nova", ["Nova Campbell"]),
        ("nova.campbell", ["Nova Campbell"]),
        ("NOVA.CAMPBELL@example.com", ["Nova Campbell"]),
        ("noemie", ["Noémie Camper"]),  # accents are not needed
        ("555-318-6272", ["Nova Campbell"]),
        ("5553186272", ["Nova Campbell"]),
        ("+1 555 318 6272", ["Nova Campbell"]),
        ("+15550102233", ["Campbell Ortiz"]),
        ("(555) 010-2233", ["Campbell Ortiz"]),
        ("6272", ["Nova Campbell"]),
        ("318-6272", ["Nova Campbell"]),
        ("555", ["Nova Campbell", "Campbell Ortiz"]),
        ("+44 20 7946 0958", ["Ada Lovelace"]),
        ("Lovelace Campbell", []),
        ("Zed", []),
        ("c", []),  # one letter: too little to search by
        ("", []),
        ("%", []),
        ("' OR 1=1 --", []),
    ],
)
def test_the_front_desk_finds_a_client_by_any_part_of_name_email_or_phone(
    engine: Engine, front_desk_clients: Actor, query: str, expected: list[str]
) -> None:
    assert _search(engine, front_desk_clients, query) == expected


def test_search_follows_a_change_of_name_and_phone(engine: Engine, owner: Actor) -> None:
    client_id = _create(engine, owner, first_name="Nova", last_name="Campbell", phone="555-318-6272")
    with unit_of_work(engine) as session:
        update = ClientUpdate(last_name="Reyes-Okafor", phone="555-777-1212")
        clients.update_client(session, actor=owner, client_id=client_id, data=update)
    assert _search(engine, owner, "Campbell") == []
    assert _search(engine, owner, "6272") == []
    assert _search(engine, owner, "okafor") == ["Nova Reyes-Okafor"]
    assert _search(engine, owner, "555 777 1212") == ["Nova Reyes-Okafor"]
    assert _search(engine, owner, "nova") == ["Nova Reyes-Okafor"]  # an unchanged field still finds


def test_another_organizations_clients_are_never_found(engine: Engine, owner: Actor) -> None:
    _create(engine, owner, first_name="Nova", last_name="Campbell", email="nova@example.com")
    with unit_of_work(engine) as session:
        from medspa.security import service as security

        other = security.create_organization(session, slug=f"o-{uuid.uuid4().hex[:10]}", name="Other")
    stranger = system_actor(other.id, "test")
    assert _search(engine, stranger, "Campbell") == []
    with unit_of_work(engine, write=False) as session:
        assert clients.list_clients(session, actor=stranger, email="nova@example.com").items == []


def test_the_same_name_indexes_differently_in_two_organizations(engine: Engine, owner: Actor) -> None:
    """Blind indexes are keyed per organization: equal values in two clinics give unrelated digests."""
    first = _create(engine, owner, first_name="Nova", last_name="Campbell", email="same@example.com")
    with unit_of_work(engine) as session:
        from medspa.security import service as security

        other = security.create_organization(session, slug=f"o-{uuid.uuid4().hex[:10]}", name="Other")
    second = _create(
        engine, system_actor(other.id, "t"), first_name="Nova", last_name="Campbell", email="same@example.com"
    )
    with unit_of_work(engine, write=False) as session:
        a, b = (session.get(Client, i) for i in (first, second))
        assert a is not None
        assert b is not None
        assert a.email_key != b.email_key
        terms = [
            set(session.scalars(select(ClientSearchTerm.term).where(ClientSearchTerm.client_id == i)))
            for i in (first, second)
        ]
        assert terms[0]
        assert not terms[0] & terms[1]


def test_exact_lookup_by_email_or_phone_in_any_format(engine: Engine, owner: Actor) -> None:
    _create(
        engine,
        owner,
        first_name="Nova",
        last_name="Campbell",
        email="Nova@Example.com",
        phone="(555) 010-2233",
    )
    with unit_of_work(engine, write=False) as session:
        for email in ("nova@example.com", " NOVA@example.COM "):
            assert clients.list_clients(session, actor=owner, email=email).total == 1
        for phone in ("+15550102233", "555.010.2233", "1-555-010-2233"):
            assert clients.list_clients(session, actor=owner, phone=phone).total == 1
        assert clients.list_clients(session, actor=owner, phone="555-010-2234").items == []


def test_query_strings_are_bounded() -> None:
    assert len(phi.query_strings(" ".join(f"word{n}" for n in range(100)))) == phi.QUERY_TERMS_MAX
    assert phi.query_strings("x" * 10_000) == [("w", "x" * phi.PREFIX_MAX)]
    assert phi.query_strings("\x00\x00") == []


def _seeded_values(engine: Engine, organization: uuid.UUID) -> set[str]:
    """The seeded clients' e-mails, phone numbers (as given and as digits) and names long enough that
    chance cannot put them in a file of ciphertext, leaving out the staff's own names (not PHI)."""
    staff = " ".join([p[0] for p in catalog_data.PROVIDERS] + [name for _, name, _ in STAFF])
    actor = system_actor(organization, "test")
    needles: set[str] = set()
    with unit_of_work(engine, write=False) as session:
        for client in clients.list_clients(session, actor=actor, limit=500).items:
            needles.update(v for v in (client.email, client.phone) if v)
            if client.phone:
                needles.add(re.sub(r"\D", "", client.phone))
            needles.update(n for n in (client.first_name, client.last_name) if len(n) >= 6 and n not in staff)
    return needles


def test_after_the_demo_seed_no_name_email_or_phone_is_in_the_database(
    engine: Engine, tmp_path: Path
) -> None:
    summary = seed_demo(
        engine, client_count=40, past_days=2, future_days=1, slug=f"demo-{uuid.uuid4().hex[:8]}"
    )
    needles = _seeded_values(engine, summary.organization_id)
    assert len(needles) > 100
    url = engine.url
    if url.get_backend_name() == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        database = Path(str(url.database))
        stored = b"".join(
            p.read_bytes()
            for p in (database, Path(f"{database}-wal"), Path(f"{database}-journal"))
            if p.exists()
        )
    else:
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            pytest.skip("pg_dump is not installed")
        plain = make_url(str(url.set(drivername="postgresql"))).render_as_string(hide_password=False)
        stored = subprocess.run([pg_dump, "--data-only", plain], check=True, capture_output=True).stdout
        # The dump holds this organization's rows, or it would prove nothing.
        with engine.connect() as connection:
            client_id = connection.execute(
                text("select id from clients where organization_id = :o limit 1"),
                {"o": summary.organization_id},
            ).scalar_one()
        assert str(client_id).encode() in stored
    found = sorted(n for n in needles if n.encode() in stored)
    assert found == []
