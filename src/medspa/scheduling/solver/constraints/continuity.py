"""Soft: a request served by the client's preferred provider earns `weights.continuity_bonus`."""

from __future__ import annotations

from medspa.scheduling.solver.objective import scaled
from medspa.scheduling.solver.variables import ScheduleModel

TERM = "continuity"


def post(schedule: ScheduleModel) -> None:
    bonus = scaled(schedule.instance.weights.continuity_bonus)
    for rv in schedule.requests.values():
        preferred = rv.request.preferred_provider
        if preferred is not None and preferred in rv.providers:
            schedule.add_term(TERM, rv.providers[preferred], bonus)
