"""The agent policy gate: the one function every automated action passes (`submit`).

An automated action (a reminder, a waitlist offer, a reschedule, a price offer, an export, a model
activation) is registered once as a kind (`register`) with its tier and the function that carries it
out. Submitting one writes it to the action log with the agent's identity and the event that triggered
it, and then, in the same transaction:

- tier 1 runs;
- tier 2 runs while within the organization's thresholds (how many of that kind ran on their own in
  the last 24 hours; the value of this one), and otherwise waits for a person;
- tier 3 always waits for a person.

Waiting actions form the approval queue: a manager or owner approves one (it runs then, as the agent,
with the approver named in the log) or rejects it. An organization may make a kind stricter (a higher
tier, lower thresholds), never looser than the kind's own tier, so no setting lets a tier-3 action run
unapproved.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medspa.kit import clock
from medspa.kit.crud import get_owned, list_owned
from medspa.kit.db import insert_ignoring_conflict
from medspa.kit.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationFailedError
from medspa.kit.ids import new_id
from medspa.kit.outbox import record_event
from medspa.kit.schemas import Page
from medspa.security.actors import Actor, Role, require
from medspa.security.models import AgentAction, AgentPolicy
from medspa.security.schemas import AgentActionRead, AgentPolicyRead, AgentPolicyUpdate


class Tier(IntEnum):
    RUNS = 1
    WITHIN_THRESHOLDS = 2
    NEEDS_APPROVAL = 3


# What carries an action out: given the transaction, the agent acting and the payload it was submitted
# with, it does the work and says in a line what it did. It raises to refuse (the action is `failed`).
Handler = Callable[[Session, Actor, dict[str, Any]], str]
WINDOW: Final = timedelta(hours=24)


@dataclass(frozen=True)
class Kind:
    name: str
    tier: Tier
    handler: Handler
    description: str
    daily_limit: int | None = None  # tier 2 default: how many may run on their own in 24 hours
    value_limit_cents: int | None = None  # tier 2 default: one worth more waits


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Make a kind of action known (each domain registers its own at import)."""
    if kind.name in _KINDS and _KINDS[kind.name] != kind:
        raise ValueError(f"agent action {kind.name!r} is registered already")
    _KINDS[kind.name] = kind
    return kind


def kinds() -> dict[str, Kind]:
    return dict(_KINDS)


def _kind(name: str) -> Kind:
    kind = _KINDS.get(name)
    if kind is None:
        raise NotFoundError("agent action kind", name)
    return kind


@dataclass(frozen=True)
class Policy:
    tier: Tier
    daily_limit: int | None
    value_limit_cents: int | None


def policy(session: Session, organization_id: uuid.UUID, name: str) -> Policy:
    """The kind's policy in force in the organization: its own, or the organization's stricter one."""
    kind = _kind(name)
    row = session.scalar(
        select(AgentPolicy).where(AgentPolicy.organization_id == organization_id, AgentPolicy.action == name)
    )
    if row is None:
        return Policy(kind.tier, kind.daily_limit, kind.value_limit_cents)
    # Never looser than the kind, whatever the row says.
    return Policy(Tier(max(row.tier, kind.tier)), row.daily_limit, row.value_limit_cents)


def _within_thresholds(
    session: Session, organization_id: uuid.UUID, name: str, rule: Policy, value: int | None
) -> str | None:
    """Why a tier-2 action must wait, or None when it may run."""
    if rule.value_limit_cents is not None and value is not None and value > rule.value_limit_cents:
        return f"worth {value} cents, over the limit of {rule.value_limit_cents}"
    if rule.daily_limit is not None:
        ran = session.scalar(
            select(func.count())
            .select_from(AgentAction)
            .where(
                AgentAction.organization_id == organization_id,
                AgentAction.action == name,
                AgentAction.state == "ran",
                AgentAction.ran_at > clock.now() - WINDOW,
            )
        )
        if (ran or 0) >= rule.daily_limit:
            return f"{ran} ran on their own in the last 24 hours, the limit is {rule.daily_limit}"
    return None


