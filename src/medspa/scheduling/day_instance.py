"""A location's day read from the database as a clinic-day instance for the optimizer: hours,
providers, rooms, devices, services, the day's bookings (locked, or movable when replanning) and the
waiting waitlist entries (flexible), with what the optimizer saw of the day (to tell later whether it
has changed) and the names staff know each request by.

The instance counts minutes on one clock from `DayInstance.origin`: local midnight on the clock in force
when the location opens. On most days that is the wall clock; on a day whose opening hours span a
daylight-saving change, times after the change are the real minutes since then (a 25-hour day, when
the clocks fall back, reaches past 24:00), so every duration in the instance is a real one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceRead
from medspa.clients import service as clients
from medspa.kit import clock
from medspa.kit.errors import ConflictError
from medspa.kit.tz import local_day_bounds, local_label, local_minutes_to_utc, to_local
from medspa.resources import service as resources
from medspa.resources.schemas import ProviderRead
from medspa.scheduling import availability
from medspa.scheduling.models import Appointment
from medspa.scheduling.no_show import PRIOR_NO_SHOWS, PRIOR_VISITS, no_show_probability, no_show_risk
from medspa.scheduling.solver import instance as model
from medspa.scheduling.solver.solution import Assignment
from medspa.scheduling.waitlist import waiting_entries
from medspa.security.actors import Actor

# The clinic's policy weights (dollars): what continuity and members are worth, what waiting costs.
CONTINUITY_BONUS = 40.0
PRIORITY_BONUS = {"member": 60.0, "standard": 0.0}
WAIT_COST_PER_HOUR = 12.0
KEEPS_TIME = ("held", "booked", "confirmed", "checked_in", "in_service", "completed")
REASSIGNABLE = ("booked", "confirmed")

# --- from the database to an instance -------------------------------------------------------------------


@dataclass(frozen=True)
class DayInstance:
    """A location's day as a clinic-day instance, and what each of its ids stands for."""

    location_id: uuid.UUID
    instance: model.Instance
    records: dict[str, tuple[str, uuid.UUID]]  # request id -> ("appointment" | "waitlist", record id)
    names: dict[str, str]  # provider, room, device and service id -> its name
    zone: str
    service_date: date
    origin: datetime  # the instant of the instance's minute 0
    # What the optimizer saw: the location's set-up version and every live booking of the day (see
    # `seen_booking`), to tell when the proposal is applied whether the day has changed.
    seen: dict[str, Any] = field(default_factory=dict)
    # Request id -> how staff know it: "Jane Doe's Botox at 10:00 AM", "Jane Doe (waitlist, Botox)".
    labels: dict[str, str] = field(default_factory=dict)
    # Bookings the optimizer may reassign (`reassign=True`): request id -> where they are now.
    movable: dict[str, Assignment] = field(default_factory=dict)

    def instant(self, minute: int) -> datetime:
        """The instant of one of the instance's minutes."""
        return instant_at(self.origin, minute)


def instant_at(origin: datetime, minute: int) -> datetime:
    """The instant `minute` minutes after a day instance's `origin`."""
    return origin + timedelta(minutes=minute)


def seen_booking(appointment: Appointment) -> dict[str, Any]:
    """What a proposal records of a live booking of its day: status, start and resources."""
    return {
        "status": appointment.status,
        "starts_at": appointment.starts_at.isoformat(),
        "provider": str(appointment.provider_id),
        "room": str(appointment.room_id),
        "device": str(appointment.device_id) if appointment.device_id else None,
    }


def booking_label(client: str, service: str, starts_at: datetime, zone: str, day: date | None) -> str:
    """A booking as staff name it: "Jane Doe's Botox at 10:00 AM" (with the date when not on `day`)."""
    same_day = day is not None and to_local(starts_at, zone).date() == day
    return f"{client}'s {service} {'at' if same_day else 'on'} {local_label(starts_at, zone, on=day)}"


def _skill_key(service: ServiceRead) -> str:
    """The instance's skill for a service: its skill, and its license when it needs one."""
    return service.required_skill + (f"+{service.required_license}" if service.required_license else "")


def _wall(value: time) -> int:
    return value.hour * 60 + value.minute


