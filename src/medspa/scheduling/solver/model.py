"""Build the CP-SAT model of a clinic day and solve it within a time limit.

`solve(instance, time_limit_seconds=...)` is the entry point: it builds a greedy schedule first (never
worse than first-available booking), hands it to CP-SAT as a hint, searches, assigns concrete rooms and
devices to pooled bookings, checks the result with `validate.check`, and returns whichever of the search
result and the greedy schedule scores higher. The returned schedule is always feasible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ortools.sat.python import cp_model

from medspa.scheduling.solver import greedy, lns, validate
from medspa.scheduling.solver.constraints import (
    booking_value,
    client_windows,
    continuity,
    device_capacity,
    dropped_bookings,
    kept_bookings,
    locked_bookings,
    move_cost,
    move_limit,
    opening_hours,
    provider_availability,
    provider_overlap,
    room_capacity,
    single_booking,
    wait_cost,
)
from medspa.scheduling.solver.errors import MoveLimitError
from medspa.scheduling.solver.instance import Instance
from medspa.scheduling.solver.objective import SCALE
from medspa.scheduling.solver.solution import Assignment, Solution, moves
from medspa.scheduling.solver.variables import Replan, ResourceGroup, ScheduleModel, create_variables

# Order matters: the resource modules collect intervals that the overlap and capacity modules post.
HARD: tuple[ModuleType, ...] = (
    single_booking,
    opening_hours,
    client_windows,
    locked_bookings,
    dropped_bookings,
    kept_bookings,
    provider_availability,
    provider_overlap,
    room_capacity,
    device_capacity,
    move_limit,
)
SOFT: tuple[ModuleType, ...] = (booking_value, continuity, wait_cost, move_cost)

DEFAULT_WORKERS = 8
# Share of the time limit the whole-day model may take before large neighbourhood search takes over, and
# the share it may go without improving before it is stopped early.
FULL_MODEL_SHARE = 0.5
FULL_MODEL_PATIENCE = 0.05
# A bound this close to the best objective (relative) still counts as progress of the whole-day search.
NEAR_PROOF = 0.05


@dataclass(frozen=True)
class Progress:
    """A better schedule found: seconds since `solve` began, objective in dollars, and by which phase
    ("greedy", "whole day", "neighbourhoods")."""

    seconds: float
    objective: float
    phase: str = "whole day"


@dataclass(frozen=True)
class SolveResult:
    """The schedule to use and how it was obtained.

    `source` is "search" when a searched schedule is returned, "greedy" when the greedy one is (nothing
    better was found in time). `status` is the whole-day search's CP-SAT status name ("OPTIMAL",
    "FEASIBLE", "UNKNOWN", ...); `bound` its proven upper bound on the objective (dollars), None when
    not meaningful (no search, or replanning, whose move bonus shifts the objective). `seconds` is the
    time `solve` took; `unbookable` the requests that never had an option, with the reason.
    """

    solution: Solution
    objective: float
    greedy_objective: float
    source: str
    status: str
    bound: float | None
    seconds: float
    unbookable: Mapping[str, str]
    progress: tuple[Progress, ...] = ()


def build_model(
    instance: Instance, replan: Replan | None = None, held: Sequence[Assignment] = ()
) -> ScheduleModel:
    """Create the variables and post every hard and soft rule; the objective is maximized.

    `held` bookings stay at their time and provider (see `ScheduleModel.held`)."""
    schedule = create_variables(instance, replan, held)
    for module in (*HARD, *SOFT):
        module.post(schedule)
    terms = [
        (variable, coefficient)
        for items in schedule.objective_terms.values()
        for variable, coefficient in items
    ]
    schedule.model.maximize(sum(coefficient * variable for variable, coefficient in terms))
    return schedule


def add_hint(schedule: ScheduleModel, solution: Solution) -> None:
    """Hint every decision variable from a feasible schedule (bookings without a variable are ignored)."""
    model = schedule.model
    grid = schedule.grid
    booked = solution.by_request()
    group_of = {
        member: group.key
        for group in [*schedule.room_groups.values(), *schedule.device_groups.values()]
        for member in group.members
    }
    for rid, rv in schedule.requests.items():
        assignment = booked.get(rid)
        model.add_hint(rv.booked, assignment is not None)
        start = assignment.start if assignment is not None else rv.starts[0]
        model.add_hint(rv.start, start // grid)
        for provider_id, literal in rv.providers.items():
            chosen = assignment is not None and assignment.provider == provider_id
            model.add_hint(literal, chosen)
        for key, literal in rv.rooms.items():
            model.add_hint(literal, assignment is not None and group_of[assignment.room] == key)
        for key, literal in rv.devices.items():
            model.add_hint(
                literal,
                assignment is not None
                and assignment.device is not None
                and group_of[assignment.device] == key,
            )
        window = validate.window_of(rv.request, rv.service, start) if assignment is not None else None
        for index, literal in rv.windows.items():
            model.add_hint(literal, window is not None and rv.request.windows[index] == window)
        model.add_hint(rv.wait, (start - window.start) // grid if window is not None else 0)
    if schedule.replan is not None:
        before = schedule.replan.current.by_request()
        for rid, stay in schedule.stays.items():
            now = booked.get(rid)
            old = before[rid]
            model.add_hint(stay, now is not None and (now.provider, now.start) == (old.provider, old.start))


def assign_members(
    groups: Sequence[ResourceGroup],
    bookings: Sequence[tuple[str, int, int, str]],
    preferred: Mapping[str, str],
) -> dict[str, str]:
    """Concrete room or device per booking: `bookings` are (group key, begin, end, request id).

    Intervals are taken by start; each gets its preferred member (the one it had before, when
    replanning) if free, else any free member. Taking intervals by start and any free member colours
    an interval graph with as many colours as its largest overlap, which the cumulative constraint keeps
    within the pool's size; `RuntimeError` if that ever fails.
    """
    by_key = {g.key: g for g in groups}
    free_at: dict[str, int] = {}
    out: dict[str, str] = {}
    for key, begin, end, rid in sorted(bookings, key=lambda b: (b[1], b[2], b[3])):
        group = by_key[key]
        candidates = [m for m in group.members if free_at.get(m, -(10**9)) <= begin]
        if not candidates:
            raise RuntimeError(f"no free member of {key} for {rid}")
        wanted = preferred.get(rid)
        member = wanted if wanted in candidates and wanted is not None else candidates[0]
        free_at[member] = end
        out[rid] = member
    return out


def extract(schedule: ScheduleModel, values: Callable[[Any], int], preferred: Mapping[str, str]) -> Solution:
    """The concrete schedule of a CP-SAT solution (`values` reads a variable's value)."""
    instance = schedule.instance
    grid = schedule.grid
    picks: list[tuple[str, str, int, str | None, str | None]] = []
    room_bookings: list[tuple[str, int, int, str]] = []
    device_bookings: list[tuple[str, int, int, str]] = []
    for rid, rv in schedule.requests.items():
        if not values(rv.booked):
            continue
        start = values(rv.start) * grid
        provider = next(p for p, literal in rv.providers.items() if values(literal))
        room_key = next(k for k, literal in rv.rooms.items() if values(literal))
        device_key = next((k for k, literal in rv.devices.items() if values(literal)), None)
        service = rv.service
        room_bookings.append((room_key, *validate.room_interval(service, start), rid))
        if device_key is not None:
            cooldown = schedule.device_groups[device_key].cooldown_minutes
            device_bookings.append((device_key, *validate.device_interval(service, cooldown, start), rid))
        picks.append((rid, provider, start, room_key, device_key))
    # Held bookings in a pool are coloured again along with the others, keeping their member if free.
    for group in schedule.room_groups.values():
        room_bookings.extend((group.key, begin, end, rid) for begin, end, rid in group.held)
    for group in schedule.device_groups.values():
        device_bookings.extend((group.key, begin, end, rid) for begin, end, rid in group.held)
    wanted = dict(preferred)
    wanted.update({a.request: a.room for a in schedule.held.values()})
    rooms = assign_members(list(schedule.room_groups.values()), room_bookings, wanted)
    wanted.update({a.request: a.device for a in schedule.held.values() if a.device is not None})
    devices = assign_members(list(schedule.device_groups.values()), device_bookings, wanted)
    assignments = [
        Assignment(r.id, r.locked.provider, r.locked.room, r.locked.device, r.locked.start)
        for r in schedule.locked
        if r.locked is not None
    ]
    assignments.extend(
        Assignment(
            a.request, a.provider, rooms.get(a.request, a.room), devices.get(a.request, a.device), a.start
        )
        for a in schedule.held.values()
    )
    assignments.extend(
        Assignment(rid, provider, rooms[rid], devices.get(rid) if device_key else None, start)
        for rid, provider, start, _room_key, device_key in picks
    )
    return Solution.of(instance.name, assignments)


@dataclass
class _Recorder(cp_model.CpSolverSolutionCallback):
    """Records each better solution of the whole-day search (in the model's own terms, which when
    replanning include the bonus per booking that stays) and reports its schedule's value without
    that bonus (`stays`, each worth `move_cost`) to `on_progress`."""

    offset: float
    on_progress: Callable[[Progress], None] | None
    stays: Sequence[Any] = ()
    move_cost: float = 0.0
    started: float = field(default_factory=time.monotonic)
    progress: list[Progress] = field(default_factory=list)
    bound_moved_at: float = 0.0

    def __post_init__(self) -> None:
        cp_model.CpSolverSolutionCallback.__init__(self)

    def on_solution_callback(self) -> None:
        event = Progress(time.monotonic() - self.started, self.objective_value / SCALE + self.offset)
        self.progress.append(event)
        if self.on_progress is not None:
            bonus = self.move_cost * sum(self.value(stay) for stay in self.stays)
            self.on_progress(Progress(event.seconds, event.objective - bonus))

    def on_bound(self, bound: float) -> None:
        """CP-SAT's best-bound callback (scaled units). A better bound within `NEAR_PROOF` of the best
        solution counts as progress: the search may be about to prove optimality."""
        if self.progress and bound / SCALE + self.offset <= self.progress[-1].objective * (1 + NEAR_PROOF):
            self.bound_moved_at = time.monotonic()

    def last_improvement(self) -> float:
        """The `time.monotonic()` instant of the last solution or near-proof bound (the start, before)."""
        return max(self.started + (self.progress[-1].seconds if self.progress else 0.0), self.bound_moved_at)


def _stop_when_stalled(
    solver: cp_model.CpSolver, recorder: _Recorder, patience_seconds: float, done: threading.Event
) -> None:
    """Stop the search once it has gone `patience_seconds` without a better solution."""
    while not done.wait(0.05):
        if time.monotonic() - recorder.last_improvement() > patience_seconds:
            solver.stop_search()
            return


def solve(
    instance: Instance,
    *,
    time_limit_seconds: float,
    workers: int = DEFAULT_WORKERS,
    replan: Replan | None = None,
    seed: int = 0,
    on_progress: Callable[[Progress], None] | None = None,
    full_model_share: float = FULL_MODEL_SHARE,
) -> SolveResult:
    """The best schedule found within `time_limit_seconds` (greedy, model building and search included;
    returns within about 0.1 s of it on an idle machine).

    Pure: reads the instance, returns a feasible schedule. The whole-day model is searched first, hinted
    with the greedy schedule, for at most `full_model_share` of the time and only while it keeps
    improving; unless that proves optimality, large neighbourhood search (`lns.improve`) spends the
    rest. With `replan`, the hint is the greedy repair (which keeps every booking that fits and moves
    only those that cannot stay), and the whole-day model gets the whole time: the move limit, the
    bookings that may not be dropped and the places dropped ones keep are rules over the whole day,
    which a neighbourhood of it could not see. `MoveLimitError` when more bookings cannot stay where
    they are than the limit allows.
    """
    started = time.monotonic()
    deadline = started + time_limit_seconds
    if replan is not None:
        cannot_stay = validate.why_not_as_booked(instance, replan.current)
        if replan.max_moves is not None and len(cannot_stay) > replan.max_moves:
            raise MoveLimitError(replan.max_moves, cannot_stay)
        fallback = greedy.repair(instance, replan.current)
        full_model_share = 1.0
    else:
        fallback = greedy.greedy_schedule(instance)
    fallback_objective = validate.score(instance, fallback.assignments)
    schedule = build_model(instance, replan)
    progress: list[Progress] = []

    def report(value: float, phase: str) -> None:
        event = Progress(time.monotonic() - started, value, phase)
        progress.append(event)
        if on_progress is not None:
            on_progress(event)

    report(fallback_objective, "greedy")
    if not schedule.requests or time_limit_seconds <= 0:
        return SolveResult(
            fallback,
            fallback_objective,
            fallback_objective,
            "greedy",
            "NOT_RUN",
            None,
            0.0,
            schedule.unbookable,
            tuple(progress),
        )
    add_hint(schedule, fallback)
    locked_value = validate.score(
        instance,
        [
            Assignment(r.id, r.locked.provider, r.locked.room, r.locked.device, r.locked.start)
            for r in schedule.locked
            if r.locked is not None
        ],
    )
    share = full_model_share
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.05, (deadline - time.monotonic()) * share)
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    recorder = _Recorder(
        locked_value,
        lambda event: (
            report(event.objective, "whole day") if event.objective > progress[-1].objective else None
        ),
        stays=list(schedule.stays.values()) if replan is not None and replan.move_cost else [],
        move_cost=replan.move_cost if replan is not None else 0.0,
    )
    done = threading.Event()
    # The whole-day model keeps the time only while it improves: on small days it goes on to prove
    # optimality; on large ones it stalls at once and the neighbourhood search does better.
    patience = max(0.3, time_limit_seconds * FULL_MODEL_PATIENCE)
    solver.best_bound_callback = recorder.on_bound
    threading.Thread(target=_stop_when_stalled, args=(solver, recorder, patience, done), daemon=True).start()
    status = solver.solve(schedule.model, recorder)
    done.set()
    status_name = solver.status_name(status)
    bound = None
    if replan is None and status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        bound = solver.best_objective_bound / SCALE + locked_value
    result, source = fallback, "greedy"
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        preferred = {a.request: a.room for a in replan.current.assignments} if replan is not None else {}
        try:
            found = extract(schedule, solver.value, preferred)
        except RuntimeError:
            # A pool that could not be coloured would be a bug in the model; the fallback still holds.
            found = fallback
        checked = validate.check(instance, found)
        if (
            checked.feasible
            and (replan is None or not validate.replan_violations(instance, replan, found))
            and checked.objective is not None
            and _better(replan, found, fallback, checked.objective, fallback_objective)
        ):
            result, source = found, "search"
    if replan is None and status != cp_model.OPTIMAL and deadline - time.monotonic() > 0.1:
        improved, _steps = lns.improve(
            instance,
            result,
            deadline=deadline,
            seed=seed,
            on_improvement=lambda _solution, value: report(value, "neighbourhoods"),
        )
        final = validate.check(instance, improved)
        if (
            improved is not result
            and final.feasible
            and final.objective is not None
            and _better(
                replan, improved, result, final.objective, validate.score(instance, result.assignments)
            )
        ):
            result, source = improved, "search"
    objective = validate.score(instance, result.assignments)
    return SolveResult(
        result,
        objective,
        fallback_objective,
        source,
        status_name,
        bound,
        time.monotonic() - started,
        schedule.unbookable,
        tuple(progress),
    )


def _better(
    replan: Replan | None, found: Solution, fallback: Solution, found_value: float, fallback_value: float
) -> bool:
    """Whether the search's schedule should replace the fallback: by objective, net of move costs when
    replanning."""
    if replan is None:
        return found_value >= fallback_value - 1e-9
    found_net = found_value - replan.move_cost * moves(replan.current, found)
    fallback_net = fallback_value - replan.move_cost * moves(replan.current, fallback)
    return found_net >= fallback_net - 1e-9
