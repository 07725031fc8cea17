"""Where every part of driftloop reads the time from.

All logic calls :func:`now` instead of ``datetime.now``, so a whole loop can be
replayed over historical data in simulated time::

    >>> from datetime import datetime, timedelta, UTC
    >>> from driftloop.core.clock import SimulatedClock, use_clock, now
    >>> sim = SimulatedClock(datetime(2024, 1, 1, tzinfo=UTC))
    >>> with use_clock(sim):
    ...     _ = sim.advance(timedelta(hours=2))
    ...     now().isoformat()
    '2024-01-01T02:00:00+00:00'
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "SimulatedClock", "SystemClock", "ensure_utc", "now", "use_clock"]


class Clock(Protocol):
    """A source of timezone-aware UTC time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that moves only when told to; safe to share between threads."""

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._now = ensure_utc(start, what="start")

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> SimulatedClock:
        if delta < timedelta(0):
            raise ValueError("a simulated clock does not go backwards")
        with self._lock:
            self._now += delta
        return self

    def set(self, when: datetime) -> SimulatedClock:
        when = ensure_utc(when, what="when")
        with self._lock:
            if when < self._now:
                raise ValueError("a simulated clock does not go backwards")
            self._now = when
        return self


_SYSTEM = SystemClock()
_current: contextvars.ContextVar[Clock] = contextvars.ContextVar("driftloop_clock", default=_SYSTEM)


def now() -> datetime:
    """The current time from the clock in use (the system clock unless one is set)."""
    return _current.get().now()


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Use ``clock`` for :func:`now` inside the ``with`` block (per thread/task context)."""
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)


def ensure_utc(value: datetime, *, what: str = "timestamp") -> datetime:
    """Return ``value`` in UTC; a naive datetime is refused, never guessed."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{what} {value.isoformat()} has no timezone; driftloop needs aware times")
    return value.astimezone(UTC)
