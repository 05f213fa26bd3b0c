"""Soft: when repairing a schedule, each booking that moves costs `replan.move_cost` (a phone call, an
unhappy client). Counted as a bonus of `move_cost` per booking that stays, which differs from the cost
per move only by a constant."""

from __future__ import annotations

from medspa.scheduling.solver.objective import scaled
from medspa.scheduling.solver.variables import ScheduleModel

TERM = "moves"


def post(schedule: ScheduleModel) -> None:
    replan = schedule.replan
    if replan is None or not replan.move_cost:
        return
    for stay in schedule.stays.values():
        schedule.add_term(TERM, stay, scaled(replan.move_cost))
