"""One feasible and one infeasible case per constraint module; every solve is checked by the validator
(`factories.solve_checked`)."""

from __future__ import annotations

import pytest

from medspa.scheduling.solver.instance import LockedBookingConflictError, parse_instance
from medspa.scheduling.solver.solution import Assignment, Solution
from medspa.scheduling.solver.validate import check

from .factories import booked, instance_doc, make_instance, provider, request, service, solve_checked

TWO_PROVIDERS = [provider("p1", ["neurotoxin"]), provider("p2", ["neurotoxin"])]
TWO_ROOMS = [{"id": "inj1", "type": "injection"}, {"id": "inj2", "type": "injection"}]


def lock(provider_id: str, room: str, start: str, device: str | None = None) -> dict[str, str | None]:
    return {"provider": provider_id, "room": room, "device": device, "start": start}


# --- single_booking ------------------------------------------------------------------------------------


def test_single_booking_books_a_request_once_even_when_two_providers_and_rooms_are_free() -> None:
    # given one request and two free providers and rooms
    instance = make_instance(
        providers=TWO_PROVIDERS, rooms=TWO_ROOMS, requests=[request("a1", preferred="p1")]
    )
    # when
    result = solve_checked(instance)
    # then it is booked exactly once, at the start of its window, with its preferred provider
    assert booked(result.solution) == {"a1": ("p1", "inj1", None, "09:00")}


def test_single_booking_rejects_a_schedule_that_books_a_request_twice() -> None:
    # given a schedule listing the same request twice, on different providers and rooms
    instance = make_instance(providers=TWO_PROVIDERS, rooms=TWO_ROOMS)
    twice = Solution(
        "test-day", (Assignment("a1", "p1", "inj1", None, 540), Assignment("a1", "p2", "inj2", None, 540))
    )
    # when
    report = check(instance, twice)
    # then
    assert report.feasible is False
    assert report.violations == ("a1: booked twice",)
    assert report.objective is None


# --- provider_availability -----------------------------------------------------------------------------


def test_provider_availability_gives_the_service_to_the_skilled_provider_only() -> None:
    # given the preferred provider lacks the skill and the other has it
    instance = make_instance(
        providers=[provider("p1", ["filler"]), provider("p2", ["neurotoxin"])],
        requests=[request("a1", preferred="p1")],
    )
    # when
    result = solve_checked(instance)
    # then
    assert booked(result.solution) == {"a1": ("p2", "inj1", None, "09:00")}


def test_provider_availability_leaves_a_request_unbooked_when_its_window_is_the_providers_break() -> None:
    # given the only window is the provider's break
    instance = make_instance(
        providers=[provider("p1", ["neurotoxin"], breaks=[("12:00", "12:30")])],
        requests=[request("a1", windows=(("12:00", "12:30"),))],
    )
    # when
    result = solve_checked(instance)
    # then nothing is booked, and a schedule forcing it in breaks the rule
    assert result.solution.assignments == ()
    forced = check(instance, Solution("test-day", (Assignment("a1", "p1", "inj1", None, 720),)))
    assert forced.violations == ("a1: provider p1 is on break at 12:00-12:30",)


def test_provider_availability_leaves_a_request_unbooked_outside_every_shift() -> None:
    # given the window closes before the provider's shift starts
    instance = make_instance(requests=[request("a1", windows=(("08:00", "09:00"),))])
    # when
    result = solve_checked(instance)
    # then
    assert result.solution.assignments == ()
    assert result.unbookable == {
        "a1": "no provider with the skill neurotoxin (p1) is working and free for a whole treatment inside"
        " the client's windows"
    }


# --- provider_overlap ----------------------------------------------------------------------------------


def test_provider_overlap_books_one_provider_back_to_back() -> None:
    # given one provider, two rooms, and two requests that fit one after the other
    instance = make_instance(
        rooms=TWO_ROOMS,
        requests=[request("a1", windows=(("09:00", "10:00"),)), request("a2", windows=(("09:30", "10:00"),))],
    )
    # when
    result = solve_checked(instance)
    # then
    assert booked(result.solution) == {
        "a1": ("p1", "inj1", None, "09:00"),
        "a2": ("p1", "inj1", None, "09:30"),
    }


