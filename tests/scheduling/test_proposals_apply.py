"""Applying proposals: refused, naming what changed, when the day moved on; always possible on an unchanged
day, with the day afterwards exactly as proposed; the move limit kept as the proposal counts it; never
both of two applies of one proposal, nor an apply that undoes a staff reschedule (PostgreSQL, threads)."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased

from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import ConflictError, MedspaError
from medspa.resources import service as resources
from medspa.resources.schemas import PeriodCreate
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import Reservation, ScheduleProposal
from medspa.scheduling.schemas import AppointmentRead, ProposalRead, RescheduleRequest, WaitlistRead
from medspa.scheduling.solver.instance import parse_instance
from medspa.scheduling.solver.solution import Assignment, Replan, Solution, parse_solution
from medspa.scheduling.solver.validate import check, replan_violations
from medspa.security.actors import Actor
from tests.factories import make_client, make_provider, make_room, make_service
from tests.scheduling.test_availability import NOW, Clinic, build
from tests.scheduling.test_booking import request as booking_request
from tests.scheduling.test_optimization import DAY, TEN, busy_day, propose, waitlist
from tests.test_concurrency import double_bookings

ZONE = "America/New_York"


@pytest.fixture(autouse=True)
def frozen_clock(test_clock: ManualClock) -> None:
    test_clock.set(NOW)


def appointments(engine: Engine, actor: Actor, clinic: Clinic) -> list[AppointmentRead]:
    with unit_of_work(engine, write=False) as session:
        return scheduling.list_appointments(session, actor=actor, location_id=clinic.location_id).items


def client_name(engine: Engine, actor: Actor, client_id: uuid.UUID) -> str:
    with unit_of_work(engine, write=False) as session:
        return clients.client_names(session, actor=actor, client_ids={client_id})[client_id]


def apply(engine: Engine, actor: Actor, proposal: ProposalRead) -> ProposalRead:
    with unit_of_work(engine) as session:
        return scheduling.apply_proposal(session, actor=actor, proposal_id=proposal.id)


def book_then_call_out(engine: Engine, actor: Actor, clinic: Clinic, *, hours: int) -> AppointmentRead:
    """Book 10:00 with the clinic's provider, who then takes `hours` off from 10:00."""
    with unit_of_work(engine) as session:
        booking = scheduling.book_appointment(
            session, actor=actor, data=booking_request(clinic, TEN, provider_id=clinic.provider_id)
        )
        resources.add_time_off(
            session,
            actor=actor,
            provider_id=clinic.provider_id,
            data=PeriodCreate(starts_at=TEN, ends_at=TEN + timedelta(hours=hours)),
        )
    return booking


def refused_unchanged(engine: Engine, actor: Actor, clinic: Clinic, proposal: ProposalRead) -> str:
    """Apply a proposal the day has moved away from: 409, and nothing changed; the message."""
    before = sorted(
        (a.id, a.status, a.starts_at, a.provider_id, a.room_id) for a in appointments(engine, actor, clinic)
    )
    with pytest.raises(scheduling.StaleProposalError) as refused:
        apply(engine, actor, proposal)
    assert refused.value.status_code == 409
    after = sorted(
        (a.id, a.status, a.starts_at, a.provider_id, a.room_id) for a in appointments(engine, actor, clinic)
    )
    assert after == before
    with unit_of_work(engine, write=False) as session:
        assert scheduling.get_proposal(session, actor=actor, proposal_id=proposal.id).status == "proposed"
        waiting = scheduling.list_waitlist(
            session, actor=actor, location_id=clinic.location_id, service_date=DAY
        )
    assert len(waiting) == 3
    return refused.value.detail


# --- stale proposals ----------------------------------------------------------------------------------


