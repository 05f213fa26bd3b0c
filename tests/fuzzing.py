"""Schemathesis over the whole OpenAPI document, through the ASGI app, as the owner of a seeded clinic.

`run_operation` calls one operation with generated requests (valid and invalid ones) and returns what
went wrong: server errors, responses that break the documented schema, undocumented status codes. The
clinic seeded for each operation (a location, provider, room, device, service, client, an appointment
and a proposal) gives the generator real ids to use, so requests reach past "not found".

`tests/test_schemathesis.py` runs it in the suite (seeded, bounded); run this module for a larger
exploratory fuzz that counts every response instead of stopping at the first failure:

    python -m tests.fuzzing --examples 300 [--database URL] [--operation 'POST /api/v1/clients']
"""

from __future__ import annotations

import argparse
import collections
import time as timer
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine, select
from starlette.routing import BaseRoute

from medspa.app import create_app
from medspa.kit import clock
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import upgrade
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import OptimizationJob
from medspa.scheduling.schemas import BookingRequest, WaitlistCreate
from medspa.security import service as security
from medspa.security.actors import Actor, Role, system_actor
from medspa.security.permissions import PUBLIC, allows, permit_of_request
from medspa.security.schemas import TokenCreate
from tests import factories

# A fixed "now" (a Tuesday) keeps runs repeatable; the seeded appointment is the next day.
NOW = datetime(2027, 3, 2, 14, 0, tzinfo=UTC)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The optimizer may search up to 120 s; generated requests get a short search.
MAX_SOLVE_SECONDS = 0.2


@dataclass
class Seeded:
    """The ids of a seeded clinic, by the parameter names that carry them, and the token the requests
    are sent with: of a role in that clinic, or of an owner of another organization (`foreign`)."""

    token: str
    ids: dict[str, str]
    role: Role = Role.OWNER
    foreign: bool = False


def seed_clinic(engine: Engine, role: Role = Role.OWNER, *, foreign: bool = False) -> Seeded:
    """A fresh organization with one of everything, an appointment, a waitlist entry and a proposal;
    the requests' token is of `role` there, or, `foreign`, of another organization's owner."""
    with unit_of_work(engine) as session:
        org = security.create_organization(session, slug=f"f-{uuid.uuid4().hex[:12]}", name="Fuzz Clinic")
        owner = system_actor(org.id, "fuzz")
        if foreign:
            other = security.create_organization(session, slug=f"x-{uuid.uuid4().hex[:12]}", name="Other")
            holder = system_actor(other.id, "fuzz")
        else:
            holder = owner
        days = 30 if role is Role.CONTRACTOR else None
        token = security.issue_token(
            session, actor=holder, data=TokenCreate(name="fuzz", role=role, expires_in_days=days)
        )
        spare = security.issue_token(session, actor=owner, data=TokenCreate(name="spare", role=Role.OWNER))
    with clock.frozen_at(NOW):
        with unit_of_work(engine) as session:
            ids = _seed_records(session, owner)
        # Optimizing is a job that commits its own short writes, outside the unit of work above.
        proposal = scheduling.optimize_day(
            engine,
            actor=owner,
            location_id=uuid.UUID(ids["location_id"]),
            service_date=(NOW + timedelta(days=1)).date(),
            time_limit_seconds=1,
        )
        with unit_of_work(engine, write=False) as session:
            job = session.scalars(
                select(OptimizationJob.id).where(OptimizationJob.proposal_id == proposal.id)
            ).one()
    ids["proposal_id"] = str(proposal.id)
    ids["job_id"] = str(job)
    ids["token_id"] = str(spare.id)
    return Seeded(token=token.token, ids=ids, role=role, foreign=foreign)


