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
from medspa.web.guards import PageActor, PageRoute, SameOrigin, templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)


# --- signing in and out -------------------------------------------------------------------------------


@router.get("/")
def home(session: SessionDep, actor: PageActor) -> Response:
    locations = resources.list_locations(session, actor=actor, limit=1).items
    if not locations:
        raise NotFoundError("location", "(this organization has none yet)")
    return RedirectResponse(f"/locations/{locations[0].id}/day", status_code=303)


@router.get("/login")
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
def login(
    request: Request,
    session: SessionDep,
    organization: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    address = request.client.host if request.client else "unknown"
    try:
        secret = security.sign_in(
            session, organization_slug=organization, email=email, password=password, address=address
        )
    except AuthenticationError as error:
        return _login_page(
            request, organization=organization, email=email, message=error.detail, status_code=401
        )
    except RateLimitedError as error:
        page = _login_page(
            request, organization=organization, email=email, message=error.detail, status_code=429
        )
        page.headers["Retry-After"] = str(error.retry_after)
        return page
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=security.SESSION_HOURS * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or load_settings().session_cookie_secure,
    )
    return response


def _login_page(
    request: Request, *, organization: str, email: str, message: str | None, status_code: int
) -> Response:
    context = {"organization": organization, "email": email, "message": message}
    return templates.TemplateResponse(request, "login.html", context, status_code=status_code)


@router.post("/logout", dependencies=SameOrigin)
def logout(request: Request, session: SessionDep) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        security.sign_out(session, secret=secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response
