"""Waitlist backfill: a freed time is offered to the best-matching waiting clients, first come first
booked.

When provider time frees (`free_slot`: a cancellation, a no-show, a move), the location's waiting
entries for that local date are matched against it: the entry's service must be bookable within the
freed time (the booking path's own availability, with that provider), inside the entry's window, with
the preferred provider when the entry names one. Candidates are ranked (`rank_score`): fit to the freed
time, expected margin of the service, the client's response likelihood learnt from their offer history,
provider preference (naming this provider ranks above naming none), member priority, the lead time (how
likely the client is to take a time at this short a notice, learnt from the offers they took), and time
on the waitlist. The best get an offer each (at most `open_offers_per_slot`
open at once, at most `offers_per_client_per_day` to a client), with a link valid for
`offer_expiry_minutes`, each passing the agent policy gate (`engagement.waitlist_offer`, tier 1).

The first acceptance through a link books the time through the booking path (`accept_offer`: the offer
locked, then `scheduling.service.book_from_waitlist` with its guards), the others are told it is gone,
and a lapsed offer passes the time on to the next candidate (`advance_slot`, run on every change and by
the worker's periodic sweep). No offer is made in the location's quiet hours: the sweep makes them when
the quiet hours end, if the time is still ahead.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.engagement import links
from medspa.engagement.models import FreedSlot, Message, WaitlistOffer
from medspa.engagement.rules import is_quiet
from medspa.engagement.settings import policy_for
from medspa.kit import clock, tz
from medspa.kit.crud import get_owned
from medspa.kit.db import insert_ignoring_conflict, unit_of_work
from medspa.kit.errors import MedspaError
from medspa.kit.ids import new_id
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import WaitlistRead
from medspa.security import gate
from medspa.security.actors import Actor

logger = logging.getLogger(__name__)

OFFER_ACTION: Final = "engagement.waitlist_offer"
# A freed time with room for offers but no candidate is searched again this often (new waiting clients).
SEARCH_AGAIN_AFTER: Final = timedelta(minutes=5)
# How the parts of a candidate's score weigh (each part lies in 0..1).
WEIGHTS: Final = {
    "fit": 0.25,
    "margin": 0.2,
    "response": 0.15,
    "provider": 0.1,
    "member": 0.1,
    "lead": 0.1,
    "waiting": 0.1,
}


def find_offer(session: Session, token: str) -> WaitlistOffer | None:
    """The offer a link names, when its signature is right; None otherwise."""
    offer_id = links.record_id_of(token)
    if offer_id is None:
        return None
    offer = session.scalar(select(WaitlistOffer).where(WaitlistOffer.id == offer_id))
    if offer is None or not links.is_genuine(session, offer.organization_id, "offer", token):
        return None
    return offer


def _offer_by_token(session: Session, token: str) -> WaitlistOffer | None:
    """`find_offer`, locked after its freed time: every change of a time's offers locks the time
    first, so concurrent acceptances of its offers take their turn instead of deadlocking."""
    offer = find_offer(session, token)
    if offer is None:
        return None
    session.scalar(select(FreedSlot.id).where(FreedSlot.id == offer.slot_id).with_for_update())
    session.refresh(offer, with_for_update=True)
    return offer


@dataclass(frozen=True)
class Candidate:
    entry: WaitlistRead
    starts_at: datetime
    parts: dict[str, float]

    @property
    def score(self) -> float:
        return rank_score(**self.parts)


def rank_score(
    *, fit: float, margin: float, response: float, provider: float, member: float, lead: float, waiting: float
) -> float:
    """A candidate's rank: the weighted sum of its parts (`WEIGHTS`), each held to 0..1."""
    parts = {
        "fit": fit,
        "margin": margin,
        "response": response,
        "provider": provider,
        "member": member,
        "lead": lead,
        "waiting": waiting,
    }
    return round(sum(WEIGHTS[name] * min(1.0, max(0.0, value)) for name, value in parts.items()), 6)


