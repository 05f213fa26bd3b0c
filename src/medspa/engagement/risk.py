"""High no-show risk in use: an extra reminder asking the client to confirm, and the front desk's call list.

A booking whose served P(no-show) is `HIGH_RISK` or more and that the client has not confirmed gets one
more message (`confirm_request`, by every channel the client allows) `CONFIRM_REQUEST_HOURS` before its
start (or at once when that has passed), asking them to reply C or call; it passes the gate with the
appointment messages. The call list is the day's unconfirmed bookings at that risk, the riskiest first,
for the desk to ring, with one-click "remind" (`remind_now`: the confirmation request again, now) and
"request deposit" (a task in the visit's history, `scheduling.request_deposit`: medspa takes no
payments, so the desk takes the deposit by phone or at the desk).
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, timedelta
from typing import Final

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from medspa.clients import service as clients
from medspa.engagement.models import Message
from medspa.engagement.planner import agent, planned, submit_messages
from medspa.engagement.schemas import CallListRead
from medspa.kit import clock, tz
from medspa.kit.db import unit_of_work
from medspa.kit.errors import ConflictError
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, Status
from medspa.security.actors import Actor, require

logger = logging.getLogger(__name__)

HIGH_RISK: Final = 0.3
CONFIRM_REQUEST_HOURS: Final = 48
# How far ahead the worker looks for risky bookings to ask (the request is due 48 h before).
LOOK_AHEAD: Final = timedelta(days=3)


def _risky(appointments: list[AppointmentRead], threshold: float) -> list[AppointmentRead]:
    return sorted(
        (
            a
            for a in appointments
            if a.status == Status.BOOKED
            and a.no_show_probability is not None
            and a.no_show_probability >= threshold
        ),
        key=lambda a: (-(a.no_show_probability or 0.0), a.starts_at, str(a.id)),
    )


def ask_risky_bookings_to_confirm(session: Session, organization_id: uuid.UUID) -> int:
    """Plan a confirmation request for each booked, unconfirmed visit in the next days whose P(no-show) is
    high (once per booking and start); how many were planned."""
    now = clock.now()
    actor = agent(organization_id)
    upcoming = scheduling.list_appointments(
        session, actor=actor, status=Status.BOOKED, starts_from=now, starts_before=now + LOOK_AHEAD, limit=500
    ).items
    plans = []
    for appointment in _risky(upcoming, HIGH_RISK):
        due_at = max(now, appointment.starts_at - timedelta(hours=CONFIRM_REQUEST_HOURS))
        plans += [
            planned(
                client_id=appointment.client_id,
                location_id=appointment.location_id,
                appointment_id=appointment.id,
                kind="confirm_request",
                channel=channel,
                dedup_key=f"confirm-request:{appointment.id}:{appointment.starts_at.isoformat()}:{channel}",
                context={
                    "starts_at": appointment.starts_at.isoformat(),
                    "no_show_probability": appointment.no_show_probability,
                },
                due_at=due_at,
                not_after=appointment.starts_at - timedelta(hours=2),
                is_reply=False,
            )
            for channel in ("email", "sms")
        ]
    if plans:
        submit_messages(
            session, organization_id, plans, trigger="schedule:high no-show risk", subject_id=None
        )
    return len(plans) // 2


def ask_everywhere(engine: Engine, organization_ids: list[uuid.UUID]) -> int:
    """`ask_risky_bookings_to_confirm` for each organization, each in a transaction of its own."""
    asked = 0
    for organization_id in organization_ids:
        try:
            with unit_of_work(engine) as session:
                asked += ask_risky_bookings_to_confirm(session, organization_id)
        except Exception:
            logger.exception("organization %s: asking risky bookings to confirm failed", organization_id)
    return asked


def remind_now(session: Session, *, actor: Actor, appointment_id: uuid.UUID) -> bool:
    """The front desk's one-click reminder from the call list: a confirmation request (`confirm_request`)
    by each channel the client allows, due now; consent, quiet hours and caps apply when it is sent, as for
    every message. Once per booking and start: False when it was asked for already. 409 for a visit that
    is not booked or confirmed, or has started."""
    require(actor, "appointments", "remind")
    appointment = scheduling.get_appointment(session, actor=actor, appointment_id=appointment_id)
    now = clock.now()
    if appointment.status not in (Status.BOOKED, Status.CONFIRMED) or appointment.starts_at <= now:
        raise ConflictError("a reminder is sent for a booked visit still to come")
    start = appointment.starts_at.isoformat()
    plans = [
        planned(
            client_id=appointment.client_id,
            location_id=appointment.location_id,
            appointment_id=appointment.id,
            kind="confirm_request",
            channel=channel,
            dedup_key=f"desk-reminder:{appointment.id}:{start}:{channel}",
            context={"starts_at": start, "no_show_probability": appointment.no_show_probability},
            due_at=now,
            not_after=appointment.starts_at,
            is_reply=False,
        )
        for channel in ("email", "sms")
    ]
    if desk_reminded(session, actor=actor, appointment=appointment):
        return False
    submit_messages(
        session,
        actor.organization_id,
        plans,
        trigger=f"front desk: reminder asked by {actor.label}"[:200],
        subject_id=appointment.id,
    )
    return True


def desk_reminded(session: Session, *, actor: Actor, appointment: AppointmentRead) -> bool:
    """Whether the desk asked for a reminder of the appointment at its current start."""
    prefix = f"desk-reminder:{appointment.id}:{appointment.starts_at.isoformat()}:"
    found = session.scalar(
        select(Message.id).where(
            Message.organization_id == actor.organization_id,
            Message.dedup_key.startswith(prefix, autoescape=True),
        )
    )
    return found is not None


def call_list(
    session: Session, *, actor: Actor, location_id: uuid.UUID, local_day: date | None = None
) -> list[CallListRead]:
    """The location's booked, unconfirmed visits of a local day (tomorrow there by default) whose
    P(no-show) is high, the riskiest first: whom the front desk should ring."""
    require(actor, "appointments", "read")
    location = resources.get_location(session, actor=actor, location_id=location_id)
    if local_day is None:
        local_day = tz.to_local(clock.now(), location.time_zone).date() + timedelta(days=1)
    start, end = tz.local_day_bounds(local_day, location.time_zone)
    booked = scheduling.list_appointments(
        session,
        actor=actor,
        location_id=location_id,
        status=Status.BOOKED,
        starts_from=start,
        starts_before=end,
        limit=500,
    ).items
    risky = _risky(booked, HIGH_RISK)
    people = {c: clients.get_client(session, actor=actor, client_id=c) for c in {a.client_id for a in risky}}
    deposits = scheduling.deposits_requested(session, actor=actor, appointment_ids=[a.id for a in risky])
    return [
        CallListRead(
            appointment_id=a.id,
            client_id=a.client_id,
            client_name=f"{people[a.client_id].first_name} {people[a.client_id].last_name}",
            phone=people[a.client_id].phone,
            starts_at=a.starts_at,
            local_start=tz.local_label(a.starts_at, location.time_zone),
            no_show_probability=a.no_show_probability or 0.0,
            reminded=desk_reminded(session, actor=actor, appointment=a),
            deposit_requested_at=deposits.get(a.id),
        )
        for a in risky
    ]
