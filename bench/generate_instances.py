"""Generate clinic-day instances (`clinic-day-instance/1`) of a given number of requests.

Our own generator, for the optimizer's scaling curve: the clinic grows with the demand (about one
provider per 12 requests, rooms and devices in proportion), so every size is a similarly busy day with
more requests than fit. About a sixth of the requests are locked bookings taken from a
first-available schedule of the day, so they never conflict. Deterministic for a given size and seed.

    python bench/generate_instances.py 50 100 200 400 --out-dir /tmp/instances
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

# id, category, minutes, setup, cleanup, skill, room types, device type, price, cost
SERVICES: list[tuple[str, str, int, int, int, str, list[str], str | None, float, float]] = [
    ("consult", "consultation", 30, 0, 5, "consult", ["consult", "injection"], None, 150.0, 20.0),
    ("botox", "injectables", 30, 5, 5, "neurotoxin", ["injection", "treatment"], None, 450.0, 140.0),
    ("filler_cheek", "injectables", 60, 5, 10, "filler", ["injection", "treatment"], None, 900.0, 320.0),
    ("lip_filler", "injectables", 45, 5, 10, "filler", ["injection", "treatment"], None, 700.0, 280.0),
    ("iv_drip", "wellness", 60, 5, 10, "iv", ["lounge"], None, 250.0, 60.0),
    (
        "microneedling_rf",
        "skin",
        75,
        10,
        10,
        "microneedling",
        ["treatment", "laser"],
        "rf_microneedler",
        650.0,
        90.0,
    ),
    ("co2_resurfacing", "laser", 90, 10, 15, "co2", ["laser"], "co2_laser", 1500.0, 250.0),
    ("ipl_photofacial", "laser", 45, 5, 10, "ipl", ["laser"], "ipl", 400.0, 60.0),
    ("laser_hair_small", "laser", 20, 5, 5, "laser_hair", ["laser"], "diode_laser", 180.0, 20.0),
    ("laser_hair_large", "laser", 60, 5, 10, "laser_hair", ["laser"], "diode_laser", 450.0, 50.0),
    ("hydrafacial", "facials", 60, 5, 10, "facial", ["facial"], "hydrafacial", 250.0, 45.0),
    ("chemical_peel", "facials", 45, 5, 10, "facial", ["facial", "treatment"], None, 200.0, 35.0),
    ("dermaplane", "facials", 45, 5, 5, "facial", ["facial"], None, 150.0, 15.0),
    ("coolsculpt", "body", 60, 10, 10, "body", ["treatment"], "cryo_body", 800.0, 200.0),
]
ROLES: list[tuple[str, list[str]]] = [
    ("Medical director", ["consult", "neurotoxin", "filler", "co2", "microneedling"]),
    ("Nurse practitioner", ["consult", "neurotoxin", "filler", "microneedling", "iv"]),
    ("RN injector", ["neurotoxin", "filler", "iv"]),
    ("Laser technician", ["laser_hair", "ipl", "body"]),
    ("Esthetician", ["facial", "microneedling"]),
    ("Esthetician", ["facial", "laser_hair"]),
]
SHIFTS = [("08:00", "16:00"), ("09:00", "17:00"), ("10:00", "18:00"), ("12:00", "20:00")]
ROOM_SHARE = {
    "injection": 0.25,
    "treatment": 0.16,
    "facial": 0.16,
    "laser": 0.16,
    "consult": 0.08,
    "lounge": 0.06,
}
DEVICE_COOLDOWN = {
    "hydrafacial": 10,
    "diode_laser": 10,
    "ipl": 10,
    "co2_laser": 20,
    "rf_microneedler": 10,
    "cryo_body": 15,
}


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def minutes(text: str) -> int:
    return int(text[:2]) * 60 + int(text[3:])


def generate(requests: int, seed: int = 0) -> dict[str, Any]:
    """One clinic day with `requests` requests."""
    rng = random.Random(requests * 1000 + seed)
    provider_count = max(3, round(requests / 12))
    providers = []
    for index in range(provider_count):
        role, skills = ROLES[index % len(ROLES)]
        start, end = SHIFTS[rng.randrange(len(SHIFTS))]
        lunch = minutes(start) + rng.choice((210, 240, 270))
        providers.append(
            {
                "id": f"p{index + 1}",
                "name": f"{role} {index + 1}",
                "skills": skills,
                "shifts": [{"start": start, "end": end}],
                "breaks": [{"start": hhmm(lunch), "end": hhmm(lunch + 30)}],
            }
        )
    room_total = max(4, round(provider_count * 0.9))
    rooms = []
    for room_type, share in ROOM_SHARE.items():
        for number in range(max(1, round(room_total * share))):
            rooms.append({"id": f"{room_type[:3]}{number + 1}", "type": room_type})
    devices = []
    for device_type, cooldown in DEVICE_COOLDOWN.items():
        for number in range(max(1, round(provider_count / 8))):
            devices.append(
                {"id": f"{device_type}_{number + 1}", "type": device_type, "cooldown_minutes": cooldown}
            )
    services = [
        {
            "id": sid,
            "category": category,
            "duration_minutes": duration,
            "setup_minutes": setup,
            "cleanup_minutes": cleanup,
            "skill": skill,
            "room_types": room_types,
            "device_type": device_type,
            "price": price,
            "cost": cost,
        }
        for sid, category, duration, setup, cleanup, skill, room_types, device_type, price, cost in SERVICES
    ]
    skilled = {s[0]: [p["id"] for p in providers if s[5] in p["skills"]] for s in SERVICES}
    offered = [s for s in SERVICES if skilled[s[0]]]
    items = []
    for index in range(requests):
        sid, _, duration, *_ = rng.choice(offered)
        windows = []
        first = rng.randrange(8 * 12, 18 * 12) * 5
        width = max(duration, rng.choice((60, 90, 120, 180, 240)))
        windows.append((first, min(20 * 60, first + width)))
        if rng.random() < 0.35:
            second = rng.randrange(12 * 12, 19 * 12) * 5
            if second >= windows[0][1] + 30:
                windows.append((second, min(20 * 60, second + max(duration, 120))))
        windows = [(a, b) for a, b in windows if b - a >= duration]
        if not windows:
            windows = [(20 * 60 - duration - 60, 20 * 60)]
        items.append(
            {
                "id": f"a{index + 1:03d}",
                "client_id": f"c{rng.randrange(10000):04d}",
                "service": sid,
                "windows": [{"start": hhmm(a), "end": hhmm(b)} for a, b in windows],
                "preferred_provider": rng.choice(skilled[sid]) if rng.random() < 0.6 else None,
                "priority": "member" if rng.random() < 0.25 else "standard",
                "no_show_probability": round(rng.uniform(0.02, 0.35), 3),
                "locked": None,
            }
        )
    doc: dict[str, Any] = {
        "format": "clinic-day-instance/1",
        "name": f"gen-{requests}",
        "location": {"timezone": "America/Chicago", "date": "2026-12-08", "open": "08:00", "close": "20:00"},
        "time_unit_minutes": 5,
        "providers": providers,
        "rooms": rooms,
        "devices": devices,
        "services": services,
        "requests": items,
        "weights": {
            "continuity_bonus": 40.0,
            "priority_bonus": {"member": 60.0, "standard": 0.0},
            "wait_cost_per_hour": 12.0,
        },
    }
    _lock_some(doc, rng)
    return doc


def _lock_some(doc: dict[str, Any], rng: random.Random) -> None:
    """Lock some requests (3 in 10 of those booked) where a first-available schedule puts them."""
    from medspa.scheduling.solver.greedy import first_available
    from medspa.scheduling.solver.instance import parse_instance

    schedule = first_available(parse_instance(doc))
    by_id = {item["id"]: item for item in doc["requests"]}
    for assignment in schedule.assignments:
        if rng.random() < 0.3:
            by_id[assignment.request]["locked"] = {
                key: value for key, value in assignment.to_json().items() if key != "request"
            }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="+", type=int, help="numbers of requests")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        path = args.out_dir / f"gen-{size}.json"
        path.write_text(json.dumps(generate(size, args.seed), indent=1) + "\n", encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
