"""The call list's one-click steps on the day page: "remind" (the confirmation request again, now, by the
channels the client allows: `engagement.remind_now`) and "request deposit" (a task for the desk in the
visit's history: `scheduling.request_deposit`; medspa takes no payments). Each answers the day again with
what was done, or why not."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from medspa.api import in_unit_of_work
from medspa.engagement import service as engagement
from medspa.kit import audit_trail
from medspa.kit.errors import MedspaError
from medspa.scheduling import service as scheduling
from medspa.security.actors import Actor
from medspa.security.permissions import permits
from medspa.web.day import board_of, day_fragment, summary
from medspa.web.forms import view_in_use
from medspa.web.guards import PageRoute, SameOrigin, page_actor, readable

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _remind(session: Session, actor: Actor, appointment_id: uuid.UUID) -> str:
    asked = engagement.remind_now(session, actor=actor, appointment_id=appointment_id)
    appointment = scheduling.get_appointment(session, actor=actor, appointment_id=appointment_id)
    what = summary(session, actor, appointment)
    return f"Reminder on its way to {what}." if asked else f"A reminder was asked for {what} already."


def _deposit(session: Session, actor: Actor, appointment_id: uuid.UUID) -> str:
    appointment = scheduling.request_deposit(session, actor=actor, appointment_id=appointment_id)
    return (
        f"Deposit to take noted for {summary(session, actor, appointment)}: call them or take it at the desk."
    )


STEPS: dict[str, Callable[[Session, Actor, uuid.UUID], str]] = {"remind": _remind, "deposit": _deposit}


def _step(request: Request, session: Session, actor: Actor, appointment_id: uuid.UUID, step: str) -> Response:
    appointment = scheduling.get_appointment(session, actor=actor, appointment_id=appointment_id)
    message, kind, status_code = "", "ok", 200
    try:
        with session.begin_nested():
            message = STEPS[step](session, actor, appointment.id)
    except MedspaError as error:
        audit_trail.record_refusal(session, error)
        message, kind, status_code = readable(error), "error", error.status_code
    board = board_of(session, actor, appointment, view_in_use(request))
    return day_fragment(request, board, message=message, kind=kind, status_code=status_code)


@router.post("/appointments/{appointment_id}/call/remind", dependencies=SameOrigin)
@permits("appointments", "remind")
async def remind(request: Request, appointment_id: uuid.UUID) -> Response:
    return await in_unit_of_work(
        request,
        lambda session, actor: _step(request, session, actor, appointment_id, "remind"),
        authenticate_with=page_actor,
    )


@router.post("/appointments/{appointment_id}/call/deposit", dependencies=SameOrigin)
@permits("appointments", "request_deposit")
async def request_deposit(request: Request, appointment_id: uuid.UUID) -> Response:
    return await in_unit_of_work(
        request,
        lambda session, actor: _step(request, session, actor, appointment_id, "deposit"),
        authenticate_with=page_actor,
    )
