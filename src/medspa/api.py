"""What every API route shares: the unit of work, the acting actor, paging, and error rendering."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import AuthenticationError, MedspaError, ValidationFailedError
from medspa.security import service as security
from medspa.security.actors import Actor

logger = logging.getLogger(__name__)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_COOKIE = "medspa_session"


INLINE_VARIABLE = "MEDSPA_INLINE_BOOKING"


class _SpanningWriters:
    """How many of this process's request units of work that may write are open while their steps run
    as separate hops from the event loop (the `SessionDep` style: the session is made in one hop, the
    route runs in another and the commit in a third). Such a transaction can hold row locks while the
    loop is free; a unit of work run on the loop itself must never wait for one of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    @contextmanager
    def open(self) -> Iterator[None]:
        with self._lock:
            self.count += 1
        try:
            yield
        finally:
            with self._lock:
                self.count -= 1


spanning_writers = _SpanningWriters()


class ClockMiddleware:
    """Runs every request with the application's clock in its context (see `kit.clock`); the threads a
    request hands its work to inherit it."""

    def __init__(self, app: ASGIApp, clock: clock.Clock) -> None:
        self.app, self.clock = app, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with clock.using(self.clock):
            await self.app(scope, receive, send)


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: committed before the response is sent, rolled back on error."""
    engine = request.app.state.engine
    write = request.method in WRITE_METHODS
    if not write:
        with unit_of_work(engine, write=False) as session:
            yield session
        return
    # Counted until after the commit: the transaction's locks are held until then.
    with spanning_writers.open(), unit_of_work(engine, write=True) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_actor(request: Request, session: SessionDep) -> Actor:
    """The actor of a bearer token or a signed-in browser session; 401 otherwise (deny by default)."""
    return authenticate(request, session)


def authenticate(request: Request, session: Session) -> Actor:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return security.authenticate_token(session, token=header[7:].strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return security.authenticate_session(session, secret=cookie)
    raise AuthenticationError("missing credentials: send 'Authorization: Bearer <token>'")


ActorDep = Annotated[Actor, Depends(get_actor)]
T = TypeVar("T")


async def in_unit_of_work(request: Request, work: Callable[[Session, Actor], T]) -> T:
    """Authenticate, do `work` and commit in one unit of work: on PostgreSQL on the event loop itself,
    elsewhere in a single hop to a worker thread.

    Routes on the booking path use this instead of `SessionDep` and `ActorDep`: each sync dependency
    costs its own thread hop, and at a few hundred bookings a second those hops are a large share of
    the CPU. The rules are the same: one transaction, committed before the response, 401 by default.

    On PostgreSQL the unit of work runs on the loop's thread (ADR 8): a process then does one booking at
    a time, as a synchronous worker would, with no thread hop and no contention for the interpreter
    lock. It blocks the loop for the few milliseconds a booking takes. It is done only while no
    `SessionDep` writer of this process is open (`spanning_writers`): such a transaction needs the loop
    to reach its commit, so waiting on one of its locks from the loop could never end. Those requests,
    SQLite (whose writer lock is held across hops) and `MEDSPA_INLINE_BOOKING=0` (for a database far
    away on the network, where each round trip would hold the loop longer) use the worker thread."""
    engine = request.app.state.engine
    write = request.method in WRITE_METHODS

    def job() -> T:
        with unit_of_work(engine, write=write) as session:
            return work(session, authenticate(request, session))

    if request.app.state.inline_booking and spanning_writers.count == 0:
        return job()
    return await run_in_threadpool(job)


def inline_booking_allowed(dialect: str) -> bool:
    """Whether `in_unit_of_work` may run on the event loop: PostgreSQL, unless turned off."""
    return dialect == "postgresql" and os.environ.get(INLINE_VARIABLE, "1") != "0"


Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, description="records to skip")]


def _field_path(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as `{"error": code, "detail": message}`; never a 500 for bad input."""

    @app.exception_handler(MedspaError)
    def _domain_error(_request: Request, error: MedspaError) -> JSONResponse:
        body: dict[str, Any] = {"error": error.code, "detail": error.detail, **error.extra}
        if isinstance(error, ValidationFailedError):
            body["fields"] = [error.field]
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, AuthenticationError) else None
        return JSONResponse(body, status_code=error.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        fields = [_field_path(tuple(p.get("loc", ()))) for p in problems]
        detail = "; ".join(
            f"{field}: {p.get('msg', 'invalid')}".replace("Value error, ", "")
            for field, p in zip(fields, problems, strict=True)
        )
        return JSONResponse(
            {"error": "validation_failed", "detail": detail, "fields": fields}, status_code=422
        )

    @app.exception_handler(DBAPIError)
    def _database_error(_request: Request, error: DBAPIError) -> JSONResponse:
        # The unit of work has rolled back by now: nothing of the request was stored.
        if error.connection_invalidated:
            return JSONResponse(
                {"error": "database_unavailable", "detail": "the database connection was lost; retry"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        logger.exception("database error", exc_info=error)
        return JSONResponse(
            {"error": "internal_error", "detail": "an unexpected database error; nothing was saved"},
            status_code=500,
        )
