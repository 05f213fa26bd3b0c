"""Hard: when replanning, a booking of the current schedule that fits where it is (`ScheduleModel.fits`:
its provider, room and device still serve it at its start, and no locked booking is in its way) is never
dropped. It may still move, within the move limit, to make room for another.
"""

from __future__ import annotations

from medspa.scheduling.solver.variables import ScheduleModel


def post(schedule: ScheduleModel) -> None:
    for request_id in schedule.fits:
        rv = schedule.requests.get(request_id)
        if rv is not None:
            schedule.model.add(rv.booked == 1)
