"""Greedy schedules: the fallback when the search finds nothing better, and the hint it starts from.

`first_available` books in the order given, each request at its earliest feasible start, preferring
its preferred provider (what ordinary booking software does, and the baseline the referee scores).
`best_insertion` books requests one by one, in a chosen order, each at its highest-valued feasible
option. `greedy_schedule` returns the best of several such schedules, so the optimizer's output is never
worse than first-available booking. `repair` keeps what still works of a current schedule, moves what
cannot stay where another place is free (leaving the rest where it was), then books the others by best
insertion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from medspa.scheduling.solver.instance import Instance, Request
from medspa.scheduling.solver.solution import Assignment, Solution
from medspa.scheduling.solver.validate import (
    booking_value,
    device_interval,
    fits_as_booked,
    provider_interval,
    resource_intervals,
    room_interval,
    score,
)
from medspa.scheduling.solver.variables import candidate_starts, provider_starts


@dataclass
class Calendar:
    """Busy intervals per resource (`("provider", id)`, `("room", id)`, `("device", id)`)."""

    busy: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)

    def is_free(self, key: tuple[str, str], begin: int, end: int) -> bool:
        return all(end <= b0 or b1 <= begin for b0, b1 in self.busy.get(key, ()))

    def take(self, key: tuple[str, str], begin: int, end: int) -> None:
        self.busy.setdefault(key, []).append((begin, end))

    def fits(self, instance: Instance, assignment: Assignment) -> bool:
        service = instance.service_of(instance.request_by_id[assignment.request])
        if not self.is_free(("provider", assignment.provider), *provider_interval(service, assignment.start)):
            return False
        if not self.is_free(("room", assignment.room), *room_interval(service, assignment.start)):
            return False
        if assignment.device is not None:
            cooldown = instance.device_by_id[assignment.device].cooldown_minutes
            if not self.is_free(
                ("device", assignment.device), *device_interval(service, cooldown, assignment.start)
            ):
                return False
        return True

    def free(self, key: tuple[str, str], begin: int, end: int) -> None:
        self.busy[key].remove((begin, end))

    def book(self, instance: Instance, assignment: Assignment) -> None:
        service = instance.service_of(instance.request_by_id[assignment.request])
        self.take(("provider", assignment.provider), *provider_interval(service, assignment.start))
        self.take(("room", assignment.room), *room_interval(service, assignment.start))
        if assignment.device is not None:
            cooldown = instance.device_by_id[assignment.device].cooldown_minutes
            self.take(("device", assignment.device), *device_interval(service, cooldown, assignment.start))


def _locked(instance: Instance, calendar: Calendar) -> list[Assignment]:
    booked = []
    for request in instance.requests:
        if request.locked is not None:
            lock = request.locked
            assignment = Assignment(request.id, lock.provider, lock.room, lock.device, lock.start)
            calendar.book(instance, assignment)
            booked.append(assignment)
    return booked


def first_available(instance: Instance) -> Solution:
    """The first-available rule, as the referee's baseline defines it."""
    calendar = Calendar()
    booked = _locked(instance, calendar)
    provider_ids = sorted(p.id for p in instance.providers)
    for request in instance.requests:
        if request.locked is not None:
            continue
        service = instance.service_of(request)
        preferred = request.preferred_provider
        providers = sorted(provider_ids, key=lambda p: (p != preferred, p))
        devices: list[str | None] = (
            [d.id for d in instance.devices if d.type == service.device_type]
            if service.device_type
            else [None]
        )
        starts = sorted(
            {
                t
                for w in request.windows
                for t in range(w.start, w.end - service.duration_minutes + 1, instance.time_unit_minutes)
            }
        )
        found = _first_fit(instance, calendar, request, starts, providers, devices)
        if found is not None:
            booked.append(found)
    return Solution.of(instance.name, booked)


def _first_fit(
    instance: Instance,
    calendar: Calendar,
    request: Request,
    starts: Sequence[int],
    providers: Sequence[str],
    devices: Sequence[str | None],
) -> Assignment | None:
    """The first (start, provider, room, device) in that nesting order that breaks no rule and is free."""
    service = instance.service_of(request)
    for t in starts:
        r0, r1 = room_interval(service, t)
        if r0 < instance.open or r1 > instance.close:
            continue
        p0, p1 = provider_interval(service, t)
        for provider_id in providers:
            provider = instance.provider_by_id[provider_id]
            if service.skill not in provider.skills or not provider.can_work(p0, p1):
                continue
            if not calendar.is_free(("provider", provider_id), p0, p1):
                continue
            for room in instance.rooms:
                if room.type not in service.room_types or not calendar.is_free(("room", room.id), r0, r1):
                    continue
                for device in devices:
                    if device is not None:
                        cooldown = instance.device_by_id[device].cooldown_minutes
                        if not calendar.is_free(("device", device), *device_interval(service, cooldown, t)):
                            continue
                    assignment = Assignment(request.id, provider_id, room.id, device, t)
                    calendar.book(instance, assignment)
                    return assignment
    return None


@dataclass(frozen=True)
class _Options:
    """A request's (value, start, provider) options, best first, and its rooms and devices in the order
    to try them."""

    request: Request
    ranked: tuple[tuple[float, int, str], ...]
    rooms: tuple[str, ...]
    devices: tuple[str | None, ...]

    @property
    def best_value(self) -> float:
        return self.ranked[0][0] if self.ranked else 0.0


