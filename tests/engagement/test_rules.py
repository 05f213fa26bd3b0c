"""Property-based tests of the rules every message passes: nothing in quiet hours (in the location's
zone, across daylight-saving changes), nothing over a cap, nothing without consent for that kind of
message; first on the rules alone, then through the dispatcher on a clinic's database over random days."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from medspa.clients.schemas import ConsentChange
from medspa.engagement.channels import Channels, Email, Sms
from medspa.engagement.models import Message
from medspa.engagement.rules import (
    DAY,
    WEEK,
    Decision,
    Facts,
    Policy,
    cap_reached,
    decide,
    is_quiet,
    quiet_ends,
)
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.security import service as security
from medspa.security.actors import system_actor
from tests.engagement.conftest import Clinic
from tests.factories import make_location, make_provider, make_room, make_service

# Hypothesis takes naive bounds (and makes aware instants with `timezones`).
BOUNDS = tuple(
    datetime.fromisoformat(day) for day in ("2026-01-01", "2028-12-31", "2027-03-10", "2027-03-16")
)
ZONES = ("America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata", "America/St_Johns")
instants = st.datetimes(
    min_value=BOUNDS[0],
    max_value=BOUNDS[1],
    timezones=st.just(UTC),
)
wall_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
policies = st.builds(
    Policy,
    quiet_starts_at=wall_times,
    quiet_ends_at=wall_times,
    daily_cap=st.integers(0, 5),
    weekly_cap=st.integers(0, 12),
    recent_contact_hours=st.integers(0, 96),
)
facts = st.builds(
    Facts,
    channel=st.sampled_from(["email", "sms"]),
    purpose=st.sampled_from(["appointment", "marketing"]),
    is_reply=st.booleans(),
    not_after=st.none() | instants,
    has_address=st.booleans(),
    channel_consent=st.booleans(),
    marketing_consent=st.booleans(),
)


@given(
    facts,
    policies,
    st.sampled_from(ZONES),
    instants,
    st.lists(st.timedeltas(timedelta(0), WEEK), max_size=15),
)
def test_what_the_rules_let_through_keeps_every_promise(
    fact: Facts, policy: Policy, zone: str, now: datetime, ago: list[timedelta]
) -> None:
    recent = [now - delta for delta in ago]
    decision = decide(fact, policy, zone, now, recent)
    if decision.action == "send":
        assert fact.has_address
        assert fact.channel_consent
        assert fact.purpose == "appointment" or fact.marketing_consent
        assert fact.not_after is None or now < fact.not_after
        if not fact.is_reply:
            assert not is_quiet(policy, zone, now)
            assert sum(1 for t in recent if now - DAY < t <= now) < policy.daily_cap
            assert sum(1 for t in recent if now - WEEK < t <= now) < policy.weekly_cap
    if decision.action == "defer":
        assert decision.until is not None
        assert decision.until > now
        assert not is_quiet(policy, zone, decision.until)
        assert fact.not_after is None or decision.until < fact.not_after


@given(policies, st.sampled_from(ZONES), instants)
def test_quiet_hours_end_at_the_first_instant_outside_them(policy: Policy, zone: str, now: datetime) -> None:
    end = quiet_ends(policy, zone, now)
    assert not is_quiet(policy, zone, end)
    if end > now:
        assert is_quiet(policy, zone, now)
        assert is_quiet(policy, zone, end - timedelta(minutes=1))
        assert end - now <= timedelta(hours=25)


def test_quiet_hours_follow_the_wall_clock_on_a_daylight_saving_day() -> None:
    policy = Policy()  # 21:00-08:00
    spring_night = datetime(2027, 3, 14, 5, 0, tzinfo=UTC)  # 00:00 EST, clocks spring forward at 02:00
    autumn_night = datetime(2027, 11, 7, 4, 0, tzinfo=UTC)  # 00:00 EDT, clocks fall back at 02:00
    assert quiet_ends(policy, "America/New_York", spring_night) == datetime(2027, 3, 14, 12, 0, tzinfo=UTC)
    assert quiet_ends(policy, "America/New_York", autumn_night) == datetime(2027, 11, 7, 13, 0, tzinfo=UTC)
    assert is_quiet(policy, "America/New_York", datetime(2027, 3, 14, 11, 59, tzinfo=UTC))
    assert not is_quiet(policy, "America/New_York", datetime(2027, 3, 14, 12, 0, tzinfo=UTC))


def test_caps_count_a_rolling_day_and_week() -> None:
    policy = Policy(daily_cap=2, weekly_cap=3)
    now = datetime(2027, 1, 12, 12, tzinfo=UTC)
    assert cap_reached(policy, now, [now - timedelta(hours=25), now - timedelta(hours=1)]) is None
    assert cap_reached(policy, now, [now - timedelta(hours=2), now - timedelta(hours=1)]) is not None
    three_days = [now - timedelta(days=d) for d in (1.5, 2.5, 3.5)]
    assert cap_reached(policy, now, three_days) == "weekly cap: 3 messages in the last 7 days (cap 3)"


def test_recent_contact_drops_a_marketing_message_only() -> None:
    policy = Policy(recent_contact_hours=72)
    now = datetime(2027, 1, 12, 15, tzinfo=UTC)  # 10:00 in New York: no quiet hours
    marketing = Facts("sms", "marketing", False, None, True, True, True)
    reminder = replace(marketing, purpose="appointment")
    lately, long_ago = [now - timedelta(hours=71)], [now - timedelta(hours=72)]

    assert decide(marketing, policy, "America/New_York", now, lately) == Decision(
        "suppress", "contacted within the last 72 hours"
    )
    assert decide(marketing, policy, "America/New_York", now, long_ago).action == "send"
    assert decide(reminder, policy, "America/New_York", now, lately).action == "send"
    # the message's own copy by the other channel (left out of the contacts) is no recent contact
    assert decide(marketing, policy, "America/New_York", now, lately, recent_contacts=[]).action == "send"


@dataclass
class Recorder:
    """Channels that record what they are handed (the rules under test act before them); each send
    takes a second of the clock, so the decisions are in a strict order."""

    clock: ManualClock
    sent: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: Email | Sms) -> str:
        with self.lock:
            self.sent.append((message.to, type(message).__name__))
        self.clock.advance(timedelta(seconds=1))
        return uuid.uuid4().hex


def new_clinic(engine: Engine, clock: ManualClock, channels: Channels, zone: str) -> Clinic:
    with unit_of_work(engine) as session:
        org = security.create_organization(session, slug=f"p-{uuid.uuid4().hex[:12]}", name="Property Clinic")
    owner = system_actor(org.id, "test")
    with unit_of_work(engine) as session:
        location = make_location(session, actor=owner, time_zone=zone, hours=("07:00", "22:00"))
        provider = make_provider(session, actor=owner, location_id=location.id, shift=("07:00", "22:00"))
        make_room(session, actor=owner, location_id=location.id)
        service = make_service(session, actor=owner, duration=30)
    return Clinic(engine, owner, clock, channels, location.id, provider.id, service.id)


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
@settings(
    max_examples=5,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    zone=st.sampled_from(ZONES),
    consents=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=3, max_size=5),
    daily_cap=st.integers(1, 3),
    reminders=st.lists(st.integers(1, 30), min_size=1, max_size=4, unique=True),
    steps=st.lists(st.integers(10, 600), min_size=3, max_size=8),
    start=st.datetimes(
        min_value=BOUNDS[2],
        max_value=BOUNDS[3],
        timezones=st.just(UTC),
    ),
)
def test_through_the_dispatcher_nothing_breaks_quiet_hours_caps_or_consent(
    engine: Engine,
    test_clock: ManualClock,
    zone: str,
    consents: list[tuple[bool, bool]],
    daily_cap: int,
    reminders: list[int],
    steps: list[int],
    start: datetime,
) -> None:
    recorder = Recorder(test_clock)
    channels = Channels(email=recorder, sms=recorder)
    test_clock.set(start)
    clinic = new_clinic(engine, test_clock, channels, zone)
    clinic.set_policy(daily_cap=daily_cap, weekly_cap=daily_cap * 2, reminder_hours=reminders)
    people = [
        clinic.client(phone=f"+1555010{n:04d}", consent=ConsentChange(email=email, sms=sms))
        for n, (email, sms) in enumerate(consents)
    ]
    slots = []
    with unit_of_work(engine, write=False) as session:
        from medspa.scheduling import service as scheduling

        today = start.date()
        slots = scheduling.find_slots(
            session,
            actor=clinic.owner,
            location_id=clinic.location_id,
            service_id=clinic.service_id,
            first_date=today + timedelta(days=1),
            last_date=today + timedelta(days=3),
        )
    apart = slots[::4]  # 30-minute visits on a 15-minute grid: every fourth start overlaps no other
    for index, slot in enumerate(apart[: 3 * len(people)]):
        clinic.book(people[index % len(people)].id, slot.starts_at)
    for minutes in steps:
        clinic.run()
        test_clock.advance(timedelta(minutes=minutes))
    clinic.run()

    with unit_of_work(engine, write=False) as session:
        sent = session.scalars(
            select(Message).where(
                Message.organization_id == clinic.owner.organization_id, Message.state == "sent"
            )
        ).all()
    allowed = {p.id: c for p, c in zip(people, consents, strict=True)}
    policy = Policy(daily_cap=daily_cap, weekly_cap=daily_cap * 2)
    assert len(recorder.sent) == len(sent)
    if any(email or sms for email, sms in consents):  # every booking's confirmation is a reply: it goes
        assert sent
    for message in sent:  # each as it was decided, at `claimed_at`
        decided = message.claimed_at
        assert decided is not None
        email_ok, sms_ok = allowed[message.client_id]
        assert email_ok if message.channel == "email" else sms_ok
        if not message.is_reply:
            assert not is_quiet(policy, zone, decided)
            before = [
                m.claimed_at
                for m in sent
                if m.client_id == message.client_id and m.claimed_at is not None and m.claimed_at < decided
            ]
            assert cap_reached(policy, decided, before) is None
