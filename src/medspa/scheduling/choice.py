"""Choosing the provider, room and device for one start, or the reason there is none."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session

from medspa.catalog.schemas import ServiceRead
from medspa.kit import intervals
from medspa.kit.errors import (
    ConflictError,
    ResourceBusyError,
    ValidationFailedError,
)
from medspa.kit.tz import local_day_bounds, to_local
from medspa.resources import service as resources
from medspa.resources.schemas import DeviceRead, ProviderRead, RoomRead
from medspa.scheduling import availability, bounds
from medspa.scheduling.schemas import (
    BookingRequest,
    RescheduleRequest,
)
from medspa.scheduling.slots import load_context, providers_for, require_open_for_business
from medspa.security.actors import Actor

# --- choosing resources for one start ------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    provider: ProviderRead
    room: RoomRead
    device: DeviceRead | None


def choose(
    session: Session,
    actor: Actor,
    request: BookingRequest | RescheduleRequest,
    location_id: uuid.UUID,
    service: ServiceRead,
    now: datetime,
    exclude: uuid.UUID | None,
    overbooking: bool = False,
    imported: bool = False,
) -> Choice:
    """The provider, room and device for a booking at `request.starts_at`, or the reason there is none:
    ValidationFailedError (422) for a start off the grid, too soon, or outside opening hours;
    ConflictError / ResourceBusyError (409) when resources are unqualified, off duty or taken. For an
    overbooking (of the provider the request names) the provider's own bookings do not count, only
    their overbooking lane (`lanes`). An `imported` booking (made in a connected system, under its own
    rules) is not held to the location's minimum notice or booking horizon: its start may have passed."""
    config = resources.location_config(session, actor=actor, location_id=location_id)
    location = config.location
    require_open_for_business(location)
    zone = location.time_zone
    starts_at = request.starts_at
    local = to_local(starts_at, zone)
    minute_of_day = local.hour * 60 + local.minute
    if local.second or local.microsecond or minute_of_day % location.slot_interval_minutes:
        raise ValidationFailedError(
            "starts_at", f"not on the location's {location.slot_interval_minutes}-minute grid"
        )
    if not imported:
        if starts_at < now + timedelta(minutes=location.minimum_notice_minutes):
            raise ValidationFailedError(
                "starts_at", f"must be at least {location.minimum_notice_minutes} minutes from now"
            )
        bounds.require_within_horizon(location, starts_at, now)
    day = local.date()
    start, end = local_day_bounds(day, zone)
    # Only reservations that could overlap this booking's own reservations matter to the decision.
    longest_cooldown = max((d.cooldown_minutes for d in config.devices), default=0)
    reach = (
        starts_at - timedelta(minutes=service.setup_minutes),
        starts_at
        + timedelta(minutes=service.duration_minutes + max(service.cleanup_minutes, longest_cooldown)),
    )
    context = load_context(
        session,
        service,
        config,
        start,
        end,
        now,
        booking=(actor, exclude, reach),
        overbooking=request.provider_id if overbooking else None,
    )
    providers = providers_for(session, actor, context.resources, request.provider_id)
    options = availability.day_options(context.resources, service, day, context.busy, providers)
    if options is None:
        raise ValidationFailedError("starts_at", f"the location is closed on {day.isoformat()}")
    room_window = (
        starts_at - timedelta(minutes=service.setup_minutes),
        starts_at + timedelta(minutes=service.duration_minutes + service.cleanup_minutes),
    )
    if not intervals.covers(options.open_spans, *room_window):
        raise ValidationFailedError(
            "starts_at", "outside opening hours (with the service's setup and cleanup)"
        )

    def idle() -> availability.DayOptions:
        # The same day with nothing booked: tells "off duty" from "taken" when no resource fits.
        unbooked = availability.day_options(context.resources, service, day, {}, providers)
        assert unbooked is not None
        return unbooked

    provider = _pick_provider(providers, service, day, options, idle, starts_at)
    spread = next((i for i, p in enumerate(context.resources.providers) if p.id == provider.id), 0)
    room = _pick(
        "room",
        _suitable_first(context.resources.rooms, service, spread),
        request.room_id,
        options.room_starts,
        idle,
        starts_at,
    )
    device = None
    if service.device_type is not None:
        device = _pick(
            "device", context.resources.devices, request.device_id, options.device_starts, idle, starts_at
        )
    return Choice(provider, room, device)


R = TypeVar("R", RoomRead, DeviceRead)


def _suitable_first(pool: list[R], service: ServiceRead, spread: int) -> list[R]:
    """The suitable rooms or devices in the order slots offer them (see `availability.preferred`)."""
    suitable = [
        r
        for r in pool
        if (
            r.room_type in service.room_types
            if isinstance(r, RoomRead)
            else r.device_type == service.device_type
        )
    ]
    return availability.preferred(suitable, spread)


def _pick_provider(
    providers: list[ProviderRead],
    service: ServiceRead,
    day: date,
    options: availability.DayOptions,
    idle: Callable[[], availability.DayOptions],
    starts_at: datetime,
) -> ProviderRead:
    qualified = [p for p in providers if p.id in options.provider_starts]
    if not qualified:
        if len(providers) == 1:
            p = providers[0]
            needs = service.required_skill + (
                f" and a valid {service.required_license} license" if service.required_license else ""
            )
            raise ConflictError(f"provider {p.name} lacks what {service.name} needs: {needs} on {day}")
        raise ConflictError(f"no provider at this location is qualified for {service.name} on {day}")
    for provider in qualified:
        if availability.contains(options.provider_starts[provider.id], starts_at):
            return provider
    unbooked = idle()
    working = [p for p in qualified if availability.contains(unbooked.provider_starts[p.id], starts_at)]
    if not working:
        who = f"provider {qualified[0].name} is not" if len(qualified) == 1 else "no qualified provider is"
        raise ConflictError(f"{who} on duty for the whole service at that time")
    busy = working[0]
    raise ResourceBusyError("provider", busy.id, f"provider {busy.name} is already booked at that time")


def _pick(
    kind: str,
    pool: list[R],
    wanted: uuid.UUID | None,
    starts: dict[uuid.UUID, list[intervals.Interval]],
    idle: Callable[[], availability.DayOptions],
    starts_at: datetime,
) -> R:
    suitable = [r for r in pool if r.id in starts and (wanted is None or r.id == wanted)]
    if not suitable:
        if wanted is not None:
            raise ConflictError(
                f"the {kind} asked for is not at this location or not suitable for the service"
            )
        raise ConflictError(f"this location has no {kind} suitable for the service")
    for resource in suitable:
        if availability.contains(starts[resource.id], starts_at):
            return resource
    unbooked = idle()
    idle_starts = unbooked.room_starts if kind == "room" else unbooked.device_starts
    usable = [r for r in suitable if availability.contains(idle_starts[r.id], starts_at)]
    if not usable:
        raise ConflictError(f"no suitable {kind} is in service at that time")
    taken = usable[0]
    raise ResourceBusyError(kind, taken.id, f"{kind} {taken.name} is already booked at that time")
