"""Soft: each booked request earns its expected margin, `(1 - no_show_probability) * (price - cost)`,
and the bonus its priority carries (`weights.priority_bonus`). Not booking a request forgoes both."""

from __future__ import annotations

from medspa.scheduling.solver.objective import scaled
from medspa.scheduling.solver.variables import ScheduleModel

MARGIN = "expected_margin"
PRIORITY = "priority"


def post(schedule: ScheduleModel) -> None:
    bonus = schedule.instance.weights.priority_bonus
    for rv in schedule.requests.values():
        request, service = rv.request, rv.service
        schedule.add_term(
            MARGIN, rv.booked, scaled((1.0 - request.no_show_probability) * (service.price - service.cost))
        )
        schedule.add_term(PRIORITY, rv.booked, scaled(bonus.get(request.priority, 0.0)))
