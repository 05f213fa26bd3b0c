"""Webhook ingest: signed Standard Webhooks deliveries (`client.created`) posted by 32 concurrent senders to
`POST /api/v1/webhooks/standard/{id}` of a `medspa serve` process, verified and stored in the inbox; the
accepted rate is compared, in the same run, with the database's raw rate of one-row committed inserts.
Then the end-to-end lag from receipt to applied effect (the client created) at a paced 500 deliveries a
second, the inbox applied in the server process or by separate worker processes. SQLite and PostgreSQL.
Writes docs/benchmarks.md.

    .venv/bin/python bench/ingest.py [--deliveries 3000] [--runs 3] [--workers 1 2] [--lag-appliers 0 1 2]
        [--skip-lag | --skip-receipt] [--no-write]
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
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, MetaData, String, Table, Uuid, insert, select

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
    requests = [("POST", path, body, headers) for body, headers in (delivery(n) for n in range(deliveries))]
    return closed_loop(url, workers, requests, 202)


def ceiling_rate(url: str, workers: int, count: int) -> float:
    """What the web stack itself answers per second on this machine with the same 32 senders: `GET
    /api/v1/health`, which touches no database (the ceiling any receipt is under)."""
    rate, _, _ = closed_loop(url, workers, [("GET", "/api/v1/health", b"", {})] * count, 200)
    return rate


def closed_loop(
    url: str, workers: int, requests: list[tuple[str, str, bytes, dict[str, str]]], expected: int
) -> tuple[float, float, float]:
    """`requests` sent by 32 senders in a closed loop to a fresh server: answers per second, and the
    p50 and p99 answer time (ms); every answer must be `expected`."""
    server, port = serve(url, workers, worker=False)
    times: list[float] = []
    codes: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(SENDERS + 1)

    def sender(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, answers = [], []
        barrier.wait()
        for method, path, body, headers in requests[index::SENDERS]:
            began = time.perf_counter()
            connection.request(method, path, body, headers)
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
    if set(codes) != {expected}:
        raise RuntimeError(f"unexpected answers: {sorted(set(codes))}")
    return len(requests) / elapsed, percentile(times, 0.5), percentile(times, 0.99)


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


def send_paced(
    port: int, path: str, prepared: list[tuple[bytes, dict[str, str]]], rate: float
) -> list[float]:
    """Send `prepared` at a fixed `rate` per second (delivery n is due n/rate s after the start) from 32
    senders, and return each answer's time (ms) counted from when it was due, not from when it was sent:
    a sender held up by a slow answer does not hide the wait of the deliveries queued behind it."""
    total = len(prepared)
    barrier = threading.Barrier(SENDERS + 1)
    start = [0.0]
    times: list[float] = []
    lock = threading.Lock()

    def sender(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        barrier.wait()
        for n in range(index, total, SENDERS):
            due = start[0] + n / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            body, headers = prepared[n]
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 202:
                raise RuntimeError(f"unexpected answer {response.status}")
            mine.append((time.perf_counter() - due) * 1000)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    start[0] = time.perf_counter() + 0.2
    barrier.wait()
    for thread in threads:
        thread.join()
    if len(times) != total:
        raise RuntimeError(f"{total - len(times)} deliveries were not answered")
    return times


def paced_answers(url: str, workers: int, rate: float, seconds: float) -> tuple[float, float]:
    """p50 and p99 (ms) of the answer at a fixed offered load of `rate` deliveries a second (no worker),
    after one second at that load that is not counted (the server's first requests open its database
    connections and fill its caches)."""
    path = f"/api/v1/webhooks/standard/{connection_for(url)}"
    warm_up = [delivery(n) for n in range(int(rate))]
    prepared = [delivery(n) for n in range(int(rate * seconds))]
    server, port = serve(url, workers, worker=False)
    try:
        send_paced(port, path, warm_up, rate)
        times = send_paced(port, path, prepared, rate)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return percentile(times, 0.5), percentile(times, 0.99)


@dataclass
class Lag:
    """Receipt -> applied at a paced offered rate: what the server received in fact (deliveries over the
    span of their receipt: senders wait for answers, so a busy server is offered less), how fast the
    inbox was applied (deliveries over first receipt -> last applied), and the lag's p50 and p99 (s)."""

    received_per_s: float
    applied_per_s: float
    p50: float
    p99: float
    applied: int


