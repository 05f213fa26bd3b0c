"""The front-desk day view of a location, laid out for the template: one column per provider (or, as the
desk chooses, per room or per device), a time axis over the opening hours, and each appointment of the
day as a block placed by its local time.

Only reads: everything comes from the domains' service functions. Positions are in pixels from the top of
the axis, computed from local wall-clock minutes, so a block sits where the clock on the wall says.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.engagement import service as engagement
from medspa.engagement.schemas import CallListRead
from medspa.kit import clock
from medspa.kit.tz import clock_label as clock_label  # the pages import it from here
from medspa.kit.tz import local_day_bounds, to_local
from medspa.resources import service as resources
from medspa.resources.schemas import DeviceRead, LocationRead, ProviderRead, RoomRead
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, Status, WaitlistRead
from medspa.security.actors import Actor

PIXELS_PER_MINUTE = 1.8
DEFAULT_HOURS = (time(9, 0), time(17, 0))
DAY_LIMIT = 1000

# The buttons a block offers, in order: (action in the URL, label, the status it leads to).
ACTIONS: tuple[tuple[str, str, Status], ...] = (
    ("confirm", "Confirm", Status.CONFIRMED),
    ("check_in", "Check in", Status.CHECKED_IN),
    ("start", "Start", Status.IN_SERVICE),
    ("complete", "Complete", Status.COMPLETED),
    ("no_show", "No-show", Status.NO_SHOW),
    ("cancel", "Cancel", Status.CANCELLED),
)
STATUS_LABELS = {
    Status.HELD: "Held",
    Status.BOOKED: "Booked",
    Status.CONFIRMED: "Confirmed",
    Status.CHECKED_IN: "Checked in",
    Status.IN_SERVICE: "In service",
    Status.COMPLETED: "Completed",
    Status.CANCELLED: "Cancelled",
    Status.NO_SHOW: "No-show",
}


class View(StrEnum):
    """What the columns of the day (the rows of the week) are: providers (the default), rooms or devices."""

    PROVIDER = "provider"
    ROOM = "room"
    DEVICE = "device"


VIEW_LABELS = {View.PROVIDER: "Provider", View.ROOM: "Room", View.DEVICE: "Device"}
VIEW_PROBLEM = "Show the columns by provider, room or device."
NO_DEVICE = "No device"


# Twice a typical clinic's no-show rate (about 10 %): worth a reminder call from the front desk.
HIGH_NO_SHOW_RISK = 0.2


@dataclass(frozen=True)
class Block:
    """One appointment as the board draws it."""

    appointment: AppointmentRead
    client_name: str
    service_name: str
    room_name: str
    device_name: str | None
    local_start: datetime
    local_end: datetime
    top_px: int
    height_px: int
    actions: list[tuple[str, str]]
    # A manager's corrections of a finished visit's outcome: (status, label).
    corrections: list[tuple[str, str]] = field(default_factory=list)
    can_move: bool = False  # to another time or provider (dragging it, or its Move form)
    note: str | None = None  # what the provider should know about the client (their notes)
    risk_words: str = ""  # what stands behind the no-show risk, in plain words

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.appointment.status]

    @property
    def time_range(self) -> str:
        """`9:15–10:00 AM`, or `11:30 AM–12:15 PM` when it crosses noon."""
        start, end = self.local_start, self.local_end
        if (start.hour < 12) == (end.hour < 12):
            return f"{clock_label(start.hour, start.minute).split()[0]}–{clock_label(end.hour, end.minute)}"
        return f"{clock_label(start.hour, start.minute)}–{clock_label(end.hour, end.minute)}"

    @property
    def can_cancel(self) -> bool:
        return any(action == "cancel" for action, _ in self.actions)

    @property
    def no_show_risk(self) -> str | None:
        """`31%` for a booking still to come whose stored P(no-show) is at least `HIGH_NO_SHOW_RISK`."""
        probability = self.appointment.no_show_probability
        upcoming = self.appointment.status in (Status.HELD, Status.BOOKED, Status.CONFIRMED)
        if not upcoming or probability is None or probability < HIGH_NO_SHOW_RISK:
            return None
        return f"{probability:.0%}"


@dataclass(frozen=True)
class Shade:
    """Time in a provider's column when they are not bookable: off shift, or on a break."""

    top_px: int
    height_px: int
    label: str


@dataclass(frozen=True)
class Column:
    provider: ProviderRead
    shades: list[Shade] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    @property
    def is_working(self) -> bool:
        return not any(s.label == "Not working" for s in self.shades)