def test_a_booking_staff_moved_to_the_next_day_is_named_and_not_moved_back(
    engine: Engine, owner: Actor
) -> None:
    # given a proposal made on the day with one booking (at 10:00) and three clients waiting
    clinic = busy_day(engine, owner)
    proposal = propose(engine, owner, clinic, max_moves=1)
    (booking,) = appointments(engine, owner, clinic)
    # when the front desk moves that booking to the next day, then the proposal is applied
    with unit_of_work(engine) as session:
        scheduling.reschedule_appointment(
            session,
            actor=owner,
            appointment_id=booking.id,
            data=RescheduleRequest(starts_at=TEN + timedelta(days=1)),
        )
    message = refused_unchanged(engine, owner, clinic, proposal)
    # then it is refused, naming the booking as staff know it; the booking stays on the next day
    name = client_name(engine, owner, booking.client_id)
    service = _service_name(engine, owner, clinic)
    assert message == (
        f"the day has changed since this proposal was made: {name}'s {service} at 10:00 AM was moved to "
        "Wed, Mar 4, 2026 at 10:00 AM. Optimize it again"
    )
    assert [a.starts_at for a in appointments(engine, owner, clinic)] == [TEN + timedelta(days=1)]


def _service_name(engine: Engine, actor: Actor, clinic: Clinic) -> str:
    from medspa.catalog import service as catalog

    with unit_of_work(engine, write=False) as session:
        return catalog.get_service(session, actor=actor, service_id=clinic.service_id).name


def test_a_booking_staff_cancelled_is_named(engine: Engine, owner: Actor) -> None:
    clinic = busy_day(engine, owner)
    proposal = propose(engine, owner, clinic)
    (booking,) = appointments(engine, owner, clinic)
    with unit_of_work(engine) as session:
        scheduling.cancel_appointment(session, actor=owner, appointment_id=booking.id, reason="client called")
    message = refused_unchanged(engine, owner, clinic, proposal)
    name = client_name(engine, owner, booking.client_id)
    assert f"{name}'s Service " in message
    assert message.endswith(" at 10:00 AM was cancelled. Optimize it again")
    assert str(booking.id) not in message


def test_a_new_booking_on_the_day_is_named(engine: Engine, owner: Actor) -> None:
    clinic = busy_day(engine, owner)
    with unit_of_work(engine) as session:
        later = make_provider(session, actor=owner, location_id=clinic.location_id, shift=("14:00", "17:00"))
    proposal = propose(engine, owner, clinic)
    with unit_of_work(engine) as session:  # at 15:00, out of the proposal's way: still refused
        other = make_client(session, actor=owner)
        scheduling.book_appointment(
            session,
            actor=owner,
            data=booking_request(clinic, TEN + timedelta(hours=5), provider_id=later.id).model_copy(
                update={"client_id": other.id}
            ),
        )
    message = refused_unchanged(engine, owner, clinic, proposal)
    assert f"{client_name(engine, owner, other.id)}'s Service " in message
    assert message.endswith(" at 3:00 PM was booked. Optimize it again")


def test_a_change_of_the_locations_set_up_is_named(engine: Engine, owner: Actor) -> None:
    clinic = busy_day(engine, owner)
    proposal = propose(engine, owner, clinic)
    with unit_of_work(engine) as session:
        make_room(session, actor=owner, location_id=clinic.location_id)
    message = refused_unchanged(engine, owner, clinic, proposal)
    assert message == (
        "the day has changed since this proposal was made: the location's set-up (opening hours, staff, "
        "rooms or devices) has changed. Optimize it again"
    )


# --- the move limit, dropped bookings, and the day after applying ---------------------------------------


def _ordinary_day(engine: Engine, owner: Actor) -> tuple[Clinic, list[AppointmentRead]]:
    """Three providers and three rooms, eight bookings of the day with whichever provider the booking
    path chose, and six clients waiting for the whole day: an ordinary day (nobody called out)."""
    clinic = build(engine, owner, shift=("09:00", "17:00"), duration=30)
    with unit_of_work(engine) as session:
        for _ in range(2):
            make_provider(session, actor=owner, location_id=clinic.location_id, shift=("09:00", "17:00"))
            make_room(session, actor=owner, location_id=clinic.location_id)
        for hour in (9, 10, 10, 11, 13, 14, 14, 16):
            client = make_client(session, actor=owner)
            scheduling.book_appointment(
                session,
                actor=owner,
                data=booking_request(clinic, datetime(2026, 3, 3, hour + 5, 0, tzinfo=UTC)).model_copy(
                    update={"client_id": client.id}
                ),
            )
    for _ in range(6):
        waitlist(engine, owner, clinic, "09:00", "17:00", "member")
    return clinic, appointments(engine, owner, clinic)


