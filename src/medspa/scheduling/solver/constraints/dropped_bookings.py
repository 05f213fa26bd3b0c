"""Hard: when replanning, a dropped booking is left where it was (for staff to call the client), so its
provider, room and device stay taken at its old time: nothing else may be placed there.

Each booking of the current schedule puts an interval on each of its old resources that the instance
still has, present when the booking is not booked (always, for a booking left without options). These
resources are individual when replanning (`variables.group_resources`), so the intervals join the same
no-overlap constraints as everything else there. Posted before the overlap and capacity modules.
"""

from __future__ import annotations

from medspa.scheduling.solver.validate import device_interval, provider_interval, room_interval
from medspa.scheduling.solver.variables import ScheduleModel


def post(schedule: ScheduleModel) -> None:
    replan = schedule.replan
    if replan is None:
        return
    model = schedule.model
    instance = schedule.instance
    for before in replan.current.assignments:
        request = instance.request_by_id.get(before.request)
        if request is None or request.locked is not None:
            continue
        service = instance.service_of(request)
        rv = schedule.requests.get(before.request)
        spans = []
        if before.provider in instance.provider_by_id:
            spans.append((f"provider:{before.provider}", provider_interval(service, before.start)))
        if f"room={before.room}" in schedule.room_groups:
            spans.append((f"room={before.room}", room_interval(service, before.start)))
        device = instance.device_by_id.get(before.device) if before.device is not None else None
        if device is not None and f"device={device.id}" in schedule.device_groups:
            span = device_interval(service, device.cooldown_minutes, before.start)
            spans.append((f"device={device.id}", span))
        for key, (begin, end) in spans:
            name = f"left[{before.request},{key}]"
            if rv is None:
                interval = model.new_fixed_size_interval_var(begin, end - begin, name)
            else:
                interval = model.new_optional_fixed_size_interval_var(
                    begin, end - begin, rv.booked.negated(), name
                )
            schedule.add_interval(key, interval)
