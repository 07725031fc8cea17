"""The examples in docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "driftloop.core.clock",
    "driftloop.data.contract",
    "driftloop.data.profile",
    "driftloop.core.artifacts",
    "driftloop.evaluation.metrics",
    "driftloop.features.aggregates",
    "driftloop.features.online",
    "driftloop.features.online_sqlite",
    "driftloop.monitoring.alerts",
    "driftloop.rollout.policy",
    "driftloop.serving.predictionlog",
    "driftloop.serving.routing",
    "driftloop.training.encoding",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    """Every >>> example in the module's docstrings passes."""
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
