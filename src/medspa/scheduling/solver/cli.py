"""`medspa optimize`: solve a clinic-day instance file and write the schedule.

The time limit covers the whole process, interpreter start included: the search is given what is left
of it after start-up, parsing and the greedy schedule, less a reserve for writing the result. Heavy
imports (OR-Tools) happen inside the command so `medspa --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types
from pathlib import Path

import typer
from rich.console import Console

# What the process needs after the search: extracting and checking the schedule, writing it, exiting.
RESERVE_SECONDS = 0.3

_IMPORTED_AT = time.monotonic()


def process_age_seconds() -> float:
    """Seconds since this process started (Linux `/proc`); falls back to the time since this module
    was imported where `/proc` is not available."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as uptime:
            up = float(uptime.read().split()[0])
        return max(0.0, up - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED_AT


def import_cp_model_without_pandas() -> None:
    """Import OR-Tools' CP-SAT module without loading pandas, which it imports only for its `*_series`
    helpers (never used here) and which costs well over a second of a short command's time limit.

    Only for the `optimize` command's own short-lived process: a stand-in `pandas` module with the two
    names CP-SAT's signatures mention is present during the import only, so anything importing pandas
    later gets the real one. Does nothing when pandas or CP-SAT is already loaded.
    """
    if "pandas" in sys.modules or "ortools.sat.python.cp_model" in sys.modules:
        return
    stand_in = types.ModuleType("pandas")
    stand_in.Index = type("Index", (), {})  # type: ignore[attr-defined]
    stand_in.Series = type("Series", (), {})  # type: ignore[attr-defined]
    sys.modules["pandas"] = stand_in
    try:
        import ortools.sat.python.cp_model  # noqa: F401
    finally:
        if sys.modules.get("pandas") is stand_in:
            del sys.modules["pandas"]


def optimize_command(
    instance_path: Path = typer.Argument(
        ..., help="clinic-day-instance/1 JSON file", metavar="INSTANCE.json"
    ),
    time_limit: float = typer.Option(10.0, "--time-limit", min=0.5, help="seconds for the whole run"),
    output: Path = typer.Option(..., "--output", help="where to write the clinic-day-solution/1 JSON"),
    explain: bool = typer.Option(False, "--explain", help="print why each request is booked or not"),
    current: Path | None = typer.Option(
        None, "--current", help="replan: the schedule before the change (clinic-day-solution/1)"
    ),
    max_moves: int | None = typer.Option(None, "--max-moves", min=0, help="replan: bookings that may move"),
    move_cost: float = typer.Option(0.0, "--move-cost", min=0.0, help="replan: dollars per moved booking"),
    workers: int = typer.Option(8, "--workers", min=1, help="CP-SAT search workers"),
    seed: int = typer.Option(0, "--seed", help="random seed of the search"),
) -> None:
    """Optimize a clinic day: pick the requests to book and their provider, room, device and start."""
    err = Console(stderr=True, soft_wrap=True)
    deadline = time.monotonic() - process_age_seconds() + time_limit

    import_cp_model_without_pandas()
    from medspa.scheduling.solver.errors import SolverInputError
    from medspa.scheduling.solver.instance import load_instance
    from medspa.scheduling.solver.model import Progress, solve
    from medspa.scheduling.solver.solution import moves, parse_solution, write_solution
    from medspa.scheduling.solver.variables import Replan

    try:
        instance = load_instance(instance_path)
        replan = None
        if current is not None:
            replan = Replan(
                parse_solution(json.loads(current.read_text(encoding="utf-8"))), max_moves, move_cost
            )
    except OSError as error:
        err.print(f"[red]error:[/red] cannot read {error.filename}: {error.strerror}")
        raise typer.Exit(2) from None
    except json.JSONDecodeError as error:
        err.print(f"[red]error:[/red] {current}: not valid JSON: {error}")
        raise typer.Exit(2) from None
    except SolverInputError as error:
        err.print(f"[red]error:[/red] {instance_path}: {error.detail}", highlight=False)
        raise typer.Exit(2) from None

    flexible = sum(1 for r in instance.requests if r.locked is None)
    err.print(
        f"{instance.name}: {len(instance.requests)} requests ({flexible} flexible), "
        f"{len(instance.providers)} providers, {len(instance.rooms)} rooms, {len(instance.devices)} devices",
        highlight=False,
    )

    offset = process_age_seconds()

    def show(event: Progress) -> None:
        # Seconds since the process started, so the trace shows what a caller waits for.
        err.print(
            f"  {offset + event.seconds:6.2f} s  objective {event.objective:12,.2f}  {event.phase}",
            highlight=False,
        )

    budget = deadline - time.monotonic() - RESERVE_SECONDS
    result = solve(
        instance,
        time_limit_seconds=max(0.0, budget),
        workers=workers,
        replan=replan,
        seed=seed,
        on_progress=show,
    )
    write_solution(result.solution, output)
    booked = len(result.solution.assignments)
    summary = (
        f"{instance.name}: objective {result.objective:,.2f} (greedy {result.greedy_objective:,.2f}), "
        f"{booked}/{len(instance.requests)} booked, from {result.source}"
    )
    if result.bound is not None:
        summary += f", proven bound {result.bound:,.2f}"
    if replan is not None:
        summary += f", {moves(replan.current, result.solution)} moved"
    err.print(summary + f" -> {output}", highlight=False)
    if explain:
        from medspa.scheduling.solver.explain import explain as explain_schedule

        _print_explanation(explain_schedule(instance, result.solution, result.unbookable))


def _print_explanation(explanation: object) -> None:
    """One line per request (greppable, never wrapped), then the objective by term."""
    from medspa.scheduling.solver.explain import Explanation

    assert isinstance(explanation, Explanation)
    out = Console(soft_wrap=True, highlight=False)
    out.print("[bold]request  service              status          value  reason[/bold]")
    for item in explanation.requests:
        out.print(
            f"{item.request:8} {item.service:20} {item.status:10} {item.value:10,.2f}  {item.reason}",
            markup=False,
        )
    out.print("[bold]objective by term[/bold]")
    for name, value in explanation.objective.as_dict().items():
        out.print(f"  {name:18} {value:12,.2f}", markup=False)
