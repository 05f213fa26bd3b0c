"""Hard: a booked treatment `[t, t + duration)` lies inside one of the client's windows.

Each window option, when chosen, bounds the start to the window, and bounds the wait (grid units past
the window's start) from below; the wait cost (`wait_cost.py`) pulls the wait down to exactly that,
which also makes the cheapest holding window (the latest-starting one, as the format scores it) chosen.
"""

from __future__ import annotations

from medspa.scheduling.solver.variables import ScheduleModel


def post(schedule: ScheduleModel) -> None:
    model = schedule.model
    grid = schedule.grid
    for rv in schedule.requests.values():
        duration = rv.service.duration_minutes
        for index, chosen in rv.windows.items():
            window = rv.request.windows[index]
            first = -(-window.start // grid)
            last = (window.end - duration) // grid
            model.add(rv.start >= first).only_enforce_if(chosen)
            model.add(rv.start <= last).only_enforce_if(chosen)
            model.add(rv.wait * grid >= rv.start * grid - window.start).only_enforce_if(chosen)
