"""Overbooking lanes: where an overbooked appointment holds its provider's time.

A provider's time is held by `provider` reservations, of which the exclusion constraint (ADR 1) allows
one at any instant. An overbooked appointment (controlled overbooking, `engagement.overbooking`) holds
its provider's time instead on the provider's *lane*, a second resource id derived from the provider's,
with reservations of kind `overbook`: so one overbooked visit at most shares any instant with the
provider's ordinary bookings, and the database enforces that as it enforces the rest. Its room, device
and client are reserved as for any booking.

Everything that decides whether a provider is free counts both: a provider is busy while either their
own or their lane's reservations hold the time (`load_context`). When an ordinary booking of the provider
releases its time (cancelled, no-show, moved), an overbooked appointment it hosted takes the provider's
time over (`settle`) if nothing else of the provider's overlaps it: it is then an ordinary booking, and
the time it took is not offered to anyone else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medspa.kit import clock, tz
from medspa.kit.errors import ConflictError, ResourceBusyError
from medspa.resources import service as resources
from medspa.resources.schemas import ProviderRead
from medspa.scheduling import repository, wording
from medspa.scheduling.models import Appointment, Reservation
from medspa.scheduling.no_show import PRIOR_NO_SHOWS, PRIOR_VISITS, no_show_probability, no_show_risk
from medspa.scheduling.schemas import BookingRequest
from medspa.security.actors import Actor

LANES: Final = uuid.UUID("5f0c2d7e-8a41-4b9e-9c3d-0e6a1b2c3d4e")
KIND: Final = "overbook"
LIVE: Final = ("booked", "confirmed", "checked_in", "in_service")


def lane_of(provider_id: uuid.UUID) -> uuid.UUID:
    """The resource id of the provider's overbooking lane."""
    return uuid.uuid5(LANES, str(provider_id))


