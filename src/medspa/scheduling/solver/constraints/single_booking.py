"""Hard: a request is booked at most once, with exactly one provider, one room, one window and, when its
service needs one, one device; a request not booked holds none of them.

Posted as `sum(options) == booked` for each family of option literals of the request.
"""

from __future__ import annotations

from typing import Any

from medspa.scheduling.solver.variables import ScheduleModel


def post(schedule: ScheduleModel) -> None:
    model = schedule.model
    for rv in schedule.requests.values():
        families: list[dict[Any, Any]] = [rv.providers, rv.rooms, rv.windows]
        if rv.service.device_type is not None:
            families.append(rv.devices)
        for options in families:
            model.add_exactly_one([*options.values(), rv.booked.negated()])
