"""Tests for driftloop.training.forkserver: fits forked from a warm server."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from driftloop.errors import StateError
from driftloop.training import _testing
from driftloop.training.fit import fit_in_child, preload_for
from driftloop.training.forkserver import get_server

X = np.array([[0.0], [1.0], [2.0], [3.0], [0.5], [2.5]])
Y = np.array([0, 0, 1, 1, 0, 1])


def _c(trainer: Any, **kwargs: Any) -> float:
    model: Any = fit_in_child(trainer, X, Y, task="binary", **kwargs).model
    return float(model.C)


def test_each_thread_setting_gets_its_own_server_with_the_threads_pinned() -> None:
    """OMP_NUM_THREADS in the child is the spec's threads, for 1 and for 2."""
    assert _c(_testing.threads_probe, threads=1) == 1.0
    assert _c(_testing.threads_probe, threads=2) == 2.0


def test_a_fit_cannot_leak_state_into_the_next() -> None:
    """Each child is a fresh fork: a counter the trainer bumps starts at 1 every time."""
    assert [_c(_testing.counting_trainer) for _ in range(3)] == [1.0, 1.0, 1.0]


def test_the_server_is_reused_between_fits() -> None:
    """Two fits with the same settings go through the same warm server process."""
    fit_in_child("logistic_regression", X, Y, task="binary")
    server = get_server(1, preload_for("logistic_regression"))
    fit_in_child("logistic_regression", X, Y, task="binary")
    assert get_server(1, preload_for("logistic_regression")) is server
    assert server.alive


def test_a_dead_server_is_replaced_on_the_next_fit() -> None:
    """Killing the server process loses nothing but its warmth."""
    fit_in_child("logistic_regression", X, Y, task="binary")
    server = get_server(1, preload_for("logistic_regression"))
    server._process.kill()
    server._process.wait()
    result = fit_in_child("logistic_regression", X, Y, task="binary")
    assert result.flavor == "sklearn"
    assert get_server(1, preload_for("logistic_regression")) is not server


def test_a_child_that_vanishes_is_reported_with_its_exit_code_and_stderr() -> None:
    """No report: the error names the exit code and carries what the child printed."""
    with pytest.raises(StateError, match="exit code 3") as raised:
        fit_in_child(_testing.exiting_trainer, X, Y, task="binary")
    assert "about to vanish" in raised.value.fields["stderr"]
