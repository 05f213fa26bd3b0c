"""The day optimizer on live data: waitlist in, proposal out (shadow mode), applied all or nothing."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import Engine, select

from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.kit.errors import ConflictError, ValidationFailedError
from medspa.kit.tz import local_to_utc, to_local
from medspa.scheduling import scores
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import OptimizationJob, ScheduleProposal
from medspa.scheduling.schemas import BookingRequest, ProposalRead, WaitlistCreate
from medspa.scheduling.solver import validate
from medspa.scheduling.solver.instance import parse_instance
from medspa.scheduling.solver.solution import parse_solution
from medspa.security.actors import Actor
from medspa.web.proposals import build_proposal_page
from tests.factories import make_client, make_provider, make_room
from tests.scheduling.test_availability import NOW, Clinic, build
from tests.scheduling.test_booking import request as booking_request
from tests.test_concurrency import double_bookings

DAY = date(2026, 3, 3)
TEN = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York


@pytest.fixture(autouse=True)
def frozen_clock() -> object:
    with clock.frozen_at(NOW):
        yield


def waitlist(
    engine: Engine,
    actor: Actor,
    clinic: Clinic,
    start: str,
    end: str,
    priority: str = "standard",
    day: date = DAY,
    client_id: uuid.UUID | None = None,
) -> None:
    """Put a client (a new one unless `client_id`) on the waitlist of the clinic's service."""
    with unit_of_work(engine) as session:
        client_id = client_id or make_client(session, actor=actor).id
        scheduling.add_to_waitlist(
            session,
            actor=actor,
            data=WaitlistCreate(
                client_id=client_id,
                service_id=clinic.service_id,
                location_id=clinic.location_id,
                service_date=day,
                window_starts_at=time.fromisoformat(start),
                window_ends_at=time.fromisoformat(end),
                priority=priority,  # type: ignore[arg-type]
            ),
        )


def propose(
    engine: Engine, actor: Actor, clinic: Clinic, max_moves: int | None = None, day: date = DAY
) -> ProposalRead:
    return scheduling.optimize_day(
        engine,
        actor=actor,
        location_id=clinic.location_id,
        service_date=day,
        time_limit_seconds=2,
        max_moves=max_moves,
    )


def busy_day(engine: Engine, actor: Actor) -> Clinic:
    """One provider 09:00-12:00, two rooms, a booking at 10:00 and three clients waiting."""
    clinic = build(engine, actor, shift=("09:00", "12:00"))
    with unit_of_work(engine) as session:
        make_room(session, actor=actor, location_id=clinic.location_id)
        scheduling.book_appointment(
            session,
            actor=actor,
            data=BookingRequest(
                client_id=clinic.client_id,
                service_id=clinic.service_id,
                location_id=clinic.location_id,
                starts_at=TEN,
            ),
        )
    waitlist(engine, actor, clinic, "09:00", "10:30")  # fits 09:00-10:00 only
    waitlist(engine, actor, clinic, "10:00", "12:00", "member")  # fits 11:00-12:00 only
    waitlist(engine, actor, clinic, "10:00", "11:30")  # cannot fit: the provider is busy 10:00-11:00
    return clinic


def test_a_proposal_places_the_waitlist_around_kept_bookings_and_explains_itself(
    engine: Engine, owner: Actor
) -> None:
    clinic = busy_day(engine, owner)
    proposal = propose(engine, owner, clinic)
    statuses = sorted(item.status for item in proposal.items)
    assert statuses == ["booked", "booked", "locked", "not booked"]
    placed = sorted(item.starts_at for item in proposal.items if item.status == "booked" and item.starts_at)
    assert placed == [TEN - timedelta(hours=1), TEN + timedelta(hours=1)]
    refused = next(item for item in proposal.items if item.status == "not booked")
    assert refused.kind == "waitlist"
    assert refused.reason.startswith("not booked: no provider with the skill neurotoxin")
    assert str(clinic.service_id) not in refused.reason  # staff read names, not ids
    assert proposal.gain_cents == proposal.proposed_value_cents - proposal.current_value_cents
    assert proposal.gain_cents > 0
    assert proposal.objective_terms["priority_bonus"] == 60.0
    assert proposal.status == "proposed"
    with unit_of_work(engine, write=False) as session:  # the stored documents pass the validator
        row = session.get(ScheduleProposal, proposal.id)
        assert row is not None
        report = validate.check(parse_instance(row.instance), parse_solution(row.solution))
    assert report.feasible, report.violations
    # Shadow mode: nothing was booked.
    with unit_of_work(engine, write=False) as session:
        assert scheduling.list_appointments(session, actor=owner, location_id=clinic.location_id).total == 1


