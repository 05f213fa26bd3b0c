"""Explanations: a plain-language reason per request, and the objective by term."""

from __future__ import annotations

import pytest

from medspa.scheduling.solver.explain import explain

from .factories import make_instance, provider, request, service, solve_checked

CO2 = service(
    "co2", duration=60, skill="co2", room_types=("laser",), device_type="co2_laser", price=1500, cost=300
)


def test_an_unbooked_request_names_the_busy_device_and_the_hours() -> None:
    # given the only CO2 laser is held by locked bookings 10:00-14:00, and a client can come only then
    instance = make_instance(
        providers=[provider("p1", ["co2"]), provider("p2", ["co2"])],
        rooms=[{"id": "las1", "type": "laser"}, {"id": "las2", "type": "laser"}],
        devices=[{"id": "co2_1", "type": "co2_laser", "cooldown_minutes": 0}],
        services=[CO2],
        requests=[
            *(
                request(
                    f"l{h}",
                    "co2",
                    ((f"{h}:00", f"{h + 1}:00"),),
                    locked={"provider": "p1", "room": "las1", "device": "co2_1", "start": f"{h}:00"},
                )
                for h in (10, 11, 12, 13)
            ),
            request("a1", "co2", (("10:00", "14:00"),)),
        ],
    )
    # when
    result = solve_checked(instance)
    explanation = explain(instance, result.solution, result.unbookable)
    # then
    reasons = {item.request: item.reason for item in explanation.requests}
    assert (
        reasons["a1"]
        == "not booked: every co2_laser device is held by locked bookings whenever a provider could treat"
    )
    assert reasons["l10"] == "locked booking kept as it was: 10:00-11:00 with p1 in las1 on co2_1"


def test_an_unbooked_request_names_the_busy_provider_when_the_schedule_took_the_slot() -> None:
    # given one provider and two clients for the same half hour; a2 is a member
    instance = make_instance(
        requests=[
            request("a1", windows=(("09:00", "09:30"),)),
            request("a2", windows=(("09:00", "09:30"),), priority="member", preferred="p1"),
        ]
    )
    # when
    result = solve_checked(instance)
    explanation = explain(instance, result.solution, result.unbookable)
    # then
    assert [(item.request, item.status, item.reason) for item in explanation.requests] == [
        (
            "a1",
            "not booked",
            "not booked: within the client's windows (09:00-09:30) the only provider with the skill"
            " neurotoxin (p1) is busy for the start at 09:00",
        ),
        ("a2", "booked", "booked 09:00-09:30 with p1 (the preferred provider) in inj1"),
    ]


def test_the_objective_breakdown_adds_up_to_the_objective() -> None:
    # given a member who prefers p1 and has to wait half an hour
    instance = make_instance(
        providers=[provider("p1", ["neurotoxin"], start="09:30")],
        requests=[
            request("a1", windows=(("09:00", "12:00"),), priority="member", preferred="p1", no_show=0.1)
        ],
    )
    # when
    result = solve_checked(instance)
    terms = explain(instance, result.solution).objective
    # then
    assert terms.as_dict() == {
        "expected_margin": 270.0,
        "continuity_bonus": 40.0,
        "priority_bonus": 60.0,
        "wait_cost": -6.0,
        "total": 364.0,
    }
    assert terms.total == pytest.approx(result.objective)


def test_a_booking_away_from_the_preferred_provider_says_why() -> None:
    # given the preferred provider is held by a locked booking for the client's only half hour
    instance = make_instance(
        providers=[provider("p1", ["neurotoxin"]), provider("p2", ["neurotoxin"])],
        rooms=[{"id": "inj1", "type": "injection"}, {"id": "inj2", "type": "injection"}],
        requests=[
            request(
                "a0",
                windows=(("09:00", "09:30"),),
                locked={"provider": "p1", "room": "inj1", "device": None, "start": "09:00"},
            ),
            request("a1", windows=(("09:00", "09:30"),), preferred="p1"),
        ],
    )
    # when
    result = solve_checked(instance)
    reasons = {item.request: item.reason for item in explain(instance, result.solution).requests}
    # then
    assert reasons["a1"] == "booked 09:00-09:30 with p2 (preferred p1 is busy then) in inj2"


def test_an_unbooked_request_that_would_lose_money_says_so() -> None:
    # given a $10 margin, and the provider free only eleven hours after the window opens
    instance = make_instance(
        providers=[provider("p1", ["neurotoxin"], start="19:00", end="20:00")],
        services=[service("botox", price=110.0, cost=100.0)],
        requests=[request("a1", windows=(("08:00", "20:00"),))],
    )
    # when
    result = solve_checked(instance)
    reasons = {item.request: item.reason for item in explain(instance, result.solution).requests}
    # then
    assert result.solution.assignments == ()
    assert reasons["a1"] == (
        "not booked: the best free option (19:00 with p1) is worth $-122.00 after the wait cost, so booking"
        " it would lose money"
    )
