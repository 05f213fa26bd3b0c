"""Seed the demo clinic through the same service functions the API uses, so it obeys every rule.

History is made by booking each past appointment with the clock set to before it, then walking it
through its lifecycle at the times it would have happened: most complete, some are cancelled (with a
reason), some are no-shows. The future holds two weeks of bookings, fuller near today. Finally the
clinic's no-show and return models are trained on that history, activated in its registry, and every
upcoming booking and client is scored, so the demo shows model outputs from the start. A quarter of the
clients hold memberships (simulated, `_seed_memberships`), on which the churn model is trained and the
active members scored with their membership lapse risk.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceCreate, ServiceRead
from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate
from medspa.demo.catalog_data import (
    AFTERCARE,
    CADENCES,
    CANCELLATION_REASONS,
    DEVICES,
    FIRST_NAMES,
    LAST_NAMES,
    OPENING_HOURS,
    PROVIDERS,
    ROOMS,
    SERVICES,
    hhmm,
)
from medspa.engagement import service as engagement
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import ConflictError, ValidationFailedError
from medspa.kit.tz import local_to_utc, to_local
from medspa.memberships import service as memberships
from medspa.memberships.schemas import EndReason, MembershipEnd, MembershipStart
from medspa.resources import service as resources
from medspa.resources.schemas import (
    ClosureCreate,
    DeviceCreate,
    LicenseIn,
    LocationCreate,
    LocationRead,
    ProviderCreate,
    RoomCreate,
    WeeklySpan,
)
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import BookingRequest, WaitlistCreate
from medspa.security import service as security
from medspa.security.actors import Actor, Role, system_actor
from medspa.security.permissions import SECOND_FACTOR_REQUIRED
from medspa.security.schemas import OrganizationRead, UserCreate

DEMO_SLUG = "demo"
DEMO_PASSWORD = "medspa-demo"
ZONE = "America/New_York"
STAFF = [
    ("owner@lumen.example", "Alex Morgan (owner)", Role.OWNER),
    ("manager@lumen.example", "Sam Patel (manager)", Role.MANAGER),
    ("frontdesk@lumen.example", "Riley Chen (front desk)", Role.FRONT_DESK),
    ("provider@lumen.example", "Dr. Elena Marsh (provider)", Role.PROVIDER),
    ("marketing@lumen.example", "Jordan Lee (marketing)", Role.MARKETING),
    ("contractor@lumen.example", "Casey Ruiz (contractor)", Role.CONTRACTOR),
]
# The second factor of the demo owner and manager: published, so that `medspa demo code` can print the
# current code for a visitor. Never a real clinic's (enrol with `medspa users totp-enrol`).
DEMO_TOTP_SECRET = "MEDSPADEMOLUMENSECONDFACTORDEMOQ"
# The demo contractor's access ends this many days after the clinic is seeded.
CONTRACTOR_DAYS = 90
# How many days ahead bookings are made, and how often.
LEAD_DAYS = [0, 1, 2, 3, 5, 7, 10, 14, 21, 30, 45]
LEAD_WEIGHTS = [10, 12, 12, 10, 10, 12, 10, 9, 7, 5, 3]
# Memberships (simulated): a share of the clients, on three plans (name, monthly price in dollars, the
# plan's churn hazard relative to the middle one), some at a founding rate (20 % off) who leave sooner.
MEMBER_SHARE = 0.25
PLANS = [("Glow", 99, 2.0), ("Glow Plus", 149, 1.0), ("Glow Premium", 249, 0.5)]
PLAN_WEIGHTS = [45, 35, 20]
FOUNDING_SHARE = 0.3
FOUNDING_DISCOUNT = 0.8
FOUNDING_HAZARD = 1.6
MONTHLY_HAZARD = 0.06  # of the middle plan at the full price: about half leave within a year
END_REASONS = [EndReason.PRICE, EndReason.NOT_USING, EndReason.MOVED_AWAY, EndReason.DISSATISFIED]
HOLIDAYS = [date(2026, 11, 26), date(2026, 12, 25), date(2027, 1, 1), date(2027, 5, 31), date(2027, 7, 5)]


@dataclass
class SeedSummary:
    organization_id: uuid.UUID
    location_id: uuid.UUID
    clients: int
    past_appointments: int
    future_appointments: int
    statuses: dict[str, int]
    memberships: int = 0
    memberships_ended: int = 0
    models: dict[str, str] = field(default_factory=dict)
    scored_appointments: int = 0
    scored_clients: int = 0


def seed_demo(
    engine: Engine,
    *,
    now: datetime | None = None,
    client_count: int = 1500,
    past_days: int = 56,
    future_days: int = 14,
    seed: int = 20261128,
    slug: str = DEMO_SLUG,
    model_dir: Path | None = None,
) -> SeedSummary:
    """Create the `demo` organization with one location, its staff, catalogue, clients and bookings,
    and, given a `model_dir`, its trained and active models with every upcoming booking and client scored.

    The clinic is seeded as of `now` (the clock's by default): its history ends on the UTC date of `now`,
    its future starts after `now`. ConflictError when it exists already. Deterministic for a given `seed`
    and `now`, whatever the time of day. Runs as several
    units of work (set-up, clients, then a day of bookings each), so progress survives and each
    transaction stays small."""
    rng = random.Random(seed)
    now = (now or clock.now()).astimezone(UTC)
    today = now.date()
    with unit_of_work(engine) as session:
        organization, location, services = _seed_setup(session, rng, today, slug)
    actor = system_actor(organization.id, "demo-seed")
    with unit_of_work(engine) as session:
        client_ids = _seed_clients(session, actor, rng, client_count, today)
    with clock.frozen_at(now), unit_of_work(engine) as session:
        # A generator of its own, so that the bookings below are those of a demo without memberships.
        members, ended = _seed_memberships(
            session, actor, random.Random(seed + 1), client_ids, today, location.id
        )
    statuses: dict[str, int] = {}
    past = 0
    for offset in range(past_days, 0, -1):
        day = today - timedelta(days=offset)
        with unit_of_work(engine) as session:
            booker = _Booker(session, actor, location.id, rng, services, client_ids)
            for appointment_id, starts_at, ends_at, booked_at in booker.fill(day, attempts=70):
                status = booker.play_out(appointment_id, starts_at, ends_at, booked_at)
                statuses[status] = statuses.get(status, 0) + 1
                past += 1
    future = 0
    for offset in range(future_days + 1):
        day = today + timedelta(days=offset)
        attempts = max(15, 60 - 3 * offset)
        with unit_of_work(engine) as session:
            booker = _Booker(session, actor, location.id, rng, services, client_ids)
            for appointment_id, _starts_at, _ends_at, booked_at in booker.fill(
                day, attempts=attempts, not_after=now
            ):
                if offset <= 3 and rng.random() < 0.5:
                    with clock.frozen_at(min(now, booked_at + timedelta(hours=1))):
                        scheduling.confirm_appointment(session, actor=actor, appointment_id=appointment_id)
                    statuses["confirmed"] = statuses.get("confirmed", 0) + 1
                else:
                    statuses["booked"] = statuses.get("booked", 0) + 1
                future += 1
    # Waitlist entries are for dates ahead of the seed's now (which may be another than the clock's).
    with clock.frozen_at(now), unit_of_work(engine) as session:
        waiting = _seed_waitlist(session, actor, rng, location.id, services, client_ids, today, future_days)
    statuses["waitlisted"] = waiting
    # The seeded history is news to no one: no client is told of it (engagement reads on from here).
    with unit_of_work(engine) as session:
        engagement.start_after_history(session)
    summary = SeedSummary(
        organization.id, location.id, len(client_ids), past, future, statuses, members, ended
    )
    if model_dir is not None:
        _seed_models(engine, summary, model_dir, now)
    return summary


def _seed_models(engine: Engine, summary: SeedSummary, model_dir: Path, now: datetime) -> None:
    """Train both models on the seeded history (the days before the date of `now`), activate them, and
    score as of `now`."""
    from medspa.retention.scoring import refresh_scores, train_models
    from medspa.retention.serving import ModelCache

    cache = ModelCache(model_dir)
    today = now.date()
    # The seed's now may be another instant than the clock's (tests); score as of it.
    with clock.frozen_at(now):
        for kind in ("noshow", "returns", "churn"):
            try:
                summary.models |= train_models(
                    engine,
                    organization_id=summary.organization_id,
                    cache=cache,
                    kinds=[kind],
                    train_end=today,
                    activate=True,
                )
            except ValueError as error:  # too little history (a tiny demo): that model is left out
                logging.getLogger(__name__).warning("demo %s model not trained: %s", kind, error)
        report = refresh_scores(engine, organization_id=summary.organization_id, cache=cache, everything=True)
    summary.scored_appointments = report.appointments_scored
    summary.scored_clients = report.clients_scored


def _seed_memberships(
    session: Session,
    actor: Actor,
    rng: random.Random,
    client_ids: list[uuid.UUID],
    today: date,
    location_id: uuid.UUID,
) -> tuple[int, int]:
    """Memberships of `MEMBER_SHARE` of the clients, simulated: started 1 to 24 months before `today`,
    each lasting an exponential time whose monthly hazard is `MONTHLY_HAZARD` times its plan's factor,
    times `FOUNDING_HAZARD` at the founding rate; those whose time ran out by `today` have ended (with
    a reason), the others are active. So the churn model has something known at the start to learn
    from (plan and price); a real clinic's book is what `medspa models evaluate churn` measures.
    Returns (memberships, ended)."""
    count = ended = 0
    for client_id in client_ids:
        if rng.random() >= MEMBER_SHARE:
            continue
        plan, dollars, factor = rng.choices(PLANS, weights=PLAN_WEIGHTS)[0]
        founding = rng.random() < FOUNDING_SHARE
        price_cents = round(dollars * 100 * (FOUNDING_DISCOUNT if founding else 1.0))
        started_on = today - timedelta(days=rng.randint(30, 730))
        hazard = MONTHLY_HAZARD * factor * (FOUNDING_HAZARD if founding else 1.0)
        lasts_days = rng.expovariate(hazard) * 365.25 / 12
        membership = memberships.start_membership(
            session,
            actor=actor,
            client_id=client_id,
            data=MembershipStart(
                plan=plan, monthly_price_cents=price_cents, started_on=started_on, location_id=location_id
            ),
        )
        count += 1
        ends_on = started_on + timedelta(days=int(lasts_days))
        if ends_on <= today:
            memberships.end_membership(
                session,
                actor=actor,
                membership_id=membership.id,
                data=MembershipEnd(ended_on=ends_on, reason=rng.choice(END_REASONS)),
            )
            ended += 1
    return count, ended


def _seed_waitlist(
    session: Session,
    actor: Actor,
    rng: random.Random,
    location_id: uuid.UUID,
    services: list[tuple[ServiceRead, int]],
    client_ids: list[uuid.UUID],
    today: date,
    future_days: int,
) -> int:
    """Clients waiting for a place on the coming days, with the windows they gave the front desk."""
    count = 0
    for offset in range(1, min(future_days, 7) + 1):
        day = today + timedelta(days=offset)
        if day.weekday() not in OPENING_HOURS or day in HOLIDAYS:
            continue
        for _ in range(rng.randint(4, 8)):
            service = rng.choices([s for s, _ in services], weights=[w for _, w in services])[0]
            start = rng.choice([9, 10, 11, 12, 13, 14, 15])
            scheduling.add_to_waitlist(
                session,
                actor=actor,
                data=WaitlistCreate(
                    client_id=rng.choice(client_ids),
                    service_id=service.id,
                    location_id=location_id,
                    service_date=day,
                    window_starts_at=time(start, 0),
                    window_ends_at=time(min(start + rng.choice([2, 3, 4]), 19), 0),
                    priority="member" if rng.random() < 0.3 else "standard",
                ),
            )
            count += 1
    return count


def _seed_staff(
    session: Session, actor: Actor, today: date, *, provider_id: uuid.UUID, location_id: uuid.UUID
) -> None:
    """One user per role: the provider is Dr. Marsh's provider record, the contractor works at the
    location until CONTRACTOR_DAYS after `today`, the owner and manager sign in with DEMO_TOTP_SECRET's
    codes."""
    for email, name, role in STAFF:
        is_contractor = role is Role.CONTRACTOR
        security.create_user(
            session,
            actor=actor,
            data=UserCreate(
                email=email,
                display_name=name,
                role=role,
                password=DEMO_PASSWORD,
                provider_id=provider_id if role is Role.PROVIDER else None,
                expires_at=(
                    datetime.combine(today + timedelta(days=CONTRACTOR_DAYS), time(0), UTC)
                    if is_contractor
                    else None
                ),
                location_ids=[location_id] if is_contractor else [],
            ),
        )
        if role in SECOND_FACTOR_REQUIRED:
            security.enrol_totp(session, actor=actor, email=email, secret=DEMO_TOTP_SECRET)


def _seed_setup(
    session: Session, rng: random.Random, today: date, slug: str
) -> tuple[OrganizationRead, LocationRead, list[tuple[ServiceRead, int]]]:
    organization = security.create_organization(session, slug=slug, name="Lumen Aesthetics")
    actor = system_actor(organization.id, "demo-seed")
    location = resources.create_location(
        session,
        actor=actor,
        data=LocationCreate(
            name="Lumen Aesthetics — Riverside",
            time_zone=ZONE,
            slot_interval_minutes=15,
            minimum_notice_minutes=60,
            opening_hours=[
                WeeklySpan(weekday=day, starts_at=hhmm(a), ends_at=hhmm(b))
                for day, (a, b) in OPENING_HOURS.items()
            ],
        ),
    )
    for holiday in HOLIDAYS:
        resources.add_closure(
            session,
            actor=actor,
            location_id=location.id,
            data=ClosureCreate(closed_on=holiday, reason="holiday"),
        )
    providers = []
    for name, title, skills, licenses, shifts, (lunch_start, lunch_end) in PROVIDERS:
        provider = resources.create_provider(
            session,
            actor=actor,
            data=ProviderCreate(
                location_id=location.id,
                name=name,
                title=title,
                skills=skills,
                licenses=[
                    LicenseIn(
                        kind=kind,
                        number=f"{kind.upper()}-{rng.randint(100000, 999999)}",
                        expires_on=date(today.year + years, 12, 31),
                    )
                    for kind, years in licenses
                ],
                shifts=[
                    WeeklySpan(weekday=d, starts_at=hhmm(a), ends_at=hhmm(b)) for d, (a, b) in shifts.items()
                ],
                breaks=[
                    WeeklySpan(weekday=d, starts_at=hhmm(lunch_start), ends_at=hhmm(lunch_end))
                    for d in shifts
                ],
            ),
        )
        providers.append(provider)
    _seed_staff(session, actor, today, provider_id=providers[0].id, location_id=location.id)
    for name, room_type in ROOMS:
        resources.create_room(
            session, actor=actor, data=RoomCreate(location_id=location.id, name=name, room_type=room_type)
        )
    for name, device_type, cooldown in DEVICES:
        resources.create_device(
            session,
            actor=actor,
            data=DeviceCreate(
                location_id=location.id, name=name, device_type=device_type, cooldown_minutes=cooldown
            ),
        )
    services: list[tuple[ServiceRead, int]] = []
    for (
        name,
        category,
        minutes,
        setup,
        cleanup,
        skill,
        license_,
        rooms,
        device,
        price,
        cost,
        weight,
    ) in SERVICES:
        created = catalog.create_service(
            session,
            actor=actor,
            data=ServiceCreate(
                name=name,
                category=category,
                duration_minutes=minutes,
                setup_minutes=setup,
                cleanup_minutes=cleanup,
                required_skill=skill,
                required_license=license_,
                room_types=rooms,
                device_type=device,
                price_cents=price * 100,
                cost_cents=cost * 100,
                post_care_instructions=AFTERCARE.get(name, ""),
                **CADENCES.get(name, {}),
            ),
        )
        services.append((created, weight))
    return organization, location, services


def _seed_clients(
    session: Session, actor: Actor, rng: random.Random, count: int, today: date
) -> list[uuid.UUID]:
    ids = []
    for number in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        born = today - timedelta(days=rng.randint(21 * 365, 68 * 365))
        preferences: dict[str, object] = {}
        if rng.random() < 0.3:
            preferences["reminders"] = rng.choice(["sms", "email"])
        if rng.random() < 0.15:
            preferences["notes_for_provider"] = rng.choice(
                ["prefers numbing cream", "sensitive skin", "needle-shy"]
            )
        client = clients.create_client(
            session,
            actor=actor,
            data=ClientCreate(
                first_name=first,
                last_name=last,
                email=f"{first}.{last}.{number}@example.com".lower(),
                phone=f"+1555{rng.randint(0, 9999999):07d}",
                date_of_birth=born,
                preferences=preferences,
            ),
        )
        ids.append(client.id)
    return ids


class _Booker:
    """Books random requests on a day through the booking service, skipping those that do not fit."""

    def __init__(
        self,
        session: Session,
        actor: Actor,
        location_id: uuid.UUID,
        rng: random.Random,
        services: list[tuple[ServiceRead, int]],
        client_ids: list[uuid.UUID],
    ) -> None:
        self.session, self.actor, self.location_id, self.rng = session, actor, location_id, rng
        self.services = [s for s, _ in services]
        self.weights = [w for _, w in services]
        # A fifth of the clients are regulars who make up most of the visits.
        cut = max(1, len(client_ids) // 5)
        self.regulars, self.others = client_ids[:cut], client_ids[cut:] or client_ids
        # One client in five misses appointments often, so the no-show model has something to learn.
        self.unreliable = set(client_ids[2::5])
        self.client_of: dict[uuid.UUID, uuid.UUID] = {}

    def booking_time(self, day: date, *, not_after: datetime | None = None) -> datetime:
        """When a booking for `day` was made: the same morning for one in ten, most within two weeks,
        some over a month ahead (as clinics see); never after `not_after` (the seed's now)."""
        lead = self.rng.choices(LEAD_DAYS, weights=LEAD_WEIGHTS)[0]
        hour = 11 if lead == 0 else self.rng.randint(12, 23)  # UTC: 06:00-19:00 in New York
        made = datetime.combine(day - timedelta(days=lead), time(hour, self.rng.randrange(60)), tzinfo=UTC)
        if not_after is not None and made > not_after:
            made = not_after - timedelta(hours=self.rng.randint(1, 24 * 14))
        return made

    def fill(
        self, day: date, *, attempts: int, not_after: datetime | None = None
    ) -> list[tuple[uuid.UUID, datetime, datetime, datetime]]:
        """Book up to `attempts` random requests on `day`, each at its own booking time; returns
        (appointment, start, end, booked at) of those that fitted."""
        open_hours = OPENING_HOURS.get(day.weekday())
        if open_hours is None or day in HOLIDAYS:
            return []
        opens, closes = hhmm(open_hours[0]), hhmm(open_hours[1])
        slots = (closes.hour * 60 + closes.minute - opens.hour * 60 - opens.minute) // 15
        booked = []
        for _ in range(attempts):
            service = self.rng.choices(self.services, weights=self.weights)[0]
            minute = opens.hour * 60 + opens.minute + 15 * self.rng.randrange(slots)
            starts_at = local_to_utc(day, time(minute // 60, minute % 60), ZONE)
            if starts_at is None:
                continue
            pool = self.regulars if self.rng.random() < 0.6 else self.others
            request = BookingRequest(
                client_id=self.rng.choice(pool),
                service_id=service.id,
                location_id=self.location_id,
                starts_at=starts_at,
            )
            booked_at = self.booking_time(day, not_after=not_after)
            try:
                with clock.frozen_at(booked_at), self.session.begin_nested():
                    appointment = scheduling.book_appointment(self.session, actor=self.actor, data=request)
            except (ConflictError, ValidationFailedError):
                continue
            self.client_of[appointment.id] = appointment.client_id
            booked.append((appointment.id, appointment.starts_at, appointment.ends_at, booked_at))
        return booked

    def miss_chance(self, appointment_id: uuid.UUID, starts_at: datetime, booked_at: datetime) -> float:
        """How likely the client is to miss it, before any confirmation: 2 % for a reliable client booked
        the same day, rising with every day of lead time (7 times at 30 days), 5 times for the clients
        who often miss, and half again in the early morning, as clinics report."""
        lead_days = min(30.0, (starts_at - booked_at) / timedelta(days=1))
        chance = 0.02 * (1 + lead_days / 5)
        if self.client_of.get(appointment_id) in self.unreliable:
            chance *= 5
        if to_local(starts_at, ZONE).hour < 11:
            chance *= 1.5
        return min(chance, 0.9)

    def play_out(
        self, appointment_id: uuid.UUID, starts_at: datetime, ends_at: datetime, booked_at: datetime
    ) -> str:
        """Walk a past appointment to its outcome at the times it would have happened."""
        session, actor, rng = self.session, self.actor, self.rng
        if rng.random() < 0.09:
            hours_before = min(rng.choice([2, 20, 30, 60]), (starts_at - booked_at) / timedelta(hours=1) / 2)
            with clock.frozen_at(starts_at - timedelta(hours=hours_before)):
                scheduling.cancel_appointment(
                    session,
                    actor=actor,
                    appointment_id=appointment_id,
                    reason=rng.choice(CANCELLATION_REASONS),
                )
            return "cancelled"
        miss = self.miss_chance(appointment_id, starts_at, booked_at)
        if rng.random() < 0.5:
            # Confirmed the day before (or soon after booking, if that was later): fewer misses.
            with clock.frozen_at(max(starts_at - timedelta(days=1), booked_at + timedelta(minutes=30))):
                scheduling.confirm_appointment(session, actor=actor, appointment_id=appointment_id)
            miss *= 0.6
        if rng.random() < miss:
            with clock.frozen_at(starts_at + timedelta(minutes=20)):
                scheduling.mark_no_show(session, actor=actor, appointment_id=appointment_id)
            return "no_show"
        with clock.frozen_at(starts_at - timedelta(minutes=rng.randint(0, 12))):
            scheduling.check_in(session, actor=actor, appointment_id=appointment_id)
        with clock.frozen_at(starts_at + timedelta(minutes=rng.randint(0, 8))):
            scheduling.start_service(session, actor=actor, appointment_id=appointment_id)
        with clock.frozen_at(ends_at + timedelta(minutes=rng.randint(0, 6))):
            scheduling.complete_appointment(session, actor=actor, appointment_id=appointment_id)
        return "completed"
