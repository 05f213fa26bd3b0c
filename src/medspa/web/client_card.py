"""Finding a client and their card: the search box on every page (`/clients?q=`, any part of the name,
e-mail or phone, best match first, as you type) and the client card (`/clients/{id}`): contact and
consents, preferences and notes, visit history with services, providers and amounts, upcoming bookings,
no-shows, the served no-show and lapse risk in plain words with the next best action, and the client's
membership with its served membership lapse risk (`web.client_membership` starts and ends one). And the
clients drifting away (`/clients/drifting`), ranked by lapse risk and what their visits came to."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from medspa.api import SessionDep
from medspa.catalog import service as catalog
from medspa.clients import merge
from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate, ClientRead
from medspa.kit import audit_trail, clock, tz
from medspa.kit.errors import MedspaError, NotFoundError
from medspa.memberships import service as memberships
from medspa.memberships.schemas import EndReason
from medspa.resources import service as resources
from medspa.retention import service as retention
from medspa.retention.schemas import RetentionScoreRead
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, Status
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.forms import LIST_LIMIT, form_uuid
from medspa.web.guards import PageActor, PageRoute, SameOrigin, readable, templates

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SEARCH_MAX_LENGTH: Final = 200
MATCHES: Final = 25
HISTORY: Final = 500
# Clients drifting away: at least this lapse risk; the most at stake of the riskiest read, shown.
DRIFTING: Final = 0.5
DRIFT_READ: Final = 500
DRIFT_SHOWN: Final = 100
UPCOMING: Final = (Status.HELD, Status.BOOKED, Status.CONFIRMED, Status.CHECKED_IN, Status.IN_SERVICE)
# The served next best actions, as staff would say them.
ACTIONS: Final = {
    "none": "Nothing to do: the client is expected back on their own.",
    "normal_reminder": "A normal reminder to book when the time comes.",
    "personal_rebooking": "A personal note to rebook.",
    "staff_outreach": "A call from the staff: the client may be drifting away.",
    "win_back_offer": "A win-back offer: the client looks lost.",
}


@router.get("/clients")
@permits("clients", "read")
def search_page(request: Request, session: SessionDep, actor: PageActor, q: str = "") -> Response:
    """Clients found by what was typed; the results alone for the box's as-you-type requests."""
    query = q.strip()[:SEARCH_MAX_LENGTH]
    matches = clients.search_clients(session, actor=actor, query=query, limit=MATCHES).items if query else []
    context = {"actor": actor, "query": query, "matches": matches, **_frame(session, actor)}
    name = "_client_results.html" if request.headers.get("hx-target") == "client-results" else "clients.html"
    return templates.TemplateResponse(request, name, context)


@dataclass(frozen=True)
class Visit:
    appointment: AppointmentRead
    local: str
    day: str  # the local date, ISO 8601
    service: str
    provider: str
    location: str


@dataclass(frozen=True)
class Drifting:
    client_id: uuid.UUID
    name: str
    score: RetentionScoreRead
    spent_cents: int

    @property
    def at_stake_cents(self) -> int:
        """What the client's visits came to, weighed by the chance they do not come back."""
        return round(self.spent_cents * (self.score.lapse_risk or 0.0))


@router.get("/clients/drifting")
@permits("retention", "read")
def drifting_away(request: Request, session: SessionDep, actor: PageActor) -> Response:
    """Clients drifting away: lapse risk 0.5 or more from the served return model, ranked by what their
    visits came to times that risk, with their next best action."""
    scores = retention.clients_drifting_away(
        session, actor=actor, minimum_lapse_risk=DRIFTING, limit=DRIFT_READ
    )
    ids = {s.client_id for s in scores}
    names = clients.client_names(session, actor=actor, client_ids=ids)
    spent = (
        scheduling.spending_by_client(session, actor=actor, client_ids=ids)
        if actor.can("appointments", "read")
        else {}
    )
    ranked = sorted(
        (
            Drifting(s.client_id, names.get(s.client_id, "(unknown client)"), s, spent.get(s.client_id, 0))
            for s in scores
        ),
        key=lambda d: (-d.at_stake_cents, -(d.score.lapse_risk or 0.0), d.name),
    )[:DRIFT_SHOWN]
    context = {
        "actor": actor,
        "drifting": ranked,
        "actions": ACTIONS,
        "threshold": DRIFTING,
        **_frame(session, actor, "drifting"),
    }
    return templates.TemplateResponse(request, "drifting.html", context)


@router.get("/clients/{client_id}")
@permits("clients", "read")
def clientrender_card(
    request: Request, session: SessionDep, actor: PageActor, client_id: uuid.UUID
) -> Response:
    return render_card(request, session, actor, client_id)


