"""The pages a client reaches from a message: a waitlist offer to take, and unsubscribing.

They need no sign-in: the link's token is the credential (`engagement.links`: an id and a keyed
signature). The offer's page names no one, since whoever holds the link sees it. Unsubscribing follows
RFC 8058: the page's button (or a mail provider's one-click POST) turns messages off; opening the link
alone, which mail scanners do, changes nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from medspa.api import SessionDep
from medspa.engagement import service as engagement
from medspa.security.permissions import public
from medspa.web.guards import PageRoute, SameOrigin, templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)
Token = Annotated[str, Path(max_length=200, pattern=r"^[0-9a-f]{32}\.[0-9a-f]{1,128}$")]

OUTCOMES = {
    "booked": "It is yours: the time is booked. A confirmation is on its way.",
    "already_booked": "You have booked this time already.",
    "gone": "Sorry, someone else took this time first. You are still on the waitlist.",
    "expired": "Sorry, this offer has lapsed. You are still on the waitlist.",
}


def _page(request: Request, status_code: int = 200, **context: object) -> Response:
    return templates.TemplateResponse(request, "client_link.html", context, status_code=status_code)


def _not_found(request: Request) -> Response:
    return _page(request, 404, title="Link not recognised", message="This link is not valid.")


@router.get("/offers/{token}")
@public
def offer_page(token: Token, request: Request, session: SessionDep) -> Response:
    view = engagement.offer_view(session, token=token)
    if view is None:
        return _not_found(request)
    message = None if view.state == "open" else OUTCOMES.get(view.state, OUTCOMES["gone"])
    return _page(request, title="A time for you", offer=view, token=token, message=message)


@router.post("/offers/{token}", dependencies=SameOrigin)
@public
def accept_offer(token: Token, request: Request, session: SessionDep) -> Response:
    acceptance = engagement.accept_offer(session, token=token)
    if acceptance.outcome == "not_found":
        return _not_found(request)
    status = 200 if acceptance.outcome in ("booked", "already_booked") else 409
    return _page(request, status, title="Your offer", message=OUTCOMES[acceptance.outcome])


@router.get("/unsubscribe/{token}")
@public
def unsubscribe_page(token: Token, request: Request) -> Response:
    return _page(request, title="Stop these messages", unsubscribe=token)


@router.post("/unsubscribe/{token}")
@public
def unsubscribe(token: Token, request: Request, session: SessionDep) -> Response:
    stopped = engagement.unsubscribe(session, token=token)
    if stopped is None:
        return _not_found(request)
    return _page(request, title="Unsubscribed", message=f"Done: no more {stopped} from us.")
