"""The background worker: scores from the outbox (bookings, visits, cancellations), the weekly refresh,
refused artifacts, tenancy, and the embedded worker of `medspa serve`."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from huey import Huey
from sqlalchemy import Engine, func, select

from medspa.app import create_app
from medspa.config import load_settings
from medspa.kit import clock
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.kit.outbox import OutboxEvent, cursor_position, head_event_id
from medspa.retention import export
from medspa.retention.models import ClientRetentionScore
from medspa.retention.noshow import NoShowModel
from medspa.retention.serving import ModelCache, registry_for
from medspa.scheduling import service as scheduling
from medspa.scheduling.models import Appointment
from medspa.scheduling.schemas import HoldRequest, OptimizationJobRead, RescheduleRequest, Status
from medspa.security.actors import Actor
from medspa.worker import MODEL_CONSUMER, BackgroundWorker, build_huey, register_tasks
from tests.conftest import token_for
from tests.scheduling.test_availability import NOW, Clinic, build
from tests.scheduling.test_booking import request as booking_request
from tests.serving_models import consumer_at_head, install, noshow_payload, returns_payload

TEN = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York


@pytest.fixture(autouse=True)
def frozen_clock(test_clock: ManualClock) -> None:
    test_clock.set(NOW)


def book(engine: Engine, actor: Actor, clinic: Clinic, starts_at: datetime = TEN) -> uuid.UUID:
    with unit_of_work(engine) as session:
        return scheduling.book_appointment(session, actor=actor, data=booking_request(clinic, starts_at)).id


def stored(engine: Engine, appointment_id: uuid.UUID) -> tuple[float | None, str | None, datetime | None]:
    with unit_of_work(engine, write=False) as session:
        appointment = session.get(Appointment, appointment_id)
        assert appointment is not None
        return (
            appointment.no_show_probability,
            appointment.no_show_model_version,
            appointment.no_show_scored_at,
        )


def retention_rows(engine: Engine, actor: Actor) -> list[ClientRetentionScore]:
    with unit_of_work(engine, write=False) as session:
        query = select(ClientRetentionScore).where(
            ClientRetentionScore.organization_id == actor.organization_id
        )
        return list(session.scalars(query))


def event_of(engine: Engine, appointment_id: uuid.UUID) -> int:
    """The id of the appointment's latest outbox event."""
    with unit_of_work(engine, write=False) as session:
        return int(
            session.scalar(select(func.max(OutboxEvent.id)).where(OutboxEvent.aggregate_id == appointment_id))
            or 0
        )


def test_a_booking_is_scored_with_the_active_model_and_its_version(
    engine: Engine, owner: Actor, tmp_path: Path
) -> None:
    # given a clinic whose no-show model is active, and a booking
    cache = ModelCache(tmp_path)
    version = install(tmp_path, owner.organization_id, "noshow", noshow_payload())
    clinic = build(engine, owner)
    consumer = consumer_at_head(engine, cache)
    appointment_id = book(engine, owner, clinic)
    assert stored(engine, appointment_id) == (None, None, None)
    # when the worker drains the outbox
    report = consumer.drain()
    # then the probability the feature module gives on the exported history is stored with the version
    with unit_of_work(engine, write=False) as session:
        history = export.live_history_frame(session, actor=owner)
    model = NoShowModel.from_payload(noshow_payload())
    expected = model.predict(history, (history["appointment_id"] == str(appointment_id)).to_numpy())
    probability, stored_version, scored_at = stored(engine, appointment_id)
    assert probability is not None
    assert probability == pytest.approx(float(expected[0]), abs=1e-12)
    assert 0.0 < probability < 1.0
    assert (stored_version, scored_at) == (version, NOW)
    # (The suite's other workers may write events to the same database meanwhile: the consumer reads
    # theirs too, so count at least ours.)
    assert report.read >= 1
    assert report.handled == report.read
    assert cursor_position(engine, consumer.name) >= event_of(engine, appointment_id)


