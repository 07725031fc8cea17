"""driftloop: keep production models fresh.

The names a user types are re-exported here; everything else is reached
through its package (``driftloop.data``, ``driftloop.core``...).
"""

from driftloop._version import __version__
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.data.contract import BatchRules, Column, Contract, load_contract
from driftloop.data.sources import Source
from driftloop.features.definitions import Aggregate, Entity, Feature, FeatureView
from driftloop.project import Project

__all__ = [
    "Aggregate",
    "BatchRules",
    "Column",
    "Contract",
    "Entity",
    "Feature",
    "FeatureView",
    "Project",
    "SimulatedClock",
    "Source",
    "__version__",
    "load_contract",
    "use_clock",
]