def _applied_within(engine: Engine, source_event_id: str, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with unit_of_work(engine, write=False) as session:
            processed = session.scalar(
                select(InboxEvent.processed_at).where(InboxEvent.source_event_id == source_event_id)
            )
        if processed is not None:
            return True
        time.sleep(0.1)
    return False


def lag(url: str, rate: float, seconds: float, workers: int) -> Lag:
    """The lag with the inbox applied in the server process (`workers` 0: the embedded default) or by
    `workers` separate `medspa worker` processes beside a server that runs none."""
    connection_id = connection_for(url)
    path = f"/api/v1/webhooks/standard/{connection_id}"
    prepared = [delivery(n) for n in range(int(rate * seconds))]
    server, port = serve(url, 1, worker=workers == 0)
    scratch = Path(tempfile.mkdtemp())
    env = {
        **os.environ,
        "MEDSPA_DATABASE_URL": url,
        "MEDSPA_KEY_FILE": str(load_settings().key_file.resolve()),
        "MEDSPA_HUEY_PATH": str(scratch / "huey.db"),
    }
    appliers = [
        subprocess.Popen(
            [str(ROOT / ".venv/bin/medspa"), "worker", "--no-scheduled-jobs", "--poll-seconds", "0.1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    rows: list[Any] = []
    engine = make_engine(url)
    try:
        # The appliers are running before the load starts, as they are in service: one delivery sent
        # and applied first (and left out of the figures) shows they have started.
        warm_up = delivery(-1)
        send_paced(port, path, [warm_up], 1.0)
        warm_up_id = warm_up[1]["webhook-id"]
        if not _applied_within(engine, warm_up_id, seconds=120):
            raise RuntimeError("the inbox was not applied within two minutes of starting")
        send_paced(port, path, prepared, rate)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with unit_of_work(engine, write=False) as session:
                rows = list(
                    session.execute(
                        select(InboxEvent.received_at, InboxEvent.processed_at).where(
                            InboxEvent.connection_id == uuid.UUID(connection_id),
                            InboxEvent.source_event_id != warm_up_id,
                        )
                    ).all()
                )
            if rows and all(p is not None for _, p in rows):
                break
            time.sleep(0.5)
    finally:
        engine.dispose()
        for process in [server, *appliers]:
            process.terminate()
        for process in [server, *appliers]:
            process.wait(timeout=30)
    received = [r for r, _ in rows]
    done = [p for _, p in rows if p is not None]
    lags = [(p - r).total_seconds() for r, p in rows if p is not None]
    span = (max(received) - min(received)).total_seconds() if len(received) > 1 else 0.0
    applying = (max(done) - min(received)).total_seconds() if done else 0.0
    return Lag(
        received_per_s=len(received) / span if span else 0.0,
        applied_per_s=len(done) / applying if applying else 0.0,
        p50=percentile(lags, 0.5),
        p99=percentile(lags, 0.99),
        applied=len(done),
    )


def fresh_database(backend: str, admin_url: str) -> tuple[str, str]:
    """A migrated empty database: (name to drop on PostgreSQL, or "", URL)."""
    if backend == "sqlite":
        name, url = "", f"sqlite:///{Path(tempfile.mkdtemp()) / 'ingest.db'}"
    else:
        name, url = fresh_postgres(admin_url)
    upgrade(url)
    return name, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="server processes to measure on PostgreSQL"
    )
    parser.add_argument("--paced-rate", type=float, default=500.0)
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--lag-rate", type=float, default=500.0)
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument(
        "--lag-appliers",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="where the inbox is applied: 0 in the server process, N in N separate worker processes",
    )
    parser.add_argument("--skip-lag", action="store_true", help="leave out the receipt -> applied lag")
    parser.add_argument("--skip-receipt", action="store_true", help="measure only the lag")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    backends = ([] if args.skip_sqlite else ["sqlite"]) + ([] if args.skip_postgres else ["postgresql"])
    setups = (
        []
        if args.skip_receipt
        else [(b, w) for b in backends for w in ([1] if b == "sqlite" else args.workers)]
    )
    rows = []
    for backend, workers in setups:
        figures: dict[str, list[float]] = {}
        for run in range(args.runs):
            name, url = fresh_database(backend, args.postgres_admin_url)
            try:
                loop = host_loop_ms()
                raw = raw_insert_rate(url)
                rate, p50, p99 = accept_rate(url, workers, args.deliveries)
                ceiling = ceiling_rate(url, workers, args.deliveries)
                paced50, paced99 = paced_answers(url, workers, args.paced_rate, args.paced_seconds)
            finally:
                if name:
                    drop_postgres(args.postgres_admin_url, name)
            for key, value in zip(
                ("rate", "raw", "ceiling", "p50", "p99", "paced50", "paced99"),
                (rate, raw, ceiling, p50, p99, paced50, paced99),
                strict=True,
            ):
                figures.setdefault(key, []).append(value)
            print(
                f"{backend} x{workers} run {run + 1}: {rate:.0f} accepted/s (answer p50 {p50:.1f} ms, "
                f"p99 {p99:.1f} ms); raw inserts {raw:.0f}/s; web stack {ceiling:.0f}/s; "
                f"at {args.paced_rate:.0f}/s answer p50 "
                f"{paced50:.1f} ms, p99 {paced99:.1f} ms; host loop {loop:.0f} ms",
                flush=True,
            )
        middle = {key: median(values) for key, values in figures.items()}
        rows.append(
            f"| {backend} | {workers} | {middle['rate']:.0f} | {middle['raw']:.0f} | {middle['ceiling']:.0f} "
            f"| {middle['p50']:.1f} "
            f"| {middle['p99']:.1f} | {middle['paced50']:.1f} | {middle['paced99']:.1f} |"
        )
    lag_rows = []
    for backend in [] if args.skip_lag else backends:
        for appliers in args.lag_appliers:
            if backend == "sqlite" and appliers > 1:
                continue  # one writer at a time: more appliers only wait for each other
            measured: list[Lag] = []
            for run in range(args.runs):
                name, url = fresh_database(backend, args.postgres_admin_url)
                try:
                    measured.append(lag(url, args.lag_rate, args.lag_seconds, appliers))
                finally:
                    if name:
                        drop_postgres(args.postgres_admin_url, name)
                got = measured[-1]
                print(
                    f"{backend} lag, {appliers or 'in-server'} applier(s), run {run + 1}: received "
                    f"{got.received_per_s:.0f}/s, applied {got.applied_per_s:.0f}/s, "
                    f"lag p50 {got.p50:.2f} s, p99 {got.p99:.2f} s ({got.applied} applied)",
                    flush=True,
                )
            where = "the server process" if appliers == 0 else f"{appliers} worker process(es)"
            lag_rows.append(
                f"| {backend} | {where} | {median([m.received_per_s for m in measured]):.0f} "
                f"| {median([m.applied_per_s for m in measured]):.0f} "
                f"| {median([m.p50 for m in measured]):.2f} | {median([m.p99 for m in measured]):.2f} |"
            )
    body = "\n".join(
        [
            "## Webhook ingest (`bench/ingest.py`)",
            "",
            textwrap.fill(
                "Signed Standard Webhooks deliveries (`client.created`), each verified (HMAC over id, "
                "timestamp and body), its body sealed and stored in the inbox before the answer. "
                f"Saturation: {SENDERS} concurrent senders in a closed loop (each sends its next delivery "
                "when answered), so the answer times there are mostly queueing; beside it, in the same run, "
                "the database's own rate of one-row committed inserts from as many threads, and the web "
                "stack's own rate: the same server answering `GET /api/v1/health` (no database) to as many "
                "senders, the ceiling of any receipt. Fixed load: "
                f"deliveries due at a steady {args.paced_rate:.0f}/s for {args.paced_seconds:.0f} s after a "
                "second of warm-up, each answer timed from when it was due. Median of "
                f"{args.runs} runs of {args.deliveries} deliveries. Targets: >= 1,000 accepted/s on "
                "PostgreSQL, answer p99 < 50 ms.",
                width=104,
            ),
            f"Machine: {machine()}; the senders and the server share its cores; {time.strftime('%Y-%m-%d')}.",
            "",
            "| database | server processes | accepted/s | raw inserts/s | web stack/s | answer p50 ms "
            f"| answer p99 ms | at {args.paced_rate:.0f}/s p50 ms | at {args.paced_rate:.0f}/s p99 ms |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            textwrap.fill(
                f"Lag from receipt to the client created: deliveries offered at {args.lag_rate:.0f}/s for "
                f"{args.lag_seconds:.0f} s (each a new client) to one server process, the inbox applied in "
                "that process (the embedded default) or by separate `medspa worker` processes (at scale), "
                "started and applying (one delivery applied) before the load starts. 'Received' is what "
                "the server took in fact (the senders wait for answers, so a busy server is offered less); "
                "'applied' is deliveries over first receipt to last applied. Median of "
                f"{args.runs} runs. Target: lag p99 < 2 s.",
                width=104,
            ),
            "",
            "| database | inbox applied in | received/s | applied/s | lag p50 s | lag p99 s |",
            "| --- | --- | --- | --- | --- | --- |",
            *lag_rows,
        ]
    )
    print(body)
    if not args.no_write:
        write_section("ingest", body)


if __name__ == "__main__":
    main()
