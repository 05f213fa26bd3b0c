"""Hard: a provider gives one treatment at a time: their treatment intervals `[t, t + duration)`,
locked bookings included, do not overlap.
"""

from __future__ import annotations

from medspa.scheduling.solver.variables import ScheduleModel


def post(schedule: ScheduleModel) -> None:
    for provider in schedule.instance.providers:
        intervals = [interval for interval, _ in schedule.intervals.get(f"provider:{provider.id}", [])]
        if len(intervals) > 1:
            schedule.model.add_no_overlap(intervals)
