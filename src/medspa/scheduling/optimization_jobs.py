"""Optimizing a day as a job: requested in one short write, run by the worker outside any transaction.

`request_optimization` records a queued job (the caller commits, then hands its id to the worker: a Huey
task, `medspa.worker`). `run_optimization_job` then runs it in steps that never hold a transaction
across the solve, so bookings are never blocked by it (on SQLite a writing transaction holds the
database's only write lock):

1. claim the job (queued -> running), one conditional write;
2. read the day (`proposals.read_day`), a read-only transaction;
3. solve it (`proposals.plan_day`), with no database session at all; the best value found so far is
   written to the job about once a second, each a short write of its own;
4. store the proposal and mark the job done, one short write.

A job that cannot be planned (the location is closed that day, more bookings must move than allowed...)
ends `failed` with the reason staff read.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import date

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from medspa.kit import clock
from medspa.kit.crud import get_owned
from medspa.kit.db import unit_of_work
from medspa.kit.errors import ConflictError, MedspaError, ValidationFailedError
from medspa.kit.outbox import record_event
from medspa.kit.tz import local_day_bounds
from medspa.resources import service as resources
from medspa.scheduling.models import OptimizationJob
from medspa.scheduling.proposals import check_limits, plan_day, read_day, store_proposal
from medspa.scheduling.schemas import OptimizationJobRead, OptimizationJobStatus, ProposalRead
from medspa.security.actors import Actor, require, system_actor

logger = logging.getLogger(__name__)

# How often a running job writes its progress (seconds).
PROGRESS_EVERY_SECONDS = 1.0
# The error text a job keeps at most (the column's size).
MAX_ERROR_LENGTH = 1000


def request_optimization(
    session: Session,
    *,
    actor: Actor,
    location_id: uuid.UUID,
    service_date: date,
    time_limit_seconds: float = 10.0,
    max_moves: int | None = None,
) -> OptimizationJobRead:
    """Record a queued job to optimize the location's day (see `proposals` for what the optimizer does
    with `max_moves`). The worker runs it once this transaction commits and the caller hands it the id.
    ValidationFailedError for a time limit outside (0, 120] s, a negative move limit or a date at the
    end of the calendar; NotFoundError for an unknown location. Emits `optimization.requested`."""
    require(actor, "optimizer", "run")
    check_limits(time_limit_seconds, max_moves)
    location = resources.get_location(session, actor=actor, location_id=location_id)
    try:
        local_day_bounds(service_date, location.time_zone)
    except (OverflowError, ValueError):
        raise ValidationFailedError("date", f"{service_date} is out of range") from None
    job = OptimizationJob(
        organization_id=actor.organization_id,
        location_id=location.id,
        service_date=service_date,
        time_limit_seconds=time_limit_seconds,
        max_moves=max_moves,
        status=OptimizationJobStatus.QUEUED.value,
        requested_by=actor.label,
        created_at=clock.now(),
        improvements=0,
    )
    session.add(job)
    session.flush()
    read = _job_read(job)
    record_event(
        session,
        actor,
        "optimization.requested",
        job.id,
        {"id": str(job.id), "location_id": str(location.id), "service_date": service_date.isoformat()},
    )
    return read


def get_optimization_job(session: Session, *, actor: Actor, job_id: uuid.UUID) -> OptimizationJobRead:
    require(actor, "optimizer", "read")
    job = get_owned(session, OptimizationJob, actor.organization_id, job_id, "optimization job")
    actor.require_location(job.location_id, "optimization job", job_id)
    return _job_read(job)


def _job_read(job: OptimizationJob) -> OptimizationJobRead:
    elapsed = None
    if job.started_at is not None:
        elapsed = round(((job.finished_at or clock.now()) - job.started_at).total_seconds(), 1)
    return OptimizationJobRead(
        id=job.id,
        location_id=job.location_id,
        service_date=job.service_date,
        status=OptimizationJobStatus(job.status),
        time_limit_seconds=job.time_limit_seconds,
        max_moves=job.max_moves,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        elapsed_seconds=elapsed,
        best_value_cents=job.best_value_cents,
        improvements=job.improvements,
        proposal_id=job.proposal_id,
        error=job.error,
        status_url=f"/api/v1/optimization-jobs/{job.id}",
    )


def run_optimization_job(
    engine: Engine, job_id: uuid.UUID, *, on_progress: Callable[[float], None] | None = None
) -> OptimizationJobRead:
    """Run a queued job to its end (see the module docstring) and return it as it ends: done, or failed
    with the reason. A job that is not queued (another worker took it, or it ended) is returned as it
    is. `on_progress` also gets each better value (dollars), for a command line's progress display."""
    claimed = _claim(engine, job_id)
    if claimed is None:
        with unit_of_work(engine, write=False) as session:
            return _job_read(session.get_one(OptimizationJob, job_id))
    actor, requested_by, location_id, service_date, time_limit, max_moves = claimed
    progress = _Progress(engine, job_id, on_progress)
    try:
        with unit_of_work(engine, write=False) as session:
            day = read_day(
                session, actor=actor, location_id=location_id, service_date=service_date, max_moves=max_moves
            )
        progress.start()
        try:
            planned = plan_day(
                day, time_limit_seconds=time_limit, max_moves=max_moves, on_progress=progress.report
            )
        finally:
            progress.stop()
        with unit_of_work(engine) as session:
            proposal = store_proposal(session, actor=actor, planned=planned, created_by=requested_by)
            return _finish(session, job_id, OptimizationJobStatus.DONE, proposal_id=proposal.id)
    except MedspaError as error:
        reason = error.detail
    except Exception:
        logger.exception("optimization job %s failed", job_id)
        reason = "the optimizer stopped on an internal error; try again, and tell support if it persists"
    with unit_of_work(engine) as session:
        return _finish(session, job_id, OptimizationJobStatus.FAILED, error=reason[:MAX_ERROR_LENGTH])


