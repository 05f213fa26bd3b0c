"""The web pages: sign-in, the front-desk day and week views of a location, booking, the appointment
lifecycle and the day optimizer's proposals.

Server-rendered with Jinja2 and HTMX. Handlers parse, call service functions and render, one module per
page: `sign_in`, `day` (the day view and its lifecycle buttons), `week` (the week at a glance),
`booking` (client picker, slots, booking), `optimizer` (running the optimizer, a proposal's page),
`approvals` (the manager's queue of automated actions and client erasures), `client_card` (finding a
client, the client card), `client_membership` (starting and ending a membership from the card),
`messages`, `waitlist`, `client_links` (what a client reaches from a
message), `call_list` (remind, request a deposit), `settings` (a location's hours, closures, staff
schedules, rooms, devices and the service catalogue, for owners and managers), `connections` (the
settings' Integrations tab: connections to other systems, their mappings and deliveries). The sign-in and CSRF
guards live in `guards` (every page needs a signed-in user; every POST a same-host Origin), the
layout of the day in `board` (with the tracks, by provider, room or device, that the week shares),
the slot buttons in `slots`, a proposal's content in `proposals`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRouter
from fastapi.staticfiles import StaticFiles

from medspa.web import (
    approvals,
    booking,
    call_list,
    client_card,
    client_links,
    client_membership,
    connections,
    day,
    messages,
    optimizer,
    settings,
    sign_in,
    waitlist,
    week,
)
from medspa.web.guards import WEB

ROUTERS: tuple[APIRouter, ...] = (
    sign_in.router,
    day.router,
    week.router,
    booking.router,
    optimizer.router,
    approvals.router,
    client_links.router,
    waitlist.router,
    messages.router,
    client_card.router,
    client_membership.router,
    call_list.router,
    settings.router,
    connections.router,
)


def install_pages(app: FastAPI) -> None:
    """Serve the pages and their static files (`/static`: HTMX and the style sheet, no CDN)."""
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    for router in ROUTERS:
        app.include_router(router)
