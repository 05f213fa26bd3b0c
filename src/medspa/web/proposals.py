"""A day-optimizer proposal laid out for its page: the proposal beside the schedule it would change.

Only reads: the proposal comes from `scheduling.service`, the names staff know things by (clients,
services, providers, rooms, devices) from the domains' service functions, so the page shows no ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.clients import service as clients
from medspa.kit.money import format_cents
from medspa.kit.tz import local_day_bounds, to_local
from medspa.resources import service as resources
from medspa.resources.schemas import LocationRead
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import PlacementRead, ProposalItem, ProposalRead, WaitlistRead
from medspa.security.actors import Actor
from medspa.web.board import window_label

LIST_LIMIT = 1000
# The waitlist statuses a proposal's rows can be in: still waiting, or booked (by applying a proposal).
ENTRY_STATUSES = ("waiting", "booked")
# The objective's terms in the order the page lists them, with the words staff read.
TERMS = (
    ("expected_margin", "Expected margin (after likely no-shows)"),
    ("continuity_bonus", "Continuity (preferred provider)"),
    ("priority_bonus", "Member priority"),
    ("wait_cost", "Waiting cost"),
)
ROW_STATUSES = {
    "proposed": "Proposed placement",
    "booked": "Booked",
    "left_out": "Not applied",
    "not_placed": "Not placed",
    "moved": "Moved",
    "dropped": "Cannot stay",
    "kept": "Kept",
}
PROPOSAL_STATUSES = {
    "proposed": "Not applied yet",
    "applied": "Applied",
    "partially_applied": "Partly applied",
}


@dataclass(frozen=True)
class Row:
    """One request of the day as the proposal page lists it."""

    item: ProposalItem
    group: str  # a key of GROUP_TITLES
    client_name: str
    service_name: str
    local_start: datetime | None
    provider_name: str | None
    room_name: str | None
    device_name: str | None
    window: str | None  # the waitlist entry's window, e.g. "10:00 AM–1:00 PM"
    is_member: bool
    # For a moved booking, what it had before of what changes ("Dr. Lee", "Injection 1"), by column.
    was: dict[str, str] = field(default_factory=dict)

    @property
    def value(self) -> str:
        return format_cents(self.item.value_cents)

    @property
    def status_label(self) -> str:
        return ROW_STATUSES[self.group]

    @property
    def reason(self) -> str:
        """The explanation with its first letter capitalized, as the page's sentence."""
        return self.item.reason[:1].upper() + self.item.reason[1:]


@dataclass(frozen=True)
class Group:
    key: str
    title: str
    rows: list[Row]


@dataclass(frozen=True)
class Term:
    label: str
    amount: str
    is_negative: bool


@dataclass(frozen=True)
class ProposalPage:
    proposal: ProposalRead
    location: LocationRead
    groups: list[Group]
    terms: list[Term]
    total: str

    @property
    def current_value(self) -> str:
        return format_cents(self.proposal.current_value_cents)

    @property
    def proposed_value(self) -> str:
        return format_cents(self.proposal.proposed_value_cents)

    @property
    def gain(self) -> str:
        sign = "+" if self.proposal.gain_cents > 0 else ""
        return sign + format_cents(self.proposal.gain_cents)

    @property
    def created_local(self) -> datetime:
        return to_local(self.proposal.created_at, self.location.time_zone)

    @property
    def applied_local(self) -> datetime | None:
        applied = self.proposal.applied_at
        return to_local(applied, self.location.time_zone) if applied else None

    @property
    def status_label(self) -> str:
        return PROPOSAL_STATUSES.get(self.proposal.status, self.proposal.status)

    @property
    def is_open(self) -> bool:
        """Whether the proposal can still be applied (it can be applied once, all or part of it)."""
        return self.proposal.status == "proposed"

    @property
    def proposed(self) -> list[Row]:
        return next(g.rows for g in self.groups if g.key == "proposed")

    @property
    def choosable(self) -> list[Row]:
        """The rows applying can carry out: waitlist placements and moved bookings."""
        return [row for g in self.groups if g.key in CHOOSABLE for row in g.rows]

    @property
    def dropped_count(self) -> int:
        return len(next(g.rows for g in self.groups if g.key == "dropped"))

    @property
    def booked_count(self) -> int:
        return len(next(g.rows for g in self.groups if g.key == "booked"))

    @property
    def moved_count(self) -> int:
        return len(next(g.rows for g in self.groups if g.key == "moved"))


GROUP_TITLES = {
    "proposed": "Proposed placements",
    "booked": "Booked from the waitlist",
    "left_out": "Proposed, left out when applied",
    "not_placed": "Not placed",
    "moved": "Bookings moved to another provider, room or device (same time)",
    "dropped": "Bookings that cannot stay where they are: left as booked, call the client",
    "kept": "Kept as booked",
}
# The groups whose rows applying can carry out (while the proposal is open).
CHOOSABLE = ("proposed", "moved")


