"""Hard: a service that needs a device type gets one device of that type, busy for `[t, t + duration +
cooldown)`; a device serves one booking at a time. A service needing no device gets none.

Identical free devices (same type and cooldown, no locked booking) are pooled like rooms
(`room_capacity.post_group`).
"""

from __future__ import annotations

from medspa.scheduling.solver.constraints.room_capacity import post_group
from medspa.scheduling.solver.variables import ScheduleModel, domain_of


def post(schedule: ScheduleModel) -> None:
    model = schedule.model
    grid = schedule.grid
    for rid, rv in schedule.requests.items():
        for key, chosen in rv.devices.items():
            if key in rv.device_starts:
                # Clear of the locked bookings of this room or device only at these starts.
                model.add_linear_expression_in_domain(
                    rv.start, domain_of(t // grid for t in rv.device_starts[key])
                ).only_enforce_if(chosen)
            group = schedule.device_groups[key]
            size = rv.service.duration_minutes + group.cooldown_minutes
            interval = model.new_optional_fixed_size_interval_var(
                rv.start * grid, size, chosen, f"device[{rid},{key}]"
            )
            schedule.add_interval(key, interval)
    for group in schedule.device_groups.values():
        post_group(schedule, group)
