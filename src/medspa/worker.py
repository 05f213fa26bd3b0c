"""Background work: the outbox consumer that keeps model scores fresh, and the scheduled jobs (Huey).

- The outbox watcher polls the outbox every `poll_seconds` (0.5 s) and drains the `models` consumer:
  `appointment.booked` / `appointment.rescheduled` -> that appointment's P(no-show) with the active
  no-show model; `appointment.completed` / `.cancelled` / `.no_show` -> that client's retention score,
  and P(no-show) of their appointments not yet happened (their history changed). Handlers are idempotent
  and the cursor moves only past handled events (`kit.outbox.OutboxConsumer`), so a failure is retried.
- A second watcher drains the `engagement` consumer (appointment events -> messages to clients and freed
  times for the waitlist, `engagement.planner`), sends the messages that are due through the channels
  `MEDSPA_SMTP_URL` / `MEDSPA_SMS_URL` configure (`engagement.dispatch`), and every 15 s advances the
  waitlist offers (lapsed ones pass on) and releases interrupted sends. It has its own thread so that a
  slow mail server never delays a booking's score.
- A third watcher applies the deliveries of connected systems (Zenoti, Mindbody, Standard Webhooks)
  that the webhook receivers stored in the inbox (`integrations.apply`), drains the `webhooks` consumer
  (our events -> deliveries to subscribers) and sends the deliveries that are due
  (`integrations.outbound`).
- A fourth polls the connected systems that have polling settings every `source_poll_seconds` (300 s;
  `integrations.polling`): what their webhooks dropped or never send goes into the same inbox.
- Huey runs the scheduled jobs: every organization's active no-show model refitted nightly (01:15 UTC) on
  the outcomes known by then, keeping its calibration map (`scoring.refit_noshow_model`; what `models
  evaluate noshow` measures); every organization's scores refreshed weekly (Sunday 02:00 UTC), expired
  holds released every minute (`scheduling.service.release_expired_holds`; a booking that needs a hold's
  time releases it sooner), events every consumer has read deleted after `OUTBOX_KEEP_DAYS` (daily, 03:30
  UTC), every audit chain's head appended to the head file outside the database every five minutes
  (`security.audit.write_heads`), lapse outreach daily at 15:00 UTC (`engagement.outreach`), and on demand
  `refresh_organization` and `optimize_day` (an optimization job: the day is read, solved outside any
  transaction, and the proposal stored, `scheduling.optimization_jobs`); two consumer threads, so a long
  solve does not hold back the sweep. Storage: SQLite beside the database (`var/huey.db`) in the embedded
  shape, Redis when `MEDSPA_REDIS_URL` is set.

`medspa worker` runs both until stopped; `medspa serve` runs them in threads of the web process unless
`--no-worker` (or with several web processes), so the embedded shape needs no second process.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

from sqlalchemy import Engine

from medspa.config import Settings
from medspa.kit import clock as clocks
from medspa.kit.clock import Clock
from medspa.kit.outbox import Delivered, OutboxConsumer, head_event_id

if TYPE_CHECKING:
    from huey import Huey

    from medspa.engagement.service import Channels
    from medspa.retention.scoring import ScoringReport
    from medspa.retention.serving import ModelCache

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

MODEL_CONSUMER: Final = "models"
# Events every consumer has read are kept this long (for replays and investigations), then deleted.
OUTBOX_KEEP_DAYS: Final = 90
SCORE_TOPICS: Final = frozenset({"appointment.booked", "appointment.rescheduled"})
REFRESH_TOPICS: Final = frozenset(
    {
        "appointment.completed",
        "appointment.cancelled",
        "appointment.no_show",
        "appointment.corrected",
        "client.merged",
    }
)
HUEY_WORKERS: Final = 2


class ModelEventHandler:
    """The `models` consumer's handler: one refresh per organization per batch of events."""

    def __init__(self, engine: Engine, cache: ModelCache) -> None:
        self.engine, self.cache = engine, cache

    def __call__(self, events: Sequence[Delivered]) -> set[int]:
        from medspa.retention.scoring import refresh_scores

        handled = {e.id for e in events if e.topic not in SCORE_TOPICS | REFRESH_TOPICS}
        by_organization: dict[uuid.UUID, list[Delivered]] = {}
        for event in events:
            if event.id not in handled:
                by_organization.setdefault(event.organization_id, []).append(event)
        for organization_id, batch in by_organization.items():
            clients = {
                uuid.UUID(str(e.payload["client_id"]))
                for e in batch
                if e.topic in REFRESH_TOPICS and e.payload.get("client_id")
            }
            try:
                report = refresh_scores(
                    self.engine,
                    organization_id=organization_id,
                    cache=self.cache,
                    appointment_ids={e.aggregate_id for e in batch if e.topic in SCORE_TOPICS},
                    client_ids=clients,
                )
            except Exception:
                # Not handled: the cursor stays before these events and they are read again.
                logger.exception("organization %s: scoring events %s failed", organization_id, batch[0].id)
                continue
            handled |= {e.id for e in batch}
            logger.debug("organization %s: %s", organization_id, report)
        return handled


