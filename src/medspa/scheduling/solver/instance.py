"""The clinic-day instance (`clinic-day-instance/1`): parse, validate, and hold it as frozen dataclasses.

Times are minutes since local midnight (`int`), intervals half-open `[start, end)`. Parsing checks every
field and raises `InstanceFormatError` naming the first bad one as a path, e.g.
`requests[3].windows[0].start: not on the 5-minute grid`. Locked bookings that break a rule on their own,
or that overlap one another on a provider, room or device, raise `LockedBookingConflictError` listing them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from medspa.scheduling.solver.errors import InstanceFormatError, LockedBookingConflictError

FORMAT = "clinic-day-instance/1"
_TIME = re.compile(r"^(\d{2}):(\d{2})$")


@dataclass(frozen=True)
class TimeRange:
    """Half-open `[start, end)` in minutes since local midnight."""

    start: int
    end: int

    def contains(self, start: int, end: int) -> bool:
        return self.start <= start and end <= self.end

    def overlaps(self, start: int, end: int) -> bool:
        return self.start < end and start < self.end


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    skills: frozenset[str]
    shifts: tuple[TimeRange, ...]
    breaks: tuple[TimeRange, ...]

    def can_work(self, start: int, end: int) -> bool:
        """Whether `[start, end)` lies inside one shift and overlaps no break."""
        return any(s.contains(start, end) for s in self.shifts) and not any(
            b.overlaps(start, end) for b in self.breaks
        )


@dataclass(frozen=True)
class Room:
    id: str
    type: str


@dataclass(frozen=True)
class Device:
    id: str
    type: str
    cooldown_minutes: int


@dataclass(frozen=True)
class Service:
    id: str
    category: str
    duration_minutes: int
    setup_minutes: int
    cleanup_minutes: int
    skill: str
    room_types: frozenset[str]
    device_type: str | None
    price: float
    cost: float


@dataclass(frozen=True)
class Lock:
    """An existing booking that must be kept exactly."""

    provider: str
    room: str
    device: str | None
    start: int


@dataclass(frozen=True)
class Request:
    id: str
    client_id: str
    service: str
    windows: tuple[TimeRange, ...]
    preferred_provider: str | None
    priority: str
    no_show_probability: float
    locked: Lock | None


@dataclass(frozen=True)
class Weights:
    continuity_bonus: float
    priority_bonus: Mapping[str, float]
    wait_cost_per_hour: float


@dataclass(frozen=True)
class Instance:
    name: str
    timezone: str
    service_date: date
    open: int
    close: int
    time_unit_minutes: int
    providers: tuple[Provider, ...]
    rooms: tuple[Room, ...]
    devices: tuple[Device, ...]
    services: tuple[Service, ...]
    requests: tuple[Request, ...]
    weights: Weights
    provider_by_id: Mapping[str, Provider] = field(init=False, repr=False, compare=False)
    room_by_id: Mapping[str, Room] = field(init=False, repr=False, compare=False)
    device_by_id: Mapping[str, Device] = field(init=False, repr=False, compare=False)
    service_by_id: Mapping[str, Service] = field(init=False, repr=False, compare=False)
    request_by_id: Mapping[str, Request] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "provider_by_id", {p.id: p for p in self.providers})
        object.__setattr__(self, "room_by_id", {r.id: r for r in self.rooms})
        object.__setattr__(self, "device_by_id", {d.id: d for d in self.devices})
        object.__setattr__(self, "service_by_id", {s.id: s for s in self.services})
        object.__setattr__(self, "request_by_id", {r.id: r for r in self.requests})

    def service_of(self, request: Request) -> Service:
        return self.service_by_id[request.service]


def format_time(minutes: int) -> str:
    """`"HH:MM"` for minutes since midnight."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# The latest time an instance may name: 24:00, or 25:00 on the day clocks fall back an hour (a live day
# whose opening hours span that change counts its real minutes, see `scheduling.day_instance`).
LATEST_MINUTE = 25 * 60


