"""Large neighbourhood search: re-solve small parts of the day exactly while the rest stays put.

Each step picks a neighbourhood (a time of day, optionally narrowed to a few providers or to one room
or device type), frees the `size` flexible requests nearest to that time (booked or not), freezes every
other booking as if it were locked, and solves that sub-instance with the same CP-SAT model
(`model.build_model`), hinted with the current schedule. The result replaces the freed part when it
scores at least as well (exact float scoring), so the schedule never gets worse.

Why not only CP-SAT's own LNS: its neighbourhoods copy and presolve the whole model each time, which on
these instances costs about a second of wall time per neighbourhood on two busy cores; a sub-instance
here is built and solved in a few tens of milliseconds, so many more neighbourhoods fit in the limit
(see docs/adr/0002-optimizer-model.md).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ortools.sat.python import cp_model

from medspa.scheduling.solver import validate
from medspa.scheduling.solver.instance import Instance, Lock, Request
from medspa.scheduling.solver.solution import Assignment, Solution
from medspa.scheduling.solver.variables import candidate_starts

MIN_SIZE = 8
MAX_SIZE = 90


@dataclass(frozen=True)
class Step:
    """One neighbourhood tried: its kind, how many requests were freed, and the gain (dollars, >= 0)."""

    kind: str
    size: int
    gain: float
    optimal: bool


def freeze(instance: Instance, current: Solution, free: set[str]) -> Instance:
    """The sub-instance where the `free` requests are flexible, the other booked ones are locked where
    they are, and the other unbooked ones are left out."""
    booked = current.by_request()
    requests: list[Request] = []
    for request in instance.requests:
        if request.locked is not None or request.id in free:
            requests.append(request)
        elif request.id in booked:
            a = booked[request.id]
            requests.append(replace(request, locked=Lock(a.provider, a.room, a.device, a.start)))
    return replace(instance, requests=tuple(requests))


@dataclass(frozen=True)
class _Profile:
    """What a neighbourhood needs to know of a flexible request: its span of possible times, its service's
    skill, room types and device type."""

    request: Request
    first: int
    last: int
    skill: str
    room_types: frozenset[str]
    device_type: str | None


def _profiles(instance: Instance) -> dict[str, _Profile]:
    out = {}
    for request in instance.requests:
        if request.locked is not None:
            continue
        starts = candidate_starts(instance, request)
        if not starts:
            continue
        service = instance.service_of(request)
        out[request.id] = _Profile(
            request,
            starts[0],
            starts[-1] + service.duration_minutes,
            service.skill,
            service.room_types,
            service.device_type,
        )
    return out


def _distance(profile: _Profile, assignment: Assignment | None, moment: int, duration: int) -> int:
    if assignment is not None:
        begin, end = assignment.start, assignment.start + duration
    else:
        begin, end = profile.first, profile.last
    if begin <= moment < end:
        return 0
    return begin - moment if moment < begin else moment - end + 1


def _neighbourhood(
    instance: Instance,
    profiles: dict[str, _Profile],
    current: Solution,
    size: int,
    rng: random.Random,
) -> tuple[str, set[str]]:
    """Pick a neighbourhood kind and a time, and return the ids of the requests to free."""
    booked = current.by_request()
    kind = rng.choice(("time", "time", "providers", "providers", "resource", "random"))
    moment = rng.randrange(instance.open, instance.close)
    chosen: set[str] | None = None
    skills: set[str] = set()
    wanted: str | None = None
    if kind == "providers":
        first = rng.choice(instance.providers)
        # A provider and the ones sharing most skills with them: bookings can trade places.
        others = sorted(
            (p for p in instance.providers if p.id != first.id),
            key=lambda p: (-len(p.skills & first.skills), rng.random()),
        )
        chosen = {first.id, *(p.id for p in others[: rng.randint(1, 2)])}
        skills = set().union(*(instance.provider_by_id[p].skills for p in chosen))
    elif kind == "resource":
        wanted = rng.choice(sorted({r.type for r in instance.rooms} | {d.type for d in instance.devices}))

    def keep(profile: _Profile, assignment: Assignment | None) -> bool:
        if chosen is not None:
            return assignment.provider in chosen if assignment is not None else profile.skill in skills
        if wanted is not None:
            return wanted in profile.room_types or wanted == profile.device_type
        return True

    pool = [(rid, profile) for rid, profile in profiles.items() if keep(profile, booked.get(rid))]
    if kind == "random":
        rng.shuffle(pool)
        return kind, {rid for rid, _ in pool[:size]}
    ranked = sorted(
        pool,
        key=lambda item: (
            _distance(
                item[1], booked.get(item[0]), moment, instance.service_of(item[1].request).duration_minutes
            ),
            rng.random(),
        ),
    )
    return kind, {rid for rid, _ in ranked[:size]}


def improve(
    instance: Instance,
    start: Solution,
    *,
    deadline: float,
    seed: int = 0,
    step_seconds: float = 0.5,
    on_improvement: Callable[[Solution, float], None] | None = None,
) -> tuple[Solution, list[Step]]:
    """Improve a feasible schedule until `deadline` (a `time.monotonic()` instant).

    Returns the best schedule (never worse than `start`) and the steps taken. `on_improvement` is called
    with each better schedule and its objective.
    """
    from medspa.scheduling.solver.model import add_hint, build_model, extract

    rng = random.Random(seed)
    profiles = _profiles(instance)
    current = start
    value = validate.score(instance, current.assignments)
    size = min(30, len(profiles))
    steps: list[Step] = []
    if not profiles:
        return current, steps
    while True:
        remaining = deadline - time.monotonic()
        if remaining < 0.05:
            break
        kind, free = _neighbourhood(instance, profiles, current, size, rng)
        sub = freeze(instance, current, free)
        schedule = build_model(sub)
        add_hint(schedule, current)
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.random_seed = rng.randrange(1 << 30)
        solver.parameters.max_time_in_seconds = max(0.01, min(step_seconds, remaining - 0.02))
        status = solver.solve(schedule.model)
        optimal = status == cp_model.OPTIMAL
        gain = 0.0
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            candidate = extract(schedule, solver.value, current_rooms(current, free))
            candidate_value = validate.score(instance, candidate.assignments)
            if candidate_value >= value - 1e-9:
                gain = candidate_value - value
                current, value = candidate, candidate_value
                if gain > 1e-9 and on_improvement is not None:
                    on_improvement(current, value)
        steps.append(Step(kind, len(free), gain, optimal))
        # Grow the neighbourhood while it solves to optimality, shrink it when it does not.
        size = min(MAX_SIZE, len(profiles), size + 2) if optimal else max(MIN_SIZE, size - 3)
    return current, steps


def current_rooms(current: Solution, free: set[str]) -> dict[str, str]:
    """Each freed booking's current room, preferred when rooms are assigned again (fewer swaps)."""
    return {a.request: a.room for a in current.assignments if a.request in free}
