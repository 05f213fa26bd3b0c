"""Waitlist backfill: a freed time is offered to the best-matching waiting clients by a link, the first
acceptance books it through the booking path, the others are told it is gone, and a lapsed offer passes
the time on; under concurrent acceptances exactly one books. Time freed by a cancellation, a no-show, a
reschedule or an applied proposal is offered alike."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from medspa.app import create_app
from medspa.clients.schemas import ClientRead
from medspa.engagement import service as engagement
from medspa.engagement.links import link_token
from medspa.engagement.models import WaitlistOffer
from medspa.engagement.offers import WEIGHTS, rank_score, response_likelihood, short_notice_likelihood
from medspa.engagement.schemas import OfferRead
from medspa.kit import clock
from medspa.kit.db import unit_of_work
from medspa.resources import service as resources
from medspa.resources.schemas import PeriodCreate
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import Appointment
from medspa.scheduling.schemas import RescheduleRequest, WaitlistCreate
from tests.engagement.conftest import Clinic, Mailbox
from tests.factories import make_provider, make_room, make_service

MORNING = datetime(2027, 1, 12, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York
VISIT = datetime(2027, 1, 15, 19, 30, tzinfo=UTC)  # Friday 14:30
FRIDAY = date(2027, 1, 15)


def wait(clinic: Clinic, client_id: uuid.UUID, window: tuple[str, str], **extra: Any) -> uuid.UUID:
    data = WaitlistCreate(
        client_id=client_id,
        service_id=extra.pop("service_id", clinic.service_id),
        location_id=clinic.location_id,
        service_date=extra.pop("service_date", FRIDAY),
        window_starts_at=time.fromisoformat(window[0]),
        window_ends_at=time.fromisoformat(window[1]),
        **extra,
    )
    with unit_of_work(clinic.engine) as session:
        return scheduling.add_to_waitlist(session, actor=clinic.owner, data=data).id


def cancel(clinic: Clinic, appointment_id: uuid.UUID) -> None:
    with unit_of_work(clinic.engine) as session:
        scheduling.cancel_appointment(
            session, actor=clinic.owner, appointment_id=appointment_id, reason="ill"
        )


def offers(clinic: Clinic) -> list[OfferRead]:
    with unit_of_work(clinic.engine, write=False) as session:
        return engagement.list_offers(session, actor=clinic.owner, limit=100).items


def offer_link(box: Mailbox, address: str) -> str:
    (mail,) = [m for m in box.to(address) if "opening" in m["Subject"]]
    found = re.search(r"https?://\S+/offers/(\S+)", Mailbox.text(mail))
    assert found is not None
    return found.group(1)


def booked_at(clinic: Clinic, client_id: uuid.UUID) -> list[datetime]:
    with unit_of_work(clinic.engine, write=False) as session:
        return list(
            session.scalars(
                select(Appointment.starts_at).where(
                    Appointment.client_id == client_id, Appointment.status == "booked"
                )
            )
        )


def test_a_cancelled_time_goes_to_the_best_matches_and_the_first_to_accept_books_it(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    leaving = clinic.client(email="leaving@example.org")
    appointment = clinic.book(leaving.id, VISIT)
    plain = clinic.client(email="plain@example.org")
    member = clinic.client(email="member@example.org")
    morning_only = clinic.client(email="morning@example.org")
    elsewhere = clinic.client(email="elsewhere@example.org")
    wait(clinic, plain.id, ("14:00", "16:00"))
    wait(clinic, member.id, ("14:00", "17:00"), priority="member")
    wait(clinic, morning_only.id, ("09:00", "12:00"))
    with unit_of_work(clinic.engine) as session:
        from tests.factories import make_provider

        other = make_provider(session, actor=clinic.owner, location_id=clinic.location_id)
    wait(clinic, elsewhere.id, ("14:00", "17:00"), preferred_provider_id=other.id)
    clinic.run()
    cancel(clinic, appointment.id)

    clinic.run()

    made = offers(clinic)
    assert sorted((o.client_id, o.state, o.starts_at) for o in made) == sorted(
        [(member.id, "open", VISIT), (plain.id, "open", VISIT)]
    )
    assert max(made, key=lambda o: o.rank_score).client_id == member.id
    assert all(o.expires_at == MORNING + timedelta(minutes=20) for o in made)
    assert box.to("morning@example.org") == []
    assert box.to("elsewhere@example.org") == []
    with TestClient(create_app(clinic.engine, clock=clinic.clock)) as http:
        page = http.get(f"/offers/{offer_link(box, 'plain@example.org')}")
        taken = http.post(
            f"/offers/{offer_link(box, 'plain@example.org')}", headers={"Origin": "http://testserver"}
        )
        late = http.post(
            f"/offers/{offer_link(box, 'member@example.org')}", headers={"Origin": "http://testserver"}
        )
    clinic.run()

    assert page.status_code == 200
    assert "Book this time" in page.text
    assert "2:30 PM" in page.text
    assert taken.status_code == 200
    assert "It is yours" in taken.text
    assert late.status_code == 409
    assert "someone else took this time" in late.text
    assert booked_at(clinic, plain.id) == [VISIT]
    assert booked_at(clinic, member.id) == []
    assert [m["Subject"] for m in box.to("member@example.org")][-1].startswith("That Service")
    assert any(m["Subject"].startswith("Booked:") for m in box.to("plain@example.org"))
    with unit_of_work(clinic.engine, write=False) as session:
        entries = scheduling.list_waitlist(
            session, actor=clinic.owner, location_id=clinic.location_id, service_date=FRIDAY, status="booked"
        )
    assert [e.client_id for e in entries] == [plain.id]


def offer_mails(box: Mailbox, address: str) -> list[EmailMessage]:
    return [m for m in box.to(address) if "opening" in m["Subject"]]


def booked_with_one_waiting(
    clinic: Clinic, name: str, window: tuple[str, str]
) -> tuple[uuid.UUID, ClientRead]:
    """A booking at VISIT (its client <name>@example.org) and a client waiting for the day
    (waiting-<name>@example.org), planned, with no offer yet: (the appointment's id, the waiting client)."""
    booked = clinic.client(email=f"{name}@example.org")
    appointment = clinic.book(booked.id, VISIT)
    waiting = clinic.client(email=f"waiting-{name}@example.org")
    wait(clinic, waiting.id, window)
    clinic.run()
    assert offers(clinic) == []
    return appointment.id, waiting


def test_the_rest_of_a_no_shows_time_is_offered(clinic: Clinic, mailbox: tuple[Mailbox, str]) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    appointment_id, waiting = booked_with_one_waiting(clinic, "missing", ("14:00", "17:00"))
    clinic.at(VISIT + timedelta(minutes=10))
    with unit_of_work(clinic.engine) as session:
        scheduling.mark_no_show(session, actor=clinic.owner, appointment_id=appointment_id)

    clinic.run()

    (offer,) = offers(clinic)
    assert (offer.client_id, offer.state, offer.provider_id) == (waiting.id, "open", clinic.provider_id)
    assert offer.starts_at == VISIT + timedelta(minutes=15)  # the first start after the no-show was marked
    assert len(offer_mails(box, "waiting-missing@example.org")) == 1
    assert offer_mails(box, "missing@example.org") == []


def test_the_time_a_rescheduled_booking_left_is_offered(clinic: Clinic, mailbox: tuple[Mailbox, str]) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    appointment_id, waiting = booked_with_one_waiting(clinic, "moving", ("14:00", "16:00"))
    with unit_of_work(clinic.engine) as session:
        moved = scheduling.reschedule_appointment(
            session,
            actor=clinic.owner,
            appointment_id=appointment_id,
            data=RescheduleRequest(starts_at=VISIT + timedelta(days=3)),
        )

    clinic.run()

    assert [(o.client_id, o.state, o.starts_at) for o in offers(clinic)] == [(waiting.id, "open", VISIT)]
    assert len(offer_mails(box, "waiting-moving@example.org")) == 1
    assert booked_at(clinic, moved.client_id) == [VISIT + timedelta(days=3)]


def test_the_time_an_applied_proposal_moved_a_booking_from_is_offered(
    clinic: Clinic, mailbox: tuple[Mailbox, str]
) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    # given a provider who works 14:30-15:30 on the day, booked for it, and then away until 14:45: the
    # booking cannot stay, and only the clinic's other provider can take it
    with unit_of_work(clinic.engine) as session:
        short = make_provider(
            session, actor=clinic.owner, location_id=clinic.location_id, shift=("14:30", "15:30")
        )
        make_room(session, actor=clinic.owner, location_id=clinic.location_id)
        quick = make_service(session, actor=clinic.owner, duration=30)
    moved = clinic.client(email="moved@example.org")
    appointment = clinic.book(moved.id, VISIT, provider_id=short.id)
    with unit_of_work(clinic.engine) as session:
        resources.add_time_off(
            session,
            actor=clinic.owner,
            provider_id=short.id,
            data=PeriodCreate(starts_at=VISIT, ends_at=VISIT + timedelta(minutes=15)),
        )
    clinic.run()
    proposal = scheduling.optimize_day(
        clinic.engine,
        actor=clinic.owner,
        location_id=clinic.location_id,
        service_date=FRIDAY,
        time_limit_seconds=2,
        max_moves=1,
    )
    assert [(i.record_id, i.status, i.provider_id) for i in proposal.items] == [
        (appointment.id, "moved", clinic.provider_id)
    ]
    # and a client who, since, waits for a short visit with that provider
    waiting = clinic.client(email="after-a-proposal@example.org")
    wait(clinic, waiting.id, ("14:45", "15:30"), service_id=quick.id, preferred_provider_id=short.id)
    clinic.run()
    assert offers(clinic) == []

    # when the proposal is applied
    with unit_of_work(clinic.engine) as session:
        scheduling.apply_proposal(session, actor=clinic.owner, proposal_id=proposal.id)
    clinic.run()

    # then the time it left is offered to them
    assert [(o.client_id, o.state, o.starts_at, o.provider_id) for o in offers(clinic)] == [
        (waiting.id, "open", VISIT + timedelta(minutes=15), short.id)
    ]
    assert len(offer_mails(box, "after-a-proposal@example.org")) == 1


def test_a_lapsed_offer_passes_the_time_on(clinic: Clinic, mailbox: tuple[Mailbox, str]) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    clinic.set_policy(open_offers_per_slot=1)
    leaving = clinic.client(email="leaving2@example.org")
    appointment = clinic.book(leaving.id, VISIT)
    first = clinic.client(email="first@example.org")
    second = clinic.client(email="second@example.org")
    wait(clinic, first.id, ("14:00", "17:00"), priority="member")
    wait(clinic, second.id, ("14:00", "17:00"))
    cancel(clinic, appointment.id)
    clinic.run()
    link = offer_link(box, "first@example.org")
    assert box.to("second@example.org") == []

    clinic.at(MORNING + timedelta(minutes=20))
    clinic.run()
    with unit_of_work(clinic.engine) as session:
        lapsed = engagement.accept_offer(session, token=link)

    states = {o.client_id: o.state for o in offers(clinic)}
    assert states == {first.id: "expired", second.id: "open"}
    assert lapsed.outcome == "expired"
    assert booked_at(clinic, first.id) == []
    assert len([m for m in box.to("second@example.org") if "opening" in m["Subject"]]) == 1


def test_no_offer_is_made_in_quiet_hours_until_they_end(clinic: Clinic, mailbox: tuple[Mailbox, str]) -> None:
    box, _ = mailbox
    clinic.at(MORNING)
    leaving = clinic.client(email="leaving3@example.org")
    appointment = clinic.book(leaving.id, VISIT)
    waiting = clinic.client(email="sleepy@example.org")
    wait(clinic, waiting.id, ("14:00", "17:00"))
    clinic.at(datetime(2027, 1, 14, 3, 0, tzinfo=UTC))  # Wednesday 22:00 in New York
    cancel(clinic, appointment.id)
    clinic.run()
    assert offers(clinic) == []
    assert box.to("sleepy@example.org") == []
    clinic.at(datetime(2027, 1, 14, 13, 0, tzinfo=UTC))  # Thursday 08:00
    clinic.run()

    assert [o.state for o in offers(clinic)] == ["open"]
    assert len(box.to("sleepy@example.org")) == 1


def test_a_client_gets_at_most_the_daily_number_of_offers(clinic: Clinic) -> None:
    clinic.at(MORNING)
    clinic.set_policy(offers_per_client_per_day=2, offer_expiry_minutes=5)
    eager = clinic.client(email="eager@example.org")
    wait(clinic, eager.id, ("09:00", "17:00"))
    for hour in range(3):
        other = clinic.client()
        appointment = clinic.book(other.id, VISIT - timedelta(hours=4 - hour))
        cancel(clinic, appointment.id)
        clinic.run()
        clinic.at(clinic.clock.now() + timedelta(minutes=6))  # the last offer lapsed unanswered
        clinic.run()

    assert len([o for o in offers(clinic) if o.client_id == eager.id]) == 2


@pytest.mark.parametrize("same_offer", [True, False], ids=["one offer", "two offers of one time"])
def test_of_twenty_concurrent_acceptances_exactly_one_books(clinic: Clinic, same_offer: bool) -> None:
    clinic.at(MORNING)
    leaving = clinic.client()
    appointment = clinic.book(leaving.id, VISIT)
    first, second = clinic.client(), clinic.client()
    wait(clinic, first.id, ("14:00", "17:00"))
    wait(clinic, second.id, ("14:00", "17:00"))
    cancel(clinic, appointment.id)
    clinic.run()
    made = offers(clinic)
    assert len(made) == 2
    with unit_of_work(clinic.engine, write=False) as session:
        tokens = [link_token(session, clinic.owner.organization_id, "offer", o.id) for o in made]
    chosen = [tokens[0]] * 20 if same_offer else [tokens[i % 2] for i in range(20)]
    outcomes: list[str] = []
    barrier = threading.Barrier(20)
    lock = threading.Lock()

    def accept(token: str) -> None:
        barrier.wait()
        # A new thread starts on the system clock: it tells time by the test's, as the offers did.
        with clock.using(clinic.clock), unit_of_work(clinic.engine) as session:
            result = engagement.accept_offer(session, token=token)
        with lock:
            outcomes.append(result.outcome)

    threads = [threading.Thread(target=accept, args=(token,)) for token in chosen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert outcomes.count("booked") == 1
    assert set(outcomes) <= {"booked", "already_booked", "gone"}
    with unit_of_work(clinic.engine, write=False) as session:
        live = session.scalar(
            select(func.count())
            .select_from(Appointment)
            .where(
                Appointment.organization_id == clinic.owner.organization_id,
                Appointment.starts_at == VISIT,
                Appointment.status == "booked",
            )
        )
        states = sorted(
            session.scalars(
                select(WaitlistOffer.state).where(
                    WaitlistOffer.organization_id == clinic.owner.organization_id
                )
            )
        )
    assert live == 1
    assert states == ["accepted", "gone"]


def test_a_link_that_is_not_genuine_books_nothing(clinic: Clinic) -> None:
    clinic.at(MORNING)
    with TestClient(create_app(clinic.engine, clock=clinic.clock)) as http:
        forged = http.post(f"/offers/{uuid.uuid4().hex}.{'0' * 32}", headers={"Origin": "http://testserver"})
        malformed = http.get("/offers/not-a-token")
    assert forged.status_code == 404
    assert malformed.status_code in (404, 422)


def test_the_rank_weighs_its_parts_each_held_to_zero_to_one() -> None:
    parts = ("fit", "margin", "response", "provider", "member", "lead", "waiting")
    assert sorted(WEIGHTS) == sorted(parts)
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)
    assert rank_score(**dict.fromkeys(parts, 1.0)) == 1.0
    assert rank_score(**dict.fromkeys(parts, 0.0)) == 0.0
    nothing = dict.fromkeys(parts, 0.0)
    assert rank_score(**{**nothing, "fit": 2.0, "margin": -1.0}) == pytest.approx(WEIGHTS["fit"])
    for part in parts:
        assert rank_score(**{**nothing, part: 1.0}) == pytest.approx(WEIGHTS[part])
        assert WEIGHTS[part] > 0


def offered_and(clinic: Clinic, client_id: uuid.UUID, starts_at: datetime, *, taken: bool) -> None:
    """Another client's booking at `starts_at` (New York) is cancelled and its time offered to
    `client_id`, waiting for that day (the only one waiting), who takes it or lets the offer lapse."""
    appointment = clinic.book(clinic.client().id, starts_at)
    day = (starts_at - timedelta(hours=5)).date()
    wait(clinic, client_id, ("09:00", "17:00"), service_date=day)
    cancel(clinic, appointment.id)
    clinic.run()
    (offer,) = [o for o in offers(clinic) if o.state == "open"]
    assert (offer.client_id, offer.starts_at) == (client_id, starts_at)
    if taken:
        with unit_of_work(clinic.engine) as session:
            token = link_token(session, clinic.owner.organization_id, "offer", offer.id)
            assert engagement.accept_offer(session, token=token).outcome == "booked"
    else:
        clinic.at(clinic.clock.now() + timedelta(minutes=20))
        clinic.run()
        assert [o.state for o in offers(clinic) if o.id == offer.id] == ["expired"]


def test_the_response_likelihood_learns_from_offers_taken_and_lapsed(clinic: Clinic) -> None:
    clinic.at(MORNING)
    client = clinic.client()

    def likelihood() -> float:
        with unit_of_work(clinic.engine, write=False) as session:
            return response_likelihood(session, clinic.owner.organization_id, client.id)

    assert likelihood() == 0.5  # never offered anything
    offered_and(clinic, client.id, VISIT, taken=False)
    assert likelihood() == pytest.approx(1 / 3)  # one lapsed: (0 + 1) / (1 + 2)
    offered_and(clinic, client.id, VISIT + timedelta(days=1), taken=True)
    assert likelihood() == pytest.approx(2 / 4)
    offered_and(clinic, client.id, VISIT + timedelta(days=2), taken=True)
    assert likelihood() == pytest.approx(3 / 5)


def test_naming_the_freed_provider_ranks_above_naming_none(clinic: Clinic) -> None:
    clinic.at(MORNING)
    appointment = clinic.book(clinic.client().id, VISIT)
    loyal, anyone = clinic.client(), clinic.client()
    wait(clinic, loyal.id, ("14:00", "17:00"), preferred_provider_id=clinic.provider_id)
    wait(clinic, anyone.id, ("14:00", "17:00"))
    cancel(clinic, appointment.id)

    clinic.run()

    score = {o.client_id: o.rank_score for o in offers(clinic)}
    assert score[loyal.id] - score[anyone.id] == pytest.approx(WEIGHTS["provider"])


def test_a_client_who_took_offers_at_short_notice_ranks_higher_for_a_time_soon(clinic: Clinic) -> None:
    clinic.at(MORNING)  # Tuesday 10:00 in New York
    sudden, planner = clinic.client(), clinic.client()
    offered_and(clinic, sudden.id, MORNING + timedelta(hours=2), taken=True)  # two hours' notice
    offered_and(clinic, planner.id, VISIT, taken=True)  # three days' notice
    appointment = clinic.book(clinic.client().id, MORNING + timedelta(hours=5))
    for client in (sudden, planner):
        wait(clinic, client.id, ("09:00", "17:00"), service_date=date(2027, 1, 12))

    cancel(clinic, appointment.id)  # a time five hours ahead
    clinic.run()

    with unit_of_work(clinic.engine, write=False) as session:
        leads = [
            short_notice_likelihood(session, clinic.owner.organization_id, c.id, timedelta(hours=5))
            for c in (sudden, planner)
        ]
    score = {o.client_id: o.rank_score for o in offers(clinic) if o.state == "open"}
    assert leads == [pytest.approx(2 / 3), pytest.approx(1 / 3)]
    # scores are kept to six decimals
    assert score[sudden.id] - score[planner.id] == pytest.approx(WEIGHTS["lead"] / 3, abs=1e-5)
