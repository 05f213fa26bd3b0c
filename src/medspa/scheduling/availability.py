"""When a service can be given: free-time interval sets per resource, intersected.

For each local date the location is open, every resource gets a set of free intervals (working or opening
time minus breaks, time off, maintenance and reservations). The starts `t` at which a resource can serve
the service follow from its free set in one pass:

| resource | needs free                            | and also                                                |
| -------- | ------------------------------------- | ------------------------------------------------------- |
| provider | `[t, t + duration)`                   | skill, license valid that day, within a shift, no break |
| room     | `[t - setup, t + duration + cleanup)` | a room type the service allows, inside opening hours    |
| device   | `[t, t + duration + cooldown)`        | the service's device type, no maintenance               |

Starts are on the location's grid of local wall-clock minutes, and at least the minimum notice ahead.
Everything here is pure: the caller loads the data and passes `now`.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import TypeVar

from medspa.catalog.schemas import ServiceRead
from medspa.kit import intervals
from medspa.kit.intervals import Interval
from medspa.kit.tz import local_minutes_to_utc, local_to_utc, to_local
from medspa.resources.schemas import DeviceRead, ProviderRead, RoomRead, WeeklySpan
from medspa.resources.service import LocationResources

# Start ranges are kept half-open, [first, last + TICK), so the interval algebra applies to them too;
# every start is a whole minute, so nothing falls between `last` and `last + TICK`.
TICK = timedelta(seconds=1)


@dataclass(frozen=True)
class Candidate:
    """One way to give the service at `starts_at`."""

    starts_at: datetime
    ends_at: datetime
    provider: ProviderRead
    room: RoomRead
    device: DeviceRead | None


@dataclass
class DayOptions:
    """For one local date: the open spans, and for each eligible resource the starts it can take."""

    day: date
    open_spans: list[Interval]
    grid: list[datetime]
    provider_starts: dict[uuid.UUID, list[Interval]] = field(default_factory=dict)
    room_starts: dict[uuid.UUID, list[Interval]] = field(default_factory=dict)
    device_starts: dict[uuid.UUID, list[Interval]] = field(default_factory=dict)


def local_spans(day: date, spans: Iterable[WeeklySpan], zone: str) -> list[Interval]:
    """The UTC intervals of a day's weekly spans (DST-safe: a span across a change has its real length)."""
    weekday = day.weekday()
    return intervals.normalize(
        (
            local_minutes_to_utc(day, _minutes(s.starts_at), zone),
            local_minutes_to_utc(day, _minutes(s.ends_at), zone),
        )
        for s in spans
        if s.weekday == weekday
    )


def _minutes(wall: time) -> int:
    return wall.hour * 60 + wall.minute


def grid_starts(day: date, zone: str, step_minutes: int, spans: Iterable[WeeklySpan]) -> list[datetime]:
    """The day's grid instants (local wall-clock multiples of the step) inside its opening spans.

    Wall-clock times that do not exist (a spring-forward gap) are skipped; an ambiguous time takes its
    first occurrence."""
    weekday = day.weekday()
    key = tuple(sorted((_minutes(s.starts_at), _minutes(s.ends_at)) for s in spans if s.weekday == weekday))
    return list(_grid(day, zone, step_minutes, key))


