"""The decision variables of the CP-SAT model, and the option filtering done before they are created.

Per flexible (unlocked) request `r`:

- `booked`: whether `r` is booked at all;
- `start`: its start in grid units (minutes = start * time_unit_minutes), over the starts that some
  window, the opening hours and some skilled provider's shift allow;
- `providers[p]`, `rooms[g]`, `devices[g]`, `windows[k]`: one literal per remaining option; exactly one
  of each family is true when `booked`, none otherwise (see `constraints/single_booking.py`);
- `wait`: grid units between the start of the chosen window and the start.

Options that can never work are not created: providers without the skill or without a shift that holds
the treatment in some window, room groups of unsuitable types, device groups of the wrong type. A request
left with no option in some family is recorded in `unbookable` with the reason, and gets no variables.

Rooms and devices are grouped (`ResourceGroup`): identical rooms of one type (devices of one type and
cooldown) that hold no locked booking form one pool with a capacity, modelled as a cumulative resource
with concrete ids assigned after the solve; any room or device holding a locked booking stays individual,
since pre-coloured intervals can make the later colouring fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ortools.sat.python import cp_model

from medspa.scheduling.solver.instance import Instance, Provider, Request, Service
from medspa.scheduling.solver.solution import Assignment
from medspa.scheduling.solver.solution import Replan as Replan  # where the model's callers look for it
from medspa.scheduling.solver.validate import fits_as_booked


@dataclass(frozen=True)
class ResourceGroup:
    """Rooms or devices the model treats as one resource of `len(members)` units.

    `kind` is "room" or "device"; `type` the room or device type; `cooldown_minutes` is 0 for rooms.
    `locked` holds the busy intervals (minutes, request id) of bookings pinned to the one member of a
    single-member group; `held` those of held bookings (see `ScheduleModel.held`) in a pool, which keep
    their time but may swap members.
    """

    kind: str
    key: str
    type: str
    members: tuple[str, ...]
    cooldown_minutes: int = 0
    locked: tuple[tuple[int, int, str], ...] = ()
    held: tuple[tuple[int, int, str], ...] = ()

    @property
    def capacity(self) -> int:
        return len(self.members)


@dataclass
class RequestVariables:
    request: Request
    service: Service
    booked: Any
    start: Any
    starts: tuple[int, ...]
    provider_starts: dict[str, tuple[int, ...]]
    providers: dict[str, Any] = field(default_factory=dict)
    room_starts: dict[str, tuple[int, ...]] = field(default_factory=dict)
    device_starts: dict[str, tuple[int, ...]] = field(default_factory=dict)
    rooms: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, Any] = field(default_factory=dict)
    windows: dict[int, Any] = field(default_factory=dict)
    wait: Any = None


@dataclass
class ScheduleModel:
    """A CP-SAT model under construction: the variables, plus what the constraint modules add.

    `held` are bookings kept at their time and provider without being locked (the rest of the day while
    a neighbourhood is re-solved): their room or device may change within a pool, which keeps pools
    whole. `intervals[("provider", id)]` (and room/device group keys) collect the interval variables each
    resource must keep apart, with their demands; `objective_terms` collect scaled integer terms per
    objective component, so the breakdown can be reported.
    """

    instance: Instance
    model: cp_model.CpModel
    requests: dict[str, RequestVariables]
    locked: tuple[Request, ...]
    room_groups: dict[str, ResourceGroup]
    device_groups: dict[str, ResourceGroup]
    unbookable: dict[str, str]
    intervals: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    objective_terms: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    replan: Replan | None = None
    held: dict[str, Assignment] = field(default_factory=dict)
    stays: dict[str, Any] = field(default_factory=dict)
    # When replanning: the current bookings that can stay exactly where they are (`validate.fits_as_booked`).
    fits: frozenset[str] = frozenset()

    @property
    def grid(self) -> int:
        return self.instance.time_unit_minutes

    def add_interval(self, resource: str, interval: Any, demand: int = 1) -> None:
        self.intervals.setdefault(resource, []).append((interval, demand))

    def add_term(self, name: str, variable: Any, coefficient: int) -> None:
        if coefficient:
            self.objective_terms.setdefault(name, []).append((variable, coefficient))


def group_resources(
    instance: Instance, held: Sequence[Assignment] = (), pinned: Iterable[str] = ()
) -> tuple[dict[str, ResourceGroup], dict[str, ResourceGroup]]:
    """Room groups and device groups, keyed by `room:<type>` / `device:<type>:<cooldown>` for pools and
    `room=<id>` / `device=<id>` for individual ones (those holding a locked booking, and the rooms and
    devices named in `pinned`: when replanning, those of the current bookings, so that keeping a booking
    in its own room can be expressed)."""
    pinned_rooms: dict[str, list[tuple[int, int, str]]] = {r: [] for r in pinned if r in instance.room_by_id}
    pinned_devices: dict[str, list[tuple[int, int, str]]] = {
        d: [] for d in pinned if d in instance.device_by_id
    }
    for request in instance.requests:
        lock = request.locked
        if lock is None:
            continue
        service = instance.service_of(request)
        pinned_rooms.setdefault(lock.room, []).append((*_room_busy(service, lock.start), request.id))
        if lock.device is not None:
            cooldown = instance.device_by_id[lock.device].cooldown_minutes
            pinned_devices.setdefault(lock.device, []).append(
                (lock.start, lock.start + service.duration_minutes + cooldown, request.id)
            )
    pooled_rooms: dict[str, list[str]] = {}
    for room in instance.rooms:
        if room.id not in pinned_rooms:
            pooled_rooms.setdefault(room.type, []).append(room.id)
    pooled_devices: dict[tuple[str, int], list[str]] = {}
    for device in instance.devices:
        if device.id not in pinned_devices:
            pooled_devices.setdefault((device.type, device.cooldown_minutes), []).append(device.id)
    room_pool_of = {m: f"room:{t}" for t, members in pooled_rooms.items() for m in members}
    device_pool_of = {m: f"device:{t}:{c}" for (t, c), members in pooled_devices.items() for m in members}
    held_in_pool: dict[str, list[tuple[int, int, str]]] = {}
    for assignment in held:
        service = instance.service_of(instance.request_by_id[assignment.request])
        busy = (*_room_busy(service, assignment.start), assignment.request)
        if assignment.room in room_pool_of:
            held_in_pool.setdefault(room_pool_of[assignment.room], []).append(busy)
        else:
            pinned_rooms.setdefault(assignment.room, []).append(busy)
        if assignment.device is not None:
            cooldown = instance.device_by_id[assignment.device].cooldown_minutes
            busy = (
                assignment.start,
                assignment.start + service.duration_minutes + cooldown,
                assignment.request,
            )
            if assignment.device in device_pool_of:
                held_in_pool.setdefault(device_pool_of[assignment.device], []).append(busy)
            else:
                pinned_devices.setdefault(assignment.device, []).append(busy)
    rooms: dict[str, ResourceGroup] = {}
    for room in instance.rooms:
        if room.id in pinned_rooms:
            key = f"room={room.id}"
            rooms[key] = ResourceGroup("room", key, room.type, (room.id,), 0, tuple(pinned_rooms[room.id]))
    for room_type, members in pooled_rooms.items():
        key = f"room:{room_type}"
        rooms[key] = ResourceGroup(
            "room", key, room_type, tuple(members), held=tuple(held_in_pool.get(key, ()))
        )
    devices: dict[str, ResourceGroup] = {}
    for device in instance.devices:
        if device.id in pinned_devices:
            key = f"device={device.id}"
            devices[key] = ResourceGroup(
                "device",
                key,
                device.type,
                (device.id,),
                device.cooldown_minutes,
                tuple(pinned_devices[device.id]),
            )
    for (device_type, cooldown), members in pooled_devices.items():
        key = f"device:{device_type}:{cooldown}"
        devices[key] = ResourceGroup(
            "device", key, device_type, tuple(members), cooldown, held=tuple(held_in_pool.get(key, ()))
        )
    return rooms, devices


def _room_busy(service: Service, start: int) -> tuple[int, int]:
    return start - service.setup_minutes, start + service.duration_minutes + service.cleanup_minutes


def candidate_starts(instance: Instance, request: Request) -> tuple[int, ...]:
    """Starts (minutes, on the grid) inside a client window whose room time fits the opening hours."""
    service = instance.service_of(request)
    grid = instance.time_unit_minutes
    first = instance.open + service.setup_minutes
    last = instance.close - service.duration_minutes - service.cleanup_minutes
    starts: set[int] = set()
    for window in request.windows:
        begin = max(window.start, first)
        begin += (-begin) % grid
        starts.update(range(begin, min(window.end - service.duration_minutes, last) + 1, grid))
    return tuple(sorted(starts))


@lru_cache(maxsize=4096)
def _working_starts(provider: Provider, duration_minutes: int, grid: int) -> frozenset[int]:
    """Every start on the grid at which `provider` works a whole `duration_minutes` (shift, no break)."""
    return frozenset(
        t
        for shift in provider.shifts
        for t in range(shift.start + (-shift.start) % grid, shift.end - duration_minutes + 1, grid)
        if provider.can_work(t, t + duration_minutes)
    )


def blocked_starts(busy: Iterable[tuple[int, int]], lead: int, tail: int, grid: int) -> set[int]:
    """Starts `t` on the grid whose interval `[t - lead, t + tail)` overlaps one of the `busy` intervals."""
    out: set[int] = set()
    for begin, end in busy:
        first = begin - tail + 1
        first += (-first) % grid
        out.update(range(first, end + lead, grid))
    return out


def provider_starts(
    provider: Provider,
    service: Service,
    starts: Iterable[int],
    busy: Iterable[tuple[int, int]] = (),
    grid: int = 1,
    blocked: set[int] | None = None,
) -> tuple[int, ...]:
    """The starts (on a `grid`, from `starts`) at which `provider` can give `service`: skilled, inside
    one shift, clear of breaks and of the given busy intervals (locked bookings). `blocked`, when given,
    is `blocked_starts(busy, 0, duration, grid)` computed beforehand."""
    if service.skill not in provider.skills:
        return ()
    working = _working_starts(provider, service.duration_minutes, grid)
    if blocked is None:
        blocked = blocked_starts(busy, 0, service.duration_minutes, grid)
    return tuple(t for t in starts if t in working and t not in blocked)


def _group_options(
    groups: Iterable[ResourceGroup],
    starts: Sequence[int],
    lead: int,
    tail: int,
    grid: int,
    memo: dict[tuple[str, int, int], set[int]],
) -> dict[str, tuple[int, ...]]:
    """Per room or device group, the starts at which the booking, busy `[t - lead, t + tail + the
    group's cooldown)`, would be clear of the group's locked bookings; groups where no start is clear
    are left out. `memo` keeps the blocked starts per group and interval shape across requests."""
    out = {}
    for group in groups:
        if group.locked:
            key = (group.key, lead, tail)
            if key not in memo:
                memo[key] = blocked_starts(
                    ((b0, b1) for b0, b1, _ in group.locked), lead, tail + group.cooldown_minutes, grid
                )
            blocked = memo[key]
            allowed = tuple(t for t in starts if t not in blocked)
        else:
            allowed = tuple(starts)
        if allowed:
            out[group.key] = allowed
    return out


def domain_of(values: Iterable[int]) -> cp_model.Domain:
    return cp_model.Domain.from_values(sorted(set(values)))


def create_variables(
    instance: Instance, replan: Replan | None = None, held: Sequence[Assignment] = ()
) -> ScheduleModel:
    """Filter the options of every flexible request and create its variables on a fresh CP-SAT model.

    Requests that are locked, or booked in `held`, get no variables."""
    model = cp_model.CpModel()
    grid = instance.time_unit_minutes
    pinned = (
        {x for a in replan.current.assignments for x in (a.room, a.device) if x is not None}
        if replan is not None
        else set()
    )
    room_groups, device_groups = group_resources(instance, held, pinned)
    held_by_request = {a.request: a for a in held}
    provider_busy: dict[str, list[tuple[int, int]]] = {}
    for request in instance.requests:
        fixed = request.locked or held_by_request.get(request.id)
        if fixed is not None:
            service = instance.service_of(request)
            provider_busy.setdefault(fixed.provider, []).append(
                (fixed.start, fixed.start + service.duration_minutes)
            )
    provider_blocked: dict[tuple[str, int], set[int]] = {}
    group_blocked: dict[tuple[str, int, int], set[int]] = {}
    variables: dict[str, RequestVariables] = {}
    unbookable: dict[str, str] = {}
    for request in instance.requests:
        if request.locked is not None or request.id in held_by_request:
            continue
        service = instance.service_of(request)
        starts = candidate_starts(instance, request)
        if not starts:
            unbookable[request.id] = "no start inside the client's windows fits the opening hours"
            continue
        by_provider = {}
        for provider in instance.providers:
            memo_key = (provider.id, service.duration_minutes)
            if memo_key not in provider_blocked:
                provider_blocked[memo_key] = blocked_starts(
                    provider_busy.get(provider.id, ()), 0, service.duration_minutes, grid
                )
            allowed = provider_starts(
                provider, service, starts, grid=grid, blocked=provider_blocked[memo_key]
            )
            if allowed:
                by_provider[provider.id] = allowed
        if not by_provider:
            skilled = [p.id for p in instance.providers if service.skill in p.skills]
            unbookable[request.id] = (
                f"no provider has the skill {service.skill}"
                if not skilled
                else f"no provider with the skill {service.skill} ({', '.join(skilled)}) is working and free"
                " for a whole treatment inside the client's windows"
            )
            continue
        usable_starts = sorted({t for allowed in by_provider.values() for t in allowed})
        room_options = _group_options(
            [g for g in room_groups.values() if g.type in service.room_types],
            usable_starts,
            service.setup_minutes,
            service.duration_minutes + service.cleanup_minutes,
            grid,
            group_blocked,
        )
        if not room_options:
            unbookable[request.id] = (
                f"no room of a suitable type ({', '.join(sorted(service.room_types))})"
                if not any(r.type in service.room_types for r in instance.rooms)
                else "every suitable room is held by locked bookings whenever a provider could treat"
            )
            continue
        device_options: dict[str, tuple[int, ...]] = {}
        if service.device_type is not None:
            device_options = _group_options(
                [g for g in device_groups.values() if g.type == service.device_type],
                usable_starts,
                0,
                service.duration_minutes,
                grid,
                group_blocked,
            )
            if not device_options:
                unbookable[request.id] = (
                    f"the clinic has no {service.device_type} device"
                    if not any(d.type == service.device_type for d in instance.devices)
                    else f"every {service.device_type} device is held by locked bookings whenever a provider"
                    " could treat"
                )
                continue
        rv = RequestVariables(
            request=request,
            service=service,
            booked=model.new_bool_var(f"booked[{request.id}]"),
            start=model.new_int_var_from_domain(
                domain_of(t // grid for t in usable_starts), f"start[{request.id}]"
            ),
            starts=tuple(usable_starts),
            provider_starts=by_provider,
        )
        for provider_id in by_provider:
            rv.providers[provider_id] = model.new_bool_var(f"provider[{request.id},{provider_id}]")
        for key, allowed in room_options.items():
            rv.rooms[key] = model.new_bool_var(f"room[{request.id},{key}]")
            if len(allowed) < len(usable_starts):
                rv.room_starts[key] = allowed
        for key, allowed in device_options.items():
            rv.devices[key] = model.new_bool_var(f"device[{request.id},{key}]")
            if len(allowed) < len(usable_starts):
                rv.device_starts[key] = allowed
        for index, window in enumerate(request.windows):
            if any(window.contains(t, t + service.duration_minutes) for t in usable_starts):
                rv.windows[index] = model.new_bool_var(f"window[{request.id},{index}]")
        longest = max(w.end - w.start for w in request.windows) // grid
        rv.wait = model.new_int_var(0, longest, f"wait[{request.id}]")
        variables[request.id] = rv
    return ScheduleModel(
        instance=instance,
        model=model,
        requests=variables,
        locked=tuple(r for r in instance.requests if r.locked is not None),
        room_groups=room_groups,
        device_groups=device_groups,
        unbookable=unbookable,
        replan=replan,
        held=held_by_request,
        fits=frozenset(fits_as_booked(instance, replan.current)) if replan is not None else frozenset(),
    )