def response_likelihood(session: Session, organization_id: uuid.UUID, client_id: uuid.UUID) -> float:
    """P(the client takes an offer), learnt from their offers so far: accepted over decided, with one
    accepted and one lapsed offer as the prior (0.5 for a client never offered anything)."""
    rows = session.execute(
        select(WaitlistOffer.state, func.count())
        .where(
            WaitlistOffer.organization_id == organization_id,
            WaitlistOffer.client_id == client_id,
            WaitlistOffer.state.in_(("accepted", "expired")),
        )
        .group_by(WaitlistOffer.state)
    ).all()
    counts = {str(state): int(n) for state, n in rows}
    accepted = counts.get("accepted", 0)
    return (accepted + 1) / (accepted + counts.get("expired", 0) + 2)


def short_notice_likelihood(
    session: Session, organization_id: uuid.UUID, client_id: uuid.UUID, notice: timedelta
) -> float:
    """P(the client can take a time `notice` ahead), learnt from the offers they accepted: the share made
    at this short a notice or shorter (an offer's notice: from its making to its start), with one such
    and one at longer notice as the prior (0.5 for a client who never took an offer)."""
    taken = session.execute(
        select(WaitlistOffer.starts_at, WaitlistOffer.created_at).where(
            WaitlistOffer.organization_id == organization_id,
            WaitlistOffer.client_id == client_id,
            WaitlistOffer.state == "accepted",
        )
    ).all()
    as_short = sum(1 for starts_at, made_at in taken if starts_at - made_at <= notice)
    return (as_short + 1) / (len(taken) + 2)


def free_slot(
    session: Session,
    agent: Actor,
    *,
    location_id: uuid.UUID,
    provider_id: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
    source_key: str,
) -> None:
    """Record freed provider time (once per `source_key`) and make its first offers."""
    now = clock.now()
    insert_ignoring_conflict(
        session,
        FreedSlot,
        {
            "id": new_id(),
            "organization_id": agent.organization_id,
            "location_id": location_id,
            "provider_id": provider_id,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "source_key": source_key[:200],
            "state": "open",
            "appointment_id": None,
            "created_at": now,
            "updated_at": now,
        },
    )
    slot = session.scalar(
        select(FreedSlot).where(
            FreedSlot.organization_id == agent.organization_id, FreedSlot.source_key == source_key[:200]
        )
    )
    if slot is not None:
        advance_slot(session, agent, slot.id)


def _candidates(session: Session, agent: Actor, slot: FreedSlot, now: datetime) -> list[Candidate]:
    """Waiting entries that fit the freed time, best first."""
    location = resources.get_location(session, actor=agent, location_id=slot.location_id)
    local_date = tz.to_local(slot.starts_at, location.time_zone).date()
    entries = scheduling.list_waitlist(
        session, actor=agent, location_id=slot.location_id, service_date=local_date
    )
    offered = set(
        session.scalars(select(WaitlistOffer.waitlist_entry_id).where(WaitlistOffer.slot_id == slot.id))
    )
    prices: dict[uuid.UUID, int] = {}
    found: list[tuple[WaitlistRead, datetime, float]] = []
    for entry in entries:
        if entry.id in offered:
            continue
        if entry.preferred_provider_id is not None and entry.preferred_provider_id != slot.provider_id:
            continue
        try:
            slots = scheduling.find_slots(
                session,
                actor=agent,
                location_id=slot.location_id,
                service_id=entry.service_id,
                first_date=local_date,
                last_date=local_date,
                provider_id=slot.provider_id,
            )
        except MedspaError:  # the service was retired since, say
            continue
        for option in slots:
            local_start = tz.to_local(option.starts_at, location.time_zone)
            local_end = tz.to_local(option.ends_at, location.time_zone)
            if not slot.starts_at <= option.starts_at < slot.ends_at or option.starts_at <= now:
                continue
            if local_start.time() < entry.window_starts_at or local_end.time() > entry.window_ends_at:
                continue
            if local_end.date() != local_date:
                continue
            fit = 1.0 - (option.starts_at - slot.starts_at) / max(slot.ends_at - slot.starts_at, timedelta(1))
            found.append((entry, option.starts_at, fit))
            break
    if not found:
        return []
    for entry, _, _ in found:
        if entry.service_id not in prices:
            service = catalog.get_service(session, actor=agent, service_id=entry.service_id)
            prices[entry.service_id] = max(0, service.price_cents - service.cost_cents)
    best_margin = max(prices.values()) or 1
    candidates = [
        Candidate(
            entry=entry,
            starts_at=starts_at,
            parts={
                "fit": fit,
                "margin": prices[entry.service_id] / best_margin,
                "response": response_likelihood(session, agent.organization_id, entry.client_id),
                # An entry naming another provider was left out above.
                "provider": 1.0 if entry.preferred_provider_id == slot.provider_id else 0.0,
                "member": 1.0 if entry.priority == "member" else 0.0,
                "lead": short_notice_likelihood(
                    session, agent.organization_id, entry.client_id, starts_at - now
                ),
                "waiting": min(1.0, (now - entry.created_at).total_seconds() / 86400 / 14),
            },
        )
        for entry, starts_at, fit in found
    ]
    return sorted(candidates, key=lambda c: (-c.score, str(c.entry.id)))


