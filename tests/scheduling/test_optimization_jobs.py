"""Optimization as a job: bookings go on while a day is solved (no transaction is open during the solve,
on SQLite nor PostgreSQL), and the job reports its progress and its end."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from medspa.app import create_app
from medspa.kit import clock
from medspa.kit.clock import ManualClock
from medspa.kit.db import unit_of_work
from medspa.scheduling import service as scheduling
from medspa.scheduling.schemas import OptimizationJobRead
from medspa.security.actors import Actor
from tests.conftest import token_for
from tests.factories import make_client, make_provider, make_room
from tests.scheduling.test_availability import NOW, Clinic, build
from tests.scheduling.test_optimization import DAY, waitlist

SOLVE_SECONDS = 4.0


@pytest.fixture(autouse=True)
def frozen_clock(test_clock: ManualClock) -> None:
    test_clock.set(NOW)


def in_thread(target: Callable[..., object], *args: object) -> threading.Thread:
    """A thread that runs `target` telling the time by the clock of the context that made it (the
    worker's way)."""
    told = clock.current()

    def run() -> None:
        with clock.using(told):
            target(*args)

    return threading.Thread(target=run)


def crowded_day(engine: Engine, actor: Actor, clients: int = 120) -> Clinic:
    """Three providers and rooms, and more clients waiting, for windows all over the day, than the day
    holds: the search does not prove its schedule best within seconds, so it uses its whole time."""
    rng = random.Random(5)
    clinic = build(engine, actor, shift=("09:00", "17:00"), duration=30)
    with unit_of_work(engine) as session:
        for _ in range(2):
            make_provider(session, actor=actor, location_id=clinic.location_id, shift=("09:00", "17:00"))
            make_room(session, actor=actor, location_id=clinic.location_id)
    for _ in range(clients):
        start = rng.randrange(9 * 4, 16 * 4) * 15
        end = min(17 * 60, start + rng.choice((45, 60, 90, 120)))
        window = (f"{start // 60:02d}:{start % 60:02d}", f"{end // 60:02d}:{end % 60:02d}")
        waitlist(engine, actor, clinic, *window, rng.choice(("member", "standard", "standard")))
    return clinic


def test_a_booking_completes_promptly_while_a_long_solve_runs(engine: Engine, owner: Actor) -> None:
    # given an API whose worker runs optimization jobs in a thread, and a crowded day
    clinic = crowded_day(engine, owner)
    with unit_of_work(engine) as session:
        booker = make_client(session, actor=owner)
    runs: list[threading.Thread] = []

    def worker(job_id: uuid.UUID) -> None:
        run = in_thread(scheduling.run_optimization_job, engine, job_id)
        runs.append(run)
        run.start()

    with TestClient(create_app(engine, clock=clock.current(), optimization_queue=worker)) as api:
        api.headers["Authorization"] = f"Bearer {token_for(engine, owner)}"
        started = api.post(
            f"/api/v1/locations/{clinic.location_id}/optimize",
            params={"date": DAY.isoformat(), "time_limit_seconds": SOLVE_SECONDS},
        )
        assert started.status_code == 202
        status_url = started.json()["status_url"]
        job = _wait_for(api, status_url, lambda j: j.status == "running")
        time.sleep(1.0)  # well into the search
        # when the front desk books while the day is being solved
        began = time.monotonic()
        booked = api.post(
            "/api/v1/appointments",
            json={
                "client_id": str(booker.id),
                "service_id": str(clinic.service_id),
                "location_id": str(clinic.location_id),
                "starts_at": datetime(2026, 3, 4, 15, 0, tzinfo=UTC).isoformat(),
            },
        )
        waited = time.monotonic() - began
        during = OptimizationJobRead.model_validate(api.get(status_url).json())
        # then the booking is made at once, while the solve goes on, which then ends with a proposal
        assert booked.status_code == 201, booked.text
        assert during.status == "running", "the solve should still be running after the booking"
        assert waited < 2.0, f"a booking waited {waited:.2f} s behind a solve"
        for run in runs:
            run.join(timeout=SOLVE_SECONDS + 30)
        done = OptimizationJobRead.model_validate(api.get(status_url).json())
    assert done.status == "done"
    assert done.proposal_id is not None
    assert done.best_value_cents is not None
    assert done.improvements >= 1
    assert job.time_limit_seconds == SOLVE_SECONDS


def _wait_for(api: TestClient, url: str, ready: object, seconds: float = 30.0) -> OptimizationJobRead:
    """Poll the job until `ready(job)` holds (what the page does every second)."""
    deadline = time.monotonic() + seconds
    while True:
        job = OptimizationJobRead.model_validate(api.get(url).json())
        if ready(job):  # type: ignore[operator]
            return job
        assert job.status in ("queued", "running"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_a_job_reports_running_with_progress_then_done(engine: Engine, owner: Actor) -> None:
    # given a queued job
    clinic = crowded_day(engine, owner)
    with unit_of_work(engine) as session:
        job = scheduling.request_optimization(
            session, actor=owner, location_id=clinic.location_id, service_date=DAY, time_limit_seconds=2
        )
    assert (job.status, job.started_at, job.elapsed_seconds) == ("queued", None, None)
    seen: list[OptimizationJobRead] = []
    run = in_thread(scheduling.run_optimization_job, engine, job.id)
    run.start()
    while run.is_alive():
        with unit_of_work(engine, write=False) as session:
            seen.append(scheduling.get_optimization_job(session, actor=owner, job_id=job.id))
        time.sleep(0.2)
    with unit_of_work(engine, write=False) as session:
        done = scheduling.get_optimization_job(session, actor=owner, job_id=job.id)
    # then it was seen running with the best value so far, and ended done with the proposal
    running = [j for j in seen if j.status == "running"]
    assert running
    assert any(j.best_value_cents is not None for j in running)
    assert done.status == "done"
    assert done.elapsed_seconds is not None  # (0 here: the clock is frozen)
    # and a second run of the same job (a redelivered task) changes nothing
    assert scheduling.run_optimization_job(engine, job.id) == done


def test_a_job_on_a_day_that_cannot_be_planned_fails_with_the_reason(engine: Engine, owner: Actor) -> None:
    clinic = build(engine, owner)
    sunday = DAY + timedelta(days=5)
    with unit_of_work(engine) as session:
        from medspa.resources import service as resources
        from medspa.resources.schemas import ClosureCreate

        resources.add_closure(
            session, actor=owner, location_id=clinic.location_id, data=ClosureCreate(closed_on=sunday)
        )
        job = scheduling.request_optimization(
            session, actor=owner, location_id=clinic.location_id, service_date=sunday, time_limit_seconds=1
        )
    ended = scheduling.run_optimization_job(engine, job.id)
    assert (ended.status, ended.proposal_id) == ("failed", None)
    assert ended.error == "the location is closed on Sunday, 2026-03-08 (a closure)"