def _stored_replan_violations(engine: Engine, proposal: ProposalRead) -> list[str]:
    """The replanning rules checked on the stored documents, apart from the solver."""
    with unit_of_work(engine, write=False) as session:
        row = session.get(ScheduleProposal, proposal.id)
        assert row is not None
        instance, solution = parse_instance(row.instance), parse_solution(row.solution)
        current = Solution.of(
            instance.name,
            [
                Assignment(key, was["provider"], was["room"], was["device"], int(was["start"]))
                for key, (_, _, *rest) in row.requests.items()
                for was in rest
            ],
        )
    assert check(instance, solution).violations == ()
    return replan_violations(instance, Replan(current, proposal.max_moves), solution)


def _assert_the_day_is_as_proposed(
    session: Session, actor: Actor, clinic: Clinic, proposal: ProposalRead
) -> None:
    """After applying all of it (read in `session`, the apply's own or a later one): every booking where
    the proposal put it (a dropped one where it was), every placed client booked where proposed, and no
    two active reservations of one resource overlapping."""
    now = {
        a.id: a
        for a in scheduling.list_appointments(session, actor=actor, location_id=clinic.location_id).items
        if a.status != "cancelled"
    }
    booked = {
        e.id: e
        for e in scheduling.list_waitlist(
            session, actor=actor, location_id=clinic.location_id, service_date=DAY, status="booked"
        )
    }
    for item in proposal.items:
        if item.kind == "appointment":
            where = item.was if item.status == "dropped" else item
            assert where is not None
            a = now[item.record_id]
            assert (a.starts_at, a.provider_id, a.room_id, a.device_id) == (
                where.starts_at,
                where.provider_id,
                where.room_id,
                where.device_id,
            ), item.status
        elif item.status == "booked":
            appointment_id = booked[item.record_id].appointment_id
            assert appointment_id is not None
            a = now[appointment_id]
            assert (a.starts_at, a.provider_id, a.room_id) == (item.starts_at, item.provider_id, item.room_id)
        else:
            assert item.record_id not in booked
    one, other = aliased(Reservation), aliased(Reservation)
    overlapping = session.scalar(
        select(func.count())
        .select_from(one)
        .join(other, (one.resource_id == other.resource_id) & (one.id < other.id))
        .where(
            one.organization_id == actor.organization_id,
            one.is_active.is_(True),
            other.is_active.is_(True),
            one.starts_at < other.ends_at,
            other.starts_at < one.ends_at,
        )
    )
    assert overlapping == 0


def _the_day_is_as_proposed(engine: Engine, actor: Actor, clinic: Clinic, proposal: ProposalRead) -> None:
    with unit_of_work(engine, write=False) as session:
        _assert_the_day_is_as_proposed(session, actor, clinic, proposal)


def test_replanning_an_ordinary_day_keeps_the_limit_drops_nothing_that_fits_and_applies(
    engine: Engine, owner: Actor
) -> None:
    # given an ordinary day (nobody called out) and members waiting
    clinic, before = _ordinary_day(engine, owner)
    # when it is replanned with "move up to 3 bookings"
    proposal = propose(engine, owner, clinic, max_moves=3)
    # then at most 3 bookings change, as the proposal itself counts them, none is dropped, and it applies
    statuses = [i.status for i in proposal.items if i.kind == "appointment"]
    assert len(statuses) == len(before) == 8
    assert proposal.moves == statuses.count("moved") + statuses.count("dropped") <= 3
    assert "dropped" not in statuses
    assert _stored_replan_violations(engine, proposal) == []
    applied = apply(engine, owner, proposal)
    assert applied.status == "applied"
    _the_day_is_as_proposed(engine, owner, clinic, proposal)


