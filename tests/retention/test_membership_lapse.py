"""Membership lapse risk: the churn model trained on a clinic's own memberships, kept as numbers that
predict what the fitted estimator predicts, served to each active member conditional on their tenure,
and refused (nothing served) for a book too small."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, select

from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.memberships import service as memberships
from medspa.memberships.schemas import EndReason, MembershipEnd, MembershipStart
from medspa.retention import service as retention
from medspa.retention.churn import ChurnModel, _as_numbers, membership_frame, train_churn
from medspa.retention.models import MembershipLapseScore
from medspa.retention.scoring import refresh_scores, train_models
from medspa.retention.serving import ModelCache
from medspa.retention.survival import fit_survival
from medspa.security.actors import Actor
from tests.factories import make_client

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
TODAY = NOW.date()
PLANS = {"Basic": (9_900, 3.0), "Plus": (14_900, 1.0), "Premium": (24_900, 0.3)}


def _book(engine: Engine, owner: Actor, members: int, *, seed: int = 5) -> dict[uuid.UUID, str]:
    """`members` clients with a membership each: started 1-24 months ago, lasting an exponential time
    whose monthly hazard is 0.05 times the plan's factor. Returns each client's plan."""
    rng = random.Random(seed)
    plans: dict[uuid.UUID, str] = {}
    with unit_of_work(engine) as session:
        for number in range(members):
            client = make_client(session, actor=owner)
            plan = list(PLANS)[number % 3]
            price, factor = PLANS[plan]
            started_on = TODAY - timedelta(days=rng.randint(30, 730))
            started = memberships.start_membership(
                session,
                actor=owner,
                client_id=client.id,
                data=MembershipStart(plan=plan, monthly_price_cents=price, started_on=started_on),
            )
            ends_on = started_on + timedelta(days=int(rng.expovariate(0.05 * factor) * 30.4))
            if ends_on <= TODAY:
                memberships.end_membership(
                    session,
                    actor=owner,
                    membership_id=started.id,
                    data=MembershipEnd(ended_on=ends_on, reason=EndReason.PRICE),
                )
            plans[client.id] = plan
    return plans


def _stored(engine: Engine, owner: Actor) -> list[MembershipLapseScore]:
    with unit_of_work(engine, write=False) as session:
        return list(
            session.scalars(
                select(MembershipLapseScore)
                .where(MembershipLapseScore.organization_id == owner.organization_id)
                .order_by(MembershipLapseScore.client_id)
            )
        )


def test_a_clinics_churn_model_scores_every_active_member_and_tells_them_apart(
    engine: Engine, owner: Actor, test_clock: ManualClock, tmp_path: Path
) -> None:
    # given a clinic with 90 memberships on three plans, the cheapest leaving ten times as fast
    test_clock.set(NOW)
    plans = _book(engine, owner, 90)
    cache = ModelCache(tmp_path)
    # when its churn model is trained, activated and every score refreshed
    versions = train_models(
        engine, organization_id=owner.organization_id, cache=cache, kinds=["churn"], activate=True
    )
    report = refresh_scores(engine, organization_id=owner.organization_id, cache=cache, everything=True)
    # then every active member (and no one else) has a risk from that version, trained on all 90
    with unit_of_work(engine, write=False) as session:
        active = {
            m.client_id: m
            for m in memberships.memberships_started_by(session, actor=owner, on=TODAY)
            if m.ended_on is None
        }
        served = retention.membership_lapse(session, actor=owner, client_id=next(iter(active)))
    stored = _stored(engine, owner)
    assert report.churn_version == versions["churn"]
    assert report.members_scored == len(active) == len(stored)
    assert {s.client_id for s in stored} == set(active)
    assert all(s.model_version == versions["churn"] and s.memberships == 90 for s in stored)
    assert served is not None
    assert served.horizon_months == 3
    # and the risks differ between members, the cheap plan's above the premium one's on average
    risks = {s.client_id: s.lapse_risk for s in stored if s.lapse_risk is not None}
    assert len(risks) >= len(stored) // 2
    assert all(0.0 < r < 1.0 for r in risks.values())
    assert len({round(r, 6) for r in risks.values()}) > 3
    by_plan = {p: [r for c, r in risks.items() if plans[c] == p] for p in PLANS}
    assert np.mean(by_plan["Basic"]) > np.mean(by_plan["Premium"])
    # a member the book cannot speak for gets no figure, with the reason
    assert all(s.reason is not None for s in stored if s.lapse_risk is None)
    assert all(s.reason is None for s in stored if s.lapse_risk is not None)


def test_too_few_memberships_are_refused_with_the_reason_and_nothing_is_served(
    engine: Engine, owner: Actor, test_clock: ManualClock, tmp_path: Path
) -> None:
    test_clock.set(NOW)
    _book(engine, owner, 20)
    cache = ModelCache(tmp_path)
    with pytest.raises(ValueError, match=r"20 memberships and \d+ ended; the churn model needs 30"):
        train_models(
            engine, organization_id=owner.organization_id, cache=cache, kinds=["churn"], activate=True
        )
    report = refresh_scores(engine, organization_id=owner.organization_id, cache=cache, everything=True)
    assert (report.members_scored, report.churn_version) == (0, None)
    assert _stored(engine, owner) == []
    with unit_of_work(engine, write=False) as session:
        why = retention.why_no_membership_lapse(session, actor=owner)
    assert why.startswith("this clinic has 20 memberships, ")
    assert why.endswith("a churn model needs at least 30, 10 of them ended")


def _frame(members: int = 120, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(list(PLANS), size=members)
    factor = np.array([PLANS[p][1] for p in plan])
    lasts = rng.exponential(1 / (0.05 * factor))
    observed = rng.uniform(1, 24, size=members)
    return pd.DataFrame(
        {
            "client_id": [str(i) for i in range(members)],
            "tenure": np.minimum(lasts, observed),
            "event": (lasts <= observed).astype(int),
            "x_plan": plan,
            "x_monthly_price_cents": [float(PLANS[p][0]) for p in plan],
        }
    )


@pytest.mark.parametrize("candidate", ["cox", "boosted"])
def test_the_stored_numbers_predict_what_the_fitted_estimator_predicts(candidate: str) -> None:
    # given a candidate fitted on a book, and the same model kept as numbers and read back
    frame = _frame()
    columns = ["x_plan", "x_monthly_price_cents"]
    fitted = fit_survival(candidate, frame, columns)
    model = ChurnModel(
        name=candidate, design=fitted.design, max_tenure=24.0, **_as_numbers(candidate, fitted)
    )
    served = ChurnModel.from_payload(model.to_payload())
    # then its risk and survival curves are the estimator's
    assert served.risk(frame) == pytest.approx(fitted.risk(frame), abs=1e-9)
    times = (1.0, 3.0, 6.0, 12.0)
    expected = fitted.survival(frame, times)
    for column, t in enumerate(times):
        survival = np.exp(-served.cumulative_hazard(frame, np.full(len(frame), t)))
        assert survival == pytest.approx(expected[:, column], abs=1e-9)
    # and the lapse risk is conditional on the tenure so far: 1 - S(t + 3) / S(t)
    at = frame.assign(tenure=5.0)
    s5, s8 = (fitted.survival(at, (t,))[:, 0] for t in (5.0, 8.0))
    assert [r for r, _ in served.lapse_risks(at)] == pytest.approx(list(1 - s8 / s5), abs=1e-9)


def test_the_book_is_censored_at_today_and_knows_nothing_after_it() -> None:
    from medspa.memberships.schemas import MembershipRead

    def membership(started_on: date, ended_on: date | None) -> MembershipRead:
        return MembershipRead(
            id=uuid.uuid4(),
            client_id=uuid.uuid4(),
            location_id=None,
            plan="Plus",
            monthly_price_cents=14_900,
            started_on=started_on,
            ended_on=ended_on,
            end_reason=None,
            created_at=NOW,
            ended_at=None,
        )

    book = [
        membership(date(2026, 6, 7), None),  # active: censored at today
        membership(date(2026, 6, 7), date(2026, 9, 7)),  # ended: the event
        membership(
            date(2026, 6, 7), date(2027, 3, 7)
        ),  # its end is ahead (a notice): censored, active no more
        membership(date(2027, 1, 1), None),  # not started yet: left out
    ]
    frame = membership_frame(book, today=TODAY)
    assert frame["event"].tolist() == [0, 1, 0]
    assert frame["is_active"].tolist() == [True, False, False]
    assert (frame["tenure"] * 365.25 / 12).round(6).tolist() == [183.0, 92.0, 183.0]  # in days
    with pytest.raises(ValueError, match="3 memberships and 1 ended"):
        train_churn(frame, today=TODAY)
