"""The world a fake source holds: clients and appointments that change over time, each change stamped
with the record's last-modified instant (UTC, strictly increasing, so two changes of one record never
share a stamp). Seeded: the same seed gives the same world and the same changes.

Appointment times are the site's local wall-clock times (naive), as Mindbody and Zenoti give them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

# Our own words for what became of an appointment; each fake says them its source's way.
Status = Literal["booked", "confirmed", "arrived", "completed", "no_show", "cancelled", "late_cancelled"]
LIVE: Final = ("booked", "confirmed")
FIRST_NAMES: Final = ("Ana", "Bea", "Cleo", "Dina", "Eve", "Flor", "Gia", "Hana", "Ines", "Jo", "Kai", "Lea")
LAST_NAMES: Final = ("Alves", "Brook", "Chen", "Diaz", "Eng", "Fox", "Gray", "Hale", "Iqbal", "Jung")
SERVICES: Final = ((1, "Hydrafacial", 60), (2, "Botox", 30), (3, "Laser hair removal", 45), (4, "Peel", 45))
STAFF: Final = (11, 12, 13)
LOCATIONS: Final = (1,)

ChangeKind = Literal["client", "appointment"]
ChangeAction = Literal["created", "updated", "cancelled"]


@dataclass
class FakeClient:
    id: int
    first_name: str
    last_name: str
    email: str
    phone: str
    birth_date: date
    modified_at: datetime


@dataclass
class FakeAppointment:
    id: int
    client_id: int
    staff_id: int
    service_id: int
    location_id: int
    starts: datetime  # local, naive
    minutes: int
    status: Status
    modified_at: datetime

    @property
    def ends(self) -> datetime:
        return self.starts + timedelta(minutes=self.minutes)


@dataclass(frozen=True)
class Change:
    """One change of the world, with the record as it was right after it (a webhook carries that state,
    even when the record changes again before it is sent)."""

    kind: ChangeKind
    action: ChangeAction
    record: FakeClient | FakeAppointment


def service_name(service_id: int) -> str:
    return next(name for number, name, _ in SERVICES if number == service_id)


@dataclass
class World:
    """Clients and appointments of one site. `clock` tells the instant changes are stamped with."""

    seed: int = 1
    zone: str = "America/New_York"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    clients: dict[int, FakeClient] = field(default_factory=dict)
    appointments: dict[int, FakeAppointment] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self._last_stamp = datetime.min.replace(tzinfo=UTC)

    def populate(self, *, clients: int, appointments: int) -> None:
        """Records that exist before anyone listens: only polling finds them."""
        for _ in range(clients):
            self._new_client()
        for _ in range(appointments):
            self._new_appointment()

    def stamp(self) -> datetime:
        """Now, at millisecond precision, and later than every stamp before it."""
        now = self.clock().astimezone(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self._last_stamp = max(now, self._last_stamp + timedelta(milliseconds=1))
        return self._last_stamp

    def today(self) -> date:
        return self.clock().astimezone(ZoneInfo(self.zone)).date()

    def change(self, count: int) -> list[Change]:
        """`count` random changes: new clients, client updates, new appointments, reschedules,
        cancellations, no-shows and visits completed."""
        moves: list[Callable[[], Change]] = [
            self._new_client,
            self._update_client,
            self._new_appointment,
            self._new_appointment,
            self._reschedule,
            self._cancel,
            self._no_show,
            self._complete,
        ]
        return [self.random.choice(moves)() for _ in range(count)]

    def _new_client(self) -> Change:
        number = max(self.clients, default=100000) + 1
        first, last = self.random.choice(FIRST_NAMES), self.random.choice(LAST_NAMES)
        client = FakeClient(
            id=number,
            first_name=first,
            last_name=last,
            email=f"{first}.{last}.{number}@example.org".lower(),
            phone=f"+1555{self.random.randrange(10**7):07d}",
            birth_date=date(1960, 1, 1) + timedelta(days=self.random.randrange(365 * 40)),
            modified_at=self.stamp(),
        )
        self.clients[number] = client
        return Change("client", "created", replace(client))

    def _update_client(self) -> Change:
        if not self.clients:
            return self._new_client()
        client = self.clients[self.random.choice(sorted(self.clients))]
        client.phone = f"+1555{self.random.randrange(10**7):07d}"
        client.last_name = self.random.choice(LAST_NAMES)
        client.modified_at = self.stamp()
        return Change("client", "updated", replace(client))

    def _slot(self) -> datetime:
        day = self.today() + timedelta(days=self.random.randrange(0, 30))
        return datetime.combine(day, time(9)) + timedelta(minutes=15 * self.random.randrange(0, 32))

    def _new_appointment(self) -> Change:
        if not self.clients:
            self._new_client()
        service_id, _, minutes = self.random.choice(SERVICES)
        appointment = FakeAppointment(
            id=max(self.appointments, default=500000) + 1,
            client_id=self.random.choice(sorted(self.clients)),
            staff_id=self.random.choice(STAFF),
            service_id=service_id,
            location_id=self.random.choice(LOCATIONS),
            starts=self._slot(),
            minutes=minutes,
            status=self.random.choice(LIVE),
            modified_at=self.stamp(),
        )
        self.appointments[appointment.id] = appointment
        return Change("appointment", "created", replace(appointment))

    def _live(self) -> FakeAppointment | None:
        live = sorted(a.id for a in self.appointments.values() if a.status in LIVE)
        return self.appointments[self.random.choice(live)] if live else None

    def _set(self, status: Status, action: ChangeAction = "updated") -> Change:
        appointment = self._live()
        if appointment is None:
            return self._new_appointment()
        appointment.status, appointment.modified_at = status, self.stamp()
        return Change("appointment", action, replace(appointment))

    def _reschedule(self) -> Change:
        appointment = self._live()
        if appointment is None:
            return self._new_appointment()
        appointment.starts, appointment.modified_at = self._slot(), self.stamp()
        return Change("appointment", "updated", replace(appointment))

    def _cancel(self) -> Change:
        return self._set(self.random.choice(("cancelled", "late_cancelled")), "cancelled")

    def _no_show(self) -> Change:
        return self._set("no_show")

    def _complete(self) -> Change:
        return self._set(self.random.choice(("arrived", "completed")))

    def cancel(self, appointment_id: int) -> Change:
        """Cancel this appointment (for a test that needs one cancellation it knows)."""
        appointment = self.appointments[appointment_id]
        appointment.status, appointment.modified_at = "cancelled", self.stamp()
        return Change("appointment", "cancelled", replace(appointment))


def utc_text(instant: datetime, *, suffix: str = "Z") -> str:
    """An instant as UTC ISO 8601 with milliseconds, `Z` (or `suffix`) at the end."""
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + suffix


def local_text(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
