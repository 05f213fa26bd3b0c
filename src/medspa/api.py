"""What every API route shares: the unit of work, the acting actor, paging, and error rendering."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from medspa.kit import clock
from medspa.kit.db import WriterBusyError, is_transient_conflict, run_in_unit_of_work, unit_of_work
from medspa.kit.errors import (
    AuthenticationError,
    MedspaError,
    PermissionDeniedError,
    RateLimitedError,
    ValidationFailedError,
)
from medspa.kit.schemas import MAX_OFFSET
from medspa.security import service as security
from medspa.security.activity import Activity
from medspa.security.actors import Actor, require
from medspa.security.permissions import PUBLIC, permit_of_request

logger = logging.getLogger(__name__)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_COOKIE = "medspa_session"


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
    with unit_of_work(engine, write=request.method in WRITE_METHODS) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_actor(request: Request, session: SessionDep) -> Actor:
    """The actor of a bearer token or a signed-in browser session; 401 otherwise (deny by default)."""
    return authenticate(request, session)


def authenticate(request: Request, session: Session) -> Actor:
    """The request's actor (401 without valid credentials), allowed what the route declares (403)."""
    actor = _credentials(request, session)
    authorize(request, actor)
    return actor


def authorize(request: Request, actor: Actor) -> None:
    """PermissionDeniedError (403) unless the permission matrix lets the actor's role take what the
    request's route declares (`security.permissions.permits`). Deny by default: a route that declares
    nothing lets no one through."""
    permit = permit_of_request(request.scope.get("endpoint"), request.path_params)
    if permit is None:
        raise PermissionDeniedError(
            "this route declares no permission, so no one may use it",
            organization_id=actor.organization_id,
            actor=actor.label,
            permission="undeclared",
        )
    if permit != PUBLIC:
        require(actor, *permit)  # 403, recorded in the audit trail


def _credentials(request: Request, session: Session) -> Actor:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return security.authenticate_token(session, token=header[7:].strip(), activity=activity_of(request))
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        if request.method in WRITE_METHODS:  # a browser's session: no change from another site (CSRF)
            require_same_origin(request)
        return security.authenticate_session(session, secret=cookie, activity=activity_of(request))
    raise AuthenticationError("missing credentials: send 'Authorization: Bearer <token>'")


def activity_of(request: Request) -> Activity | None:
    """The serving process's record of session and token use (`security.activity`), if it keeps one."""
    found = getattr(request.app.state, "activity", None)
    return found if isinstance(found, Activity) else None


def require_same_origin(request: Request) -> None:
    """PermissionDeniedError (403) unless the request's `Origin`, or failing that its `Referer`, names
    the request's own host: what every change made with a browser's session cookie must show, from
    the pages and from the API alike. (Browsers send `Origin` on every form and fetch POST.)"""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or urlsplit(source).netloc != request.headers.get("host", ""):
        raise PermissionDeniedError("cross-site request refused: send it from this site's own pages")


ActorDep = Annotated[Actor, Depends(get_actor)]
T = TypeVar("T")


async def in_unit_of_work(
    request: Request,
    work: Callable[[Session, Actor], T],
    *,
    authenticate_with: Callable[[Request, Session], Actor] | None = None,
) -> T:
    """Authenticate, do `work` and commit in one unit of work, in a single hop to a worker thread.

    The booking path (holds, bookings, lifecycle steps, reschedules; from the API and from the pages,
    which pass their own `authenticate_with`) uses this instead of `SessionDep` and `ActorDep`: each sync
    dependency costs a thread hop of its own, and at a few hundred bookings a second those hops are a
    large share of the CPU. The rules are the same: one transaction, committed before the response,
    401 (or the page's sign-in) by default; a deadlock victim on PostgreSQL is run again from the start
    (`kit.db.run_in_unit_of_work`). (ADR 13: the unit of work never runs on the event loop.)"""
    engine = request.app.state.engine
    write = request.method in WRITE_METHODS

    who = authenticate_with or authenticate

    def job() -> T:
        return run_in_unit_of_work(engine, lambda session: work(session, who(request, session)), write=write)

    return await run_in_threadpool(job)


Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="records to skip")]


def _field_path(problem: Any) -> str:
    if problem.get("type") == "json_invalid":  # its location is a character offset, not a field
        return "body"
    parts = [str(p) for p in problem.get("loc", ()) if p not in ("body", "query", "path")]
    return _printable(".".join(parts) or "body")


def _printable(text: str) -> str:
    """`text` with any unpaired surrogate (from a bad payload's key) escaped, so it can be encoded."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as `{"error": code, "detail": message}`; never a 500 for bad input."""

    @app.exception_handler(MedspaError)
    def _domain_error(_request: Request, error: MedspaError) -> JSONResponse:
        body: dict[str, Any] = {"error": error.code, "detail": _printable(error.detail), **error.extra}
        if isinstance(error, ValidationFailedError):
            body["fields"] = [error.field]
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, AuthenticationError) else None
        if isinstance(error, RateLimitedError):
            headers = {"Retry-After": str(error.retry_after)}
        return JSONResponse(body, status_code=error.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        fields = [_field_path(p) for p in problems]
        detail = "; ".join(
            f"{field}: {_printable(p.get('msg', 'invalid'))}".replace("Value error, ", "")
            for field, p in zip(fields, problems, strict=True)
        )
        return JSONResponse(
            {"error": "validation_failed", "detail": detail, "fields": fields}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals: an unknown path or method, or a body that could not be read.
        if error.status_code == 400:
            body = {"error": "validation_failed", "detail": f"body: {error.detail}", "fields": ["body"]}
            return JSONResponse(body, status_code=422)
        code = HTTP_ERROR_CODES.get(error.status_code, "error")
        return JSONResponse(
            {"error": code, "detail": str(error.detail)}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(WriterBusyError)
    def _writer_busy(_request: Request, _error: WriterBusyError) -> JSONResponse:
        return JSONResponse(
            {"error": "database_busy", "detail": "the database is busy with another change; retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(DBAPIError)
    def _database_error(_request: Request, error: DBAPIError) -> JSONResponse:
        # The unit of work has rolled back by now: nothing of the request was stored.
        if is_transient_conflict(error):
            return JSONResponse(
                {
                    "error": "concurrent_change",
                    "detail": "a concurrent change got in the way; nothing was saved, retry",
                },
                status_code=409,
            )
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
