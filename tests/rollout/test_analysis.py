"""Measurements of a challenger against the champion in one window of the prediction
log: error rate, latency per request, prediction drift, live metric difference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from driftloop.rollout.analysis import Measurement, Subject, measure
from driftloop.rollout.policy import AnalysisMetric

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OUTPUT = {"task": "binary", "classes": [0, 1], "threshold": 0.5}
CANARY = Subject("fraud", version=2, champion=1, role="canary", outputs={1: OUTPUT, 2: OUTPUT})


def served(
    logs: Any,
    version: int,
    role: str,
    n: int,
    *,
    at: datetime = T0 + timedelta(seconds=10),
    errors: int = 0,
    latency: float = 2.0,
    prediction: Any = 0.5,
    prefix: str = "",
) -> list[str]:
    """``n`` one-instance requests answered by ``version`` as ``role``; the first
    ``errors`` of them failed."""
    ids = [f"{prefix}{role}-{i}" for i in range(n)]
    failed = [i < errors for i in range(n)]
    values = np.broadcast_to(np.asarray(prediction, dtype=float), (n,)).copy()
    values[np.array(failed, dtype=bool)] = np.nan
    logs.predictions(
        request_id=ids,
        at=at,
        version=version,
        role=role,
        prediction=values,
        latency_ms=latency,
        error=["RuntimeError: boom" if f else None for f in failed],
    )
    return ids


def one(
    metric: AnalysisMetric, logs: Any, *, end: datetime | None = None, **kw: Any
) -> Measurement:
    end = end or T0 + timedelta(minutes=1)
    found = measure(
        [metric],
        logs.log,
        kw.pop("subject", CANARY),
        start=T0,
        end=end,
        since=T0,
        now=kw.pop("now", end),
        phase="canary",
        step=0,
        **kw,
    )
    return found.measurements[0]


def test_the_error_rate_counts_failed_records_of_the_challenger(logs: Any) -> None:
    """3 failures in 100 canary records: 3 %, between success (< 1 %) and failure
    (>= 5 %): inconclusive; the champion's own rate is reported beside it."""
    served(logs, 2, "canary", 100, errors=3)
    served(logs, 1, "champion", 400, errors=1)
    m = one(AnalysisMetric("error_rate"), logs)
    assert (m.value, m.champion_value, m.rows, m.status) == (0.03, 0.0025, 100, "inconclusive")
    assert "neither" in m.reason
    assert m.details["errors"] == 3


def test_a_high_error_rate_fails(logs: Any) -> None:
    served(logs, 2, "canary", 50, errors=10)
    served(logs, 1, "champion", 50)
    m = one(AnalysisMetric("error_rate"), logs)
    assert m.status == "failed"
    assert m.reason == "error_rate 0.2 meets the failure condition >= 0.05 (champion 0)"


def test_too_few_challenger_rows_make_a_measurement_inconclusive(logs: Any) -> None:
    """min_rows guards against judging a rate on a handful of requests."""
    served(logs, 2, "canary", 4, errors=4)
    served(logs, 1, "champion", 100)
    m = one(AnalysisMetric("error_rate", min_rows=10), logs)
    assert m.status == "inconclusive"
    assert "4 challenger rows in the window, fewer than min_rows 10" in m.reason


def test_latency_takes_one_value_per_request_and_compares_with_the_champion(logs: Any) -> None:
    """A request of five instances counts once; a p99 over twice the champion's plus
    50 ms fails."""
    logs.predictions(
        request_id="batch",
        at=T0 + timedelta(seconds=5),
        version=2,
        role="canary",
        prediction=[0.1] * 5,
        latency_ms=500.0,
    )
    served(logs, 2, "canary", 20, latency=300.0)
    served(logs, 1, "champion", 40, latency=100.0)
    m = one(AnalysisMetric("latency_p99", min_rows=10), logs)
    assert m.rows == 21
    assert m.champion_value == pytest.approx(100.0)
    assert m.status == "failed"
    assert "> champion * 2 + 50" in m.reason


def test_a_relative_condition_uses_the_champions_last_figure_when_it_served_nothing(
    logs: Any,
) -> None:
    """At a 100 % step the champion has no traffic: its last judged figure is used."""
    served(logs, 2, "canary", 30, latency=3.0)
    alone = one(AnalysisMetric("latency_p99"), logs)
    assert alone.status == "inconclusive"
    assert "0 champion rows" in alone.reason
    carried = one(AnalysisMetric("latency_p99"), logs, champion_values={"latency_p99": 2.5})
    assert (carried.status, carried.champion_value) == ("successful", 2.5)
    assert carried.details["champion_carried"] is True


