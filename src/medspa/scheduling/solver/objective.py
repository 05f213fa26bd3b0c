"""The objective, integer-scaled for CP-SAT, and its breakdown by term for a finished schedule.

CP-SAT needs integer coefficients: every dollar amount is multiplied by `SCALE` and rounded. With
`SCALE = 600`, a wait cost per hour with up to one decimal, on a 5-minute grid, is exact per grid unit,
and the rounding of an expected margin is at most 1/1200 dollar per booking. The schedule the solver
returns is always re-scored exactly in floats (`validate.score`), so rounding can at worst reorder
schedules whose values differ by less than a cent.
"""

from __future__ import annotations

from dataclasses import dataclass

from medspa.scheduling.solver.instance import Instance
from medspa.scheduling.solver.solution import Solution
from medspa.scheduling.solver.validate import window_of

SCALE = 600


def scaled(dollars: float) -> int:
    """Dollars as integer objective units."""
    return round(dollars * SCALE)


@dataclass(frozen=True)
class Breakdown:
    """The objective of a schedule, term by term (dollars). `total` is what the format scores."""

    expected_margin: float
    continuity: float
    priority: float
    wait: float

    @property
    def total(self) -> float:
        return self.expected_margin + self.continuity + self.priority - self.wait

    def as_dict(self) -> dict[str, float]:
        return {
            "expected_margin": round(self.expected_margin, 4),
            "continuity_bonus": round(self.continuity, 4),
            "priority_bonus": round(self.priority, 4),
            "wait_cost": round(-self.wait, 4),
            "total": round(self.total, 4),
        }


def breakdown(instance: Instance, solution: Solution) -> Breakdown:
    """Split the objective of a (feasible) schedule into its terms."""
    margin = continuity = priority = wait = 0.0
    weights = instance.weights
    for assignment in solution.assignments:
        request = instance.request_by_id[assignment.request]
        service = instance.service_of(request)
        margin += (1.0 - request.no_show_probability) * (service.price - service.cost)
        if request.preferred_provider is not None and assignment.provider == request.preferred_provider:
            continuity += weights.continuity_bonus
        priority += weights.priority_bonus.get(request.priority, 0.0)
        window = window_of(request, service, assignment.start)
        if window is not None:
            wait += weights.wait_cost_per_hour * (assignment.start - window.start) / 60.0
    return Breakdown(margin, continuity, priority, wait)
