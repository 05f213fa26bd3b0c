"""The permission matrix: every route declares what it does, and every role gets exactly what the
matrix gives it, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from starlette.routing import Mount, Route

from medspa.api import ActorDep
from medspa.app import create_app
from medspa.kit.clock import ManualClock
from medspa.scheduling.routes import Action
from medspa.security.actors import Actor
from medspa.security.permissions import MATRIX, PUBLIC, Role, allows, declared_permit
from medspa.web.day import DONE
from tests.conftest import token_for
from tests.fuzzing import flattened

# The framework's own pages (the OpenAPI document and its viewer) are not ours to declare.
FRAMEWORK_PATHS = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
STATIC_PATHS = {"/static", "/api-docs-assets"}
# Signed-in nowhere: health, signing in and out; and what a client reaches from a message, where the
# link's signed token (an offer, unsubscribing) or the SMS provider's signature is the credential; and a
# connected system's webhooks, whose signature on the body is theirs.
PUBLIC_PATHS = {
    "/api/v1/health",
    "/login",
    "/login/code",
    "/logout",
    "/offers/{token}",
    "/unsubscribe/{token}",
    "/api/v1/sms/{organization}/replies",
    "/api/v1/webhooks/{connector}/{connection_id}",
}


@pytest.fixture
def app_routes(engine: Engine) -> list[APIRoute]:
    app = create_app(engine)
    routes = []
    for route in flattened(app.routes):
        if isinstance(route, APIRoute) and route.path not in FRAMEWORK_PATHS:
            routes.append(route)
        elif isinstance(route, Mount):
            assert route.path in STATIC_PATHS  # files anyone may fetch: styles, scripts, icons
        else:
            assert isinstance(route, Route | APIRoute)
            assert route.path in FRAMEWORK_PATHS
    assert len(routes) > 60
    return routes


def test_every_route_declares_what_it_does(app_routes: list[APIRoute]) -> None:
    missing = [f"{sorted(r.methods)} {r.path}" for r in app_routes if declared_permit(r.endpoint) is None]
    assert missing == []


def test_only_health_signing_in_and_out_and_a_clients_links_are_public(app_routes: list[APIRoute]) -> None:
    public = {r.path for r in app_routes if declared_permit(r.endpoint) == PUBLIC}
    assert public == PUBLIC_PATHS


def test_every_declared_action_is_in_the_matrix(app_routes: list[APIRoute]) -> None:
    for route in app_routes:
        permit = declared_permit(route.endpoint)
        assert permit is not None
        if permit == PUBLIC:
            continue
        resource, action = permit
        if action == "{action}":  # the lifecycle routes: one endpoint, an action per path value
            names = [a.value for a in Action] if route.path.startswith("/api/") else list(DONE)
            for name in names:
                assert (resource, name.replace("-", "_")) in MATRIX, (route.path, name)
        else:
            assert (resource, action) in MATRIX, route.path


def test_the_matrix_denies_what_it_does_not_name() -> None:
    assert not allows(Role.OWNER, "appointments", "fly")
    assert not allows(Role.PROVIDER, "optimizer", "run")
    assert not allows(Role.PROVIDER, "optimizer", "apply")
    assert not allows(Role.PROVIDER, "clients", "create")
    assert not allows(Role.MARKETING, "clients", "read_clinical")
    assert allows(Role.FRONT_DESK, "clients", "create")


# --- every API route, as every role --------------------------------------------------------------------

SOME_ID = "00000000-0000-4000-8000-000000000001"
START = "2026-12-10T15:00:00Z"
BOOKING = {"client_id": SOME_ID, "service_id": SOME_ID, "location_id": SOME_ID, "starts_at": START}
# Bodies for the routes that check their payload before anyone's permission (the booking path).
BODIES: dict[str, dict[str, Any]] = {
    "/api/v1/holds": BOOKING,
    "/api/v1/appointments": BOOKING,
    "/api/v1/appointments/{appointment_id}/cancel": {"reason": "test"},
    "/api/v1/appointments/{appointment_id}/correct": {"status": "completed", "reason": "test"},
    "/api/v1/appointments/{appointment_id}/reschedule": {"starts_at": START},
}


@pytest.fixture
def as_role(engine: Engine, owner: Actor, test_clock: ManualClock) -> Iterator[dict[Role, _Authorized]]:
    app = create_app(engine, clock=test_clock, optimization_queue=lambda _job_id: None)
    with TestClient(app) as client:
        yield {
            role: _Authorized(
                client, token_for(engine, owner, role, days=30 if role is Role.CONTRACTOR else None)
            )
            for role in Role
        }


def _days(role: Role) -> int | None:
    return 30 if role is Role.CONTRACTOR else None


class _Authorized:
    """A client that sends one role's token."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.client.request(method, url, headers=self.headers, **kwargs)


def _url(route: APIRoute) -> str:
    url = route.path
    for name in route.param_convertors:
        url = url.replace("{" + name + "}", "check-in" if name == "action" else SOME_ID)
    query = "?date=2026-12-10&location_id=" + SOME_ID + "&service_id=" + SOME_ID
    return url + query + "&from=2026-12-10&to=2026-12-11"


@pytest.mark.parametrize("role", list(Role))
def test_each_role_reaches_exactly_the_api_routes_the_matrix_gives_it(
    as_role: dict[Role, _Authorized], app_routes: list[APIRoute], role: Role
) -> None:
    wrong = []
    for route in app_routes:
        permit = declared_permit(route.endpoint)
        if permit == PUBLIC or not route.path.startswith("/api/"):
            continue
        assert permit is not None
        resource, action = permit
        action = "check_in" if action == "{action}" else action
        for method in route.methods:
            body = BODIES.get(route.path, {}) if method in {"POST", "PATCH"} else None
            response = as_role[role].request(method, _url(route), json=body)
            refused = response.status_code == 403
            if refused == allows(role, resource, action) or response.status_code >= 500:
                wrong.append(f"{method} {route.path}: {response.status_code} {response.text[:120]}")
    assert wrong == []


def test_a_route_without_a_declaration_lets_no_one_through(engine: Engine, owner: Actor) -> None:
    app = create_app(engine)

    @app.get("/api/v1/undeclared")
    def undeclared(actor: ActorDep) -> dict[str, str]:
        return {"who": actor.name}

    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {token_for(engine, owner)}"
        response = client.get("/api/v1/undeclared")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_an_unknown_id_of_any_kind_is_404_for_every_role_that_may_read_it(
    as_role: dict[Role, _Authorized],
) -> None:
    missing = str(uuid.uuid4())
    for path, permit in [
        (f"/api/v1/clients/{missing}", ("clients", "read")),
        (f"/api/v1/appointments/{missing}", ("appointments", "read")),
        (f"/api/v1/locations/{missing}", ("locations", "read")),
    ]:
        for role in Role:
            expected = 404 if allows(role, *permit) else 403
            assert as_role[role].request("GET", path).status_code == expected, (path, role)
