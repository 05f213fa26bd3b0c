"""What a webhook's receipt keeps in memory between deliveries (the opened connection secret, the
organization's unwrapped `integrations` key) never makes it accept what it would refuse without it,
nor seal under a key that does not open."""

from __future__ import annotations

import base64
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from medspa.integrations import kept, service
from medspa.integrations.models import Connection, InboxEvent
from medspa.kit.db import unit_of_work
from medspa.security import keys
from medspa.security.actors import Actor
from tests.integrations.test_webhooks import (
    STANDARD_SECRET,
    connect,
    inbox_count,
    standard_headers,
)


def post(api: TestClient, connection: str, note: str) -> int:
    body = f'{{"type": "client.created", "data": {{"note": "{note}"}}}}'.encode()
    return api.post(
        f"/api/v1/webhooks/standard/{connection}", content=body, headers=standard_headers(body)
    ).status_code


def test_a_deactivated_connection_refuses_at_once_though_its_secret_is_kept(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    connection = connect(api, "standard", STANDARD_SECRET)
    assert post(api, connection, "first") == 202  # its secret and key are kept from here on
    assert api.delete(f"/api/v1/integrations/connections/{connection}").status_code == 200

    assert post(api, connection, "after") == 404
    assert inbox_count(engine, owner) == 1


def test_a_secret_changed_in_its_row_is_not_answered_from_memory(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    connection = connect(api, "standard", STANDARD_SECRET)
    assert post(api, connection, "first") == 202
    other = "whsec_" + base64.b64encode(b"another-key-0123456789abcdefghij").decode()
    with unit_of_work(engine) as session:
        key = keys.data_key(session, owner.organization_id, service.KEY_PURPOSE)
        session.execute(
            update(Connection)
            .where(Connection.id == uuid.UUID(connection))
            .values(
                secret_sealed=keys.seal_text(key, other, where=f"integration_connections.secret.{connection}")
            )
        )

    assert post(api, connection, "signed with the old secret") == 401
    assert inbox_count(engine, owner) == 1


def test_after_a_key_rotation_kept_and_fresh_keys_seal_and_open_alike(
    api: TestClient, engine: Engine, owner: Actor
) -> None:
    connection = connect(api, "standard", STANDARD_SECRET)
    assert post(api, connection, "before rotation") == 202  # the key is kept now
    kept_before = keys._KEPT[(owner.organization_id, service.KEY_PURPOSE)]
    new_kek = keys.provider().add_kek()  # as `medspa keys rotate` does, for this organization
    with unit_of_work(engine) as session:
        assert keys.rotate(session, owner.organization_id, new_kek) == len(keys.PURPOSES)
    # Another server process still keeps the key it unwrapped before the rotation:
    keys._KEPT[(owner.organization_id, service.KEY_PURPOSE)] = kept_before

    assert post(api, connection, "after rotation") == 202
    kept.forget()
    keys.forget_kept_keys()
    assert post(api, connection, "after forgetting") == 202
    with unit_of_work(engine, write=False) as session:
        events = session.scalars(
            select(InboxEvent).where(InboxEvent.organization_id == owner.organization_id)
        )
        notes = sorted(service.open_body(session, event) for event in events)
    assert [n.split('"note": "')[1].split('"')[0] for n in notes] == [
        "after forgetting",
        "after rotation",
        "before rotation",
    ]


def _make_key_then_fail(engine: Engine, organization_id: uuid.UUID) -> None:
    with unit_of_work(engine) as session:
        keys.kept_data_key(session, organization_id, "integrations")  # made in this transaction
        raise RuntimeError("undo")


def test_a_key_is_kept_only_once_its_transaction_committed(engine: Engine) -> None:
    rolled_back, committed = uuid.uuid4(), uuid.uuid4()  # organizations without keys yet
    with pytest.raises(RuntimeError):
        _make_key_then_fail(engine, rolled_back)
    with unit_of_work(engine) as session:
        made = keys.kept_data_key(session, committed, "integrations")
        assert (committed, "integrations") not in keys._KEPT  # not before the commit

    assert (rolled_back, "integrations") not in keys._KEPT
    assert keys._KEPT[(committed, "integrations")][1] == made
    keys.forget_kept_keys(committed)
    assert (committed, "integrations") not in keys._KEPT
