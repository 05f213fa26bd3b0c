"""From a source's event to ours: what each connector's event means for the system of record, whatever
way it arrived (webhook or polling). Nothing here writes; `apply` does, through the domains' services.

Taken: clients created and updated (Mindbody `client.created|updated`, Zenoti `guest.created|updated`,
Standard Webhooks `client.created|updated`); appointments created and updated, with the status the source
gives them (Mindbody `appointmentBooking.created|updated`, Zenoti `appointment.created|updated`, Standard
`appointment.created|updated|no_show`); and cancellations (Mindbody `appointmentBooking.cancelled`,
Standard `appointment.cancelled`; Zenoti sends none, its cancellations come from polling as an update with
status -1); payments captured (Mindbody `clientSale.created`, Zenoti `invoice.closed`, Standard
`payment.captured`) and packages sold or redeemed (Zenoti and Standard `package.sold|redeemed`), which
medspa records as its own events for the client (it holds no ledger of its own yet). Any other event is
kept in the inbox as `skipped`, with the reason.

An appointment's times are as the source gives them: with an offset (Standard), or the location's wall
clock without one (Mindbody, Zenoti), which `apply` reads in the location's time zone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

CLIENT_EVENTS: Final = {
    "mindbody": ("client.created", "client.updated"),
    "zenoti": ("guest.created", "guest.updated"),
    "standard": ("client.created", "client.updated"),
}
CLIENT_EVENT_TYPES: Final = frozenset(kind for kinds in CLIENT_EVENTS.values() for kind in kinds)
CANCEL_EVENTS: Final = {
    "mindbody": ("appointmentbooking.cancelled",),
    "zenoti": ("appointment.cancelled",),
    "standard": ("appointment.cancelled",),
}
APPOINTMENT_EVENTS: Final = {
    "mindbody": ("appointmentbooking.created", "appointmentbooking.updated"),
    "zenoti": ("appointment.created", "appointment.updated"),
    "standard": ("appointment.created", "appointment.updated", "appointment.no_show"),
}
# The sources' statuses in ours (`scheduling.Status` values). Mindbody names them; Zenoti numbers them.
MINDBODY_STATUS: Final = {
    "booked": "booked",
    "scheduled": "booked",
    "requested": "booked",
    "confirmed": "confirmed",
    "arrived": "checked_in",
    "completed": "completed",
    "noshow": "no_show",
    "cancelled": "cancelled",
    "latecancelled": "cancelled",
}
ZENOTI_STATUS: Final = {
    -2: "no_show",
    -1: "cancelled",
    0: "booked",
    1: "completed",
    2: "checked_in",
    4: "confirmed",
}
# Which of the sources' events are payments and packages, as our topics.
COMMERCE_EVENTS: Final = {
    "mindbody": {"clientsale.created": "payment.captured"},
    "zenoti": {
        "invoice.closed": "payment.captured",
        "package.sold": "package.sold",
        "package.redeemed": "package.redeemed",
    },
    "standard": {
        "payment.captured": "payment.captured",
        "package.sold": "package.sold",
        "package.redeemed": "package.redeemed",
    },
}
MAX_CENTS: Final = 100_000_000_00  # a hundred million: anything larger is not a clinic's sale
STANDARD_STATUS: Final = frozenset(
    {"booked", "confirmed", "checked_in", "in_service", "completed", "no_show", "cancelled"}
)


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
class AppointmentChange:
    """An appointment as the source has it now: its id there, the source's ids of its client, service,
    provider and location (None when not given), its start (naive: the location's wall clock) and our
    status for the source's."""

    external_id: str
    client_id: str
    service_id: str | None
    provider_id: str | None
    location_id: str | None
    starts_at: datetime | None
    status: str
    source_time: datetime | None


@dataclass(frozen=True)
class Commerce:
    """A payment captured or a package sold or redeemed at the source: recorded as our event `topic`
    (`payment.captured`, `package.sold`, `package.redeemed`) for the client, once per source record."""

    topic: str
    external_id: str
    client_id: str
    amount_cents: int | None
    currency: str | None
    name: str | None
    source_time: datetime | None


@dataclass(frozen=True)
class Ignored:
    reason: str


Change = ClientChange | AppointmentChange | Cancellation | Commerce | Ignored


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


def _start(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def _nested_id(value: object) -> str | None:
    return _external_id(value.get("id")) if isinstance(value, dict) else _external_id(value)


def _appointment(connector: str, data: dict[str, Any], source_time: datetime | None) -> Change:
    def first(*names: str) -> object:
        return next((data[name] for name in names if data.get(name) is not None), None)

    if connector == "mindbody":
        external = _external_id(first("appointmentId", "Id", "id"))
        client = _external_id(first("clientId", "ClientId"))
        service = _external_id(first("sessionTypeId", "SessionTypeId"))
        provider = _external_id(first("staffId", "StaffId"))
        location = _external_id(first("locationId", "LocationId"))
        starts = _start(first("startDateTime", "StartDateTime"))
        said = first("status", "Status")
        status = MINDBODY_STATUS.get(str(said).replace(" ", "").casefold()) if said is not None else "booked"
    elif connector == "zenoti":
        external = _external_id(first("appointment_id", "id"))
        client = _nested_id(first("guest", "guest_id"))
        service = _nested_id(first("service", "service_id"))
        provider = _nested_id(first("therapist", "therapist_id"))
        location = _nested_id(first("center", "center_id"))
        starts = _start(first("start_time"))
        said = first("status")
        status = ZENOTI_STATUS.get(said) if isinstance(said, int) else ("booked" if said is None else None)
    else:
        external = _external_id(data.get("id"))
        client, service = _external_id(data.get("client_id")), _external_id(data.get("service_id"))
        provider, location = _external_id(data.get("provider_id")), _external_id(data.get("location_id"))
        starts = _start(data.get("starts_at"))
        said = data.get("status", "booked")
        status = said if said in STANDARD_STATUS else None
    if external is None:
        return Ignored("an appointment without its id")
    if client is None:
        return Ignored("an appointment without its client's id")
    if status is None:
        return Ignored(f"an appointment with a status we do not know: {str(said)[:40]}")
    return AppointmentChange(external, client, service, provider, location, starts, status, source_time)


def _cents(value: object, *, in_cents: bool) -> int | None:
    """An amount as whole cents (None when missing or not a sane amount)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number != number or number < 0:  # NaN or negative
        return None
    cents = round(number if in_cents else number * 100)
    return cents if cents <= MAX_CENTS else None


def _currency(value: object) -> str | None:
    text = value.strip().upper() if isinstance(value, str) else ""
    return text if len(text) == 3 and text.isalpha() else None


def _commerce(connector: str, topic: str, data: dict[str, Any], source_time: datetime | None) -> Change:
    if connector == "mindbody":
        external = _external_id(data.get("saleId"))
        client = _external_id(data.get("purchasingClientId"), data.get("clientId"))
        amount = _cents(data.get("totalAmountPaid"), in_cents=False)
        currency, name = None, None
    elif connector == "zenoti":
        external = _external_id(data.get("invoice_id"), data.get("id"), data.get("guest_package_id"))
        client = _nested_id(data.get("guest") or data.get("guest_id"))
        total = data.get("total_price") if isinstance(data.get("total_price"), dict) else {}
        amount = _cents(data.get("amount", total.get("sum_total") if total else None), in_cents=False)
        package = data.get("package")
        currency = _currency(data.get("currency"))
        name = package.get("name") if isinstance(package, dict) else data.get("package_name")
    else:
        external = _external_id(data.get("id"))
        client = _external_id(data.get("client_id"))
        amount = _cents(data.get("amount_cents"), in_cents=True)
        currency, name = _currency(data.get("currency")), data.get("name")
    if external is None or client is None:
        return Ignored(f"a {topic.replace('.', ' ')} without its own id or its client's")
    label = name.strip()[:200] if isinstance(name, str) and name.strip() else None
    return Commerce(topic, external, client, amount, currency, label, source_time)


def normalize(connector: str, event_type: str, data: dict[str, Any], source_time: datetime | None) -> Change:
    """What the event means for us (`Ignored` with the reason when we do not take it)."""
    kind = event_type.casefold()
    if kind in CLIENT_EVENTS.get(connector, ()):
        return _client(connector, data, source_time)
    if kind in APPOINTMENT_EVENTS.get(connector, ()):
        change = _appointment(connector, data, source_time)
        if kind == "appointment.no_show" and isinstance(change, AppointmentChange):
            return dataclasses.replace(change, status="no_show")
        return change
    topic = COMMERCE_EVENTS.get(connector, {}).get(kind)
    if topic is not None:
        return _commerce(connector, topic, data, source_time)
    if kind in CANCEL_EVENTS.get(connector, ()):
        external = _external_id(data.get("appointmentId"), data.get("id"), data.get("appointment_id"))
        if external is None:
            return Ignored("a cancellation without the appointment's id")
        reason = "cancelled in the connected system"
        return Cancellation(external, reason, source_time)
    return Ignored(f"{event_type} is not taken from {connector} yet")
