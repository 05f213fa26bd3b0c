"""Replanning: the current schedule is the hint, moves are limited (hard) and cost (soft)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from medspa.scheduling.solver.errors import MoveLimitError
from medspa.scheduling.solver.instance import Instance, TimeRange
from medspa.scheduling.solver.model import solve
from medspa.scheduling.solver.solution import Assignment, Solution, moves
from medspa.scheduling.solver.validate import replan_violations
from medspa.scheduling.solver.variables import Replan

from .factories import booked, make_instance, provider, request, service, solve_checked


def _one_slot_day() -> tuple[Instance, Solution]:
    """a1 is booked at 09:00; a member, a2, can only come 09:00-09:30."""
    instance = make_instance(
        requests=[
            request("a1", windows=(("09:00", "12:00"),)),
            request("a2", windows=(("09:00", "09:30"),), priority="member"),
        ]
    )
    return instance, Solution("test-day", (Assignment("a1", "p1", "inj1", None, 540),))


def test_move_limit_lets_one_booking_move_for_a_better_day() -> None:
    # given one move allowed
    instance, current = _one_slot_day()
    # when
    result = solve_checked(instance, replan=Replan(current, max_moves=1))
    # then a1 moves to 09:30 and the member takes 09:00
    assert {a.request: a.to_json()["start"] for a in result.solution.assignments} == {
        "a1": "09:30",
        "a2": "09:00",
    }
    assert moves(current, result.solution) == 1


def test_move_limit_of_zero_keeps_every_booking_where_it_was() -> None:
    # given no move allowed
    instance, current = _one_slot_day()
    # when
    result = solve_checked(instance, replan=Replan(current, max_moves=0))
    # then the member cannot be booked
    assert result.solution.assignments == current.assignments
    assert moves(current, result.solution) == 0


def test_move_cost_below_the_gain_moves_the_booking() -> None:
    # given moving a1 costs $100 and booking the member earns $360 - $6 of wait
    instance, current = _one_slot_day()
    # when
    result = solve_checked(instance, replan=Replan(current, move_cost=100.0))
    # then
    assert moves(current, result.solution) == 1
    assert len(result.solution.assignments) == 2


def test_move_cost_above_the_gain_keeps_the_booking() -> None:
    # given moving a1 costs more than the member would bring
    instance, current = _one_slot_day()
    # when
    result = solve_checked(instance, replan=Replan(current, move_cost=1000.0))
    # then
    assert result.solution.assignments == current.assignments


def _busy_day(seed: int) -> Instance:
    """Three injectors, three rooms, 30 requests of 30 to 60 minutes over the day: more than fits."""
    rng = random.Random(seed)
    requests = []
    for index in range(30):
        start = rng.randrange(9 * 12, 15 * 12) * 5
        width = rng.choice((60, 90, 120, 180))
        requests.append(
            request(
                f"a{index:02d}",
                rng.choice(("botox", "filler")),
                (
                    (
                        f"{start // 60:02d}:{start % 60:02d}",
                        f"{(start + width) // 60:02d}:{(start + width) % 60:02d}",
                    ),
                ),
                preferred=rng.choice(("p1", "p2", "p3")),
                priority=rng.choice(("member", "standard", "standard")),
                no_show=round(rng.uniform(0.0, 0.3), 2),
            )
        )
    return make_instance(
        providers=[
            provider(p, ["neurotoxin", "filler"], breaks=[("12:30", "13:00")]) for p in ("p1", "p2", "p3")
        ],
        rooms=[{"id": f"inj{i}", "type": "injection"} for i in (1, 2, 3)],
        services=[
            service("botox", setup=5, cleanup=5),
            service("filler", duration=60, skill="filler", price=900, cost=300),
        ],
        requests=requests,
    )


def test_a_provider_calling_out_at_noon_moves_only_their_afternoon_clients() -> None:
    # given a busy day, solved, and then p2 calls out at noon
    before = _busy_day(seed=7)
    current = solve_checked(before, time_limit=3.0).solution
    p2 = before.provider_by_id["p2"]
    after = dataclasses.replace(
        before,
        providers=tuple(
            dataclasses.replace(p, shifts=(TimeRange(540, 720),)) if p.id == "p2" else p
            for p in before.providers
        ),
    )
    service_of = {r.id: after.service_of(r) for r in after.requests}
    stranded = {
        a.request
        for a in current.assignments
        if a.provider == p2.id and a.start + service_of[a.request].duration_minutes > 720
    }
    assert len(stranded) >= 2  # the scenario really strands clients
    # when replanning with no more moves than the call-out forces
    result = solve_checked(
        after, time_limit=3.0, replan=Replan(current, max_moves=len(stranded), move_cost=50.0)
    )
    # then p2 has nobody after noon, and every other booking is exactly where it was
    now = result.solution.by_request()
    assert all(
        a.start + service_of[a.request].duration_minutes <= 720 for a in now.values() if a.provider == "p2"
    )
    unchanged = {a.request: (a.provider, a.start) for a in current.assignments if a.request not in stranded}
    assert {rid: (now[rid].provider, now[rid].start) for rid in unchanged} == unchanged
    assert moves(current, result.solution) == len(stranded)


def _single_room_day(*, cover: bool) -> tuple[Instance, Solution]:
    """a1 (botox with p1 at 09:00 in inj1, the only room) must stay at 09:00; p1 is now on a break then.
    With `cover`, p2 can give botox too; a2, a filler with p2, could use inj1 09:00-10:00."""
    instance = make_instance(
        providers=[
            provider("p1", ["neurotoxin"], breaks=[("09:00", "10:00")]),
            provider("p2", ["filler", *(["neurotoxin"] if cover else [])]),
        ],
        services=[service("botox"), service("filler", duration=60, skill="filler", price=900, cost=300)],
        requests=[
            request("a1", windows=(("09:00", "09:30"),)),
            request("a2", "filler", windows=(("09:00", "10:00"),), priority="member"),
        ],
    )
    return instance, Solution("test-day", (Assignment("a1", "p1", "inj1", None, 540),))


def test_a_room_swap_counts_as_a_move() -> None:
    # given a1 in inj2, and a member who can only come at a1's time
    instance = make_instance(
        providers=[provider("p1", ["neurotoxin"]), provider("p2", ["neurotoxin"])],
        rooms=[{"id": "inj1", "type": "injection"}, {"id": "inj2", "type": "injection"}],
        requests=[
            request("a1", windows=(("09:00", "09:30"),)),
            request("a2", windows=(("09:00", "09:30"),), priority="member"),
        ],
    )
    current = Solution("test-day", (Assignment("a1", "p1", "inj2", None, 540),))
    moved_room = Solution("test-day", (Assignment("a1", "p1", "inj1", None, 540),))
    # when / then a change of room alone is a move, and no move is needed to book both
    assert moves(current, moved_room) == 1
    result = solve_checked(instance, replan=Replan(current, max_moves=0))
    assert result.solution.by_request()["a1"] == current.assignments[0]
    assert set(result.solution.by_request()) == {"a1", "a2"}


def test_a_booking_that_fits_is_never_dropped_for_a_more_valuable_request() -> None:
    # given a1 fits where it is (p2 covers nothing here: no cover) and the member a2 would be worth more
    instance = make_instance(
        requests=[
            request("a1", windows=(("09:00", "09:30"),)),
            request("a2", windows=(("09:00", "09:30"),), priority="member"),
        ],
    )
    current = Solution("test-day", (Assignment("a1", "p1", "inj1", None, 540),))
    # when any number of moves is allowed
    result = solve_checked(instance, replan=Replan(current, max_moves=5))
    # then a1 stays and a2 is not booked
    assert result.solution.assignments == current.assignments


def test_a_booking_that_cannot_stay_moves_to_a_cover() -> None:
    # given a1's provider is on a break at its time and p2 can give botox
    instance, current = _single_room_day(cover=True)
    # when
    result = solve_checked(instance, replan=Replan(current, max_moves=1))
    # then a1 moves to p2 in its own room, and a2 cannot have that room
    assert booked(result.solution) == {"a1": ("p2", "inj1", None, "09:00")}


def test_a_dropped_booking_keeps_its_room_for_staff() -> None:
    # given a1 cannot stay (p1 on a break) and nobody else gives botox
    instance, current = _single_room_day(cover=False)
    # when
    result = solve_checked(instance, replan=Replan(current, max_moves=1))
    # then a1 is dropped, and its room stays taken at 09:00: the member a2 is not put there
    assert result.solution.assignments == ()
    placed_in_its_room = Solution("test-day", (Assignment("a2", "p2", "inj1", None, 540),))
    assert replan_violations(instance, Replan(current, max_moves=1), placed_in_its_room) == [
        "room inj1: a2 is placed where dropped a1 still is"
    ]


def test_a_limit_below_the_bookings_that_cannot_stay_is_refused() -> None:
    # given a1 cannot stay where it is
    instance, current = _single_room_day(cover=True)
    # when no move is allowed, then the solver says which booking cannot stay and why
    with pytest.raises(MoveLimitError) as refused:
        solve(instance, time_limit_seconds=1, replan=Replan(current, max_moves=0))
    assert refused.value.reasons == {"a1": "a1: provider p1 is on break at 09:00-10:00"}


def test_the_replan_validator_names_every_broken_rule() -> None:
    # given a1 fits where it is and the limit is 0
    instance = make_instance(
        providers=[provider("p1", ["neurotoxin"]), provider("p2", ["neurotoxin"])],
        requests=[request("a1", windows=(("09:00", "09:30"),))],
    )
    current = Solution("test-day", (Assignment("a1", "p1", "inj1", None, 540),))
    replan = Replan(current, max_moves=0)
    # when a1 is dropped, or moved to p2
    dropped = replan_violations(instance, replan, Solution("test-day", ()))
    moved = replan_violations(
        instance, replan, Solution("test-day", (Assignment("a1", "p2", "inj1", None, 540),))
    )
    # then
    assert dropped == [
        "a1: dropped although it fits as booked",
        "1 bookings moved or dropped, more than the limit of 0",
    ]
    assert moved == ["1 bookings moved or dropped, more than the limit of 0"]


def test_progress_when_replanning_reports_the_schedules_value_without_the_move_bonus() -> None:
    # given a busy day replanned with a move cost (the model counts a bonus per booking that stays)
    before = _busy_day(seed=7)
    current = solve_checked(before, time_limit=2.0).solution
    reported: list[float] = []
    # when it is solved again with progress reports
    result = solve(
        before,
        time_limit_seconds=2,
        workers=2,
        replan=Replan(current, max_moves=3, move_cost=50.0),
        on_progress=lambda event: reported.append(event.objective),
    )
    # then no report is worth more than the best schedule found, as the validator scores it
    assert reported
    assert max(reported) <= result.objective + 1e-6