def submit(
    session: Session,
    *,
    agent: Actor,
    action: str,
    trigger: str,
    summary: str,
    payload: dict[str, Any],
    subject_id: uuid.UUID | None = None,
    value_cents: int | None = None,
) -> AgentActionRead:
    """Pass an automated action through the gate: logged, then run or queued by its tier (see the
    module). `trigger` names the event that caused it (`outbox:1234 appointment.cancelled`,
    `schedule:refit_noshow_models`); `summary` says in words what it would do."""
    kind = _kind(action)
    rule = policy(session, agent.organization_id, action)
    if rule.tier == Tier.NEEDS_APPROVAL:
        wait: str | None = "tier 3: a person approves every one"
    elif rule.tier == Tier.WITHIN_THRESHOLDS:
        _lock_policy(session, agent.organization_id, action)  # concurrent submitters count in turn
        rule = policy(session, agent.organization_id, action)  # as it stands under the lock
        wait = (
            "tier 3: a person approves every one"
            if rule.tier == Tier.NEEDS_APPROVAL
            else _within_thresholds(session, agent.organization_id, action, rule, value_cents)
        )
    else:
        wait = None
    row = AgentAction(
        organization_id=agent.organization_id,
        action=kind.name,
        tier=int(rule.tier),
        agent=agent.label,
        trigger=trigger[:500],
        subject_id=subject_id,
        summary=summary[:500],
        payload=payload,
        value_cents=value_cents,
        state="queued" if wait else "ran",
        why=wait or f"tier {int(rule.tier)}: runs within its policy",
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    if wait is None:
        _run(session, kind, row, agent)
    else:
        record_event(session, agent, "agent_action.queued", row.id, {"id": str(row.id), "action": kind.name})
    return AgentActionRead.model_validate(row)


def submitted_since(
    session: Session, organization_id: uuid.UUID, action: str, subject_id: uuid.UUID, since: datetime
) -> bool:
    """Whether an action of this kind about `subject_id` was submitted at or after `since`, whatever
    became of it (ran, waiting, rejected): so an agent does not ask twice."""
    found = session.scalar(
        select(AgentAction.id)
        .where(
            AgentAction.organization_id == organization_id,
            AgentAction.action == action,
            AgentAction.subject_id == subject_id,
            AgentAction.created_at >= since,
        )
        .limit(1)
    )
    return found is not None


def _lock_policy(session: Session, organization_id: uuid.UUID, action: str) -> None:
    """Serialize tier-2 submissions of one kind in an organization (PostgreSQL), so that two at once
    cannot both see room under the daily limit: they lock the policy row, made first when there is none
    (a concurrent maker wins quietly)."""
    kind = _kind(action)
    insert_ignoring_conflict(
        session,
        AgentPolicy,
        {
            "id": new_id(),
            "organization_id": organization_id,
            "action": action,
            "tier": int(kind.tier),
            "daily_limit": kind.daily_limit,
            "value_limit_cents": kind.value_limit_cents,
            "updated_by": "system:defaults",
            "updated_at": clock.now(),
        },
    )
    session.scalar(
        select(AgentPolicy.id)
        .where(AgentPolicy.organization_id == organization_id, AgentPolicy.action == action)
        .with_for_update()
    )


def _run(session: Session, kind: Kind, row: AgentAction, agent: Actor) -> None:
    """Carry the action out in a savepoint: a handler that fails leaves the log row `failed` and
    nothing else of its work."""
    try:
        with session.begin_nested():
            outcome = kind.handler(session, agent, dict(row.payload))
    except Exception as error:  # any refusal of the handler is recorded, not raised
        row.state, row.outcome = "failed", f"{type(error).__name__}: {error}"[:1000]
    else:
        row.state = "ran" if row.decided_by is None else "approved"
        row.outcome = outcome[:1000]
        row.ran_at = clock.now()
    session.flush()
    record_event(
        session, agent, f"agent_action.{row.state}", row.id, {"id": str(row.id), "action": kind.name}
    )


def _agent_of(row: AgentAction) -> Actor:
    kind, _, name = row.agent.partition(":")
    return Actor(row.organization_id, kind or "agent", None, Role.OWNER, name or row.agent)


def decide(session: Session, *, actor: Actor, action_id: uuid.UUID, approve: bool) -> AgentActionRead:
    """A manager or owner approves a queued action (it runs now, as its agent) or rejects it."""
    require(actor, "agent_actions", "decide")
    if actor.kind not in ("user", "token"):
        raise PermissionDeniedError("an agent action is approved by a person, not by another agent")
    row = get_owned(session, AgentAction, actor.organization_id, action_id, "agent action", lock=True)
    if row.state != "queued":
        raise ConflictError(f"this action was decided already ({row.state})")
    row.decided_by, row.decided_at = actor.label, clock.now()
    if approve:
        _run(session, _kind(row.action), row, _agent_of(row))
    else:
        row.state = "rejected"
        session.flush()
        record_event(
            session, actor, "agent_action.rejected", row.id, {"id": str(row.id), "action": row.action}
        )
    return AgentActionRead.model_validate(row)


def list_actions(
    session: Session, *, actor: Actor, state: str | None = None, limit: int = 50, offset: int = 0
) -> Page[AgentActionRead]:
    """The action log, newest first; `state=queued` is the approval queue."""
    require(actor, "agent_actions", "read")
    filters = [] if state is None else [AgentAction.state == state]
    rows, total = list_owned(
        session,
        AgentAction,
        actor.organization_id,
        *filters,
        order_by=(AgentAction.created_at.desc(), AgentAction.id),
        limit=limit,
        offset=offset,
    )
    return Page(
        items=[AgentActionRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


def list_policies(session: Session, *, actor: Actor) -> list[AgentPolicyRead]:
    require(actor, "agent_policies", "read")
    found = []
    for name in sorted(_KINDS):
        rule = policy(session, actor.organization_id, name)
        found.append(
            AgentPolicyRead(
                action=name,
                description=_KINDS[name].description,
                least_tier=int(_KINDS[name].tier),
                tier=int(rule.tier),
                daily_limit=rule.daily_limit,
                value_limit_cents=rule.value_limit_cents,
            )
        )
    return found


def set_policy(session: Session, *, actor: Actor, action: str, data: AgentPolicyUpdate) -> AgentPolicyRead:
    """The owner sets a kind's tier and thresholds; a tier below the kind's own is refused."""
    require(actor, "agent_policies", "manage")
    kind = _kind(action)
    if data.tier < kind.tier:
        raise ValidationFailedError("tier", f"{action} is tier {int(kind.tier)} at least, never {data.tier}")
    row = session.scalar(
        select(AgentPolicy)
        .where(AgentPolicy.organization_id == actor.organization_id, AgentPolicy.action == action)
        .with_for_update()
    )
    if row is None:
        row = AgentPolicy(organization_id=actor.organization_id, action=action)
        session.add(row)
    row.tier, row.daily_limit, row.value_limit_cents = data.tier, data.daily_limit, data.value_limit_cents
    row.updated_by, row.updated_at = actor.label, clock.now()
    session.flush()
    record_event(session, actor, "agent_policy.updated", row.id, {"action": action, "tier": data.tier})
    return next(p for p in list_policies(session, actor=actor) if p.action == action)