def parse_time(text: str) -> int:
    """Minutes since midnight from `"HH:MM"` (00:00 to 25:00); `ValueError` otherwise."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"not a time of the form HH:MM: {text!r}")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes >= 60 or hours * 60 + minutes > LATEST_MINUTE:
        raise ValueError(f"not a time of day: {text!r}")
    return hours * 60 + minutes


class _Reader:
    """Typed access to a JSON document that names the path of whatever is wrong."""

    def __init__(self, grid: int = 1) -> None:
        self.grid = grid

    def fail(self, path: str, detail: str) -> InstanceFormatError:
        return InstanceFormatError(path, detail)

    def obj(self, doc: object, path: str) -> Mapping[str, Any]:
        if not isinstance(doc, Mapping):
            raise self.fail(path, "must be an object")
        return doc

    def get(self, doc: Mapping[str, Any], key: str, path: str) -> Any:
        if key not in doc:
            raise self.fail(f"{path}.{key}" if path else key, "missing")
        return doc[key]

    def string(self, doc: Mapping[str, Any], key: str, path: str, *, nullable: bool = False) -> str | None:
        value = doc.get(key) if nullable else self.get(doc, key, path)
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(self.join(path, key), "must be a non-empty string")
        return value

    def text(self, doc: Mapping[str, Any], key: str, path: str) -> str:
        value = self.string(doc, key, path)
        assert value is not None
        return value

    def integer(self, doc: Mapping[str, Any], key: str, path: str, *, minimum: int = 0) -> int:
        value = self.get(doc, key, path)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(self.join(path, key), "must be a whole number")
        if value < minimum:
            raise self.fail(self.join(path, key), f"must be at least {minimum}")
        return value

    def number(self, doc: Mapping[str, Any], key: str, path: str) -> float:
        value = self.get(doc, key, path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(self.join(path, key), "must be a number")
        if value != value or value in (float("inf"), float("-inf")):
            raise self.fail(self.join(path, key), "must be a finite number")
        return float(value)

    def array(self, doc: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = self.get(doc, key, path)
        if not isinstance(value, list):
            raise self.fail(self.join(path, key), "must be a list")
        return value

    def time(self, doc: Mapping[str, Any], key: str, path: str, *, on_grid: bool = True) -> int:
        value = self.get(doc, key, path)
        where = self.join(path, key)
        if not isinstance(value, str):
            raise self.fail(where, "must be a time string HH:MM")
        try:
            minutes = parse_time(value)
        except ValueError as error:
            raise self.fail(where, str(error)) from None
        if on_grid and minutes % self.grid:
            raise self.fail(where, f"not on the {self.grid}-minute grid")
        return minutes

    def time_range(self, doc: object, path: str) -> TimeRange:
        item = self.obj(doc, path)
        start = self.time(item, "start", path)
        end = self.time(item, "end", path)
        if end <= start:
            raise self.fail(f"{path}.end", f"must be after start ({format_time(start)})")
        return TimeRange(start, end)

    @staticmethod
    def join(path: str, key: str) -> str:
        return f"{path}.{key}" if path else key


def _unique(ids: Sequence[str], path: str) -> None:
    seen: set[str] = set()
    for index, item_id in enumerate(ids):
        if item_id in seen:
            raise InstanceFormatError(f"{path}[{index}].id", f"duplicate id {item_id!r}")
        seen.add(item_id)


def parse_instance(document: object) -> Instance:
    """Parse and validate a `clinic-day-instance/1` document (already decoded from JSON).

    Raises `InstanceFormatError` naming the first bad field, and `LockedBookingConflictError` when the
    locked bookings break a rule or overlap one another.
    """
    reader = _Reader()
    doc = reader.obj(document, "instance")
    if doc.get("format") != FORMAT:
        raise InstanceFormatError("format", f"must be {FORMAT!r}, got {doc.get('format')!r}")
    name = reader.text(doc, "name", "")
    grid = reader.integer(doc, "time_unit_minutes", "", minimum=1)
    reader.grid = grid
    location = reader.obj(reader.get(doc, "location", ""), "location")
    timezone = reader.text(location, "timezone", "location")
    try:
        service_date = date.fromisoformat(reader.text(location, "date", "location"))
    except ValueError:
        raise InstanceFormatError("location.date", "must be a date YYYY-MM-DD") from None
    opening = reader.time(location, "open", "location")
    closing = reader.time(location, "close", "location")
    if closing <= opening:
        raise InstanceFormatError("location.close", "must be after location.open")

    weights_doc = reader.obj(reader.get(doc, "weights", ""), "weights")
    bonus_doc = reader.obj(reader.get(weights_doc, "priority_bonus", "weights"), "weights.priority_bonus")
    weights = Weights(
        continuity_bonus=reader.number(weights_doc, "continuity_bonus", "weights"),
        priority_bonus={
            str(key): reader.number(bonus_doc, key, "weights.priority_bonus") for key in bonus_doc
        },
        wait_cost_per_hour=reader.number(weights_doc, "wait_cost_per_hour", "weights"),
    )

    providers = []
    for index, item in enumerate(reader.array(doc, "providers", "")):
        path = f"providers[{index}]"
        entry = reader.obj(item, path)
        skills = reader.array(entry, "skills", path)
        for skill_index, skill in enumerate(skills):
            if not isinstance(skill, str):
                raise InstanceFormatError(f"{path}.skills[{skill_index}]", "must be a string")
        providers.append(
            Provider(
                id=reader.text(entry, "id", path),
                name=str(entry.get("name") or ""),
                skills=frozenset(skills),
                shifts=tuple(
                    reader.time_range(s, f"{path}.shifts[{i}]")
                    for i, s in enumerate(reader.array(entry, "shifts", path))
                ),
                breaks=tuple(
                    reader.time_range(b, f"{path}.breaks[{i}]")
                    for i, b in enumerate(entry.get("breaks") or [])
                ),
            )
        )
    _unique([p.id for p in providers], "providers")

    rooms = []
    for index, item in enumerate(reader.array(doc, "rooms", "")):
        path = f"rooms[{index}]"
        entry = reader.obj(item, path)
        rooms.append(Room(id=reader.text(entry, "id", path), type=reader.text(entry, "type", path)))
    _unique([r.id for r in rooms], "rooms")

    devices = []
    for index, item in enumerate(reader.array(doc, "devices", "")):
        path = f"devices[{index}]"
        entry = reader.obj(item, path)
        devices.append(
            Device(
                id=reader.text(entry, "id", path),
                type=reader.text(entry, "type", path),
                cooldown_minutes=reader.integer(entry, "cooldown_minutes", path),
            )
        )
    _unique([d.id for d in devices], "devices")

    services = []
    for index, item in enumerate(reader.array(doc, "services", "")):
        path = f"services[{index}]"
        entry = reader.obj(item, path)
        duration = reader.integer(entry, "duration_minutes", path, minimum=1)
        if duration % grid:
            raise InstanceFormatError(f"{path}.duration_minutes", f"not a multiple of the {grid}-minute grid")
        room_types = reader.array(entry, "room_types", path)
        if not room_types or not all(isinstance(t, str) for t in room_types):
            raise InstanceFormatError(f"{path}.room_types", "must be a non-empty list of strings")
        services.append(
            Service(
                id=reader.text(entry, "id", path),
                category=str(entry.get("category") or ""),
                duration_minutes=duration,
                setup_minutes=reader.integer(entry, "setup_minutes", path),
                cleanup_minutes=reader.integer(entry, "cleanup_minutes", path),
                skill=reader.text(entry, "skill", path),
                room_types=frozenset(room_types),
                device_type=reader.string(entry, "device_type", path, nullable=True),
                price=reader.number(entry, "price", path),
                cost=reader.number(entry, "cost", path),
            )
        )
    _unique([s.id for s in services], "services")

    provider_ids = {p.id for p in providers}
    room_ids = {r.id for r in rooms}
    device_ids = {d.id for d in devices}
    service_ids = {s.id for s in services}
    requests = []
    for index, item in enumerate(reader.array(doc, "requests", "")):
        path = f"requests[{index}]"
        entry = reader.obj(item, path)
        service_id = reader.text(entry, "service", path)
        if service_id not in service_ids:
            raise InstanceFormatError(f"{path}.service", f"unknown service {service_id!r}")
        window_docs = reader.array(entry, "windows", path)
        if not window_docs:
            raise InstanceFormatError(f"{path}.windows", "must hold at least one window")
        windows = tuple(reader.time_range(w, f"{path}.windows[{i}]") for i, w in enumerate(window_docs))
        preferred = reader.string(entry, "preferred_provider", path, nullable=True)
        if preferred is not None and preferred not in provider_ids:
            raise InstanceFormatError(f"{path}.preferred_provider", f"unknown provider {preferred!r}")
        priority = entry.get("priority", "standard")
        if not isinstance(priority, str) or priority not in weights.priority_bonus:
            raise InstanceFormatError(
                f"{path}.priority", f"{priority!r} is not a key of weights.priority_bonus"
            )
        probability = reader.number(entry, "no_show_probability", path)
        if not 0.0 <= probability <= 1.0:
            raise InstanceFormatError(f"{path}.no_show_probability", "must be between 0 and 1")
        lock = None
        lock_doc = entry.get("locked")
        if lock_doc is not None:
            lock_path = f"{path}.locked"
            lock_entry = reader.obj(lock_doc, lock_path)
            lock = Lock(
                provider=reader.text(lock_entry, "provider", lock_path),
                room=reader.text(lock_entry, "room", lock_path),
                device=reader.string(lock_entry, "device", lock_path, nullable=True),
                start=reader.time(lock_entry, "start", lock_path),
            )
            for key, value, known in (
                ("provider", lock.provider, provider_ids),
                ("room", lock.room, room_ids),
                ("device", lock.device, device_ids),
            ):
                if value is not None and value not in known:
                    raise InstanceFormatError(f"{lock_path}.{key}", f"unknown {key} {value!r}")
        requests.append(
            Request(
                id=reader.text(entry, "id", path),
                client_id=str(entry.get("client_id") or ""),
                service=service_id,
                windows=windows,
                preferred_provider=preferred,
                priority=priority,
                no_show_probability=probability,
                locked=lock,
            )
        )
    _unique([r.id for r in requests], "requests")

    instance = Instance(
        name=name,
        timezone=timezone,
        service_date=service_date,
        open=opening,
        close=closing,
        time_unit_minutes=grid,
        providers=tuple(providers),
        rooms=tuple(rooms),
        devices=tuple(devices),
        services=tuple(services),
        requests=tuple(requests),
        weights=weights,
    )
    conflicts = locked_conflicts(instance)
    if conflicts:
        raise LockedBookingConflictError(conflicts)
    return instance


def load_instance(path: str | Path) -> Instance:
    """Read and parse an instance file; a file that is not JSON raises `InstanceFormatError`."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InstanceFormatError("instance", f"not valid JSON: {error}") from None
    return parse_instance(document)


