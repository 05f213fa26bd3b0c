"""Benchmark the schedule optimizer; results go to docs/benchmarks.md between the optimizer markers.

1. Every public instance in `shared/bench/instances/`, solved by `medspa optimize --time-limit 10` as a
   separate process (wall time includes process start), scored by the outside referee
   (`shared/bench/validate.py`), against its first-available baseline and the best-known value.
2. The scaling curve: instances of 50, 100, 200 and 400 requests from `bench/generate_instances.py`,
   each solved with the same limit; the time to reach 99% of the final objective is read from the
   command's progress lines (seconds since process start), the final objective from the referee.

    python bench/optimizer.py [--shared ../shared] [--time-limit 10] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDSPA = ROOT / ".venv" / "bin" / "medspa"
START, END = "<!-- optimizer:start -->", "<!-- optimizer:end -->"
PROGRESS = re.compile(r"^\s*([0-9.]+) s\s+objective\s+([0-9,.-]+)\b")
SIZES = (50, 100, 200, 400)


def referee(shared: Path, *args: str) -> dict[str, object]:
    """The referee's JSON report."""
    completed = subprocess.run(
        [sys.executable, str(shared / "bench" / "validate.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    report: dict[str, object] = json.loads(completed.stdout)
    return report


def optimize(instance: Path, output: Path, time_limit: float) -> tuple[float, list[tuple[float, float]]]:
    """Run the command; its wall time and its progress trace (seconds since start, objective)."""
    began = time.monotonic()
    completed = subprocess.run(
        [str(MEDSPA), "optimize", str(instance), "--time-limit", str(time_limit), "--output", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - began
    if completed.returncode != 0:
        raise SystemExit(f"{instance.name}: exit {completed.returncode}: {completed.stderr[-500:]}")
    trace = []
    for line in completed.stderr.splitlines():
        match = PROGRESS.match(line)
        if match:
            trace.append((float(match.group(1)), float(match.group(2).replace(",", ""))))
    return wall, trace


def objective_of(report: dict[str, object], name: str) -> float:
    if not report.get("feasible"):
        raise SystemExit(f"{name}: the referee finds the schedule infeasible: {report.get('violations')}")
    value = report["objective"]
    assert isinstance(value, int | float)
    return float(value)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args()
    shared: Path = args.shared
    best = json.loads((shared / "bench" / "best-known.json").read_text(encoding="utf-8"))
    limit = args.time_limit
    lines = [
        "Command: `python bench/optimizer.py` (each solve is `medspa optimize --time-limit"
        f" {limit:g}` in its own process; every objective is the referee's, `shared/bench/validate.py`).",
        f"Machine: {machine()}. Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.",
        f"Single runs, on a machine shared with other work (load average {os.getloadavg()[0]:.1f} at the"
        " start): expect some noise.",
        "",
        f"| instance | baseline | ours at {limit:g} s | best-known | ratio | wall time |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    ratios = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for name in sorted(best):
            instance = shared / "bench" / "instances" / f"{name}.json"
            output = scratch / f"{name}.solution.json"
            wall, _ = optimize(instance, output, limit)
            ours = objective_of(referee(shared, str(instance), str(output)), name)
            baseline = objective_of(referee(shared, str(instance), "--baseline"), name)
            ratio = ours / best[name]["objective"]
            ratios.append(ratio)
            known = best[name]["objective"]
            lines.append(
                f"| {name} | {baseline:,.2f} | {ours:,.2f} | {known:,.2f} | {ratio:.4f} | {wall:.1f} s |"
            )
            print(lines[-1], flush=True)
        lines.append(f"| **mean** | | | | **{sum(ratios) / len(ratios):.4f}** (min {min(ratios):.4f}) | |")
        lines += [
            "",
            f"Scaling: generated instances (`bench/generate_instances.py`, seed 0), `--time-limit {limit:g}`;"
            " time to reach 99% of the final objective, in seconds since process start.",
            "",
            "| requests | providers | baseline | final | time to 99% of final |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "generate_instances.py"),
                *map(str, SIZES),
                "--out-dir",
                str(scratch),
            ],
            check=True,
            capture_output=True,
        )
        for size in SIZES:
            instance = scratch / f"gen-{size}.json"
            output = scratch / f"gen-{size}.solution.json"
            _, trace = optimize(instance, output, limit)
            final = objective_of(referee(shared, str(instance), str(output)), instance.name)
            baseline = objective_of(referee(shared, str(instance), "--baseline"), instance.name)
            reached = next((seconds for seconds, value in trace if value >= 0.99 * final), None)
            providers = len(json.loads(instance.read_text(encoding="utf-8"))["providers"])
            lines.append(
                f"| {size} | {providers} | {baseline:,.2f} | {final:,.2f} | "
                + (f"{reached:.1f} s |" if reached is not None else "not reached |")
            )
            print(lines[-1], flush=True)
    section = "\n".join(lines)
    if args.no_write:
        print(section)
        return 0
    page = ROOT / "docs" / "benchmarks.md"
    text = page.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{START}\n{section}\n{END}{tail}", encoding="utf-8")
    print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
