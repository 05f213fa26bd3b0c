"""The world a fake source holds: clients and appointments that change over time, each change stamped
with the record's last-modified instant (UTC, strictly increasing, so two changes of one record never
share a stamp). Seeded: the same seed gives the same world and the same changes.

Appointment times are the site's local wall-clock times (naive), as Mindbody and Zenoti give them. Like a
real calendar, the world never books a staff member or a client twice at once, books only future times
within the day's hours (`OPENS` to `CLOSES`), and marks a visit arrived, completed or a no-show only once
its start has passed.
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
OPENS, CLOSES = time(9), time(17)
# Statuses that hold the staff member's and the client's time.
HOLDING: Final = ("booked", "confirmed", "arrived")

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

    def _slot(
        self, minutes: int, staff_id: int, client_id: int, moving: int | None = None
    ) -> datetime | None:
        """A future start of `minutes` within the day's hours when neither the staff member nor the
        client is busy (the appointment `moving` aside), or None when a few tries find none."""
        now = self.clock().astimezone(ZoneInfo(self.zone)).replace(tzinfo=None)
        steps = (CLOSES.hour * 60 - OPENS.hour * 60 - minutes) // 15 + 1
        for _ in range(20):
            day = self.today() + timedelta(days=self.random.randrange(1, 31))
            starts = datetime.combine(day, OPENS) + timedelta(minutes=15 * self.random.randrange(steps))
            ends = starts + timedelta(minutes=minutes)
            if starts > now and not any(
                a.id != moving
                and a.status in HOLDING
                and (a.staff_id == staff_id or a.client_id == client_id)
                and a.starts < ends
                and starts < a.ends
                for a in self.appointments.values()
            ):
                return starts
        return None

    def _new_appointment(self) -> Change:
        if not self.clients:
            return self._new_client()
        service_id, _, minutes = self.random.choice(SERVICES)
        client_id, staff_id = self.random.choice(sorted(self.clients)), self.random.choice(STAFF)
        starts = self._slot(minutes, staff_id, client_id)
        if starts is None:  # that staff member and client have no time in common: someone new instead
            return self._new_client()
        appointment = FakeAppointment(
            id=max(self.appointments, default=500000) + 1,
            client_id=client_id,
            staff_id=staff_id,
            service_id=service_id,
            location_id=self.random.choice(LOCATIONS),
            starts=starts,
            minutes=minutes,
            status=self.random.choice(LIVE),
            modified_at=self.stamp(),
        )
        self.appointments[appointment.id] = appointment
        return Change("appointment", "created", replace(appointment))

    def _live(self, *, started: bool = False) -> FakeAppointment | None:
        """A booked or confirmed appointment (one whose start has passed, when `started`)."""
        now = self.clock().astimezone(ZoneInfo(self.zone)).replace(tzinfo=None)
        live = sorted(
            a.id for a in self.appointments.values() if a.status in LIVE and (not started or a.starts <= now)
        )
        return self.appointments[self.random.choice(live)] if live else None

    def _set(self, status: Status, action: ChangeAction = "updated", *, started: bool = False) -> Change:
        appointment = self._live(started=started)
        if appointment is None:
            return self._reschedule() if started else self._new_appointment()
        appointment.status, appointment.modified_at = status, self.stamp()
        return Change("appointment", action, replace(appointment))

    def _reschedule(self) -> Change:
        appointment = self._live()
        if appointment is None:
            return self._new_appointment()
        starts = self._slot(appointment.minutes, appointment.staff_id, appointment.client_id, appointment.id)
        if starts is None:
            return self._new_client()
        appointment.starts, appointment.modified_at = starts, self.stamp()
        return Change("appointment", "updated", replace(appointment))

    def _cancel(self) -> Change:
        return self._set(self.random.choice(("cancelled", "late_cancelled")), "cancelled")

    def _no_show(self) -> Change:
        return self._set("no_show", started=True)

    def _complete(self) -> Change:
        return self._set(self.random.choice(("arrived", "completed")), started=True)

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
