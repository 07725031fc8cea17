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
