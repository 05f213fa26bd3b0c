"""The parts around the model: greedy schedules, pools and their colouring, neighbourhood search."""

from __future__ import annotations

import time

import pytest

from medspa.scheduling.solver import greedy, lns
from medspa.scheduling.solver.model import assign_members
from medspa.scheduling.solver.solution import Assignment, Solution
from medspa.scheduling.solver.validate import check, score
from medspa.scheduling.solver.variables import ResourceGroup, group_resources

from .factories import make_instance, provider, request, service
from .test_replan import _busy_day


def test_first_available_books_in_the_given_order_at_the_earliest_start() -> None:
    # given a standard client listed before a member, both wanting the only 09:00 slot
    instance = make_instance(
        requests=[
            request("a1", windows=(("09:00", "09:30"),)),
            request("a2", windows=(("09:00", "09:30"),), priority="member"),
        ]
    )
    # when
    schedule = greedy.first_available(instance)
    # then the first listed gets it, as ordinary booking software would do
    assert [a.request for a in schedule.assignments] == ["a1"]


def test_the_greedy_schedule_is_never_worse_than_first_available() -> None:
    # given a busy day
    instance = _busy_day(seed=3)
    # when
    best = greedy.greedy_schedule(instance)
    # then it is feasible and at least as good
    assert check(instance, best).feasible
    assert score(instance, best.assignments) >= score(instance, greedy.first_available(instance).assignments)


def test_repair_keeps_every_booking_that_still_fits() -> None:
    # given a schedule, and a day where p1 no longer works before 10:00
    instance = make_instance(
        providers=[provider("p1", ["neurotoxin"], start="10:00")],
        requests=[request("a1", windows=(("09:00", "12:00"),)), request("a2", windows=(("11:00", "12:00"),))],
    )
    current = Solution(
        "test-day", (Assignment("a1", "p1", "inj1", None, 540), Assignment("a2", "p1", "inj1", None, 660))
    )
    # when
    repaired = greedy.repair(instance, current)
    # then a2 stays, a1 is re-booked at the first time p1 is back
    assert {a.request: a.start for a in repaired.assignments} == {"a1": 600, "a2": 660}


def test_rooms_holding_a_locked_booking_stay_individual_and_the_others_pool() -> None:
    # given three injection rooms, one of which holds a locked booking
    instance = make_instance(
        rooms=[{"id": f"inj{i}", "type": "injection"} for i in (1, 2, 3)],
        requests=[request("a1", locked={"provider": "p1", "room": "inj2", "device": None, "start": "09:00"})],
    )
    # when
    rooms, devices = group_resources(instance)
    # then
    assert {key: group.members for key, group in rooms.items()} == {
        "room=inj2": ("inj2",),
        "room:injection": ("inj1", "inj3"),
    }
    assert devices == {}


def test_assign_members_colours_a_pool_and_keeps_a_preferred_member() -> None:
    # given a pool of two rooms and three bookings, at most two at once
    pool = ResourceGroup("room", "room:injection", "injection", ("inj1", "inj2"))
    bookings = [
        ("room:injection", 540, 600, "a"),
        ("room:injection", 570, 630, "b"),
        ("room:injection", 600, 660, "c"),
    ]
    # when
    rooms = assign_members([pool], bookings, {"b": "inj2", "c": "inj2"})
    # then no room holds two overlapping bookings, and b keeps its room; c cannot (b holds it)
    assert rooms == {"a": "inj1", "b": "inj2", "c": "inj1"}


def test_assign_members_refuses_more_overlap_than_the_pool_holds() -> None:
    # given two rooms and three bookings at once
    pool = ResourceGroup("room", "room:injection", "injection", ("inj1", "inj2"))
    bookings = [("room:injection", 540, 600, rid) for rid in "abc"]
    # when / then
    with pytest.raises(RuntimeError, match="no free member of room:injection for c"):
        assign_members([pool], bookings, {})


def test_freeze_holds_the_other_bookings_and_leaves_out_the_other_unbooked() -> None:
    # given a day with two bookings and two unbooked requests
    instance = make_instance(
        services=[service("botox")],
        requests=[request(rid) for rid in ("a1", "a2", "a3", "a4")],
    )
    current = Solution(
        "test-day", (Assignment("a1", "p1", "inj1", None, 540), Assignment("a2", "p1", "inj1", None, 570))
    )
    # when a2 and a3 are freed
    sub, held = lns.freeze(instance, current, {"a2", "a3"})
    # then a1 is held, a4 is gone, and a2 and a3 are flexible
    assert [r.id for r in sub.requests] == ["a1", "a2", "a3"]
    assert held == [Assignment("a1", "p1", "inj1", None, 540)]


def test_neighbourhood_search_never_returns_a_worse_or_infeasible_day() -> None:
    # given the greedy schedule of a busy day
    instance = _busy_day(seed=11)
    start = greedy.greedy_schedule(instance)
    # when searching for a second
    improved, steps = lns.improve(instance, start, deadline=time.monotonic() + 1.0, seed=1)
    # then
    assert check(instance, improved).feasible
    assert score(instance, improved.assignments) >= score(instance, start.assignments)
    assert len(steps) > 0
    assert all(step.gain >= 0 for step in steps)
