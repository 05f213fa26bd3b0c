"""The integration fault test: a fake Mindbody sends its world's changes as signed webhooks, 30 % of them
twice and reordered in shuffled windows, to a `medspa serve` process, while a separate `medspa worker`
applies the inbox; the worker is killed (`kill -9`) twice and PostgreSQL is restarted once meanwhile.
Afterwards every acknowledged delivery must be in the inbox and applied (or skipped with a reason), no
effect may have happened twice (counted in the outbox: one `client.created` per source client, one
`appointment.booked` per source appointment, at most one `appointment.cancelled` each), and the system of
record must match the source's final state (each client's fields, each appointment's start, provider
and status).

PostgreSQL here is a private cluster made for the run (`initdb` into a temporary folder, on a free
port), so restarting it disturbs nothing else on the machine.

    .venv/bin/python bench/faults.py [--events 10000] [--seed 7] [--no-write]

Writes the `faults` section of docs/benchmarks.md unless --no-write. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from booking import free_port
from common import ROOT, machine, write_section
from medspa.catalog import service as catalog
from medspa.catalog.schemas import ServiceCreate
from medspa.clients import service as clients
from medspa.clients.models import Client
from medspa.config import load_settings
from medspa.integrations import mappings
from medspa.integrations import service as integrations
from medspa.integrations.fakes import FakeMindbody, Knobs, World
from medspa.integrations.fakes.world import SERVICES, STAFF
from medspa.integrations.models import ExternalLink, InboxEvent
from medspa.integrations.schemas import ConnectionCreate, MappingSet
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import upgrade
from medspa.kit.outbox import OutboxEvent
from medspa.resources import service as resources
from medspa.resources.schemas import LocationCreate, ProviderCreate, RoomCreate, WeeklySpan
from medspa.scheduling.models import Appointment
from medspa.security import service as security
from medspa.security.actors import Actor, system_actor

ZONE = "America/New_York"
SECRET = "fault-test-mindbody-secret"
OUR_STATUS = {
    "booked": "booked",
    "confirmed": "confirmed",
    "arrived": "checked_in",
    "completed": "completed",
    "no_show": "no_show",
    "cancelled": "cancelled",
    "late_cancelled": "cancelled",
}


class PrivatePostgres:
    """A PostgreSQL cluster of its own in a temporary folder, on a free port, trust auth."""

    BIN = Path("/usr/lib/postgresql/15/bin")

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="medspa-faults-pg-"))
        self.data, self.port = self.folder / "data", free_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
            shutil.chown(self.folder, "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_owner, *command], check=True, stdout=subprocess.DEVNULL)

    def start(self) -> str:
        self._run(str(self.BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self._pg_ctl("start")
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        import psycopg

        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("CREATE DATABASE medspa_faults")
        with psycopg.connect(admin.rsplit("/", 1)[0] + "/medspa_faults", autocommit=True) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/medspa_faults"

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._run(
            str(self.BIN / "pg_ctl"), action, "-D", str(self.data), "-w", "-o", options,
            "-l", str(self.folder / "log"), *extra,
        )  # fmt: skip

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        try:
            self._pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Clinic:
    actor: Actor
    connection_id: uuid.UUID
    providers: dict[int, uuid.UUID]
    services: dict[int, uuid.UUID]


def set_up(engine: Engine) -> Clinic:
    """An organization with one location open 08:00-20:00 every day, a provider for each of the fake's
    staff (able to do every service), a room for each, our services of the fake's lengths, and a Mindbody
    connection with those mapped."""
    with unit_of_work(engine) as session:
        organization = security.create_organization(
            session, slug=f"faults-{uuid.uuid4().hex[:6]}", name="Faults"
        )
        actor = system_actor(organization.id, "faults")
        week = [WeeklySpan(weekday=d, starts_at=wall_time(8), ends_at=wall_time(20)) for d in range(7)]
        location = resources.create_location(
            session,
            actor=actor,
            data=LocationCreate(
                name="Fault clinic", time_zone=ZONE, slot_interval_minutes=15, opening_hours=week
            ),
        )
        providers = {
            staff: resources.create_provider(
                session,
                actor=actor,
                data=ProviderCreate(
                    location_id=location.id, name=f"Staff {staff}", skills=["aesthetics"], shifts=week
                ),
            ).id
            for staff in STAFF
        }
        for number in STAFF:
            resources.create_room(
                session,
                actor=actor,
                data=RoomCreate(location_id=location.id, name=f"Room {number}", room_type="treatment"),
            )
        services = {
            number: catalog.create_service(
                session,
                actor=actor,
                data=ServiceCreate(
                    name=name,
                    category="aesthetics",
                    duration_minutes=minutes,
                    required_skill="aesthetics",
                    room_types=["treatment"],
                    price_cents=10000,
                    cost_cents=3000,
                ),
            ).id
            for number, name, minutes in SERVICES
        }
        connection = integrations.add_connection(
            session, actor=actor, data=ConnectionCreate(connector="mindbody", secret=SECRET)
        ).id
        for kind, table in (("provider", providers), ("service", services)):
            for external, ours in table.items():
                mapping = MappingSet.model_validate(
                    {"kind": kind, "external_id": str(external), "record_id": ours}
                )
                mappings.set_mapping(session, actor=actor, connection_id=connection, data=mapping)
    return Clinic(actor, connection, providers, services)


class Processes:
    """`medspa serve --no-worker` and `medspa worker` against the run's database."""

    def __init__(self, url: str, folder: Path) -> None:
        self.env = {
            **os.environ,
            "MEDSPA_DATABASE_URL": url,
            "MEDSPA_KEY_FILE": str(load_settings().key_file.resolve()),
            "MEDSPA_HUEY_PATH": str(folder / "huey.db"),
        }
        self.folder = folder
        self.port = free_port()
        self.server: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_starts = 0
        self.logs: list[Any] = []

    def _spawn(self, *arguments: str, log: str) -> subprocess.Popen[bytes]:
        out = open(self.folder / log, "ab")  # noqa: SIM115 - closed in stop()
        self.logs.append(out)
        return subprocess.Popen(
            [str(ROOT / ".venv/bin/medspa"), *arguments], env=self.env, stdout=out, stderr=subprocess.STDOUT
        )

    def start_server(self) -> str:
        import http.client

        self.server = self._spawn("serve", "--port", str(self.port), "--no-worker", log="server.log")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            probe = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                probe.request("GET", "/api/v1/health")
                if probe.getresponse().status == 200:
                    return f"http://127.0.0.1:{self.port}"
            except OSError:
                time.sleep(0.2)
            finally:
                probe.close()
        raise RuntimeError("the server did not start")

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", "--no-scheduled-jobs", log="worker.log")
        self.worker_starts += 1

    def kill_worker(self) -> None:
        assert self.worker is not None
        os.kill(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def keep_worker_running(self) -> None:
        if self.worker is not None and self.worker.poll() is not None:
            self.start_worker()

    def stop(self) -> None:
        for process in (self.worker, self.server):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for out in self.logs:
            out.close()


@dataclass
class Report:
    events: int
    deliveries: int
    acknowledged: int
    duplicates_sent: int
    seconds_sending: float
    seconds_to_drain: float
    chaos: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    inbox: dict[str, int] = field(default_factory=dict)
    effects: dict[str, int] = field(default_factory=dict)
    worker_starts: int = 0


def run(events: int, seed: int, *, drain_seconds: float = 900.0) -> Report:
    pg = PrivatePostgres()
    url = pg.start()
    folder = Path(tempfile.mkdtemp(prefix="medspa-faults-"))
    processes = Processes(url, folder)
    try:
        upgrade(url)
        engine = make_engine(url)
        clinic = set_up(engine)
        engine.dispose()
        base = processes.start_server()
        processes.start_worker()
        world = World(seed=seed, zone=ZONE)
        fake = FakeMindbody(
            world,
            api_key="unused",
            account="1",
            secret=SECRET,
            target=f"{base}/api/v1/webhooks/mindbody/{clinic.connection_id}",
            knobs=Knobs(duplicate=0.3, reorder=20, retries=12, backoff_seconds=0.5, seed=seed),
        )
        fake.change(events)
        queued = len(fake.sent)
        started = time.monotonic()
        sender = threading.Thread(target=fake.flush, name="fake-mindbody-flush")
        sender.start()
        chaos: list[str] = []
        steps = [(0.25, "kill -9 the worker"), (0.5, "restart PostgreSQL"), (0.75, "kill -9 the worker")]
        while sender.is_alive():
            done = sum(1 for s in fake.sent if s.answers) / max(queued, 1)
            if steps and done >= steps[0][0]:
                share, step = steps.pop(0)
                if step.startswith("kill"):
                    processes.kill_worker()
                    time.sleep(1.0)
                    processes.start_worker()
                else:
                    pg.restart()
                chaos.append(f"{step} at {share:.0%} sent")
            processes.keep_worker_running()
            time.sleep(0.05)
        sending = time.monotonic() - started
        engine = make_engine(url)
        drained = drain(engine, processes, timeout=drain_seconds)
        report = Report(
            events=events,
            deliveries=queued,
            acknowledged=len(fake.acknowledged()),
            duplicates_sent=sum(len(s.answers) for s in fake.sent) - queued,
            seconds_sending=sending,
            seconds_to_drain=drained,
            chaos=chaos,
            worker_starts=processes.worker_starts,
        )
        check(engine, clinic, world, fake, report)
        engine.dispose()
        fake.stop()
        return report
    finally:
        processes.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


def drain(engine: Engine, processes: Processes, timeout: float) -> float:
    """Seconds until the inbox holds nothing waiting to be applied (or `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        processes.keep_worker_running()
        with unit_of_work(engine, write=False) as session:
            waiting = session.scalar(select(func.count()).where(InboxEvent.state == "received"))
        if not waiting:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def check(engine: Engine, clinic: Clinic, world: World, fake: FakeMindbody, report: Report) -> None:
    problems = report.problems
    acknowledged = fake.acknowledged()
    with unit_of_work(engine, write=False) as session:
        inbox = dict(session.execute(select(InboxEvent.source_event_id, InboxEvent.state)).all())
        reasons = Counter(
            (r or "")[:60]
            for r in session.scalars(select(InboxEvent.last_error).where(InboxEvent.state != "applied"))
        )
        report.inbox = dict(Counter(inbox.values()))
        missing = [d for d in acknowledged if d not in inbox]
        if missing:
            problems.append(f"{len(missing)} acknowledged deliveries are not in the inbox")
        unsettled = [d for d in acknowledged if inbox.get(d) not in ("applied", "skipped")]
        if unsettled:
            problems.append(
                f"{len(unsettled)} acknowledged deliveries are not applied: {reasons.most_common(3)}"
            )
        links = {
            (kind, external): record
            for kind, external, record in session.execute(
                select(ExternalLink.kind, ExternalLink.external_id, ExternalLink.record_id)
            )
        }
        topics = Counter(
            (topic, aggregate)
            for topic, aggregate in session.execute(
                select(OutboxEvent.topic, OutboxEvent.aggregate_id).where(
                    OutboxEvent.organization_id == clinic.actor.organization_id
                )
            )
        )
        twice = {
            key: n
            for key, n in topics.items()
            if n > 1 and key[0] in ("client.created", "appointment.booked", "appointment.cancelled")
        }
        if twice:
            problems.append(f"{len(twice)} effects happened more than once: {list(twice.items())[:3]}")
        report.effects = dict(Counter(topic for topic, _ in topics.elements()))
        created = report.effects.get("client.created", 0)
        if created != len(world.clients):
            problems.append(f"{created} clients created for {len(world.clients)} at the source")
        held = sum(1 for kind, _ in links if kind == "appointment")
        booked = report.effects.get("appointment.booked", 0)
        if booked != held:
            problems.append(f"{booked} appointments booked for {held} source appointments linked")
        zone = ZoneInfo(ZONE)
        for source in world.clients.values():
            record = links.get(("client", str(source.id)))
            ours = session.get(Client, record) if record else None
            if ours is None:
                problems.append(f"client {source.id} has no record of ours")
                continue
            read = clients.get_client(session, actor=clinic.actor, client_id=ours.id)
            if (read.first_name, read.last_name, read.email) != (
                source.first_name,
                source.last_name,
                source.email,
            ):
                problems.append(
                    f"client {source.id}: ours {read.last_name!r}, the source's {source.last_name!r}"
                )
        for source in world.appointments.values():
            record = links.get(("appointment", str(source.id)))
            appointment = session.get(Appointment, record) if record else None
            expected = OUR_STATUS[source.status]
            if appointment is None:
                ended_unseen = ("appointment_gone", str(source.id)) in links
                if not (ended_unseen and expected in ("cancelled", "no_show")):
                    problems.append(f"appointment {source.id} has no record of ours")
                continue
            if appointment.status != expected:
                problems.append(
                    f"appointment {source.id}: ours {appointment.status}, the source's {expected}"
                )
            if expected not in ("cancelled", "no_show"):
                starts = source.starts.replace(tzinfo=zone).astimezone(UTC)
                if (
                    appointment.starts_at != starts
                    or appointment.provider_id != clinic.providers[source.staff_id]
                ):
                    problems.append(
                        f"appointment {source.id}: ours at {appointment.starts_at}, the source's at {starts}"
                    )
    del problems[20:]  # the first twenty say enough


def write(report: Report) -> None:
    lines = [
        "## Integration fault test (`bench/faults.py`)",
        "",
        f"Machine: {machine()}. Date: {datetime.now(UTC).date()}.",
        "",
        f"A fake Mindbody changed its world {report.events:,} times and sent each change as a signed",
        f"webhook, 30 % of them twice, all reordered in shuffled windows of 20 ({report.deliveries:,}",
        f"deliveries; {report.duplicates_sent:,} transmissions beyond one each, retries included), to",
        "`medspa serve` on a private PostgreSQL 15 cluster, with `medspa worker` applying the inbox.",
        "Meanwhile: " + "; ".join(report.chaos) + ".",
        "",
        "Checked afterwards: every acknowledged delivery is in the inbox, applied or skipped with its reason",
        "(stale, or ended at the source before it reached us); no effect twice (one `client.created` per",
        "source client, one `appointment.booked` per source appointment held, at most one cancellation);",
        "every client's name and e-mail and every appointment's status, start and provider as the source's",
        "final state. Sending is one sender in order; its time depends on what else the machine runs.",
        "",
        "| | |",
        "|---|---|",
        f"| deliveries acknowledged | {report.acknowledged:,} |",
        f"| sending took | {report.seconds_sending:.0f} s |",
        f"| inbox drained after sending | {report.seconds_to_drain:.0f} s |",
        f"| inbox rows by state | {', '.join(f'{k} {v:,}' for k, v in sorted(report.inbox.items()))} |",
        f"| effects (outbox events) | {', '.join(f'{k} {v:,}' for k, v in sorted(report.effects.items()))} |",
        f"| worker processes started | {report.worker_starts} |",
        f"| problems | {len(report.problems)}{''.join(': ' + p for p in report.problems[:1])} |",
    ]
    write_section("faults", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    report = run(args.events, args.seed)
    print(report)
    if not args.no_write:
        write(report)
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
