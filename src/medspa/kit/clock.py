"""The one source of "now": aware UTC, from the clock of the context the code runs in.

A clock is injected, not flipped: the application is built with one (`create_app(clock=...)`), and
every request it handles runs with that clock in its context (`api.ClockMiddleware`), as do the threads
the request hands work to; the background worker runs with its own. Code asks `now()` and never knows which
clock answers. Outside any of these (a command, a script) the system clock answers.

The current clock lives in a context variable, so two applications with different clocks can serve in
one process at once, and a test that freezes time in its own thread (`frozen_at`) changes nothing for
any other thread or request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that always answers the same instant."""

    def __init__(self, instant: datetime) -> None:
        self.instant = _aware(instant)

    def now(self) -> datetime:
        return self.instant


class ManualClock:
    """A clock that follows the system clock until it is set, then answers the instant it was set to
    (moved by `set` and `advance`) until it is released. Safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instant: datetime | None = None

    def now(self) -> datetime:
        with self._lock:
            return self._instant if self._instant is not None else datetime.now(UTC)

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._instant = _aware(instant)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._instant = (self._instant or datetime.now(UTC)) + delta

    def release(self) -> None:
        with self._lock:
            self._instant = None


SYSTEM = SystemClock()
_current: ContextVar[Clock] = ContextVar("medspa_clock", default=SYSTEM)


def now() -> datetime:
    """The current instant, timezone-aware UTC, from the clock of this context."""
    return _current.get().now()


def current() -> Clock:
    """The clock of this context (to hand to a thread this context starts)."""
    return _current.get()


@contextmanager
def using(clock: Clock) -> Iterator[None]:
    """Within the block, in this context only, `now()` asks `clock`."""
    token = _current.set(clock)
    try:
        yield
    finally:
        _current.reset(token)


@contextmanager
def frozen_at(instant: datetime) -> Iterator[None]:
    """Within the block, in this context only, `now()` answers `instant` (which must be aware)."""
    with using(FixedClock(instant)):
        yield


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("a clock needs an aware datetime")
    return instant.astimezone(UTC)
