"""Hard: a locked booking is kept exactly as it is (provider, room, device, start).

Locked requests get no decision variables; their busy intervals enter the provider, room and device
resources as fixed intervals. Rooms and devices holding a locked booking are never pooled
(`variables.group_resources`), so the locked booking stays on its own room or device.
"""

from __future__ import annotations

from medspa.scheduling.solver.variables import ScheduleModel


def post(schedule: ScheduleModel) -> None:
    model = schedule.model
    instance = schedule.instance
    for request in schedule.locked:
        lock = request.locked
        assert lock is not None
        service = instance.service_of(request)
        treatment = model.new_fixed_size_interval_var(
            lock.start, service.duration_minutes, f"locked[{request.id}]"
        )
        schedule.add_interval(f"provider:{lock.provider}", treatment)
    for group in [*schedule.room_groups.values(), *schedule.device_groups.values()]:
        for begin, end, rid in group.locked:
            schedule.add_interval(
                group.key, model.new_fixed_size_interval_var(begin, end - begin, f"locked[{rid}]")
            )