def test_redelivered_and_repeated_events_store_the_same_result(
    engine: Engine, owner: Actor, tmp_path: Path
) -> None:
    # given a scored booking that was then rescheduled and scored again
    cache = ModelCache(tmp_path)
    install(tmp_path, owner.organization_id, "noshow", noshow_payload())
    install(tmp_path, owner.organization_id, "returns", returns_payload())
    clinic = build(engine, owner)
    first = consumer_at_head(engine, cache)
    appointment_id = book(engine, owner, clinic)
    with unit_of_work(engine) as session:
        scheduling.reschedule_appointment(
            session,
            actor=owner,
            appointment_id=appointment_id,
            data=RescheduleRequest(starts_at=TEN + timedelta(hours=1)),
        )
    first.drain()
    before = stored(engine, appointment_id)
    # when the same events are delivered again (another reader from the same position)
    second = consumer_at_head(engine, cache)
    with unit_of_work(engine) as session:
        from medspa.kit.outbox import OutboxCursor

        cursor = session.get(OutboxCursor, second.name)
        assert cursor is not None
        cursor.last_event_id = cursor_position(engine, second.name) - 2
    second.drain()
    # then the stored result is the same, and nothing was added
    assert stored(engine, appointment_id) == before
    assert before[0] is not None
    assert retention_rows(engine, owner) == []


def test_completing_and_cancelling_refresh_the_clients_retention_score(
    engine: Engine, owner: Actor, tmp_path: Path
) -> None:
    # given a clinic with an active return model and a client with a past and a future booking
    cache = ModelCache(tmp_path)
    version = install(tmp_path, owner.organization_id, "returns", returns_payload())
    clinic = build(engine, owner)
    visit = book(engine, owner, clinic)
    later = book(engine, owner, clinic, TEN + timedelta(days=7))
    consumer = consumer_at_head(engine, cache)
    # when the first visit completes and the worker drains
    for at, step in (
        (TEN - timedelta(minutes=5), scheduling.check_in),
        (TEN, scheduling.start_service),
        (TEN + timedelta(minutes=60), scheduling.complete_appointment),
    ):
        with clock.frozen_at(at), unit_of_work(engine) as session:
            step(session, actor=owner, appointment_id=visit)
    completed_at = TEN + timedelta(hours=2)
    with clock.frozen_at(completed_at):
        consumer.drain()
    # then the client has a score from one visit
    (score,) = retention_rows(engine, owner)
    assert (score.client_id, score.visits, score.last_visit_on) == (clinic.client_id, 1, date(2026, 3, 3))
    assert (score.model_version, score.scored_at, score.horizon_days) == (version, completed_at, 90)
    assert score.probability_return is not None
    assert score.lapse_risk is not None
    assert score.lapse_risk == pytest.approx(1 - score.probability_return)
    assert 0 < score.lapse_risk < 1
    assert score.expected_next_visit_on is not None
    assert score.expected_next_visit_on > date(2026, 3, 3)
    # when the later booking is cancelled a week on, then the score is refreshed as of then (one row)
    cancelled_at = TEN + timedelta(days=3)
    with clock.frozen_at(cancelled_at), unit_of_work(engine) as session:
        scheduling.cancel_appointment(session, actor=owner, appointment_id=later, reason="moving away")
    with clock.frozen_at(cancelled_at):
        consumer.drain()
    (refreshed,) = retention_rows(engine, owner)
    assert (refreshed.id, refreshed.visits, refreshed.scored_at) == (score.id, 1, cancelled_at)
    assert refreshed.probability_return is not None
    assert refreshed.probability_return < score.probability_return  # three more days without a visit


def due(huey: Huey, at: datetime) -> set[str]:
    """The names of the periodic jobs Huey would start at `at` (Huey's clock is naive UTC)."""
    return {task.name for task in huey.read_periodic(at.astimezone(UTC).replace(tzinfo=None))}


def test_the_weekly_job_scores_every_booking_and_client(engine: Engine, owner: Actor, tmp_path: Path) -> None:
    # given bookings made while no model was active (left unscored), then models activated
    cache = ModelCache(tmp_path)
    clinic = build(engine, owner)
    consumer = consumer_at_head(engine, cache)
    appointment_id = book(engine, owner, clinic)
    consumer.drain()
    assert stored(engine, appointment_id) == (None, None, None)
    noshow = install(tmp_path, owner.organization_id, "noshow", noshow_payload())
    returns = install(tmp_path, owner.organization_id, "returns", returns_payload())
    # when Huey runs the weekly job (scheduled on Sundays at 02:00 UTC)
    huey = build_huey(load_settings(), immediate=True)
    tasks = register_tasks(huey, engine, cache)
    assert "refresh_all_scores" in due(huey, datetime(2026, 3, 8, 2, 0, tzinfo=UTC))  # a Sunday
    assert "refresh_all_scores" not in due(huey, datetime(2026, 3, 9, 2, 0, tzinfo=UTC))
    assert tasks.weekly_refresh.call_local() == 1
    # then the booking and its client are scored with the active versions
    assert stored(engine, appointment_id)[1] == noshow
    (score,) = retention_rows(engine, owner)
    assert (score.client_id, score.visits, score.model_version) == (clinic.client_id, 0, returns)
    assert (score.probability_return, score.lapse_risk, score.expected_next_visit_on) == (None, None, None)


