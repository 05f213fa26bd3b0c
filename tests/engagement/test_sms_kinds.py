"""Every kind of message that has an SMS template reaches the (fake, Twilio-compatible) SMS provider
over HTTP, in its own words, for a client who allows SMS (and marketing, for the marketing kinds, whose
copy by e-mail goes as well)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from medspa.clients.schemas import ConsentChange
from medspa.engagement import service as engagement
from medspa.engagement.links import link_token
from medspa.engagement.templates import BUILT_IN
from medspa.kit.db import unit_of_work
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import RescheduleRequest
from tests.engagement.conftest import Clinic, SmsProvider
from tests.engagement.test_offers import cancel, wait
from tests.factories import make_service, store_retention_score

MORNING = datetime(2027, 1, 12, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York
VISIT = datetime(2027, 1, 15, 19, 30, tzinfo=UTC)  # Friday 14:30
WHEN = "Fri, Jan 15, 2027 at 2:30 PM"
PHONE = "+15550100077"
SMS_KINDS = sorted(kind for kind, channel in BUILT_IN if channel == "sms")


def texting_client(clinic: Clinic) -> uuid.UUID:
    return clinic.client(phone=PHONE, consent=ConsentChange(sms=True, marketing=True)).id


def complete(clinic: Clinic, client_id: uuid.UUID, starts_at: datetime, **changes: uuid.UUID) -> None:
    """A visit that happened: booked an hour before, completed at its start."""
    clinic.at(starts_at - timedelta(hours=1))
    appointment = clinic.book(client_id, starts_at, **changes)
    clinic.at(starts_at)
    with unit_of_work(clinic.engine) as session:
        for step in (scheduling.check_in, scheduling.start_service, scheduling.complete_appointment):
            step(session, actor=clinic.owner, appointment_id=appointment.id)


def booked(clinic: Clinic) -> uuid.UUID:
    appointment = clinic.book(texting_client(clinic), VISIT)
    clinic.run()
    return appointment.id


def rescheduled(clinic: Clinic) -> None:
    appointment_id = booked(clinic)
    with unit_of_work(clinic.engine) as session:
        scheduling.reschedule_appointment(
            session,
            actor=clinic.owner,
            appointment_id=appointment_id,
            data=RescheduleRequest(starts_at=VISIT + timedelta(days=3)),
        )


def cancelled(clinic: Clinic) -> None:
    appointment_id = booked(clinic)
    with unit_of_work(clinic.engine) as session:
        scheduling.cancel_appointment(
            session, actor=clinic.owner, appointment_id=appointment_id, reason="ill"
        )


def reminded(clinic: Clinic) -> None:
    booked(clinic)
    clinic.at(VISIT - timedelta(hours=2))


def after_care(clinic: Clinic) -> None:
    complete(clinic, texting_client(clinic), MORNING + timedelta(hours=1))
    clinic.at(MORNING + timedelta(hours=2))


def offered(clinic: Clinic) -> uuid.UUID:
    """A time freed on Friday, offered to the texting client and to another waiting client; the
    texting client's id."""
    appointment = clinic.book(clinic.client().id, VISIT)
    texting = texting_client(clinic)
    for client_id in (texting, clinic.client().id):
        wait(clinic, client_id, ("14:00", "17:00"))
    cancel(clinic, appointment.id)
    clinic.run()
    return texting


def taken_by_another(clinic: Clinic) -> None:
    texting = offered(clinic)
    with unit_of_work(clinic.engine) as session:
        (other,) = [
            o
            for o in engagement.list_offers(session, actor=clinic.owner, limit=10).items
            if o.client_id != texting
        ]
        token = link_token(session, clinic.owner.organization_id, "offer", other.id)
    with unit_of_work(clinic.engine) as session:
        assert engagement.accept_offer(session, token=token).outcome == "booked"


