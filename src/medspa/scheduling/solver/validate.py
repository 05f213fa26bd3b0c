"""An independent check of a schedule against every rule of the format, and its objective as a float.

Written apart from the model on purpose: the tests check every solve with it, so a rule the model gets
wrong shows up as a violation here. Claims of quality are made with the outside referee
(`shared/bench/validate.py`), never with this module alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medspa.scheduling.solver.instance import Instance, Request, Service, TimeRange, format_time
from medspa.scheduling.solver.solution import Assignment, Replan, Solution, change_of, moves


@dataclass(frozen=True)
class Report:
    """`objective` is None when the schedule is infeasible; `violations` say which rule each break is."""

    feasible: bool
    objective: float | None
    booked: int
    violations: tuple[str, ...]


def provider_interval(service: Service, start: int) -> tuple[int, int]:
    return start, start + service.duration_minutes


def room_interval(service: Service, start: int) -> tuple[int, int]:
    return start - service.setup_minutes, start + service.duration_minutes + service.cleanup_minutes


def device_interval(service: Service, cooldown_minutes: int, start: int) -> tuple[int, int]:
    return start, start + service.duration_minutes + cooldown_minutes


def window_of(request: Request, service: Service, start: int) -> TimeRange | None:
    """The window holding `[start, start + duration)`: the latest-starting one when several do."""
    holding = [w for w in request.windows if w.contains(start, start + service.duration_minutes)]
    return max(holding, key=lambda w: w.start, default=None)


def booking_value(instance: Instance, request: Request, provider: str, start: int) -> float:
    """The objective value of one booking (dollars); the start must lie in one of the request's windows."""
    service = instance.service_of(request)
    window = window_of(request, service, start)
    if window is None:
        raise ValueError(f"{request.id}: {format_time(start)} is outside the client's windows")
    weights = instance.weights
    value = (1.0 - request.no_show_probability) * (service.price - service.cost)
    if request.preferred_provider is not None and provider == request.preferred_provider:
        value += weights.continuity_bonus
    value += weights.priority_bonus.get(request.priority, 0.0)
    value -= weights.wait_cost_per_hour * (start - window.start) / 60.0
    return value


def booking_violations(instance: Instance, assignment: Assignment, *, check_lock: bool = True) -> list[str]:
    """Every rule one booking breaks on its own (no interaction with other bookings)."""
    rid = assignment.request
    request = instance.request_by_id.get(rid)
    if request is None:
        return [f"unknown request {rid!r}"]
    service = instance.service_of(request)
    provider = instance.provider_by_id.get(assignment.provider)
    room = instance.room_by_id.get(assignment.room)
    if provider is None:
        return [f"{rid}: unknown provider {assignment.provider!r}"]
    if room is None:
        return [f"{rid}: unknown room {assignment.room!r}"]
    start = assignment.start
    out: list[str] = []
    if start % instance.time_unit_minutes:
        out.append(f"{rid}: start {format_time(start)} is off the {instance.time_unit_minutes}-minute grid")
    if service.skill not in provider.skills:
        out.append(f"{rid}: provider {provider.id} lacks skill {service.skill}")
    p0, p1 = provider_interval(service, start)
    if not any(s.contains(p0, p1) for s in provider.shifts):
        out.append(f"{rid}: provider {provider.id} is off shift at {format_time(p0)}-{format_time(p1)}")
    for b in provider.breaks:
        if b.overlaps(p0, p1):
            out.append(
                f"{rid}: provider {provider.id} is on break at {format_time(b.start)}-{format_time(b.end)}"
            )
    if room.type not in service.room_types:
        out.append(f"{rid}: room {room.id} of type {room.type} does not suit {service.id}")
    r0, r1 = room_interval(service, start)
    if r0 < instance.open or r1 > instance.close:
        out.append(f"{rid}: room time {format_time(r0)}-{format_time(r1)} is outside opening hours")
    if service.device_type is not None:
        device = instance.device_by_id.get(assignment.device) if assignment.device is not None else None
        if device is None:
            out.append(
                f"{rid}: service {service.id} needs a {service.device_type} device, got {assignment.device!r}"
            )
        elif device.type != service.device_type:
            out.append(f"{rid}: device {device.id} is a {device.type}, not a {service.device_type}")
    elif assignment.device is not None:
        out.append(f"{rid}: service {service.id} takes no device, got {assignment.device!r}")
    if window_of(request, service, start) is None:
        out.append(f"{rid}: {format_time(p0)}-{format_time(p1)} is outside the client's windows")
    lock = request.locked
    if (
        check_lock
        and lock is not None
        and (lock.provider, lock.room, lock.device, lock.start)
        != (
            assignment.provider,
            assignment.room,
            assignment.device,
            assignment.start,
        )
    ):
        out.append(f"{rid}: locked booking was moved")
    return out


def overlap_violations(instance: Instance, assignments: Sequence[Assignment]) -> list[str]:
    """Pairs of bookings that overlap on a provider, room or device (intervals per the format's table)."""
    busy: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    for a in assignments:
        request = instance.request_by_id.get(a.request)
        if request is None:
            continue
        service = instance.service_of(request)
        busy.setdefault(("provider", a.provider), []).append(
            (*provider_interval(service, a.start), a.request)
        )
        busy.setdefault(("room", a.room), []).append((*room_interval(service, a.start), a.request))
        device = instance.device_by_id.get(a.device) if a.device is not None else None
        if device is not None:
            interval = device_interval(service, device.cooldown_minutes, a.start)
            busy.setdefault(("device", device.id), []).append((*interval, a.request))
    out = []
    for (kind, resource), items in sorted(busy.items()):
        items.sort()
        for index, (start, end, owner) in enumerate(items):
            for other_start, other_end, other in items[index + 1 :]:
                if other_start >= end:
                    break
                out.append(
                    f"{kind} {resource}: {owner} and {other} overlap ({format_time(start)}-{format_time(end)}"
                    f" vs {format_time(other_start)}-{format_time(other_end)})"
                )
    return out


