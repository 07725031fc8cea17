"""Trainers for the tests of :mod:`driftloop.training.fit`.

They live in the package because a child process must import them by module name,
and pytest's ``--import-mode=importlib`` gives test modules names no child can import.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def sleeping_trainer(X: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> object:
    """Sleeps for ``params["seconds"]`` (default 60) and returns nothing useful."""
    time.sleep(float(params.get("seconds", 60)))
    return None


def failing_trainer(X: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> object:
    """Raises ``ValueError`` with ``params["message"]``."""
    raise ValueError(str(params.get("message", "the trainer failed")))


def allocating_trainer(X: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> object:
    """Allocates and fills ``params["megabytes"]`` MB before fitting anything."""
    block = np.ones(int(params["megabytes"]) * 1024 * 1024 // 8)
    return float(block.sum())


_calls = [0]


def threads_probe(X: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> object:
    """A logistic regression whose ``C`` is the child's ``OMP_NUM_THREADS``."""
    import os

    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=float(os.environ["OMP_NUM_THREADS"])).fit(X, y)


def counting_trainer(X: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> object:
    """A logistic regression whose ``C`` counts this module's calls in the process."""
    from sklearn.linear_model import LogisticRegression

    _calls[0] += 1
    return LogisticRegression(C=float(_calls[0])).fit(X, y)


def exiting_trainer(X: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> object:
    """Writes to stderr and ends the process with exit code 3, reporting nothing."""
    import os
    import sys

    sys.stderr.write("about to vanish\n")
    sys.stderr.flush()
    os._exit(3)
