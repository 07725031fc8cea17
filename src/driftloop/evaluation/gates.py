"""Gates: the declared conditions a challenger must meet to replace the champion.

::

    gates = [
        Threshold("roc_auc", min=0.75),                   # a value bound
        Change("roc_auc", min_delta=0.0),                  # not worse than the champion
        Change("log_loss", min_delta=0.0, use_interval=True),  # better, with confidence
        SliceRegression("roc_auc", max_drop=0.02),         # no slice loses more than 0.02
        CalibrationBound(max_ece=0.05),
    ]
    verdict = evaluate_gates(gates, challenger=metrics_b, champion=metrics_a,
                             differences=paired_bootstrap(...), ...)
    verdict.passed, verdict.reasons

Direction comes from the metric registry: for a metric where lower is better (log
loss, Brier, RMSE...), the *improvement* is ``champion - challenger``; thresholds on
changes are always written as "improvement of at least ``min_delta``", so
``min_delta=0`` reads "not worse" for every metric and a negative ``min_delta``
tolerates a small regression. With ``use_interval=True`` the lower bound of the
improvement's bootstrap interval must clear the threshold, not just the observed
value.

With no champion yet, change and slice gates are skipped and say so; a metric or a
slice that a gate needs but that was not computed fails the gate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftloop.evaluation.bootstrap import Difference
from driftloop.evaluation.metrics import METRICS
from driftloop.evaluation.slices import SliceResult

__all__ = [
    "CalibrationBound",
    "Change",
    "Gate",
    "GateResult",
    "SliceRegression",
    "Threshold",
    "Verdict",
    "evaluate_gates",
]


@dataclass(frozen=True)
class Threshold:
    """The challenger's metric lies within ``[min, max]``."""

    metric: str
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        bounds = [
            f">= {self.min:g}" if self.min is not None else "",
            f"<= {self.max:g}" if self.max is not None else "",
        ]
        return f"{self.metric} {' and '.join(b for b in bounds if b)}"


@dataclass(frozen=True)
class Change:
    """The improvement over the champion is at least ``min_delta`` (absolute) and at
    least ``min_relative`` (a fraction of the champion's value)."""

    metric: str
    min_delta: float | None = None
    min_relative: float | None = None
    use_interval: bool = False

    def describe(self) -> str:
        parts = []
        if self.min_delta is not None:
            parts.append(f"improves by >= {self.min_delta:g}")
        if self.min_relative is not None:
            parts.append(f"improves by >= {self.min_relative:.2%}")
        interval = " (interval bound)" if self.use_interval else ""
        return f"{self.metric} vs champion {' and '.join(parts) or 'compared'}{interval}"


@dataclass(frozen=True)
class SliceRegression:
    """No slice's metric gets worse than the champion's by more than ``max_drop``."""

    metric: str
    max_drop: float

    def describe(self) -> str:
        return f"{self.metric} drops by <= {self.max_drop:g} in every slice"


@dataclass(frozen=True)
class CalibrationBound:
    """The challenger's expected calibration error is at most ``max_ece``."""

    max_ece: float
    metric: str = "ece"

    def describe(self) -> str:
        return f"{self.metric} <= {self.max_ece:g}"


Gate = Threshold | Change | SliceRegression | CalibrationBound


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome: passed, failed, or skipped (``passed`` is None)."""

    gate: str
    passed: bool | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": self.passed, "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    """Pass when no gate failed; every gate's result and reason is kept."""

    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed is not False for r in self.results)

    @property
    def reasons(self) -> list[str]:
        return [
            f"{'PASS' if r.passed else 'SKIP' if r.passed is None else 'FAIL'}: "
            f"{r.gate}: {r.reason}"
            for r in self.results
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "results": [r.to_dict() for r in self.results]}