@dataclass(frozen=True)
class _Clock:
    """Converts a day's wall-clock times and instants to the instance's minutes (from `origin`)."""

    service_date: date
    zone: str
    origin: datetime

    def of(self, instant: datetime) -> int:
        return int((instant - self.origin).total_seconds() // 60)

    def at(self, wall: time) -> int:
        """A wall-clock time of the day (the first of an ambiguous one; after the gap, one skipped)."""
        return self.of(local_minutes_to_utc(self.service_date, _wall(wall), self.zone))


def build_day_instance(
    session: Session, *, actor: Actor, location_id: uuid.UUID, service_date: date, reassign: bool = False
) -> DayInstance:
    """The day at a location as a clinic-day instance: its hours, providers (shifts, breaks and time
    off as breaks; a skill per qualified service, licenses checked on that date), rooms, devices (one
    in maintenance during opening hours is left out), services, the day's bookings as locked requests
    and the waiting waitlist entries as flexible ones.

    Minutes count from `origin` (see the module docstring), so a day with a daylight-saving change is
    planned like any other, also when its opening hours span the change.

    With `reassign`, bookings not yet started (booked or confirmed, starting after now) are not locked:
    each keeps its start but may get another provider, room or device, or be dropped (`movable` holds
    where they are now, for replanning). Held, started and finished appointments stay locked.

    ConflictError when the location is closed that day, a locked booking uses a resource no longer
    active, or the clocks change during opening hours by other than a whole number of grid steps."""
    config = resources.location_config(session, actor=actor, location_id=location_id)
    location = config.location
    zone = location.time_zone
    day_start, day_end = local_day_bounds(service_date, zone)
    spans = [s for s in location.opening_hours if s.weekday == service_date.weekday()]
    if not spans or service_date in config.closed_dates:
        weekday = service_date.strftime("%A")
        why = "a closure" if spans else f"it has no opening hours on {weekday}s"
        raise ConflictError(f"the location is closed on {weekday}, {service_date} ({why})")
    first_wall = min(_wall(s.starts_at) for s in spans)
    opening = local_minutes_to_utc(service_date, first_wall, zone)
    clock_of_day = _Clock(service_date, zone, opening - timedelta(minutes=first_wall))
    opens = clock_of_day.of(opening)
    closes = max(clock_of_day.at(s.ends_at) for s in spans)
    shift = (closes - opens) - (max(_wall(s.ends_at) for s in spans) - first_wall)
    if shift % location.slot_interval_minutes:
        raise ConflictError(
            f"on {service_date} the clocks change by {abs(shift)} minutes during opening hours, which is "
            f"not a whole number of the location's {location.slot_interval_minutes}-minute booking grid; "
            "the optimizer cannot keep its starts on the grid that day"
        )
    services = {s.id: s for s in catalog.list_services(session, actor=actor, limit=500).items}
    appointments = list(
        session.scalars(
            select(Appointment).where(
                Appointment.organization_id == actor.organization_id,
                Appointment.location_id == location_id,
                Appointment.starts_at >= day_start,
                Appointment.starts_at < day_end,
                Appointment.status.in_(KEEPS_TIME),
            )
        )
    )
    now = clock.now()
    appointments = [
        a for a in appointments if not (a.status == "held" and a.hold_expires_at and a.hold_expires_at <= now)
    ]
    for appointment in appointments:
        if appointment.service_id not in services:
            services[appointment.service_id] = catalog.get_service(
                session, actor=actor, service_id=appointment.service_id
            )
    waitlist = waiting_entries(session, actor, location_id, service_date, "waiting")
    providers = [
        _provider(p, services.values(), clock_of_day, config.time_off, day_start, day_end)
        for p in config.providers
    ]
    devices = [
        model.Device(id=str(d.id), type=d.device_type, cooldown_minutes=d.cooldown_minutes)
        for d in config.devices
        if not any(
            device_id == d.id and down_from < day_end and down_until > day_start
            for device_id, down_from, down_until in config.maintenance
        )
    ]
    known = {p.id for p in providers} | {r.id for r in model_rooms(config.rooms)} | {d.id for d in devices}
    risk = no_show_risk(session, actor, [a.client_id for a in appointments] + [w.client_id for w in waitlist])
    requests: list[model.Request] = []
    records: dict[str, tuple[str, uuid.UUID]] = {}
    movable: dict[str, Assignment] = {}
    client_names = clients.client_names(
        session, actor=actor, client_ids={a.client_id for a in appointments} | {w.client_id for w in waitlist}
    )
    labels: dict[str, str] = {}
    for appointment in sorted(appointments, key=lambda a: (a.starts_at, str(a.id))):
        if appointment.overbooking is not None:
            # It stands beside a booking of its provider, which one provider cannot do in the model:
            # left out (applying a proposal re-checks every place it takes against it, ADR 24).
            continue
        start = clock_of_day.of(appointment.starts_at)
        duration = services[appointment.service_id].duration_minutes
        request_id = f"a-{appointment.id.hex[:12]}"
        records[request_id] = ("appointment", appointment.id)
        labels[request_id] = booking_label(
            client_names.get(appointment.client_id, "a client"),
            services[appointment.service_id].name,
            appointment.starts_at,
            zone,
            service_date,
        )
        now_at = Assignment(
            request_id,
            str(appointment.provider_id),
            str(appointment.room_id),
            str(appointment.device_id) if appointment.device_id else None,
            start,
        )
        lock = None
        if reassign and appointment.status in REASSIGNABLE and appointment.starts_at > now:
            movable[request_id] = now_at
        else:
            _check_lockable(labels[request_id], now_at, duration, known, providers)
            lock = model.Lock(provider=now_at.provider, room=now_at.room, device=now_at.device, start=start)
        requests.append(
            model.Request(
                id=request_id,
                client_id=str(appointment.client_id),
                service=str(appointment.service_id),
                windows=(model.TimeRange(start, start + duration),),
                preferred_provider=str(appointment.provider_id),
                priority="standard",
                no_show_probability=no_show_probability(appointment, risk),
                locked=lock,
            )
        )
    elsewhere = _client_bookings(session, actor, {w.client_id for w in waitlist}, day_start, day_end, now)
    for entry in waitlist:
        # A client is in one place at a time: their window, less the times they are booked that day.
        busy = [(clock_of_day.of(b), clock_of_day.of(e)) for b, e in elsewhere.get(entry.client_id, ())]
        window = (clock_of_day.at(entry.window_starts_at), clock_of_day.at(entry.window_ends_at))
        windows = _free_windows(window, busy, location.slot_interval_minutes)
        if not windows:
            continue  # booked throughout the window: nothing to place
        request_id = f"w-{entry.id.hex[:12]}"
        records[request_id] = ("waitlist", entry.id)
        who = client_names.get(entry.client_id, "a client")
        labels[request_id] = f"{who} (waitlist, {services[entry.service_id].name})"
        requests.append(
            model.Request(
                id=request_id,
                client_id=str(entry.client_id),
                service=str(entry.service_id),
                windows=windows,
                preferred_provider=str(entry.preferred_provider_id) if entry.preferred_provider_id else None,
                priority=entry.priority,
                no_show_probability=risk.get(entry.client_id, PRIOR_NO_SHOWS / PRIOR_VISITS),
                locked=None,
            )
        )
    instance = model.Instance(
        name=f"{location.name} {service_date}",
        timezone=zone,
        service_date=service_date,
        open=opens,
        close=closes,
        time_unit_minutes=location.slot_interval_minutes,
        providers=tuple(providers),
        rooms=tuple(model_rooms(config.rooms)),
        devices=tuple(devices),
        services=tuple(
            model.Service(
                id=str(s.id),
                category=s.category,
                duration_minutes=s.duration_minutes,
                setup_minutes=s.setup_minutes,
                cleanup_minutes=s.cleanup_minutes,
                skill=_skill_key(s),
                room_types=frozenset(s.room_types),
                device_type=s.device_type,
                price=s.price_cents / 100,
                cost=s.cost_cents / 100,
            )
            for s in services.values()
        ),
        requests=tuple(requests),
        weights=model.Weights(CONTINUITY_BONUS, PRIORITY_BONUS, WAIT_COST_PER_HOUR),
    )
    names = {str(p.id): p.name for p in config.providers} | {str(r.id): r.name for r in config.rooms}
    names |= {str(d.id): d.name for d in config.devices} | {str(s.id): s.name for s in services.values()}
    seen = {
        "config_version": config.version,
        "bookings": {str(a.id): seen_booking(a) for a in appointments},
    }
    return DayInstance(
        location_id=location_id,
        instance=instance,
        records=records,
        names=names,
        zone=zone,
        service_date=service_date,
        origin=clock_of_day.origin,
        seen=seen,
        labels=labels,
        movable=movable,
    )


def _client_bookings(
    session: Session,
    actor: Actor,
    client_ids: set[uuid.UUID],
    day_start: datetime,
    day_end: datetime,
    now: datetime,
) -> dict[uuid.UUID, list[tuple[datetime, datetime]]]:
    """The live bookings of these clients overlapping the day, at any of the organization's locations."""
    if not client_ids:
        return {}
    rows = session.execute(
        select(Appointment.client_id, Appointment.starts_at, Appointment.ends_at, Appointment.hold_expires_at)
        .where(
            Appointment.organization_id == actor.organization_id,
            Appointment.client_id.in_(client_ids),
            Appointment.status.in_(KEEPS_TIME),
            Appointment.starts_at < day_end,
            Appointment.ends_at > day_start,
        )
        .order_by(Appointment.starts_at)
    )
    out: dict[uuid.UUID, list[tuple[datetime, datetime]]] = {}
    for client_id, starts_at, ends_at, hold_expires_at in rows:
        if hold_expires_at is None or hold_expires_at > now:
            out.setdefault(client_id, []).append((starts_at, ends_at))
    return out


def _free_windows(
    window: tuple[int, int], busy: Sequence[tuple[int, int]], grid: int
) -> tuple[model.TimeRange, ...]:
    """The parts of a window (minutes) clear of the busy spans, with edges kept on the grid."""
    parts = [window]
    for busy_start, busy_end in busy:
        cut = []
        for start, end in parts:
            if busy_end <= start or end <= busy_start:
                cut.append((start, end))
                continue
            cut.append((start, busy_start // grid * grid))
            cut.append((-(-busy_end // grid) * grid, end))
        parts = cut
    return tuple(model.TimeRange(start, end) for start, end in parts if end > start)


def _check_lockable(
    label: str,
    placed: Assignment,
    duration: int,
    known: set[str],
    providers: Sequence[model.Provider],
) -> None:
    """ConflictError when a booking cannot be kept where it is: a resource of it is no longer active (or
    in maintenance), or it falls in its provider's time off or break."""
    used = [placed.provider, placed.room, placed.device]
    if any(x is not None and x not in known for x in used):
        raise ConflictError(
            f"{label} uses a provider, room or device no longer active or in maintenance; move it first, "
            "or replan the day (max_moves) to give it another"
        )
    end = placed.start + duration
    if any(
        b.start < end and placed.start < b.end for p in providers if p.id == placed.provider for b in p.breaks
    ):
        raise ConflictError(
            f"{label} falls in its provider's time off or break; replan the day (max_moves) to give it "
            "another provider"
        )


def model_rooms(rooms: Sequence[Any]) -> list[model.Room]:
    return [model.Room(id=str(r.id), type=r.room_type) for r in rooms]


def _provider(
    provider: ProviderRead,
    services: Any,
    clock_of_day: _Clock,
    time_off: list[tuple[uuid.UUID, datetime, datetime]],
    day_start: datetime,
    day_end: datetime,
) -> model.Provider:
    service_date = clock_of_day.service_date
    weekday = service_date.weekday()
    breaks = [
        model.TimeRange(clock_of_day.at(b.starts_at), clock_of_day.at(b.ends_at))
        for b in provider.breaks
        if b.weekday == weekday
    ]
    for provider_id, off_from, off_until in time_off:
        if provider_id == provider.id and off_from < day_end and off_until > day_start:
            start = max(0, clock_of_day.of(max(off_from, day_start)))
            end = clock_of_day.of(min(off_until, day_end))
            if end > start:
                breaks.append(model.TimeRange(start, end))
    return model.Provider(
        id=str(provider.id),
        name=provider.name,
        skills=frozenset(
            _skill_key(s) for s in services if availability.is_qualified(provider, s, service_date)
        ),
        shifts=tuple(
            model.TimeRange(clock_of_day.at(s.starts_at), clock_of_day.at(s.ends_at))
            for s in provider.shifts
            if s.weekday == weekday
        ),
        breaks=tuple(breaks),
    )