@dataclass(frozen=True)
class Track:
    """A column of the day as drawn, or a row of the week: a provider's, a room's or a device's. `key` is
    the id the track's appointments share (None: the device view's track of visits that use no device).
    Only a provider's track takes a dropped block, moving it to `provider_id`."""

    key: uuid.UUID | None
    name: str
    detail: str
    shades: list[Shade] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    provider_id: uuid.UUID | None = None


@dataclass(frozen=True)
class HourMark:
    label: str
    top_px: int


@dataclass(frozen=True)
class Waiting:
    """A client on the day's waitlist, as the day view lists them."""

    entry: WaitlistRead
    client_name: str
    service_name: str
    offer: str | None = None  # the latest waitlist offer to this entry, in words

    @property
    def window(self) -> str:
        return window_label(self.entry)

    @property
    def is_member(self) -> bool:
        return self.entry.priority == "member"


@dataclass(frozen=True)
class Board:
    location: LocationRead
    day: date
    today: date
    columns: list[Column]
    hours: list[HourMark]
    height_px: int
    hour_px: int
    opening: str | None
    closure: str | None
    now_px: int | None
    appointment_count: int
    waitlist: list[Waiting] = field(default_factory=list)
    # Booked, unconfirmed visits of the day likely to be missed: whom the desk should ring.
    call_list: list[CallListRead] = field(default_factory=list)
    first_minute: int = 0  # the axis starts at this minute of the local day
    may_optimize: bool = False  # the actor's role may run the optimizer
    may_book_waitlist: bool = False
    may_remove_waitlist: bool = False
    view: View = View.PROVIDER
    tracks: list[Track] = field(default_factory=list)  # the columns drawn: `columns`, or rooms or devices
    may_remind: bool = False  # the call list's one-click steps
    may_request_deposit: bool = False
    # The provider whose sign-in this is (their "my day" shows their column alone), and whether it does.
    viewer_provider_id: uuid.UUID | None = None
    mine: bool = False

    @property
    def huddle(self) -> list[tuple[Column, Block]]:
        """The day's visits whose client has a note for the provider, in the order of the day: what the
        team goes through at the morning huddle."""
        noted = [(c, b) for c in self.columns for b in c.blocks if b.note]
        return sorted(
            noted, key=lambda cb: (cb[1].local_start, cb[0].provider.name, str(cb[1].appointment.id))
        )

    @property
    def legend(self) -> list[tuple[str, str]]:
        """(status, label) of every status a block can show, in lifecycle order."""
        return [
            (status.value, label) for status, label in STATUS_LABELS.items() if status is not Status.CANCELLED
        ]

    @property
    def can_optimize(self) -> bool:
        """Whether to offer the day optimizer: the actor may run it, and it has a day to plan (open, and
        not over yet)."""
        open_day = self.opening is not None and self.closure is None
        return self.may_optimize and self.day >= self.today and open_day

    @property
    def previous_day(self) -> date:
        return self.day - timedelta(days=1)

    @property
    def next_day(self) -> date:
        return self.day + timedelta(days=1)

    @property
    def views(self) -> list[tuple[View, str]]:
        return list(VIEW_LABELS.items())

    def query(self, day: date, view: View | None = None) -> str:
        return page_query(day, view or self.view)


def page_query(day: date, view: View) -> str:
    """`date=2026-12-03&by=room`: the query of a day or week page; `by` only when not the default."""
    return f"date={day.isoformat()}" + ("" if view is View.PROVIDER else f"&by={view.value}")


def local_today(location: LocationRead) -> date:
    """Today's date on the location's wall clock."""
    return to_local(clock.now(), location.time_zone).date()