def _claim(engine: Engine, job_id: uuid.UUID) -> tuple[Actor, str, uuid.UUID, date, float, int | None] | None:
    """queued -> running in one conditional write; what the job asks for, or None if it was not queued."""
    with unit_of_work(engine) as session:
        claimed = session.execute(
            update(OptimizationJob)
            .where(OptimizationJob.id == job_id, OptimizationJob.status == OptimizationJobStatus.QUEUED.value)
            .values(status=OptimizationJobStatus.RUNNING.value, started_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return None
        job = session.get_one(OptimizationJob, job_id)
        # The requester's permission was checked when the job was requested; the work is the system's.
        actor = system_actor(job.organization_id, "optimizer")
        return (
            actor,
            job.requested_by,
            job.location_id,
            job.service_date,
            job.time_limit_seconds,
            job.max_moves,
        )


def _finish(
    session: Session,
    job_id: uuid.UUID,
    status: OptimizationJobStatus,
    *,
    proposal_id: uuid.UUID | None = None,
    error: str | None = None,
) -> OptimizationJobRead:
    job = session.get_one(OptimizationJob, job_id)
    job.status = status.value
    job.finished_at = clock.now()
    job.proposal_id = proposal_id
    job.error = error
    session.flush()
    actor = system_actor(job.organization_id, "optimizer")
    payload = {
        "id": str(job.id),
        "status": status.value,
        "proposal_id": str(proposal_id) if proposal_id else None,
    }
    record_event(session, actor, f"optimization.{status.value}", job.id, payload)
    return _job_read(job)


class _Progress:
    """Writes the best value found so far to the job about once a second, from a thread of its own, so
    the solver's callbacks never wait for the database."""

    def __init__(self, engine: Engine, job_id: uuid.UUID, echo: Callable[[float], None] | None) -> None:
        self.engine, self.job_id, self.echo = engine, job_id, echo
        self._lock = threading.Lock()
        self._best: float | None = None
        self._improvements = 0
        self._written = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medspa-optimizer-progress", daemon=True)

    def report(self, value: float) -> None:
        with self._lock:
            self._best = value if self._best is None else max(self._best, value)
            self._improvements += 1
        if self.echo is not None:
            self.echo(value)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        self._write()

    def _run(self) -> None:
        while not self._stopping.wait(PROGRESS_EVERY_SECONDS):
            try:
                self._write()
            except Exception:  # progress is a courtesy: a failed write must not stop the solve
                logger.exception("optimization job %s: progress not written", self.job_id)

    def _write(self) -> None:
        with self._lock:
            best, improvements = self._best, self._improvements
        if best is None or improvements == self._written:
            return
        self._written = improvements
        with unit_of_work(self.engine) as session:
            session.execute(
                update(OptimizationJob)
                .where(OptimizationJob.id == self.job_id, OptimizationJob.status == "running")
                .values(
                    best_value_cents=round(best * 100), improvements=improvements, progress_at=clock.now()
                )
                .execution_options(synchronize_session=False)
            )


def optimize_day(
    engine: Engine,
    *,
    actor: Actor,
    location_id: uuid.UUID,
    service_date: date,
    time_limit_seconds: float = 10.0,
    max_moves: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> ProposalRead:
    """Request a job and run it here and now (the command line, and tests), still solving outside any
    transaction; its proposal. The request's own errors are raised as they are (ValidationFailedError,
    NotFoundError); ConflictError with the job's reason when it failed (the day cannot be planned)."""
    from medspa.scheduling.proposals import get_proposal

    with unit_of_work(engine) as session:
        job = request_optimization(
            session,
            actor=actor,
            location_id=location_id,
            service_date=service_date,
            time_limit_seconds=time_limit_seconds,
            max_moves=max_moves,
        )
    ended = run_optimization_job(engine, job.id, on_progress=on_progress)
    if ended.proposal_id is None:
        raise ConflictError(ended.error or "the optimization did not finish")
    with unit_of_work(engine, write=False) as session:
        return get_proposal(session, actor=actor, proposal_id=ended.proposal_id)
