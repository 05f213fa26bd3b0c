"""The soft rules (objective terms): a case where each earns its term and one where it cannot; every
solve is checked by the validator."""

from __future__ import annotations

import pytest

from medspa.scheduling.solver.objective import SCALE, breakdown, scaled

from .factories import booked, make_instance, provider, request, service, solve_checked

TWO_PROVIDERS = [provider("p1", ["neurotoxin"]), provider("p2", ["neurotoxin"])]
TWO_ROOMS = [{"id": "inj1", "type": "injection"}, {"id": "inj2", "type": "injection"}]


def test_scaled_keeps_a_wait_cost_per_grid_unit_exact() -> None:
    # given $12/h on a 5-minute grid: $1 per grid unit; $7/h: 7/12 dollar per unit
    assert scaled(12.0 * 5 / 60) == SCALE
    assert scaled(7.0 * 5 / 60) == 350


# --- continuity ------------------------------------------------------------------------------------------


def test_continuity_books_the_preferred_provider_when_free() -> None:
    # given two free providers; the client prefers p2
    instance = make_instance(providers=TWO_PROVIDERS, requests=[request("a1", preferred="p2")])
    # when
    result = solve_checked(instance)
    # then
    assert booked(result.solution) == {"a1": ("p2", "inj1", None, "09:00")}
    assert breakdown(instance, result.solution).continuity == 40.0


def test_continuity_bonus_is_lost_when_the_preferred_provider_is_taken() -> None:
    # given p2 is held by a locked booking for the client's whole window
    instance = make_instance(
        providers=TWO_PROVIDERS,
        rooms=TWO_ROOMS,
        requests=[
            request(
                "a0",
                windows=(("09:00", "09:30"),),
                locked={"provider": "p2", "room": "inj2", "device": None, "start": "09:00"},
            ),
            request("a1", windows=(("09:00", "09:30"),), preferred="p2"),
        ],
    )
    # when
    result = solve_checked(instance)
    # then a1 goes to p1 without the bonus
    assert booked(result.solution)["a1"] == ("p1", "inj1", None, "09:00")
    assert breakdown(instance, result.solution).continuity == 0.0


# --- wait_cost -------------------------------------------------------------------------------------------


def test_wait_cost_starts_a_booking_when_the_window_opens() -> None:
    # given a free day and a long window
    instance = make_instance(requests=[request("a1", windows=(("10:00", "16:00"),))])
    # when
    result = solve_checked(instance)
    # then
    assert booked(result.solution) == {"a1": ("p1", "inj1", None, "10:00")}
    assert breakdown(instance, result.solution).wait == 0.0


def test_wait_cost_is_paid_when_the_start_of_the_window_is_taken() -> None:
    # given the first hour of the window is held by a locked booking
    instance = make_instance(
        services=[service("botox", duration=60)],
        requests=[
            request(
                "a0",
                windows=(("10:00", "11:00"),),
                locked={"provider": "p1", "room": "inj1", "device": None, "start": "10:00"},
            ),
            request("a1", windows=(("10:00", "16:00"),)),
        ],
    )
    # when
    result = solve_checked(instance)
    # then a1 waits one hour, costing $12
    assert booked(result.solution)["a1"] == ("p1", "inj1", None, "11:00")
    assert breakdown(instance, result.solution).wait == pytest.approx(12.0)


# --- booking_value ---------------------------------------------------------------------------------------


def test_booking_value_prefers_the_client_likelier_to_show() -> None:
    # given one slot and two clients for it; a1 is a likely no-show
    instance = make_instance(
        requests=[
            request("a1", windows=(("09:00", "09:30"),), no_show=0.5),
            request("a2", windows=(("09:00", "09:30"),), no_show=0.1),
        ]
    )
    # when
    result = solve_checked(instance)
    # then
    assert list(booked(result.solution)) == ["a2"]
    assert result.objective == pytest.approx(0.9 * 300.0)


def test_booking_value_counts_the_member_bonus() -> None:
    # given a member and a standard client with equal margins competing for one slot
    instance = make_instance(
        requests=[
            request("a1", windows=(("09:00", "09:30"),)),
            request("a2", windows=(("09:00", "09:30"),), priority="member"),
        ]
    )
    # when
    result = solve_checked(instance)
    # then the member is booked and earns the bonus; the standard client earns nothing
    assert list(booked(result.solution)) == ["a2"]
    terms = breakdown(instance, result.solution)
    assert (terms.expected_margin, terms.priority, terms.total) == (300.0, 60.0, 360.0)
