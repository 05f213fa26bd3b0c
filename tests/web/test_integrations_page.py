"""The Integrations tab of the settings: an owner connects a system (its secret sealed, never shown
again), maps the system's ids to our records and sends failed deliveries back, through the functions the
API calls; a manager reads it; other roles are refused; bad input answers 4xx with the reason and writes
nothing, never a 500."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceRead
from medspa.integrations import mappings, service
from medspa.integrations.models import Connection, ExternalLink, InboxEvent
from medspa.integrations.schemas import ConnectionCreate
from medspa.kit.db import unit_of_work
from medspa.kit.outbox import OutboxEvent
from medspa.security import service as security
from medspa.security.actors import system_actor
from medspa.security.permissions import Role
from medspa.web import connections
from tests.factories import make_service
from tests.web.conftest import Demo
from tests.web.test_roles import sign_in
from tests.web.test_settings_pages import _Controls

SECRET = "zenoti-shared-secret-7f3a"
CONNECTION_FORM = {
    "connector": "zenoti",
    "name": "Main Street",
    "secret": SECRET,
    "signature_header": "X-Zenoti-Signature",
    "signature_encoding": "hex",
}


POLLING_FORM = {"poll_url": "https://api.example.org/v6", "poll_account": "-99", "poll_key": "api-key-9f2c1"}


def _url(demo: Demo, suffix: str = "") -> str:
    return f"/locations/{demo.location_id}/settings/integrations{suffix}"


def _written(engine: Engine) -> tuple[int, int, int, int]:
    """How many events, connections, mappings and waiting deliveries there are."""
    with unit_of_work(engine, write=False) as session:
        return (
            session.scalar(select(func.count()).select_from(OutboxEvent)) or 0,
            session.scalar(select(func.count()).select_from(Connection)) or 0,
            session.scalar(select(func.count()).select_from(ExternalLink)) or 0,
            session.scalar(select(func.count()).where(InboxEvent.state == "received")) or 0,
        )


@pytest.fixture
def nothing_written(engine: Engine) -> Iterator[None]:
    before = _written(engine)
    yield
    assert _written(engine) == before


def _connect(engine: Engine, demo: Demo, connector: str = "mindbody") -> uuid.UUID:
    """A connection made through the service, as the API makes it."""
    with unit_of_work(engine) as session:
        fields = {"connector": connector, "name": "Back office", "secret": "mindbody-secret-1"}
        data = ConnectionCreate.model_validate(fields)
        return service.add_connection(session, actor=demo.actor, data=data).id


def _a_service(engine: Engine, demo: Demo) -> ServiceRead:
    with unit_of_work(engine, write=False) as session:
        return catalog.list_services(session, actor=demo.actor).items[0]


def _failed_delivery(engine: Engine, connection_id: uuid.UUID, error: str) -> uuid.UUID:
    """A delivery of the connection that gave up (as the worker leaves one after its last try)."""
    with unit_of_work(engine) as session:
        connection = session.get_one(Connection, connection_id)
        receipt = service.store_delivery(
            session,
            connection,
            source_event_id=f"evt-{uuid.uuid4().hex}",
            event_type="appointmentBooking.created",
            source_time=None,
            text='{"eventData": {}}',
        )
        assert receipt.inbox_id is not None
        row = session.get_one(InboxEvent, receipt.inbox_id)
        row.state, row.attempts, row.last_error = "failed", 12, error
        return row.id


def _post_urls(engine: Engine, demo: Demo) -> list[str]:
    """The URL of every change the tab makes, with a connection and a failed delivery of it."""
    connection_id = _connect(engine, demo)
    inbox_id = _failed_delivery(engine, connection_id, "provider 7 is not mapped")
    routes = [r.path for r in connections.router.routes if isinstance(r, APIRoute) and "POST" in r.methods]
    assert len(routes) == 6
    return [
        p.format(location_id=demo.location_id, connection_id=connection_id, inbox_id=inbox_id) for p in routes
    ]


# --- the owner's round ----------------------------------------------------------------------------------


def test_the_owner_connects_a_system_maps_a_service_and_sends_a_failed_delivery_back(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    sign_in(client, Role.OWNER)
    settings = client.get(f"/locations/{demo_template.location_id}/settings")
    assert f'href="{_url(demo_template)}"' in settings.text

    added = client.post(_url(demo_template), data=CONNECTION_FORM)

    assert added.status_code == 200
    with unit_of_work(engine, write=False) as session:
        (connection,) = service.list_connections(session, actor=demo_template.actor).items
        stored = session.get_one(Connection, connection.id)
        assert SECRET not in stored.secret_sealed
        assert service.open_secret(session, stored) == SECRET
    assert (connection.connector, connection.name, connection.is_active) == ("zenoti", "Main Street", True)
    assert (connection.signature_header, connection.signature_encoding) == ("X-Zenoti-Signature", "hex")
    address = f"http://testserver/api/v1/webhooks/zenoti/{connection.id}"
    assert f"Saved: connected Main Street (zenoti). Give it this address: {address}" in added.text
    page = client.get(_url(demo_template))
    assert f"<code>{address}</code>" in page.text
    assert SECRET not in added.text
    assert SECRET not in page.text

    glow = _a_service(engine, demo_template)
    mapped = client.post(
        _url(demo_template, f"/{connection.id}/mappings"),
        data={"external_id": " 55 ", "record": f"service:{glow.id}"},
    )

    assert mapped.status_code == 200
    assert f"Saved: their service 55 is {glow.name}." in mapped.text
    with unit_of_work(engine, write=False) as session:
        links = mappings.list_mappings(session, actor=demo_template.actor, connection_id=connection.id).items
    assert [(link.kind, link.external_id, link.record_id) for link in links] == [("service", "55", glow.id)]
    assert f"Their service 55 → {glow.name}" in mapped.text

    inbox_id = _failed_delivery(engine, connection.id, "service 56 is not mapped")
    failed = client.get(_url(demo_template, "?inbox=failed"))
    assert failed.status_code == 200
    assert "appointmentBooking.created</strong> · failed · 12 tries · received" in failed.text
    assert "service 56 is not mapped" in failed.text
    retry = _url(demo_template, f"/inbox/{inbox_id}/retry")
    assert f'action="{retry}?inbox=failed"' in failed.text

    sent = client.post(retry + "?inbox=failed")

    assert sent.status_code == 200
    assert "Sent back: the appointmentBooking.created delivery" in sent.text
    assert "None failed." in sent.text
    with unit_of_work(engine, write=False) as session:
        row = session.get_one(InboxEvent, inbox_id)
        assert (row.state, row.attempts) == ("received", 0)
    again = client.post(retry)
    assert again.status_code == 409
    assert "only a failed or skipped one is sent back" in again.text


def test_the_owner_stops_taking_a_connection_and_it_is_refused_after(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    connection_id = _connect(engine, demo_template)
    sign_in(client, Role.OWNER)
    page = client.get(_url(demo_template))
    stop = _url(demo_template, f"/{connection_id}/deactivate")
    assert f'action="{stop}"' in page.text

    stopped = client.post(stop)

    assert stopped.status_code == 200
    assert "Saved: Back office (mindbody) is no longer taken" in stopped.text
    assert f'action="{stop}"' not in stopped.text
    with unit_of_work(engine, write=False) as session:
        assert session.get_one(Connection, connection_id).is_active is False
    delivery = client.post(f"/api/v1/webhooks/mindbody/{connection_id}", json={}, headers={"Origin": ""})
    assert delivery.status_code == 404


def test_the_owner_sets_and_stops_polling_and_a_bad_setting_saves_nothing(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    connection_id = _connect(engine, demo_template)
    sign_in(client, Role.OWNER)
    polling = _url(demo_template, f"/{connection_id}/polling")
    assert f'action="{polling}"' in client.get(_url(demo_template)).text

    for change, problem in (
        ({"poll_url": "ftp://api.example.org"}, "API address: an http or https URL"),
        ({"poll_account": "a b"}, "Account: use letters, digits, ., - and _ only"),
        ({"poll_key": "short"}, "API key: String should have at least 8 characters"),
    ):
        refused = client.post(polling, data={**POLLING_FORM, **change})
        flash = refused.text[refused.text.find("flash") : refused.text.find("flash") + 300]
        assert (refused.status_code, problem in refused.text) == (422, True), flash
        assert POLLING_FORM["poll_key"] not in refused.text
    with unit_of_work(engine, write=False) as session:
        assert session.get_one(Connection, connection_id).poll_base_url is None

    saved = client.post(polling, data=POLLING_FORM)
    assert saved.status_code == 200
    assert "Saved: Back office (mindbody) is polled at https://api.example.org/v6" in saved.text
    assert POLLING_FORM["poll_key"] not in saved.text
    with unit_of_work(engine, write=False) as session:
        polled = session.get_one(Connection, connection_id)
        assert (polled.poll_base_url, polled.poll_account) == ("https://api.example.org/v6", "-99")
        assert polled.poll_key_sealed is not None
        assert POLLING_FORM["poll_key"] not in polled.poll_key_sealed

    stopped = client.post(_url(demo_template, f"/{connection_id}/polling/stop"))
    assert stopped.status_code == 200
    assert "is no longer polled" in stopped.text
    with unit_of_work(engine, write=False) as session:
        assert session.get_one(Connection, connection_id).poll_base_url is None


def test_every_control_of_the_tab_is_labelled(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    _failed_delivery(engine, _connect(engine, demo_template), "provider 7 is not mapped")
    sign_in(client, Role.OWNER)
    controls = _Controls()
    controls.feed(client.get(_url(demo_template)).text)
    assert controls.controls >= 6
    assert controls.unlabelled == []


# --- who may -------------------------------------------------------------------------------------------


def test_a_manager_reads_the_tab_and_is_offered_no_change(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    urls = _post_urls(engine, demo_template)
    before = _written(engine)
    sign_in(client, Role.MANAGER)
    page = client.get(_url(demo_template))
    assert page.status_code == 200
    assert "Back office" in page.text
    assert "provider 7 is not mapped" in page.text
    assert 'method="post" action="/locations' not in page.text
    for url in urls:
        assert (url, client.post(url, data=CONNECTION_FORM).status_code) == (url, 403)
    assert _written(engine) == before


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.PROVIDER])
def test_other_roles_are_refused_the_tab_and_every_change(
    client: TestClient, engine: Engine, demo_template: Demo, role: Role
) -> None:
    urls = _post_urls(engine, demo_template)
    before = _written(engine)
    sign_in(client, role)
    assert client.get(_url(demo_template)).status_code == 403
    assert client.get(_url(demo_template, "?inbox=failed")).status_code == 403
    for url in urls:
        body = {**CONNECTION_FORM, "external_id": "55", "record": f"service:{uuid.uuid4()}"}
        assert (url, client.post(url, data=body).status_code) == (url, 403)
    assert _written(engine) == before


@pytest.mark.parametrize("origin", [{"Origin": "https://evil.example"}, {"Origin": ""}])
def test_a_post_from_another_site_or_without_an_origin_is_refused(
    client: TestClient, engine: Engine, demo_template: Demo, origin: dict[str, str]
) -> None:
    urls = _post_urls(engine, demo_template)
    before = _written(engine)
    sign_in(client, Role.OWNER)
    for url in urls:
        response = client.post(url, data=CONNECTION_FORM, headers=origin)
        assert (url, response.status_code) == (url, 403)
    assert _written(engine) == before


# --- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"secret": ""}, "Shared secret: String should have at least 8 characters"),
        ({"secret": "short"}, "Shared secret: String should have at least 8 characters"),
        ({"secret": " padded-secret "}, "Shared secret: printable text without surrounding spaces"),
        ({"secret": "x" * 501}, "Shared secret: String should have at most 500 characters"),
        ({"connector": "salesforce"}, "System: Input should be &#39;mindbody&#39;, &#39;zenoti&#39;"),
        ({"connector": ""}, "System: Input should be"),
        ({"connector": "standard"}, "a Standard Webhooks secret starts with whsec_"),
        ({"connector": "standard", "secret": "whsec_not base64!"}, "whsec_ followed by base64"),
        ({"name": "x" * 201}, "Name: String should have at most 200 characters"),
        ({"signature_header": "X Sig"}, "Signature header: use letters, digits and - only"),
        ({"signature_header": "X" * 65}, "Signature header: String should have at most 64"),
        (
            {"signature_encoding": "utf-8"},
            "Signature encoding: Input should be &#39;base64&#39; or &#39;hex&#39;",
        ),
        ({"secret": "secret\x00value"}, "invalid input: secret"),
        ({"name": "Main\x00Street"}, "invalid input: name"),
        ({"connector": "zenoti\x00"}, "invalid input: connector"),
    ],
)
def test_a_bad_connection_is_refused_with_the_reason_its_secret_unshown_and_nothing_saved(
    client: TestClient, demo_template: Demo, change: dict[str, str], problem: str, nothing_written: None
) -> None:
    sign_in(client, Role.OWNER)
    page = client.post(_url(demo_template), data={**CONNECTION_FORM, **change})
    assert page.status_code == 422
    assert problem in page.text
    assert 'class="flash error"' in page.text
    secret = change.get("secret", SECRET)
    assert len(secret) < 8 or secret not in page.text


def _stranger_service(engine: Engine) -> ServiceRead:
    with unit_of_work(engine) as session:
        other = security.create_organization(session, slug=f"o-{uuid.uuid4().hex[:12]}", name="Other Clinic")
        return make_service(session, actor=system_actor(other.id, "web-tests"))


def test_a_bad_mapping_is_refused_with_the_reason_and_nothing_saved(
    client: TestClient, engine: Engine, demo_template: Demo
) -> None:
    connection_id = _connect(engine, demo_template)
    stranger = _stranger_service(engine)
    mine = _a_service(engine, demo_template)
    before = _written(engine)
    sign_in(client, Role.OWNER)
    url = _url(demo_template, f"/{connection_id}/mappings")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"external_id": "55", "record": f"service:{stranger.id}"}, 404, "service not found"),
        ({"external_id": "55", "record": f"location:{mine.id}"}, 404, "location not found"),
        ({"external_id": "55", "record": f"room:{mine.id}"}, 422, "Our record: Input should be"),
        (
            {"external_id": "55", "record": "service:not-an-id"},
            422,
            "Our record: Input should be a valid UUID",
        ),
        ({"external_id": "55", "record": ""}, 422, "Our record: choose one of our locations"),
        ({"external_id": "", "record": f"service:{mine.id}"}, 422, "Their id: String should have at least 1"),
        (
            {"external_id": "x" * 201, "record": f"service:{mine.id}"},
            422,
            "Their id: String should have at most 200",
        ),
        ({"external_id": "5\x005", "record": f"service:{mine.id}"}, 422, "invalid input: external_id"),
        ({"external_id": "55", "record": f"service:{mine.id}\x00"}, 422, "invalid input: record"),
    ]
    for form, status, problem in cases:
        page = client.post(url, data=form)
        assert (form["record"], page.status_code) == (form["record"], status)
        assert problem in page.text, page.text[-2000:]
    unknown = client.post(
        _url(demo_template, f"/{uuid.uuid4()}/mappings"),
        data={"external_id": "55", "record": f"service:{mine.id}"},
    )
    assert unknown.status_code == 404
    assert "connection not found" in unknown.text
    assert _written(engine) == before


def test_an_unknown_or_other_organizations_delivery_or_connection_is_not_found(
    client: TestClient, engine: Engine, demo_template: Demo, nothing_written: None
) -> None:
    sign_in(client, Role.OWNER)
    for suffix in (f"/inbox/{uuid.uuid4()}/retry", f"/{uuid.uuid4()}/deactivate", "/inbox/not-an-id/retry"):
        response = client.post(_url(demo_template, suffix))
        assert response.status_code in (404, 422)
    assert client.get(_url(demo_template, "?inbox=everything")).status_code == 422


MALFORMED: list[dict[str, Any]] = [
    {},
    dict.fromkeys((*CONNECTION_FORM, *POLLING_FORM, "external_id", "record"), ""),
    dict.fromkeys((*CONNECTION_FORM, *POLLING_FORM, "external_id", "record"), "\x00"),
    dict.fromkeys((*CONNECTION_FORM, *POLLING_FORM, "external_id", "record"), "9" * 10000),
    {**CONNECTION_FORM, "secret": "tab\tin-a-secret", "record": "provider:" + "9" * 10000},
]


@pytest.mark.parametrize("body", range(len(MALFORMED)))
def test_no_malformed_body_to_any_route_of_the_tab_is_a_server_error(
    client: TestClient, engine: Engine, demo_template: Demo, body: int
) -> None:
    urls = _post_urls(engine, demo_template)
    sign_in(client, Role.OWNER)
    for url in urls:
        if url.endswith(("/deactivate", "/retry", "/polling/stop")):
            continue  # they take no input
        response = client.post(url, data=MALFORMED[body])
        assert (url, response.status_code) == (url, 422), response.text[-500:]
        assert "text/html" in response.headers["content-type"]
