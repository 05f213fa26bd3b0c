"""Client search and registration with sealed PHI (ADR 17): a clinic of 1,500 clients with the demo's
names, searched as the front desk types. Each call is a whole unit of work. Prints the figures and writes
the medians to docs/benchmarks.md.

    .venv/bin/python bench/client_search.py [--database-url URL] [--clients 1500] [--runs 5] [--calls 100]
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
import uuid

from common import machine, median, percentile, write_section
from medspa.clients import service as clients
from medspa.clients.schemas import ClientCreate
from medspa.demo.catalog_data import FIRST_NAMES, LAST_NAMES
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.migrate import upgrade
from medspa.security import service as security
from medspa.security.actors import system_actor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--clients", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(7)
    with unit_of_work(engine) as session:
        org = security.create_organization(session, slug=f"bench-{uuid.uuid4().hex[:8]}", name="Bench")
    actor = system_actor(org.id, "bench")
    people = []
    create_ms = []
    for number in range(args.clients):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        phone = f"555{rng.randint(0, 9999999):07d}"
        data = ClientCreate(
            first_name=first,
            last_name=last,
            email=f"{first}.{last}.{number}@example.com".lower(),
            phone=f"({phone[:3]}) {phone[3:6]}-{phone[6:]}",
            notes="prefers numbing cream",
        )
        began = time.perf_counter()
        with unit_of_work(engine) as session:
            clients.create_client(session, actor=actor, data=data)
        create_ms.append((time.perf_counter() - began) * 1000)
        people.append((first, last, phone))
    gc.collect()
    gc.freeze()
    kinds = {
        "two letters of a last name": lambda p: p[1][:2],
        "four letters of a last name": lambda p: p[1][:4],
        "first and last name": lambda p: f"{p[0]} {p[1]}",
        "phone as typed (+1 ...)": lambda p: f"+1 {p[2][:3]} {p[2][3:6]} {p[2][6:]}",
        "last four digits": lambda p: p[2][-4:],
    }
    rows = []
    for label, make_query in kinds.items():
        p50s, p99s, found = [], [], []
        for _ in range(args.runs):
            samples = []
            for _ in range(args.calls):
                query = make_query(rng.choice(people))
                began = time.perf_counter()
                with unit_of_work(engine, write=False) as session:
                    page = clients.search_clients(session, actor=actor, query=query)
                samples.append((time.perf_counter() - began) * 1000)
                found.append(page.total)
            p50s.append(percentile(samples, 0.5))
            p99s.append(percentile(samples, 0.99))
        rows.append((label, median(p50s), median(p99s), median([float(n) for n in found])))
        print(f"{label}: p50 {rows[-1][1]:.1f} ms, p99 {rows[-1][2]:.1f} ms, median found {rows[-1][3]:.0f}")
    backend = engine.url.get_backend_name()
    body = "\n".join(
        [
            "## Client search on sealed PHI (`bench/client_search.py`)",
            "",
            f"{args.clients} clients with the demo's names; each call a whole unit of work: blind-index",
            "terms, the matching rows opened (record key unwrapped, fields decrypted) and ranked. Median",
            f"over {args.runs} runs of {args.calls} random queries. Registering a client (sealing seven",
            f"fields, about 40 search terms): p50 {percentile(create_ms, 0.5):.1f} ms, "
            f"p99 {percentile(create_ms, 0.99):.1f} ms.",
            f"Machine: {machine()}; database {backend}; {time.strftime('%Y-%m-%d')}.",
            "",
            "| query | p50 ms | p99 ms | clients found (median) |",
            "| --- | --- | --- | --- |",
            *(f"| {label} | {p50:.1f} | {p99:.1f} | {n:.0f} |" for label, p50, p99, n in rows),
        ]
    )
    print(body)
    if not args.no_write:
        write_section("client-search", body)


if __name__ == "__main__":
    main()