@lru_cache(maxsize=4096)
def _grid(
    day: date, zone: str, step_minutes: int, spans: tuple[tuple[int, int], ...]
) -> tuple[datetime, ...]:
    starts: set[datetime] = set()
    for opens, closes in spans:
        first = -(-opens // step_minutes) * step_minutes
        for minute in range(first, min(closes, 24 * 60), step_minutes):
            instant = local_to_utc(day, time(minute // 60, minute % 60), zone)
            if instant is not None:
                starts.add(instant)
    return tuple(sorted(starts))


def is_licensed(provider: ProviderRead, service: ServiceRead, day: date) -> bool:
    if service.required_license is None:
        return True
    return any(lic.kind == service.required_license and lic.expires_on >= day for lic in provider.licenses)


def is_qualified(provider: ProviderRead, service: ServiceRead, day: date) -> bool:
    return service.required_skill in provider.skills and is_licensed(provider, service, day)


def day_options(
    resources: LocationResources,
    service: ServiceRead,
    day: date,
    busy: dict[uuid.UUID, list[Interval]],
    providers: list[ProviderRead],
) -> DayOptions | None:
    """The starts each resource can take on `day`, or None when the location is closed that day.

    `busy` maps resource ids to normalized blocking intervals; `providers` are those to consider."""
    location = resources.location
    zone = location.time_zone
    if day in resources.closed_dates:
        return None
    open_spans = local_spans(day, location.opening_hours, zone)
    if not open_spans:
        return None
    options = DayOptions(
        day, open_spans, grid_starts(day, zone, location.slot_interval_minutes, location.opening_hours)
    )
    duration = timedelta(minutes=service.duration_minutes)
    setup = timedelta(minutes=service.setup_minutes)
    cleanup = timedelta(minutes=service.cleanup_minutes)
    day_start, day_end = open_spans[0][0] - timedelta(days=1), open_spans[-1][1] + timedelta(days=1)

    def busy_on_day(resource_id: uuid.UUID) -> Sequence[Interval]:
        return intervals.clip(busy.get(resource_id, []), day_start, day_end)

    for provider in providers:
        if not is_qualified(provider, service, day):
            continue
        working = intervals.intersect(local_spans(day, provider.shifts, zone), open_spans)
        blocked = intervals.normalize(
            [
                *local_spans(day, provider.breaks, zone),
                *resources.time_off.get(provider.id, []),
                *busy_on_day(provider.id),
            ]
        )
        free = intervals.subtract(working, blocked)
        options.provider_starts[provider.id] = _half_open(
            intervals.feasible_starts(free, timedelta(0), duration)
        )
    for room in resources.rooms:
        if room.room_type not in service.room_types:
            continue
        free = intervals.subtract(open_spans, busy_on_day(room.id))
        options.room_starts[room.id] = _half_open(intervals.feasible_starts(free, setup, duration + cleanup))
    if service.device_type is not None:
        for device in resources.devices:
            if device.device_type != service.device_type:
                continue
            blocked = intervals.normalize(
                [*resources.maintenance.get(device.id, []), *busy_on_day(device.id)]
            )
            free = intervals.subtract([(day_start, day_end)], blocked)
            tail = duration + timedelta(minutes=device.cooldown_minutes)
            options.device_starts[device.id] = _half_open(intervals.feasible_starts(free, timedelta(0), tail))
    return options


def _half_open(ranges: list[Interval]) -> list[Interval]:
    return [(first, last + TICK) for first, last in ranges]


def contains(ranges: list[Interval], instant: datetime) -> bool:
    """Whether a start lies in one of the half-open start ranges."""
    index = bisect_right(ranges, (instant, intervals.FAR_FUTURE)) - 1
    return index >= 0 and ranges[index][0] <= instant < ranges[index][1]


def candidates(
    resources: LocationResources,
    service: ServiceRead,
    options: DayOptions,
    earliest: datetime,
) -> Iterator[Candidate]:
    """Every (start, provider) on the day's grid from `earliest` on, with the first free room and device.

    Only grid points inside the intersection of provider, any-room and any-device start sets are
    visited, so the work grows with the answer, not with the minutes of the day."""
    rooms = [r for r in resources.rooms if r.id in options.room_starts]
    devices = [d for d in resources.devices if d.id in options.device_starts]
    any_room = intervals.normalize(i for r in rooms for i in options.room_starts[r.id])
    feasible_everywhere = any_room
    if service.device_type is not None:
        any_device = intervals.normalize(i for d in devices for i in options.device_starts[d.id])
        feasible_everywhere = intervals.intersect(any_room, any_device)
    duration = timedelta(minutes=service.duration_minutes)
    providers = {p.id: p for p in resources.providers}
    order = {p.id: index for index, p in enumerate(resources.providers)}
    found: list[Candidate] = []
    for provider_id, starts in options.provider_starts.items():
        provider = providers[provider_id]
        room_order = [(r, options.room_starts[r.id]) for r in preferred(rooms, order[provider_id])]
        device_order = [(d, options.device_starts[d.id]) for d in preferred(devices, order[provider_id])]
        for first, end in intervals.intersect(starts, feasible_everywhere):
            index = bisect_left(options.grid, max(first, earliest))
            while index < len(options.grid) and options.grid[index] < end:
                instant = options.grid[index]
                index += 1
                room = next(r for r, free in room_order if contains(free, instant))
                device = None
                if service.device_type is not None:
                    device = next(d for d, free in device_order if contains(free, instant))
                found.append(Candidate(instant, instant + duration, provider, room, device))
    found.sort(key=lambda c: (c.starts_at, c.provider.name, str(c.provider.id)))
    yield from found


R = TypeVar("R", RoomRead, DeviceRead)


def preferred(pool: list[R], provider_index: int) -> list[R]:
    """The order in which a provider's booking tries rooms or devices: each provider starts at a
    different place, so bookings made at the same moment for different providers rarely reach for the
    same room (fewer lost races under load). Slots and bookings use the same order."""
    if not pool:
        return pool
    shift = provider_index % len(pool)
    return pool[shift:] + pool[:shift]


def local_dates(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def busy_by_resource(rows: Iterable[tuple[uuid.UUID, datetime, datetime]]) -> dict[uuid.UUID, list[Interval]]:
    grouped: dict[uuid.UUID, list[Interval]] = {}
    for resource_id, start, end in rows:
        grouped.setdefault(resource_id, []).append((start, end))
    return {key: intervals.normalize(value) for key, value in grouped.items()}


def local_iso(instant: datetime, zone: str) -> str:
    return to_local(instant, zone).isoformat()
