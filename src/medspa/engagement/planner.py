"""From what happened to what to tell the client: the `engagement` consumer of the outbox.

Each appointment event plans its messages (rows of `messages`, sent later by `engagement.dispatch`):

- `appointment.booked`: a confirmation (a reply: sent at once, even in quiet hours) and reminders at the
  location's offsets before the start (72 h and 24 h by e-mail, 2 h by SMS by default), those still
  ahead;
- `appointment.rescheduled`: a notice of the new time and reminders for it (those of the old time are
  obsolete once the start moved); the old time is freed;
- `appointment.cancelled`: a cancellation notice; the time is freed;
- `appointment.no_show`: the rest of its time is freed;
- `appointment.completed`: the service's post-care instructions, when it has some, and its follow-up
  (`_plan_follow_up`): during a course of sessions a request to book the next one, otherwise the cadence.

Messages are planned for every channel; whether the client allows it is decided when each is sent, so
that a STOP takes effect for everything not yet sent. A freed time becomes a `FreedSlot` and is offered
to the waitlist (`engagement.offers`). The messages of one event pass the agent policy gate as one
action (`engagement.messages`, tier 1) whose handler writes them; each has a key unique in the
organization, so an event handled twice plans nothing twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceRead
from medspa.engagement import offers
from medspa.engagement.models import Message
from medspa.engagement.settings import policy_for
from medspa.kit import clock
from medspa.kit.db import insert_ignoring_conflict, unit_of_work
from medspa.kit.ids import new_id
from medspa.kit.outbox import Delivered
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import Status
from medspa.security import gate
from medspa.security.actors import Actor, Role

logger = logging.getLogger(__name__)

CONSUMER: Final = "engagement"
AGENT: Final = "engagement"
MESSAGES_ACTION: Final = "engagement.messages"
FOLLOW_UP_ACTION: Final = "engagement.follow_up"
# A follow-up held back (quiet hours, caps) is still worth sending this long after it was due.
FOLLOW_UP_WITHIN: Final = timedelta(days=14)
# A gap of more than this many intervals between two visits of a course ends it: the next visit starts a
# new course (a client back for another round after months away).
SERIES_BREAK_INTERVALS: Final = 3
# Post-care instructions held back (quiet hours) are still worth sending this long after the visit.
POST_CARE_WITHIN: Final = timedelta(days=2)
TOPICS: Final = frozenset(
    {
        "appointment.booked",
        "appointment.rescheduled",
        "appointment.cancelled",
        "appointment.no_show",
        "appointment.completed",
    }
)


def agent(organization_id: uuid.UUID) -> Actor:
    """The automated agent that plans, sends and offers on the clinic's behalf."""
    return Actor(organization_id=organization_id, kind="agent", actor_id=None, role=Role.OWNER, name=AGENT)


@dataclass(frozen=True)
class Planned:
    """A message to write: every column of `Message` the plan decides."""

    client_id: str
    location_id: str | None
    appointment_id: str | None
    offer_id: str | None
    kind: str
    channel: str
    purpose: str
    dedup_key: str
    context: dict[str, Any]
    due_at: str
    not_after: str | None
    is_reply: bool


def planned(
    *,
    client_id: uuid.UUID,
    location_id: uuid.UUID | None,
    kind: str,
    channel: str,
    dedup_key: str,
    context: dict[str, Any],
    due_at: datetime,
    not_after: datetime | None,
    is_reply: bool,
    appointment_id: uuid.UUID | None = None,
    offer_id: uuid.UUID | None = None,
    purpose: str = "appointment",
) -> Planned:
    return Planned(
        client_id=str(client_id),
        location_id=str(location_id) if location_id else None,
        appointment_id=str(appointment_id) if appointment_id else None,
        offer_id=str(offer_id) if offer_id else None,
        kind=kind,
        channel=channel,
        purpose=purpose,
        dedup_key=dedup_key[:200],
        context=context,
        due_at=due_at.isoformat(),
        not_after=not_after.isoformat() if not_after else None,
        is_reply=is_reply,
    )


