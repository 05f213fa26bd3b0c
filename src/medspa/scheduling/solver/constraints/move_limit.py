"""Hard: when repairing a schedule, at most `replan.max_moves` of its bookings move (are dropped, or get
another start or provider). Locked bookings never move anyway.

For each flexible request booked in the current schedule a `stay` literal implies the same provider and
start; `moved = not stay`. Bookings whose old provider or start is no longer possible get no `stay`
literal: they move in any schedule.
"""

from __future__ import annotations

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
    forced = 0
    for assignment in flexible:
        rv = schedule.requests.get(assignment.request)
        chosen = rv.providers.get(assignment.provider) if rv is not None else None
        if rv is None or chosen is None or assignment.start not in rv.provider_starts[assignment.provider]:
            forced += 1
            continue
        stay = model.new_bool_var(f"stay[{assignment.request}]")
        schedule.stays[assignment.request] = stay
        model.add_implication(stay, chosen)
        model.add(rv.start == assignment.start // grid).only_enforce_if(stay)
    if replan.max_moves is not None:
        # Moves forced by the change itself (the provider is gone, the start is no longer possible) are
        # allowed even beyond the limit: no schedule could avoid them.
        allowed = max(replan.max_moves, forced)
        model.add(len(flexible) - sum(schedule.stays.values()) <= allowed)