def test_applying_books_the_placements_and_marks_the_waitlist(engine: Engine, owner: Actor) -> None:
    clinic = busy_day(engine, owner)
    proposal = propose(engine, owner, clinic)
    with unit_of_work(engine) as session:
        applied = scheduling.apply_proposal(session, actor=owner, proposal_id=proposal.id)
    assert applied.status == "applied"
    with unit_of_work(engine, write=False) as session:
        booked = scheduling.list_appointments(session, actor=owner, location_id=clinic.location_id).items
        waiting = scheduling.list_waitlist(
            session, actor=owner, location_id=clinic.location_id, service_date=DAY
        )
    assert sorted(a.starts_at for a in booked) == [TEN - timedelta(hours=1), TEN, TEN + timedelta(hours=1)]
    assert len(waiting) == 1
    assert double_bookings(engine, owner) == 0
    with pytest.raises(ConflictError, match="already been applied"), unit_of_work(engine) as session:
        scheduling.apply_proposal(session, actor=owner, proposal_id=proposal.id)


def test_applying_a_stale_proposal_books_nothing(engine: Engine, owner: Actor) -> None:
    clinic = busy_day(engine, owner)
    proposal = propose(engine, owner, clinic)
    with unit_of_work(engine) as session:  # the front desk books 11:00 meanwhile
        other = make_client(session, actor=owner)
        scheduling.book_appointment(
            session,
            actor=owner,
            data=BookingRequest(
                client_id=other.id,
                service_id=clinic.service_id,
                location_id=clinic.location_id,
                starts_at=TEN + timedelta(hours=1),
            ),
        )
    stale = pytest.raises(scheduling.StaleProposalError, match=r"'s .* at 11:00 AM was booked")
    with stale as refused, unit_of_work(engine) as session:
        scheduling.apply_proposal(session, actor=owner, proposal_id=proposal.id)
    assert refused.value.status_code == 409
    with unit_of_work(engine, write=False) as session:
        assert scheduling.list_appointments(session, actor=owner, location_id=clinic.location_id).total == 2
        waiting = scheduling.list_waitlist(
            session, actor=owner, location_id=clinic.location_id, service_date=DAY
        )
        assert scheduling.get_proposal(session, actor=owner, proposal_id=proposal.id).status == "proposed"
    assert len(waiting) == 3


def test_a_closed_day_cannot_be_optimized(engine: Engine, owner: Actor) -> None:
    from medspa.resources import service as resources
    from medspa.resources.schemas import ClosureCreate

    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        resources.add_closure(
            session, actor=owner, location_id=clinic.location_id, data=ClosureCreate(closed_on=DAY)
        )
    with pytest.raises(ConflictError, match=r"the location is closed on Tuesday, 2026-03-03 \(a closure\)"):
        propose(engine, owner, clinic)
    with unit_of_work(engine, write=False) as session:  # the job says why
        mine = OptimizationJob.organization_id == owner.organization_id
        job = session.scalars(select(OptimizationJob).where(mine)).one()
    assert (job.status, job.error) == ("failed", "the location is closed on Tuesday, 2026-03-03 (a closure)")