def model_consumer(engine: Engine, cache: ModelCache, *, gap_grace_seconds: float = 60.0) -> OutboxConsumer:
    return OutboxConsumer(
        engine, MODEL_CONSUMER, ModelEventHandler(engine, cache), gap_grace_seconds=gap_grace_seconds
    )


def _organizations_with_models(cache: ModelCache) -> list[uuid.UUID]:
    """Organizations with a registry in the model directory (an offline one trained from files has no
    organization id for a name and is passed over)."""
    organizations: list[uuid.UUID] = []
    for folder in sorted(cache.root.iterdir()) if cache.root.is_dir() else []:
        try:
            organizations.append(uuid.UUID(folder.name))
        except ValueError:
            continue
    return organizations


def refresh_every_organization(engine: Engine, cache: ModelCache) -> dict[uuid.UUID, ScoringReport]:
    """Every score of every organization that has models (a directory in the model registry)."""
    from medspa.retention.scoring import refresh_scores

    reports: dict[uuid.UUID, ScoringReport] = {}
    for organization_id in _organizations_with_models(cache):
        try:
            reports[organization_id] = refresh_scores(
                engine, organization_id=organization_id, cache=cache, everything=True
            )
        except Exception:
            logger.exception("organization %s: weekly refresh failed", organization_id)
    return reports


def refit_every_organization(engine: Engine, cache: ModelCache) -> dict[uuid.UUID, str | None]:
    """Each organization's active no-show model refitted on the outcomes known before today
    (`scoring.refit_noshow_model`): a new version, activated, every score refreshed."""
    from medspa.retention.scoring import refit_noshow_model

    versions: dict[uuid.UUID, str | None] = {}
    for organization_id in _organizations_with_models(cache):
        try:
            versions[organization_id] = refit_noshow_model(
                engine, organization_id=organization_id, cache=cache
            )
        except Exception:
            logger.exception("organization %s: nightly no-show refit failed", organization_id)
    return versions


def build_huey(settings: Settings, *, immediate: bool = False) -> Huey:
    """Huey on Redis when `MEDSPA_REDIS_URL` is set, else on a SQLite file beside the database."""
    from huey import RedisHuey, SqliteHuey

    if settings.redis_url:
        return RedisHuey("medspa", url=settings.redis_url, immediate=immediate)
    if not immediate:  # immediate mode keeps its queue in memory
        settings.huey_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("medspa", filename=str(settings.huey_path), immediate=immediate)


@dataclass(frozen=True)
class Tasks:
    weekly_refresh: Any
    nightly_refit: Any
    refresh_organization: Any
    release_expired_holds: Any
    prune_outbox: Any
    write_audit_heads: Any
    lapse_outreach: Any
    optimize_day: Any


