"""Hard: a provider gives only services they have the skill for, inside one of their shifts, overlapping
none of their breaks (nor a locked booking of theirs).

The allowed starts per provider are computed before the model is built (`variables.provider_starts`);
here choosing a provider restricts the request's start to exactly those starts, and puts the optional
interval `[t, t + duration)` on the provider. (A start variable per provider option propagated no better
in our measurements and doubled the variables.)
"""

from __future__ import annotations

from medspa.scheduling.solver.variables import ScheduleModel, domain_of


def post(schedule: ScheduleModel) -> None:
    model = schedule.model
    grid = schedule.grid
    for rid, rv in schedule.requests.items():
        duration = rv.service.duration_minutes
        for provider_id, chosen in rv.providers.items():
            allowed = rv.provider_starts[provider_id]
            if len(allowed) < len(rv.starts):
                model.add_linear_expression_in_domain(
                    rv.start, domain_of(t // grid for t in allowed)
                ).only_enforce_if(chosen)
            interval = model.new_optional_fixed_size_interval_var(
                rv.start * grid, duration, chosen, f"treat[{rid},{provider_id}]"
            )
            schedule.add_interval(f"provider:{provider_id}", interval)
