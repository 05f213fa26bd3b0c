"""Time zones: IANA names, local wall-clock times and the UTC instants they stand for."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The zone for an IANA name; raises ValueError for an unknown one."""
    if name not in _known_zones():
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:  # pragma: no cover - guarded above
        raise ValueError(f"unknown time zone {name!r}") from error


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_valid_zone(name: str) -> bool:
    return name in _known_zones()


def local_to_utc(day: date, wall: time, zone_name: str) -> datetime | None:
    """The UTC instant of a local wall-clock time, or None when that time does not exist that day
    (it falls in the gap of a spring-forward change). An ambiguous time (fall-back) takes its first
    occurrence."""
    tz = zone(zone_name)
    local = datetime.combine(day, wall, tzinfo=tz)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return instant


@lru_cache(maxsize=65536)
def local_minutes_to_utc(day: date, minutes: int, zone_name: str) -> datetime:
    """The instant `minutes` after local midnight of `day` on the wall clock, moved forward past a
    spring-forward gap (so a shift that starts at 02:00 on the day 02:00 does not exist starts at 03:00)."""
    base = datetime.combine(day, time(0))
    for shift in range(0, 24 * 60, 1):
        wall = base + timedelta(minutes=minutes + shift)
        instant = local_to_utc(wall.date(), wall.time(), zone_name)
        if instant is not None:
            return instant
    raise ValueError("no valid local time")  # pragma: no cover - zones have no day-long gaps


def local_day_bounds(day: date, zone_name: str) -> tuple[datetime, datetime]:
    """The UTC instants of the start of `day` and of the next day, in the zone."""
    return local_minutes_to_utc(day, 0, zone_name), local_minutes_to_utc(
        day + timedelta(days=1), 0, zone_name
    )


def to_local(instant: datetime, zone_name: str) -> datetime:
    return instant.astimezone(zone(zone_name))


def clock_label(hour: int, minute: int) -> str:
    """`9:30 AM`: how the front desk reads a wall-clock time."""
    suffix = "AM" if hour < 12 else "PM"
    return f"{(hour % 12) or 12}:{minute:02d} {suffix}"


def local_label(instant: datetime, zone_name: str, *, on: date | None = None) -> str:
    """How staff read an instant in the location's zone: `9:30 AM`, with the date (`Thu, Mar 5 at 9:30
    AM`) when it is not on the local date `on`."""
    local = to_local(instant, zone_name)
    time_of_day = clock_label(local.hour, local.minute)
    if on is not None and local.date() == on:
        return time_of_day
    return f"{local.strftime('%a, %b')} {local.day}, {local.year} at {time_of_day}"