def build_proposal_page(session: Session, *, actor: Actor, proposal_id: uuid.UUID) -> ProposalPage:
    """The proposal with every request named. NotFoundError for an unknown proposal."""
    proposal = scheduling.get_proposal(session, actor=actor, proposal_id=proposal_id)
    location = resources.get_location(session, actor=actor, location_id=proposal.location_id)
    zone = location.time_zone
    start, end = local_day_bounds(proposal.service_date, zone)
    appointments = {
        a.id: a
        for a in scheduling.list_appointments(
            session,
            actor=actor,
            location_id=location.id,
            starts_from=start,
            starts_before=end,
            limit=LIST_LIMIT,
        ).items
    }
    entries = {
        e.id: e
        for status in ENTRY_STATUSES
        for e in scheduling.list_waitlist(
            session, actor=actor, location_id=location.id, service_date=proposal.service_date, status=status
        )
    }
    for item in proposal.items:  # an appointment moved to another day since: fetch it by id
        if item.kind == "appointment" and item.record_id not in appointments:
            appointments[item.record_id] = scheduling.get_appointment(
                session, actor=actor, appointment_id=item.record_id
            )
    who: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}  # record id -> (client id, service id)
    for item in proposal.items:
        if item.kind == "appointment":
            a = appointments[item.record_id]
            who[item.record_id] = (a.client_id, a.service_id)
        elif item.record_id in entries:
            e = entries[item.record_id]
            who[item.record_id] = (e.client_id, e.service_id)
    names = clients.client_names(session, actor=actor, client_ids={c for c, _ in who.values()})
    services = {
        s.id: s.name
        for s in catalog.list_services(session, actor=actor, limit=LIST_LIMIT, include_inactive=True).items
    }
    providers = {
        p.id: p.name
        for p in resources.list_providers(
            session, actor=actor, location_id=location.id, limit=LIST_LIMIT, include_inactive=True
        ).items
    }
    rooms = {r.id: r.name for r in resources.list_rooms(session, actor=actor, limit=LIST_LIMIT).items}
    devices = {d.id: d.name for d in resources.list_devices(session, actor=actor, limit=LIST_LIMIT).items}
    placed: list[ProposalItem | PlacementRead] = [*proposal.items]
    placed += [i.was for i in proposal.items if i.was is not None]
    for where in placed:  # resources since deactivated: fetch them by id
        if where.provider_id is not None and where.provider_id not in providers:
            providers[where.provider_id] = resources.get_provider(
                session, actor=actor, provider_id=where.provider_id
            ).name
        if where.room_id is not None and where.room_id not in rooms:
            rooms[where.room_id] = resources.get_room(session, actor=actor, room_id=where.room_id).name
        if where.device_id is not None and where.device_id not in devices:
            devices[where.device_id] = resources.get_device(
                session, actor=actor, device_id=where.device_id
            ).name

    grouped: dict[str, list[Row]] = {key: [] for key in GROUP_TITLES}
    for item in proposal.items:
        client_id, service_id = who.get(item.record_id, (None, None))
        entry = entries.get(item.record_id) if item.kind == "waitlist" else None
        row = Row(
            item=item,
            group=_group(item, entry, is_open=proposal.status == "proposed"),
            client_name=names.get(client_id, "(unknown client)") if client_id else "(unknown client)",
            service_name=services.get(service_id, "(unknown service)") if service_id else "(unknown service)",
            local_start=to_local(item.starts_at, zone) if item.starts_at else None,
            provider_name=providers[item.provider_id] if item.provider_id else None,
            room_name=rooms[item.room_id] if item.room_id else None,
            device_name=devices[item.device_id] if item.device_id else None,
            window=_window(entry),
            is_member=entry is not None and entry.priority == "member",
            was=_was(item, providers, rooms, devices),
        )
        grouped[row.group].append(row)
    for rows in grouped.values():
        rows.sort(
            key=lambda r: (
                r.local_start is None,
                r.local_start.timestamp() if r.local_start else 0.0,
                r.client_name,
            )
        )
    terms = proposal.objective_terms
    return ProposalPage(
        proposal=proposal,
        location=location,
        groups=[Group(key, title, grouped[key]) for key, title in GROUP_TITLES.items()],
        terms=[
            Term(label, format_cents(round(terms.get(key, 0.0) * 100)), terms.get(key, 0.0) < 0)
            for key, label in TERMS
        ],
        total=format_cents(round(terms.get("total", 0.0) * 100)),
    )


def _group(item: ProposalItem, entry: WaitlistRead | None, *, is_open: bool) -> str:
    if item.kind == "appointment":
        return item.status if item.status in ("moved", "dropped") else "kept"
    if entry is not None and entry.status == "booked":
        return "booked"
    if item.status != "booked":
        return "not_placed"
    return "proposed" if is_open else "left_out"


def _was(
    item: ProposalItem,
    providers: dict[uuid.UUID, str],
    rooms: dict[uuid.UUID, str],
    devices: dict[uuid.UUID, str],
) -> dict[str, str]:
    """For a moved booking, the provider, room or device it had before, where the proposal changes it."""
    was = item.was
    if was is None or item.status != "moved":
        return {}
    before = {
        "provider": (was.provider_id, item.provider_id, providers),
        "room": (was.room_id, item.room_id, rooms),
        "device": (was.device_id, item.device_id, devices),
    }
    return {
        column: names.get(old, "another") if old is not None else "none"
        for column, (old, new, names) in before.items()
        if old != new
    }


def _window(entry: WaitlistRead | None) -> str | None:
    return window_label(entry) if entry is not None else None
