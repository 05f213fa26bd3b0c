"""How scheduling names things to people: an appointment by its client, service and local time, a status
and a step in words. Messages built from these never show internal ids."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.kit.tz import to_local
from medspa.resources import service as resources
from medspa.scheduling.models import Appointment
from medspa.scheduling.schemas import Status
from medspa.security.actors import Actor

STATUS_WORDS = {
    Status.HELD: "on hold",
    Status.BOOKED: "booked",
    Status.CONFIRMED: "confirmed",
    Status.CHECKED_IN: "checked in",
    Status.IN_SERVICE: "in service",
    Status.COMPLETED: "completed",
    Status.CANCELLED: "cancelled",
    Status.NO_SHOW: "marked as a no-show",
}
# What becoming each status is called: "it cannot be ..."
STEP_WORDS = {
    Status.BOOKED: "booked",
    Status.CONFIRMED: "confirmed",
    Status.CHECKED_IN: "checked in",
    Status.IN_SERVICE: "started",
    Status.COMPLETED: "completed",
    Status.CANCELLED: "cancelled",
    Status.NO_SHOW: "marked as a no-show",
}


def wall_clock(instant: datetime, zone: str) -> str:
    """`instant` on the location's wall clock, as staff say it: "Thu Dec 3 at 10:00 AM"."""
    local = to_local(instant, zone)
    hour = local.hour % 12 or 12
    return f"{local:%a %b} {local.day} at {hour}:{local:%M} {'AM' if local.hour < 12 else 'PM'}"


def appointment_label(session: Session, actor: Actor, appointment: Appointment, *, whose: bool = True) -> str:
    """The appointment as staff know it: "Nova Campbell's Botox on Thu Dec 3 at 10:00 AM" (without the
    client's name when not `whose`)."""
    service = catalog.get_service(session, actor=actor, service_id=appointment.service_id)
    location = resources.get_location(session, actor=actor, location_id=appointment.location_id)
    label = f"{service.name} on {wall_clock(appointment.starts_at, location.time_zone)}"
    if not whose:
        return label
    client = clients.get_client(session, actor=actor, client_id=appointment.client_id)
    return f"{client.first_name} {client.last_name}'s {label}"