def locked_conflicts(instance: Instance) -> list[str]:
    """Why the locked bookings cannot all be kept: rule breaks of one, then overlaps between two."""
    from medspa.scheduling.solver.solution import Assignment
    from medspa.scheduling.solver.validate import booking_violations, overlap_violations

    locked = [
        Assignment(r.id, r.locked.provider, r.locked.room, r.locked.device, r.locked.start)
        for r in instance.requests
        if r.locked is not None
    ]
    problems: list[str] = []
    for assignment in locked:
        problems.extend(
            f"locked booking {v}" for v in booking_violations(instance, assignment, check_lock=False)
        )
    problems.extend(overlap_violations(instance, locked))
    return problems


def instance_document(instance: Instance) -> dict[str, Any]:
    """The instance as a `clinic-day-instance/1` document (what `medspa optimize` reads)."""
    fmt = format_time

    def spans(ranges: Sequence[TimeRange]) -> list[dict[str, str]]:
        return [{"start": fmt(r.start), "end": fmt(r.end)} for r in ranges]

    return {
        "format": "clinic-day-instance/1",
        "name": instance.name,
        "location": {
            "timezone": instance.timezone,
            "date": instance.service_date.isoformat(),
            "open": fmt(instance.open),
            "close": fmt(instance.close),
        },
        "time_unit_minutes": instance.time_unit_minutes,
        "providers": [
            {
                "id": p.id,
                "name": p.name,
                "skills": sorted(p.skills),
                "shifts": spans(p.shifts),
                "breaks": spans(p.breaks),
            }
            for p in instance.providers
        ],
        "rooms": [{"id": r.id, "type": r.type} for r in instance.rooms],
        "devices": [
            {"id": d.id, "type": d.type, "cooldown_minutes": d.cooldown_minutes} for d in instance.devices
        ],
        "services": [
            {
                "id": s.id,
                "category": s.category,
                "duration_minutes": s.duration_minutes,
                "setup_minutes": s.setup_minutes,
                "cleanup_minutes": s.cleanup_minutes,
                "skill": s.skill,
                "room_types": sorted(s.room_types),
                "device_type": s.device_type,
                "price": s.price,
                "cost": s.cost,
            }
            for s in instance.services
        ],
        "requests": [
            {
                "id": r.id,
                "client_id": r.client_id,
                "service": r.service,
                "windows": spans(r.windows),
                "preferred_provider": r.preferred_provider,
                "priority": r.priority,
                "no_show_probability": r.no_show_probability,
                "locked": None
                if r.locked is None
                else {
                    "provider": r.locked.provider,
                    "room": r.locked.room,
                    "device": r.locked.device,
                    "start": fmt(r.locked.start),
                },
            }
            for r in instance.requests
        ],
        "weights": {
            "continuity_bonus": instance.weights.continuity_bonus,
            "priority_bonus": dict(instance.weights.priority_bonus),
            "wait_cost_per_hour": instance.weights.wait_cost_per_hour,
        },
    }
