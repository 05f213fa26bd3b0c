"""Parsing `clinic-day-instance/1`: a malformed field is named by its path."""

from __future__ import annotations

from typing import Any

import pytest

from medspa.scheduling.solver.instance import InstanceFormatError, parse_instance

from .factories import instance_doc, request


def test_a_well_formed_document_parses_into_minutes_since_midnight() -> None:
    # given / when
    instance = parse_instance(instance_doc(requests=[request("a1", windows=(("10:00", "14:30"),))]))
    # then
    assert (instance.open, instance.close) == (480, 1200)
    assert [(w.start, w.end) for w in instance.requests[0].windows] == [(600, 870)]


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("requests", 0, "windows", 0, "start"),
            "10:02",
            "requests[0].windows[0].start: not on the 5-minute grid",
        ),
        (
            ("requests", 0, "windows", 0, "end"),
            "08:00",
            "requests[0].windows[0].end: must be after start (09:00)",
        ),
        (("requests", 0, "service"), "laser", "requests[0].service: unknown service 'laser'"),
        (
            ("requests", 0, "priority"),
            "vip",
            "requests[0].priority: 'vip' is not a key of weights.priority_bonus",
        ),
        (
            ("requests", 0, "no_show_probability"),
            1.5,
            "requests[0].no_show_probability: must be between 0 and 1",
        ),
        (
            ("requests", 0, "preferred_provider"),
            "p9",
            "requests[0].preferred_provider: unknown provider 'p9'",
        ),
        (
            ("services", 0, "duration_minutes"),
            32,
            "services[0].duration_minutes: not a multiple of the 5-minute grid",
        ),
        (("services", 0, "price"), "cheap", "services[0].price: must be a number"),
        (
            ("providers", 0, "shifts", 0, "start"),
            "9am",
            "providers[0].shifts[0].start: not a time of the form HH:MM: '9am'",
        ),
        (("location", "close"), "07:00", "location.close: must be after location.open"),
        (("time_unit_minutes",), 0, "time_unit_minutes: must be at least 1"),
        (("format",), "clinic-day/2", "format: must be 'clinic-day-instance/1', got 'clinic-day/2'"),
    ],
)
def test_a_malformed_field_is_named_in_the_error(path: tuple[Any, ...], value: Any, message: str) -> None:
    # given a document with one bad field
    doc = instance_doc()
    _set(doc, path, value)
    # when / then
    with pytest.raises(InstanceFormatError) as raised:
        parse_instance(doc)
    assert raised.value.detail == message


def test_a_missing_field_is_named_in_the_error() -> None:
    # given a request without windows
    doc = instance_doc()
    del doc["requests"][0]["windows"]
    # when / then
    with pytest.raises(InstanceFormatError) as raised:
        parse_instance(doc)
    assert raised.value.detail == "requests[0].windows: missing"


def test_a_locked_booking_naming_an_unknown_room_is_refused() -> None:
    # given
    doc = instance_doc(
        requests=[request("a1", locked={"provider": "p1", "room": "x9", "device": None, "start": "09:00"})]
    )
    # when / then
    with pytest.raises(InstanceFormatError) as raised:
        parse_instance(doc)
    assert raised.value.detail == "requests[0].locked.room: unknown room 'x9'"