@router.post("/clients/{client_id}/merge", dependencies=SameOrigin)
@permits("clients", "merge")
def merge_into(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    client_id: uuid.UUID,
    duplicate_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Merge a second record of this client into this one (managers, owners; `clients.merge`): the card
    again, saying what moved, or why nothing did."""
    second = form_uuid(duplicate_id.strip())
    if second is None:
        message = "choose the record to merge into this one"
        return render_card(request, session, actor, client_id, message=message, kind="error", status_code=422)
    try:
        with session.begin_nested():
            merge.merge_clients(session, actor=actor, keep_id=client_id, duplicate_id=second)
    except MedspaError as error:
        audit_trail.record_refusal(session, error)
        return render_card(
            request,
            session,
            actor,
            client_id,
            message=readable(error),
            kind="error",
            status_code=error.status_code,
        )
    message = "Merged: the other record's visits, waitlist entries and messages are on this card now."
    return render_card(request, session, actor, client_id, message=message)


def render_card(
    request: Request,
    session: Session,
    actor: Actor,
    client_id: uuid.UUID,
    *,
    message: str | None = None,
    kind: str = "ok",
    status_code: int = 200,
) -> Response:
    client = clients.get_client(session, actor=actor, client_id=client_id)
    visits = _visits(session, actor, client)
    now = clock.now()
    upcoming = [v for v in visits if v.appointment.status in UPCOMING and v.appointment.ends_at > now]
    history = [v for v in reversed(visits) if v not in upcoming]
    done = [v.appointment.price_cents for v in history if v.appointment.status is Status.COMPLETED]
    counts = Counter(v.appointment.status for v in history)
    finished = counts[Status.COMPLETED] + counts[Status.NO_SHOW]
    context = {
        "actor": actor,
        "client": client,
        "upcoming": upcoming,
        "history": history,
        "completed": counts[Status.COMPLETED],
        "no_shows": counts[Status.NO_SHOW],
        "cancelled": counts[Status.CANCELLED],
        "finished": finished,
        "spent_cents": sum(done),
        "retention": _retention(session, actor, client),
        "risk_words": {
            v.appointment.id: scheduling.risk_in_words(
                v.appointment, (counts[Status.COMPLETED], counts[Status.NO_SHOW])
            )
            for v in upcoming
        },
        "actions": ACTIONS,
        "second_records": _second_records(session, actor, client),
        **_membership(session, actor, client),
        "end_reasons": [(r.value, r.value.replace("_", " ")) for r in EndReason],
        "today": now.date().isoformat(),
        "message": message,
        "kind": kind,
        **_frame(session, actor),
    }
    return templates.TemplateResponse(request, "client.html", context, status_code=status_code)


def _second_records(session: Session, actor: Actor, client: ClientRead) -> list[ClientRead]:
    """Other active records that look like this client (same e-mail, phone, or name and birth date),
    offered to a manager to merge into this one."""
    if not actor.can("clients", "merge") or not client.is_active or client.merged_into_id is not None:
        return []
    try:
        details = ClientCreate(
            first_name=client.first_name,
            last_name=client.last_name,
            email=client.email,
            phone=client.phone,
            date_of_birth=client.date_of_birth,
        )
    except ValidationError:
        return []
    return [c for c in clients.find_duplicates(session, actor=actor, data=details) if c.id != client.id]


def _frame(session: Session, actor: Actor, page: str = "clients") -> dict[str, Any]:
    """What the top bar needs."""
    return {
        "locations": resources.list_locations(session, actor=actor, limit=LIST_LIMIT).items,
        "current_location_id": None,
        "current_page": page,
    }


def _visits(session: Session, actor: Actor, client: ClientRead) -> list[Visit]:
    """The client's appointments the actor may see, oldest first, with names as staff say them."""
    if not actor.can("appointments", "read"):
        return []
    appointments = scheduling.list_appointments(
        session, actor=actor, client_id=client.id, limit=HISTORY
    ).items
    services = {s.id: s.name for s in catalog.list_services(session, actor=actor, limit=LIST_LIMIT).items}
    locations = {
        loc.id: loc for loc in resources.list_locations(session, actor=actor, limit=LIST_LIMIT).items
    }
    providers = {
        p.id: p.name
        for p in resources.list_providers(session, actor=actor, limit=LIST_LIMIT, include_inactive=True).items
    }
    out = []
    for a in appointments:
        location = locations.get(a.location_id)
        zone = location.time_zone if location else "UTC"
        out.append(
            Visit(
                appointment=a,
                local=tz.local_label(a.starts_at, zone),
                day=tz.to_local(a.starts_at, zone).date().isoformat(),
                service=services.get(a.service_id, "(a service no longer offered)"),
                provider=providers.get(a.provider_id, "(a provider no longer here)"),
                location=location.name if location else "",
            )
        )
    return out


def _membership(session: Session, actor: Actor, client: ClientRead) -> dict[str, Any]:
    """The client's memberships (the active one apart) and its served lapse risk, or why there is none."""
    if not actor.can("memberships", "read"):
        return {
            "membership": None,
            "past_memberships": [],
            "membership_lapse": None,
            "no_lapse_because": None,
        }
    held = memberships.client_memberships(session, actor=actor, client_id=client.id)
    active = next((m for m in held if m.ended_on is None), None)
    lapse = why = None
    if active is not None and actor.can("retention", "read"):
        lapse = retention.membership_lapse(session, actor=actor, client_id=client.id)
        if lapse is not None and lapse.membership_id != active.id:
            lapse = None  # scored for a membership since ended and replaced: stale until the next refresh
        if lapse is None:
            why = retention.why_no_membership_lapse(session, actor=actor)
        elif lapse.lapse_risk is None:
            why = lapse.reason
    return {
        "membership": active,
        "past_memberships": [m for m in held if m is not active],
        "membership_lapse": lapse,
        "no_lapse_because": why,
    }


def _retention(session: Session, actor: Actor, client: ClientRead) -> RetentionScoreRead | None:
    if not actor.can("retention", "read"):
        return None
    try:
        return retention.get_retention_score(session, actor=actor, client_id=client.id)
    except NotFoundError:
        return None
