"""Signing in and out, and the home page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from medspa.api import SESSION_COOKIE, SessionDep, activity_of
from medspa.config import load_settings
from medspa.kit.errors import AuthenticationError, NotFoundError, RateLimitedError
from medspa.resources import service as resources
from medspa.security import service as security
from medspa.security.permissions import allowed_actions, permits, public
from medspa.web.guards import PageActor, PageRoute, SameOrigin, templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)
# The pending sign-in between the password and the code: for /login only, for PENDING_MINUTES.
PENDING_COOKIE = "medspa_pending_sign_in"


# --- signing in and out -------------------------------------------------------------------------------


@router.get("/")
@permits("locations", "read")
def home(request: Request, session: SessionDep, actor: PageActor) -> Response:
    """The day view of the first location; for a role without one (marketing), what the role may use."""
    if not actor.can("appointments", "read"):
        context = {"actor": actor, "locations": [], "actions": sorted(allowed_actions(actor.role))}
        return templates.TemplateResponse(request, "home.html", context)
    locations = resources.list_locations(session, actor=actor, limit=1).items
    if not locations:
        raise NotFoundError("location", "(this organization has none yet)")
    return RedirectResponse(f"/locations/{locations[0].id}/day", status_code=303)


@router.get("/login")
@public
def login_form(request: Request, session: SessionDep) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        try:
            security.authenticate_session(session, secret=secret, activity=activity_of(request))
            return RedirectResponse("/", status_code=303)
        except AuthenticationError:
            pass
    return _login_page(request, organization="demo", email="", message=None, status_code=200)


@router.post("/login", dependencies=SameOrigin)
@public
def login(
    request: Request,
    session: SessionDep,
    organization: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    address = request.client.host if request.client else "unknown"
    try:
        step = security.sign_in(
            session, organization_slug=organization, email=email, password=password, address=address
        )
    except AuthenticationError as error:
        return _login_page(
            request, organization=organization, email=email, message=error.detail, status_code=401
        )
    except RateLimitedError as error:
        return _throttled(
            _login_page(
                request, organization=organization, email=email, message=error.detail, status_code=429
            ),
            error,
        )
    if step.needs_code:
        response = RedirectResponse("/login/code", status_code=303)
        _set_cookie(request, response, PENDING_COOKIE, step.secret, security.PENDING_MINUTES * 60)
        return response
    return _signed_in(request, step.secret)


@router.get("/login/code")
@public
def code_form(request: Request) -> Response:
    """The second step of signing in, for a user with a second factor: the code from their app."""
    if not request.cookies.get(PENDING_COOKIE):
        return RedirectResponse("/login", status_code=303)
    return _code_page(request, message=None, status_code=200)


@router.post("/login/code", dependencies=SameOrigin)
@public
def confirm_code(request: Request, session: SessionDep, code: Annotated[str, Form()] = "") -> Response:
    """Exchange the pending sign-in (its cookie) and the code for a session. A wrong or used code shows
    the form again (401); an expired pending sign-in sends the browser back to the password."""
    pending = request.cookies.get(PENDING_COOKIE, "")
    address = request.client.host if request.client else "unknown"
    if not pending:
        return RedirectResponse("/login", status_code=303)
    try:
        secret = security.confirm_sign_in(session, pending=pending, code=code[:64], address=address)
    except AuthenticationError as error:
        return _code_page(request, message=error.detail, status_code=401)
    except RateLimitedError as error:
        return _throttled(_code_page(request, message=error.detail, status_code=429), error)
    response = _signed_in(request, secret)
    response.delete_cookie(PENDING_COOKIE, path="/login", httponly=True, samesite="lax")
    return response


def _signed_in(request: Request, secret: str) -> Response:
    response = RedirectResponse("/", status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, secret, security.SESSION_HOURS * 3600, path="/")
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int, path: str = "/login"
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or load_settings().session_cookie_secure,
    )


def _throttled(page: Response, error: RateLimitedError) -> Response:
    page.headers["Retry-After"] = str(error.retry_after)
    return page


def _code_page(request: Request, *, message: str | None, status_code: int) -> Response:
    return templates.TemplateResponse(
        request, "login_code.html", {"message": message}, status_code=status_code
    )


def _login_page(
    request: Request, *, organization: str, email: str, message: str | None, status_code: int
) -> Response:
    context = {"organization": organization, "email": email, "message": message}
    return templates.TemplateResponse(request, "login.html", context, status_code=status_code)


@router.post("/logout", dependencies=SameOrigin)
@public
def logout(request: Request, session: SessionDep) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        security.sign_out(session, secret=secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response
