"""Availability latency: one service over 14 days in a location with 8 providers, 6 rooms, 3 devices and
2,000 booked appointments. Prints p50/p99 per run and writes the medians to docs/benchmarks.md.

    .venv/bin/python bench/availability.py [--database-url URL] [--runs 5] [--calls 200]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

from common import build_location, machine, median, percentile, write_section
from medspa.kit import clock
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import upgrade
from medspa.scheduling import service as scheduling

FIRST_DAY = date(2027, 3, 1)  # a window that crosses the 14 March 2027 change to daylight saving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    upgrade(url)
    engine = make_engine(url)
    started = time.perf_counter()
    busy = build_location(engine, first_day=FIRST_DAY - timedelta(days=14), appointments=2000, days=42)
    print(f"set-up: 2000 appointments in {time.perf_counter() - started:.0f} s")
    # As `medspa serve` does once started (see medspa.app.serving_app).
    gc.collect()
    gc.freeze()
    rows = []
    for label, service_id in (
        ("room only", busy.plain_service_id),
        ("room + device", busy.device_service_id),
    ):
        p50s, p99s, slots = [], [], 0
        for run in range(args.runs):
            samples = []
            with clock.frozen_at(
                datetime.combine(FIRST_DAY - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            ):
                for _ in range(args.calls):
                    begin = time.perf_counter()
                    with unit_of_work(engine, write=False) as session:
                        found = scheduling.find_slots(
                            session,
                            actor=busy.actor,
                            location_id=busy.location_id,
                            service_id=service_id,
                            first_date=FIRST_DAY,
                            last_date=FIRST_DAY + timedelta(days=13),
                        )
                    samples.append((time.perf_counter() - begin) * 1000)
            slots = len(found)
            p50s.append(percentile(samples, 0.5))
            p99s.append(percentile(samples, 0.99))
            print(f"{label} run {run + 1}: p50 {p50s[-1]:.1f} ms, p99 {p99s[-1]:.1f} ms, {slots} slots")
        rows.append((label, median(p50s), median(p99s), slots))
    backend = engine.dialect.name
    table = "\n".join(
        f"| {backend} | {label} | {p50:.1f} | {p99:.1f} | {slots} |" for label, p50, p99, slots in rows
    )
    body = f"""## Availability (`bench/availability.py`)

`find_slots` for one service over 14 days (crossing a daylight-saving change) in a location with 8 providers,
6 rooms, 3 devices and 2,000 booked appointments; each call is a whole unit of work (session, queries,
interval arithmetic) and returns one slot per (start, provider). The heap is frozen after set-up as
`medspa serve` does after start (without it, full garbage collections put p99 near 55 ms).
Median over {args.runs} runs of {args.calls} calls. Target: p99 <= 25 ms.
Machine: {machine()}; {datetime.now(UTC):%Y-%m-%d}.

| database | service | p50 ms | p99 ms | slots returned |
| --- | --- | --- | --- | --- |
{table}
"""
    print(body)
    if not args.no_write:
        write_section("availability", body)


if __name__ == "__main__":
    main()