SPRING, FALL = date(2026, 3, 8), date(2026, 11, 1)  # New York: 02:00 -> 03:00, and 02:00 -> 01:00


@pytest.mark.parametrize(
    ("day", "hours", "real_hours"),
    [
        (SPRING, ("09:00", "12:00"), 3),  # the change falls before opening
        (FALL, ("09:00", "12:00"), 3),
        (SPRING, ("01:00", "04:00"), 2),  # the hours span the change: 01:00 EST to 04:00 EDT
        (FALL, ("01:00", "04:00"), 4),  # 01:00 EDT to 04:00 EST
        (FALL, ("00:00", "23:45"), 24),  # open (nearly) all day: 24 hours and 45 minutes
    ],
)
def test_daylight_saving_days_are_planned_like_any_other_day(
    engine: Engine, owner: Actor, day: date, hours: tuple[str, str], real_hours: int
) -> None:
    # given one provider working the opening hours, an hour-long service, and more clients waiting for
    # the whole day than the day can hold
    clinic = build(engine, owner, hours=hours, shift=hours)
    wanted = min(real_hours, 6) + 1
    for _ in range(wanted):
        waitlist(engine, owner, clinic, *hours, day=day)
    opening = local_to_utc(day, time.fromisoformat(hours[0]), "America/New_York")
    assert opening is not None
    # when the day is optimized and applied
    proposal = propose(engine, owner, clinic, day=day)
    with unit_of_work(engine) as session:
        scheduling.apply_proposal(session, actor=owner, proposal_id=proposal.id)
    with unit_of_work(engine, write=False) as session:
        booked = scheduling.list_appointments(session, actor=owner, location_id=clinic.location_id).items
        page = build_proposal_page(session, actor=owner, proposal_id=proposal.id)
    # then the provider's real hours are filled from opening, hour after hour, at the right instants
    starts = sorted(a.starts_at for a in booked)
    assert len(starts) == min(real_hours, wanted)
    assert starts[0] == opening
    assert all(later - earlier >= timedelta(hours=1) for earlier, later in pairwise(starts))
    assert double_bookings(engine, owner) == 0
    # and the proposal page shows each placement at its local time
    shown = [row.local_start for group in page.groups for row in group.rows if row.local_start]
    assert sorted(t.astimezone(UTC) for t in shown) == starts
    assert all(t.utcoffset() == to_local(t, "America/New_York").utcoffset() for t in shown)
    # and the reasons name wall-clock times as staff read them ("1:00 AM"), never the instance's minutes
    for item in proposal.items:
        assert not re.search(r"\b\d{2}:\d{2}\b(?! [AP]M)", item.reason), item.reason
        if hours == ("01:00", "04:00"):  # nothing after 4:00 AM on the wall clock
            assert not re.search(r"\b[5-9]:\d{2} AM", item.reason), item.reason


def test_a_daylight_saving_change_off_the_booking_grid_is_refused_with_the_reason(
    engine: Engine, owner: Actor
) -> None:
    from medspa.resources import service as resources
    from medspa.resources.schemas import LocationUpdate

    # given a 45-minute booking grid and opening hours that span the spring change
    clinic = build(engine, owner, hours=("00:00", "06:00"), shift=("00:00", "06:00"))
    with unit_of_work(engine) as session:
        resources.update_location(
            session,
            actor=owner,
            location_id=clinic.location_id,
            data=LocationUpdate(slot_interval_minutes=45),
        )
    # when / then
    with pytest.raises(ConflictError, match="clocks change by 60 minutes during opening hours"):
        propose(engine, owner, clinic, day=SPRING)