def test_expired_holds_are_released_every_minute(engine: Engine, owner: Actor, tmp_path: Path) -> None:
    clinic = build(engine, owner)
    with unit_of_work(engine) as session:
        hold = scheduling.hold_slot(
            session, actor=owner, data=HoldRequest(**booking_request(clinic).model_dump()), hold_minutes=5
        )
    huey = build_huey(load_settings(), immediate=True)
    tasks = register_tasks(huey, engine, ModelCache(tmp_path))
    assert "release_expired_holds" in {t.name for t in huey.read_periodic(NOW.replace(tzinfo=None))}
    with unit_of_work(engine, write=False) as session:
        assert scheduling.get_appointment(session, actor=owner, appointment_id=hold.id).status is Status.HELD
    with clock.frozen_at(NOW + timedelta(minutes=6)):
        assert tasks.release_expired_holds.call_local() >= 1
        with unit_of_work(engine, write=False) as session:
            released = scheduling.get_appointment(session, actor=owner, appointment_id=hold.id)
    assert (released.status, released.cancellation_reason) == (Status.CANCELLED, "hold expired")


def test_a_tampered_artifact_is_refused_and_the_booking_stays_unscored(
    engine: Engine, owner: Actor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given an active no-show artifact whose payload was edited after it was stored
    cache = ModelCache(tmp_path)
    version = install(tmp_path, owner.organization_id, "noshow", noshow_payload())
    path = registry_for(tmp_path, owner.organization_id).root / "noshow" / f"{version}.json"
    document = json.loads(path.read_text())
    document["payload"]["platt"]["intercept"] += 1.0
    path.write_text(json.dumps(document))
    clinic = build(engine, owner)
    consumer = consumer_at_head(engine, cache)
    appointment_id = book(engine, owner, clinic)
    # when the worker drains
    with caplog.at_level(logging.ERROR):
        report = consumer.drain()
    # then the booking stays unscored, the refusal is logged, and the event is not retried forever
    assert stored(engine, appointment_id) == (None, None, None)
    assert "MAC does not match" in caplog.text
    assert report.handled >= 1
    assert cursor_position(engine, consumer.name) >= event_of(engine, appointment_id)


def test_one_clinics_model_never_scores_another_clinics_bookings(
    engine: Engine, owner: Actor, tmp_path: Path
) -> None:
    # given two clinics, only the first with an active model
    from medspa.security import service as security
    from medspa.security.actors import system_actor

    with unit_of_work(engine) as session:
        other_org = security.create_organization(session, slug=f"t-{uuid.uuid4().hex[:12]}", name="Other")
    other = system_actor(other_org.id, "test")
    cache = ModelCache(tmp_path)
    version = install(tmp_path, owner.organization_id, "noshow", noshow_payload())
    ours, theirs = build(engine, owner), build(engine, other)
    consumer = consumer_at_head(engine, cache)
    our_booking, their_booking = book(engine, owner, ours), book(engine, other, theirs)
    # when the worker drains both clinics' events
    consumer.drain()
    # then only the first clinic's booking is scored
    assert stored(engine, our_booking)[1] == version
    assert stored(engine, their_booking) == (None, None, None)
    # and once the other clinic has its own model, its bookings carry its own version
    their_version = install(tmp_path, other.organization_id, "noshow", noshow_payload() | {"metrics": {}})
    book(engine, other, theirs, TEN + timedelta(hours=1))
    consumer.drain()
    assert stored(engine, their_booking)[1] is None  # not re-scored: only new events are read
    with unit_of_work(engine, write=False) as session:
        versions = set(
            session.scalars(
                select(Appointment.no_show_model_version).where(
                    Appointment.organization_id == other.organization_id,
                    Appointment.no_show_model_version.is_not(None),
                )
            )
        )
    assert versions == {their_version} != {version}


def test_build_huey_uses_redis_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huey import RedisHuey, SqliteHuey

    monkeypatch.setenv("MEDSPA_HUEY_PATH", str(tmp_path / "huey.db"))
    monkeypatch.delenv("MEDSPA_REDIS_URL", raising=False)
    embedded = build_huey(load_settings())
    assert isinstance(embedded, SqliteHuey)
    assert (tmp_path / "huey.db").exists()
    monkeypatch.setenv("MEDSPA_REDIS_URL", "redis://127.0.0.1:6399/0")
    assert isinstance(build_huey(load_settings()), RedisHuey)


def test_the_embedded_worker_scores_a_booking_within_seconds(
    engine: Engine, owner: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the app serving with its worker in-process, the clinic's model active
    monkeypatch.setenv("MEDSPA_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("MEDSPA_HUEY_PATH", str(tmp_path / "huey.db"))
    version = install(tmp_path / "models", owner.organization_id, "noshow", noshow_payload())
    clinic = build(engine, owner)
    head = head_event_id(engine)
    with unit_of_work(engine) as session:
        from medspa.kit.outbox import move_cursor

        move_cursor(session, MODEL_CONSUMER, head)
    with TestClient(create_app(engine, with_worker=True, clock=clock.current())) as api:
        api.headers["Authorization"] = f"Bearer {token_for(engine, owner)}"
        # when a booking is made through the API
        started = time.monotonic()
        response = api.post(
            "/api/v1/appointments",
            json={
                "client_id": str(clinic.client_id),
                "service_id": str(clinic.service_id),
                "location_id": str(clinic.location_id),
                "starts_at": TEN.isoformat(),
            },
        )
        assert response.status_code == 201, response.text
        assert response.json()["no_show_probability"] is None  # the booking itself never waits for a model
        # then the API shows its probability and version within a few seconds
        appointment = response.json()
        while time.monotonic() - started < 10:
            appointment = api.get(f"/api/v1/appointments/{appointment['id']}").json()
            if appointment["no_show_probability"] is not None:
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - started
    assert appointment["no_show_model_version"] == version
    assert 0 < appointment["no_show_probability"] < 1
    assert elapsed < 5, f"scored after {elapsed:.1f} s"


def test_the_embedded_worker_runs_an_optimization_job_handed_over_by_the_api(
    engine: Engine, owner: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the app serving with its worker in-process (Huey's queue in a file of its own)
    monkeypatch.setenv("MEDSPA_HUEY_PATH", str(tmp_path / "huey.db"))
    monkeypatch.setenv("MEDSPA_MODEL_DIR", str(tmp_path / "models"))
    clinic = build(engine, owner)
    with TestClient(create_app(engine, with_worker=True, clock=clock.current())) as api:
        api.headers["Authorization"] = f"Bearer {token_for(engine, owner)}"
        # when a day is optimized through the API
        started = api.post(
            f"/api/v1/locations/{clinic.location_id}/optimize",
            params={"date": "2026-03-03", "time_limit_seconds": 1},
        )
        assert started.status_code == 202
        job = started.json()
        deadline = time.monotonic() + 30
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = api.get(job["status_url"]).json()
        # then the worker took it from Huey's queue and stored the proposal
        assert (job["status"], job["error"]) == ("done", None)
        assert api.get(f"/api/v1/proposals/{job['proposal_id']}").status_code == 200


def test_expired_holds_are_released_while_a_long_optimization_runs(
    engine: Engine, owner: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_clock: ManualClock
) -> None:
    from tests.scheduling.test_optimization_jobs import crowded_day

    # given a worker with Huey's consumer (a queue file of its own), a crowded day and a hold
    monkeypatch.setenv("MEDSPA_HUEY_PATH", str(tmp_path / "huey.db"))
    clinic = crowded_day(engine, owner)
    with unit_of_work(engine) as session:
        hold = scheduling.hold_slot(
            session,
            actor=owner,
            data=HoldRequest(**booking_request(clinic, TEN + timedelta(days=1)).model_dump()),
            hold_minutes=5,
        )
        job = scheduling.request_optimization(
            session,
            actor=owner,
            location_id=clinic.location_id,
            service_date=TEN.date(),
            time_limit_seconds=5,
        )
    worker = BackgroundWorker(
        engine, cache=ModelCache(tmp_path), huey=build_huey(load_settings()), periodic=False
    )
    assert worker.tasks is not None
    worker.start()
    try:
        worker.tasks.optimize_day(str(job.id))
        deadline = time.monotonic() + 20
        while _job(engine, owner, job.id).status == "queued" and time.monotonic() < deadline:
            time.sleep(0.05)
        # when the hold expires and the sweep is due while the day is being solved
        test_clock.set(NOW + timedelta(minutes=6))
        worker.tasks.release_expired_holds()
        while _status(engine, owner, hold.id) is Status.HELD and time.monotonic() < deadline:
            time.sleep(0.05)
        released, during = _status(engine, owner, hold.id), _job(engine, owner, job.id).status
    finally:
        worker.stop()
    # then the sweep ran beside the solve, not after it
    assert (released, during) == (Status.CANCELLED, "running")


def _job(engine: Engine, actor: Actor, job_id: uuid.UUID) -> OptimizationJobRead:
    with unit_of_work(engine, write=False) as session:
        return scheduling.get_optimization_job(session, actor=actor, job_id=job_id)


def _status(engine: Engine, actor: Actor, appointment_id: uuid.UUID) -> Status:
    with unit_of_work(engine, write=False) as session:
        return scheduling.get_appointment(session, actor=actor, appointment_id=appointment_id).status


def test_background_worker_stops_cleanly_without_huey(engine: Engine, tmp_path: Path) -> None:
    worker = BackgroundWorker(engine, cache=ModelCache(tmp_path), poll_seconds=0.05)
    worker.start()
    worker.stop()
    with unit_of_work(engine, write=False) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Appointment).where(Appointment.id == uuid.uuid4())
            )
            == 0
        )


def test_the_outbox_is_pruned_daily(engine: Engine, tmp_path: Path) -> None:
    huey = build_huey(load_settings(), immediate=True)
    register_tasks(huey, engine, ModelCache(tmp_path))
    due = {t.name for t in huey.read_periodic(datetime(2026, 3, 3, 3, 30, tzinfo=UTC).replace(tzinfo=None))}
    assert "prune_outbox" in due
    assert "prune_outbox" not in {t.name for t in huey.read_periodic(datetime(2026, 3, 3, 4, 30))}  # noqa: DTZ001


def test_the_nightly_refit_keeps_a_model_whose_history_cannot_refit_it(
    engine: Engine, owner: Actor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given a clinic with an active no-show model but no attended or missed appointment of its own
    cache = ModelCache(tmp_path)
    build(engine, owner)
    noshow = install(tmp_path, owner.organization_id, "noshow", noshow_payload())
    # when Huey runs the nightly job (scheduled at 01:15 UTC)
    huey = build_huey(load_settings(), immediate=True)
    tasks = register_tasks(huey, engine, cache)
    assert "refit_noshow_models" in due(huey, datetime(2026, 3, 4, 1, 15, tzinfo=UTC))
    assert "refit_noshow_models" not in due(huey, datetime(2026, 3, 4, 9, 15, tzinfo=UTC))
    # then nothing is refitted: the active version stays, and no other version is stored
    with caplog.at_level(logging.WARNING, logger="medspa.retention.scoring"):
        assert tasks.nightly_refit.call_local() == 0
    assert f"no-show model {noshow} not refitted: no attended and missed appointments" in caplog.text
    registry = registry_for(tmp_path, owner.organization_id)
    assert registry.active_version("noshow") == noshow
    assert [info.version for info in registry.list("noshow")] == [noshow]


def test_the_audit_chains_heads_are_written_outside_the_database_every_five_minutes(
    engine: Engine, owner: Actor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head_file = tmp_path / "heads.jsonl"
    monkeypatch.setenv("MEDSPA_AUDIT_HEAD_FILE", str(head_file))
    huey = build_huey(load_settings(), immediate=True)
    tasks = register_tasks(huey, engine, ModelCache(tmp_path))
    assert "write_audit_heads" in due(huey, datetime(2026, 3, 3, 4, 35, tzinfo=UTC))
    assert "write_audit_heads" not in due(huey, datetime(2026, 3, 3, 4, 36, tzinfo=UTC))

    tasks.write_audit_heads()

    written = [json.loads(line) for line in head_file.read_text().splitlines()]
    assert {"organization_id": str(owner.organization_id), "seq": 1} in [
        {"organization_id": w["organization_id"], "seq": w["seq"]} for w in written
    ]
