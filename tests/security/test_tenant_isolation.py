"""Tenant isolation twice over (ADR 21): the application scopes every query by organization, and on
PostgreSQL row-level security backs it, for an application role that is neither superuser, nor table
owner, nor BYPASSRLS. Random requests as users of three organizations through the pooled application
never see a row of another organization, on both databases."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, exc, make_url, text

from medspa.app import create_app
from medspa.kit import clock
from medspa.kit.db import confine_to_tenant, make_engine, unit_of_work
from medspa.scheduling import service as scheduling
from medspa.security import service as security
from medspa.security.actors import Actor, Role, system_actor
from tests.conftest import POSTGRES_URL, token_for
from tests.scheduling.test_availability import Clinic, build
from tests.scheduling.test_booking import request

APP_ROLE = "medspa_app_test"
NOW = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

needs_postgres = pytest.mark.skipif(POSTGRES_URL is None, reason="row-level security is PostgreSQL's")


def app_role_url(owner_url: str) -> str:
    """The suite's database as the application role: created (once per server) without superuser,
    BYPASSRLS or ownership, and given the rights the application needs on every table."""
    admin = create_engine(owner_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN"
                f" CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;"
                " END IF; END $$"
            )
        )
        connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}"))
        connection.execute(
            text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
        )
        connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}"))
    admin.dispose()
    return make_url(owner_url).set(username=APP_ROLE, password=None).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def app_engine(postgres_url: str) -> Iterator[Engine]:
    built = make_engine(app_role_url(postgres_url))
    yield built
    built.dispose()


@pytest.fixture(scope="module")
def owner_engine(postgres_url: str) -> Iterator[Engine]:
    """The suite's PostgreSQL database as its owner, to set up what the application role then reads."""
    built = make_engine(postgres_url)
    yield built
    built.dispose()


@dataclass
class Tenant:
    actor: Actor
    clinic: Clinic
    appointment: uuid.UUID
    token: str


def _tenant(engine: Engine) -> Tenant:
    with unit_of_work(engine) as session:
        org = security.create_organization(session, slug=f"r-{uuid.uuid4().hex[:12]}", name="Clinic")
    actor = system_actor(org.id, "test")
    with clock.frozen_at(NOW):
        clinic = build(engine, actor)
        with unit_of_work(engine) as session:
            booked = scheduling.book_appointment(session, actor=actor, data=request(clinic))
    return Tenant(actor, clinic, booked.id, token_for(engine, actor, Role.OWNER))


@needs_postgres
def test_the_application_role_is_not_privileged(app_engine: Engine) -> None:
    with app_engine.connect() as connection:
        superuser, bypass = connection.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        owned = connection.scalar(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user")
        )
    assert (superuser, bypass, owned) == (False, False, 0)


@needs_postgres
def test_every_tenant_table_forces_row_level_security(app_engine: Engine) -> None:
    with app_engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, EXISTS (SELECT FROM pg_policies p"
                " WHERE p.tablename = c.relname AND p.policyname = 'tenant_isolation')"
                " FROM pg_class c JOIN information_schema.columns i"
                " ON i.table_name = c.relname AND i.column_name = 'organization_id'"
                " AND i.table_schema = 'public'"
                " WHERE c.relkind = 'r'"
            )
        ).all()
    assert len(rows) > 20
    assert [name for name, enabled, forced, policy in rows if not (enabled and forced and policy)] == []


@needs_postgres
def test_a_query_without_its_filter_still_sees_one_organization(
    owner_engine: Engine, app_engine: Engine
) -> None:
    first, second = _tenant(owner_engine), _tenant(owner_engine)
    count = text("SELECT count(DISTINCT organization_id) FROM clients")
    with unit_of_work(app_engine, write=False) as session:
        confine_to_tenant(session, first.actor.organization_id)
        assert session.scalar(count) == 1
        assert (
            session.scalar(text("SELECT count(*) FROM appointments WHERE id = :b"), {"b": second.appointment})
            == 0
        )
        ids = set(session.scalars(text("SELECT id FROM appointments")))
        assert ids == {first.appointment}
    with unit_of_work(app_engine) as session:  # changes to another organization's rows touch nothing
        confine_to_tenant(session, first.actor.organization_id)
        hidden = session.execute(
            text("UPDATE clients SET is_active = false WHERE organization_id = :o"),
            {"o": second.actor.organization_id},
        )
        assert hidden.rowcount == 0  # type: ignore[attr-defined]
    insert = text(
        "INSERT INTO closures (id, organization_id, location_id, closed_on, reason)"
        " VALUES (:id, :o, :l, '2026-03-04', 'x')"
    )
    with unit_of_work(app_engine) as session:
        confine_to_tenant(session, first.actor.organization_id)
        with pytest.raises(exc.ProgrammingError, match="row-level security"):
            session.execute(
                insert,
                {"id": uuid.uuid4(), "o": second.actor.organization_id, "l": second.clinic.location_id},
            )
        session.rollback()


@needs_postgres
def test_a_request_s_credentials_confine_its_session_to_their_organization(
    owner_engine: Engine, app_engine: Engine
) -> None:
    first, _second = _tenant(owner_engine), _tenant(owner_engine)
    with unit_of_work(app_engine, write=False) as session:
        assert session.scalar(text("SELECT count(DISTINCT organization_id) FROM clients")) >= 2  # system
        security.authenticate_token(session, token=first.token)
        assert set(session.scalars(text("SELECT organization_id FROM clients"))) == {
            first.actor.organization_id
        }


