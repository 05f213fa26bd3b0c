"""What every page shares: the templates, the sign-in and CSRF guards, and errors rendered as HTML.

Deny by default: a page takes `PageActor`, which without a valid session cookie sends the browser to
/login (a 303, or `HX-Redirect: /login` with 401 for an HTMX request).

CSRF: the session cookie is HttpOnly and SameSite=Lax (a browser does not send it on a cross-site POST),
and every POST also depends on `SameOrigin`: it must carry an `Origin` header, or failing that a
`Referer`, whose host is the request's own `Host`; a POST with neither, or from another host, is
refused with 403 (`api.require_same_origin`, which the API applies too to a change made with the
session cookie). Browsers send `Origin` on every form and fetch POST, so the forms need no token.
Behind a proxy that rewrites `Host`, the proxy must pass the original one on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from sqlalchemy.orm import Session

from medspa.api import SESSION_COOKIE, SessionDep, activity_of, authorize, require_same_origin
from medspa.kit.db import WriterBusyError
from medspa.kit.errors import AuthenticationError, MedspaError
from medspa.security import service as security
from medspa.security.actors import Actor
from medspa.web.board import clock_label

WEB = Path(__file__).resolve().parent
# Defence in depth against injected markup: scripts only from this site, and no eval (htmx runs with
# allowEval off). Inline style attributes place the blocks on the board, so styles allow them.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_ID_IN_PARENTHESES = re.compile(r" \([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)")

# Autoescaping on for every template: client names and notes are user input.
_environment = Environment(loader=FileSystemLoader(WEB / "templates"), autoescape=True)
_environment.filters["hm"] = lambda value: clock_label(value.hour, value.minute)
templates = Jinja2Templates(env=_environment)


class SignInRequiredError(Exception):
    """No valid session: the page answers with the way to /login."""


class PageRoute(APIRoute):
    """A route whose errors are rendered as HTML (a page, or a fragment for HTMX) instead of JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def render_errors(request: Request) -> Response:
            response = await _answer(handler, request)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return render_errors


async def _answer(handler: Callable[[Request], Coroutine[Any, Any, Response]], request: Request) -> Response:
    try:
        return await handler(request)
    except SignInRequiredError:
        if is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)
    except MedspaError as error:
        return error_response(request, readable(error), error.status_code)
    except WriterBusyError:  # SQLite's writer stayed busy: nothing was saved, the page may retry
        message = "The database is busy with another change; try again in a moment."
        busy = error_response(request, message, 503)
        busy.headers["Retry-After"] = "5"
        return busy
    except RequestValidationError as error:
        fields = ", ".join(str(p.get("loc", ("?",))[-1]) for p in error.errors())
        return error_response(request, f"invalid input: {fields}", 422)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def readable(error: MedspaError) -> str:
    """The error's message for the front desk: names stay, the record ids beside them go."""
    return _ID_IN_PARENTHESES.sub("", error.detail)


def error_response(request: Request, message: str, status_code: int) -> Response:
    name = "_message.html" if is_htmx(request) else "error.html"
    context = {"message": message, "kind": "error", "status_code": status_code}
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def page_actor(request: Request, session: Session) -> Actor:
    """The signed-in staff member of a page request, allowed what the page route declares (403
    otherwise); SignInRequiredError (to /login) when no one is signed in."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise SignInRequiredError
    try:
        actor = security.authenticate_session(session, secret=secret, activity=activity_of(request))
    except AuthenticationError as error:
        raise SignInRequiredError from error
    authorize(request, actor)
    return actor


def _page_actor_dependency(request: Request, session: SessionDep) -> Actor:
    return page_actor(request, session)


PageActor = Annotated[Actor, Depends(_page_actor_dependency)]
SameOrigin = [Depends(require_same_origin)]
