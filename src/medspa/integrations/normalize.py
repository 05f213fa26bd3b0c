"""From a source's event to ours: what each connector's event means for the system of record, whatever
way it arrived (webhook or polling). Nothing here writes; `apply` does, through the domains' services.

Taken so far: clients created and updated (Mindbody `client.created|updated`, Zenoti
`guest.created|updated`, Standard Webhooks `client.created|updated`) and appointment cancellations of
appointments we hold a link for (Mindbody `appointmentBooking.cancelled`, Zenoti
`appointment.cancelled`, Standard `appointment.cancelled`). Any other event is kept in the inbox as
`skipped`, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

CLIENT_EVENTS: Final = {
    "mindbody": ("client.created", "client.updated"),
    "zenoti": ("guest.created", "guest.updated"),
    "standard": ("client.created", "client.updated"),
}
CANCEL_EVENTS: Final = {
    "mindbody": ("appointmentbooking.cancelled",),
    "zenoti": ("appointment.cancelled",),
    "standard": ("appointment.cancelled",),
}


@dataclass(frozen=True)
class ClientChange:
    """A client as the source has them now: their id there (None when the source gave none) and the
    fields it gave (ours' names; missing ones are not changed)."""

    external_id: str | None
    fields: dict[str, Any]
    source_time: datetime | None


@dataclass(frozen=True)
class Cancellation:
    external_id: str
    reason: str
    source_time: datetime | None


@dataclass(frozen=True)
class Ignored:
    reason: str


Change = ClientChange | Cancellation | Ignored


@dataclass
class _Fields:
    values: dict[str, Any] = field(default_factory=dict)

    def take(self, name: str, *candidates: object) -> None:
        for value in candidates:
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)
            if isinstance(value, str) and value.strip():
                self.values[name] = value.strip()
                return


def _external_id(*candidates: object) -> str | None:
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.strip() and len(value) <= 200:
            return value.strip()
    return None


def _client(connector: str, data: dict[str, Any], source_time: datetime | None) -> Change:
    found = _Fields()
    if connector == "mindbody":
        found.take("first_name", data.get("firstName"))
        found.take("last_name", data.get("lastName"))
        found.take("email", data.get("email"))
        found.take("phone", data.get("mobilePhone"), data.get("homePhone"), data.get("workPhone"))
        found.take("date_of_birth", str(data.get("birthDate") or "")[:10])
        external = _external_id(data.get("clientId"), data.get("clientUniqueId"))
    elif connector == "zenoti":
        info = data.get("personal_info")
        person: dict[str, Any] = info if isinstance(info, dict) else data
        mobile = person.get("mobile_phone")
        found.take("first_name", person.get("first_name"))
        found.take("last_name", person.get("last_name"))
        found.take("email", person.get("email"))
        found.take("phone", mobile.get("number") if isinstance(mobile, dict) else mobile, person.get("phone"))
        found.take("date_of_birth", str(person.get("date_of_birth") or "")[:10])
        external = _external_id(data.get("id"), data.get("guest_id"))
    else:
        found.take("first_name", data.get("first_name"))
        found.take("last_name", data.get("last_name"))
        found.take("email", data.get("email"))
        found.take("phone", data.get("phone"))
        found.take("date_of_birth", str(data.get("date_of_birth") or "")[:10])
        external = _external_id(data.get("id"))
    return ClientChange(external, found.values, source_time)


def normalize(connector: str, event_type: str, data: dict[str, Any], source_time: datetime | None) -> Change:
    """What the event means for us (`Ignored` with the reason when we do not take it)."""
    kind = event_type.casefold()
    if kind in CLIENT_EVENTS.get(connector, ()):
        return _client(connector, data, source_time)
    if kind in CANCEL_EVENTS.get(connector, ()):
        external = _external_id(data.get("appointmentId"), data.get("id"), data.get("appointment_id"))
        if external is None:
            return Ignored("a cancellation without the appointment's id")
        reason = "cancelled in the connected system"
        return Cancellation(external, reason, source_time)
    return Ignored(f"{event_type} is not taken from {connector} yet")
