"""The one source of "now": aware UTC, replaceable in tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return _now()


@contextmanager
def frozen_at(instant: datetime) -> Iterator[None]:
    """Within the block, `now()` answers `instant` (which must be aware)."""
    global _now
    if instant.tzinfo is None:
        raise ValueError("frozen_at needs an aware datetime")
    previous = _now
    _now = lambda: instant.astimezone(UTC)  # noqa: E731
    try:
        yield
    finally:
        _now = previous