def _options(instance: Instance) -> dict[str, _Options]:
    busy: dict[str, list[tuple[int, int]]] = {}
    for request in instance.requests:
        if request.locked is not None:
            service = instance.service_of(request)
            busy.setdefault(request.locked.provider, []).append(
                provider_interval(service, request.locked.start)
            )
    # Rooms wanted by fewer services are tried first, keeping versatile rooms for the services that
    # need them.
    demand: dict[str, int] = {}
    for request in instance.requests:
        for room_type in instance.service_of(request).room_types:
            demand[room_type] = demand.get(room_type, 0) + 1
    out = {}
    for request in instance.requests:
        if request.locked is not None:
            continue
        service = instance.service_of(request)
        starts = candidate_starts(instance, request)
        ranked = sorted(
            (
                (booking_value(instance, request, provider.id, t), t, provider.id)
                for provider in instance.providers
                for t in provider_starts(
                    provider, service, starts, busy.get(provider.id, ()), instance.time_unit_minutes
                )
            ),
            key=lambda option: (-option[0], option[1], option[2]),
        )
        rooms = tuple(
            room.id
            for room in sorted(
                (r for r in instance.rooms if r.type in service.room_types), key=lambda r: demand[r.type]
            )
        )
        devices: tuple[str | None, ...] = (
            tuple(d.id for d in instance.devices if d.type == service.device_type)
            if service.device_type
            else (None,)
        )
        out[request.id] = _Options(request, tuple(ranked), rooms, devices)
    return out


def _insert(instance: Instance, calendar: Calendar, options: _Options) -> Assignment | None:
    """Book the request at its best option that is free, or not at all."""
    service = instance.service_of(options.request)
    for _, start, provider in options.ranked:
        if not calendar.is_free(("provider", provider), *provider_interval(service, start)):
            continue
        room = next(
            (r for r in options.rooms if calendar.is_free(("room", r), *room_interval(service, start))), None
        )
        if room is None:
            continue
        device: str | None = None
        if service.device_type is not None:
            device = next(
                (
                    d
                    for d in options.devices
                    if d is not None
                    and calendar.is_free(
                        ("device", d),
                        *device_interval(service, instance.device_by_id[d].cooldown_minutes, start),
                    )
                ),
                None,
            )
            if device is None:
                continue
        assignment = Assignment(options.request.id, provider, room, device, start)
        calendar.book(instance, assignment)
        return assignment
    return None


def best_insertion(
    instance: Instance,
    key: Callable[[_Options], float],
    *,
    kept: Sequence[Assignment] = (),
    prepared: dict[str, _Options] | None = None,
    blocked: Sequence[tuple[tuple[str, str], int, int]] = (),
) -> Solution:
    """Book locked and `kept` bookings, then the other requests by ascending `key`, each at its
    highest-valued free option. `blocked` is more busy time (resource, begin, end): the places that
    dropped bookings keep."""
    calendar = Calendar()
    for resource, begin, end in blocked:
        calendar.take(resource, begin, end)
    booked = _locked(instance, calendar)
    for assignment in kept:
        calendar.book(instance, assignment)
        booked.append(assignment)
    taken = {a.request for a in booked}
    options = prepared if prepared is not None else _options(instance)
    for option in sorted((o for o in options.values() if o.request.id not in taken), key=key):
        found = _insert(instance, calendar, option)
        if found is not None:
            booked.append(found)
    return Solution.of(instance.name, booked)


def _orders(instance: Instance) -> list[Callable[[_Options], float]]:
    position = {r.id: i for i, r in enumerate(instance.requests)}
    return [
        lambda o: -o.best_value,
        lambda o: -o.best_value / instance.service_of(o.request).duration_minutes,
        lambda o: float(position[o.request.id]),
    ]


def greedy_schedule(instance: Instance) -> Solution:
    """The best of first-available and best insertion in several orders (by the exact objective)."""
    prepared = _options(instance)
    candidates = [first_available(instance)]
    candidates.extend(best_insertion(instance, key, prepared=prepared) for key in _orders(instance))
    return max(candidates, key=lambda s: score(instance, s.assignments))


def repair(instance: Instance, current: Solution) -> Solution:
    """Keep every booking of `current` that fits where it is; give each one that cannot stay the best
    free place, or else leave it where it was (dropped: it keeps its provider, room and device for
    staff to handle); then book the rest by best insertion. The fewest moves a greedy repair can make."""
    fits = fits_as_booked(instance, current)
    kept = [a for a in current.assignments if a.request in fits]
    stranded = [
        a
        for a in current.assignments
        if a.request in instance.request_by_id
        and instance.request_by_id[a.request].locked is None
        and a.request not in fits
    ]
    calendar = Calendar()
    _locked(instance, calendar)
    for assignment in kept:
        calendar.book(instance, assignment)
    # Every stranded booking holds its place until it finds another, so none is put where one stays.
    places = {a.request: resource_intervals(instance, a) for a in stranded}
    for place in places.values():
        for resource, begin, end in place:
            calendar.take(resource, begin, end)
    prepared = _options(instance)
    moved = []
    for assignment in sorted(stranded, key=lambda a: -prepared[a.request].best_value):
        for resource, begin, end in places[assignment.request]:
            calendar.free(resource, begin, end)
        found = _insert(instance, calendar, prepared[assignment.request])
        if found is None:
            for resource, begin, end in places[assignment.request]:
                calendar.take(resource, begin, end)
        else:
            moved.append(found)
            del places[assignment.request]
    return best_insertion(
        instance,
        lambda o: -o.best_value,
        kept=[*kept, *moved],
        prepared={rid: o for rid, o in prepared.items() if rid not in {a.request for a in stranded}},
        blocked=[interval for place in places.values() for interval in place],
    )