def test_the_day_instance_uses_a_stored_no_show_probability_else_the_clients_rate(
    engine: Engine, owner: Actor
) -> None:
    # given two bookings of the day, one scored by the no-show model
    clinic = busy_day(engine, owner)
    with unit_of_work(engine) as session:
        other = make_client(session, actor=owner)
        unscored = scheduling.book_appointment(
            session,
            actor=owner,
            data=booking_request(replace(clinic, client_id=other.id), TEN + timedelta(hours=1)),
        )
        (scored,) = [
            a
            for a in scheduling.list_appointments(session, actor=owner, location_id=clinic.location_id).items
            if a.starts_at == TEN
        ]
        scores.store_no_show_scores(
            session, actor=owner, probabilities={scored.id: 0.42}, model_version="v1", scored_at=NOW
        )
    # when the day is read into an instance
    with unit_of_work(engine, write=False) as session:
        day = scheduling.build_day_instance(
            session, actor=owner, location_id=clinic.location_id, service_date=DAY
        )
    # then the scored booking carries its stored probability, the other the smoothed prior
    by_record = {record: request for request, record in day.records.items()}
    requests = {r.id: r.no_show_probability for r in day.instance.requests}
    assert requests[by_record[("appointment", scored.id)]] == 0.42
    assert requests[by_record[("appointment", unscored.id)]] == pytest.approx(
        scheduling.PRIOR_NO_SHOWS / scheduling.PRIOR_VISITS
    )


def test_a_provider_call_out_is_replanned_onto_another_provider_and_applied(
    engine: Engine, owner: Actor
) -> None:
    from medspa.resources import service as resources
    from medspa.resources.schemas import PeriodCreate

    # given two qualified providers and a room each, and two bookings with the first at 10:00 and 11:00
    clinic = build(engine, owner, shift=("09:00", "12:00"))
    with unit_of_work(engine) as session:
        make_room(session, actor=owner, location_id=clinic.location_id)
        cover = make_provider(session, actor=owner, location_id=clinic.location_id, shift=("09:00", "12:00"))
        kept = [
            scheduling.book_appointment(
                session,
                actor=owner,
                data=booking_request(clinic, starts_at, provider_id=clinic.provider_id),
            ).id
            for starts_at in (TEN, TEN + timedelta(hours=1))
        ]
    # when the first provider calls out for the day and the day is replanned
    with unit_of_work(engine) as session:
        resources.add_time_off(
            session,
            actor=owner,
            provider_id=clinic.provider_id,
            data=PeriodCreate(starts_at=TEN - timedelta(hours=2), ends_at=TEN + timedelta(hours=8)),
        )
    with pytest.raises(ConflictError, match="replan"):
        propose(engine, owner, clinic)
    proposal = propose(engine, owner, clinic, max_moves=2)
    # then without moves the day cannot be planned, and with them both bookings move to the cover
    assert sorted(item.status for item in proposal.items) == ["moved", "moved"]
    assert {item.provider_id for item in proposal.items} == {cover.id}
    with unit_of_work(engine, write=False) as session:  # the proposal page lists them as moved
        page = build_proposal_page(session, actor=owner, proposal_id=proposal.id)
    assert {g.key: len(g.rows) for g in page.groups if g.rows} == {"moved": 2}
    assert page.moved_count == 2
    with unit_of_work(engine) as session:
        applied = scheduling.apply_proposal(session, actor=owner, proposal_id=proposal.id)
    assert applied.status == "applied"
    with unit_of_work(engine, write=False) as session:
        moved = [scheduling.get_appointment(session, actor=owner, appointment_id=i) for i in kept]
        history = scheduling.appointment_history(session, actor=owner, appointment_id=kept[0])
    assert [(a.starts_at, a.provider_id) for a in moved] == [
        (TEN, cover.id),
        (TEN + timedelta(hours=1), cover.id),
    ]
    assert (history[-1].reason or "").startswith("rescheduled from")
    assert double_bookings(engine, owner) == 0


def test_replanning_keeps_bookings_that_need_no_move(engine: Engine, owner: Actor) -> None:
    clinic = busy_day(engine, owner)
    proposal = propose(engine, owner, clinic, max_moves=0)
    statuses = sorted(item.status for item in proposal.items if item.kind == "appointment")
    assert statuses == ["kept"]
    with pytest.raises(ValidationFailedError, match="max_moves"):
        propose(engine, owner, clinic, max_moves=-1)