def _seed_records(session: Any, owner: Actor) -> dict[str, str]:
    location = factories.make_location(session, actor=owner)
    provider = factories.make_provider(session, actor=owner, location_id=location.id)
    room = factories.make_room(session, actor=owner, location_id=location.id)
    device = factories.make_device(session, actor=owner, location_id=location.id)
    service = factories.make_service(session, actor=owner)
    client = factories.make_client(session, actor=owner)
    tomorrow = NOW + timedelta(days=1)
    appointment = scheduling.book_appointment(
        session,
        actor=owner,
        data=BookingRequest(
            client_id=client.id,
            service_id=service.id,
            location_id=location.id,
            starts_at=tomorrow.replace(hour=15),
        ),
    )
    scheduling.add_to_waitlist(
        session,
        actor=owner,
        data=WaitlistCreate(
            client_id=client.id,
            service_id=service.id,
            location_id=location.id,
            service_date=tomorrow.date(),
            window_starts_at=time(12, 0),
            window_ends_at=time(16, 0),
        ),
    )
    return {
        "location_id": str(location.id),
        "provider_id": str(provider.id),
        "preferred_provider_id": str(provider.id),
        "room_id": str(room.id),
        "device_id": str(device.id),
        "service_id": str(service.id),
        "client_id": str(client.id),
        "appointment_id": str(appointment.id),
    }


def _with_real_ids(case: schemathesis.Case, seeded: Seeded, data: st.DataObject) -> None:
    """Put seeded ids in place of generated uuids (path, query, body), each with even odds."""
    for container in (case.path_parameters, case.query, case.body):
        if not isinstance(container, dict):
            continue
        for name, value in list(container.items()):
            if name in seeded.ids and _is_uuid(value) and data.draw(st.booleans(), label=name):
                container[name] = seeded.ids[name]
    query = case.query
    if isinstance(query, dict) and isinstance(query.get("time_limit_seconds"), int | float):
        query["time_limit_seconds"] = min(query["time_limit_seconds"], MAX_SOLVE_SECONDS)


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@dataclass
class Outcome:
    """What one operation's run saw: responses by status, and the failures (kind -> an example)."""

    requests: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    failures: dict[str, str] = field(default_factory=dict)
    server_errors: int = 0
    # Answers 2xx that the role's permissions refuse, and 2xx answers holding another organization's ids.
    beyond_permissions: int = 0
    foreign_rows: int = 0