def register_optimize_day(huey: Huey, engine: Engine, clock: Clock = clocks.SYSTEM) -> Any:
    """The on-demand job that runs an optimization job (`scheduling.service.run_optimization_job`),
    telling the time by `clock`: registered by the worker, and by a web process to enqueue it."""

    def optimize_day(job_id: str) -> str:
        from medspa.scheduling.service import run_optimization_job

        with clocks.using(clock):
            return str(run_optimization_job(engine, uuid.UUID(job_id)).status)

    return huey.task(name="optimize_day")(optimize_day)


class OptimizationQueue:
    """Hands optimization jobs to the worker through Huey's queue (built from the settings on first use,
    so a process that never optimizes never opens it)."""

    def __init__(self, engine: Engine, huey: Huey | None = None) -> None:
        self.engine, self.huey = engine, huey
        self._task: Any = None
        self._lock = threading.Lock()

    def __call__(self, job_id: uuid.UUID) -> None:
        with self._lock:
            if self._task is None:
                from medspa.config import load_settings

                self._task = register_optimize_day(self.huey or build_huey(load_settings()), self.engine)
        self._task(str(job_id))


def register_tasks(huey: Huey, engine: Engine, cache: ModelCache, clock: Clock = clocks.SYSTEM) -> Tasks:
    """The scheduled and on-demand jobs, bound to `engine` and `cache`, telling the time by `clock`."""
    from huey import crontab

    def on_clock(job: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(job)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with clocks.using(clock):
                return job(*args, **kwargs)

        return run

    def weekly_refresh() -> int:
        return len(refresh_every_organization(engine, cache))

    def nightly_refit() -> int:
        return sum(1 for version in refit_every_organization(engine, cache).values() if version)

    def refresh_organization(organization_id: str) -> int:
        from medspa.retention.scoring import refresh_scores

        report = refresh_scores(
            engine, organization_id=uuid.UUID(organization_id), cache=cache, everything=True
        )
        return report.appointments_scored + report.clients_scored

    def release_expired_holds() -> int:
        from medspa.kit.db import unit_of_work
        from medspa.scheduling.service import release_expired_holds

        with unit_of_work(engine) as session:
            return release_expired_holds(session)

    def prune_outbox() -> int:
        from medspa.kit.db import unit_of_work
        from medspa.kit.outbox import prune_events

        with unit_of_work(engine) as session:
            return prune_events(session, created_before=clocks.now() - timedelta(days=OUTBOX_KEEP_DAYS))

    def write_audit_heads() -> int:
        from medspa.config import load_settings
        from medspa.kit.db import unit_of_work
        from medspa.security.audit import write_heads

        with unit_of_work(engine, write=False) as session:
            return write_heads(session, load_settings().audit_head_file)

    def lapse_outreach() -> int:
        from medspa.engagement.service import reach_out

        return sum(reach_out(engine).values())

    weekly = crontab(minute="0", hour="2", day_of_week="0")
    return Tasks(
        weekly_refresh=huey.periodic_task(weekly, name="refresh_all_scores")(on_clock(weekly_refresh)),
        nightly_refit=huey.periodic_task(crontab(minute="15", hour="1"), name="refit_noshow_models")(
            on_clock(nightly_refit)
        ),
        refresh_organization=huey.task(name="refresh_organization_scores")(on_clock(refresh_organization)),
        release_expired_holds=huey.periodic_task(crontab(), name="release_expired_holds")(
            on_clock(release_expired_holds)
        ),
        prune_outbox=huey.periodic_task(crontab(minute="30", hour="3"), name="prune_outbox")(
            on_clock(prune_outbox)
        ),
        write_audit_heads=huey.periodic_task(crontab(minute="*/5"), name="write_audit_heads")(
            on_clock(write_audit_heads)
        ),
        # Mid-morning in the Americas, afternoon in Europe; each message still waits out quiet hours.
        lapse_outreach=huey.periodic_task(crontab(minute="0", hour="15"), name="lapse_outreach")(
            on_clock(lapse_outreach)
        ),
        optimize_day=register_optimize_day(huey, engine, clock),
    )


class BackgroundWorker:
    """The outbox watcher and Huey's consumer, each in threads of the calling process. With several
    workers, one should run the scheduled jobs (`periodic`); Huey's scheduler in each would enqueue them
    once per worker."""

    def __init__(
        self,
        engine: Engine,
        *,
        cache: ModelCache,
        huey: Huey | None = None,
        poll_seconds: float = 0.5,
        periodic: bool = True,
        clock: Clock | None = None,
        channels: Channels | None = None,
        source_poll_seconds: float | None = 300.0,
    ) -> None:
        import os

        from medspa.engagement.service import configured

        self.engine, self.cache, self.poll_seconds = engine, cache, poll_seconds
        # The clock of whoever made the worker, unless one is given: the threads below tell time by it.
        self.clock = clock or clocks.current()
        self.consumer = model_consumer(engine, cache)
        self.engagement = Engagement(
            engine,
            channels or configured(os.environ),
            organizations=lambda: _organizations_with_models(cache),
        )
        from medspa.integrations.service import webhook_consumer

        self.webhooks = webhook_consumer(engine)
        self.readers = {
            "models": [_Reader(self.consumer, poll_seconds)],
            "engagement": [_Reader(self.engagement.consumer, poll_seconds)],
            # the connected systems' deliveries (`integrations.apply`) and our events to subscribers
            "integrations": [_Reader(self.webhooks, poll_seconds)],
        }
        self.huey = huey
        self._stopping = threading.Event()
        # A watcher each, so that a slow mail server never holds back a booking's score, nor a burst of
        # deliveries from a connected system either.
        self._watchers = [
            threading.Thread(target=self._watch_on_clock, args=(name,), name=f"medspa-{name}", daemon=True)
            for name in self.readers
        ]
        # Polling the connected systems: a thread of its own, so a slow source never delays the inbox.
        self.source_poll_seconds = source_poll_seconds
        if source_poll_seconds is not None:
            self._watchers.append(
                threading.Thread(target=self._poll_sources, name="medspa-sources", daemon=True)
            )
        self._huey_consumer: Any = None
        self.tasks: Tasks | None = None
        if huey is not None:
            self.tasks = register_tasks(huey, engine, cache, self.clock)
            from huey.consumer import Consumer

            class QuietConsumer(Consumer):  # type: ignore[misc]
                def _set_signal_handlers(self) -> None:
                    """Signals stay with the host: uvicorn in `medspa serve`, `run_until_stopped` here."""

            # A short maximum poll delay: an on-demand job starts within a second. Two threads, so a long
            # solve does not hold back the minute-by-minute sweep of expired holds.
            self._huey_consumer = QuietConsumer(
                huey, workers=HUEY_WORKERS, worker_type="thread", max_delay=1.0, periodic=periodic
            )

    def start(self) -> None:
        for watcher in self._watchers:
            watcher.start()
        if self._huey_consumer is not None:
            self._huey_consumer.start()

    def stop(self) -> None:
        self._stopping.set()
        for watcher in self._watchers:
            watcher.join(timeout=30)
        if self._huey_consumer is not None:
            self._huey_consumer.stop(graceful=True)

    def run_until_stopped(self) -> None:
        """Start, and block until SIGINT or SIGTERM; then stop gracefully."""

        def request_stop(_signum: int, _frame: FrameType | None) -> None:
            self._stopping.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        self.start()
        while not self._stopping.wait(1.0):
            pass
        self.stop()

    def _watch_on_clock(self, name: str) -> None:
        with clocks.using(self.clock):
            self._watch(name)

    def _watch(self, name: str) -> None:
        """Drain the consumer `name` when a new event was committed, retrying events left unhandled with
        a growing delay (up to a minute) so that a failing handler neither spins nor holds back new
        events; the engagement watcher then sends the messages that are due and advances the waitlist
        offers."""
        backoff = self.poll_seconds
        while not self._stopping.is_set():
            busy = False  # a full batch of the inbox was applied: go on at once
            try:
                head, now = head_event_id(self.engine), time.monotonic()
                for reader in self.readers[name]:
                    reader.read_to(head, now)
                if name == "engagement":
                    self.engagement.tick(now)
                if name == "integrations":
                    from medspa.integrations.service import apply_inbox, send_webhooks

                    busy = apply_inbox(self.engine)
                    send_webhooks(self.engine)
                backoff = self.poll_seconds
            except Exception:  # the database is unreachable, say: try again later, not at once
                logger.exception("outbox watcher: drain failed; retrying")
                backoff = min(60.0, backoff * 2)
                self._stopping.wait(backoff)
                continue
            if not busy:
                self._stopping.wait(self.poll_seconds)

    def _poll_sources(self) -> None:
        """Poll every connection with polling settings, then wait `source_poll_seconds`; a connection's
        failure is logged by the poller and tried again on the next pass."""
        from medspa.integrations.polling import Poller, PollError

        def sleep(seconds: float) -> None:  # a wait for a source's rate limit ends when the worker stops
            if self._stopping.wait(seconds):
                raise PollError("the worker is stopping")

        with clocks.using(self.clock):
            poller = Poller(self.engine, sleep=sleep)
            while not self._stopping.is_set():
                try:
                    poller.poll_all()
                except Exception:  # the database is unreachable, say: the next pass tries again
                    logger.exception("polling the connected systems failed; retrying")
                self._stopping.wait(self.source_poll_seconds or 300.0)


class _Reader:
    """One consumer of the outbox as the watcher drives it."""

    def __init__(self, consumer: OutboxConsumer, poll_seconds: float) -> None:
        self.consumer, self.poll_seconds = consumer, poll_seconds
        self.drained_to, self.retry_delay, self.retry_at = -1, poll_seconds, 0.0

    def read_to(self, head: int, now: float) -> None:
        if head == self.drained_to and not (self.consumer.has_pending and now >= self.retry_at):
            return
        report = self.consumer.drain()
        self.drained_to = head
        if report.handled < report.read:
            self.retry_delay = min(60.0, self.retry_delay * 2)
            self.retry_at = now + self.retry_delay
        else:
            self.retry_delay, self.retry_at = self.poll_seconds, 0.0


class Engagement:
    """Messages and offers (`medspa.engagement`): the `engagement` consumer plans them from events; each
    tick sends what is due; every `SWEEP_SECONDS` the open freed times are advanced (lapsed offers pass
    on) and interrupted sends are released; every `RISK_SECONDS` the organizations with models ask their
    risky bookings to confirm (`engagement.risk`)."""

    SWEEP_SECONDS: Final = 15.0
    RISK_SECONDS: Final = 600.0

    def __init__(
        self,
        engine: Engine,
        channels: Channels,
        *,
        organizations: Callable[[], list[uuid.UUID]] = list,
        gap_grace_seconds: float = 60.0,
    ) -> None:
        from medspa.engagement.service import CONSUMER, EngagementHandler

        self.engine, self.channels, self.organizations = engine, channels, organizations
        self._asked_at = float("-inf")
        self.consumer = OutboxConsumer(
            engine, CONSUMER, EngagementHandler(engine), gap_grace_seconds=gap_grace_seconds
        )
        self._swept_at = float("-inf")

    def tick(self, now: float) -> None:
        from medspa.engagement.service import ask_everywhere, dispatch_due, release_interrupted, sweep
        from medspa.kit.db import unit_of_work

        dispatch_due(self.engine, self.channels)
        if now - self._swept_at >= self.SWEEP_SECONDS:
            self._swept_at = now
            sweep(self.engine)
            with unit_of_work(self.engine) as session:
                release_interrupted(session)
        if now - self._asked_at >= self.RISK_SECONDS:
            self._asked_at = now
            ask_everywhere(self.engine, self.organizations())
