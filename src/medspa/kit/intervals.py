"""Sets of half-open time intervals `[start, end)`, kept sorted and disjoint.

Availability is computed with these rather than minute by minute: a resource's free time is its working
time minus its busy time, and the starts at which it can serve a request are derived from the free
intervals in one pass.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

Interval = tuple[datetime, datetime]
# Sorts after every (instant, end) pair with the same instant; all instants here are aware UTC.
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


def normalize(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, merged, non-empty intervals."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract(base: Sequence[Interval], remove: Sequence[Interval]) -> list[Interval]:
    """`base` minus `remove`; both must be normalized. Linear in their lengths."""
    result: list[Interval] = []
    j = 0
    for start, end in base:
        current = start
        while j < len(remove) and remove[j][1] <= current:
            j += 1
        k = j
        while k < len(remove) and remove[k][0] < end:
            r_start, r_end = remove[k]
            if r_start > current:
                result.append((current, r_start))
            current = max(current, r_end)
            if current >= end:
                break
            k += 1
        if current < end:
            result.append((current, end))
    return result


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """The intersection of two normalized sets."""
    result: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if start < end:
            result.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return result


def feasible_starts(free: Sequence[Interval], lead: timedelta, tail: timedelta) -> list[Interval]:
    """Closed ranges `[first, last]` of starts `t` for which `[t - lead, t + tail)` lies in `free`.

    Returned as pairs (first, last); a start is feasible iff first <= t <= last for one pair.
    """
    ranges: list[Interval] = []
    for start, end in free:
        first, last = start + lead, end - tail
        if first <= last:
            ranges.append((first, last))
    return ranges


def covers(free: Sequence[Interval], start: datetime, end: datetime) -> bool:
    """Whether the half-open `[start, end)` lies inside one interval of a normalized set."""
    index = bisect_right(free, (start, FAR_FUTURE)) - 1
    return index >= 0 and free[index][0] <= start and end <= free[index][1]


def clip(intervals: Sequence[Interval], start: datetime, end: datetime) -> Sequence[Interval]:
    """The slice of a normalized set that overlaps `[start, end)` (the intervals are not cut)."""
    first = bisect_right(intervals, (start, FAR_FUTURE))
    if first > 0 and intervals[first - 1][1] > start:
        first -= 1
    last = bisect_right(intervals, (end, FAR_FUTURE))
    return intervals[first:last]