def test_a_booking_that_cannot_stay_is_left_as_booked_and_its_room_stays_free_of_others(
    engine: Engine, owner: Actor
) -> None:
    # given one provider with a 10:00 booking in the only room, who calls out; a second provider who
    # cannot give the service (another skill), and a client waiting for that room at that time
    clinic = build(engine, owner, shift=("09:00", "12:00"))
    with unit_of_work(engine) as session:
        make_provider(session, actor=owner, location_id=clinic.location_id, skills=["filler"])
    book_then_call_out(engine, owner, clinic, hours=2)
    waitlist(engine, owner, clinic, "10:00", "11:00")
    # when the day is replanned with one move allowed, and applied
    proposal = propose(engine, owner, clinic, max_moves=1)
    (kept,) = [i for i in proposal.items if i.kind == "appointment"]
    assert (kept.status, kept.starts_at, kept.provider_id) == ("dropped", None, None)
    assert proposal.moves == 1
    assert _stored_replan_violations(engine, proposal) == []
    apply(engine, owner, proposal)
    # then the booking is exactly where it was, for the front desk to call the client
    (booking,) = appointments(engine, owner, clinic)
    assert (booking.id, booking.status, booking.starts_at, booking.provider_id) == (
        kept.record_id,
        "booked",
        TEN,
        clinic.provider_id,
    )
    _the_day_is_as_proposed(engine, owner, clinic, proposal)


def test_a_move_limit_below_the_bookings_that_cannot_stay_is_refused_naming_them(
    engine: Engine, owner: Actor
) -> None:
    clinic = build(engine, owner, shift=("09:00", "12:00"))
    booking = book_then_call_out(engine, owner, clinic, hours=1)
    with pytest.raises(ConflictError) as refused:
        propose(engine, owner, clinic, max_moves=0)
    name = client_name(engine, owner, booking.client_id)
    assert refused.value.detail.startswith(
        f"1 bookings cannot stay where they are, more than the 0 allowed to move: {name}'s Service "
    )
    assert "is on break at 10:00 AM-11:00 AM). Allow at least 1 moves" in refused.value.detail


# --- a proposal made on an unchanged day always applies (generated days) -----------------------------------


def _generated_day(engine: Engine, owner: Actor, seed: int) -> tuple[Clinic, bool]:
    """A day drawn from `seed`: 2-3 providers, 1-3 rooms, up to 12 half-hour bookings where the booking
    path put them, 2-6 clients (members or not) waiting an hour or two, and usually the first provider's
    time off over one of their bookings, or over some other part of the day. Whether some booking fell
    in that time off (then only replanning can plan the day)."""
    rng = random.Random(seed)
    clinic = build(engine, owner, shift=("09:00", "17:00"), duration=30)
    providers = [clinic.provider_id]
    with unit_of_work(engine) as session:
        for _ in range(rng.randint(1, 2)):
            providers.append(make_provider(session, actor=owner, location_id=clinic.location_id).id)
        for _ in range(rng.randint(0, 2)):
            make_room(session, actor=owner, location_id=clinic.location_id)
    for _ in range(rng.randint(4, 12)):
        starts_at = datetime(2026, 3, 3, 14, 0, tzinfo=UTC) + timedelta(minutes=30 * rng.randrange(16))
        try:
            with unit_of_work(engine) as session:
                client = make_client(session, actor=owner)
                scheduling.book_appointment(
                    session,
                    actor=owner,
                    data=booking_request(clinic, starts_at, provider_id=rng.choice(providers)).model_copy(
                        update={"client_id": client.id}
                    ),
                )
        except MedspaError:
            pass  # taken: the day simply has one booking fewer
    for _ in range(rng.randint(2, 6)):
        start = rng.randrange(9, 16)
        window = (f"{start:02d}:00", f"{min(17, start + rng.randint(1, 2)):02d}:00")
        waitlist(engine, owner, clinic, *window, rng.choice(("member", "standard")))
    theirs = [a for a in appointments(engine, owner, clinic) if a.provider_id == providers[0]]
    if rng.random() < 0.2:
        return clinic, False
    if theirs and rng.random() < 0.8:
        off_from = rng.choice(theirs).starts_at - timedelta(minutes=30 * rng.randint(0, 2))
    else:
        off_from = datetime(2026, 3, 3, 14, 0, tzinfo=UTC) + timedelta(hours=rng.randrange(7))
    off = (off_from, off_from + timedelta(hours=rng.randint(1, 3)))
    with unit_of_work(engine) as session:
        resources.add_time_off(
            session,
            actor=owner,
            provider_id=providers[0],
            data=PeriodCreate(starts_at=off[0], ends_at=off[1]),
        )
    return clinic, any(a.starts_at < off[1] and off[0] < a.ends_at for a in theirs)


class _RolledBackError(Exception):
    """Raised to roll an apply back once checked."""