def _value(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _greater_is_better(name: str) -> bool:
    return METRICS.get(name).greater_is_better if name in METRICS else True


def _threshold(gate: Threshold, challenger: Mapping[str, float]) -> GateResult:
    value = _value(challenger, gate.metric)
    if value is None:
        return GateResult(gate.describe(), False, f"{gate.metric} was not computed")
    if gate.min is not None and value < gate.min:
        return GateResult(gate.describe(), False, f"{gate.metric} = {value:.6g} < {gate.min:g}")
    if gate.max is not None and value > gate.max:
        return GateResult(gate.describe(), False, f"{gate.metric} = {value:.6g} > {gate.max:g}")
    return GateResult(gate.describe(), True, f"{gate.metric} = {value:.6g}")


def _change(
    gate: Change,
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    differences: Mapping[str, Difference] | None,
    better: Callable[[str], bool],
) -> GateResult:
    label = gate.describe()
    if champion is None:
        return GateResult(label, None, "no champion yet: change thresholds are skipped")
    a, b = _value(champion, gate.metric), _value(challenger, gate.metric)
    if a is None or b is None:
        which = "champion" if a is None else "challenger"
        return GateResult(label, False, f"{gate.metric} was not computed for the {which}")
    sign = 1.0 if better(gate.metric) else -1.0
    improvement = sign * (b - a)
    shown = f"improvement {improvement:+.6g} ({gate.metric} {a:.6g} -> {b:.6g})"
    if gate.use_interval:
        diff = (differences or {}).get(gate.metric)
        if diff is None:
            return GateResult(label, False, f"no bootstrap interval for {gate.metric}")
        improvement = sign * diff.low if sign > 0 else sign * diff.high
        shown += f", interval lower bound {improvement:+.6g}"
    if gate.min_delta is not None and improvement < gate.min_delta:
        return GateResult(label, False, f"{shown} < {gate.min_delta:g}")
    if gate.min_relative is not None:
        if a == 0:
            return GateResult(label, False, f"{shown}: a relative change from 0 is undefined")
        relative = improvement / abs(a)
        if relative < gate.min_relative:
            return GateResult(label, False, f"{shown} = {relative:+.2%} < {gate.min_relative:.2%}")
    return GateResult(label, True, shown)


def _slices(
    gate: SliceRegression,
    challenger: Sequence[SliceResult] | None,
    champion: Sequence[SliceResult] | None,
    better: Callable[[str], bool],
) -> GateResult:
    label = gate.describe()
    if champion is None:
        return GateResult(label, None, "no champion yet: slice regressions are skipped")
    if challenger is None:
        return GateResult(label, False, "no slice metrics were computed for the challenger")
    mine = {(s.column, s.label): s for s in challenger}
    sign = 1.0 if better(gate.metric) else -1.0
    worst: tuple[float, str] | None = None
    compared = 0
    for theirs in champion:
        if theirs.too_small or theirs.metrics is None:
            continue
        ours = mine.get((theirs.column, theirs.label))
        if ours is None or ours.metrics is None:
            return GateResult(label, False, f"slice {theirs.label!r} is missing for the challenger")
        a, b = _value(theirs.metrics, gate.metric), _value(ours.metrics, gate.metric)
        if a is None or b is None:
            return GateResult(
                label, False, f"{gate.metric} was not computed for slice {theirs.label!r}"
            )
        compared += 1
        drop = sign * (a - b)
        if worst is None or drop > worst[0]:
            worst = (drop, theirs.label)
    if worst is None:
        return GateResult(label, None, "no slice was large enough to compare")
    if worst[0] > gate.max_drop:
        return GateResult(
            label, False, f"slice {worst[1]!r} drops by {worst[0]:.6g} > {gate.max_drop:g}"
        )
    return GateResult(
        label, True, f"largest drop {worst[0]:+.6g} in {worst[1]!r} ({compared} slices)"
    )


def evaluate_gates(
    gates: Sequence[Gate],
    *,
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None = None,
    differences: Mapping[str, Difference] | None = None,
    challenger_slices: Sequence[SliceResult] | None = None,
    champion_slices: Sequence[SliceResult] | None = None,
    greater_is_better: Callable[[str], bool] = _greater_is_better,
) -> Verdict:
    """Judge the challenger against every gate; see the module docstring."""
    results: list[GateResult] = []
    for gate in gates:
        if isinstance(gate, Threshold):
            results.append(_threshold(gate, challenger))
        elif isinstance(gate, Change):
            results.append(_change(gate, challenger, champion, differences, greater_is_better))
        elif isinstance(gate, SliceRegression):
            results.append(_slices(gate, challenger_slices, champion_slices, greater_is_better))
        else:
            bound = Threshold(gate.metric, max=gate.max_ece)
            results.append(_threshold(bound, challenger))
    return Verdict(tuple(results))
