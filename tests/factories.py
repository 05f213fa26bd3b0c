"""Factories: `make_x(session, *, actor, ...)` builds a valid X through the service layer."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, time

from sqlalchemy import delete
from sqlalchemy.orm import Session

from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceCreate, ServiceRead
from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate, ClientRead, ConsentChange
from medspa.kit import clock
from medspa.resources import service as resources
from medspa.resources.schemas import (
    DeviceCreate,
    DeviceRead,
    LicenseIn,
    LocationCreate,
    LocationRead,
    ProviderCreate,
    ProviderRead,
    RoomCreate,
    RoomRead,
    WeeklySpan,
)
from medspa.retention.models import ClientRetentionScore, MembershipLapseScore
from medspa.security.actors import Actor

_counter = itertools.count()
EVERY_DAY = range(7)


def week(start: str, end: str, days: range | list[int] = EVERY_DAY) -> list[WeeklySpan]:
    return [
        WeeklySpan(weekday=d, starts_at=time.fromisoformat(start), ends_at=time.fromisoformat(end))
        for d in days
    ]


def make_location(
    session: Session,
    *,
    actor: Actor,
    time_zone: str = "America/New_York",
    hours: tuple[str, str] = ("09:00", "17:00"),
    grid: int = 15,
    notice: int = 0,
) -> LocationRead:
    return resources.create_location(
        session,
        actor=actor,
        data=LocationCreate(
            name=f"Location {next(_counter)}",
            time_zone=time_zone,
            slot_interval_minutes=grid,
            minimum_notice_minutes=notice,
            opening_hours=week(*hours),
        ),
    )


def make_provider(
    session: Session,
    *,
    actor: Actor,
    location_id: uuid.UUID,
    skills: list[str] | None = None,
    shift: tuple[str, str] = ("09:00", "17:00"),
    breaks: tuple[str, str] | None = None,
    licenses: list[tuple[str, date]] | None = None,
    name: str | None = None,
) -> ProviderRead:
    return resources.create_provider(
        session,
        actor=actor,
        data=ProviderCreate(
            location_id=location_id,
            name=name or f"Provider {next(_counter)}",
            skills=skills if skills is not None else ["neurotoxin"],
            licenses=[LicenseIn(kind=k, expires_on=d) for k, d in (licenses or [])],
            shifts=week(*shift),
            breaks=week(*breaks) if breaks else [],
        ),
    )


def make_room(
    session: Session, *, actor: Actor, location_id: uuid.UUID, room_type: str = "injection"
) -> RoomRead:
    return resources.create_room(
        session,
        actor=actor,
        data=RoomCreate(location_id=location_id, name=f"Room {next(_counter)}", room_type=room_type),
    )


def make_device(
    session: Session,
    *,
    actor: Actor,
    location_id: uuid.UUID,
    device_type: str = "co2_laser",
    cooldown: int = 0,
) -> DeviceRead:
    return resources.create_device(
        session,
        actor=actor,
        data=DeviceCreate(
            location_id=location_id,
            name=f"Device {next(_counter)}",
            device_type=device_type,
            cooldown_minutes=cooldown,
        ),
    )


def make_service(
    session: Session,
    *,
    actor: Actor,
    duration: int = 60,
    setup: int = 0,
    cleanup: int = 0,
    skill: str = "neurotoxin",
    license_kind: str | None = None,
    room_types: list[str] | None = None,
    device_type: str | None = None,
    price_cents: int = 45000,
    post_care: str = "",
    follow_up_days: int | None = None,
) -> ServiceRead:
    return catalog.create_service(
        session,
        actor=actor,
        data=ServiceCreate(
            name=f"Service {next(_counter)}",
            category="injectables",
            duration_minutes=duration,
            setup_minutes=setup,
            cleanup_minutes=cleanup,
            required_skill=skill,
            required_license=license_kind,
            room_types=room_types or ["injection"],
            device_type=device_type,
            price_cents=price_cents,
            cost_cents=price_cents // 3,
            post_care_instructions=post_care,
            follow_up_days=follow_up_days,
        ),
    )


def make_client(
    session: Session,
    *,
    actor: Actor,
    email: str | None = None,
    phone: str | None = None,
    consent: ConsentChange | None = None,
) -> ClientRead:
    number = next(_counter)
    return clients.create_client(
        session,
        actor=actor,
        data=ClientCreate(
            first_name="Client",
            last_name=f"Number{number}",
            email=email or f"client{number}@example.org",
            phone=phone,
            consent=consent or ConsentChange(),
        ),
    )


def store_retention_score(
    session: Session,
    *,
    organization_id: uuid.UUID,
    client_id: uuid.UUID,
    lapse_risk: float,
    visits: int = 1,
    last_visit_on: date | None = None,
    next_action: str | None = None,
) -> None:
    """A client's retention score as the scoring job would store it (replacing any)."""
    session.execute(delete(ClientRetentionScore).where(ClientRetentionScore.client_id == client_id))
    session.add(
        ClientRetentionScore(
            organization_id=organization_id,
            client_id=client_id,
            visits=visits,
            last_visit_on=last_visit_on,
            expected_next_visit_on=None,
            horizon_days=365,
            probability_return=1 - lapse_risk,
            expected_visits=0.5,
            lapse_risk=lapse_risk,
            model_version="test",
            scored_at=clock.now(),
            next_action=next_action,
            next_action_reason="test" if next_action else None,
        )
    )


def store_membership_lapse(
    session: Session,
    *,
    organization_id: uuid.UUID,
    client_id: uuid.UUID,
    membership_id: uuid.UUID,
    lapse_risk: float | None,
    memberships: int,
    tenure_months: float = 7.2,
    reason: str | None = None,
) -> None:
    """A member's membership lapse risk as the scoring job would store it (replacing any)."""
    session.execute(delete(MembershipLapseScore).where(MembershipLapseScore.client_id == client_id))
    session.add(
        MembershipLapseScore(
            organization_id=organization_id,
            client_id=client_id,
            membership_id=membership_id,
            tenure_months=tenure_months,
            horizon_months=3,
            lapse_risk=lapse_risk,
            reason=reason,
            model_version="test",
            memberships=memberships,
            scored_at=clock.now(),
        )
    )
