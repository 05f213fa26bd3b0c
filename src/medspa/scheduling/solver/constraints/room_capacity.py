"""Hard: a booking takes a room of a type its service allows, for `[t - setup, t + duration + cleanup)`,
and a room holds one booking at a time.

A pool of identical rooms (same type, no locked booking) is one cumulative resource of its size; the
concrete room of each booking is assigned after the solve (`model.assign_members`), which always
succeeds since intervals on a line colour with as many colours as their largest overlap. An individual
room is a no-overlap resource.
"""

from __future__ import annotations

from medspa.scheduling.solver.variables import ResourceGroup, ScheduleModel, domain_of


def post(schedule: ScheduleModel) -> None:
    model = schedule.model
    grid = schedule.grid
    for rid, rv in schedule.requests.items():
        service = rv.service
        size = service.setup_minutes + service.duration_minutes + service.cleanup_minutes
        for key, chosen in rv.rooms.items():
            if key in rv.room_starts:
                # Clear of the locked bookings of this room or device only at these starts.
                model.add_linear_expression_in_domain(
                    rv.start, domain_of(t // grid for t in rv.room_starts[key])
                ).only_enforce_if(chosen)
            interval = model.new_optional_fixed_size_interval_var(
                rv.start * grid - service.setup_minutes, size, chosen, f"room[{rid},{key}]"
            )
            schedule.add_interval(key, interval)
    for group in schedule.room_groups.values():
        post_group(schedule, group)


def post_group(schedule: ScheduleModel, group: ResourceGroup) -> None:
    """No-overlap for one unit, cumulative for a pool."""
    items = schedule.intervals.get(group.key, [])
    if len(items) <= group.capacity:
        return
    intervals = [interval for interval, _ in items]
    if group.capacity == 1:
        schedule.model.add_no_overlap(intervals)
    else:
        schedule.model.add_cumulative(intervals, [demand for _, demand in items], group.capacity)
