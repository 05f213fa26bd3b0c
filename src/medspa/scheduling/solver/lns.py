"""Large neighbourhood search: re-solve small parts of the day exactly while the rest stays put.

Each step picks a neighbourhood (a time of day, optionally narrowed to a few providers or to one room
or device type, or a random set), frees the `size` flexible requests nearest to that time (mostly
bookings, some unbooked requests), holds every other booking at its time and provider
(`ScheduleModel.held`), and solves that sub-instance with the same CP-SAT model (`model.build_model`),
hinted with the current schedule. The result replaces the day when it scores at least as well (exact
float scoring), so the schedule never gets worse.

Why not only CP-SAT's own LNS: its neighbourhoods copy and presolve the whole model each time, which on
these instances costs about a second of wall time per neighbourhood on two busy cores; a sub-instance
here is built and solved in a few tens of milliseconds, so many more neighbourhoods fit in the limit
(see docs/adr/0002-optimizer-model.md).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ortools.sat.python import cp_model

from medspa.scheduling.solver import validate
from medspa.scheduling.solver.instance import Instance, Request
from medspa.scheduling.solver.solution import Assignment, Solution
from medspa.scheduling.solver.variables import candidate_starts

MIN_SIZE = 8
MAX_SIZE = 90
START_SIZE = 30
# Sizes grow by GROW after a neighbourhood solved to optimality and shrink by SHRINK after a timeout.
GROW = 2
SHRINK = 3
# A neighbourhood gets at most this long: most improvements come early, proofs of optimality late.
STEP_SECONDS = 0.15
# Searches run at once; CP-SAT releases the interpreter lock, so two keep two cores busy.
THREADS = 2
KINDS = ("time", "providers", "resource", "random")
# Most of a neighbourhood is bookings; at most a share drawn from this range is unbooked requests (see
# `_neighbourhood`).
UNBOOKED_SHARE = (0.2, 0.5)


@dataclass(frozen=True)
class Step:
    """One neighbourhood tried: its kind, how many requests were freed, the gain (dollars, >= 0), whether
    it was solved to optimality, and its wall time."""

    kind: str
    size: int
    gain: float
    optimal: bool
    seconds: float


def freeze(instance: Instance, current: Solution, free: set[str]) -> tuple[Instance, list[Assignment]]:
    """The sub-instance where the `free` requests are flexible, and the bookings to hold where they are
    (every other booked flexible request); other unbooked requests are left out."""
    booked = current.by_request()
    requests: list[Request] = []
    held: list[Assignment] = []
    for request in instance.requests:
        if request.locked is not None or request.id in free:
            requests.append(request)
        elif request.id in booked:
            requests.append(request)
            held.append(booked[request.id])
    return replace(instance, requests=tuple(requests)), held


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
    kind: str,
    size: int,
    rng: random.Random,
) -> set[str]:
    """Pick a time (and providers or a resource type, by `kind`), and return the ids of the requests to
    free."""
    booked = current.by_request()
    # Around a booking (or a request's possible time) rather than any time of day: late evening, when
    # nothing can happen, would free nothing worth solving.
    if booked and rng.random() < 0.7:
        moment = rng.choice(current.assignments).start
    else:
        some = profiles[rng.choice(list(profiles))]
        moment = rng.randrange(some.first, some.last)
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
        return {rid for rid, _ in pool[:size]}
    ranked = sorted(
        pool,
        key=lambda item: (
            _distance(
                item[1], booked.get(item[0]), moment, instance.service_of(item[1].request).duration_minutes
            ),
            rng.random(),
        ),
    )
    # At most a share of the neighbourhood for unbooked requests: on a busy day many wait around any
    # time, and freeing mostly them leaves few bookings to move out of their way. (Measured: from 0.987
    # to 1.008 of best-known on xl-01 in the same number of steps.)
    cap = max(1, int(size * rng.uniform(*UNBOOKED_SHARE)))
    chosen_ids: list[str] = []
    unbooked = 0
    for rid, _ in ranked:
        if len(chosen_ids) >= size:
            break
        if rid not in booked:
            if unbooked >= cap:
                continue
            unbooked += 1
        chosen_ids.append(rid)
    return set(chosen_ids)


@dataclass
class _Shared:
    """The schedule the search threads improve together; read and replaced under `lock`."""

    current: Solution
    value: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    steps: list[Step] = field(default_factory=list)


def improve(
    instance: Instance,
    start: Solution,
    *,
    deadline: float,
    seed: int = 0,
    step_seconds: float = STEP_SECONDS,
    threads: int = THREADS,
    on_improvement: Callable[[Solution, float], None] | None = None,
) -> tuple[Solution, list[Step]]:
    """Improve a feasible schedule until `deadline` (a `time.monotonic()` instant).

    Runs `threads` searches at once (CP-SAT releases the interpreter lock while it solves). Each works
    on a snapshot; a result is merged into the latest schedule, and kept only if the merged schedule is
    feasible (checked with `validate.check` when another thread changed the schedule meanwhile) and
    scores at least as well. Returns the best schedule (never worse than `start`) and the steps taken.
    `on_improvement` is called, under the lock, with each better schedule and its objective. (Replanning
    is not searched by neighbourhoods: see `model.solve`.)
    """
    profiles = _profiles(instance)
    shared = _Shared(start, validate.score(instance, start.assignments))
    if not profiles:
        return start, []
    if threads <= 1:
        _search(instance, profiles, shared, deadline, seed, step_seconds, on_improvement)
        return shared.current, shared.steps
    workers = [
        threading.Thread(
            target=_search,
            args=(instance, profiles, shared, deadline, seed * 7919 + index, step_seconds, on_improvement),
            daemon=True,
        )
        for index in range(max(1, threads))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return shared.current, shared.steps


def _search(
    instance: Instance,
    profiles: dict[str, _Profile],
    shared: _Shared,
    deadline: float,
    seed: int,
    step_seconds: float,
    on_improvement: Callable[[Solution, float], None] | None,
) -> None:
    from medspa.scheduling.solver.model import add_hint, build_model, extract

    rng = random.Random(seed)
    sizes = dict.fromkeys(KINDS, min(START_SIZE, len(profiles)))
    while True:
        remaining = deadline - time.monotonic()
        if remaining < 0.05:
            return
        began = time.monotonic()
        with shared.lock:
            snapshot = shared.current
        # Uniformly: favouring the kinds that paid so far made the search worse in our measurements
        # (diversity matters more than the early rate of gain).
        kind = rng.choice(KINDS)
        free = _neighbourhood(instance, profiles, snapshot, kind, sizes[kind], rng)
        sub, held = freeze(instance, snapshot, free)
        schedule = build_model(sub, None, held)
        add_hint(schedule, snapshot)
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        # Presolve costs these small models more wall time than it saves (it is not counted in CP-SAT's
        # deterministic time): without it, about 10% more gain per second in our measurements.
        solver.parameters.cp_model_presolve = False
        solver.parameters.random_seed = rng.randrange(1 << 30)
        solver.parameters.max_time_in_seconds = max(0.01, min(step_seconds, remaining - 0.02))
        status = solver.solve(schedule.model)
        optimal = status == cp_model.OPTIMAL
        gain = 0.0
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            try:
                candidate = extract(schedule, solver.value, current_rooms(snapshot, free))
            except RuntimeError:
                candidate = snapshot
            gain = _commit(instance, shared, snapshot, candidate, free, on_improvement)
        seconds = time.monotonic() - began
        with shared.lock:
            shared.steps.append(Step(kind, len(free), gain, optimal, seconds))
        # Grow the neighbourhood while it solves to optimality, shrink it when it does not.
        # (per kind: some kinds are much harder to solve at one size than others).
        size = sizes[kind]
        sizes[kind] = min(MAX_SIZE, len(profiles), size + GROW) if optimal else max(MIN_SIZE, size - SHRINK)


def _commit(
    instance: Instance,
    shared: _Shared,
    snapshot: Solution,
    candidate: Solution,
    free: set[str],
    on_improvement: Callable[[Solution, float], None] | None,
) -> float:
    """Merge the re-solved `free` part into the latest schedule; the gain (dollars), 0 if not kept."""
    with shared.lock:
        if shared.current is not snapshot:
            kept = [a for a in shared.current.assignments if a.request not in free]
            redone = [a for a in candidate.assignments if a.request in free]
            candidate = Solution.of(instance.name, [*kept, *redone])
            if not validate.check(instance, candidate).feasible:
                return 0.0
        value = validate.score(instance, candidate.assignments)
        if value < shared.value - 1e-9:
            return 0.0
        gain = value - shared.value
        shared.current, shared.value = candidate, value
        if gain > 1e-9 and on_improvement is not None:
            on_improvement(candidate, value)
        return gain


def current_rooms(current: Solution, free: set[str]) -> dict[str, str]:
    """Each freed booking's current room, preferred when rooms are assigned again (fewer swaps)."""
    return {a.request: a.room for a in current.assignments if a.request in free}
