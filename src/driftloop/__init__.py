"""driftloop: keep production models fresh.

The names a user types are re-exported here; everything else is reached
through its package (``driftloop.data``, ``driftloop.core``...). They are
imported on first use, so that ``import driftloop.training.fit`` (in a training
child process) or the CLI's start does not pay for the whole library.
"""

import importlib as _importlib
import typing as _typing

from driftloop._version import __version__

if _typing.TYPE_CHECKING:
    from driftloop.core.clock import SimulatedClock, use_clock
    from driftloop.data.contract import BatchRules, Column, Contract, load_contract
    from driftloop.data.sources import Source
    from driftloop.evaluation.gates import CalibrationBound, Change, SliceRegression, Threshold
    from driftloop.features.definitions import Aggregate, Entity, Feature, FeatureView
    from driftloop.loop.triggers import (
        Age,
        AllOf,
        AnyOf,
        Decay,
        Drift,
        NewData,
        Quality,
        RetrainPolicy,
        Schedule,
    )
    from driftloop.monitoring.definitions import AlertRule, Monitor
    from driftloop.project import Project
    from driftloop.rollout.policy import AnalysisMetric, RolloutPolicy, Step
    from driftloop.training.spec import Label, ModelSpec, TimeSplit

_EXPORTS = {
    "Age": "driftloop.loop.triggers",
    "AlertRule": "driftloop.monitoring.definitions",
    "AnalysisMetric": "driftloop.rollout.policy",
    "Monitor": "driftloop.monitoring.definitions",
    "RolloutPolicy": "driftloop.rollout.policy",
    "Step": "driftloop.rollout.policy",
    "Aggregate": "driftloop.features.definitions",
    "AllOf": "driftloop.loop.triggers",
    "AnyOf": "driftloop.loop.triggers",
    "BatchRules": "driftloop.data.contract",
    "CalibrationBound": "driftloop.evaluation.gates",
    "Change": "driftloop.evaluation.gates",
    "Column": "driftloop.data.contract",
    "Contract": "driftloop.data.contract",
    "Decay": "driftloop.loop.triggers",
    "Drift": "driftloop.loop.triggers",
    "Entity": "driftloop.features.definitions",
    "Feature": "driftloop.features.definitions",
    "FeatureView": "driftloop.features.definitions",
    "Label": "driftloop.training.spec",
    "ModelSpec": "driftloop.training.spec",
    "NewData": "driftloop.loop.triggers",
    "Project": "driftloop.project",
    "Quality": "driftloop.loop.triggers",
    "RetrainPolicy": "driftloop.loop.triggers",
    "Schedule": "driftloop.loop.triggers",
    "SimulatedClock": "driftloop.core.clock",
    "SliceRegression": "driftloop.evaluation.gates",
    "Source": "driftloop.data.sources",
    "Threshold": "driftloop.evaluation.gates",
    "TimeSplit": "driftloop.training.spec",
    "load_contract": "driftloop.data.contract",
    "use_clock": "driftloop.core.clock",
}

__all__ = [
    "Age",
    "Aggregate",
    "AlertRule",
    "AllOf",
    "AnalysisMetric",
    "AnyOf",
    "BatchRules",
    "CalibrationBound",
    "Change",
    "Column",
    "Contract",
    "Decay",
    "Drift",
    "Entity",
    "Feature",
    "FeatureView",
    "Label",
    "ModelSpec",
    "Monitor",
    "NewData",
    "Project",
    "Quality",
    "RetrainPolicy",
    "RolloutPolicy",
    "Schedule",
    "SimulatedClock",
    "SliceRegression",
    "Source",
    "Step",
    "Threshold",
    "TimeSplit",
    "__version__",
    "load_contract",
    "use_clock",
]


def __getattr__(name: str) -> _typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'driftloop' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