def resource_intervals(instance: Instance, assignment: Assignment) -> list[tuple[tuple[str, str], int, int]]:
    """The busy intervals of one booking per resource that the instance knows (a provider, room or
    device no longer in it takes nothing)."""
    service = instance.service_of(instance.request_by_id[assignment.request])
    out = []
    if assignment.provider in instance.provider_by_id:
        out.append((("provider", assignment.provider), *provider_interval(service, assignment.start)))
    if assignment.room in instance.room_by_id:
        out.append((("room", assignment.room), *room_interval(service, assignment.start)))
    device = instance.device_by_id.get(assignment.device) if assignment.device is not None else None
    if device is not None:
        interval = device_interval(service, device.cooldown_minutes, assignment.start)
        out.append((("device", device.id), *interval))
    return out


def why_not_as_booked(instance: Instance, current: Solution) -> dict[str, str]:
    """The flexible bookings of `current` that cannot stay exactly where they are, each with the first
    reason: a rule it now breaks on its own (its provider is off, its room or device is gone...), or an
    overlap with a locked booking or with a booking of `current` listed before it."""
    busy: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for request in instance.requests:
        if request.locked is not None:
            lock = request.locked
            placed = Assignment(request.id, lock.provider, lock.room, lock.device, lock.start)
            for key, begin, end in resource_intervals(instance, placed):
                busy.setdefault(key, []).append((begin, end))
    out: dict[str, str] = {}
    for assignment in current.assignments:
        flexible = instance.request_by_id.get(assignment.request)
        if flexible is None or flexible.locked is not None:
            continue
        broken = booking_violations(instance, assignment)
        if broken:
            out[assignment.request] = broken[0]
            continue
        taken = [
            (kind, resource)
            for (kind, resource), begin, end in resource_intervals(instance, assignment)
            if any(begin < b1 and b0 < end for b0, b1 in busy.get((kind, resource), ()))
        ]
        if taken:
            kind, resource = taken[0]
            out[assignment.request] = f"{assignment.request}: {kind} {resource} is taken at that time"
            continue
        for key, begin, end in resource_intervals(instance, assignment):
            busy.setdefault(key, []).append((begin, end))
    return out


def fits_as_booked(instance: Instance, current: Solution) -> set[str]:
    """The flexible bookings of `current` that can all stay exactly where they are (see
    `why_not_as_booked` for the others)."""
    cannot = why_not_as_booked(instance, current)
    return {
        a.request
        for a in current.assignments
        if a.request in instance.request_by_id
        and instance.request_by_id[a.request].locked is None
        and a.request not in cannot
    }


def replan_violations(instance: Instance, replan: Replan, solution: Solution) -> list[str]:
    """What a replanned schedule does wrong beyond the rules `check` tests: a booking dropped although it
    fits as booked, more changes than the move limit, or a booking placed where a dropped one still is
    (a dropped booking is left where it was, holding its provider, room and device)."""
    now = solution.by_request()
    out = [
        f"{rid}: dropped although it fits as booked"
        for rid in sorted(fits_as_booked(instance, replan.current))
        if rid not in now
    ]
    changed = moves(replan.current, solution)
    if replan.max_moves is not None and changed > replan.max_moves:
        out.append(f"{changed} bookings moved or dropped, more than the limit of {replan.max_moves}")
    busy: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    for assignment in solution.assignments:
        if assignment.request in instance.request_by_id:
            for key, begin, end in resource_intervals(instance, assignment):
                busy.setdefault(key, []).append((begin, end, assignment.request))
    for before in replan.current.assignments:
        if before.request not in instance.request_by_id or change_of(before, now.get(before.request)) != (
            "dropped"
        ):
            continue
        for (kind, resource), begin, end in resource_intervals(instance, before):
            out.extend(
                f"{kind} {resource}: {other} is placed where dropped {before.request} still is"
                for b0, b1, other in busy.get((kind, resource), ())
                if begin < b1 and b0 < end
            )
    return out


def check(instance: Instance, solution: Solution) -> Report:
    """Check every rule of the format and score the schedule."""
    violations: list[str] = []
    seen: set[str] = set()
    kept: list[Assignment] = []
    for assignment in solution.assignments:
        if assignment.request in seen:
            violations.append(f"{assignment.request}: booked twice")
            continue
        seen.add(assignment.request)
        broken = booking_violations(instance, assignment)
        violations.extend(broken)
        if not broken:
            kept.append(assignment)
    violations.extend(overlap_violations(instance, kept))
    for request in instance.requests:
        if request.locked is not None and request.id not in seen:
            violations.append(f"{request.id}: locked booking was dropped")
    if violations:
        return Report(False, None, len(kept), tuple(violations))
    objective = sum(
        booking_value(instance, instance.request_by_id[a.request], a.provider, a.start) for a in kept
    )
    return Report(True, objective, len(kept), ())


def score(instance: Instance, assignments: Sequence[Assignment]) -> float:
    """The objective of bookings assumed feasible (no checks)."""
    return sum(
        booking_value(instance, instance.request_by_id[a.request], a.provider, a.start) for a in assignments
    )
