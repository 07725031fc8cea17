"""Model specs: what a model is trained on, how, and what it must meet to ship.

A :class:`ModelSpec` is declared in the project's definitions module next to the
sources and feature views it uses::

    fraud = ModelSpec(
        "fraud",
        task="binary",
        features=["last_transaction:amount", "customer_spend:*"],
        label=Label("transactions", "is_fraud", entity="customer", known_after="1d"),
        trainer="hist_gradient_boosting",
        params={"max_iter": 200},
        split=TimeSplit(validation="7d"),
        gates=[Threshold("roc_auc", min=0.7), Change("roc_auc", min_delta=0.0)],
        slices=["channel"],
    )

The label's rows are the training examples: each row's entity keys and timestamp
(the moment a prediction would have been made) ask the feature store for the
features as known then, and its label column is the target. A label is usable only
once it is *known*: ``known_after`` after the timestamp, or at the time in the
``known_at`` column. The split is by time, never random: validation is the most
recent window (or fraction) of timestamps, training is what came before it, and a
training row whose label was not yet known when validation starts is left out, so
the validation score is what the model would really have scored.

Gates and custom metrics come from :mod:`driftloop.evaluation`; the spec only holds
them (training does not depend on evaluation).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import timedelta
from typing import Any

from driftloop.core.config import parse_duration
from driftloop.core.hashing import sha256_json
from driftloop.data.contract import format_duration
from driftloop.errors import DefinitionError
from driftloop.features.definitions import Entity
from driftloop.features.registry import parse_refs
from driftloop.training.fit import BUILTIN_TRAINERS, TASKS

__all__ = ["Label", "ModelSpec", "TimeSplit", "trainer_name"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")


def _show(value: timedelta) -> str:
    return format_duration(value) if value else "0s"


def _duration(value: timedelta | str, what: str, spec: str) -> timedelta:
    if isinstance(value, timedelta):
        out = value
    else:
        try:
            out = parse_duration(value)
        except (ValueError, TypeError) as exc:
            raise DefinitionError(f"model {spec!r}: {what}: {exc}") from None
    if out < timedelta(0):
        raise DefinitionError(f"model {spec!r}: {what} must not be negative, got {value!r}")
    return out


@dataclass(frozen=True)
class Label:
    """Where the target comes from and when it becomes known.

    ``source`` and ``column``: the registered source holding the label. ``entity``:
    the entity (or its name) whose keys, columns of the source, join the features.
    ``timestamp``: the source column with the prediction time (features are taken as
    of it). The label is known ``known_after`` after that time, or at the time held in
    the ``known_at`` column. ``positive``: for a binary task whose label is not 0/1 or
    a bool, the value that means class 1.
    """

    source: str
    column: str
    entity: Entity | str
    timestamp: str = "event_time"
    known_after: timedelta | str = "0s"
    known_at: str | None = None
    positive: Any = None

    @property
    def entity_name(self) -> str:
        return self.entity.name if isinstance(self.entity, Entity) else self.entity

    def delay(self, spec: str = "?") -> timedelta:
        return _duration(self.known_after, "label known_after", spec)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "column": self.column,
            "entity": self.entity_name,
            "timestamp": self.timestamp,
            "known_after": _show(self.delay()),
            "known_at": self.known_at,
            "positive": self.positive,
        }


@dataclass(frozen=True)
class TimeSplit:
    """Train on the past, validate on the most recent window.

    ``validation``: the length of the window (``"7d"``), ending at the newest
    timestamp; or, when None, the most recent ``fraction`` of the rows by time.
    ``gap``: a quiet period before the window whose rows are used for neither.
    """

    validation: timedelta | str | None = None
    fraction: float = 0.2
    gap: timedelta | str = "0s"

    def check(self, spec: str) -> None:
        if self.validation is not None:
            window = _duration(self.validation, "split validation", spec)
            if window <= timedelta(0):
                raise DefinitionError(f"model {spec!r}: the validation window must be positive")
        elif not 0.0 < self.fraction < 1.0:
            raise DefinitionError(
                f"model {spec!r}: split fraction must be between 0 and 1, got {self.fraction!r}"
            )
        _duration(self.gap, "split gap", spec)

    def to_delta(self) -> timedelta:
        """The validation window (only when ``validation`` is set)."""
        assert self.validation is not None
        return _duration(self.validation, "split validation", "?")

    def gap_delta(self) -> timedelta:
        return _duration(self.gap, "split gap", "?")

    def to_dict(self) -> dict[str, Any]:
        return {
            "validation": None
            if self.validation is None
            else _show(_duration(self.validation, "split validation", "?")),
            "fraction": None if self.validation is not None else self.fraction,
            "gap": _show(_duration(self.gap, "split gap", "?")),
        }


def trainer_name(trainer: str | Callable[..., object]) -> str:
    """A builtin trainer's name, or ``module.qualname`` of a user function."""
    if isinstance(trainer, str):
        return trainer
    module = getattr(trainer, "__module__", "?")
    if module.startswith("_driftloop_definitions_"):
        module = "definitions"
    return f"{module}.{getattr(trainer, '__qualname__', repr(trainer))}"


