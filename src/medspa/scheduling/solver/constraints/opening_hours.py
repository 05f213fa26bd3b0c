"""Hard: a room is used only while the clinic is open: the room interval `[t - setup, t + duration +
cleanup)` lies inside `[open, close]`.

Starts outside these bounds are never candidates (`variables.candidate_starts`); the bounds are also
posted on every start so the rule holds even if candidates were built otherwise.
"""

from __future__ import annotations

from medspa.scheduling.solver.instance import Instance, Service
from medspa.scheduling.solver.variables import ScheduleModel


def start_bounds(instance: Instance, service: Service) -> tuple[int, int]:
    """First and last start (minutes) whose room time fits the opening hours; first > last if none."""
    first = instance.open + service.setup_minutes
    last = instance.close - service.duration_minutes - service.cleanup_minutes
    return first, last


def post(schedule: ScheduleModel) -> None:
    grid = schedule.grid
    for rv in schedule.requests.values():
        first, last = start_bounds(schedule.instance, rv.service)
        schedule.model.add(rv.start * grid >= first)
        schedule.model.add(rv.start * grid <= last)
