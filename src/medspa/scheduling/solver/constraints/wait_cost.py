"""Soft: a client kept waiting past the start of their window costs `weights.wait_cost_per_hour`,
pro rata by the minute (the wait variable is in grid units, see `client_windows.py`)."""

from __future__ import annotations

from medspa.scheduling.solver.objective import scaled
from medspa.scheduling.solver.variables import ScheduleModel

TERM = "wait"


def post(schedule: ScheduleModel) -> None:
    per_unit = scaled(schedule.instance.weights.wait_cost_per_hour * schedule.grid / 60.0)
    for rv in schedule.requests.values():
        schedule.add_term(TERM, rv.wait, -per_unit)
