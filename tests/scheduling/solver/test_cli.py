"""`medspa optimize`: files in, files out, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from medspa.cli import app
from medspa.scheduling.solver.instance import load_instance
from medspa.scheduling.solver.solution import parse_solution
from medspa.scheduling.solver.validate import check

from .factories import instance_doc, provider, request

runner = CliRunner()


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "day.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_optimize_writes_a_feasible_schedule_and_explains_it(tmp_path: Path) -> None:
    # given two requests for one half hour with one provider
    instance_path = _write(
        tmp_path,
        instance_doc(
            providers=[provider("p1", ["neurotoxin"])],
            requests=[
                request("a1", windows=(("09:00", "09:30"),), priority="member", preferred="p1"),
                request("a2", windows=(("09:00", "09:30"),)),
            ],
        ),
    )
    output = tmp_path / "solution.json"
    # when
    result = runner.invoke(
        app, ["optimize", str(instance_path), "--time-limit", "3", "--output", str(output), "--explain"]
    )
    # then
    assert result.exit_code == 0, result.output
    solution = parse_solution(json.loads(output.read_text(encoding="utf-8")))
    report = check(load_instance(instance_path), solution)
    assert report.feasible
    assert [a.request for a in solution.assignments] == ["a1"]
    assert "booked 09:00-09:30 with p1 (the preferred provider) in inj1" in result.stdout
    assert "not booked: within the client's windows (09:00-09:30) the only provider" in result.stdout


def test_optimize_exits_2_naming_the_malformed_field(tmp_path: Path) -> None:
    # given a window off the grid
    doc = instance_doc()
    doc["requests"][0]["windows"][0]["start"] = "09:03"
    output = tmp_path / "solution.json"
    # when
    result = runner.invoke(
        app, ["optimize", str(_write(tmp_path, doc)), "--time-limit", "2", "--output", str(output)]
    )
    # then
    assert result.exit_code == 2
    assert "requests[0].windows[0].start: not on the 5-minute grid" in result.stderr
    assert not output.exists()


def test_optimize_exits_2_listing_locked_bookings_that_conflict(tmp_path: Path) -> None:
    # given two locked bookings in one room at once, with different providers
    doc = instance_doc(
        providers=[provider("p1", ["neurotoxin"]), provider("p2", ["neurotoxin"])],
        requests=[
            request("a1", locked={"provider": "p1", "room": "inj1", "device": None, "start": "10:00"}),
            request("a2", locked={"provider": "p2", "room": "inj1", "device": None, "start": "10:00"}),
        ],
    )
    output = tmp_path / "solution.json"
    # when
    result = runner.invoke(
        app, ["optimize", str(_write(tmp_path, doc)), "--time-limit", "2", "--output", str(output)]
    )
    # then
    assert result.exit_code == 2
    assert "room inj1: a1 and a2 overlap (10:00-10:30 vs 10:00-10:30)" in result.stderr
    assert not output.exists()


def test_cp_sat_is_imported_without_leaving_a_stand_in_for_pandas() -> None:
    # given a fresh interpreter
    script = (
        "import sys\n"
        "from medspa.scheduling.solver.cli import import_cp_model_without_pandas\n"
        "import_cp_model_without_pandas()\n"
        "assert 'ortools.sat.python.cp_model' in sys.modules\n"
        "assert 'pandas' not in sys.modules\n"
        "import pandas\n"
        "print(hasattr(pandas, 'DataFrame'))\n"
    )
    # when
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    # then CP-SAT is loaded, and a later import of pandas gets the real one
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "True"


def test_optimize_replans_from_a_current_schedule_within_the_move_limit(tmp_path: Path) -> None:
    # given a booked client at 09:00 and a member who can only come then
    instance_path = _write(
        tmp_path,
        instance_doc(
            requests=[
                request("a1", windows=(("09:00", "12:00"),)),
                request("a2", windows=(("09:00", "09:30"),), priority="member"),
            ]
        ),
    )
    current = tmp_path / "current.json"
    current.write_text(
        json.dumps(
            {
                "format": "clinic-day-solution/1",
                "instance": "test-day",
                "assignments": [
                    {"request": "a1", "provider": "p1", "room": "inj1", "device": None, "start": "09:00"}
                ],
            }
        ),
        encoding="utf-8",
    )
    output = tmp_path / "solution.json"
    # when no booking may move
    result = runner.invoke(
        app,
        [
            "optimize",
            str(instance_path),
            "--time-limit",
            "2",
            "--output",
            str(output),
            "--current",
            str(current),
            "--max-moves",
            "0",
        ],
    )
    # then a1 stays where it was and the member is not booked
    assert result.exit_code == 0, result.output
    solution = parse_solution(json.loads(output.read_text(encoding="utf-8")))
    assert [(a.request, a.start) for a in solution.assignments] == [("a1", 540)]
    assert ", 0 moved ->" in result.stderr
