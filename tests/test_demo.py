"""The demo clinic: a believable med spa, booked without a single double booking."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from medspa.demo.seed import seed_demo
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.memberships import service as memberships
from medspa.retention.models import ClientRetentionScore, MembershipLapseScore
from medspa.retention.noshow import NoShowModel
from medspa.retention.scoring import refresh_scores
from medspa.retention.serving import ModelCache, registry_for
from medspa.scheduling import scores as scores_module
from medspa.scheduling.models import Appointment, AppointmentTransition
from medspa.security.actors import system_actor
from medspa.worker import refit_every_organization
from tests.test_concurrency import double_bookings

TODAY = date(2026, 11, 30)
# Any time of day: the seed must not depend on it (it once failed from about 20:25 UTC on).
SEEDED_AT = datetime(2026, 11, 30, 20, 40, tzinfo=UTC)


def test_the_demo_clinic_has_staff_catalogue_clients_history_future_and_scores(
    engine: Engine, tmp_path: Path
) -> None:
    summary = seed_demo(
        engine,
        now=SEEDED_AT,
        client_count=50,  # few clients, so each has history enough for the models to learn from
        past_days=28,
        future_days=7,
        slug=f"demo-{uuid.uuid4().hex[:8]}",
        model_dir=tmp_path,
    )
    actor = system_actor(summary.organization_id)
    with unit_of_work(engine, write=False) as session:
        rows = session.execute(
            select(Appointment.status, Appointment.starts_at, Appointment.client_id).where(
                Appointment.organization_id == actor.organization_id
            )
        ).all()
        transitions = session.scalar(
            select(func.count())
            .select_from(AppointmentTransition)
            .where(AppointmentTransition.organization_id == actor.organization_id)
        )
    statuses = Counter(status for status, _, _ in rows)
    with_appointments = len({client for _, _, client in rows})
    assert summary.clients == 50
    assert summary.past_appointments + summary.future_appointments == len(rows)
    assert summary.past_appointments > 150
    assert summary.future_appointments > 60
    assert {"completed", "cancelled", "no_show", "booked"} <= set(statuses)
    assert 0.03 < statuses["no_show"] / summary.past_appointments < 0.15
    assert all(s in {"booked", "confirmed"} for s, starts, _ in rows if starts.date() > TODAY)
    assert transitions is not None
    assert transitions >= len(rows)
    assert double_bookings(engine, actor) == 0
    # the models are trained on the seeded history, active, and every upcoming booking and every client
    # with an appointment is scored
    registry = registry_for(tmp_path, summary.organization_id)
    assert {kind: registry.active_version(kind) for kind in ("noshow", "returns")} == summary.models
    with unit_of_work(engine, write=False) as session:
        upcoming = session.execute(
            select(Appointment.no_show_probability, Appointment.no_show_model_version).where(
                Appointment.organization_id == actor.organization_id,
                Appointment.status.in_(("booked", "confirmed")),
            )
        ).all()
        scores = list(
            session.scalars(
                select(ClientRetentionScore).where(
                    ClientRetentionScore.organization_id == actor.organization_id
                )
            )
        )
    assert len(upcoming) == summary.future_appointments == summary.scored_appointments
    assert all(0 < p < 1 and v == summary.models["noshow"] for p, v in upcoming)
    assert len(scores) == summary.scored_clients == with_appointments > 40
    assert {s.model_version for s in scores} == {summary.models["returns"]}
    visited = [s for s in scores if s.visits > 0]
    assert visited
    assert all(s.lapse_risk is not None and 0 < s.lapse_risk < 1 for s in visited)
    # a quarter or so of the clients hold memberships, some ended, at most one active each; too few for a
    # churn model, which is refused, so no member is served a membership lapse risk
    with unit_of_work(engine, write=False) as session:
        book = memberships.memberships_started_by(session, actor=actor, on=TODAY)
        lapse = session.scalars(
            select(MembershipLapseScore).where(MembershipLapseScore.organization_id == actor.organization_id)
        ).all()
    active = [m.client_id for m in book if m.ended_on is None]
    assert len(book) == summary.memberships
    assert 5 <= summary.memberships <= 25
    assert 0 < summary.memberships_ended == len(book) - len(active)
    assert len(set(active)) == len(active)
    assert {m.plan for m in book} <= {"Glow", "Glow Plus", "Glow Premium"}
    assert all(TODAY - timedelta(days=730) <= m.started_on <= TODAY - timedelta(days=30) for m in book)
    assert "churn" not in summary.models
    assert lapse == []
    # scoring a few bookings reads only what their features read, and gives what the whole history gives
    with unit_of_work(engine, write=False) as session:
        before = dict(
            session.execute(
                select(Appointment.id, Appointment.no_show_probability).where(
                    Appointment.organization_id == actor.organization_id,
                    Appointment.status.in_(("booked", "confirmed")),
                )
            ).all()
        )
    with unit_of_work(engine, write=False) as session:
        # the three upcoming bookings that start last: what their features read is the recent past
        some = list(
            session.scalars(
                select(Appointment.id)
                .where(Appointment.id.in_(before))
                .order_by(Appointment.starts_at.desc(), Appointment.id)
                .limit(3)
            )
        )
    with unit_of_work(engine, write=False) as session:
        (client,) = session.scalars(select(Appointment.client_id).where(Appointment.id == some[0])).all()
        nearby = scores_module.scoring_neighbourhood(
            session, actor=actor, appointment_ids=some, client_ids=[client]
        )
    assert nearby is not None
    assert len(nearby) < len(rows)
    report = refresh_scores(
        engine,
        organization_id=actor.organization_id,
        cache=ModelCache(tmp_path),
        appointment_ids=some,
        client_ids=[client],
    )
    with unit_of_work(engine, write=False) as session:
        after = dict(
            session.execute(
                select(Appointment.id, Appointment.no_show_probability).where(Appointment.id.in_(before))
            ).all()
        )
    assert report.appointments_scored >= 3
    assert after == pytest.approx(before, abs=1e-12)


def test_the_nightly_job_refits_the_demo_clinics_no_show_model_and_keeps_its_map(
    engine: Engine, tmp_path: Path, test_clock: ManualClock
) -> None:
    # given the demo clinic seeded on 2026-11-30 with its models trained and active
    test_clock.set(SEEDED_AT)
    summary = seed_demo(
        engine,
        now=SEEDED_AT,
        client_count=50,
        past_days=28,
        future_days=7,
        slug=f"demo-{uuid.uuid4().hex[:8]}",
        model_dir=tmp_path,
    )
    cache = ModelCache(tmp_path)
    registry = registry_for(tmp_path, summary.organization_id)
    trained = registry.active_version("noshow")
    # when the nightly job runs the same day, nothing is refitted: the model saw every day before today
    assert refit_every_organization(engine, cache) == {summary.organization_id: None}
    assert registry.active_version("noshow") == trained
    # and the next night it refits the booster on every outcome before 2026-12-01 and activates it
    test_clock.set(SEEDED_AT + timedelta(days=1))
    versions = refit_every_organization(engine, cache)
    refitted = registry.active_version("noshow")
    assert versions == {summary.organization_id: refitted}
    assert refitted != trained
    before, after = (NoShowModel.from_payload(registry.load("noshow", v)) for v in (trained, refitted))
    assert after.training_window["train_end_exclusive"] == "2026-12-01"
    assert (after.platt_slope, after.platt_intercept) == (before.platt_slope, before.platt_intercept)
    # (the seeded days after the training end hold no outcome yet, so it learns from the same rows)
    assert int(after.training_window["refit_rows"]) >= before.metrics["training"]["rows"]
    assert after.metrics["refit_of"] == trained
    # and the bookings to come are scored with the refitted version
    with unit_of_work(engine, write=False) as session:
        scored_with = set(
            session.scalars(
                select(Appointment.no_show_model_version).where(
                    Appointment.organization_id == summary.organization_id,
                    Appointment.starts_at > SEEDED_AT + timedelta(days=1),
                )
            )
        )
    assert scored_with == {refitted}
