"""Hard: when replanning, at most `replan.max_moves` bookings of the current schedule are moved (booked
with another start, provider, room or device) or dropped. Locked bookings never move anyway.

A booking that fits as booked (`ScheduleModel.fits`) gets a `stay` literal that implies its own start,
provider, room and device (its room and device are individual resources when replanning, see
`variables.group_resources`); a booking that cannot stay where it is moves or is dropped in any
schedule. So the bookings that change are those without a true `stay`. `solve` refuses a limit lower
than the number of bookings that cannot stay (`MoveLimitError`), since no schedule could keep it.
"""

from __future__ import annotations

from typing import Any

from medspa.scheduling.solver.variables import ScheduleModel


def post(schedule: ScheduleModel) -> None:
    replan = schedule.replan
    if replan is None:
        return
    model = schedule.model
    grid = schedule.grid
    instance = schedule.instance
    flexible = [
        a
        for a in replan.current.assignments
        if a.request in instance.request_by_id and instance.request_by_id[a.request].locked is None
    ]
    for assignment in flexible:
        rv = schedule.requests.get(assignment.request)
        if rv is None or assignment.request not in schedule.fits:
            continue
        wanted: list[Any] = [
            rv.providers.get(assignment.provider),
            rv.rooms.get(f"room={assignment.room}"),
        ]
        if assignment.device is not None:
            wanted.append(rv.devices.get(f"device={assignment.device}"))
        if any(literal is None for literal in wanted) or assignment.start not in rv.starts:
            continue  # (cannot happen for a booking that fits; it would then simply count as a move)
        stay = model.new_bool_var(f"stay[{assignment.request}]")
        schedule.stays[assignment.request] = stay
        for literal in wanted:
            model.add_implication(stay, literal)
        model.add(rv.start == assignment.start // grid).only_enforce_if(stay)
    if replan.max_moves is not None:
        model.add(len(flexible) - sum(schedule.stays.values()) <= replan.max_moves)
