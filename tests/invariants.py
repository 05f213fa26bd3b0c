"""The booking core's invariant, read from the appointments themselves (not only from reservations):

every live appointment holds exactly its reservations (client and provider for the service's time, the
room with setup and cleanup, the device with its cooldown), a finished-early one (cancelled, no-show)
holds none, and no two live appointments overlap on a client, provider, room or device.

"Live" is every status that keeps its time (held and not expired, booked, confirmed, checked in, in
service, completed). An expired hold not yet released may still hold its reservations (it blocks nothing:
availability ignores it) or none.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from medspa.catalog.models import Service
from medspa.kit.db import unit_of_work
from medspa.resources.models import Device
from medspa.scheduling.models import Appointment, Reservation

KEEPS_TIME = {"held", "booked", "confirmed", "checked_in", "in_service", "completed"}
Held = frozenset[tuple[str, uuid.UUID, datetime, datetime]]


def booking_problems(engine: Engine, organization_id: uuid.UUID, now: datetime) -> list[str]:
    """Every breach of the invariant in the organization as of `now`; empty when it holds."""
    with unit_of_work(engine, write=False) as session:
        appointments = list(
            session.scalars(select(Appointment).where(Appointment.organization_id == organization_id))
        )
        services = {
            s.id: s
            for s in session.scalars(select(Service).where(Service.organization_id == organization_id))
        }
        cooldown = {
            d.id: d.cooldown_minutes
            for d in session.scalars(select(Device).where(Device.organization_id == organization_id))
        }
        held: dict[uuid.UUID, set[tuple[str, uuid.UUID, datetime, datetime]]] = defaultdict(set)
        for r in session.scalars(
            select(Reservation).where(
                Reservation.organization_id == organization_id, Reservation.is_active.is_(True)
            )
        ):
            held[r.appointment_id].add((r.resource_kind, r.resource_id, r.starts_at, r.ends_at))
    problems: list[str] = []
    taken: dict[uuid.UUID, list[tuple[datetime, datetime, uuid.UUID]]] = defaultdict(list)
    for a in appointments:
        own = frozenset(held.get(a.id, set()))
        expected = _expected(a, services[a.service_id], cooldown)
        expired = a.status == "held" and a.hold_expires_at is not None and a.hold_expires_at <= now
        if a.status in KEEPS_TIME and not expired:
            if own != expected:
                problems.append(f"{a.status} appointment {a.id} holds {sorted(own)}, not {sorted(expected)}")
            for _, resource, start, end in expected:
                taken[resource].append((start, end, a.id))
        elif expired:
            if own not in (expected, frozenset()):
                problems.append(f"expired hold {a.id} holds {sorted(own)}")
        elif own:
            problems.append(f"{a.status} appointment {a.id} still holds {sorted(own)}")
    for resource, spans in taken.items():
        spans.sort()
        for (_, end, first), (start, _, second) in itertools.pairwise(spans):
            if start < end:
                problems.append(f"live appointments {first} and {second} overlap on {resource}")
    return problems


def _expected(appointment: Appointment, service: Service, cooldown: dict[uuid.UUID, int]) -> Held:
    start, end = appointment.starts_at, appointment.ends_at
    wanted = {
        ("client", appointment.client_id, start, end),
        ("provider", appointment.provider_id, start, end),
        (
            "room",
            appointment.room_id,
            start - timedelta(minutes=service.setup_minutes),
            end + timedelta(minutes=service.cleanup_minutes),
        ),
    }
    if appointment.device_id is not None:
        device_end = end + timedelta(minutes=cooldown[appointment.device_id])
        wanted.add(("device", appointment.device_id, start, device_end))
    return frozenset(wanted)