def _applies_as_proposed(engine: Engine, actor: Actor, clinic: Clinic, proposal: ProposalRead) -> None:
    """Apply all of the proposal, check the day inside the apply's transaction, then roll it back, so the
    day is unchanged for the next proposal."""
    try:
        with unit_of_work(engine) as session:
            applied = scheduling.apply_proposal(session, actor=actor, proposal_id=proposal.id)
            assert applied.status == "applied"
            session.flush()
            _assert_the_day_is_as_proposed(session, actor, clinic, proposal)
            raise _RolledBackError
    except _RolledBackError:
        return


@pytest.mark.parametrize("seed", range(8))
def test_a_proposal_made_on_an_unchanged_day_always_applies(engine: Engine, owner: Actor, seed: int) -> None:
    # given a generated day
    clinic, stranded = _generated_day(engine, owner, seed)
    refusals: list[tuple[int | None, str]] = []
    for max_moves in (None, 0, 2, 10):
        # when it is optimized (a proposal changes nothing of the day)
        try:
            proposal = propose(engine, owner, clinic, max_moves=max_moves)
        except ConflictError as error:  # only when the day cannot be kept within the limit
            refusals.append((max_moves, error.detail))
            continue
        # then the proposal keeps the limit and the replanning rules, and applying all of it succeeds and
        # leaves the day exactly as proposed (checked inside the apply's transaction, then rolled back)
        if max_moves is not None:
            assert proposal.moves <= max_moves
            assert _stored_replan_violations(engine, proposal) == []
        _applies_as_proposed(engine, owner, clinic, proposal)
    # and it is refused only when some booking cannot stay where it is, for the reason that says so
    assert not refusals or stranded
    for max_moves, detail in refusals:
        why = "cannot stay where they are, more than" if max_moves is not None else "replan the day"
        assert why in detail
    assert len(refusals) < 4 or stranded


# --- races (PostgreSQL, real threads) -----------------------------------------------------------------


def _race(*work: Callable[[], object]) -> list[object]:
    """Run the callables at once, each in its thread; what each returned, or the error it raised (a
    MedspaError, or a database error such as a deadlock PostgreSQL broke by aborting one side)."""
    start = threading.Barrier(len(work))
    results: list[object] = [None] * len(work)
    told = clock.current()

    def run(index: int) -> None:
        with clock.using(told):
            run_now(index)

    def run_now(index: int) -> None:
        start.wait()
        try:
            results[index] = work[index]()
        except (MedspaError, DBAPIError) as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _postgres_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes writers, so these cannot interleave; the race is PostgreSQL's")


@pytest.mark.parametrize("attempt", range(3))
def test_two_applies_of_one_proposal_at_once_one_wins_the_other_is_409(
    engine: Engine, owner: Actor, attempt: int
) -> None:
    _postgres_only(engine)
    clinic = busy_day(engine, owner)
    proposal = propose(engine, owner, clinic)
    results = _race(lambda: apply(engine, owner, proposal), lambda: apply(engine, owner, proposal))
    won = [r for r in results if isinstance(r, ProposalRead)]
    lost = [r for r in results if isinstance(r, ConflictError)]
    assert (len(won), len(lost)) == (1, 1), results
    assert lost[0].status_code == 409
    assert len(appointments(engine, owner, clinic)) == 3  # booked once: the booking and two placements
    assert double_bookings(engine, owner) == 0


@pytest.mark.parametrize("attempt", range(3))
def test_an_apply_racing_a_staff_reschedule_never_undoes_it(
    engine: Engine, owner: Actor, attempt: int
) -> None:
    _postgres_only(engine)
    # given a replan that moves the 10:00 booking to the covering provider (its own has time off)
    clinic = build(engine, owner, shift=("09:00", "12:00"))
    with unit_of_work(engine) as session:
        make_room(session, actor=owner, location_id=clinic.location_id)
        make_provider(session, actor=owner, location_id=clinic.location_id, shift=("09:00", "12:00"))
    booking = book_then_call_out(engine, owner, clinic, hours=1)
    proposal = propose(engine, owner, clinic, max_moves=1)
    assert [i.status for i in proposal.items] == ["moved"]
    tomorrow = TEN + timedelta(days=1)

    def reschedule() -> AppointmentRead:
        with unit_of_work(engine) as session:
            return scheduling.reschedule_appointment(
                session, actor=owner, appointment_id=booking.id, data=RescheduleRequest(starts_at=tomorrow)
            )

    # when the front desk moves it to tomorrow while the proposal is applied
    applied, rescheduled = _race(lambda: apply(engine, owner, proposal), reschedule)
    # then the staff's move stands whenever it succeeded; and if it was first, the apply was refused
    now = next(a for a in appointments(engine, owner, clinic) if a.id == booking.id)
    if isinstance(rescheduled, AppointmentRead):
        assert now.starts_at == tomorrow
    else:
        assert isinstance(applied, ProposalRead), (applied, rescheduled)
    if isinstance(applied, ConflictError):
        assert "was moved to Wed, Mar 4, 2026 at 10:00 AM" in applied.detail


