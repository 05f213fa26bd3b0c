"""Webhook ingest: signed Standard Webhooks deliveries (`client.created`) posted by 32 concurrent senders to
`POST /api/v1/webhooks/standard/{id}` of a `medspa serve` process, verified and stored in the inbox; the
accepted rate is compared, in the same run, with the database's raw rate of one-row committed inserts.
Then the end-to-end lag from receipt to applied effect (the client created) at a paced 500 deliveries a
second, with the worker in the server process. SQLite and PostgreSQL. Writes docs/benchmarks.md.

    .venv/bin/python bench/ingest.py [--deliveries 3000] [--runs 3] [--skip-postgres] [--no-write]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import Column, MetaData, String, Table, Uuid, insert, select

from booking import drop_postgres, free_port, fresh_postgres
from common import ROOT, host_loop_ms, machine, median, percentile, write_section
from medspa.config import load_settings
from medspa.integrations import service as integrations
from medspa.integrations.models import InboxEvent
from medspa.integrations.schemas import ConnectionCreate
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import upgrade
from medspa.security import service as security
from medspa.security.actors import system_actor

SENDERS = 32
SECRET = "whsec_" + base64.b64encode(b"bench-ingest-key-0123456789abcdef").decode()
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))


def delivery(number: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "type": "client.created",
            "data": {
                "id": f"ext-{number}",
                "first_name": "Ingest",
                "last_name": f"Client{number}",
                "email": f"ingest.{number}.{uuid.uuid4().hex[:6]}@example.org",
            },
        }
    ).encode()
    message_id, stamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    signature = base64.b64encode(
        hmac.new(KEY, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    )
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": stamp,
        "webhook-signature": f"v1,{signature.decode()}",
    }
    return body, headers


def serve(url: str, workers: int, *, worker: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "MEDSPA_DATABASE_URL": url,
        "MEDSPA_KEY_FILE": str(load_settings().key_file.resolve()),
    }
    command = [str(ROOT / ".venv/bin/medspa"), "serve", "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen(
        command + ([] if worker else ["--no-worker"]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            probe.request("GET", "/api/v1/health")
            if probe.getresponse().status == 200:
                return server, port
        except OSError:
            if time.monotonic() > deadline:
                server.terminate()
                raise RuntimeError("server did not start") from None
            time.sleep(0.2)


def connection_for(url: str) -> str:
    engine = make_engine(url)
    with unit_of_work(engine) as session:
        org = security.create_organization(session, slug=f"b-{uuid.uuid4().hex[:8]}", name="Bench")
        added = integrations.add_connection(
            session,
            actor=system_actor(org.id, "bench"),
            data=ConnectionCreate(connector="standard", secret=SECRET),
        )
    engine.dispose()
    return str(added.id)


def accept_rate(url: str, workers: int, deliveries: int) -> tuple[float, float, float]:
    """Accepted deliveries per second with 32 senders, and the p50 and p99 answer time (ms)."""
    path = f"/api/v1/webhooks/standard/{connection_for(url)}"
    prepared = [delivery(n) for n in range(deliveries)]
    server, port = serve(url, workers, worker=False)
    times: list[float] = []
    codes: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(SENDERS + 1)

    def sender(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, answers = [], []
        barrier.wait()
        for body, headers in prepared[index::SENDERS]:
            began = time.perf_counter()
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            mine.append((time.perf_counter() - began) * 1000)
            answers.append(response.status)
        with lock:
            times.extend(mine)
            codes.extend(answers)

    try:
        threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
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
    if set(codes) != {202}:
        raise RuntimeError(f"unexpected answers: {sorted(set(codes))}")
    return deliveries / elapsed, percentile(times, 0.5), percentile(times, 0.99)


def raw_insert_rate(url: str, seconds: float = 3.0) -> float:
    """One-row inserts, each committed, from 32 threads: what the database itself does per second."""
    engine = make_engine(url)
    table = Table(
        "bench_raw_inserts", MetaData(), Column("id", Uuid, primary_key=True), Column("body", String(400))
    )
    table.create(engine, checkfirst=True)
    counts = [0] * SENDERS
    stop = time.monotonic() + seconds

    def writer(index: int) -> None:
        while time.monotonic() < stop:
            with engine.begin() as connection:
                connection.execute(insert(table).values(id=uuid.uuid4(), body="x" * 300))
            counts[index] += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(SENDERS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rate = sum(counts) / (time.perf_counter() - began)
    table.drop(engine)
    engine.dispose()
    return rate


def lag(url: str, rate: float, seconds: float) -> tuple[float, float, int]:
    """p50 and p99 (s) of receipt -> applied at a paced `rate` per second, and how many were applied."""
    connection_id = connection_for(url)
    path = f"/api/v1/webhooks/standard/{connection_id}"
    total = int(rate * seconds)
    prepared = [delivery(n) for n in range(total)]
    server, port = serve(url, 1, worker=True)
    try:
        barrier = threading.Barrier(SENDERS + 1)
        start = [0.0]

        def sender(index: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            barrier.wait()
            for n in range(index, total, SENDERS):
                due = start[0] + n / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                body, headers = prepared[n]
                connection.request("POST", path, body, headers)
                connection.getresponse().read()

        threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
        for thread in threads:
            thread.start()
        start[0] = time.perf_counter() + 0.2
        barrier.wait()
        for thread in threads:
            thread.join()
        engine = make_engine(url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with unit_of_work(engine, write=False) as session:
                rows = session.execute(
                    select(InboxEvent.received_at, InboxEvent.processed_at).where(
                        InboxEvent.connection_id == uuid.UUID(connection_id)
                    )
                ).all()
            if rows and all(p is not None for _, p in rows):
                break
            time.sleep(0.5)
        engine.dispose()
    finally:
        server.terminate()
        server.wait(timeout=30)
    lags = [(p - r).total_seconds() for r, p in rows if p is not None]
    return percentile(lags, 0.5), percentile(lags, 0.99), len(lags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="server processes on PostgreSQL")
    parser.add_argument("--lag-rate", type=float, default=500.0)
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for backend in ["sqlite"] + ([] if args.skip_postgres else ["postgresql"]):
        accepted, raws, p50s, p99s, lags50, lags99, applied = [], [], [], [], [], [], []
        for run in range(args.runs):
            if backend == "sqlite":
                name, url = "", f"sqlite:///{Path(tempfile.mkdtemp()) / 'ingest.db'}"
            else:
                name, url = fresh_postgres(args.postgres_admin_url)
            try:
                upgrade(url)
                raws.append(raw_insert_rate(url))
                rate, p50, p99 = accept_rate(url, 1 if backend == "sqlite" else args.workers, args.deliveries)
                accepted.append(rate)
                p50s.append(p50)
                p99s.append(p99)
                l50, l99, done = lag(url, args.lag_rate, args.lag_seconds)
                lags50.append(l50)
                lags99.append(l99)
                applied.append(done)
            finally:
                if name:
                    drop_postgres(args.postgres_admin_url, name)
            print(
                f"{backend} run {run + 1}: {rate:.0f} accepted/s (answer p50 {p50:.1f} ms, "
                f"p99 {p99:.1f} ms); raw inserts {raws[-1]:.0f}/s; lag at {args.lag_rate:.0f}/s "
                f"p50 {l50:.2f} s, p99 {l99:.2f} s ({done} applied); host loop {host_loop_ms():.0f} ms",
                flush=True,
            )
        rows.append(
            (
                backend,
                median(accepted),
                median(raws),
                median(p50s),
                median(p99s),
                median(lags50),
                median(lags99),
            )
        )
    body = "\n".join(
        [
            "## Webhook ingest (`bench/ingest.py`)",
            "",
            f"Signed Standard Webhooks deliveries (`client.created`) from {SENDERS} concurrent",
            "senders, each verified (HMAC over id, timestamp and body), its body sealed and stored in the",
            "inbox before the answer; beside it, in the same run, the database's own rate of one-row",
            "committed inserts from as many threads. Then the lag from receipt to the client created, at a",
            "paced rate with the worker in the server process. Server processes: SQLite 1, PostgreSQL",
            f"{args.workers}. Median of {args.runs} runs of {args.deliveries} deliveries; the lag over",
            f"{args.lag_seconds:.0f} s at {args.lag_rate:.0f}/s. Targets: >= 1,000 accepted/s on PostgreSQL,",
            "answer p99 < 50 ms, lag p99 < 2 s.",
            f"Machine: {machine()} (senders and server share its cores); {time.strftime('%Y-%m-%d')}.",
            "",
            "| database | accepted/s | raw inserts/s | answer p50 ms | answer p99 ms | lag p50 s "
            "| lag p99 s |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *(
                f"| {b} | {a:.0f} | {r:.0f} | {p50:.1f} | {p99:.1f} | {l50:.2f} | {l99:.2f} |"
                for b, a, r, p50, p99, l50, l99 in rows
            ),
        ]
    )
    print(body)
    if not args.no_write:
        write_section("ingest", body)


if __name__ == "__main__":
    main()