def test_provider_overlap_books_only_one_of_two_requests_for_the_same_half_hour() -> None:
    # given one provider, two rooms, two requests for the same half hour; a2 is a member
    instance = make_instance(
        rooms=TWO_ROOMS,
        requests=[
            request("a1", windows=(("09:00", "09:30"),)),
            request("a2", windows=(("09:00", "09:30"),), priority="member"),
        ],
    )
    # when
    result = solve_checked(instance)
    # then the member is booked, and booking both breaks the rule
    assert booked(result.solution) == {"a2": ("p1", "inj1", None, "09:00")}
    both = Solution(
        "test-day", (Assignment("a1", "p1", "inj1", None, 540), Assignment("a2", "p1", "inj2", None, 540))
    )
    assert check(instance, both).violations == (
        "provider p1: a1 and a2 overlap (09:00-09:30 vs 09:00-09:30)",
    )


# --- room_capacity ---------------------------------------------------------------------------------------


def test_room_capacity_puts_simultaneous_bookings_in_different_rooms_of_a_pool() -> None:
    # given two providers, two identical rooms and two requests for the same half hour
    instance = make_instance(
        providers=TWO_PROVIDERS,
        rooms=TWO_ROOMS,
        requests=[
            request("a1", windows=(("09:00", "09:30"),), preferred="p1"),
            request("a2", windows=(("09:00", "09:30"),), preferred="p2"),
        ],
    )
    # when
    result = solve_checked(instance)
    # then both are booked, one room each
    assert sorted(a.room for a in result.solution.assignments) == ["inj1", "inj2"]
    assert {a.request: a.provider for a in result.solution.assignments} == {"a1": "p1", "a2": "p2"}


def test_room_capacity_keeps_the_cleanup_time_of_the_room() -> None:
    # given one room, two providers, a service with 10 minutes of cleanup, and a second request that
    # would have to start when the first one ends
    instance = make_instance(
        providers=TWO_PROVIDERS,
        services=[service("botox", cleanup=10)],
        requests=[
            request("a1", windows=(("09:00", "09:30"),), priority="member"),
            request("a2", windows=(("09:30", "10:00"),)),
        ],
    )
    # when
    result = solve_checked(instance)
    # then only the member is booked: the room is being cleaned until 09:40
    assert [a.request for a in result.solution.assignments] == ["a1"]
    both = Solution(
        "test-day", (Assignment("a1", "p1", "inj1", None, 540), Assignment("a2", "p2", "inj1", None, 570))
    )
    assert check(instance, both).violations == ("room inj1: a1 and a2 overlap (09:00-09:40 vs 09:30-10:10)",)


def test_room_capacity_leaves_a_request_unbooked_without_a_room_of_its_type() -> None:
    # given a laser service and only an injection room
    instance = make_instance(services=[service("botox", room_types=("laser",))])
    # when
    result = solve_checked(instance)
    # then
    assert result.solution.assignments == ()
    assert result.unbookable == {"a1": "no room of a suitable type (laser)"}


# --- device_capacity -------------------------------------------------------------------------------------

LASER = service("ipl", device_type="ipl", skill="ipl", room_types=("laser",))
LASER_CLINIC = {
    "providers": [provider("p1", ["ipl"]), provider("p2", ["ipl"])],
    "rooms": [{"id": "las1", "type": "laser"}, {"id": "las2", "type": "laser"}],
    "devices": [{"id": "ipl1", "type": "ipl", "cooldown_minutes": 15}],
    "services": [LASER],
}


def test_device_capacity_books_after_the_cooldown() -> None:
    # given one device with 15 minutes of cooldown, and a second request that can wait for it
    instance = make_instance(
        **LASER_CLINIC,
        requests=[request("a1", "ipl", (("09:00", "09:30"),)), request("a2", "ipl", (("09:40", "10:30"),))],
    )
    # when
    result = solve_checked(instance)
    # then the second starts when the cooldown ends
    assert {a.request: (a.device, a.to_json()["start"]) for a in result.solution.assignments} == {
        "a1": ("ipl1", "09:00"),
        "a2": ("ipl1", "09:45"),
    }