def test_applying_a_replan_lets_two_bookings_trade_providers(engine: Engine, owner: Actor) -> None:
    # given two providers each with a booking at 10:00, and a replan that swaps them (edited into the
    # stored proposal: the solver has no reason to swap, the apply path must still cope with it)
    clinic = build(engine, owner, shift=("09:00", "12:00"))
    with unit_of_work(engine) as session:
        make_room(session, actor=owner, location_id=clinic.location_id)
        other = make_provider(session, actor=owner, location_id=clinic.location_id, shift=("09:00", "12:00"))
        first = scheduling.book_appointment(
            session, actor=owner, data=booking_request(clinic, TEN, provider_id=clinic.provider_id)
        )
        second_client = make_client(session, actor=owner)
        second = scheduling.book_appointment(
            session,
            actor=owner,
            data=booking_request(clinic, TEN, provider_id=other.id).model_copy(
                update={"client_id": second_client.id}
            ),
        )
    proposal = propose(engine, owner, clinic, max_moves=2)
    assert sorted(item.status for item in proposal.items) == ["kept", "kept"]
    with unit_of_work(engine) as session:
        row = session.get(ScheduleProposal, proposal.id)
        assert row is not None
        solution = dict(row.solution)
        a, b = solution["assignments"]
        swapped = [
            {**a, "provider": b["provider"], "room": b["room"]},
            {**b, "provider": a["provider"], "room": a["room"]},
        ]
        row.solution = {**solution, "assignments": swapped}
    # when it is applied
    with unit_of_work(engine) as session:
        applied = scheduling.apply_proposal(session, actor=owner, proposal_id=proposal.id)
    # then both moved, each to the other's provider and room, with nothing double-booked
    assert sorted(item.status for item in applied.items) == ["moved", "moved"]
    with unit_of_work(engine, write=False) as session:
        now_first = scheduling.get_appointment(session, actor=owner, appointment_id=first.id)
        now_second = scheduling.get_appointment(session, actor=owner, appointment_id=second.id)
    assert (now_first.provider_id, now_first.room_id) == (second.provider_id, second.room_id)
    assert (now_second.provider_id, now_second.room_id) == (first.provider_id, first.room_id)
    assert double_bookings(engine, owner) == 0


def test_a_waiting_client_is_never_placed_over_their_own_booking(engine: Engine, owner: Actor) -> None:
    # given a client booked 10:00-11:00 with one provider, waiting for another visit 09:30-12:00 (and
    # once more 10:00-11:00, which their booking fills), and a second provider free all day
    clinic = build(engine, owner, shift=("09:00", "17:00"))
    with unit_of_work(engine) as session:
        make_provider(session, actor=owner, location_id=clinic.location_id, shift=("09:00", "17:00"))
        make_room(session, actor=owner, location_id=clinic.location_id)
        scheduling.book_appointment(session, actor=owner, data=booking_request(clinic))
        for start, end in (("09:30", "12:00"), ("10:00", "11:00")):
            scheduling.add_to_waitlist(
                session,
                actor=owner,
                data=WaitlistCreate(
                    client_id=clinic.client_id,
                    service_id=clinic.service_id,
                    location_id=clinic.location_id,
                    service_date=DAY,
                    window_starts_at=time.fromisoformat(start),
                    window_ends_at=time.fromisoformat(end),
                ),
            )
    # when the day is optimized, then the wait is placed after the booking, not beside it
    proposal = propose(engine, owner, clinic)
    placed = [item for item in proposal.items if item.kind == "waitlist"]
    assert [(item.status, item.starts_at) for item in placed] == [("booked", TEN + timedelta(hours=1))]
    with unit_of_work(engine) as session:
        applied = scheduling.apply_proposal(session, actor=owner, proposal_id=proposal.id)
    assert applied.status == "applied"
