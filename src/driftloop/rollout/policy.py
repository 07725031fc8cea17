"""What a progressive rollout does: :class:`RolloutPolicy`, its :class:`Step` s and the
:class:`AnalysisMetric` s that judge the challenger on live traffic.

A policy is declared next to the model (or passed to
:func:`driftloop.rollout.engine.start_rollout`)::

    RolloutPolicy(
        shadow="30m",                     # score a copy of every request first
        steps=[Step(5, "10m"), Step(25, "10m"), Step(50, "10m"), Step(100, "5m")],
        interval="1m",                    # one measurement per metric every minute
        metrics=[
            AnalysisMetric("error_rate", success="< 0.01", failure=">= 0.05"),
            AnalysisMetric("latency_p99", success="<= champion * 1.25 + 10"),
            AnalysisMetric("roc_auc_delta", min_labelled=200),
        ],
        failure_limit=0,                  # the first failed measurement rolls back
        inconclusive_limit=3,             # the fourth inconclusive one pauses
        rollback_window="30m",            # the old champion stays loaded this long
    )

Each measurement of a metric is **successful**, **failed** or **inconclusive** by its
two conditions, as an Argo Rollouts AnalysisTemplate decides (see
:func:`judge`): a condition is ``"<op> <number>"`` or, relative to the champion's value
in the same window, ``"<op> champion [* factor] [+|- offset]"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

from driftloop.core.config import parse_duration
from driftloop.errors import DefinitionError
from driftloop.evaluation.metrics import METRICS
from driftloop.monitoring.statistics import DEFAULT_THRESHOLDS

__all__ = [
    "KINDS",
    "AnalysisMetric",
    "Condition",
    "Kind",
    "RolloutPolicy",
    "Status",
    "Step",
    "judge",
]

Kind = Literal["error_rate", "latency", "prediction_drift", "metric_delta"]
KINDS: tuple[str, ...] = ("error_rate", "latency", "prediction_drift", "metric_delta")
Status = Literal["successful", "failed", "inconclusive"]
Scope = Literal["interval", "rollout"]

_OPS = ("<=", ">=", "<", ">")
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_CONDITION = re.compile(
    rf"^\s*(?P<op><=|>=|<|>)\s*(?:"
    rf"(?P<champion>champion)\s*(?:\*\s*(?P<factor>{_NUMBER}))?\s*"
    rf"(?:(?P<sign>[+-])\s*(?P<offset>{_NUMBER}))?"
    rf"|(?P<number>{_NUMBER}))\s*$"
)
_LATENCY = re.compile(r"^latency_p(\d{1,2}(?:\.\d+)?)$")
_DELTA = re.compile(r"^(?P<metric>[a-z][a-z0-9_]*)_delta$")
_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
_DEFAULT_CONDITIONS: dict[str, tuple[str, str]] = {
    "error_rate": ("< 0.01", ">= 0.05"),
    "latency": ("<= champion * 1.25 + 10", "> champion * 2 + 50"),
    "prediction_drift": ("< 0.1", ">= 0.25"),  # PSI: stable below 0.1, shifted above 0.25
    "metric_delta": (">= -0.01", "< -0.05"),  # for a metric where higher is better
}
_DRIFT_STATISTICS = tuple(DEFAULT_THRESHOLDS)


def _fail(where: str, problem: str) -> DefinitionError:
    return DefinitionError(f"rollout policy: {where}: {problem}")


def _duration(where: str, value: Any, *, zero: bool = False) -> timedelta:
    try:
        found = parse_duration(value)
    except (TypeError, ValueError) as exc:
        raise _fail(
            where, f"{value!r} is not a duration (e.g. '30s', '10m', '1h'): {exc}"
        ) from None
    if found < timedelta(0) or (found == timedelta(0) and not zero):
        raise _fail(where, f"must be {'at least 0' if zero else 'positive'}, got {value!r}")
    return found


def _count(where: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(where, f"must be a whole number of at least {minimum}, got {value!r}")
    return value


def _text(d: timedelta) -> str:
    """A duration as the shortest text :func:`parse_duration` reads back."""
    seconds = d.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms" if seconds else "0s"


# --- conditions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """``value <op> bound``, the bound a number or ``champion * factor + offset``.

    >>> c = Condition.parse("<= champion * 1.5 + 10")
    >>> c.holds(40.0, champion=20.0), c.holds(41.0, champion=20.0), c.holds(1.0, None)
    (True, False, None)
    >>> str(Condition.parse(">=0.05"))
    '>= 0.05'
    """

    op: str
    number: float = 0.0
    """The bound when not relative; the offset added to ``champion * factor`` when it is."""
    relative: bool = False
    factor: float = 1.0

    @classmethod
    def parse(cls, text: str, *, where: str = "condition") -> Condition:
        if not isinstance(text, str):
            raise _fail(where, f"must be a condition such as '< 0.01', got {text!r}")
        match = _CONDITION.match(text)
        if match is None:
            raise _fail(
                where,
                f"{text!r} is not a condition: write '<op> <number>' or "
                "'<op> champion [* factor] [+ offset]' with <op> one of <, <=, >, >=",
            )
        op = match["op"]
        if match["champion"] is None:
            return cls(op, _finite(where, match["number"]))
        factor = _finite(where, match["factor"]) if match["factor"] else 1.0
        offset = _finite(where, match["offset"]) if match["offset"] else 0.0
        return cls(op, -offset if match["sign"] == "-" else offset, True, factor)

    def bound(self, champion: float | None) -> float | None:
        """The number the value is compared with (None: relative, without a champion)."""
        if not self.relative:
            return self.number
        if champion is None or not math.isfinite(champion):
            return None
        return champion * self.factor + self.number

    def holds(self, value: float, champion: float | None) -> bool | None:
        """Whether ``value`` meets the condition (None: it needs the champion's value)."""
        bound = self.bound(champion)
        if bound is None:
            return None
        return {
            "<": value < bound,
            "<=": value <= bound,
            ">": value > bound,
            ">=": value >= bound,
        }[self.op]

    def __str__(self) -> str:
        if not self.relative:
            return f"{self.op} {self.number:g}"
        text = f"{self.op} champion"
        if self.factor != 1.0:
            text += f" * {self.factor:g}"
        if self.number:
            text += f" {'-' if self.number < 0 else '+'} {abs(self.number):g}"
        return text


def _finite(where: str, text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _fail(where, f"{text!r} is not a finite number")
    return value


def judge(
    success: Condition | None,
    failure: Condition | None,
    value: float,
    champion: float | None,
) -> tuple[Status, str]:
    """A measurement's status and why, by Argo Rollouts' rules: the failure condition
    wins when both hold; with both conditions, a value meeting neither is inconclusive;
    with only a success condition, missing it is a failure; with only a failure
    condition, missing it is a success; with neither, every value is successful. A
    condition relative to the champion cannot be judged without the champion's value
    (inconclusive).

    >>> judge(Condition.parse("< 0.01"), Condition.parse(">= 0.05"), 0.02, None)[0]
    'inconclusive'
    """
    shown = f"{value:.6g}"
    passed = None if success is None else success.holds(value, champion)
    failed = None if failure is None else failure.holds(value, champion)
    if (success is not None and passed is None) or (failure is not None and failed is None):
        return "inconclusive", f"{shown}: no champion value in the window to compare with"
    against = "" if champion is None else f" (champion {champion:.6g})"
    if failed:
        assert failure is not None
        return "failed", f"{shown} meets the failure condition {failure}{against}"
    if success is None and failure is None:
        return "successful", f"{shown}: the metric has no conditions"
    if success is None:
        return "successful", f"{shown} does not meet the failure condition {failure}{against}"
    if passed:
        return "successful", f"{shown} meets the success condition {success}{against}"
    if failure is None:
        return "failed", f"{shown} misses the success condition {success}{against}"
    return (
        "inconclusive",
        f"{shown} meets neither the success condition {success} nor the failure "
        f"condition {failure}{against}",
    )


# --- metrics --------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisMetric:
    """One figure measured every interval, with the conditions that judge it.

    The kind follows from the name unless given: ``"error_rate"``,
    ``"latency_p99"`` (any percentile: ``latency_p50``, ``latency_p95``...),
    ``"prediction_drift"``, ``"<metric>_delta"`` (``roc_auc_delta``: the live metric
    of the challenger minus the champion's, on labelled predictions).

    - ``error_rate``: the challenger's failed predictions over all its predictions.
    - ``latency``: the ``percentile`` of the challenger's latency, one value per request.
    - ``prediction_drift``: ``statistic`` (``psi`` by default; ``ks``, ``chisquare``,
      ``wasserstein``, ``jensenshannon``) of the challenger's predictions against the
      champion's in the same window: a p-value for the tests, the distance otherwise.
    - ``metric_delta``: ``metric`` (an evaluation metric such as ``roc_auc``) of the
      challenger minus the champion's, over the predictions labelled so far; below
      ``min_labelled`` labelled predictions on either side it is inconclusive. Both
      sides are taken in the hours when both versions served (the challenger's shadow
      copies and canary answers alike), so that days of easy and hard requests do not
      pass for a difference between versions. By default it covers the whole rollout
      so far (``over="rollout"``: labels arrive late), the other kinds the interval
      since the last measurement.

    ``success`` / ``failure``: conditions (see :class:`Condition`); when neither is
    given the kind's defaults apply. ``min_rows``: fewer challenger rows (predictions,
    requests) in the window make the measurement inconclusive. ``failure_limit`` /
    ``inconclusive_limit``: this metric's own limits (default: the policy's).
    """

    name: str
    kind: Kind | None = None
    success: str | None = None
    failure: str | None = None
    percentile: float | None = None
    statistic: str = "psi"
    metric: str | None = None
    min_rows: int = 10
    min_labelled: int = 30
    over: Scope | None = None
    failure_limit: int | None = None
    inconclusive_limit: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise _fail(
                f"metric {self.name!r}", "name must match ^[a-z][a-z0-9_.]*$ (e.g. 'error_rate')"
            )
        where = f"metric {self.name!r}"
        kind, percentile, metric = self._inferred()
        if kind not in KINDS:
            raise _fail(
                where,
                f"kind {self.kind!r} is not one of {', '.join(KINDS)} (or name the metric "
                "error_rate, latency_p99, prediction_drift or <metric>_delta)",
            )
        object.__setattr__(self, "kind", kind)
        if kind == "latency":
            if (
                isinstance(percentile, bool)
                or not isinstance(percentile, int | float)
                or not 0 < percentile <= 100
            ):
                raise _fail(where, f"percentile must be in (0, 100], got {percentile!r}")
            object.__setattr__(self, "percentile", float(percentile))
        if kind == "prediction_drift" and self.statistic not in _DRIFT_STATISTICS:
            raise _fail(
                where,
                f"statistic {self.statistic!r} is not one of {', '.join(_DRIFT_STATISTICS)}",
            )
        if kind == "metric_delta":
            if not metric:
                raise _fail(where, "a metric_delta needs metric= (e.g. 'roc_auc')")
            if metric not in METRICS:
                raise _fail(
                    where, f"unknown metric {metric!r} (known: {', '.join(METRICS.names())})"
                )
            object.__setattr__(self, "metric", metric)
        for label in ("success", "failure"):
            text = getattr(self, label)
            if text is not None:
                Condition.parse(text, where=f"{where}: {label}")
        if self.success is None and self.failure is None:
            if kind == "metric_delta" and not METRICS.get(str(metric)).greater_is_better:
                raise _fail(
                    where,
                    f"{metric} is better when lower: give success= and failure= "
                    "(e.g. success='<= 0.01', failure='> 0.05')",
                )
            success, failure = _DEFAULT_CONDITIONS[kind]
            object.__setattr__(self, "success", success)
            object.__setattr__(self, "failure", failure)
        _count(f"{where}: min_rows", self.min_rows, minimum=1)
        _count(f"{where}: min_labelled", self.min_labelled, minimum=1)
        if self.over is None:
            object.__setattr__(self, "over", "rollout" if kind == "metric_delta" else "interval")
        elif self.over not in ("interval", "rollout"):
            raise _fail(where, f"over must be 'interval' or 'rollout', got {self.over!r}")
        for label in ("failure_limit", "inconclusive_limit"):
            value = getattr(self, label)
            if value is not None:
                _count(f"{where}: {label}", value, minimum=0)

    def _inferred(self) -> tuple[str | None, float | None, str | None]:
        """The kind, percentile and metric the name implies (explicit fields win)."""
        kind: str | None = self.kind
        percentile, metric = self.percentile, self.metric
        latency = _LATENCY.match(self.name)
        delta = _DELTA.match(self.name)
        if kind is None:
            if self.name in ("error_rate", "prediction_drift"):
                kind = self.name
            elif latency is not None:
                kind = "latency"
            elif delta is not None:
                kind = "metric_delta"
        if kind == "latency" and percentile is None:
            percentile = float(latency.group(1)) if latency is not None else 99.0
        if kind == "metric_delta" and metric is None and delta is not None:
            metric = delta["metric"]
        return kind, percentile, metric

    @property
    def success_condition(self) -> Condition | None:
        return None if self.success is None else Condition.parse(self.success)

    @property
    def failure_condition(self) -> Condition | None:
        return None if self.failure is None else Condition.parse(self.failure)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "success": self.success,
            "failure": self.failure,
            "percentile": self.percentile,
            "statistic": self.statistic,
            "metric": self.metric,
            "min_rows": self.min_rows,
            "min_labelled": self.min_labelled,
            "over": self.over,
            "failure_limit": self.failure_limit,
            "inconclusive_limit": self.inconclusive_limit,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> AnalysisMetric:
        return cls(**{k: body[k] for k in body if k in _METRIC_FIELDS})


_METRIC_FIELDS = frozenset(AnalysisMetric.__dataclass_fields__)


# --- steps and the policy ---------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A canary step: ``weight`` percent of the routing keys go to the challenger for
    ``duration`` (e.g. ``Step(25, "10m")``)."""

    weight: float
    duration: str | timedelta = "10m"

    def __post_init__(self) -> None:
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise _fail("steps", f"weight {weight!r} must be a number of percent")
        if not math.isfinite(weight) or not 0 < weight <= 100:
            raise _fail("steps", f"weight {weight!r} must be above 0 and at most 100")
        _duration(f"step at {weight:g}%: duration", self.duration)

    @property
    def length(self) -> timedelta:
        return parse_duration(self.duration)

    def to_dict(self) -> dict[str, Any]:
        return {"weight": float(self.weight), "duration": _text(self.length)}


def default_metrics() -> tuple[AnalysisMetric, ...]:
    """The checks of a policy that declares none: the error rate (successful below 1 %,
    failed from 5 %) and the 99th percentile of latency (successful within 1.25 x the
    champion's + 10 ms, failed beyond 2 x + 50 ms)."""
    return (AnalysisMetric("error_rate"), AnalysisMetric("latency_p99"))


StepLike = Step | int | float | tuple[float, str | timedelta]
MetricLike = AnalysisMetric | str


@dataclass(frozen=True)
class RolloutPolicy:
    """How a challenger is rolled out (see the module docstring).

    - ``shadow`` / ``shadow_requests``: an optional shadow phase first — the challenger
      scores a copy of every request, answering none — lasting at least ``shadow`` and
      at least ``shadow_requests`` shadowed requests (each when given).
    - ``steps``: the canary steps, increasing weights; a bare number is a weight lasting
      ``step_duration``, a pair ``(weight, duration)`` a :class:`Step`.
    - ``interval``: time between two measurements of each metric.
    - ``metrics``: the :class:`AnalysisMetric` s (a name stands for one with defaults).
    - ``failure_limit``: a metric fails the rollout when it has more failed
      measurements than this (0: the first failure rolls back); ``inconclusive_limit``:
      more inconclusive ones pause the rollout. Counted per metric over the whole
      rollout; a resume starts the counts again.
    - ``rollback_window``: after promotion, the previous champion stays loaded (staged)
      this long, so rolling back needs no load.
    - ``delay``: a window is measured this long after it ended, so that the records
      still being written have landed.
    """

    shadow: str | timedelta | None = None
    shadow_requests: int | None = None
    steps: Sequence[StepLike] = (10, 50, 100)
    step_duration: str | timedelta = "10m"
    interval: str | timedelta = "1m"
    metrics: Sequence[MetricLike] = field(default_factory=default_metrics)
    failure_limit: int = 0
    inconclusive_limit: int = 3
    rollback_window: str | timedelta = "30m"
    delay: str | timedelta = "5s"

    def __post_init__(self) -> None:
        if self.shadow is not None:
            _duration("shadow", self.shadow)
        if self.shadow_requests is not None:
            _count("shadow_requests", self.shadow_requests, minimum=1)
        _duration("step_duration", self.step_duration)
        object.__setattr__(self, "steps", self._steps())
        _duration("interval", self.interval)
        object.__setattr__(self, "metrics", self._metrics())
        _count("failure_limit", self.failure_limit, minimum=0)
        _count("inconclusive_limit", self.inconclusive_limit, minimum=0)
        _duration("rollback_window", self.rollback_window, zero=True)
        _duration("delay", self.delay, zero=True)

    def _steps(self) -> tuple[Step, ...]:
        if isinstance(self.steps, str | bytes) or not isinstance(self.steps, Sequence):
            raise _fail("steps", f"must be a list of steps or weights, got {self.steps!r}")
        if not self.steps:
            raise _fail("steps", "a rollout needs at least one canary step (e.g. [10, 50, 100])")
        steps: list[Step] = []
        for i, given in enumerate(self.steps):
            if isinstance(given, Step):
                step = given
            elif isinstance(given, tuple) and len(given) == 2:
                step = Step(given[0], given[1])
            elif isinstance(given, int | float) and not isinstance(given, bool):
                step = Step(given, self.step_duration)
            else:
                raise _fail(
                    f"steps[{i}]", f"{given!r} is not a Step, a weight or (weight, duration)"
                )
            if steps and step.weight <= steps[-1].weight:
                raise _fail(
                    f"steps[{i}]",
                    f"weight {step.weight:g} must be above the previous step's "
                    f"{steps[-1].weight:g}: weights increase",
                )
            steps.append(step)
        return tuple(steps)

    def _metrics(self) -> tuple[AnalysisMetric, ...]:
        if isinstance(self.metrics, str | bytes) or not isinstance(self.metrics, Sequence):
            raise _fail("metrics", f"must be a list of AnalysisMetric, got {self.metrics!r}")
        metrics: list[AnalysisMetric] = []
        for i, given in enumerate(self.metrics):
            metric = AnalysisMetric(given) if isinstance(given, str) else given
            if not isinstance(metric, AnalysisMetric):
                raise _fail(f"metrics[{i}]", f"{given!r} is not an AnalysisMetric or a name")
            metrics.append(metric)
        names = [m.name for m in metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise _fail("metrics", f"two metrics are named {twice[0]!r}; give distinct names")
        return tuple(metrics)

    # --- typed views ------------------------------------------------------------------

    @property
    def canary_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if isinstance(s, Step))

    @property
    def analysis(self) -> tuple[AnalysisMetric, ...]:
        return tuple(m for m in self.metrics if isinstance(m, AnalysisMetric))

    @property
    def shadow_length(self) -> timedelta | None:
        return None if self.shadow is None else parse_duration(self.shadow)

    @property
    def has_shadow(self) -> bool:
        return self.shadow is not None or self.shadow_requests is not None

    @property
    def interval_length(self) -> timedelta:
        return parse_duration(self.interval)

    @property
    def rollback_length(self) -> timedelta:
        return parse_duration(self.rollback_window)

    @property
    def delay_length(self) -> timedelta:
        return parse_duration(self.delay)

    def failure_limit_of(self, metric: AnalysisMetric) -> int:
        return self.failure_limit if metric.failure_limit is None else metric.failure_limit

    def inconclusive_limit_of(self, metric: AnalysisMetric) -> int:
        if metric.inconclusive_limit is None:
            return self.inconclusive_limit
        return metric.inconclusive_limit

    def with_changes(self, **changes: Any) -> RolloutPolicy:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    # --- storage ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "shadow": None if self.shadow_length is None else _text(self.shadow_length),
            "shadow_requests": self.shadow_requests,
            "steps": [s.to_dict() for s in self.canary_steps],
            "interval": _text(self.interval_length),
            "metrics": [m.to_dict() for m in self.analysis],
            "failure_limit": self.failure_limit,
            "inconclusive_limit": self.inconclusive_limit,
            "rollback_window": _text(self.rollback_length),
            "delay": _text(self.delay_length),
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> RolloutPolicy:
        """The policy :meth:`to_dict` gave (as stored with each rollout)."""
        return cls(
            shadow=body.get("shadow"),
            shadow_requests=body.get("shadow_requests"),
            steps=[Step(s["weight"], s["duration"]) for s in body.get("steps") or []],
            interval=body.get("interval", "1m"),
            metrics=[AnalysisMetric.from_dict(m) for m in body.get("metrics") or []],
            failure_limit=body.get("failure_limit", 0),
            inconclusive_limit=body.get("inconclusive_limit", 3),
            rollback_window=body.get("rollback_window", "30m"),
            delay=body.get("delay", "5s"),
        )
