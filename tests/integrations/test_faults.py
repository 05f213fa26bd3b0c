"""The fault test in small (`bench/faults.py` runs it at 10,000 events): a fake Mindbody's webhooks, 30 %
sent twice and all reordered, into `medspa serve`, while `medspa worker` is killed twice and PostgreSQL is
restarted once. Every acknowledged delivery is applied, no effect happens twice, and the system of record
ends as the source's final state. On a private PostgreSQL cluster, in the suite's PostgreSQL leg."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import POSTGRES_URL

BENCH = Path(__file__).resolve().parents[2] / "bench"
INITDB = Path("/usr/lib/postgresql/15/bin/initdb")


def faults() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("faults", BENCH / "faults.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["faults"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(POSTGRES_URL is None, reason="the suite's PostgreSQL leg runs it")
@pytest.mark.skipif(not INITDB.exists(), reason="PostgreSQL 15's initdb is not installed here")
@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("runuser") is None, reason="needs runuser as root")
def test_kills_and_a_database_restart_lose_nothing_and_repeat_nothing() -> None:
    report = faults().run(events=800, seed=11, drain_seconds=180)

    assert report.acknowledged == report.deliveries == 800
    assert len(report.chaos) == 3
    assert report.worker_starts == 3
    assert report.problems == []
    assert report.inbox.get("received", 0) == report.inbox.get("failed", 0) == 0
    assert report.effects["client.created"] > 50
    assert report.effects["appointment.cancelled"] > 20
