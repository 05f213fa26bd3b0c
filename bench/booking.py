"""Booking throughput over HTTP: 32 concurrent clients book through `POST /api/v1/appointments` against a
`medspa serve` process, on SQLite and on PostgreSQL. Each client books its own share of free starts (so
the figure is bookings that succeed, not refusals); at the end every reservation is checked for double
bookings. Writes the medians to docs/benchmarks.md.

    .venv/bin/python bench/booking.py [--postgres-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from common import ROOT, build_location, host_loop_ms, machine, median, write_section
from medspa.config import load_settings
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import upgrade
from medspa.scheduling.models import Reservation
from medspa.security import service as security
from medspa.security.actors import Role
from medspa.security.schemas import TokenCreate

CLIENTS = 32
PER_CLIENT = 25
FIRST_DAY = date(2027, 4, 5)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def plan(starts: list[str], providers: list[str]) -> list[list[tuple[str, str]]]:
    """Deal (start, provider) pairs to the clients round-robin."""
    pairs = [(s, p) for s in starts for p in providers]
    return [pairs[i::CLIENTS][:PER_CLIENT] for i in range(CLIENTS)]


def run_once(url: str, workers: int, env: dict[str, str] | None = None) -> tuple[float, int, int, int, int]:
    engine = make_engine(url)
    busy = build_location(
        engine, first_day=FIRST_DAY, appointments=0, days=1, injection_rooms=8, full_shifts=True
    )
    with unit_of_work(engine) as session:
        token = security.issue_token(
            session, actor=busy.actor, data=TokenCreate(name="bench", role=Role.OWNER)
        ).token
    # Every provider works 08:00-20:00 and there is a room for each; the service takes 30 minutes and
    # its room 40 (setup and cleanup), so starts 45 minutes apart from 08:15 never collide: every planned
    # booking should succeed.
    with unit_of_work(engine, write=False) as session:
        from medspa.resources import service as resources

        providers = [str(p.id) for p in resources.list_providers(session, actor=busy.actor, limit=100).items]
    starts = []
    for offset in range(28):
        day = FIRST_DAY + timedelta(days=offset)
        first = datetime(day.year, day.month, day.day, 12, 15, tzinfo=UTC)  # 08:15 in New York (UTC-4)
        starts += [(first + timedelta(minutes=45 * i)).isoformat() for i in range(15)]
    shares = plan(starts, providers)
    port = free_port()
    # The server must unwrap the clients' keys this process wrapped: the same key file for both.
    key_file = str(load_settings().key_file.resolve())
    env = {**os.environ, **(env or {}), "MEDSPA_DATABASE_URL": url, "MEDSPA_KEY_FILE": key_file}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/medspa"), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                probe.request("GET", "/api/v1/health")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.2)
        codes: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(CLIENTS + 1)

        def client(index: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            mine = []
            barrier.wait()
            for starts_at, provider_id in shares[index]:
                body = {
                    "client_id": str(busy.client_ids[index]),
                    "service_id": str(busy.plain_service_id),
                    "location_id": str(busy.location_id),
                    "starts_at": starts_at,
                    "provider_id": provider_id,
                }
                connection.request("POST", "/api/v1/appointments", json.dumps(body), headers)
                response = connection.getresponse()
                response.read()
                mine.append(response.status)
            with lock:
                codes.extend(mine)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        barrier.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=30)
    a, b = aliased(Reservation), aliased(Reservation)
    overlap = (
        select(func.count())
        .select_from(a)
        .join(b, (a.resource_id == b.resource_id) & (a.id < b.id))
        .where(a.starts_at < b.ends_at, b.starts_at < a.ends_at, a.is_active.is_(True), b.is_active.is_(True))
    )
    with unit_of_work(engine, write=False) as session:
        doubles = int(session.execute(overlap).scalar_one())
    engine.dispose()
    ok, refused = codes.count(201), codes.count(409)
    return ok / elapsed, ok, refused, len(codes) - ok - refused, doubles


def fresh_postgres(admin_url: str) -> tuple[str, str]:
    import psycopg

    name = f"medspa_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return name, f"{base}/{name}"


def drop_postgres(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="server processes on PostgreSQL")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    backends = ["sqlite"] + ([] if args.skip_postgres else ["postgresql"])
    for backend in backends:
        results = []
        speeds = []
        for run in range(args.runs):
            if backend == "sqlite":
                name, url = "", f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
            else:
                name, url = fresh_postgres(args.postgres_admin_url)
            try:
                upgrade(url)
                speeds.append(host_loop_ms())
                # SQLite admits one writer at a time: one process queues them best.
                rate, ok, refused, other, doubles = run_once(url, 1 if backend == "sqlite" else args.workers)
            finally:
                if name:
                    drop_postgres(args.postgres_admin_url, name)
            results.append(rate)
            print(
                f"{backend} run {run + 1}: {rate:.0f} bookings/s ({ok} booked, {refused} refused, "
                f"{other} other, {doubles} double bookings; host loop {speeds[-1]:.0f} ms)",
                flush=True,
            )
            if doubles or other:
                sys.exit(f"{backend}: {doubles} double bookings, {other} unexpected answers")
        rows.append((backend, median(results), min(results), max(results), ok, refused, median(speeds)))
    table = "\n".join(
        f"| {b} | {m:.0f} | {lo:.0f}-{hi:.0f} | {ok} | {refused} | 0 | {speed:.0f} |"
        for b, m, lo, hi, ok, refused, speed in rows
    )
    body = f"""## Booking throughput (`bench/booking.py`)

{CLIENTS} concurrent HTTP clients (keep-alive connections, one thread each) book through
`POST /api/v1/appointments` against `medspa serve` (1 process on SQLite, {args.workers} on PostgreSQL).
Every client books its own share of (start, provider) pairs that all fit, so every request should
succeed; afterwards every reservation is checked for overlaps. Median of {args.runs} runs; client and
server share the machine. Target: >= 200 bookings/s on PostgreSQL, 0 double bookings. "Host loop" is
the median CPU time of a fixed Python loop taken before each run (`common.host_loop_ms`; lower is
faster): this virtual machine's speed varies by up to 2x within an hour, and the rates follow it.
Machine: {machine()}; {datetime.now(UTC):%Y-%m-%d}.

| database | bookings/s (median) | range | booked (last run) | refused (last run) | doubles | host loop ms |
| --- | --- | --- | --- | --- | --- | --- |
{table}
"""
    print(body)
    if not args.no_write:
        write_section("booking", body)


if __name__ == "__main__":
    main()
