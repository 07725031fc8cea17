"""What a user declares to monitor a model: :class:`Monitor` and its :class:`AlertRule` s.

A ``Monitor`` lives in the project's definitions module next to the model's spec::

    Monitor(
        model="fraud",
        window="1d",                      # tumbling daily windows; step="6h" slides them
        slices=["feature.channel"],       # performance per channel once labels arrive
        rules=[
            AlertRule("drift.detected", 0.5, column="*", for_windows=2),
            AlertRule("performance.roc_auc", 0.8, op="<", severity="critical"),
        ],
    )
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from driftloop.core.config import parse_duration
from driftloop.errors import DefinitionError
from driftloop.monitoring.statistics import DEFAULT_THRESHOLDS

__all__ = ["AlertRule", "Monitor", "default_rules"]

Op = Literal[">", ">=", "<", "<="]
Severity = Literal["info", "warning", "critical"]
_OPS = (">", ">=", "<", "<=")
_SEVERITIES = ("info", "warning", "critical")
_STATISTICS = tuple(DEFAULT_THRESHOLDS)


@dataclass(frozen=True)
class AlertRule:
    """Alert when ``metric`` (a name from :mod:`driftloop.monitoring.series`) compares
    with ``threshold`` by ``op`` in ``for_windows`` consecutive windows.

    ``column``: ``""`` the window's figure, a column name (``"feature.amount"``,
    ``"prediction"``), or ``"*"``: every column separately (one alert per column).
    ``version``: ``None`` the figure for all versions, ``"*"`` each version separately
    (latency, error rate and performance are per version).
    """

    metric: str
    threshold: float
    op: Op = ">"
    column: str = ""
    version: Literal["*"] | None = None
    for_windows: int = 1
    severity: Severity = "warning"
    name: str | None = None

    def __post_init__(self) -> None:
        where = f"alert rule {self.rule_name!r}"
        if not self.metric or not isinstance(self.metric, str):
            raise DefinitionError(f"{where}: metric must be a non-empty name")
        if self.op not in _OPS:
            raise DefinitionError(f"{where}: op must be one of {', '.join(_OPS)}, got {self.op!r}")
        if self.severity not in _SEVERITIES:
            raise DefinitionError(
                f"{where}: severity must be one of {', '.join(_SEVERITIES)}, got {self.severity!r}"
            )
        if not isinstance(self.for_windows, int) or self.for_windows < 1:
            raise DefinitionError(
                f"{where}: for_windows must be a positive integer, got {self.for_windows!r}"
            )
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float):
            raise DefinitionError(f"{where}: threshold must be a number, got {self.threshold!r}")
        if self.version not in (None, "*"):
            raise DefinitionError(f"{where}: version must be None or '*', got {self.version!r}")

    @property
    def rule_name(self) -> str:
        if self.name:
            return self.name
        target = f"[{self.column}]" if self.column else ""
        number = isinstance(self.threshold, int | float) and not isinstance(self.threshold, bool)
        threshold = f"{self.threshold:g}" if number else repr(self.threshold)
        return f"{self.metric}{target} {self.op} {threshold}"

    def holds(self, value: float | None) -> bool:
        """Whether ``value`` meets the alert condition (a missing value never does)."""
        if value is None or math.isnan(value):
            return False
        t = float(self.threshold)
        return {
            ">": value > t,
            ">=": value >= t,
            "<": value < t,
            "<=": value <= t,
        }[self.op]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.rule_name,
            "metric": self.metric,
            "threshold": self.threshold,
            "op": self.op,
            "column": self.column,
            "version": self.version,
            "for_windows": self.for_windows,
            "severity": self.severity,
        }


def default_rules() -> list[AlertRule]:
    """The rules a monitor has unless it declares its own: a column drifting two windows
    in a row, more than 10% of inputs falling back to defaults, more than 1% of a
    version's predictions failing."""
    return [
        AlertRule("drift.detected", 0.5, column="*", for_windows=2, name="column drift"),
        AlertRule("quality.missing_rate", 0.1, name="missing inputs"),
        AlertRule("error_rate", 0.01, version="*", severity="critical", name="prediction errors"),
    ]


