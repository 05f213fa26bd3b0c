"""A connected system's cancellation, however often it arrives, cancels once: one notice to the client
and one round of waitlist offers for the freed time."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from medspa.integrations import mappings
from medspa.integrations import service as integrations
from medspa.integrations.apply import apply_pending
from medspa.integrations.schemas import ConnectionCreate, MappingSet
from medspa.kit.db import unit_of_work
from medspa.scheduling.models import Appointment
from tests.engagement.conftest import Clinic, Mailbox
from tests.engagement.test_offers import MORNING, VISIT, offers, wait
from tests.integrations.test_webhooks import MINDBODY_SECRET, mb_client, mindbody_event, mindbody_headers


def deliver(clinic: Clinic, connection: uuid.UUID, event: str, data: dict[str, object], minute: int) -> None:
    clinic.clock.advance(timedelta(milliseconds=1))
    body = mindbody_event(event, data, at=MORNING + timedelta(minutes=minute))
    receipt = integrations.receive(
        clinic.engine,
        connector="mindbody",
        connection_id=connection,
        body=body,
        headers={k.lower(): v for k, v in mindbody_headers(body).items()},
    )
    assert receipt.status == 202


def test_a_cancellation_delivered_three_times_tells_the_client_once_and_offers_the_time_once(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    with unit_of_work(clinic.engine) as session:
        connection = integrations.add_connection(
            session, actor=clinic.owner, data=ConnectionCreate(connector="mindbody", secret=MINDBODY_SECRET)
        ).id
        for kind, external, ours in (
            ("service", "55", clinic.service_id),
            ("provider", "7", clinic.provider_id),
        ):
            mapping = MappingSet.model_validate({"kind": kind, "external_id": external, "record_id": ours})
            mappings.set_mapping(session, actor=clinic.owner, connection_id=connection, data=mapping)
    waiting = clinic.client(email="waiting@example.org")
    wait(clinic, waiting.id, ("14:00", "16:00"))
    deliver(clinic, connection, "client.created", mb_client("100", "leaving@example.org"), 0)
    visit = {
        "appointmentId": 900,
        "status": "Booked",
        "clientId": "100",
        "staffId": 7,
        "sessionTypeId": 55,
        "startDateTime": "2027-01-15T14:30:00",  # VISIT, in New York
    }
    deliver(clinic, connection, "appointmentBooking.created", visit, 1)
    assert apply_pending(clinic.engine, organization_id=clinic.owner.organization_id).applied == 2
    clinic.run()
    for minute in (2, 3, 4):
        deliver(clinic, connection, "appointmentBooking.cancelled", {**visit, "status": "Cancelled"}, minute)
    report = apply_pending(clinic.engine, organization_id=clinic.owner.organization_id)
    assert (report.applied, report.skipped) == (1, 2)
    clinic.run()
    clinic.run()

    with unit_of_work(clinic.engine, write=False) as session:
        (status,) = session.scalars(
            select(Appointment.status).where(
                Appointment.organization_id == clinic.owner.organization_id, Appointment.starts_at == VISIT
            )
        ).all()
    assert status == "cancelled"
    notices = [m for m in box.to("leaving@example.org") if "ancel" in m["Subject"]]
    assert len(notices) == 1, [m["Subject"] for m in box.to("leaving@example.org")]
    made = offers(clinic)
    assert [(o.client_id, o.starts_at) for o in made] == [(waiting.id, VISIT)]
    assert len([m for m in box.to("waiting@example.org") if "opening" in m["Subject"]]) == 1
