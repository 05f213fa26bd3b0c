"""The clinic-day solution (`clinic-day-solution/1`): which requests are booked, with whom, where, when."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medspa.scheduling.solver.errors import InstanceFormatError
from medspa.scheduling.solver.instance import format_time, parse_time

FORMAT = "clinic-day-solution/1"


@dataclass(frozen=True)
class Assignment:
    """One booked request; `start` in minutes since local midnight, `device` None when none is used."""

    request: str
    provider: str
    room: str
    device: str | None
    start: int

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "provider": self.provider,
            "room": self.room,
            "device": self.device,
            "start": format_time(self.start),
        }


@dataclass(frozen=True)
class Solution:
    instance: str
    assignments: tuple[Assignment, ...]

    @classmethod
    def of(cls, instance: str, assignments: Iterable[Assignment]) -> Solution:
        """A solution with assignments in start order (ties by request id), for stable output."""
        return cls(instance, tuple(sorted(assignments, key=lambda a: (a.start, a.request))))

    def by_request(self) -> dict[str, Assignment]:
        return {a.request: a for a in self.assignments}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "instance": self.instance,
            "assignments": [a.to_json() for a in self.assignments],
        }


@dataclass(frozen=True)
class Replan:
    """Repair a current schedule: `current` is the schedule before the change (used as the hint).

    A booking of `current` is kept when the new schedule gives it the same start, provider, room and
    device; otherwise it moved (it is booked elsewhere) or was dropped (not booked). A dropped booking is
    left where it was for staff to handle with the client, so its provider, room and device stay taken
    at its time, and only a booking that can no longer stay where it is (`validate.fits_as_booked`) may
    be dropped. At most `max_moves` bookings may move or be dropped (None: no limit); each costs
    `move_cost` (dollars) in the objective.
    """

    current: Solution
    max_moves: int | None = None
    move_cost: float = 0.0


def change_of(before: Assignment, after: Assignment | None) -> str:
    """`kept` (same start, provider, room and device), `moved` (booked, something else changed) or
    `dropped` (not booked)."""
    if after is None:
        return "dropped"
    same = (after.start, after.provider, after.room, after.device) == (
        before.start,
        before.provider,
        before.room,
        before.device,
    )
    return "kept" if same else "moved"


def moves(before: Solution, after: Solution) -> int:
    """How many bookings of `before` are not kept in `after`: moved (another start, provider, room or
    device) or dropped."""
    now = after.by_request()
    return sum(1 for a in before.assignments if change_of(a, now.get(a.request)) != "kept")


def parse_solution(document: object) -> Solution:
    """Parse a `clinic-day-solution/1` document; `InstanceFormatError` names the bad field."""
    if not isinstance(document, Mapping) or document.get("format") != FORMAT:
        raise InstanceFormatError("format", f"must be {FORMAT!r}")
    items = document.get("assignments")
    if not isinstance(items, list):
        raise InstanceFormatError("assignments", "must be a list")
    assignments = []
    for index, item in enumerate(items):
        path = f"assignments[{index}]"
        if not isinstance(item, Mapping):
            raise InstanceFormatError(path, "must be an object")
        for key in ("request", "provider", "room", "start"):
            if not isinstance(item.get(key), str):
                raise InstanceFormatError(f"{path}.{key}", "must be a string")
        device = item.get("device")
        if device is not None and not isinstance(device, str):
            raise InstanceFormatError(f"{path}.device", "must be a string or null")
        try:
            start = parse_time(item["start"])
        except ValueError as error:
            raise InstanceFormatError(f"{path}.start", str(error)) from None
        assignments.append(Assignment(item["request"], item["provider"], item["room"], device, start))
    return Solution(str(document.get("instance", "")), tuple(assignments))


def write_solution(solution: Solution, path: str | Path) -> None:
    """Write the solution as JSON, replacing the file atomically so a reader never sees half of it."""
    target = Path(path)
    temporary = target.with_name(target.name + ".partial")
    temporary.write_text(json.dumps(solution.to_json(), indent=1) + "\n", encoding="utf-8")
    temporary.replace(target)