# --- one client, one place ----------------------------------------------------------------------------


def _two_of_everything(engine: Engine, owner: Actor) -> Clinic:
    clinic = build(engine, owner, shift=("09:00", "12:00"))
    with unit_of_work(engine) as session:
        make_provider(session, actor=owner, location_id=clinic.location_id, shift=("09:00", "12:00"))
        make_room(session, actor=owner, location_id=clinic.location_id)
    return clinic


def test_one_client_waiting_twice_for_the_same_hour_is_placed_once(engine: Engine, owner: Actor) -> None:
    # given one client on the waitlist twice for 10:00-11:00, and two providers and rooms free then
    clinic = _two_of_everything(engine, owner)
    for _ in range(2):
        waitlist(engine, owner, clinic, "10:00", "11:00", client_id=clinic.client_id)
    # when the day is optimized and applied
    proposal = propose(engine, owner, clinic)
    applied = apply(engine, owner, proposal)
    # then one is placed, and the other says why not
    placed, left = sorted(proposal.items, key=lambda i: i.status)
    assert (placed.status, left.status) == ("booked", "not booked")
    assert left.reason == "not booked: the client is placed at that time for another service"
    assert applied.status == "applied"
    assert len(appointments(engine, owner, clinic)) == 1


def test_a_placement_applied_without_the_move_it_needs_is_refused_naming_the_client(
    engine: Engine, owner: Actor
) -> None:
    # given the only provider who gives a filler booked at 10:00 for a Botox another provider can give,
    # and a member waiting for a filler at 10:00
    clinic = _two_of_everything(engine, owner)
    with unit_of_work(engine) as session:
        both = make_provider(
            session,
            actor=owner,
            location_id=clinic.location_id,
            shift=("09:00", "12:00"),
            skills=["neurotoxin", "filler"],
        )
        filler = replace(clinic, service_id=make_service(session, actor=owner, skill="filler").id)
        scheduling.book_appointment(
            session, actor=owner, data=booking_request(clinic, TEN, provider_id=both.id)
        )
    waitlist(engine, owner, filler, "10:00", "11:00", "member")
    # when the day is replanned, the Botox moves so that the filler can be placed
    proposal = propose(engine, owner, clinic, max_moves=1)
    moved, placed = sorted(proposal.items, key=lambda i: i.kind)
    assert (moved.status, placed.status, placed.provider_id) == ("moved", "booked", both.id)
    # then applying the placement alone is refused, naming the waiting client; nothing changes
    with pytest.raises(ConflictError) as refused, unit_of_work(engine) as session:
        scheduling.apply_proposal(session, actor=owner, proposal_id=proposal.id, requests=[placed.request])
    (entry,) = _waiting(engine, owner, clinic)
    name = client_name(engine, owner, entry.client_id)
    assert refused.value.detail.startswith(f"{name}'s {_service_name(engine, owner, filler)}")
    assert " cannot be booked as proposed: provider " in refused.value.detail
    assert "is already booked at that time" in refused.value.detail
    assert [a.provider_id for a in appointments(engine, owner, clinic)] == [both.id]
    # and all of it applies
    assert apply(engine, owner, proposal).status == "applied"


def _waiting(engine: Engine, actor: Actor, clinic: Clinic) -> list[WaitlistRead]:
    with unit_of_work(engine, write=False) as session:
        return scheduling.list_waitlist(
            session, actor=actor, location_id=clinic.location_id, service_date=DAY
        )