def test_device_capacity_leaves_a_request_unbooked_while_the_device_cools_down() -> None:
    # given the second request must start before the cooldown ends
    instance = make_instance(
        **LASER_CLINIC,
        requests=[
            request("a1", "ipl", (("09:00", "09:30"),), priority="member"),
            request("a2", "ipl", (("09:40", "10:10"),)),
        ],
    )
    # when
    result = solve_checked(instance)
    # then
    assert [a.request for a in result.solution.assignments] == ["a1"]
    both = Solution(
        "test-day", (Assignment("a1", "p1", "las1", "ipl1", 540), Assignment("a2", "p2", "las2", "ipl1", 580))
    )
    assert check(instance, both).violations == (
        "device ipl1: a1 and a2 overlap (09:00-09:45 vs 09:40-10:25)",
    )


# --- opening_hours ---------------------------------------------------------------------------------------


def test_opening_hours_start_after_the_setup_from_opening() -> None:
    # given a 10-minute setup and a window from opening time
    instance = make_instance(
        providers=[provider("p1", ["neurotoxin"], start="08:00")],
        services=[service("botox", setup=10)],
        requests=[request("a1", windows=(("08:00", "09:00"),))],
    )
    # when
    result = solve_checked(instance)
    # then
    assert booked(result.solution) == {"a1": ("p1", "inj1", None, "08:10")}


def test_opening_hours_leave_a_request_unbooked_when_its_room_time_starts_before_opening() -> None:
    # given a window that only fits the treatment if setup happens before opening
    instance = make_instance(
        providers=[provider("p1", ["neurotoxin"], start="08:00")],
        services=[service("botox", setup=10)],
        requests=[request("a1", windows=(("08:00", "08:30"),))],
    )
    # when
    result = solve_checked(instance)
    # then
    assert result.solution.assignments == ()
    forced = check(instance, Solution("test-day", (Assignment("a1", "p1", "inj1", None, 480),)))
    assert forced.violations == ("a1: room time 07:50-08:30 is outside opening hours",)


# --- client_windows --------------------------------------------------------------------------------------


def test_client_windows_book_in_the_later_window_without_wait_cost() -> None:
    # given the provider works only in the afternoon, and the client has a morning and an afternoon window
    instance = make_instance(
        providers=[provider("p1", ["neurotoxin"], start="13:00")],
        requests=[request("a1", windows=(("09:00", "10:00"), ("14:00", "15:00")))],
    )
    # when
    result = solve_checked(instance)
    # then it starts when the afternoon window opens and earns the full margin
    assert booked(result.solution) == {"a1": ("p1", "inj1", None, "14:00")}
    assert result.objective == pytest.approx(300.0)


def test_client_windows_leave_a_request_unbooked_when_the_window_is_shorter_than_the_treatment() -> None:
    # given a 20-minute window for a 30-minute treatment
    instance = make_instance(requests=[request("a1", windows=(("10:00", "10:20"),))])
    # when
    result = solve_checked(instance)
    # then
    assert result.solution.assignments == ()
    forced = check(instance, Solution("test-day", (Assignment("a1", "p1", "inj1", None, 600),)))
    assert forced.violations == ("a1: 10:00-10:30 is outside the client's windows",)


# --- locked_bookings -------------------------------------------------------------------------------------


def test_locked_bookings_are_kept_and_others_fit_around_them() -> None:
    # given a locked booking at 10:00 and a flexible request wanting the same hour
    instance = make_instance(
        requests=[
            request("a1", windows=(("10:00", "11:00"),), locked=lock("p1", "inj1", "10:00")),
            request("a2", windows=(("10:00", "11:00"),)),
        ]
    )
    # when
    result = solve_checked(instance)
    # then
    assert booked(result.solution) == {
        "a1": ("p1", "inj1", None, "10:00"),
        "a2": ("p1", "inj1", None, "10:30"),
    }


def test_locked_bookings_that_overlap_are_refused_with_both_named() -> None:
    # given two locked bookings on one provider at the same time
    doc = instance_doc(
        rooms=TWO_ROOMS,
        requests=[
            request("a1", locked=lock("p1", "inj1", "10:00")),
            request("a2", locked=lock("p1", "inj2", "10:15")),
        ],
    )
    # when / then
    with pytest.raises(LockedBookingConflictError) as raised:
        parse_instance(doc)
    assert raised.value.conflicts == ["provider p1: a1 and a2 overlap (10:00-10:30 vs 10:15-10:45)"]