@dataclass(frozen=True)
class Monitor:
    """How one model is monitored (see the module docstring and docs/monitoring.md).

    - ``window`` / ``step``: the window length and how far consecutive windows move
      (``step=None``: tumbling windows, step = window). The window must be a whole
      number of steps.
    - ``offset``: where steps start, after the UTC epoch's multiples of the step
      (``"5h"``: daily windows from 05:00 UTC, midnight in New York in winter); less
      than the step. It sets the first window; later ones follow the windows stored.
    - ``against``: compare each window with the reference profile of the version that
      served it (``"reference"``, its training data) or with the window before
      (``"previous"``).
    - ``statistics``: ``"driftloop"`` (default) computes Evidently's automatic choice,
      but where that is a distance a test decides (Kolmogorov-Smirnov for numbers,
      chi-square for categories), so a subtle shift in a large window is seen and a
      small window's noise is not taken for drift; ``"evidently"`` lets the choice
      decide, as Evidently does.
    - ``by_type`` / ``by_column`` / ``thresholds`` / ``correction``: as
      :func:`driftloop.monitoring.drift.detect_drift`.
    - ``slices``: prediction-log columns (``"feature.channel"``, ``"key.region"``) to
      break performance down by; ``metrics``: the performance metrics (default: the
      task's built-ins).
    - ``label_horizon``: how long after a window its performance is recomputed as
      labels arrive.
    - ``delay``: analyse a window only this long after it ended (e.g. ``"1d"`` when
      labels take a day), so its first analysis — and the alerts on its performance —
      already see the labels.
    - ``min_rows``: a window with fewer predictions gets no drift statistics.
    - ``webhook``: the URL alerts are POSTed to (default: ``monitoring.webhook_url``).
    """

    model: str
    window: str | timedelta = "1d"
    step: str | timedelta | None = None
    offset: str | timedelta = "0s"
    against: Literal["reference", "previous"] = "reference"
    statistics: Literal["driftloop", "evidently"] = "driftloop"
    by_type: Mapping[str, str] = field(default_factory=dict)
    by_column: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    correction: Literal["bh", "bonferroni"] | None = "bh"
    slices: Sequence[str] = ()
    metrics: Sequence[str] | None = None
    rules: Sequence[AlertRule] = field(default_factory=default_rules)
    label_horizon: str | timedelta = "7d"
    delay: str | timedelta = "0s"
    min_rows: int = 30
    webhook: str | None = None

    def __post_init__(self) -> None:
        where = f"monitor of {self.model!r}"
        if not self.model or not isinstance(self.model, str):
            raise DefinitionError("a monitor needs the model's name")
        for name in ("window", "label_horizon"):
            self._duration(name, getattr(self, name))
        try:
            delay = parse_duration(self.delay)
        except ValueError as exc:
            raise DefinitionError(
                f"{where}: delay {self.delay!r} is not a duration: {exc}"
            ) from None
        if delay < timedelta(0):
            raise DefinitionError(f"{where}: delay must not be negative, got {self.delay!r}")
        if self.step is not None:
            step = self._duration("step", self.step)
            window = self.window_length
            if window % step:
                raise DefinitionError(
                    f"{where}: window {window} is not a whole number of steps {step}"
                )
        try:
            offset = parse_duration(self.offset)
        except ValueError as exc:
            raise DefinitionError(
                f"{where}: offset {self.offset!r} is not a duration: {exc}"
            ) from None
        if not timedelta(0) <= offset < self.step_length:
            raise DefinitionError(
                f"{where}: offset must be at least 0 and less than the step "
                f"({self.step_length}), got {self.offset!r}"
            )
        if self.against not in ("reference", "previous"):
            raise DefinitionError(
                f"{where}: against must be 'reference' or 'previous', got {self.against!r}"
            )
        if self.statistics not in ("driftloop", "evidently"):
            raise DefinitionError(
                f"{where}: statistics must be 'driftloop' or 'evidently', got {self.statistics!r}"
            )
        for label, chosen in (("by_type", self.by_type), ("by_column", self.by_column)):
            for key, stat in chosen.items():
                if stat not in _STATISTICS:
                    raise DefinitionError(
                        f"{where}: {label}[{key!r}] is {stat!r}; known statistics: "
                        f"{', '.join(_STATISTICS)}"
                    )
        for key in self.by_type:
            if key not in ("numeric", "categorical"):
                raise DefinitionError(
                    f"{where}: by_type keys are 'numeric' and 'categorical', got {key!r}"
                )
        for key in self.thresholds:
            if key not in _STATISTICS:
                raise DefinitionError(
                    f"{where}: thresholds[{key!r}]: known statistics: {', '.join(_STATISTICS)}"
                )
        if self.correction not in ("bh", "bonferroni", None):
            raise DefinitionError(
                f"{where}: correction must be 'bh', 'bonferroni' or None, got {self.correction!r}"
            )
        if not isinstance(self.min_rows, int) or self.min_rows < 1:
            raise DefinitionError(f"{where}: min_rows must be a positive integer")
        names = [r.rule_name for r in self.rules]
        for rule in self.rules:
            if not isinstance(rule, AlertRule):
                raise DefinitionError(f"{where}: rules must be AlertRule objects")
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise DefinitionError(
                f"{where}: two rules are named {duplicated[0]!r}; give them distinct names"
            )

    def _duration(self, name: str, value: Any) -> timedelta:
        try:
            duration = parse_duration(value)
        except Exception as exc:
            raise DefinitionError(
                f"monitor of {self.model!r}: {name} {value!r} is not a duration "
                f"(e.g. '1d', '6h', '30m'): {exc}"
            ) from None
        if duration <= timedelta(0):
            raise DefinitionError(
                f"monitor of {self.model!r}: {name} must be positive, got {value!r}"
            )
        return duration

    @property
    def name(self) -> str:
        return self.model

    @property
    def window_length(self) -> timedelta:
        return parse_duration(self.window)

    @property
    def step_length(self) -> timedelta:
        return self.window_length if self.step is None else parse_duration(self.step)

    @property
    def offset_length(self) -> timedelta:
        return parse_duration(self.offset)

    @property
    def horizon(self) -> timedelta:
        return parse_duration(self.label_horizon)

    @property
    def delay_length(self) -> timedelta:
        return parse_duration(self.delay)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "window": str(self.window_length),
            "step": str(self.step_length),
            "against": self.against,
            "statistics": self.statistics,
            "by_type": dict(self.by_type),
            "by_column": dict(self.by_column),
            "thresholds": dict(self.thresholds),
            "correction": self.correction,
            "slices": list(self.slices),
            "metrics": None if self.metrics is None else list(self.metrics),
            "rules": [r.to_dict() for r in self.rules],
            "label_horizon": str(self.horizon),
            "delay": str(self.delay_length),
            "min_rows": self.min_rows,
            "webhook": self.webhook,
        }