def write_messages(session: Session, agent_actor: Actor, payload: dict[str, Any]) -> str:
    """The gate's handler for `engagement.messages`: write the planned messages (those whose key is
    new); says how many."""
    now = clock.now()
    written = 0
    for item in payload["messages"]:
        exists = session.scalar(
            select(Message.id).where(
                Message.organization_id == agent_actor.organization_id, Message.dedup_key == item["dedup_key"]
            )
        )
        if exists is not None:
            continue
        due_at = datetime.fromisoformat(item["due_at"])
        insert_ignoring_conflict(
            session,
            Message,
            {
                "id": new_id(),
                "organization_id": agent_actor.organization_id,
                "client_id": uuid.UUID(item["client_id"]),
                "location_id": uuid.UUID(item["location_id"]) if item["location_id"] else None,
                "appointment_id": uuid.UUID(item["appointment_id"]) if item["appointment_id"] else None,
                "offer_id": uuid.UUID(item["offer_id"]) if item["offer_id"] else None,
                "kind": item["kind"],
                "channel": item["channel"],
                "purpose": item["purpose"],
                "dedup_key": item["dedup_key"],
                "context": item["context"],
                "state": "queued",
                "due_at": due_at,
                "not_after": datetime.fromisoformat(item["not_after"]) if item["not_after"] else None,
                "is_reply": item["is_reply"],
                "attempts": 0,
                "next_attempt_at": due_at,
                "trigger": payload["trigger"][:200],
                "created_at": now,
            },
        )
        written += 1
    return f"{written} message(s) planned"


gate.register(
    gate.Kind(
        MESSAGES_ACTION,
        gate.Tier.RUNS,
        write_messages,
        "messages to a client about their appointment (confirmation, reminders, notices, post-care)",
    )
)
gate.register(
    gate.Kind(
        FOLLOW_UP_ACTION,
        gate.Tier.WITHIN_THRESHOLDS,
        write_messages,
        "a service's follow-up cadence: asking a client to book their next visit (marketing)",
        daily_limit=200,
    )
)


def submit_messages(
    session: Session,
    organization_id: uuid.UUID,
    messages: Sequence[Planned],
    *,
    trigger: str,
    subject_id: uuid.UUID | None,
    through_gate: bool = True,
    action: str = MESSAGES_ACTION,
) -> None:
    """Pass the planned messages through the agent policy gate (one action), unless every one of them
    was planned already (an event handled again). `through_gate=False` writes them at once: for the
    message of an action that passed the gate itself (a waitlist offer)."""
    if not messages:
        return
    keys = [m.dedup_key for m in messages]
    known = set(
        session.scalars(
            select(Message.dedup_key).where(
                Message.organization_id == organization_id, Message.dedup_key.in_(keys)
            )
        )
    )
    fresh = [m for m in messages if m.dedup_key not in known]
    if not fresh:
        return
    payload = {"messages": [asdict(m) for m in fresh], "trigger": trigger}
    if not through_gate:
        write_messages(session, agent(organization_id), payload)
        return
    kinds = sorted({f"{m.kind} by {m.channel}" for m in fresh})
    gate.submit(
        session,
        agent=agent(organization_id),
        action=action,
        trigger=trigger,
        summary=f"{len(fresh)} message(s): {', '.join(kinds)}",
        payload=payload,
        subject_id=subject_id,
    )


def _appointment_messages(
    event: Delivered,
    kind: str,
    channels: Sequence[str],
    *,
    is_reply: bool,
    due_at: datetime,
    not_after: datetime | None = None,
) -> list[Planned]:
    """One message of `kind` per channel about the event's appointment, of no use once it starts (or
    after `not_after`)."""
    payload = event.payload
    context = {"starts_at": payload["starts_at"], "event": event.topic}
    if "previous_starts_at" in payload:
        context["previous_starts_at"] = payload["previous_starts_at"]
    return [
        planned(
            client_id=uuid.UUID(payload["client_id"]),
            location_id=uuid.UUID(payload["location_id"]),
            appointment_id=event.aggregate_id,
            kind=kind,
            channel=channel,
            dedup_key=f"{event.id}:{kind}:{channel}",
            context=context,
            due_at=due_at,
            not_after=not_after or datetime.fromisoformat(payload["starts_at"]),
            is_reply=is_reply,
        )
        for channel in channels
    ]


