"""Hard: a locked booking is kept exactly as it is (provider, room, device, start).

Locked requests get no decision variables. Their provider time is removed from the starts other
requests may take with that provider (`variables.provider_starts`), and the rooms and devices holding
them are never pooled (`variables.group_resources`) and likewise removed from the starts other requests
may take there (`variables._group_options`, enforced by `room_capacity` and `device_capacity`). So no
interval of a locked booking is needed in the model: none could overlap it.

Held bookings (`ScheduleModel.held`: the rest of the day while neighbourhood search re-solves a part)
are treated the same way, except in a pool, where they may move to another member when rooms and
devices are assigned: there they enter the pool's cumulative constraint as fixed units of demand.
"""

from __future__ import annotations

from medspa.scheduling.solver.variables import ScheduleModel


def post(schedule: ScheduleModel) -> None:
    model = schedule.model
    for group in [*schedule.room_groups.values(), *schedule.device_groups.values()]:
        for begin, end, rid in group.held:
            schedule.add_interval(
                group.key, model.new_fixed_size_interval_var(begin, end - begin, f"held[{rid}]")
            )
