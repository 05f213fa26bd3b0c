"""Slots as the booking form shows them, and the value a slot button posts back.

A slot button posts its start and the exact provider, room and device `find_slots` offered, so the
booking takes what the front desk saw (and a 409 says so when someone took it meanwhile)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from medspa.kit.schemas import in_accepted_range
from medspa.scheduling.schemas import SlotRead
from medspa.web.board import clock_label


@dataclass(frozen=True)
class SlotButton:
    time: str
    room: str
    device: str
    value: str


@dataclass(frozen=True)
class ChosenSlot:
    starts_at: datetime
    provider_id: uuid.UUID
    room_id: uuid.UUID
    device_id: uuid.UUID | None


def by_provider(found: list[SlotRead]) -> list[tuple[str, list[SlotButton]]]:
    """The slots grouped under their provider's name (providers in name order, starts in time order)."""
    groups: dict[str, list[SlotButton]] = {}
    for slot in found:
        local = datetime.fromisoformat(slot.local_start)
        groups.setdefault(slot.provider_name, []).append(
            SlotButton(
                time=clock_label(local.hour, local.minute),
                room=slot.room_name,
                device=slot.device_name or "",
                value=slot_value(slot),
            )
        )
    return sorted(groups.items())


def slot_value(slot: SlotRead) -> str:
    """`<start, ISO 8601 UTC>|<provider id>|<room id>|<device id or empty>`."""
    return "|".join(
        [slot.starts_at.isoformat(), str(slot.provider_id), str(slot.room_id), str(slot.device_id or "")]
    )


def parse_slot(value: str) -> ChosenSlot | None:
    """The slot a button posted, or None when the value is not one `slot_value` makes."""
    parts = value.split("|")
    if len(parts) != 4:
        return None
    try:
        starts_at = datetime.fromisoformat(parts[0])
        provider_id, room_id = uuid.UUID(parts[1]), uuid.UUID(parts[2])
        device_id = uuid.UUID(parts[3]) if parts[3] else None
    except ValueError:
        return None
    if starts_at.tzinfo is None or not in_accepted_range(starts_at):
        return None
    return ChosenSlot(starts_at, provider_id, room_id, device_id)
