"""The live database in the two portable formats (`formats.py`): as files, so the models can be trained
and judged on a clinic's own history and the history can move to another system, and as frames, which is
what the serving path scores (the same rows, so training and serving see the same history).

A finished appointment is completed, no-show or cancelled; a cancellation made less than
`LATE_CANCEL_HOURS` before the start is `late_cancelled`. Live appointments (held, booked, confirmed,
checked in, in service) keep their status in frames; files hold finished ones only. Times are the
location's local wall-clock time, as the formats require. Visits are the completed appointments, one
transaction each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.kit import audit_trail
from medspa.kit.tz import to_local
from medspa.resources import service as resources
from medspa.retention.formats import (
    HISTORY_COLUMNS,
    TRANSACTION_COLUMNS,
    history_frame,
    transactions_frame,
    write_rows,
)
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import AppointmentRead, Status
from medspa.security.actors import Actor

if TYPE_CHECKING:
    import pandas as pd

LATE_CANCEL_HOURS = 24
PAGE = 500
FINISHED = (Status.COMPLETED, Status.NO_SHOW, Status.CANCELLED)
EVERY_STATUS = tuple(Status)


def _appointments(
    session: Session, actor: Actor, status: Status, client_id: uuid.UUID | None = None
) -> Iterator[AppointmentRead]:
    offset = 0
    while True:
        page = scheduling.list_appointments(
            session, actor=actor, status=status, client_id=client_id, limit=PAGE, offset=offset
        )
        yield from page.items
        offset += PAGE
        if offset >= page.total:
            return


def _zones(session: Session, actor: Actor) -> dict[uuid.UUID, tuple[str, str]]:
    locations = resources.list_locations(session, actor=actor, limit=500, include_inactive=True).items
    return {loc.id: (loc.name, loc.time_zone) for loc in locations}


def history_rows(
    session: Session,
    *,
    actor: Actor,
    statuses: Iterable[Status] = FINISHED,
    client_id: uuid.UUID | None = None,
    appointments: Iterable[AppointmentRead] | None = None,
) -> Iterator[list[object]]:
    """The organization's appointments with these statuses (of one client, if given), or the given
    `appointments`, as `appointment-history` rows in `HISTORY_COLUMNS` order."""
    zones = _zones(session, actor)
    services = {
        s.id: s for s in catalog.list_services(session, actor=actor, limit=500, include_inactive=True).items
    }
    providers = {
        p.id: p.name
        for p in resources.list_providers(session, actor=actor, limit=500, include_inactive=True).items
    }
    late = timedelta(hours=LATE_CANCEL_HOURS)
    if appointments is None:
        appointments = (a for status in statuses for a in _appointments(session, actor, status, client_id))
    for a in appointments:
        location, zone = zones[a.location_id]
        outcome = a.status.value
        if a.status is Status.CANCELLED and a.starts_at - a.updated_at < late:
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


def transaction_rows(
    session: Session, *, actor: Actor, client_id: uuid.UUID | None = None
) -> Iterator[list[object]]:
    """The organization's completed appointments (of one client, if given) as `visit-transactions` rows:
    client, local date, amount."""
    zones = _zones(session, actor)
    for a in _appointments(session, actor, Status.COMPLETED, client_id):
        yield [
            a.client_id,
            to_local(a.starts_at, zones[a.location_id][1]).date().isoformat(),
            f"{a.price_cents / 100:.2f}",
        ]


def export_appointment_history(session: Session, *, actor: Actor, path: Path) -> int:
    """Write the organization's finished appointments as `appointment-history`; the number of rows. The
    export is audited."""
    rows = write_rows(path, HISTORY_COLUMNS, history_rows(session, actor=actor))
    audit_trail.record_export(session, actor, "appointment", detail=f"appointment-history: {rows} rows")
    return rows


def export_visit_transactions(session: Session, *, actor: Actor, path: Path) -> int:
    """Write the organization's completed appointments as `visit-transactions`; the number of rows. The
    export is audited."""
    rows = write_rows(path, TRANSACTION_COLUMNS, transaction_rows(session, actor=actor))
    audit_trail.record_export(session, actor, "appointment", detail=f"visit-transactions: {rows} rows")
    return rows


def live_history_frame(
    session: Session, *, actor: Actor, appointments: Iterable[AppointmentRead] | None = None
) -> pd.DataFrame:
    """Every appointment of the organization, finished or not (or the given ones), as a typed
    `appointment-history` frame."""
    return history_frame(history_rows(session, actor=actor, statuses=EVERY_STATUS, appointments=appointments))


def live_transactions_frame(
    session: Session, *, actor: Actor, client_id: uuid.UUID | None = None
) -> pd.DataFrame:
    """The organization's visits (of one client, if given) as a typed `visit-transactions` frame."""
    return transactions_frame(transaction_rows(session, actor=actor, client_id=client_id))
