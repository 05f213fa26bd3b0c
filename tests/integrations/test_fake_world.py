"""The fakes' world keeps a real calendar's rules, so what it sends can land in ours: nobody booked twice
at once, only future times within the day's hours, and no visit marked done before it started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import combinations
from zoneinfo import ZoneInfo

from medspa.integrations.fakes.world import CLOSES, HOLDING, OPENS, World


def test_a_long_run_of_changes_never_double_books_or_books_the_past() -> None:
    now = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)
    world = World(seed=3, clock=lambda: now)
    changes = world.change(3000)
    assert {c.action for c in changes} >= {"created", "updated", "cancelled"}
    local_now = now.astimezone(ZoneInfo("America/New_York")).replace(tzinfo=None)
    holding = [a for a in world.appointments.values() if a.status in HOLDING]
    assert len(holding) > 100
    for first, second in combinations(holding, 2):
        if first.staff_id == second.staff_id or first.client_id == second.client_id:
            assert first.ends <= second.starts or second.ends <= first.starts, (first, second)
    for appointment in world.appointments.values():
        assert appointment.starts > local_now
        assert appointment.starts.time() >= OPENS
        assert appointment.ends.time() <= CLOSES
        assert appointment.status not in ("arrived", "completed", "no_show")  # none has started yet


def test_visits_are_marked_done_only_once_started() -> None:
    now = [datetime(2026, 12, 5, 15, 0, tzinfo=UTC)]
    world = World(seed=5, clock=lambda: now[0])
    world.change(400)
    now[0] += timedelta(days=40)  # every appointment has started by now
    world.change(400)
    assert {a.status for a in world.appointments.values()} & {"arrived", "completed", "no_show"}
