"""Appointment messages through a real SMTP server and a Twilio-compatible SMS provider: confirmation,
reschedule and cancellation notices, reminders, post-care; consent (and its defaults for a new client),
STOP and the carriers' other stop words, replies, unsubscribe links, quiet hours (on a daylight-saving
day too), caps, retries, and never twice."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from medspa.app import create_app
from medspa.clients import service as clients
from medspa.clients.schemas import ConsentChange
from medspa.engagement import service as engagement
from medspa.engagement.inbound import twilio_signature
from medspa.engagement.models import Message
from medspa.kit.db import unit_of_work
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import RescheduleRequest
from medspa.security import gate
from medspa.security.actors import Actor
from medspa.security.models import Organization
from medspa.security.schemas import AgentPolicyUpdate
from tests.engagement.conftest import Clinic, Mailbox, SmsProvider

# Tuesday 12 January 2027, 10:00 in New York (EST, UTC-5).
MORNING = datetime(2027, 1, 12, 15, 0, tzinfo=UTC)
# Friday 15 January 2027, 14:30 in New York: three days and a half later.
VISIT = datetime(2027, 1, 15, 19, 30, tzinfo=UTC)


def states(clinic: Clinic, **filters: object) -> dict[tuple[str, str], str]:
    return {(m.kind, m.channel): m.state for m in clinic.messages(**filters)}


def test_a_booking_is_confirmed_by_email_with_its_local_start_and_never_twice(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    client = clinic.client(email="ana@example.org")
    clinic.book(client.id, VISIT)

    report = clinic.run()
    clinic.run()  # nothing new: nothing more

    mails = box.to("ana@example.org")
    assert len(mails) == 1
    assert report.sent == 1
    assert re.fullmatch(r"Booked: Service \d+ on Fri, Jan 15, 2027 at 2:30 PM", mails[0]["Subject"])
    assert "2:30 PM" in Mailbox.text(mails[0])
    assert "Hello Client" in Mailbox.text(mails[0])
    assert mails[0]["List-Unsubscribe"].startswith("<http")
    assert states(clinic)[("confirmation", "email")] == "sent"
    # No phone, no SMS consent: the SMS confirmation is dropped, saying why.
    sms = next(m for m in clinic.messages() if m.kind == "confirmation" and m.channel == "sms")
    assert sms.state == "suppressed"
    assert sms.outcome == "no phone"


def test_the_same_events_handled_again_plan_and_send_nothing_more(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    client = clinic.client(email="twice@example.org")
    clinic.book(client.id, VISIT)
    events = clinic.events()
    handler = engagement.EngagementHandler(clinic.engine)
    handler(events)
    planned = len(clinic.messages())
    handler(events)  # at-least-once delivery: the same events again
    engagement.dispatch_due(clinic.engine, clinic.channels, organization_id=clinic.owner.organization_id)
    handler(events)
    engagement.dispatch_due(clinic.engine, clinic.channels, organization_id=clinic.owner.organization_id)

    assert len(clinic.messages()) == planned == 5  # confirmation x2, reminders 72 h and 24 h, SMS 2 h
    assert len(box.to("twice@example.org")) == 1
    with unit_of_work(clinic.engine, write=False) as session:
        logged = gate.list_actions(session, actor=clinic.owner, limit=50).items
    assert [a.action for a in logged] == ["engagement.messages"]


def test_no_message_reaches_a_client_who_declined_that_channel(
    clinic: Clinic, mailbox: tuple[Mailbox, str], sms_provider: tuple[SmsProvider, str]
) -> None:
    box, _ = mailbox
    provider, _ = sms_provider
    clinic.at(MORNING)
    declined = clinic.client(
        email="no@example.org", phone="+1 555 010 0001", consent=ConsentChange(email=False)
    )
    texts = clinic.client(email="yes@example.org", phone="+1 555 010 0002", consent=ConsentChange(sms=True))
    clinic.book(declined.id, VISIT)
    clinic.book(texts.id, VISIT + timedelta(hours=1))

    clinic.run()

    assert box.to("no@example.org") == []
    assert provider.to("+1 555 010 0001") == []
    assert len(box.to("yes@example.org")) == 1
    (text,) = provider.to("+1 555 010 0002")
    assert re.search(r"booked for Fri, Jan 15, 2027 at 3:30 PM\. Reply STOP to opt out\.$", text)
    refused = states(clinic, client_id=declined.id)
    assert refused[("confirmation", "email")] == "suppressed"


def test_a_cancellation_tells_the_client_and_its_reminders_are_not_sent(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    client = clinic.client(email="cancel@example.org")
    appointment = clinic.book(client.id, VISIT)
    clinic.run()
    with unit_of_work(clinic.engine) as session:
        scheduling.cancel_appointment(
            session, actor=clinic.owner, appointment_id=appointment.id, reason="ill"
        )
    events = clinic.events()
    handler = engagement.EngagementHandler(clinic.engine)
    handler(events)
    handler(events)  # delivered twice before its notice went: the notice stays
    clinic.run()
    clinic.at(VISIT - timedelta(hours=23))  # past both reminders' times
    clinic.run()

    subjects = [m["Subject"] for m in box.to("cancel@example.org")]
    assert len(subjects) == 2
    assert subjects[1].startswith("Cancelled:")
    reminders = [m for m in clinic.messages() if m.kind == "reminder"]
    assert {m.state for m in reminders} == {"obsolete"}


def test_a_reschedule_is_announced_and_reminders_follow_the_new_time(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    client = clinic.client(email="move@example.org")
    appointment = clinic.book(client.id, VISIT)
    clinic.run()
    later = VISIT + timedelta(days=1, hours=-2)  # Saturday 12:30 PM
    with unit_of_work(clinic.engine) as session:
        scheduling.reschedule_appointment(
            session,
            actor=clinic.owner,
            appointment_id=appointment.id,
            data=RescheduleRequest(starts_at=later),
        )
    clinic.run()
    clinic.at(later - timedelta(hours=24))
    clinic.run()

    mails = box.to("move@example.org")
    assert [m["Subject"].split(":")[0] for m in mails] == ["Booked", "Moved", "Reminder"]
    assert "12:30 PM" in Mailbox.text(mails[1])
    assert "2:30 PM" in Mailbox.text(mails[1])
    assert "12:30 PM" in Mailbox.text(mails[2])
    by_due = {m.due_at: m.state for m in clinic.messages() if m.kind == "reminder" and m.channel == "email"}
    assert by_due[VISIT - timedelta(hours=24)] == "obsolete"  # the old time's, due before the new one's
    assert by_due[later - timedelta(hours=24)] == "sent"


def test_reminders_go_at_their_offsets_and_reply_c_confirms(
    clinic: Clinic, mailbox: tuple[Mailbox, str], sms_provider: tuple[SmsProvider, str]
) -> None:
    box, _ = mailbox
    provider, _ = sms_provider
    clinic.at(MORNING - timedelta(days=3))
    client = clinic.client(email="remind@example.org", phone="+15550100003", consent=ConsentChange(sms=True))
    appointment = clinic.book(client.id, VISIT)
    clinic.run()
    clinic.at(VISIT - timedelta(hours=72, minutes=1))
    clinic.run()
    assert len(box.to("remind@example.org")) == 1  # the confirmation only
    clinic.at(VISIT - timedelta(hours=72))
    clinic.run()
    clinic.at(VISIT - timedelta(hours=24))
    clinic.run()
    clinic.at(VISIT - timedelta(hours=2))
    clinic.run()

    assert [m["Subject"].split(":")[0] for m in box.to("remind@example.org")] == [
        "Booked",
        "Reminder",
        "Reminder",
    ]
    texts = provider.to("+15550100003")
    assert len(texts) == 2
    assert "Reply C to confirm" in texts[1]
    with unit_of_work(clinic.engine) as session:
        answer = engagement.receive_sms(
            session,
            organization_id=clinic.owner.organization_id,
            sender="(555) 010-0003",
            body=" c ",
            clinic="Lumen",
        )
    assert answer == "Lumen: thank you, your visit is confirmed."
    with unit_of_work(clinic.engine, write=False) as session:
        assert (
            scheduling.get_appointment(session, actor=clinic.owner, appointment_id=appointment.id).status
            == "confirmed"
        )


def test_stop_takes_effect_at_once_for_messages_not_yet_sent(
    clinic: Clinic, sms_provider: tuple[SmsProvider, str]
) -> None:
    provider, _ = sms_provider
    clinic.at(MORNING)
    client = clinic.client(phone="+15550100004", consent=ConsentChange(sms=True))
    clinic.book(client.id, VISIT)
    clinic.run()
    assert len(provider.to("+15550100004")) == 1
    with unit_of_work(clinic.engine) as session:
        answer = engagement.receive_sms(
            session,
            organization_id=clinic.owner.organization_id,
            sender="+15550100004",
            body="Stop",
            clinic="Lumen",
        )
    clinic.at(VISIT - timedelta(hours=2))
    clinic.run()

    assert "no more texts" in answer
    assert len(provider.to("+15550100004")) == 1
    reminder = next(m for m in clinic.messages() if m.kind == "reminder" and m.channel == "sms")
    assert reminder.state == "suppressed"
    assert "does not allow sms" in (reminder.outcome or "")
    with unit_of_work(clinic.engine, write=False) as session:
        assert clients.get_client(session, actor=clinic.owner, client_id=client.id).consent.sms is False


@pytest.mark.parametrize(
    "reply", ["STOPALL", "unsubscribe", "Cancel", "END", "quit.", "REVOKE", "OPTOUT", "Opt out", "stop all"]
)
def test_every_carrier_stop_word_stops_texts(clinic: Clinic, reply: str) -> None:
    clinic.at(MORNING)
    client = clinic.client(phone="+15550100014", consent=ConsentChange(sms=True, marketing=True))
    with unit_of_work(clinic.engine) as session:
        answer = engagement.receive_sms(
            session,
            organization_id=clinic.owner.organization_id,
            sender="+15550100014",
            body=reply,
            clinic="Lumen",
        )

    assert "no more texts" in answer
    with unit_of_work(clinic.engine, write=False) as session:
        consent = clients.get_client(session, actor=clinic.owner, client_id=client.id).consent
    assert (consent.sms, consent.email, consent.marketing) == (False, True, True)  # SMS only


def test_a_client_created_through_the_api_allows_email_when_given_an_address_and_nothing_else(
    api: TestClient,
) -> None:
    with_address = api.post(
        "/api/v1/clients",
        json={"first_name": "Ana", "last_name": "Ruiz", "email": "ana@example.org", "phone": "+15550100015"},
    )
    phone_only = api.post(
        "/api/v1/clients", json={"first_name": "Bo", "last_name": "Lind", "phone": "+15550100016"}
    )
    asked = api.post(
        "/api/v1/clients",
        json={"first_name": "Cy", "last_name": "Moss", "email": "cy@example.org", "consent": {"sms": True}},
    )

    assert (with_address.status_code, phone_only.status_code, asked.status_code) == (201, 201, 201)
    consents = [
        {channel: reply.json()["consent"][channel] for channel in ("email", "sms", "marketing")}
        for reply in (with_address, phone_only, asked)
    ]
    assert consents == [
        {"email": True, "sms": False, "marketing": False},
        {"email": False, "sms": False, "marketing": False},
        {"email": True, "sms": True, "marketing": False},  # what the client said yes to, and no more
    ]


def test_the_sms_webhook_acts_only_on_a_signed_reply(
    clinic: Clinic, sms_provider: tuple[SmsProvider, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = sms_provider
    monkeypatch.setenv("MEDSPA_SMS_URL", url)
    monkeypatch.setenv("MEDSPA_PUBLIC_URL", "https://clinic.example")
    clinic.at(MORNING)
    client = clinic.client(phone="+15550100005", consent=ConsentChange(sms=True))
    with unit_of_work(clinic.engine, write=False) as session:
        slug = session.scalar(
            select(Organization.slug).where(Organization.id == clinic.owner.organization_id)
        )
    path = f"/api/v1/sms/{slug}/replies"
    form = {"From": "+15550100005", "Body": "STOP", "MessageSid": "SM1"}
    good = twilio_signature("secret-token", "https://clinic.example" + path, form)
    with TestClient(create_app(clinic.engine, clock=clinic.clock)) as http:
        forged = http.post(path, data=form, headers={"X-Twilio-Signature": "bm90IGl0"})
        unsigned = http.post(path, data=form)
        with unit_of_work(clinic.engine, write=False) as session:
            still = clients.get_client(session, actor=clinic.owner, client_id=client.id).consent.sms
        signed = http.post(path, data=form, headers={"X-Twilio-Signature": good})

    assert (forged.status_code, unsigned.status_code, still) == (401, 401, True)
    assert signed.status_code == 200
    assert "<Message>" in signed.text
    assert "no more texts" in signed.text
    with unit_of_work(clinic.engine, write=False) as session:
        assert clients.get_client(session, actor=clinic.owner, client_id=client.id).consent.sms is False


def test_the_unsubscribe_link_stops_emails_on_its_button_not_on_opening(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    client = clinic.client(email="unsub@example.org")
    clinic.book(client.id, VISIT)
    clinic.run()
    link = box.to("unsub@example.org")[0]["List-Unsubscribe"].strip("<>")
    path = "/" + link.split("/", 3)[3]
    with TestClient(create_app(clinic.engine, clock=clinic.clock)) as http:
        opened = http.get(path)
        with unit_of_work(clinic.engine, write=False) as session:
            after_opening = clients.get_client(session, actor=clinic.owner, client_id=client.id).consent.email
        clicked = http.post(path)
        forged = http.post(path[:-4] + "0000")
    clinic.at(VISIT - timedelta(hours=24))
    clinic.run()

    assert opened.status_code == 200
    assert after_opening is True
    assert clicked.status_code == 200
    assert "no more e-mails" in clicked.text
    assert forged.status_code == 404
    assert len(box.to("unsub@example.org")) == 1  # the reminders were not sent


@pytest.mark.parametrize(
    ("booked_at", "starts_at", "quiet_until"),
    [
        # Monday 22:30 in New York; Tuesday 10:00; the 11 h reminder falls at 23:00 -> Tuesday 08:00 EST.
        ("2027-01-12T03:30:00Z", "2027-01-12T15:00:00Z", "2027-01-12T13:00:00Z"),
        # The night the clocks spring forward: due at 00:00 EST, held until 08:00 EDT (12:00 UTC).
        ("2027-03-14T03:00:00Z", "2027-03-14T16:00:00Z", "2027-03-14T12:00:00Z"),
    ],
)
def test_quiet_hours_hold_a_reminder_until_morning_but_not_a_confirmation(
    clinic: Clinic, mailbox: tuple[Mailbox, str], booked_at: str, starts_at: str, quiet_until: str
) -> None:
    box, _ = mailbox
    booked, starts, until = (datetime.fromisoformat(t) for t in (booked_at, starts_at, quiet_until))
    clinic.at(booked)
    hours = int((starts - booked).total_seconds() // 3600) - 1
    clinic.set_policy(reminder_hours=[hours])
    client = clinic.client(email="night@example.org")
    clinic.book(client.id, starts)
    clinic.run()
    assert len(box.to("night@example.org")) == 1  # the confirmation: a reply, sent in quiet hours too
    clinic.at(starts - timedelta(hours=hours))  # the reminder is due, in quiet hours
    clinic.run()
    held = next(m for m in clinic.messages() if m.kind == "reminder" and m.channel == "email")
    assert len(box.to("night@example.org")) == 1
    assert (held.state, held.next_attempt_at, held.outcome) == ("queued", until, "waiting: quiet hours")
    clinic.at(until - timedelta(minutes=1))
    clinic.run()
    assert len(box.to("night@example.org")) == 1
    clinic.at(until)
    clinic.run()
    assert len(box.to("night@example.org")) == 2


def test_the_daily_cap_drops_what_would_exceed_it(clinic: Clinic, mailbox: tuple[Mailbox, str]) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    clinic.set_policy(daily_cap=2, reminder_hours=[24, 23, 22])
    client = clinic.client(email="cap@example.org")
    clinic.book(client.id, VISIT)
    clinic.run()  # the confirmation (a reply: counted, never capped)
    for hours in (24, 23, 22):
        clinic.at(VISIT - timedelta(hours=hours))
        clinic.run()

    assert len(box.to("cap@example.org")) == 3  # the confirmation, two days before, and two reminders
    capped = next(m for m in clinic.messages() if m.kind == "reminder" and m.state == "suppressed")
    assert capped.outcome == "daily cap: 2 messages in the last 24 hours (cap 2)"


def test_a_refused_send_is_tried_again_later_and_a_rejected_one_gives_up(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    box.refuse_with = "451 try later"
    client = clinic.client(email="retry@example.org")
    clinic.book(client.id, VISIT)
    clinic.run()
    first = next(m for m in clinic.messages() if m.kind == "confirmation" and m.channel == "email")
    box.refuse_with = None
    clinic.run()  # not yet: the retry waits a minute
    assert box.to("retry@example.org") == []
    clinic.at(MORNING + timedelta(minutes=1))
    clinic.run()
    box.refuse_with = "550 no such user"
    other = clinic.client(email="gone@example.org")
    clinic.book(other.id, VISIT + timedelta(hours=1))
    clinic.run()

    assert (first.state, first.attempts, first.next_attempt_at) == (
        "queued",
        1,
        MORNING + timedelta(minutes=1),
    )
    assert "451" in (first.outcome or "")
    assert len(box.to("retry@example.org")) == 1
    assert states(clinic)[("confirmation", "email")] in ("sent", "failed")
    rejected = next(
        m for m in clinic.messages(client_id=other.id) if m.channel == "email" and m.kind == "confirmation"
    )
    assert rejected.state == "failed"
    assert "550" in (rejected.outcome or "")


def test_an_interrupted_send_is_not_sent_again(clinic: Clinic, mailbox: tuple[Mailbox, str]) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    client = clinic.client(email="crash@example.org")
    clinic.book(client.id, VISIT)
    clinic.plan()
    with unit_of_work(clinic.engine) as session:  # claimed by a dispatcher that then died
        session.execute(
            update(Message)
            .where(Message.client_id == client.id, Message.kind == "confirmation")
            .values(state="sending", claimed_at=MORNING)
        )
    clinic.at(MORNING + timedelta(minutes=11))
    with unit_of_work(clinic.engine) as session:
        released = engagement.release_interrupted(session)
    clinic.run()

    assert released >= 1
    assert box.to("crash@example.org") == []
    with unit_of_work(clinic.engine, write=False) as session:
        row = session.scalar(
            select(Message).where(
                Message.client_id == client.id, Message.kind == "confirmation", Message.channel == "email"
            )
        )
        assert row is not None
        assert row.state == "failed"
        assert "not sent again" in (row.outcome or "")


def test_post_care_instructions_follow_a_completed_visit(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    client = clinic.client(email="after@example.org")
    appointment = clinic.book(client.id, MORNING + timedelta(hours=1))
    clinic.run()
    clinic.at(MORNING + timedelta(hours=1))
    with unit_of_work(clinic.engine) as session:
        for step in (scheduling.check_in, scheduling.start_service, scheduling.complete_appointment):
            step(session, actor=clinic.owner, appointment_id=appointment.id)
    clinic.at(MORNING + timedelta(hours=2))
    clinic.run()

    mails = box.to("after@example.org")
    assert mails[-1]["Subject"].startswith("After your")
    assert "Avoid heat for 48 hours." in Mailbox.text(mails[-1])


def test_a_stricter_policy_queues_the_messages_for_a_person(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    with unit_of_work(clinic.engine) as session:
        gate.set_policy(
            session, actor=clinic.owner, action="engagement.messages", data=AgentPolicyUpdate(tier=3)
        )
    client = clinic.client(email="approve@example.org")
    clinic.book(client.id, VISIT)
    clinic.run()
    assert box.to("approve@example.org") == []
    assert clinic.messages() == []
    with unit_of_work(clinic.engine) as session:
        queued = gate.list_actions(session, actor=clinic.owner, state="queued").items
        person = Actor(clinic.owner.organization_id, "user", None, clinic.owner.role, "manager@example.org")
        gate.decide(session, actor=person, action_id=queued[0].id, approve=True)
    clinic.run()

    assert len(box.to("approve@example.org")) == 1


def test_a_message_that_cannot_be_prepared_fails_once_saying_why(
    clinic: Clinic, mailbox: tuple[Mailbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    client = clinic.client(email="fault@example.org")
    clinic.book(client.id, VISIT)

    def broken(*_args: object) -> None:
        raise RuntimeError("the provider record is unreadable for fault@example.org")

    monkeypatch.setattr("medspa.engagement.dispatch._outgoing", broken)
    first = clinic.run()
    second = clinic.run()

    confirmation = next(m for m in clinic.messages() if m.kind == "confirmation" and m.channel == "email")
    assert (first.failed, second.failed) == (1, 0)
    assert confirmation.state == "failed"
    assert (
        confirmation.outcome
        == "could not be prepared: RuntimeError: the provider record is unreadable for [address]"
    )
    assert box.to("fault@example.org") == []
