"""Small clinic-day instances for the solver tests, built as documents and parsed like real input."""

from __future__ import annotations

import copy
from typing import Any

from medspa.scheduling.solver.instance import Instance, parse_instance
from medspa.scheduling.solver.model import SolveResult, solve
from medspa.scheduling.solver.solution import Solution
from medspa.scheduling.solver.validate import check, replan_violations
from medspa.scheduling.solver.variables import Replan


def provider(
    pid: str, skills: list[str], start: str = "09:00", end: str = "17:00", breaks: Any = ()
) -> dict[str, Any]:
    return {
        "id": pid,
        "name": pid,
        "skills": skills,
        "shifts": [{"start": start, "end": end}],
        "breaks": [{"start": b, "end": e} for b, e in breaks],
    }


def service(
    sid: str,
    *,
    duration: int = 30,
    setup: int = 0,
    cleanup: int = 0,
    skill: str = "neurotoxin",
    room_types: tuple[str, ...] = ("injection",),
    device_type: str | None = None,
    price: float = 400.0,
    cost: float = 100.0,
) -> dict[str, Any]:
    return {
        "id": sid,
        "category": "test",
        "duration_minutes": duration,
        "setup_minutes": setup,
        "cleanup_minutes": cleanup,
        "skill": skill,
        "room_types": list(room_types),
        "device_type": device_type,
        "price": price,
        "cost": cost,
    }


def request(
    rid: str,
    service_id: str = "botox",
    windows: tuple[tuple[str, str], ...] = (("09:00", "17:00"),),
    *,
    preferred: str | None = None,
    priority: str = "standard",
    no_show: float = 0.0,
    locked: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": rid,
        "client_id": "c" + rid,
        "service": service_id,
        "windows": [{"start": s, "end": e} for s, e in windows],
        "preferred_provider": preferred,
        "priority": priority,
        "no_show_probability": no_show,
        "locked": locked,
    }


def instance_doc(
    *,
    providers: list[dict[str, Any]] | None = None,
    rooms: list[dict[str, Any]] | None = None,
    devices: list[dict[str, Any]] | None = None,
    services: list[dict[str, Any]] | None = None,
    requests: list[dict[str, Any]] | None = None,
    open_: str = "08:00",
    close: str = "20:00",
    wait_cost_per_hour: float = 12.0,
) -> dict[str, Any]:
    """A one-provider, one-room clinic offering botox, unless told otherwise."""
    return copy.deepcopy(
        {
            "format": "clinic-day-instance/1",
            "name": "test-day",
            "location": {"timezone": "America/Chicago", "date": "2026-12-03", "open": open_, "close": close},
            "time_unit_minutes": 5,
            "providers": providers if providers is not None else [provider("p1", ["neurotoxin"])],
            "rooms": rooms if rooms is not None else [{"id": "inj1", "type": "injection"}],
            "devices": devices if devices is not None else [],
            "services": services if services is not None else [service("botox")],
            "requests": requests if requests is not None else [request("a1")],
            "weights": {
                "continuity_bonus": 40.0,
                "priority_bonus": {"member": 60.0, "standard": 0.0},
                "wait_cost_per_hour": wait_cost_per_hour,
            },
        }
    )


def make_instance(**kwargs: Any) -> Instance:
    return parse_instance(instance_doc(**kwargs))


def solve_checked(
    instance: Instance, *, time_limit: float = 2.0, replan: Replan | None = None
) -> SolveResult:
    """Solve and assert that the validator finds the schedule feasible (and, when replanning, within the
    replanning rules) and scores it as the solver does."""
    result = solve(instance, time_limit_seconds=time_limit, workers=2, replan=replan)
    report = check(instance, result.solution)
    assert report.violations == ()
    if replan is not None:
        assert replan_violations(instance, replan, result.solution) == []
    assert report.feasible
    assert report.objective is not None
    assert abs(report.objective - result.objective) < 1e-6
    return result


def booked(solution: Solution) -> dict[str, tuple[str, str, str | None, str]]:
    """request -> (provider, room, device, "HH:MM") for compact exact assertions."""
    return {a.request: (a.provider, a.room, a.device, a.to_json()["start"]) for a in solution.assignments}