def _plain(value: Any) -> Any:
    """A JSON-ready rendering of a gate or any declared value (for the spec's hash)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **{k: _plain(v) for k, v in asdict(value).items()}}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, timedelta):
        return _show(value)
    if callable(value):
        return trainer_name(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


@dataclass(frozen=True)
class ModelSpec:
    """A model: task, features, label, trainer, split, gates and what the card says.

    ``trainer`` is a builtin name (``hist_gradient_boosting``, ``logistic_regression``,
    ``lightgbm``, ``xgboost``) or a module-level function ``(X, y, params) -> model``
    (``X`` a float matrix whose columns are the signature's inputs, categorical
    features as codes, missing values as NaN; ``y`` 0/1 for binary, 0..k-1 for
    multiclass). ``gates`` are :mod:`driftloop.evaluation.gates` objects; ``metrics``
    adds business metrics by name: a function ``fn(y, pred, rows) -> float`` or an
    :class:`~driftloop.evaluation.metrics.Metric` (which also says its direction);
    ``slices`` names columns (features or label-source columns) to slice by.
    """

    name: str
    task: str
    features: Sequence[str]
    label: Label
    trainer: str | Callable[..., object] = "hist_gradient_boosting"
    params: Mapping[str, Any] = field(default_factory=dict)
    split: TimeSplit = field(default_factory=TimeSplit)
    gates: Sequence[Any] = ()
    slices: Sequence[str] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    seed: int = 0
    time_limit: timedelta | str = "1h"
    memory_limit_mb: int | None = None
    threads: int = 1
    trust_pickle: bool = False
    resamples: int = 1000
    min_slice_size: int = 30
    description: str = ""
    intended_use: str = ""
    limitations: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise DefinitionError(
                f"model name {self.name!r} must start with a letter or _ and hold only "
                "letters, digits, _ . and -"
            )
        if self.task not in TASKS:
            raise DefinitionError(
                f"model {self.name!r}: unknown task {self.task!r}; expected one of "
                f"{', '.join(TASKS)}"
            )
        if isinstance(self.features, str) or not list(self.features):
            raise DefinitionError(f"model {self.name!r}: features must be a non-empty list")
        try:
            parse_refs(list(self.features))
        except DefinitionError as exc:
            raise DefinitionError(f"model {self.name!r}: {exc.message}") from None
        if not isinstance(self.label, Label):
            raise DefinitionError(f"model {self.name!r}: label must be a Label(...)")
        self.label.delay(self.name)
        if isinstance(self.trainer, str):
            if self.trainer not in BUILTIN_TRAINERS:
                raise DefinitionError(
                    f"model {self.name!r}: unknown builtin trainer {self.trainer!r}; expected "
                    f"one of {', '.join(sorted(BUILTIN_TRAINERS))} or a function (X, y, params)"
                )
        elif not callable(self.trainer):
            raise DefinitionError(f"model {self.name!r}: trainer must be a name or a function")
        if not isinstance(self.split, TimeSplit):
            raise DefinitionError(f"model {self.name!r}: split must be a TimeSplit(...)")
        self.split.check(self.name)
        if not 0.0 <= self.threshold <= 1.0:
            raise DefinitionError(
                f"model {self.name!r}: threshold must be in [0, 1], got {self.threshold!r}"
            )
        for name, value, low in (
            ("resamples", self.resamples, 1),
            ("min_slice_size", self.min_slice_size, 1),
            ("threads", self.threads, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise DefinitionError(
                    f"model {self.name!r}: {name} must be an integer >= {low}, got {value!r}"
                )
        if self.memory_limit_mb is not None and self.memory_limit_mb < 64:
            raise DefinitionError(f"model {self.name!r}: memory_limit_mb must be at least 64")
        if self.time_limit_s <= 0:
            raise DefinitionError(f"model {self.name!r}: time_limit must be positive")
        if isinstance(self.slices, str) or not all(isinstance(n, str) for n in self.slices):
            raise DefinitionError(f"model {self.name!r}: slices must be a list of column names")

    @property
    def time_limit_s(self) -> float:
        return _duration(self.time_limit, "time_limit", self.name).total_seconds()

    @property
    def trainer_name(self) -> str:
        return trainer_name(self.trainer)

    def to_dict(self) -> dict[str, Any]:
        """The declared spec as JSON-ready values (functions by name)."""
        return {
            "name": self.name,
            "task": self.task,
            "features": list(self.features),
            "label": self.label.to_dict(),
            "trainer": self.trainer_name,
            "params": _plain(dict(self.params)),
            "split": self.split.to_dict(),
            "gates": [_plain(g) for g in self.gates],
            "slices": list(self.slices),
            "metrics": sorted(self.metrics),
            "threshold": self.threshold,
            "seed": self.seed,
            "time_limit_s": self.time_limit_s,
            "memory_limit_mb": self.memory_limit_mb,
            "threads": self.threads,
            "trust_pickle": self.trust_pickle,
            "resamples": self.resamples,
            "min_slice_size": self.min_slice_size,
            "description": self.description,
            "intended_use": self.intended_use,
            "limitations": self.limitations,
        }

    @property
    def version(self) -> str:
        """A hash of the declared spec: it changes whenever the definition does."""
        return sha256_json(self.to_dict())[:16]