def asked_to_confirm(clinic: Clinic) -> None:
    appointment = clinic.book(texting_client(clinic), VISIT)
    clinic.run()
    # Risky bookings are asked within days of their start; a day after the confirmation, so that the
    # request's two copies stay within the daily cap.
    clinic.at(VISIT - timedelta(days=2))
    with unit_of_work(clinic.engine) as session:
        scheduling.store_no_show_scores(
            session,
            actor=clinic.owner,
            probabilities={appointment.id: 0.45},
            model_version="test",
            scored_at=clinic.clock.now(),
        )
    clinic.run()
    engagement.ask_everywhere(clinic.engine, [clinic.owner.organization_id])


def followed_up(clinic: Clinic) -> None:
    with unit_of_work(clinic.engine) as session:
        toxin = make_service(session, actor=clinic.owner, duration=30, follow_up_days=90).id
    complete(clinic, texting_client(clinic), MORNING, service_id=toxin)
    clinic.run()
    clinic.at(MORNING + timedelta(days=90, hours=3))


def lapsed(clinic: Clinic) -> None:
    client_id = texting_client(clinic)
    complete(clinic, client_id, MORNING)
    clinic.run()
    clinic.at(MORNING + timedelta(days=75))
    with unit_of_work(clinic.engine) as session:
        store_retention_score(
            session,
            organization_id=clinic.owner.organization_id,
            client_id=client_id,
            lapse_risk=0.85,
            last_visit_on=date(2027, 1, 12),
        )
    engagement.reach_out(clinic.engine, [clinic.owner.organization_id])


# What leads to each kind of message, and what its text says.
SCENARIOS: dict[str, tuple[Callable[[Clinic], object], str]] = {
    "confirmation": (booked, rf"your Service \d+ is booked for {WHEN}\. Reply STOP to opt out\.$"),
    "reschedule": (rescheduled, rf"has moved to Mon, Jan 18, 2027 at 2:30 PM \(was {WHEN}\)\.$"),
    "cancellation": (cancelled, rf"your Service \d+ on {WHEN} is cancelled\.$"),
    "reminder": (reminded, rf"Service \d+ {WHEN}\. Reply C to confirm, STOP to opt out\.$"),
    "post_care": (after_care, r"after your Service \d+: Avoid heat for 48 hours\.$"),
    "waitlist_offer": (offered, rf"Service \d+ free {WHEN}\. Book by 10:20 AM: https?://\S+/offers/\S+$"),
    "offer_taken": (taken_by_another, rf"the Service \d+ time {WHEN} has been taken; you are still on"),
    "confirm_request": (
        asked_to_confirm,
        rf"Service \d+ {WHEN}\. Reply C to confirm, or call us to change it",
    ),
    "follow_up": (
        followed_up,
        r"time for your next Service \d+\? Reply or call us to book\. STOP to opt out\.$",
    ),
    "lapse": (lapsed, r"we would be glad to see you again\. Reply or call us to book\. STOP to opt out\.$"),
}


def test_every_kind_with_an_sms_template_has_a_case() -> None:
    assert sorted(SCENARIOS) == SMS_KINDS


@pytest.mark.parametrize("kind", SMS_KINDS)
def test_each_kind_of_sms_reaches_the_provider_in_its_own_words(
    clinic: Clinic, sms_provider: tuple[SmsProvider, str], kind: str
) -> None:
    provider, _ = sms_provider
    clinic.at(MORNING)
    scenario, words = SCENARIOS[kind]

    scenario(clinic)
    clinic.run()

    of_kind = [m for m in clinic.messages() if m.kind == kind]
    (sent,) = [m for m in of_kind if m.channel == "sms" and m.state == "sent"]
    texts = provider.to(PHONE)
    assert len([t for t in texts if re.search(words, t)]) == 1, texts
    assert all(re.match(r"Location \d+: ", t) for t in texts)
    if sent.purpose == "marketing":  # its copy by e-mail went too: not a recent contact that stops the text
        assert [m.state for m in of_kind if m.client_id == sent.client_id and m.channel == "email"] == [
            "sent"
        ]
