"""Envelope encryption of PHI (ADR 17): the key file, sealed text bound to its place, data keys per
organization, rotation without a change to any ciphertext."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from medspa.clients import service as clients
from medspa.clients.models import Client
from medspa.clients.schemas import ClientCreate
from medspa.kit.db import unit_of_work
from medspa.security import keys
from medspa.security.actors import Actor
from medspa.security.models import OrganizationKey


def test_a_key_file_is_created_on_first_use_readable_by_its_owner_alone(tmp_path: Path) -> None:
    path = tmp_path / "new" / "medspa.keys"
    key_file = keys.LocalKeyFile(path)
    kek_id, wrapped = key_file.wrap(b"k" * keys.KEY_BYTES, context="here")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["current"] == kek_id
    # Another process reading the same file unwraps what this one wrapped.
    assert keys.LocalKeyFile(path).unwrap(wrapped, kek_id=kek_id, context="here") == b"k" * keys.KEY_BYTES


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "medspa.keys"
    keys.LocalKeyFile(path).current_kek_id()
    os.chmod(path, 0o644)
    with pytest.raises(keys.KeyMaterialError, match="chmod 600"):
        keys.LocalKeyFile(path).current_kek_id()


@pytest.mark.parametrize(
    "content", ["", "{}", "not json", '{"format": "medspa-kek/1", "current": "a", "keys": {"a": "c2hvcnQ="}}']
)
def test_a_damaged_key_file_is_refused_with_its_path(tmp_path: Path, content: str) -> None:
    path = tmp_path / "medspa.keys"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(keys.KeyMaterialError, match=str(path)):
        keys.LocalKeyFile(path).current_kek_id()


def test_a_data_key_wrapped_for_one_place_does_not_unwrap_for_another(tmp_path: Path) -> None:
    key_file = keys.LocalKeyFile(tmp_path / "medspa.keys")
    kek_id, wrapped = key_file.wrap(b"k" * keys.KEY_BYTES, context="organization_keys.a.phi")
    with pytest.raises(keys.KeyMaterialError):
        key_file.unwrap(wrapped, kek_id=kek_id, context="organization_keys.b.phi")


def test_sealed_text_opens_only_where_it_was_sealed_and_only_untampered() -> None:
    key = os.urandom(keys.KEY_BYTES)
    sealed = keys.seal_text(key, "nova@example.com", where="clients.email.1")
    assert "nova" not in sealed
    assert keys.open_text(key, sealed, where="clients.email.1") == "nova@example.com"
    with pytest.raises(keys.DecryptionError):
        keys.open_text(key, sealed, where="clients.email.2")
    with pytest.raises(keys.DecryptionError):
        keys.open_text(key, sealed, where="clients.phone.1")
    with pytest.raises(keys.DecryptionError):
        keys.open_text(os.urandom(keys.KEY_BYTES), sealed, where="clients.email.1")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for bad in (tampered, "v1.", "v1.!!!", "plain text", sealed[: len(sealed) // 2]):
        with pytest.raises(keys.DecryptionError):
            keys.open_text(key, bad, where="clients.email.1")
    # The same value sealed twice differs (a fresh nonce each time): equal values are not visible.
    assert keys.seal_text(key, "x", where="w") != keys.seal_text(key, "x", where="w")


def _client(engine: Engine, actor: Actor, first: str, email: str) -> uuid.UUID:
    with unit_of_work(engine) as session:
        data = ClientCreate(first_name=first, last_name="Campbell", email=email, phone="555-010-2233")
        return clients.create_client(session, actor=actor, data=data).id


@pytest.mark.parametrize("column", ["email_sealed", "phi_key"])
def test_a_sealed_field_or_record_key_copied_to_another_client_fails_to_decrypt(
    engine: Engine, owner: Actor, column: str
) -> None:
    """A sealed e-mail, or the wrapped record key itself, moved to another client's row does not open
    there; the client it was copied from still reads."""
    nova = _client(engine, owner, "Nova", "nova@example.com")
    ada = _client(engine, owner, "Ada", "ada@example.com")
    with unit_of_work(engine) as session:
        stolen = session.scalar(select(getattr(Client, column)).where(Client.id == nova))
        session.execute(update(Client).where(Client.id == ada).values({column: stolen}))
    with unit_of_work(engine) as session, pytest.raises(keys.KeyMaterialError):
        clients.get_client(session, actor=owner, client_id=ada)
    with unit_of_work(engine) as session:
        assert clients.get_client(session, actor=owner, client_id=nova).email == "nova@example.com"


def test_each_organization_has_data_keys_of_its_own(engine: Engine, owner: Actor) -> None:
    with unit_of_work(engine) as session:
        rows = session.scalars(
            select(OrganizationKey).where(OrganizationKey.organization_id == owner.organization_id)
        ).all()
        assert sorted(r.purpose for r in rows) == ["index", "integrations", "phi"]
        phi = keys.data_key(session, owner.organization_id, "phi")
        index = keys.data_key(session, owner.organization_id, "index")
        assert phi != index
        assert len(phi) == keys.KEY_BYTES
        assert all(phi not in r.wrapped for r in rows)  # stored only wrapped


def test_rotation_rewraps_data_keys_and_every_record_still_reads(
    engine: Engine, owner: Actor, tmp_path: Path
) -> None:
    key_file = keys.LocalKeyFile(tmp_path / "rotating.keys")
    with keys.using_provider(key_file):
        other_org = owner.organization_id
        # Data keys made under this provider, so that it can unwrap them.
        with unit_of_work(engine) as session:
            session.execute(delete(OrganizationKey).where(OrganizationKey.organization_id == other_org))
        nova = _client(engine, owner, "Nova", "nova3@example.com")
        with unit_of_work(engine) as session:
            before = {r.purpose: (r.kek_id, r.wrapped) for r in _org_keys(session, other_org)}
            sealed_before = session.scalar(select(Client.email_sealed).where(Client.id == nova))
        old_kek = key_file.current_kek_id()
        new_kek = key_file.add_kek()
        with unit_of_work(engine) as session:
            assert keys.rotate(session, other_org, new_kek) == len(keys.PURPOSES)
        with unit_of_work(engine) as session:
            after = {r.purpose: (r.kek_id, r.wrapped) for r in _org_keys(session, other_org)}
            assert {kek for kek, _ in after.values()} == {new_kek}
            assert all(after[p][1] != before[p][1] for p in before)
            assert session.scalar(select(Client.email_sealed).where(Client.id == nova)) == sealed_before
            assert clients.get_client(session, actor=owner, client_id=nova).email == "nova3@example.com"
        with unit_of_work(engine) as session:
            assert keys.rotate(session, other_org, new_kek) == 0  # again: nothing left to re-wrap
        # Once no data key uses the old KEK it may go, and everything still reads.
        assert key_file.retire_keks({new_kek}) == [old_kek]
        assert keys.LocalKeyFile(key_file.path).current_kek_id() == new_kek
        with unit_of_work(engine) as session:
            assert clients.get_client(session, actor=owner, client_id=nova).first_name == "Nova"


def test_rotation_to_a_key_that_is_not_current_is_refused(engine: Engine, owner: Actor) -> None:
    with unit_of_work(engine) as session, pytest.raises(keys.KeyMaterialError, match="current"):
        keys.rotate(session, owner.organization_id, "kek-that-is-not-current")


def _org_keys(session: Session, organization_id: uuid.UUID) -> list[OrganizationKey]:
    return list(
        session.scalars(select(OrganizationKey).where(OrganizationKey.organization_id == organization_id))
    )


def test_a_second_factor_secret_is_stored_sealed_and_bound_to_its_user(engine: Engine, owner: Actor) -> None:
    from medspa.security import service as security
    from medspa.security.models import User
    from medspa.security.permissions import Role
    from medspa.security.schemas import UserCreate

    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    with unit_of_work(engine) as session:
        for email in ("a@clinic.example", "b@clinic.example"):
            data = UserCreate(email=email, display_name="M", role=Role.MANAGER, password="long enough pw")
            security.create_user(session, actor=owner, data=data)
            security.enrol_totp(session, actor=owner, email=email, secret=secret)
    with unit_of_work(engine, write=False) as session:
        users = {
            u.email: u
            for u in session.scalars(select(User).where(User.organization_id == owner.organization_id))
        }
        stored = users["a@clinic.example"].totp_secret
        assert stored is not None
        assert stored.startswith(keys.SEALED_PREFIX)
        assert secret not in stored
        assert security.current_code(session, actor=owner, email="a@clinic.example", only_secret=secret)
    with unit_of_work(engine) as session:  # moved to another user, it does not open
        other = session.get(User, users["b@clinic.example"].id)
        assert other is not None
        other.totp_secret = stored
    with unit_of_work(engine, write=False) as session, pytest.raises(keys.DecryptionError):
        security.current_code(session, actor=owner, email="b@clinic.example", only_secret=secret)
