"""The driftloop clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from driftloop.core import clock


def test_the_system_clock_is_aware_utc() -> None:
    """now() returns a timezone-aware time in UTC."""
    value = clock.now()
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


def test_a_simulated_clock_moves_only_when_told() -> None:
    """Inside use_clock, now() reads the simulated clock, which advances on request."""
    sim = clock.SimulatedClock(datetime(2024, 1, 1, tzinfo=UTC))
    with clock.use_clock(sim):
        assert clock.now() == datetime(2024, 1, 1, tzinfo=UTC)
        sim.advance(timedelta(days=1))
        assert clock.now() == datetime(2024, 1, 2, tzinfo=UTC)
    assert clock.now().year >= 2026


def test_a_simulated_clock_never_goes_backwards() -> None:
    """Advancing by a negative delta or setting an earlier time is refused."""
    sim = clock.SimulatedClock(datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="backwards"):
        sim.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="backwards"):
        sim.set(datetime(2023, 1, 1, tzinfo=UTC))


def test_the_clock_in_use_is_per_thread_context() -> None:
    """A clock set in one thread does not leak into another."""
    sim = clock.SimulatedClock(datetime(2000, 1, 1, tzinfo=UTC))
    seen: list[datetime] = []
    with clock.use_clock(sim):
        thread = threading.Thread(target=lambda: seen.append(clock.now()))
        thread.start()
        thread.join()
    assert seen[0].year >= 2026


def test_naive_datetimes_are_refused_and_others_converted_to_utc() -> None:
    """ensure_utc converts offsets to UTC and refuses to guess a zone."""
    plus_two = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert clock.ensure_utc(plus_two) == datetime(2024, 1, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="no timezone"):
        clock.ensure_utc(datetime(2024, 1, 1))
