"""Export the live database to the two portable formats (`formats.py`), so the models can be trained
and judged on a clinic's own history, and the history can move to another system.

Only appointments whose outcome is known are exported (completed, no-show, cancelled); a cancellation
made less than `LATE_CANCEL_HOURS` before the start is `late_cancelled`. Times are the location's local
wall-clock time, as the formats require. Visits are the completed appointments, one transaction each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.kit.tz import to_local
from medspa.resources import service as resources
from medspa.retention.formats import HISTORY_COLUMNS, TRANSACTION_COLUMNS, write_rows
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, Status
from medspa.security.actors import Actor

LATE_CANCEL_HOURS = 24
PAGE = 500
FINISHED = (Status.COMPLETED, Status.NO_SHOW, Status.CANCELLED)


def _appointments(session: Session, actor: Actor, status: Status) -> Iterator[AppointmentRead]:
    offset = 0
    while True:
        page = scheduling.list_appointments(session, actor=actor, status=status, limit=PAGE, offset=offset)
        yield from page.items
        offset += PAGE
        if offset >= page.total:
            return


def _zones(session: Session, actor: Actor) -> dict[uuid.UUID, tuple[str, str]]:
    locations = resources.list_locations(session, actor=actor, limit=500, include_inactive=True).items
    return {loc.id: (loc.name, loc.time_zone) for loc in locations}


def export_appointment_history(session: Session, *, actor: Actor, path: Path) -> int:
    """Write the organization's finished appointments as `appointment-history`; the number of rows."""
    zones = _zones(session, actor)
    services = {
        s.id: s for s in catalog.list_services(session, actor=actor, limit=500, include_inactive=True).items
    }
    providers = {
        p.id: p.name
        for p in resources.list_providers(session, actor=actor, limit=500, include_inactive=True).items
    }
    late = timedelta(hours=LATE_CANCEL_HOURS)

    def rows() -> Iterator[list[object]]:
        for status in FINISHED:
            for a in _appointments(session, actor, status):
                location, zone = zones[a.location_id]
                outcome = status.value
                if status is Status.CANCELLED and a.starts_at - a.updated_at < late:
                    outcome = "late_cancelled"  # a cancelled appointment last changed when it was cancelled
                service = services.get(a.service_id)
                yield [
                    a.id,
                    a.client_id,
                    to_local(a.created_at, zone).replace(tzinfo=None).isoformat(timespec="minutes"),
                    to_local(a.starts_at, zone).replace(tzinfo=None).isoformat(timespec="minutes"),
                    outcome,
                    service.name if service else "",
                    service.category if service else "",
                    providers.get(a.provider_id, ""),
                    location,
                    f"{a.price_cents / 100:.2f}",
                    None,  # reminders are not sent by medspa yet
                ]

    return write_rows(path, HISTORY_COLUMNS, rows())


def export_visit_transactions(session: Session, *, actor: Actor, path: Path) -> int:
    """Write the organization's completed appointments as `visit-transactions`; the number of rows."""
    zones = _zones(session, actor)
    rows = (
        [
            a.client_id,
            to_local(a.starts_at, zones[a.location_id][1]).date().isoformat(),
            f"{a.price_cents / 100:.2f}",
        ]
        for a in _appointments(session, actor, Status.COMPLETED)
    )
    return write_rows(path, TRANSACTION_COLUMNS, rows)
