"""Waitlist backfill on the demo clinic's next month: its bookings, cancelled and missed at the rates of
its seeded history, replayed under each policy with the real engagement code on a SQLite copy of the
clinic. Reports the share of freed provider time refilled, the median time to refill, provider overflow
minutes, the margin recovered and the expected margin; writes them to docs/benchmarks.md.

- The clinic: `medspa demo seed` as of Monday 2027-04-05 12:00 UTC with 30 days of future bookings, its
  models trained and every upcoming booking scored (the served P(no-show) overbooking reads); its
  waitlist (seeded for the coming week) extended to every open day of the month in the seed's shape
  (6-12 more clients a day, services as often as the seed books them, windows of 2-4 hours, 30 % members).
- Cancellations and no-shows: each future booking cancels with the history's cancellation rate, at a
  uniform time 2-72 hours before its start (not before now), or else is missed with its served
  P(no-show) (the model the overbooking policy trusts; the history's rate for a booking without one).
- Clients offered a time accept with probability `ACCEPT` after an exponential delay (mean
  `ACCEPT_MINUTES`); one who does not respond lets the offer lapse (20 minutes), passing the time on.
- Policies: no backfill (the freed time stays empty); backfill (`engagement`: offers, acceptance through
  the booking path, the sweep every few minutes of simulated time); backfill plus overbooking: before
  the month starts, each waiting client is overbooked (`engagement.overbooking`, through the agent gate)
  beside the riskiest booking of their day that fits their window and service, while the provider's
  expected overflow stays within `OVERBOOKING_CAP` minutes a day; an overbooked client misses their
  visit with the rate of their own record (what the policy assumed). Provider overflow is the minutes
  where an overbooked client and the booking beside them both came.

    .venv/bin/python bench/engagement.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import heapq
import random
import shutil
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from common import machine, write_section
from medspa.catalog import service as catalog
from medspa.catalog.models import Service
from medspa.demo.catalog_data import SERVICES
from medspa.engagement import overbooking
from medspa.engagement import service as engagement
from medspa.engagement.links import link_token
from medspa.engagement.models import FreedSlot, WaitlistOffer
from medspa.engagement.schemas import PolicyUpdate
from medspa.kit import clock, tz
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.errors import MedspaError
from medspa.kit.migrate import upgrade
from medspa.kit.outbox import Delivered, OutboxEvent
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import Appointment, WaitlistEntry
from medspa.scheduling.schemas import BookingRequest, WaitlistCreate
from medspa.security import gate
from medspa.security.actors import Actor, system_actor
from medspa.security.schemas import AgentPolicyUpdate

NOW = datetime(2027, 4, 5, 12, 0, tzinfo=UTC)
DAYS = 30
ACCEPT = 0.35
ACCEPT_MINUTES = 8.0
SWEEP_MINUTES = 5
OVERBOOKING_CAP = 20
# How often each service is asked for (the seed's weights, which its bookings and waitlist follow).
WEIGHTS = {row[0]: row[-1] for row in SERVICES}
# Clients added to the waitlist per open day (the seed gives the first week 4-8 of its own).
WAITING_PER_DAY = (6, 12)


@dataclass(order=True)
class Event:
    at: datetime
    order: int
    kind: str = field(compare=False)
    subject: Any = field(compare=False)


@dataclass
class Outcome:
    freed: int = 0
    freed_minutes: float = 0.0
    refilled: int = 0
    refilled_minutes: float = 0.0
    refill_minutes: list[float] = field(default_factory=list)
    margin_cents: int = 0
    expected_margin_cents: float = 0.0
    offers: int = 0
    accepted: int = 0
    lapsed: int = 0
    overflow_minutes: float = 0.0
    overbooked: int = 0
    overbooked_came: int = 0


def seed(directory: Path) -> tuple[Path, uuid.UUID, uuid.UUID, dict[str, int], int]:
    from medspa.demo.seed import seed_demo

    path = directory / "demo.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with clock.frozen_at(NOW):
        summary = seed_demo(
            engine, now=NOW, client_count=800, future_days=DAYS, model_dir=directory / "models"
        )
    engine.dispose()
    return path, summary.organization_id, summary.location_id, summary.statuses, summary.past_appointments


def extend_waitlist(
    engine: Engine, organization_id: uuid.UUID, location_id: uuid.UUID, rng: random.Random
) -> None:
    """Waiting clients for every open day of the month (beside the seed's first week), in the seed's shape
    but `WAITING_PER_DAY` of them."""
    actor = system_actor(organization_id, "bench")
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        services = catalog.list_services(session, actor=actor, limit=100).items
        client_ids = list(session.scalars(select(Appointment.client_id).distinct()))
        location = resources.get_location(session, actor=actor, location_id=location_id)
        open_days = {span.weekday for span in location.opening_hours}
        today = tz.to_local(NOW, location.time_zone).date()
        for offset in range(1, DAYS + 1):
            day = today + timedelta(days=offset)
            if day.weekday() not in open_days:
                continue
            for _ in range(rng.randint(*WAITING_PER_DAY)):
                start = rng.choice([9, 10, 11, 12, 13, 14, 15])
                scheduling.add_to_waitlist(
                    session,
                    actor=actor,
                    data=WaitlistCreate(
                        client_id=rng.choice(client_ids),
                        service_id=rng.choices(services, weights=[WEIGHTS.get(x.name, 1) for x in services])[
                            0
                        ].id,
                        location_id=location_id,
                        service_date=day,
                        window_starts_at=time(start, 0),
                        window_ends_at=time(min(start + rng.choice([2, 3, 4]), 19), 0),
                        priority="member" if rng.random() < 0.3 else "standard",
                    ),
                )


def disruptions(
    engine: Engine, rates: tuple[float, float], rng: random.Random
) -> list[tuple[datetime, str, uuid.UUID, float]]:
    """(when, "cancel" | "no_show", appointment, its minutes) for the month's live bookings: each cancels
    with the history's rate, and one not cancelled is missed with its served P(no-show) (the history's
    rate where it has none)."""
    p_cancel, p_no_show = rates
    with unit_of_work(engine, write=False) as session:
        live = session.execute(
            select(
                Appointment.id, Appointment.starts_at, Appointment.ends_at, Appointment.no_show_probability
            )
            .where(
                Appointment.status.in_(("booked", "confirmed")),
                Appointment.starts_at > NOW,
                Appointment.starts_at < NOW + timedelta(days=DAYS),
            )
            .order_by(Appointment.starts_at, Appointment.id)
        ).all()
    plan = []
    for appointment_id, starts_at, ends_at, served in live:
        minutes = (ends_at - starts_at).total_seconds() / 60
        if rng.random() < p_cancel:
            lead = timedelta(hours=rng.uniform(2, 72))
            plan.append(
                (max(NOW + timedelta(minutes=1), starts_at - lead), "cancel", appointment_id, minutes)
            )
        elif rng.random() < (p_no_show if served is None else served):
            plan.append((starts_at + timedelta(minutes=15), "no_show", appointment_id, minutes))
    return plan


def overbook_waitlist(
    engine: Engine, actor: Actor, location_id: uuid.UUID, p_no_show: float, rng: random.Random
) -> tuple[list[tuple[datetime, str, uuid.UUID, float]], list[uuid.UUID]]:
    """Overbook each waiting client beside the riskiest booking of their day that fits (see the module);
    the no-shows of those overbooked, as disruptions, and the overbooked appointments."""
    with clock.frozen_at(NOW), unit_of_work(engine) as session:
        engagement.set_policy(
            session,
            actor=actor,
            location_id=location_id,
            data=PolicyUpdate(overbooking_cap_minutes=OVERBOOKING_CAP),
        )
        gate.set_policy(
            session, actor=actor, action=overbooking.KIND, data=AgentPolicyUpdate(tier=2, daily_limit=100_000)
        )
        location = resources.get_location(session, actor=actor, location_id=location_id)
        entries = session.scalars(
            select(WaitlistEntry)
            .where(WaitlistEntry.status == "waiting")
            .order_by(WaitlistEntry.service_date, WaitlistEntry.created_at, WaitlistEntry.id)
        ).all()
        waiting = [
            (e.id, e.client_id, e.service_id, e.service_date, e.window_starts_at, e.window_ends_at)
            for e in entries
        ]
    missed = []
    made_ids = []
    for entry_id, client_id, service_id, day, window_from, window_to in waiting:
        start, end = tz.local_day_bounds(day, location.time_zone)
        with clock.frozen_at(NOW), unit_of_work(engine, write=False) as session:
            service = catalog.get_service(session, actor=actor, service_id=service_id)
            booked = session.scalars(
                select(Appointment).where(
                    Appointment.status == "booked",
                    Appointment.starts_at >= start,
                    Appointment.starts_at < end,
                )
            ).all()
            risk = scheduling.no_show_risk(session, actor, [a.client_id for a in booked])
            hosts = sorted(
                (
                    (scheduling.no_show_probability(a, risk), a.starts_at, a.provider_id)
                    for a in booked
                    if window_from <= tz.to_local(a.starts_at, location.time_zone).time()
                    and tz.to_local(
                        a.starts_at + timedelta(minutes=service.duration_minutes), location.time_zone
                    ).time()
                    <= window_to
                ),
                key=lambda h: (-h[0], h[1], str(h[2])),
            )
        for _, starts_at, provider_id in hosts[:6]:
            data = BookingRequest(
                client_id=client_id,
                service_id=service_id,
                location_id=location_id,
                starts_at=starts_at,
                provider_id=provider_id,
            )
            try:
                with clock.frozen_at(NOW), unit_of_work(engine) as session:
                    made = overbooking.overbook(session, actor=actor, data=data).appointment
                    scheduling.remove_from_waitlist(session, actor=actor, entry_id=entry_id)
            except MedspaError:
                continue
            if made is None:
                break
            made_ids.append(made.id)
            with unit_of_work(engine, write=False) as session:
                own = scheduling.no_show_risk(session, actor, [client_id]).get(client_id, p_no_show)
            if rng.random() < own:
                minutes = (made.ends_at - made.starts_at).total_seconds() / 60
                missed.append((made.starts_at + timedelta(minutes=15), "no_show", made.id, minutes))
            break
    return missed, made_ids


def replay(
    path: Path,
    organization_id: uuid.UUID,
    plan: list[tuple[datetime, str, uuid.UUID, float]],
    *,
    backfill: bool,
    overbook: bool,
    rates: tuple[float, float],
    location_id: uuid.UUID,
    rng: random.Random,
) -> Outcome:
    engine = make_engine(f"sqlite:///{path}")
    actor = system_actor(organization_id, "bench")
    manual = clock.ManualClock()
    outcome = Outcome()
    extras: list[uuid.UUID] = []
    if overbook:
        missed, extras = overbook_waitlist(engine, actor, location_id, rates[1], random.Random(rng.random()))
        plan = sorted(plan + missed)
    handler = engagement.EngagementHandler(engine)
    with unit_of_work(engine, write=False) as session:
        seen = int(session.scalar(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1)) or 0)
    events: list[Event] = []
    counter = 0

    def push(at: datetime, kind: str, subject: Any) -> None:
        nonlocal counter
        counter += 1
        heapq.heappush(events, Event(at, counter, kind, subject))

    for at, kind, appointment_id, minutes in plan:
        push(at, kind, (appointment_id, minutes))
    if backfill:
        tick = NOW
        while tick < NOW + timedelta(days=DAYS):
            tick += timedelta(minutes=SWEEP_MINUTES)
            push(tick, "sweep", None)
    known_offers: set[uuid.UUID] = set()
    checked_at = NOW
    with clock.using(manual):
        while events:
            event = heapq.heappop(events)
            manual.set(event.at)
            if event.kind in ("cancel", "no_show"):
                appointment_id, minutes = event.subject
                with unit_of_work(engine) as session:
                    if event.kind == "cancel":
                        scheduling.cancel_appointment(
                            session, actor=actor, appointment_id=appointment_id, reason="bench"
                        )
                    else:
                        scheduling.mark_no_show(session, actor=actor, appointment_id=appointment_id)
                outcome.freed += 1
                outcome.freed_minutes += minutes if event.kind == "cancel" else max(0.0, minutes - 15)
            elif event.kind == "accept":
                with unit_of_work(engine) as session:
                    result = engagement.accept_offer(session, token=event.subject)
                outcome.accepted += result.outcome == "booked"
            elif event.kind == "sweep":
                engagement.sweep(engine, organization_id=organization_id)
            if not backfill:
                continue
            with unit_of_work(engine, write=False) as session:
                rows = session.scalars(
                    select(OutboxEvent).where(OutboxEvent.id > seen).order_by(OutboxEvent.id)
                ).all()
                fresh = [
                    Delivered(e.id, e.organization_id, e.topic, e.aggregate_id, dict(e.payload), e.created_at)
                    for e in rows
                ]
            if fresh:
                seen = fresh[-1].id
                handler(fresh)
            with unit_of_work(engine, write=False) as session:
                fresh_offers = session.scalars(
                    select(WaitlistOffer).where(WaitlistOffer.created_at >= checked_at)
                )
                checked_at = event.at
                for offer in fresh_offers:
                    if offer.id in known_offers:
                        continue
                    known_offers.add(offer.id)
                    if rng.random() < ACCEPT:
                        delay = timedelta(minutes=rng.expovariate(1 / ACCEPT_MINUTES))
                        if offer.created_at + delay < offer.expires_at:
                            push(
                                offer.created_at + delay,
                                "accept",
                                link_token(session, organization_id, "offer", offer.id),
                            )
    p_no_show = rates[1]
    with unit_of_work(engine, write=False) as session:
        offers = session.scalars(select(WaitlistOffer)).all()
        outcome.offers = len(offers)
        outcome.lapsed = sum(1 for o in offers if o.state == "expired")
        for slot in session.scalars(select(FreedSlot).where(FreedSlot.state == "filled")):
            appointment = session.get(Appointment, slot.appointment_id)
            assert appointment is not None
            outcome.refilled += 1
            outcome.refilled_minutes += (appointment.ends_at - appointment.starts_at).total_seconds() / 60
            outcome.refill_minutes.append((slot.updated_at - slot.created_at).total_seconds() / 60)
            priced = session.get(Service, appointment.service_id)
            margin = appointment.price_cents - (priced.cost_cents if priced else 0)
            outcome.margin_cents += margin
            outcome.expected_margin_cents += margin * (1 - _show_risk(appointment, p_no_show))
        for extra in session.scalars(select(Appointment).where(Appointment.id.in_(extras))):
            outcome.overbooked += 1
            priced = session.get(Service, extra.service_id)
            margin = extra.price_cents - (priced.cost_cents if priced else 0)
            outcome.expected_margin_cents += margin * (1 - _show_risk(extra, p_no_show))
            if extra.status not in ("booked", "confirmed"):
                continue  # missed, so nothing earned
            outcome.overbooked_came += 1
            outcome.margin_cents += margin
            beside = session.scalars(
                select(Appointment).where(
                    Appointment.provider_id == extra.provider_id,
                    Appointment.id != extra.id,
                    Appointment.status.in_(("booked", "confirmed")),
                    Appointment.starts_at < extra.ends_at,
                    Appointment.ends_at > extra.starts_at,
                )
            ).all()
            for host in beside:  # both came: the provider runs over by their overlap
                overlap = min(host.ends_at, extra.ends_at) - max(host.starts_at, extra.starts_at)
                outcome.overflow_minutes += overlap.total_seconds() / 60
        assert not session.scalars(
            select(WaitlistEntry).where(
                WaitlistEntry.status == "booked", WaitlistEntry.appointment_id.is_(None)
            )
        ).first()
    engine.dispose()
    return outcome


def _show_risk(appointment: Appointment, base: float) -> float:
    """The visit's served no-show probability as booked (the history's rate when none was served)."""
    served = appointment.no_show_probability
    return base if served is None else float(served)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _row(policy: str, outcomes: list[Outcome]) -> str:
    refill = [statistics.median(o.refill_minutes) for o in outcomes if o.refill_minutes]
    cells = [
        policy,
        f"{_median([o.freed for o in outcomes]):.0f}",
        f"{_median([o.freed_minutes / 60 for o in outcomes]):.1f}",
        f"{_median([o.refilled / max(1, o.freed) for o in outcomes]):.0%}",
        f"{_median([o.refilled_minutes / 60 for o in outcomes]):.1f}",
        f"{_median(refill):.0f} min" if refill else "-",
        f"{_median([o.offers for o in outcomes]):.0f} ({_median([o.accepted for o in outcomes]):.0f} / "
        f"{_median([o.lapsed for o in outcomes]):.0f})",
        f"${_median([o.margin_cents / 100 for o in outcomes]):,.0f}",
        f"${_median([o.expected_margin_cents / 100 for o in outcomes]):,.0f}",
        f"{_median([o.overbooked for o in outcomes]):.0f} "
        f"({_median([o.overbooked_came for o in outcomes]):.0f})",
        f"{_median([o.overflow_minutes for o in outcomes]):.0f} min",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="replays with different draws")
    arguments = parser.parse_args()
    rows: dict[str, list[Outcome]] = {"no backfill": [], "backfill": [], "backfill + overbooking": []}
    missed: list[int] = []
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        template, organization_id, location_id, statuses, past = seed(directory)
        rates = (statuses.get("cancelled", 0) / past, statuses.get("no_show", 0) / past)
        for draw in range(arguments.seeds):
            rng = random.Random(1000 + draw)
            base = directory / f"base-{draw}.db"
            shutil.copyfile(template, base)
            prepared = make_engine(f"sqlite:///{base}")
            extend_waitlist(prepared, organization_id, location_id, rng)
            plan = disruptions(prepared, rates, rng)
            missed.append(sum(1 for _, kind, _, _ in plan if kind == "no_show"))
            prepared.dispose()  # the last connection closed: the write-ahead log is in the file copied next
            wal = Path(f"{base}-wal")
            assert not wal.exists() or wal.stat().st_size == 0, "the copy would miss the waitlist's writes"
            for policy in rows:
                copy = directory / f"{policy.replace(' ', '-')}-{draw}.db"
                shutil.copyfile(base, copy)
                rows[policy].append(
                    replay(
                        copy,
                        organization_id,
                        plan,
                        backfill=policy != "no backfill",
                        overbook=policy == "backfill + overbooking",
                        rates=rates,
                        location_id=location_id,
                        rng=random.Random(2000 + draw),
                    )
                )
                print(policy, draw, rows[policy][-1], file=sys.stderr)
    lines = [
        f"Machine: {machine()}. Date: {datetime.now(UTC):%Y-%m-%d}. Demo clinic (800 clients) as of "
        f"{NOW:%Y-%m-%d}, next {DAYS} days; the history's rates: cancellation {rates[0]:.1%}, no-show "
        f"{rates[1]:.1%} (the month's bookings missed by their served probabilities: "
        f"{statistics.median(missed):.0f}, median); clients accept an offer with probability {ACCEPT:.0%} "
        f"after {ACCEPT_MINUTES:.0f} "
        f"minutes on average; overbooking cap {OVERBOOKING_CAP} expected minutes per provider and day. "
        f"Medians over {arguments.seeds} draws. Margin recovered: what the refilled and overbooked visits "
        "that came earned in the draw; expected margin: every refilled and overbooked visit's margin "
        "weighted by its served probability of coming.",
        "",
        "| policy | freed visits | provider hours freed | refilled | hours refilled | median time to refill "
        "| offers (accepted / lapsed) | margin recovered | expected margin | overbooked (came) "
        "| provider overflow |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for policy, outcomes in rows.items():
        lines.append(_row(policy, outcomes))
    write_section("engagement", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
