"""Page timings on the demo clinic as `make run` seeds it (1,500 clients, 56 days of history, 14 ahead):
each page of each role fetched over HTTP from `medspa serve`'s app under uvicorn, signed in as the demo's
staff. Prints p50 and p95 per page and writes them to docs/benchmarks.md. Target: p95 under 300 ms for
the day and week views.

    .venv/bin/python bench/pages.py [--calls 40] [--runs 3] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import socket
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

from common import host_loop_ms, machine, median, percentile, write_section
from medspa.app import create_app
from medspa.demo.seed import DEMO_PASSWORD, DEMO_TOTP_SECRET, STAFF, seed_demo
from medspa.kit import clock
from medspa.kit.db import make_engine, unit_of_work
from medspa.kit.tz import to_local
from medspa.resources import service as resources
from medspa.scheduling import service as scheduling
from medspa.security import totp
from medspa.security.actors import system_actor
from medspa.security.permissions import Role


def _serve(app: object) -> tuple[str, uvicorn.Server]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def _sign_in(base: str, email: str) -> httpx.Client:
    http = httpx.Client(base_url=base, headers={"Origin": base}, timeout=30)
    answer = http.post("/login", data={"organization": "demo", "email": email, "password": DEMO_PASSWORD})
    if answer.status_code == 303 and answer.headers["location"] == "/login/code":
        code = totp.code_at(DEMO_TOTP_SECRET, totp.step_at(clock.now()))
        answer = http.post("/login/code", data={"code": code})
    if answer.status_code != 303:
        raise RuntimeError(f"{email} could not sign in: {answer.status_code}")
    return http


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    url = f"sqlite:///{tempfile.mkdtemp()}/pages.db"
    from medspa.kit.migrate import upgrade

    upgrade(url)
    engine = make_engine(url)
    summary = seed_demo(engine, model_dir=Path(tempfile.mkdtemp()) / "models")
    actor = system_actor(summary.organization_id, "bench")
    location = summary.location_id
    with unit_of_work(engine, write=False) as session:
        zone = resources.get_location(session, actor=actor, location_id=location).time_zone
        busy = scheduling.list_appointments(session, actor=actor, location_id=location, limit=1).items[0]
    today = to_local(clock.now(), zone).date()
    tomorrow = (today + timedelta(days=1)).isoformat()
    someone = busy.client_id
    day = f"/locations/{location}/day?date={tomorrow}"
    week = f"/locations/{location}/week?date={tomorrow}"
    pages: dict[Role, list[tuple[str, str]]] = {
        Role.FRONT_DESK: [
            ("day", day),
            ("week", week),
            ("day by room", f"{day}&by=room"),
            ("client search", "/clients?q=an"),
            ("client card", f"/clients/{someone}"),
            ("drifting away", "/clients/drifting"),
            ("messages", f"/locations/{location}/messages"),
        ],
        Role.PROVIDER: [("my day", f"/my-day?date={tomorrow}")],
        Role.MANAGER: [("approvals", "/approvals")],
        Role.OWNER: [("settings", f"/locations/{location}/settings")],
    }
    gc.collect()
    gc.freeze()  # as `medspa serve` does once started
    base, server = _serve(create_app(engine))
    emails = {role: email for email, _name, role in STAFF}
    rows = []
    try:
        for role, listed in pages.items():
            http = _sign_in(base, emails[role])
            for label, path in listed:
                if http.get(path).status_code == 404:
                    print(f"{label}: {path} is not served; left out")
                    continue
                p50s, p95s = [], []
                for _ in range(args.runs):
                    samples = []
                    for _ in range(args.calls):
                        began = time.perf_counter()
                        answer = http.get(path)
                        samples.append((time.perf_counter() - began) * 1000)
                        if answer.status_code != 200:
                            raise RuntimeError(f"{path}: {answer.status_code}")
                    p50s.append(percentile(samples, 0.5))
                    p95s.append(percentile(samples, 0.95))
                rows.append((role.value.replace("_", " "), label, median(p50s), median(p95s)))
                print(f"{rows[-1][0]} {label}: p50 {rows[-1][2]:.0f} ms, p95 {rows[-1][3]:.0f} ms")
    finally:
        server.should_exit = True
    body = "\n".join(
        [
            "## Page timings (`bench/pages.py`)",
            "",
            "The demo clinic as `make run` seeds it (1,500 clients, 56 days of history and 14 ahead:",
            f"{summary.past_appointments + summary.future_appointments:,} appointments, models trained and"
            " served); each page fetched over HTTP from the app under uvicorn (SQLite), signed in as",
            f"the role that uses it; the day and week are tomorrow's. Median over {args.runs} runs of",
            f"{args.calls} requests. Target: p95 under 300 ms for the day and week views.",
            f"Machine: {machine()}; host loop {host_loop_ms():.0f} ms; {time.strftime('%Y-%m-%d')}.",
            "",
            "| role | page | p50 ms | p95 ms |",
            "| --- | --- | --- | --- |",
            *(f"| {role} | {label} | {p50:.0f} | {p95:.0f} |" for role, label, p50, p95 in rows),
        ]
    )
    print(body)
    if not args.no_write:
        write_section("pages", body)


if __name__ == "__main__":
    main()
