"""A booking's P(no-show) where the no-show model has not served one: the stored score when there is
one, else the client's own record shrunk towards the clinic-wide prior."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medspa.scheduling.models import Appointment
from medspa.scheduling.schemas import AppointmentRead
from medspa.security.actors import Actor, require

# A client's no-show probability until the no-show model serves it: the client's own record, shrunk
# towards the clinic-wide prior (Beta(0.8, 9.2): mean 8 %, worth ten visits of evidence).
PRIOR_NO_SHOWS, PRIOR_VISITS = 0.8, 10.0


def no_show_probability(appointment: Appointment, risk: dict[uuid.UUID, float]) -> float:
    """The booking's stored P(no-show) from the active no-show model when the worker has scored it;
    otherwise the client's smoothed rate (`no_show_risk`), or the prior for a client without history."""
    if appointment.no_show_probability is not None:
        return appointment.no_show_probability
    return risk.get(appointment.client_id, PRIOR_NO_SHOWS / PRIOR_VISITS)


def finished_visits(
    session: Session, actor: Actor, client_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    """Each client's finished visits as (completed, no-shows), for those who have any."""
    if not client_ids:
        return {}
    rows = session.execute(
        select(Appointment.client_id, Appointment.status, func.count())
        .where(
            Appointment.organization_id == actor.organization_id,
            Appointment.client_id.in_(set(client_ids)),
            Appointment.status.in_(("completed", "no_show")),
        )
        .group_by(Appointment.client_id, Appointment.status)
    )
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for client_id, status, number in rows:
        counts.setdefault(client_id, {})[status] = number
    return {client: (c.get("completed", 0), c.get("no_show", 0)) for client, c in counts.items()}


def no_show_risk(session: Session, actor: Actor, client_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, float]:
    """Each client's no-show rate over their finished visits, shrunk towards the clinic-wide prior: the
    fallback for a request without a stored model probability (a waitlist entry, an unscored booking)."""
    return {
        client: (missed + PRIOR_NO_SHOWS) / (missed + completed + PRIOR_VISITS)
        for client, (completed, missed) in finished_visits(session, actor, client_ids).items()
    }


def visit_records(
    session: Session, *, actor: Actor, client_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    """`finished_visits` for the pages: each client's (completed, no-shows)."""
    require(actor, "appointments", "read")
    return finished_visits(session, actor, client_ids)


def risk_in_words(appointment: Appointment | AppointmentRead, record: tuple[int, int] | None) -> str:
    """What stands behind a booking's no-show risk, as the desk would say it: the client's own record and
    how far ahead it was booked (the two things the no-show model weighs most)."""
    completed, missed = record or (0, 0)
    finished = completed + missed
    if finished == 0:
        said = ["a first visit"]
    elif missed:
        said = [f"missed {missed} of {finished} earlier visit{'' if finished == 1 else 's'}"]
    else:
        said = [f"came to all {finished} earlier visit{'' if finished == 1 else 's'}"]
    ahead = (appointment.starts_at - appointment.created_at).days
    said.append(
        "booked the same day" if ahead < 1 else f"booked {ahead} day{'' if ahead == 1 else 's'} ahead"
    )
    return "; ".join(said)
