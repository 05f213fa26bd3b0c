"""Plain-language reasons for a schedule: why each request is booked where it is, or not booked at all,
and the objective broken down by term.

Reasons are derived from the finished schedule, not from the solver's internals, so they can be checked
by anyone: a request is not booked either because no option ever existed (no skilled provider working,
no suitable room, no device of the type, no start in the windows within opening hours), or because at
every possible start the skilled providers, the suitable rooms or the devices of the type are taken by
other bookings (the reason names which, and when), or, when a free option remains, because booking it
would lose money (wait cost above its value) or because the search stopped before finding it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from medspa.scheduling.solver.greedy import Calendar
from medspa.scheduling.solver.instance import Instance, Request, format_time
from medspa.scheduling.solver.objective import Breakdown, breakdown
from medspa.scheduling.solver.solution import Assignment, Solution
from medspa.scheduling.solver.validate import (
    booking_value,
    device_interval,
    provider_interval,
    room_interval,
    window_of,
)
from medspa.scheduling.solver.variables import candidate_starts


@dataclass(frozen=True)
class RequestExplanation:
    """`status` is "locked", "booked" or "not booked"; `value` the booking's objective value (dollars,
    0 when not booked)."""

    request: str
    service: str
    status: str
    reason: str
    value: float

    def as_dict(self) -> dict[str, object]:
        return {
            "request": self.request,
            "service": self.service,
            "status": self.status,
            "reason": self.reason,
            "value": round(self.value, 4),
        }


@dataclass(frozen=True)
class Explanation:
    requests: tuple[RequestExplanation, ...]
    objective: Breakdown

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": [r.as_dict() for r in self.requests],
            "objective": self.objective.as_dict(),
        }


def _ranges(times: Sequence[int], step: int) -> str:
    """Starts on the grid in words, consecutive ones as spans: "starts from 09:00 to 10:30, 14:00"."""
    spans: list[tuple[int, int]] = []
    for t in sorted(times):
        if spans and t <= spans[-1][1] + step:
            spans[-1] = (spans[-1][0], t)
        else:
            spans.append((t, t))
    words = [f"{format_time(a)}" if a == b else f"{format_time(a)} to {format_time(b)}" for a, b in spans]
    return (
        "the start at " if len(spans) == 1 and spans[0][0] == spans[0][1] else "starts from "
    ) + ", ".join(words)


def _windows(request: Request) -> str:
    return ", ".join(f"{format_time(w.start)}-{format_time(w.end)}" for w in request.windows)


def _booked_reason(instance: Instance, request: Request, assignment: Assignment, calendar: Calendar) -> str:
    service = instance.service_of(request)
    end = assignment.start + service.duration_minutes
    parts = [f"booked {format_time(assignment.start)}-{format_time(end)} with {assignment.provider}"]
    preferred = request.preferred_provider
    if preferred is not None and assignment.provider == preferred:
        parts.append("(the preferred provider)")
    elif preferred is not None and request.locked is None:
        other = instance.provider_by_id[preferred]
        if service.skill not in other.skills:
            parts.append(f"(preferred {preferred} lacks the skill {service.skill})")
        elif not other.can_work(assignment.start, end):
            parts.append(f"(preferred {preferred} is off shift or on a break then)")
        elif not calendar.is_free(("provider", preferred), assignment.start, end):
            parts.append(f"(preferred {preferred} is busy then)")
        else:
            parts.append(f"(preferred {preferred} is free then too: the search stopped before swapping)")
    parts.append(f"in {assignment.room}")
    if assignment.device is not None:
        parts.append(f"on {assignment.device}")
    window = window_of(request, service, assignment.start)
    text = " ".join(parts)
    if window is not None and assignment.start > window.start:
        wait = assignment.start - window.start
        cost = instance.weights.wait_cost_per_hour * wait / 60.0
        opens = format_time(window.start)
        text += f"; starts {wait} min after the window opens at {opens} (wait cost ${cost:.2f})"
    return text


def _unbooked_reason(instance: Instance, request: Request, calendar: Calendar) -> str:
    service = instance.service_of(request)
    grid = instance.time_unit_minutes
    starts = candidate_starts(instance, request)
    skilled = [p for p in instance.providers if service.skill in p.skills]
    rooms = [r for r in instance.rooms if r.type in service.room_types]
    devices = [d for d in instance.devices if d.type == service.device_type] if service.device_type else []
    windows = _windows(request)
    if not starts:
        return f"not booked: no start in the client's windows ({windows}) fits the opening hours"
    if not skilled:
        return f"not booked: no provider has the skill {service.skill}"
    if not rooms:
        return (
            f"not booked: the clinic has no room of a suitable type ({', '.join(sorted(service.room_types))})"
        )
    if service.device_type and not devices:
        return f"not booked: the clinic has no {service.device_type} device"
    no_provider: list[int] = []
    no_room: list[int] = []
    no_device: list[int] = []
    off_duty: list[int] = []
    free: list[tuple[float, int, str]] = []
    for t in starts:
        p0, p1 = provider_interval(service, t)
        working = [p for p in skilled if p.can_work(p0, p1)]
        if not working:
            off_duty.append(t)
            continue
        available = [p for p in working if calendar.is_free(("provider", p.id), p0, p1)]
        if not available:
            no_provider.append(t)
            continue
        if not any(calendar.is_free(("room", r.id), *room_interval(service, t)) for r in rooms):
            no_room.append(t)
            continue
        if devices and not any(
            calendar.is_free(("device", d.id), *device_interval(service, d.cooldown_minutes, t))
            for d in devices
        ):
            no_device.append(t)
            continue
        free.extend((booking_value(instance, request, p.id, t), t, p.id) for p in available)
    if free:
        value, t, provider = max(free)
        if value <= 0:
            return (
                f"not booked: the best free option ({format_time(t)} with {provider}) is worth"
                f" ${value:.2f} after the wait cost, so booking it would lose money"
            )
        return (
            f"not booked: {format_time(t)} with {provider} is still free (worth ${value:.2f}); the search"
            " stopped before booking it"
        )
    names = ", ".join(p.id for p in skilled)
    parts = []
    if off_duty and not (no_provider or no_room or no_device):
        return (
            f"not booked: no provider with the skill {service.skill} ({names}) works a whole"
            f" {service.duration_minutes}-minute treatment inside the client's windows ({windows})"
        )
    if no_provider:
        who = (
            f"the only provider with the skill {service.skill} ({names}) is"
            if len(skilled) == 1
            else (f"every provider with the skill {service.skill} ({names}) is")
        )
        parts.append(f"{who} busy for {_ranges(no_provider, grid)}")
    if no_room:
        kinds = " or ".join(sorted(service.room_types))
        what = (
            f"the only {kinds} room ({rooms[0].id}) is"
            if len(rooms) == 1
            else f"all {len(rooms)} {kinds} rooms are"
        )
        parts.append(f"{what} taken for {_ranges(no_room, grid)}")
    if no_device:
        what = (
            f"the only {service.device_type} ({devices[0].id}) is"
            if len(devices) == 1
            else f"all {len(devices)} {service.device_type} devices are"
        )
        parts.append(f"{what} busy for {_ranges(no_device, grid)}")
    if off_duty:
        parts.append(f"no skilled provider is on shift for {_ranges(off_duty, grid)}")
    return f"not booked: within the client's windows ({windows}) " + "; ".join(parts)


def explain(
    instance: Instance, solution: Solution, unbookable: Mapping[str, str] | None = None
) -> Explanation:
    """Explain a feasible schedule request by request (in the instance's order), with the objective by
    term. `unbookable` may carry the model's reasons for requests that never had an option."""
    calendar = Calendar()
    booked = solution.by_request()
    for assignment in solution.assignments:
        calendar.book(instance, assignment)
    out = []
    for request in instance.requests:
        found = booked.get(request.id)
        if found is not None:
            status = "locked" if request.locked is not None else "booked"
            reason = _booked_reason(instance, request, found, calendar)
            if request.locked is not None:
                reason = "locked booking kept as it was: " + reason.removeprefix("booked ")
            value = booking_value(instance, request, found.provider, found.start)
        else:
            status, value = "not booked", 0.0
            known = (unbookable or {}).get(request.id)
            reason = f"not booked: {known}" if known else _unbooked_reason(instance, request, calendar)
        out.append(RequestExplanation(request.id, request.service, status, reason, value))
    return Explanation(tuple(out), breakdown(instance, solution))
