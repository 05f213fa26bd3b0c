"""Controlled overbooking: a booking beside another of the same provider, allowed while the provider's
expected overflow that day stays within the location's cap.

The expected overflow of a provider's day is the minutes of provider time beyond capacity to expect from
the served no-show probabilities: for each overbooked visit and each booking it overlaps, the overlap
times P(both come) (`scheduling.plan_overbooking`). A manager sets the cap per location
(`overbooking_cap_minutes` in the engagement policy; 0, the default, allows none). Every overbooking
passes the agent gate as `scheduling.overbook` (tier 2: it runs while within the organization's daily
count, otherwise it waits for a manager), is booked on the provider's overbooking lane so that one
overbooked visit at most shares any instant, carries its explanation (shown on the day page and in the
API), and takes over the provider's time when the booking it stands beside is cancelled, missed or
moved (`scheduling.lanes`).
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.engagement.schemas import OverbookingRead
from medspa.engagement.settings import policy_for
from medspa.kit.errors import ConflictError, ValidationFailedError
from medspa.kit.ids import new_id
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import BookingRequest
from medspa.security import gate
from medspa.security.actors import Actor, require

KIND: Final = "scheduling.overbook"


def _plan(session: Session, actor: Actor, data: BookingRequest) -> tuple[str, float]:
    """The explanation an overbooking of `data` would carry and the expected overflow it adds, or the
    reason it is not allowed (ValidationFailedError, ConflictError)."""
    if data.provider_id is None:
        raise ValidationFailedError("provider_id", "an overbooking names the provider whose time it shares")
    actor.require_location(data.location_id)
    location = resources.get_location(session, actor=actor, location_id=data.location_id)
    cap = policy_for(session, actor.organization_id, location.id).overbooking_cap_minutes
    if cap <= 0:
        raise ConflictError(
            f"overbooking is off at {location.name}: a manager sets a cap on the expected overflow first"
        )
    provider = resources.get_provider(session, actor=actor, provider_id=data.provider_id)
    service = catalog.get_service(session, actor=actor, service_id=data.service_id)
    plan = scheduling.plan_overbooking(session, actor, data, provider, service.duration_minutes)
    total = plan.day_minutes + plan.added_minutes
    if total > cap:
        raise ConflictError(
            f"overbooking {provider.name} then would bring the expected overflow on "
            f"{plan.day:%a %b} {plan.day.day} to {total:.0f} min, over the cap of {cap} min "
            f"({plan.day_minutes:.0f} min already; this one adds {plan.added_minutes:.0f})"
        )
    return plan.explanation(cap), plan.added_minutes


def _book(session: Session, agent: Actor, payload: dict[str, Any]) -> str:
    data = BookingRequest.model_validate(payload["request"])
    explanation, _ = _plan(session, agent, data)  # again: the day may have changed while it waited
    appointment = scheduling.overbook_appointment(
        session,
        actor=agent,
        data=data,
        appointment_id=uuid.UUID(payload["appointment_id"]),
        explanation=explanation,
    )
    return f"booked appointment {appointment.id}: {explanation}"


gate.register(
    gate.Kind(
        name=KIND,
        tier=gate.Tier.WITHIN_THRESHOLDS,
        handler=_book,
        description="book a client beside a likely no-show, within the location's cap on expected overflow",
        daily_limit=10,
    )
)


def overbook(session: Session, *, actor: Actor, data: BookingRequest) -> OverbookingRead:
    """Ask to book `data` beside its provider's bookings. Refused at once (422/409, nothing written) when
    the policy does not allow it; otherwise submitted to the gate: booked now (`appointment` set) or
    waiting for a manager's approval (`action.state` is `queued`)."""
    require(actor, "appointments", "overbook")
    explanation, added = _plan(session, actor, data)
    appointment_id = new_id()
    action = gate.submit(
        session,
        agent=actor,
        action=KIND,
        trigger=f"request by {actor.label}",
        summary=explanation,
        payload={"request": data.model_dump(mode="json"), "appointment_id": str(appointment_id)},
        subject_id=appointment_id,
    )
    if action.state == "failed":
        # The handler's refusal, as "ErrorName: what" (the action's log keeps the whole).
        raise ConflictError((action.outcome or "").partition(": ")[2] or "the overbooking could not be made")
    appointment = None
    if action.state == "ran":
        appointment = scheduling.get_appointment(session, actor=actor, appointment_id=appointment_id)
    return OverbookingRead(
        action_id=action.id,
        state=action.state,
        why=action.why,
        expected_overflow_minutes=round(added, 1),
        appointment=appointment,
    )