def _reminders(session: Session, event: Delivered, now: datetime) -> list[Planned]:
    payload = event.payload
    location_id = uuid.UUID(payload["location_id"])
    policy = policy_for(session, event.organization_id, location_id)
    starts_at = datetime.fromisoformat(payload["starts_at"])
    plans = []
    for channel, offsets in (("email", policy.reminder_hours), ("sms", policy.sms_reminder_hours)):
        ordered = sorted(set(offsets), reverse=True)
        for index, hours in enumerate(ordered):
            due_at = starts_at - timedelta(hours=hours)
            if due_at <= now:
                continue
            # Of no use once the channel's next reminder is due (or the visit starts).
            next_hours = ordered[index + 1] if index + 1 < len(ordered) else 0
            plans.append(
                planned(
                    client_id=uuid.UUID(payload["client_id"]),
                    location_id=location_id,
                    appointment_id=event.aggregate_id,
                    kind="reminder",
                    channel=channel,
                    # Keyed by the start it reminds of: a move plans new ones, the old ones go obsolete.
                    dedup_key=f"reminder:{event.aggregate_id}:{payload['starts_at']}:{hours}h:{channel}",
                    context={"starts_at": payload["starts_at"], "hours": hours},
                    due_at=due_at,
                    not_after=starts_at - timedelta(hours=next_hours),
                    is_reply=False,
                )
            )
    return plans


def session_number(
    session: Session, event: Delivered, service: ServiceRead, sessions: int, interval_days: int
) -> int:
    """Which session of its course the event's completed visit was (1 for the first), at most `sessions`:
    the client's completed visits of the service up to this one (by start), counted back to the first
    gap of more than `SERIES_BREAK_INTERVALS` intervals between two of them."""
    payload = event.payload
    starts_at = datetime.fromisoformat(payload["starts_at"])
    longest_gap = timedelta(days=interval_days * SERIES_BREAK_INTERVALS)
    # Visits further back than `sessions` longest gaps cannot change the answer: it stops at `sessions`.
    starts_from = starts_at - longest_gap * sessions
    starts = {starts_at}
    offset, page = 0, 200
    while True:
        found = scheduling.list_appointments(
            session,
            actor=agent(event.organization_id),
            client_id=uuid.UUID(payload["client_id"]),
            status=Status.COMPLETED,
            starts_from=starts_from,
            starts_before=starts_at,
            limit=page,
            offset=offset,
        )
        starts.update(a.starts_at for a in found.items if a.service_id == service.id)
        offset += page
        if offset >= found.total:
            break
    ordered = sorted(starts, reverse=True)
    number = 1
    while number < min(len(ordered), sessions) and ordered[number - 1] - ordered[number] <= longest_gap:
        number += 1
    return number


def _plan_follow_up(session: Session, event: Delivered, service: ServiceRead) -> None:
    """After a completed visit (the event), a marketing message asking the client to book again (dropped
    if they booked since), through the gate as `engagement.follow_up`: during a course of sessions,
    `series_interval_days` after the visit, to book the next session ("n of N", `session_number`);
    otherwise (no course, or its last session) at the service's cadence, `follow_up_days` after the
    visit, naming the window up to `follow_up_days_max` and worth sending until the window closes.
    Nothing when the service has neither."""
    ended = event.created_at
    payload = event.payload
    context: dict[str, Any] = {"service_id": payload["service_id"], "visit_ended_at": ended.isoformat()}
    sessions, interval_days = service.series_sessions, service.series_interval_days
    number = (
        session_number(session, event, service, sessions, interval_days) if sessions and interval_days else 0
    )
    if sessions and interval_days and number < sessions:
        due_at = ended + timedelta(days=interval_days)
        not_after = due_at + FOLLOW_UP_WITHIN
        context |= {"session_number": number + 1, "series_sessions": sessions}
    elif service.follow_up_days:
        first_day, last_day = service.follow_up_days, service.follow_up_days_max or service.follow_up_days
        due_at = ended + timedelta(days=first_day)
        not_after = max(due_at + FOLLOW_UP_WITHIN, ended + timedelta(days=last_day))
        if last_day > first_day:
            context["window_days"] = [first_day, last_day]
    else:
        return
    follow_ups = [
        planned(
            client_id=uuid.UUID(payload["client_id"]),
            location_id=uuid.UUID(payload["location_id"]),
            appointment_id=event.aggregate_id,
            kind="follow_up",
            channel=channel,
            dedup_key=f"{event.id}:follow_up:{channel}",
            context=context,
            due_at=due_at,
            not_after=not_after,
            is_reply=False,
            purpose="marketing",
        )
        for channel in ("email", "sms")
    ]
    submit_messages(
        session,
        event.organization_id,
        follow_ups,
        trigger=f"outbox:{event.id} {event.topic}",
        subject_id=event.aggregate_id,
        action=FOLLOW_UP_ACTION,
    )