def load_schema(engine: Engine) -> schemathesis.BaseSchema:
    # No worker runs here: optimization jobs the fuzzer requests stay queued, handed to nobody.
    app = create_app(engine, clock=clock.FixedClock(NOW), optimization_queue=lambda _job_id: None)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(schema: schemathesis.BaseSchema) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def flattened(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes, those of included routers among them (FastAPI keeps an included router whole)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from flattened(included.routes)
        else:
            yield route


def _endpoint(operation: Any) -> object | None:
    """The function that serves `operation` (its route declares what it takes)."""
    for route in flattened(operation.app.routes):
        if (
            isinstance(route, APIRoute)
            and route.path == operation.path
            and operation.method.upper() in route.methods
        ):
            return route.endpoint
    return None


def run_operation(
    engine: Engine,
    operation: Any,
    *,
    examples: int,
    keep_going: bool,
    seed: int = 12,
    role: Role = Role.OWNER,
    foreign: bool = False,
    seeded: Seeded | None = None,
) -> Outcome:
    """Call `operation` with up to `examples` generated requests in each mode (valid, invalid) and
    check every response, as `role` in the seeded clinic or (`foreign`) as another organization's
    owner: besides the documented answers, no 2xx that the role's permissions refuse, and no 2xx that
    holds an id of another organization. With `keep_going`, count every failure; else stop at the
    first. `seeded`: a clinic seeded already (for `role` and `foreign`), shared by several operations."""
    if seeded is None:
        seeded = seed_clinic(engine, role, foreign=foreign)
    role, foreign = seeded.role, seeded.foreign
    others = set(seeded.ids.values()) if foreign else set()
    endpoint = _endpoint(operation)
    outcome = Outcome()
    client = ASGIClient(operation.app)
    client.headers["Authorization"] = f"Bearer {seeded.token}"
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

        @hypothesis.settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
            verbosity=hypothesis.Verbosity.quiet,
        )
        @hypothesis.seed(seed)
        @hypothesis.given(case=operation.as_strategy(mode), data=st.data())
        def check(case: schemathesis.Case, data: st.DataObject) -> None:
            _with_real_ids(case, seeded, data)
            outcome.requests += 1
            try:
                response = case.call(session=client)
            except Exception as error:  # an exception out of the app is a server error too
                outcome.statuses[500] += 1
                outcome.server_errors += 1
                _fail(outcome, f"exception {type(error).__name__}: {str(error)[:200]}", case, keep_going)
                return
            outcome.statuses[response.status_code] += 1
            if response.status_code >= 500:
                outcome.server_errors += 1
            if 200 <= response.status_code < 300:
                permit = permit_of_request(endpoint, case.path_parameters or {})
                if permit is not None and permit != PUBLIC and not allows(role, *permit):
                    outcome.beyond_permissions += 1
                    _fail(
                        outcome,
                        f"beyond {role.value}'s permissions ({response.status_code}): {permit}",
                        case,
                        keep_going,
                    )
                leaked = sorted(i for i in others if i in response.text)
                if leaked:
                    outcome.foreign_rows += 1
                    _fail(
                        outcome,
                        f"another organization's ids ({response.status_code}): {leaked[:3]}",
                        case,
                        keep_going,
                    )
            try:
                case.validate_response(response, checks=CHECKS)
            except FailureGroup as group:
                for failure in group.exceptions:
                    _fail(outcome, _describe(failure, response.status_code), case, keep_going)

        try:
            check()
        except _StopError:
            break
        except hypothesis.errors.Unsatisfiable:  # nothing to make invalid (no parameters, no body)
            continue
    return outcome


class _StopError(Exception):
    pass


def _fail(outcome: Outcome, description: str, case: schemathesis.Case, keep_going: bool) -> None:
    """Keep the first example of each kind of failure (its description up to the status)."""
    kind = description.split("):")[0] + ")"
    outcome.failures.setdefault(kind, f"{description}\n        {case.as_curl_command()}")
    if not keep_going:
        raise _StopError


def _describe(failure: Failure, status_code: int) -> str:
    return f"{failure.title} ({status_code}): {' '.join(failure.message.split())[:300]}"


@contextmanager
def _database(url: str | None) -> Iterator[Engine]:
    if url is None:
        path = Path("var") / f"fuzz-{uuid.uuid4().hex[:8]}.db"
        path.parent.mkdir(exist_ok=True)
        url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--examples", type=int, default=300, help="per operation and mode")
    parser.add_argument("--database", default=None, help="a database URL (default: a new SQLite file)")
    parser.add_argument("--operation", action="append", default=[], help="only these (e.g. 'GET /api/v1/x')")
    parser.add_argument("--seed", type=int, default=12)
    arguments = parser.parse_args()
    started = timer.monotonic()
    total, errors, kinds = 0, 0, collections.Counter[str]()
    with _database(arguments.database) as engine:
        for operation in operations(load_schema(engine)):
            if arguments.operation and operation.label not in arguments.operation:
                continue
            outcome = run_operation(
                engine, operation, examples=arguments.examples, keep_going=True, seed=arguments.seed
            )
            total += outcome.requests
            errors += outcome.server_errors
            statuses = " ".join(f"{s}x{n}" for s, n in sorted(outcome.statuses.items()))
            print(f"{operation.label}: {outcome.requests} requests ({statuses})", flush=True)
            for kind, curl in outcome.failures.items():
                kinds[kind] += 1
                print(f"    {kind}\n        {curl[:400]}", flush=True)
    print(
        f"{total} requests, {errors} server errors, {len(kinds)} kinds of failure, "
        f"{timer.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