def _offers_today(session: Session, organization_id: uuid.UUID, client_id: uuid.UUID, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(WaitlistOffer)
            .where(
                WaitlistOffer.organization_id == organization_id,
                WaitlistOffer.client_id == client_id,
                WaitlistOffer.created_at > now - timedelta(hours=24),
            )
        )
        or 0
    )


def _expire_lapsed(session: Session, slot: FreedSlot, now: datetime) -> int:
    result = session.execute(
        update(WaitlistOffer)
        .where(
            WaitlistOffer.slot_id == slot.id, WaitlistOffer.state == "open", WaitlistOffer.expires_at <= now
        )
        .values(state="expired", decided_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def advance_slot(session: Session, agent: Actor, slot_id: uuid.UUID) -> int:
    """Bring a freed time's offers up to date: lapsed offers expire, and while fewer than the
    location's limit are open (and it is not quiet hours there), the next candidates get offers: at
    once when an offer lapsed, else at most every `SEARCH_AGAIN_AFTER` (the waitlist may have grown).
    The time closes once it has passed. How many offers were made."""
    now = clock.now()
    slot = get_owned(session, FreedSlot, agent.organization_id, slot_id, "freed slot", lock=True)
    if slot.state != "open":
        return 0
    lapsed = _expire_lapsed(session, slot, now)
    if slot.ends_at <= now:
        slot.state, slot.updated_at = "closed", now
        session.execute(
            update(WaitlistOffer)
            .where(WaitlistOffer.slot_id == slot.id, WaitlistOffer.state == "open")
            .values(state="expired", decided_at=now)
        )
        return 0
    policy = policy_for(session, agent.organization_id, slot.location_id)
    location = resources.get_location(session, actor=agent, location_id=slot.location_id)
    if is_quiet(policy, location.time_zone, now):
        return 0
    open_now = int(
        session.scalar(
            select(func.count())
            .select_from(WaitlistOffer)
            .where(WaitlistOffer.slot_id == slot.id, WaitlistOffer.state == "open")
        )
        or 0
    )
    if open_now >= policy.open_offers_per_slot:
        return 0
    searched_at = slot.updated_at if slot.updated_at > slot.created_at else None
    if not lapsed and searched_at is not None and now - searched_at < SEARCH_AGAIN_AFTER:
        return 0  # nothing lapsed since the last search: look again (new waiting clients) now and then
    made = 0
    for candidate in _candidates(session, agent, slot, now):
        if open_now + made >= policy.open_offers_per_slot:
            break
        if _offers_today(session, agent.organization_id, candidate.entry.client_id, now) >= (
            policy.offers_per_client_per_day
        ):
            continue
        offer_id = new_id()
        gate.submit(
            session,
            agent=agent,
            action=OFFER_ACTION,
            trigger=f"freed_slot:{slot.id}",
            summary=f"offer a freed time to a waitlisted client (rank {candidate.score:.2f})",
            payload={
                "offer_id": str(offer_id),
                "slot_id": str(slot.id),
                "entry_id": str(candidate.entry.id),
                "client_id": str(candidate.entry.client_id),
                "service_id": str(candidate.entry.service_id),
                "location_id": str(slot.location_id),
                "provider_id": str(slot.provider_id),
                "starts_at": candidate.starts_at.isoformat(),
                "score": candidate.score,
                "expires_at": (now + timedelta(minutes=policy.offer_expiry_minutes)).isoformat(),
            },
            subject_id=candidate.entry.client_id,
        )
        made += 1
    slot.updated_at = now
    return made


def _make_offer(session: Session, agent: Actor, payload: dict[str, object]) -> str:
    """The gate's handler for `engagement.waitlist_offer`: the offer and its message (by e-mail and by
    SMS, whichever the client allows)."""
    from medspa.engagement.planner import planned, submit_messages

    offer_id = uuid.UUID(str(payload["offer_id"]))
    expires_at = datetime.fromisoformat(str(payload["expires_at"]))
    client_id = uuid.UUID(str(payload["client_id"]))
    location_id = uuid.UUID(str(payload["location_id"]))
    session.add(
        WaitlistOffer(
            id=offer_id,
            organization_id=agent.organization_id,
            slot_id=uuid.UUID(str(payload["slot_id"])),
            waitlist_entry_id=uuid.UUID(str(payload["entry_id"])),
            client_id=client_id,
            service_id=uuid.UUID(str(payload["service_id"])),
            location_id=location_id,
            provider_id=uuid.UUID(str(payload["provider_id"])),
            starts_at=datetime.fromisoformat(str(payload["starts_at"])),
            token_digest=hashlib.sha256(
                links.link_token(session, agent.organization_id, "offer", offer_id).encode()
            ).hexdigest(),
            rank_score=float(str(payload["score"])),
            state="open",
            expires_at=expires_at,
            created_at=clock.now(),
        )
    )
    session.flush()
    submit_messages(
        session,
        agent.organization_id,
        [
            planned(
                client_id=client_id,
                location_id=location_id,
                offer_id=offer_id,
                kind="waitlist_offer",
                channel=channel,
                dedup_key=f"offer:{offer_id}:{channel}",
                context={"starts_at": str(payload["starts_at"]), "service_id": str(payload["service_id"])},
                due_at=clock.now(),
                not_after=expires_at,
                is_reply=False,
            )
            for channel in ("email", "sms")
        ],
        trigger=f"offer:{offer_id}",
        subject_id=client_id,
        through_gate=False,
    )
    return f"offer {offer_id} until {expires_at.isoformat()}"


gate.register(
    gate.Kind(OFFER_ACTION, gate.Tier.RUNS, _make_offer, "offer a freed time to a waitlisted client")
)

Outcome = Literal["booked", "already_booked", "gone", "expired", "not_found"]


@dataclass(frozen=True)
class Acceptance:
    outcome: Outcome
    appointment_id: uuid.UUID | None = None
    starts_at: datetime | None = None


def accept_offer(session: Session, *, token: str) -> Acceptance:
    """The client takes the offer their link names. The offer is locked first, so of concurrent
    acceptances of one offer one books and the others find it accepted; of acceptances of different
    offers of one time, the booking path's guards let one book and the others learn it is gone (their
    offers, and every other open offer of the time, become `gone` and their clients are told)."""
    offer = _offer_by_token(session, token)
    if offer is None:
        return Acceptance("not_found")
    if offer.state == "accepted":
        return Acceptance("already_booked", offer.appointment_id, offer.starts_at)
    if offer.state != "open":
        return Acceptance("gone" if offer.state == "gone" else "expired")
    now = clock.now()
    if offer.expires_at <= now:
        offer.state, offer.decided_at = "expired", now
        return Acceptance("expired")
    from medspa.engagement.planner import agent as engagement_agent

    agent = engagement_agent(offer.organization_id)
    try:
        with session.begin_nested():
            appointment = scheduling.book_from_waitlist(
                session,
                actor=agent,
                entry_id=offer.waitlist_entry_id,
                starts_at=offer.starts_at,
                provider_id=offer.provider_id,
            )
    except MedspaError as error:
        logger.info("offer %s could not be booked: %s", offer.id, error)
        offer.state, offer.decided_at = "gone", now
        _tell_others(session, agent, offer.slot_id, except_offer=offer.id, now=now)
        return Acceptance("gone")
    offer.state, offer.decided_at, offer.appointment_id = "accepted", now, appointment.id
    slot = get_owned(session, FreedSlot, offer.organization_id, offer.slot_id, "freed slot", lock=True)
    slot.state, slot.appointment_id, slot.updated_at = "filled", appointment.id, now
    # The entry is booked: its offers of other times lapse.
    session.execute(
        update(WaitlistOffer)
        .where(
            WaitlistOffer.waitlist_entry_id == offer.waitlist_entry_id,
            WaitlistOffer.id != offer.id,
            WaitlistOffer.state == "open",
        )
        .values(state="gone", decided_at=now)
    )
    _tell_others(session, agent, offer.slot_id, except_offer=offer.id, now=now)
    return Acceptance("booked", appointment.id, offer.starts_at)


def _tell_others(
    session: Session, agent: Actor, slot_id: uuid.UUID, *, except_offer: uuid.UUID, now: datetime
) -> None:
    """Close the time's other open offers and tell their clients it is gone."""
    from medspa.engagement.planner import planned, submit_messages

    others = session.scalars(
        select(WaitlistOffer)
        .where(
            WaitlistOffer.slot_id == slot_id, WaitlistOffer.id != except_offer, WaitlistOffer.state == "open"
        )
        .with_for_update()
    ).all()
    plans = []
    for other in others:
        other.state, other.decided_at = "gone", now
        # Its offer message, if not yet sent, is of no use now.
        session.execute(
            update(Message)
            .where(Message.offer_id == other.id, Message.state == "queued")
            .values(state="obsolete", outcome="the time was taken")
        )
        plans += [
            planned(
                client_id=other.client_id,
                location_id=other.location_id,
                offer_id=other.id,
                kind="offer_taken",
                channel=channel,
                dedup_key=f"offer-taken:{other.id}:{channel}",
                context={"starts_at": other.starts_at.isoformat(), "service_id": str(other.service_id)},
                due_at=now,
                not_after=other.starts_at,
                is_reply=True,
            )
            for channel in ("email", "sms")
        ]
    session.flush()
    submit_messages(
        session, agent.organization_id, plans, trigger=f"freed_slot:{slot_id} taken", subject_id=None
    )


def open_slots(
    session: Session, limit: int = 200, organization_id: uuid.UUID | None = None
) -> Sequence[tuple[uuid.UUID, uuid.UUID]]:
    """(organization, slot) of freed times still open, soonest first."""
    query = select(FreedSlot.organization_id, FreedSlot.id).where(FreedSlot.state == "open")
    if organization_id is not None:
        query = query.where(FreedSlot.organization_id == organization_id)
    rows = session.execute(query.order_by(FreedSlot.starts_at).limit(limit)).all()
    return [(organization_id, slot_id) for organization_id, slot_id in rows]


def sweep(engine: Engine, *, organization_id: uuid.UUID | None = None) -> int:
    """Advance every open freed time (of one organization, when given: lapsed offers pass on, quiet
    hours ended, times passed close), each in a transaction of its own; how many offers were made."""
    from medspa.engagement.planner import agent as engagement_agent

    with unit_of_work(engine, write=False) as session:
        slots = open_slots(session, organization_id=organization_id)
    made = 0
    for organization_id, slot_id in slots:
        try:
            with unit_of_work(engine) as session:
                made += advance_slot(session, engagement_agent(organization_id), slot_id)
        except Exception:
            logger.exception("engagement: advancing freed slot %s failed", slot_id)
    return made