def _obsolete_pending(session: Session, event: Delivered) -> None:
    """The appointment's messages not yet sent that no longer apply: all of them once it is cancelled or
    missed, those about its old time once it moved. (The dispatcher checks again before sending.)"""
    pending = session.scalars(
        select(Message)
        .where(
            Message.organization_id == event.organization_id,
            Message.appointment_id == event.aggregate_id,
            Message.state == "queued",
        )
        .with_for_update()
    ).all()
    moved = event.topic == "appointment.rescheduled"
    for message in pending:
        if moved and message.context.get("starts_at") == event.payload["starts_at"]:
            continue  # about the new time (planned by this event, handled before)
        if message.kind == "cancellation":
            continue  # the notice of this very cancellation, when the event is handled again
        message.state = "obsolete"
        message.outcome = (
            "the appointment moved" if moved else f"the appointment was {event.topic.split('.')[1]}"
        )


def plan_event(session: Session, event: Delivered) -> None:
    """Plan what `event` calls for, in the caller's transaction."""
    if event.topic not in TOPICS:
        return
    now = clock.now()
    payload = event.payload
    starts_at = datetime.fromisoformat(payload["starts_at"])
    ends_at = datetime.fromisoformat(payload["ends_at"])
    trigger = f"outbox:{event.id} {event.topic}"
    both = ("email", "sms")
    plans: list[Planned] = []
    if event.topic in ("appointment.booked", "appointment.rescheduled") and starts_at > now:
        kind = "confirmation" if event.topic == "appointment.booked" else "reschedule"
        plans += _appointment_messages(event, kind, both, is_reply=True, due_at=now)
        plans += _reminders(session, event, now)
    elif event.topic == "appointment.cancelled" and starts_at > now:
        plans += _appointment_messages(event, "cancellation", both, is_reply=True, due_at=now)
    elif event.topic == "appointment.completed":
        service = catalog.get_service(
            session, actor=agent(event.organization_id), service_id=uuid.UUID(payload["service_id"])
        )
        if service.post_care_instructions.strip():
            plans += _appointment_messages(
                event, "post_care", both, is_reply=False, due_at=now, not_after=now + POST_CARE_WITHIN
            )
        _plan_follow_up(session, event, service)
    if event.topic in ("appointment.cancelled", "appointment.no_show", "appointment.rescheduled"):
        _obsolete_pending(session, event)
    submit_messages(session, event.organization_id, plans, trigger=trigger, subject_id=event.aggregate_id)
    freed: tuple[datetime, datetime, str] | None = None
    if event.topic in ("appointment.cancelled", "appointment.no_show"):
        freed = (max(starts_at, now), ends_at, payload["provider_id"])
    elif event.topic == "appointment.rescheduled" and "previous_starts_at" in payload:
        freed = (
            max(datetime.fromisoformat(payload["previous_starts_at"]), now),
            datetime.fromisoformat(payload["previous_ends_at"]),
            payload["previous_provider_id"],
        )
    if freed is not None and freed[0] < freed[1]:
        offers.free_slot(
            session,
            agent(event.organization_id),
            location_id=uuid.UUID(payload["location_id"]),
            provider_id=uuid.UUID(freed[2]),
            starts_at=freed[0],
            ends_at=freed[1],
            source_key=f"{event.id}:{event.topic}",
        )


class EngagementHandler:
    """The `engagement` consumer's handler: each event in a unit of work of its own, so one that fails
    (it is read again later) does not hold back the others' messages."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, events: Sequence[Delivered]) -> set[int]:
        handled: set[int] = set()
        for event in events:
            if event.topic not in TOPICS:
                handled.add(event.id)
                continue
            try:
                with unit_of_work(self.engine) as session:
                    plan_event(session, event)
            except Exception:
                logger.exception(
                    "engagement: event %s (%s) failed; it will be read again", event.id, event.topic
                )
                continue
            handled.add(event.id)
        return handled
