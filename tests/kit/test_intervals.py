from datetime import UTC, datetime, timedelta

from medspa.kit import intervals


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC)


def test_normalize_merges_touching_and_overlapping_and_drops_empty() -> None:
    merged = intervals.normalize([(at(12), at(13)), (at(9), at(10)), (at(10), at(11)), (at(14), at(14))])
    assert merged == [(at(9), at(11)), (at(12), at(13))]


def test_subtract_cuts_holes_and_edges() -> None:
    free = intervals.subtract([(at(9), at(17))], [(at(8), at(9, 30)), (at(12), at(13)), (at(16), at(18))])
    assert free == [(at(9, 30), at(12)), (at(13), at(16))]


def test_subtract_of_everything_leaves_nothing() -> None:
    assert intervals.subtract([(at(9), at(10))], [(at(8), at(11))]) == []


def test_intersect_keeps_only_common_time() -> None:
    common = intervals.intersect([(at(9), at(12)), (at(13), at(17))], [(at(11), at(14))])
    assert common == [(at(11), at(12)), (at(13), at(14))]


def test_feasible_starts_honour_lead_and_tail() -> None:
    ranges = intervals.feasible_starts(
        [(at(9), at(12)), (at(13), at(13, 30))], timedelta(minutes=10), timedelta(hours=1)
    )
    assert ranges == [(at(9, 10), at(11))]


def test_covers_needs_one_interval_to_hold_the_whole_span() -> None:
    free = [(at(9), at(10)), (at(10, 30), at(12))]
    assert intervals.covers(free, at(10, 30), at(12))
    assert not intervals.covers(free, at(9, 30), at(10, 45))
    assert not intervals.covers(free, at(8), at(9, 30))