@needs_postgres
def test_the_tenant_ends_with_its_transaction_and_does_not_leak_to_the_next_user(
    owner_engine: Engine, postgres_url: str
) -> None:
    """A pooled connection used by one organization's request shows nothing to a transaction that did not
    set a scope: deny by default, and the setting was local to the transaction that made it."""
    tenant = _tenant(owner_engine)
    one = make_engine(app_role_url(postgres_url))
    one.pool.dispose()
    try:
        with unit_of_work(one, write=False) as session:
            confine_to_tenant(session, tenant.actor.organization_id)
            assert session.scalar(text("SELECT count(*) FROM clients")) == 1
        with one.connect() as connection:  # the same pooled connection, no scope set
            assert connection.scalar(text("SELECT current_setting('app.organization_id', true)")) in (
                "",
                None,
            )
            assert connection.scalar(text("SELECT count(*) FROM clients")) == 0
    finally:
        one.dispose()


# --- random requests as three organizations ----------------------------------------------------------

ROUTES = (
    "/api/v1/clients",
    "/api/v1/clients/{client}",
    "/api/v1/clients?q=Client",
    "/api/v1/locations",
    "/api/v1/locations/{location}",
    "/api/v1/providers",
    "/api/v1/providers/{provider}",
    "/api/v1/rooms",
    "/api/v1/rooms/{room}",
    "/api/v1/services",
    "/api/v1/services/{service}",
    "/api/v1/appointments?location_id={location}&from=2026-03-01T00:00:00Z&to=2026-03-10T00:00:00Z",
    "/api/v1/appointments/{appointment}",
    "/api/v1/waitlist?location_id={location}&date=2026-03-03",
    "/api/v1/tokens",
    "/api/v1/erasure-requests",
    "/api/v1/agent-actions",
)


@pytest.fixture(params=["sqlite", "postgresql"])
def pooled_app(request: pytest.FixtureRequest, engine: Engine) -> Iterator[tuple[TestClient, list[Tenant]]]:
    """The application on the backend of `engine`; on PostgreSQL connected as the application role
    with a small pool, so requests of different organizations reuse each other's connections."""
    backend = engine.dialect.name
    if request.param != ("postgresql" if backend == "postgresql" else "sqlite"):
        pytest.skip("one backend per engine")
    tenants = [_tenant(engine) for _ in range(3)]
    if backend == "postgresql":
        served = create_engine(
            app_role_url(request.getfixturevalue("postgres_url")), pool_size=2, max_overflow=0
        )
    else:
        served = engine
    with clock.frozen_at(NOW), TestClient(create_app(served)) as client:
        yield client, tenants
    if served is not engine:
        served.dispose()


def _ids(tenant: Tenant) -> dict[str, uuid.UUID]:
    c = tenant.clinic
    return {"client": c.client_id, "location": c.location_id, "provider": c.provider_id, "room": c.room_id,
            "service": c.service_id, "appointment": tenant.appointment}  # fmt: skip


REQUESTS_PER_EXAMPLE = 25
EXAMPLES = 100  # 2,500 requests in all, on each database


@given(data=st.data())
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_random_requests_of_three_organizations_never_see_another_ones_rows(
    pooled_app: tuple[TestClient, list[Tenant]], data: st.DataObject
) -> None:
    client, tenants = pooled_app
    for _ in range(REQUESTS_PER_EXAMPLE):
        asking = data.draw(st.sampled_from(tenants))
        owner_of_ids = data.draw(st.sampled_from(tenants))  # ids of any organization, this one's or not
        template = data.draw(st.sampled_from(ROUTES))
        route = template.format(**_ids(owner_of_ids))
        paging = data.draw(st.fixed_dictionaries({"limit": st.integers(1, 500), "offset": st.integers(0, 3)}))
        if "?" not in route and not template.endswith("}"):
            route += f"?limit={paging['limit']}&offset={paging['offset']}"
        response = client.get(route, headers={"Authorization": f"Bearer {asking.token}"})
        assert response.status_code in (200, 404), (route, response.status_code, response.text[:200])
        foreign = {str(i) for t in tenants if t is not asking for i in _ids(t).values()} | {
            str(t.actor.organization_id) for t in tenants if t is not asking
        }
        seen = set(UUID.findall(response.text))
        assert not seen & foreign, (route, seen & foreign)
        if owner_of_ids is not asking and "{" in template:
            # Another organization's record answers as a missing one does.
            missing = template.format(**dict.fromkeys(_ids(asking), uuid.uuid4()))
            unknown = client.get(missing, headers={"Authorization": f"Bearer {asking.token}"})
            assert (response.status_code, response.json()) == (unknown.status_code, unknown.json()), route


@needs_postgres
def test_the_server_says_when_its_role_bypasses_row_security(
    owner_engine: Engine, app_engine: Engine
) -> None:
    from medspa.kit.db import row_security_bypass

    assert row_security_bypass(app_engine) is None
    assert "superuser" in (row_security_bypass(owner_engine) or "")
