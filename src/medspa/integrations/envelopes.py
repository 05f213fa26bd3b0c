"""The envelopes each connector's webhooks carry, and the same envelope made from a record of its API,
so that a polled change is stored (and normalized) exactly as its webhook would be.

- Mindbody: `{messageId, eventId, eventSchemaVersion, eventInstanceOriginationDateTime, eventData}`;
  `eventData` camelCase (`clientId`, `firstName`...; `appointmentId`, `status`, `startDateTime`...).
  A polled client is `client.updated`; a polled appointment `appointmentBooking.updated`, or
  `appointmentBooking.cancelled` when its status is `Cancelled` or `LateCancelled`.
- Zenoti: `{id, event_id, event_type, event_timestamp, data}`; an appointment's `data` is the API's
  appointment as it is. A polled appointment is `appointment.updated`, whatever its status (Zenoti sends
  no cancellation webhook; the status in `data` says it).

A polled record's source event id is `poll:<kind>:<id>:<last-modified>`, so polling an unchanged record
again finds it in the inbox and stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from medspa.integrations.receiving import read_instant

MINDBODY_CANCELLED: Final = ("Cancelled", "LateCancelled")
MAX_SOURCE_ID: Final = 100


@dataclass(frozen=True)
class Event:
    """An event to store in the inbox: its source event id, type, the source's time and the envelope."""

    source_event_id: str
    event_type: str
    source_time: datetime
    envelope: dict[str, Any]

    @property
    def text(self) -> str:
        return json.dumps(self.envelope)


def mindbody_client_data(site_id: str, client: Mapping[str, Any]) -> dict[str, Any]:
    """A client's webhook data from the API's client (`Id`, `FirstName`...)."""
    return {
        "siteId": site_id,
        "clientId": client.get("Id"),
        "firstName": client.get("FirstName"),
        "lastName": client.get("LastName"),
        "email": client.get("Email"),
        "mobilePhone": client.get("MobilePhone"),
        "birthDate": client.get("BirthDate"),
    }


def mindbody_appointment_data(site_id: str, appointment: Mapping[str, Any]) -> dict[str, Any]:
    """An appointment's webhook data from the API's appointment (`Id`, `Status`...)."""
    return {
        "siteId": site_id,
        "appointmentId": appointment.get("Id"),
        "status": appointment.get("Status"),
        "locationId": appointment.get("LocationId"),
        "clientId": appointment.get("ClientId"),
        "staffId": appointment.get("StaffId"),
        "sessionTypeId": appointment.get("SessionTypeId"),
        "startDateTime": appointment.get("StartDateTime"),
        "endDateTime": appointment.get("EndDateTime"),
    }


def mindbody_envelope(message_id: str, event_type: str, at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "eventId": event_type,
        "eventSchemaVersion": 1,
        "eventInstanceOriginationDateTime": at,
        "eventData": data,
    }


def zenoti_envelope(
    delivery_id: str, event_id: str, event_type: str, at: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "event_id": event_id,
        "event_type": event_type,
        "event_timestamp": at,
        "data": data,
    }


def _identity(kind: str, record_id: object, modified: object) -> tuple[str, datetime] | None:
    """The polled record's source event id and time, or None when it lacks an id or a readable
    last-modified time (it cannot be told apart from its next version)."""
    moment = read_instant(modified)
    if moment is None or not isinstance(record_id, str | int) or isinstance(record_id, bool):
        return None
    if not str(record_id).strip() or len(str(record_id)) > MAX_SOURCE_ID:
        return None
    return f"poll:{kind}:{record_id}:{modified}", moment


def polled_mindbody_client(site_id: str, client: Mapping[str, Any]) -> Event | None:
    found = _identity("client", client.get("Id"), client.get("LastModifiedDateTime"))
    if found is None:
        return None
    event_id, moment = found
    data = mindbody_client_data(site_id, client)
    modified = str(client["LastModifiedDateTime"])
    return Event(
        event_id, "client.updated", moment, mindbody_envelope(event_id, "client.updated", modified, data)
    )


def polled_mindbody_appointment(site_id: str, appointment: Mapping[str, Any]) -> Event | None:
    found = _identity("appointment", appointment.get("Id"), appointment.get("LastModifiedDateTime"))
    if found is None:
        return None
    event_id, moment = found
    cancelled = appointment.get("Status") in MINDBODY_CANCELLED
    event_type = "appointmentBooking.cancelled" if cancelled else "appointmentBooking.updated"
    data = mindbody_appointment_data(site_id, appointment)
    modified = str(appointment["LastModifiedDateTime"])
    return Event(event_id, event_type, moment, mindbody_envelope(event_id, event_type, modified, data))


def polled_zenoti_appointment(appointment: Mapping[str, Any]) -> Event | None:
    found = _identity("appointment", appointment.get("appointment_id"), appointment.get("last_updated_time"))
    if found is None:
        return None
    event_id, moment = found
    modified = str(appointment["last_updated_time"])
    envelope = zenoti_envelope(event_id, event_id, "appointment.updated", modified, dict(appointment))
    return Event(event_id, "appointment.updated", moment, envelope)
