"""A client's membership from their card: the desk (front desk, managers, owners) starts one or records
its end. Each answer is the card again, with what was done or why nothing was: 422 with the problem for
bad input, the service's status (404, 409) with its message for a refusal; nothing is written then."""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from medspa.api import SessionDep
from medspa.kit import audit_trail
from medspa.kit.errors import MedspaError, NotFoundError
from medspa.memberships import service as memberships
from medspa.memberships.schemas import MembershipEnd, MembershipStart
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.client_card import render_card
from medspa.web.forms import form_uuid
from medspa.web.guards import PageActor, PageRoute, SameOrigin, readable

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _cents(dollars: str) -> int | None:
    """A price typed in dollars ("149", "149.50") as cents; None when it is not one."""
    try:
        amount = Decimal(dollars.strip().removeprefix("$").replace(",", ""))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        return None
    return int(amount * 100)


def _problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
        for e in error.errors()
    )


def _not_done(
    request: Request,
    session: Session,
    actor: Actor,
    client_id: uuid.UUID,
    problem: str | MedspaError,
    said: str,
) -> Response:
    """The card again with why nothing was done: 422 for a problem with the input, the service's status
    for its refusal (noted in the audit trail when it is a denial)."""
    if isinstance(problem, MedspaError):
        audit_trail.record_refusal(session, problem)
        message, status = f"{said}: {readable(problem)}.", problem.status_code
    else:
        message, status = problem, 422
    return render_card(request, session, actor, client_id, message=message, kind="error", status_code=status)


@router.post("/clients/{client_id}/memberships", dependencies=SameOrigin)
@permits("memberships", "manage")
def start_membership(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    client_id: uuid.UUID,
    plan: Annotated[str, Form(max_length=400)] = "",
    monthly_price: Annotated[str, Form(max_length=32)] = "",
    started_on: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Start a membership for the client (plan, monthly price in dollars, start date)."""
    cents = _cents(monthly_price)
    said = "No membership started"
    if cents is None:
        problem = "give the monthly price in dollars, e.g. 149 or 149.50"
        return _not_done(request, session, actor, client_id, problem, said)
    try:
        data = MembershipStart.model_validate(
            {"plan": plan.strip(), "monthly_price_cents": cents, "started_on": started_on}
        )
    except ValidationError as error:
        return _not_done(request, session, actor, client_id, _problems(error), said)
    try:
        with session.begin_nested():
            started = memberships.start_membership(session, actor=actor, client_id=client_id, data=data)
    except MedspaError as error:
        return _not_done(request, session, actor, client_id, error, said)
    message = f"Membership started: {started.plan} since {started.started_on.isoformat()}."
    return render_card(request, session, actor, client_id, message=message)


@router.post("/clients/{client_id}/memberships/end", dependencies=SameOrigin)
@permits("memberships", "manage")
def end_membership(
    request: Request,
    session: SessionDep,
    actor: PageActor,
    client_id: uuid.UUID,
    membership_id: Annotated[str, Form(max_length=64)] = "",
    ended_on: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Record the end of the client's membership (date and reason)."""
    membership = form_uuid(membership_id.strip())
    said = "The membership was not ended"
    if membership is None:
        return _not_done(request, session, actor, client_id, "choose the membership to end", said)
    try:
        data = MembershipEnd.model_validate({"ended_on": ended_on, "reason": reason})
    except ValidationError as error:
        return _not_done(request, session, actor, client_id, _problems(error), said)
    try:
        with session.begin_nested():
            found = memberships.get_membership(session, actor=actor, membership_id=membership)
            if found.client_id != client_id:  # another client's membership: not this card's to end
                raise NotFoundError("membership of this client", membership)
            ended = memberships.end_membership(session, actor=actor, membership_id=membership, data=data)
    except MedspaError as error:
        return _not_done(request, session, actor, client_id, error, said)
    message = f"Membership ended on {ended.ended_on.isoformat() if ended.ended_on else ''}."
    return render_card(request, session, actor, client_id, message=message)