def test_only_the_window_and_the_challengers_role_are_measured(logs: Any) -> None:
    """Records before the window, and shadow copies of the same version, are not the
    canary's."""
    served(logs, 2, "canary", 30, errors=30, at=T0 - timedelta(seconds=1), prefix="old")
    served(logs, 2, "shadow", 30, errors=30)
    served(logs, 2, "canary", 30)
    served(logs, 1, "champion", 30)
    m = one(AnalysisMetric("error_rate"), logs)
    assert (m.value, m.rows, m.status) == (0.0, 30, "successful")
    shadow = one(AnalysisMetric("error_rate"), logs, subject=Subject("fraud", 2, 1, "shadow"))
    assert (shadow.value, shadow.status) == (1.0, "failed")


def test_prediction_drift_compares_the_two_versions_predictions(logs: Any) -> None:
    """The same distribution is stable (PSI < 0.1); a shifted one fails (PSI >= 0.25)."""
    rng = np.random.default_rng(3)
    served(logs, 1, "champion", 500, prediction=rng.beta(2, 5, 500))
    served(logs, 2, "canary", 500, prediction=rng.beta(2, 5, 500))
    same = one(AnalysisMetric("prediction_drift"), logs)
    assert same.status == "successful", same.reason
    assert same.details["statistic"] == "psi"
    served(logs, 2, "canary", 500, prediction=rng.beta(5, 2, 500), prefix="shifted")
    shifted = one(AnalysisMetric("prediction_drift"), logs)
    assert shifted.status == "failed", shifted.reason
    ks = one(AnalysisMetric("prediction_drift", statistic="ks", failure="< 0.001"), logs)
    assert ks.details["kind"] == "p-value"
    assert ks.status == "failed"


def _labelled(logs: Any, version: int, role: str, n: int, *, skill: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < 0.5).astype(float)
    scores = np.clip(skill * truth + (1 - skill) * rng.random(n), 0, 1)
    ids = served(logs, version, role, n, prediction=scores, prefix=f"s{seed}-")
    logs.labels(request_id=ids, label=truth, at=T0 + timedelta(minutes=2))


def test_metric_delta_is_the_challengers_live_metric_minus_the_champions(logs: Any) -> None:
    """A challenger scoring noise loses about 0.4 of AUC to a good champion: failed,
    once the labels have arrived; before they arrive it is inconclusive."""
    _labelled(logs, 1, "champion", 200, skill=0.6, seed=1)
    _labelled(logs, 2, "canary", 200, skill=0.0, seed=2)
    metric = AnalysisMetric("roc_auc_delta", min_labelled=50)
    early = one(metric, logs, now=T0 + timedelta(minutes=1))
    assert early.status == "inconclusive"
    assert "0 labelled challenger" in early.reason
    late = one(metric, logs, now=T0 + timedelta(minutes=3))
    assert late.status == "failed", late.reason
    assert late.value is not None
    assert late.value < -0.3
    assert late.details["labelled"] == 200
    assert late.champion_value == pytest.approx(late.details["challenger"] - late.value)


def test_metric_delta_compares_the_hours_both_versions_served(logs: Any) -> None:
    """The live difference pairs the versions hour by hour: the challenger's shadow hour
    counts beside the champion's, and an hour only the challenger served (a hard hour at
    100 %) is left out instead of being held against it."""
    rng = np.random.default_rng(7)

    def hour(version: int, role: str, start: datetime, *, skill: float, tag: str) -> None:
        n = 200
        truth = (rng.random(n) < 0.5).astype(float)
        scores = np.clip(skill * truth + (1 - skill) * rng.random(n), 0, 1)
        ids = served(logs, version, role, n, prediction=scores, at=start, prefix=tag)
        logs.labels(request_id=ids, label=truth, at=start + timedelta(minutes=30))

    first, second = T0 + timedelta(minutes=5), T0 + timedelta(hours=1, minutes=5)
    hour(1, "champion", first, skill=0.5, tag="a")  # both versions score the same hour
    hour(2, "shadow", first, skill=0.5, tag="b")
    hour(2, "canary", second, skill=0.0, tag="c")  # the challenger alone, on noise
    m = one(
        AnalysisMetric("roc_auc_delta", min_labelled=50),
        logs,
        end=T0 + timedelta(hours=2),
        now=T0 + timedelta(hours=3),
    )
    assert m.details["labelled"] == 200
    assert m.details["champion_labelled"] == 200
    assert m.status == "successful", m.reason