def lanes_of(provider_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """{lane id: provider id} for these providers."""
    return {lane_of(p): p for p in provider_ids}


def as_provider_time(
    rows: Iterable[tuple[uuid.UUID, datetime, datetime]],
    lanes: Mapping[uuid.UUID, uuid.UUID],
    overbooking: uuid.UUID | None = None,
) -> list[tuple[uuid.UUID, datetime, datetime]]:
    """Busy rows with each lane's time counted as its provider's. For an overbooking of the provider
    `overbooking`, that provider's own bookings do not block it (it goes beside them): only its lane's."""
    out = []
    for resource_id, starts_at, ends_at in rows:
        provider = lanes.get(resource_id)
        if provider is not None:
            out.append((provider, starts_at, ends_at))
        elif resource_id != overbooking:
            out.append((resource_id, starts_at, ends_at))
    return out


def provider_bookings(
    session: Session, provider_id: uuid.UUID, starts_at: datetime, ends_at: datetime, *, lane: bool
) -> list[tuple[Appointment, Reservation]]:
    """The appointments holding the provider's time (`lane=False`) or the provider's overbooking lane
    (`lane=True`) over part of `[starts_at, ends_at)`, with their reservations, by start."""
    resource_id = lane_of(provider_id) if lane else provider_id
    query = (
        select(Appointment, Reservation)
        .join(Reservation, Reservation.appointment_id == Appointment.id)
        .where(
            Reservation.resource_id == resource_id,
            Reservation.is_active.is_(True),
            Reservation.starts_at < ends_at,
            Reservation.ends_at > starts_at,
            Reservation.starts_at > starts_at - repository.LONGEST_RESERVATION,
        )
        .order_by(Reservation.starts_at, Appointment.id)
    )
    return [(row[0], row[1]) for row in session.execute(query)]


def settle(
    session: Session, actor: Actor, provider_id: uuid.UUID, starts_at: datetime, ends_at: datetime
) -> list[uuid.UUID]:
    """After the provider's time `[starts_at, ends_at)` was released: each overbooked appointment on the
    provider's lane there takes the provider's time over when nothing else of the provider's overlaps
    it, and is an ordinary booking from then on. The ids of those that did.

    Each is locked first (before its reservations), in start order, as every change of an appointment
    does, so a concurrent cancellation of it waits or is waited for, never deadlocks."""
    settled = []
    for appointment, _ in provider_bookings(session, provider_id, starts_at, ends_at, lane=True):
        locked = repository.lock_appointment(session, actor.organization_id, appointment.id)
        if locked is None or locked.status not in LIVE or locked.overbooking is None:
            continue
        lane_rows = provider_bookings(session, provider_id, locked.starts_at, locked.ends_at, lane=True)
        own = [r for a, r in lane_rows if a.id == locked.id]
        if not own:
            continue
        reservation = own[0]
        others = provider_bookings(
            session, provider_id, reservation.starts_at, reservation.ends_at, lane=False
        )
        if others:
            continue
        try:
            with session.begin_nested():  # a concurrent booking may have taken the time (PostgreSQL)
                session.execute(
                    update(Reservation)
                    .where(Reservation.id == reservation.id, Reservation.is_active.is_(True))
                    .values(resource_kind="provider", resource_id=provider_id)
                    .execution_options(synchronize_session=False)
                )
        except IntegrityError:
            continue
        now = clock.now()
        locked.overbooking = None
        locked.updated_at = now
        repository.add_transition(
            session,
            organization_id=actor.organization_id,
            appointment_id=locked.id,
            from_status=locked.status,
            to_status=locked.status,
            actor=actor.label,
            reason="no longer overbooked: the provider's time is its own",
            occurred_at=now,
        )
        settled.append(locked.id)
    session.flush()
    return settled


# --- the expected overflow ----------------------------------------------------------------------------

HOST_STATUSES: Final = ("booked", "confirmed")


@dataclass(frozen=True)
class Host:
    """A booking an overbooking would stand beside: how it reads to staff, its P(no-show), and for how
    many minutes the two would overlap."""

    label: str
    no_show: float
    minutes: int


@dataclass(frozen=True)
class OverbookingPlan:
    """What overbooking a request would mean for its provider's day (in the location's zone): the
    bookings it stands beside, its own P(no-show), the expected overflow it adds (minutes of provider
    time beyond capacity: overlap x P(both come)) and the day's expected overflow before it."""

    provider_name: str
    day: date
    hosts: tuple[Host, ...]
    no_show: float
    added_minutes: float
    day_minutes: float

    def explanation(self, cap_minutes: int) -> str:
        beside = "; ".join(f"{h.label} (no-show risk {h.no_show:.0%})" for h in self.hosts)
        text = (
            f"Overbooked beside {beside}. If both come, {self.provider_name} runs "
            f"{sum(h.minutes for h in self.hosts)} min over; expected overflow {self.added_minutes:.0f} min "
            f"(this visit's no-show risk {self.no_show:.0%}), {self.day_minutes + self.added_minutes:.0f} of "
            f"{cap_minutes} min allowed for {self.provider_name} on {self.day:%a %b} {self.day.day}."
        )
        return text if len(text) <= 500 else text[:497] + "..."


def _overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> int:
    seconds = (min(a[1], b[1]) - max(a[0], b[0])).total_seconds()
    return max(0, int(seconds // 60))


def _serialize(session: Session, provider_id: uuid.UUID) -> None:
    """Make overbookings of one provider wait for each other (PostgreSQL; SQLite's writers are one at a
    time already), so two at once cannot both find room under the cap."""
    if session.get_bind().dialect.name == "postgresql":
        key = lane_of(provider_id).int & 0x7FFF_FFFF_FFFF_FFFF
        session.execute(select(func.pg_advisory_xact_lock(key)))


def plan_overbooking(
    session: Session, actor: Actor, data: BookingRequest, provider: ProviderRead, duration_minutes: int
) -> OverbookingPlan:
    """What booking `data` beside its provider's own bookings would mean, read under a lock on the
    provider's overbookings (held to the end of the transaction). ResourceBusyError when the provider
    has an overbooked visit then already; ConflictError when there is nothing to stand beside (the
    provider is free: book as usual) or when what it overlaps is not a booked visit still to come (a
    hold, a visit under way)."""
    _serialize(session, provider.id)
    location = resources.get_location(session, actor=actor, location_id=data.location_id)
    zone = location.time_zone
    window = (data.starts_at, data.starts_at + timedelta(minutes=duration_minutes))
    if provider_bookings(session, provider.id, *window, lane=True):
        raise ResourceBusyError(
            "provider", provider.id, f"provider {provider.name} already has an overbooked visit at that time"
        )
    hosts = provider_bookings(session, provider.id, *window, lane=False)
    if hosts:
        # Locked, then read again: a cancellation of one racing this either happened before (and it is
        # not here to stand beside) or waits for this booking and then hands its time over (`settle`).
        for appointment, _ in hosts:
            repository.lock_appointment(session, actor.organization_id, appointment.id)
        hosts = provider_bookings(session, provider.id, *window, lane=False)
    if not hosts:
        raise ConflictError(f"provider {provider.name} is free at that time: book it as usual")
    for appointment, _ in hosts:
        if appointment.status not in HOST_STATUSES:
            raise ConflictError(
                f"the {wording.appointment_label(session, actor, appointment, whose=False)} there is "
                f"{appointment.status.replace('_', ' ')}: overbooking goes only beside booked visits to come"
            )
    day = tz.to_local(data.starts_at, zone).date()
    day_start, day_end = tz.local_day_bounds(day, zone)
    lane_rows = provider_bookings(session, provider.id, day_start, day_end, lane=True)
    day_hosts = {
        r.id: (a, (r.starts_at, r.ends_at))
        for a, r in provider_bookings(session, provider.id, day_start, day_end, lane=False)
    }
    clients = (
        {data.client_id} | {a.client_id for a, _ in lane_rows} | {a.client_id for a, _ in day_hosts.values()}
    )
    risk = no_show_risk(session, actor, list(clients))
    own = risk.get(data.client_id, PRIOR_NO_SHOWS / PRIOR_VISITS)
    day_minutes = 0.0
    for visitor, lane in lane_rows:
        span = (lane.starts_at, lane.ends_at)
        shows = 1.0 - no_show_probability(visitor, risk)
        for host, host_span in day_hosts.values():
            day_minutes += _overlap(span, host_span) * shows * (1.0 - no_show_probability(host, risk))
    beside = tuple(
        Host(
            label=wording.appointment_label(session, actor, appointment, whose=False),
            no_show=no_show_probability(appointment, risk),
            minutes=_overlap(window, (r.starts_at, r.ends_at)),
        )
        for appointment, r in hosts
    )
    added = sum(h.minutes * (1.0 - own) * (1.0 - h.no_show) for h in beside)
    return OverbookingPlan(provider.name, day, beside, own, added, day_minutes)