def build_board(
    session: Session, *, actor: Actor, location_id: uuid.UUID, day: date, view: View = View.PROVIDER
) -> Board:
    """The day view of `day` (a local date) at the location, its columns by `view`. NotFoundError for an
    unknown location."""
    location = resources.get_location(session, actor=actor, location_id=location_id)
    zone = location.time_zone
    start, end = local_day_bounds(day, zone)
    now = clock.now()
    appointments = [
        a
        for a in scheduling.list_appointments(
            session,
            actor=actor,
            location_id=location.id,
            starts_from=start,
            starts_before=end,
            limit=DAY_LIMIT,
        ).items
        if _is_shown(a, now)
    ]
    providers = shown_providers(session, actor=actor, location_id=location.id, appointments=appointments)

    spans = [(s.starts_at, s.ends_at) for s in location.opening_hours if s.weekday == day.weekday()]
    closures = resources.list_closures(session, actor=actor, location_id=location.id, first=day, last=day)
    first_minute, last_minute = _axis(spans, appointments, zone)

    waitlist = scheduling.list_waitlist(session, actor=actor, location_id=location.id, service_date=day)
    offers = _offers_by_entry(session, actor, location.id, zone) if waitlist else {}
    client_ids = {a.client_id for a in appointments} | {w.client_id for w in waitlist}
    names = clients.client_names(session, actor=actor, client_ids=client_ids)
    notes = clients.provider_notes(session, actor=actor, client_ids={a.client_id for a in appointments})
    risky = {a.client_id for a in appointments if (a.no_show_probability or 0.0) >= HIGH_NO_SHOW_RISK}
    records = scheduling.visit_records(session, actor=actor, client_ids=risky)
    services = {
        s.id: s.name
        for s in catalog.list_services(session, actor=actor, limit=DAY_LIMIT, include_inactive=True).items
    }
    rooms = {r.id: r.name for r in resources.list_rooms(session, actor=actor, limit=DAY_LIMIT).items}
    devices = {d.id: d.name for d in resources.list_devices(session, actor=actor, limit=DAY_LIMIT).items}
    for a in appointments:
        if a.room_id not in rooms:
            rooms[a.room_id] = resources.get_room(session, actor=actor, room_id=a.room_id).name
        if a.device_id is not None and a.device_id not in devices:
            devices[a.device_id] = resources.get_device(session, actor=actor, device_id=a.device_id).name

    columns = {
        # A provider booked here whose record now says elsewhere: their shifts are another location's.
        p.id: Column(p, _shades(p, day, first_minute, last_minute) if p.location_id == location.id else [])
        for p in providers
    }
    for a in appointments:
        local_start, local_end = to_local(a.starts_at, zone), to_local(a.ends_at, zone)
        top = _px(_wall_minutes(local_start) - first_minute)
        columns[a.provider_id].blocks.append(
            Block(
                appointment=a,
                client_name=names.get(a.client_id, "(unknown client)"),
                service_name=services.get(a.service_id, "(unknown service)"),
                room_name=rooms[a.room_id],
                device_name=devices[a.device_id] if a.device_id else None,
                local_start=local_start,
                local_end=local_end,
                top_px=top,
                height_px=max(_px((a.ends_at - a.starts_at).total_seconds() / 60) - 2, 18),
                actions=_actions(actor, a, now),
                corrections=_corrections(actor, a),
                can_move=a.status in scheduling.RESCHEDULABLE
                and actor.can("appointments", "reschedule")
                and actor.may_change_appointment_of(a.provider_id),
                note=notes.get(a.client_id),
                risk_words=scheduling.risk_in_words(a, records.get(a.client_id))
                if a.client_id in risky
                else "",
            )
        )

    if view is View.PROVIDER:
        tracks = [
            Track(c.provider.id, c.provider.name, _provider_detail(c), c.shades, c.blocks, c.provider.id)
            for c in columns.values()
        ]
    else:
        tracks = tracks_of(
            session, actor=actor, location_id=location.id, view=view, appointments=appointments
        )
        _fill(tracks, view, [b for c in columns.values() for b in c.blocks])

    today = to_local(now, zone).date()
    now_px = None
    if today == day:
        minute = _wall_minutes(to_local(now, zone))
        if first_minute <= minute <= last_minute:
            now_px = _px(minute - first_minute)
    return Board(
        location=location,
        day=day,
        today=today,
        first_minute=first_minute,
        columns=list(columns.values()),
        hours=[
            HourMark(_hour_label(minute // 60), _px(minute - first_minute))
            for minute in range(first_minute, last_minute + 1, 60)
        ],
        height_px=_px(last_minute - first_minute),
        hour_px=_px(60),
        opening=", ".join(f"{_clock(a)}–{_clock(b)}" for a, b in sorted(spans)) or None,
        closure=(closures[0].reason or "closed") if closures else None,
        now_px=now_px,
        appointment_count=len(appointments),
        waitlist=sorted(
            (
                Waiting(
                    entry=w,
                    client_name=names.get(w.client_id, "(unknown client)"),
                    service_name=services.get(w.service_id, "(unknown service)"),
                    offer=offers.get(w.id),
                )
                for w in waitlist
            ),
            key=lambda w: (w.entry.window_starts_at, w.entry.window_ends_at, w.client_name),
        ),
        call_list=engagement.call_list(session, actor=actor, location_id=location.id, local_day=day)
        if actor.can("engagement", "read") and day >= today
        else [],
        may_optimize=actor.can("optimizer", "run"),
        may_book_waitlist=actor.can("waitlist", "book"),
        may_remove_waitlist=actor.can("waitlist", "remove"),
        may_remind=actor.can("appointments", "remind"),
        may_request_deposit=actor.can("appointments", "request_deposit"),
        viewer_provider_id=actor.provider_id,
        view=view,
        tracks=tracks,
    )


OFFER_WORDS = {
    "open": "offered {start}, open until {expires}",
    "expired": "offer of {start} lapsed",
    "gone": "offer of {start} taken by another",
    "accepted": "booked {start} from an offer",
}


def _offers_by_entry(
    session: Session, actor: Actor, location_id: uuid.UUID, zone: str
) -> dict[uuid.UUID, str]:
    """The latest offer to each waiting entry at the location, in words ("offered 2:30 PM, open until
    10:20 AM")."""
    if not actor.can("waitlist", "read"):
        return {}
    latest: dict[uuid.UUID, str] = {}
    for offer in engagement.list_offers(session, actor=actor, location_id=location_id, limit=200).items:
        if offer.waitlist_entry_id in latest:
            continue  # newest first
        start, expires = (to_local(t, zone) for t in (offer.starts_at, offer.expires_at))
        latest[offer.waitlist_entry_id] = OFFER_WORDS.get(offer.state, "{start}").format(
            start=clock_label(start.hour, start.minute), expires=clock_label(expires.hour, expires.minute)
        )
    return latest


def _shades(provider: ProviderRead, day: date, first_minute: int, last_minute: int) -> list[Shade]:
    """The weekly shifts and breaks of the provider on `day`'s weekday, as shaded spans on the axis.
    (Dated time off is not drawn: the availability search still honours it.)"""
    shifts = sorted(
        (_time_minutes(s.starts_at), _time_minutes(s.ends_at))
        for s in provider.shifts
        if s.weekday == day.weekday()
    )
    if not shifts:
        return [Shade(0, _px(last_minute - first_minute), "Not working")]
    shades = []
    cursor = first_minute
    for start, end in [*shifts, (last_minute, last_minute)]:
        if start > cursor:
            shades.append(Shade(_px(cursor - first_minute), _px(start - cursor), "Off shift"))
        cursor = max(cursor, end)
    for span in provider.breaks:
        if span.weekday != day.weekday():
            continue
        start = max(_time_minutes(span.starts_at), first_minute)
        end = min(_time_minutes(span.ends_at), last_minute)
        if end > start:
            shades.append(Shade(_px(start - first_minute), _px(end - start), "Break"))
    return shades


def _is_shown(appointment: AppointmentRead, now: datetime) -> bool:
    # Cancelled appointments and holds that have run out block nothing, so the board leaves them out.
    return appointment.status is not Status.CANCELLED and not is_lapsed_hold(appointment, now)


def is_lapsed_hold(appointment: AppointmentRead, now: datetime) -> bool:
    """A hold that ran out: it holds nothing, and no page shows it."""
    expired = appointment.hold_expires_at is not None and appointment.hold_expires_at <= now
    return appointment.status is Status.HELD and expired


def _actions(actor: Actor, appointment: AppointmentRead, now: datetime) -> list[tuple[str, str]]:
    """The steps to offer on a block: those its status allows and the actor may take (the permission
    matrix, and a provider's own appointments only), so a page never offers what would be refused."""
    if not actor.may_change_appointment_of(appointment.provider_id):
        return []
    allowed = scheduling.TRANSITIONS[appointment.status]
    offered = []
    for action, label, target in ACTIONS:
        if target not in allowed or not actor.can("appointments", action):
            continue
        if target is Status.NO_SHOW and now < appointment.starts_at:
            continue  # the service refuses a no-show before the start: do not offer it
        offered.append((action, label))
    return offered


def _corrections(actor: Actor, appointment: AppointmentRead) -> list[tuple[str, str]]:
    if not actor.can("appointments", "correct"):
        return []
    return [
        (target.value, f"Correct to {STATUS_LABELS[target].lower()}")
        for target in sorted(scheduling.CORRECTIONS.get(appointment.status, ()))
    ]


def _axis(spans: list[tuple[time, time]], appointments: list[AppointmentRead], zone: str) -> tuple[int, int]:
    """First and last minute of the axis: the opening hours (or a default day), widened to every
    appointment shown, rounded out to whole hours."""
    minutes = [m for a, b in (spans or [DEFAULT_HOURS]) for m in (_time_minutes(a), _time_minutes(b))]
    for a in appointments:
        minutes.append(_wall_minutes(to_local(a.starts_at, zone)))
        end = to_local(a.ends_at, zone)
        minutes.append(_wall_minutes(end) if end.date() == to_local(a.starts_at, zone).date() else 24 * 60)
    first, last = min(minutes), max(minutes)
    return first - first % 60, min(24 * 60, last + (-last % 60))


def _time_minutes(value: time) -> int:
    return value.hour * 60 + value.minute


def _wall_minutes(local: datetime) -> int:
    return local.hour * 60 + local.minute


def _px(minutes: float) -> int:
    return round(minutes * PIXELS_PER_MINUTE)


def _hour_label(hour: int) -> str:
    suffix = "AM" if hour % 24 < 12 else "PM"
    return f"{(hour % 12) or 12} {suffix}"


def _clock(value: time) -> str:
    return clock_label(value.hour, value.minute)


def window_label(entry: WaitlistRead) -> str:
    """`10:00 AM–1:00 PM`: the wall-clock window a waitlist entry gave the front desk."""
    start, end = entry.window_starts_at, entry.window_ends_at
    return f"{clock_label(start.hour, start.minute)}–{clock_label(end.hour, end.minute)}"


# --- tracks: the columns of the day, and the rows of the week, by provider, room or device ----------------


def shown_providers(
    session: Session, *, actor: Actor, location_id: uuid.UUID, appointments: list[AppointmentRead]
) -> list[ProviderRead]:
    """The location's active providers, those inactive now who have one of `appointments`, and then
    any other provider booked in them (booked here, though the provider's record now says elsewhere)."""
    booked = {a.provider_id for a in appointments}
    providers = [
        p
        for p in resources.list_providers(
            session, actor=actor, location_id=location_id, limit=DAY_LIMIT, include_inactive=True
        ).items
        if p.is_active or p.id in booked
    ]
    listed = {p.id for p in providers}
    for provider_id in dict.fromkeys(a.provider_id for a in appointments):  # in booking order, once each
        if provider_id not in listed:
            providers.append(resources.get_provider(session, actor=actor, provider_id=provider_id))
    return providers


def track_key(view: View, appointment: AppointmentRead) -> uuid.UUID | None:
    """The id of the track the appointment stands in, in the view."""
    if view is View.ROOM:
        return appointment.room_id
    if view is View.DEVICE:
        return appointment.device_id
    return appointment.provider_id


def tracks_of(
    session: Session, *, actor: Actor, location_id: uuid.UUID, view: View, appointments: list[AppointmentRead]
) -> list[Track]:
    """Empty tracks for the view: the shown providers; or the location's active rooms or devices by name,
    then any other one `appointments` use, then, in the device view, "No device" when one of them uses
    none (so every appointment has its track, and the view counts the same visits as the provider's)."""
    if view is View.PROVIDER:
        return [
            Track(p.id, p.name, _title(p.title, p.is_active), provider_id=p.id)
            for p in shown_providers(session, actor=actor, location_id=location_id, appointments=appointments)
        ]
    equipment: list[RoomRead] | list[DeviceRead] = (
        resources.list_rooms(session, actor=actor, location_id=location_id, limit=DAY_LIMIT).items
        if view is View.ROOM
        else resources.list_devices(session, actor=actor, location_id=location_id, limit=DAY_LIMIT).items
    )
    listed: list[RoomRead | DeviceRead] = sorted(equipment, key=lambda r: (r.name, r.id))
    known = {r.id for r in listed}
    for key in dict.fromkeys(track_key(view, a) for a in appointments):
        if key is not None and key not in known:  # inactive now, or moved to another location
            listed.append(
                resources.get_room(session, actor=actor, room_id=key)
                if view is View.ROOM
                else resources.get_device(session, actor=actor, device_id=key)
            )
    tracks = [Track(r.id, r.name, _title(_kind(r), r.is_active)) for r in listed]
    if any(track_key(view, a) is None for a in appointments):
        tracks.append(Track(None, NO_DEVICE, "no device needed"))
    return tracks


def _fill(tracks: list[Track], view: View, blocks: list[Block]) -> None:
    """Put each block in its track, in the order of their starts."""
    by_key = {track.key: track for track in tracks}
    for block in sorted(blocks, key=lambda b: (b.appointment.starts_at, b.appointment.id)):
        by_key[track_key(view, block.appointment)].blocks.append(block)


def _kind(equipment: RoomRead | DeviceRead) -> str:
    return equipment.room_type if isinstance(equipment, RoomRead) else equipment.device_type


def _title(kind: str, is_active: bool) -> str:
    """`Nurse injector`, `laser suite (inactive)`: a track's second line."""
    return kind.replace("_", " ") + ("" if is_active else " (inactive)")


def _provider_detail(column: Column) -> str:
    return _title(column.provider.title, column.provider.is_active) + (
        "" if column.is_working else " · not working"
    )
