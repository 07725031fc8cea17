"""Rollout policies: steps, analysis metrics and their conditions, validated with an
error that names the field; measurements judged by Argo Rollouts' rules."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from driftloop.errors import DefinitionError
from driftloop.rollout.policy import AnalysisMetric, Condition, RolloutPolicy, Step, judge


def test_the_default_policy_has_no_shadow_three_steps_and_two_checks() -> None:
    """Without arguments: canary 10/50/100 %, a measurement a minute, error rate and
    latency checks, fail at the first failure, roll back within 30 minutes."""
    policy = RolloutPolicy()
    assert not policy.has_shadow
    assert [s.weight for s in policy.canary_steps] == [10, 50, 100]
    assert policy.interval_length == timedelta(minutes=1)
    assert [(m.name, m.kind) for m in policy.analysis] == [
        ("error_rate", "error_rate"),
        ("latency_p99", "latency"),
    ]
    assert (policy.failure_limit, policy.inconclusive_limit) == (0, 3)
    assert policy.rollback_length == timedelta(minutes=30)


def test_steps_may_be_weights_pairs_or_steps() -> None:
    """A bare weight lasts step_duration; a pair is (weight, duration)."""
    policy = RolloutPolicy(steps=[5, (25, "5m"), Step(100, "1h")], step_duration="2m")
    assert [(s.weight, s.length) for s in policy.canary_steps] == [
        (5, timedelta(minutes=2)),
        (25, timedelta(minutes=5)),
        (100, timedelta(hours=1)),
    ]


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"steps": []}, "steps"),
        ({"steps": [50, 10]}, "steps[1]"),
        ({"steps": [0, 10]}, "steps"),
        ({"steps": [10, 150]}, "steps"),
        ({"steps": ["ten"]}, "steps[0]"),
        ({"interval": "soon"}, "interval"),
        ({"interval": "0s"}, "interval"),
        ({"shadow": "-1m"}, "shadow"),
        ({"shadow_requests": 0}, "shadow_requests"),
        ({"failure_limit": -1}, "failure_limit"),
        ({"inconclusive_limit": 1.5}, "inconclusive_limit"),
        ({"rollback_window": "a while"}, "rollback_window"),
        ({"metrics": ["error_rate", "error_rate"]}, "metrics"),
        ({"metrics": [42]}, "metrics[0]"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(changes: dict[str, object], named: str) -> None:
    """Each invalid field raises a DefinitionError whose message names it."""
    with pytest.raises(DefinitionError, match=f"rollout policy: {re.escape(named)}"):
        RolloutPolicy(**changes)  # type: ignore[arg-type]


def test_a_metric_kind_follows_from_its_name() -> None:
    """latency_p95 is the 95th percentile, roc_auc_delta the live AUC difference."""
    latency = AnalysisMetric("latency_p95")
    delta = AnalysisMetric("roc_auc_delta")
    assert (latency.kind, latency.percentile) == ("latency", 95.0)
    assert (delta.kind, delta.metric, delta.over) == ("metric_delta", "roc_auc", "rollout")
    assert (delta.success, delta.failure) == (">= -0.01", "< -0.05")
    drift = AnalysisMetric("shift", kind="prediction_drift", statistic="ks", failure="< 0.001")
    assert (drift.success, drift.over) == (None, "interval")


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"name": "Bad Name"}, "name must match"),
        ({"name": "mystery"}, "kind None is not one of"),
        ({"name": "x", "kind": "latency", "percentile": 120}, "percentile"),
        ({"name": "x", "kind": "prediction_drift", "statistic": "t"}, "statistic 't'"),
        ({"name": "x", "kind": "metric_delta"}, "needs metric="),
        ({"name": "bogus_delta"}, "unknown metric 'bogus'"),
        ({"name": "log_loss_delta"}, "better when lower"),
        ({"name": "error_rate", "success": "below 1%"}, "success: 'below 1%' is not a condition"),
        ({"name": "error_rate", "min_rows": 0}, "min_rows"),
        ({"name": "error_rate", "over": "day"}, "over must be"),
    ],
)
def test_a_bad_metric_is_refused_naming_the_field(kwargs: dict[str, object], problem: str) -> None:
    """Each invalid metric says which metric and which field."""
    with pytest.raises(DefinitionError, match="rollout policy: metric") as caught:
        AnalysisMetric(**kwargs)  # type: ignore[arg-type]
    assert problem in str(caught.value)


def test_conditions_compare_with_a_number_or_the_champion() -> None:
    """'<= champion * 1.5 + 10' is relative to the champion's figure in the window."""
    assert Condition.parse("< 0.01").holds(0.005, None) is True
    relative = Condition.parse("<= champion * 1.5 + 10")
    assert relative.holds(40.0, champion=20.0) is True
    assert relative.holds(40.5, champion=20.0) is False
    assert relative.holds(1.0, champion=None) is None
    assert str(Condition.parse(">champion-2")) == "> champion - 2"


def test_a_measurement_is_judged_by_argo_rollouts_rules() -> None:
    """Failure wins; neither condition met is inconclusive; a lone success condition
    missed is a failure; a lone failure condition missed is a success."""
    success, failure = Condition.parse("< 0.01"), Condition.parse(">= 0.05")
    assert judge(success, failure, 0.001, None)[0] == "successful"
    assert judge(success, failure, 0.02, None)[0] == "inconclusive"
    assert judge(success, failure, 0.05, None)[0] == "failed"
    assert judge(Condition.parse("< 1"), Condition.parse("> 0"), 0.5, None)[0] == "failed"
    assert judge(success, None, 0.02, None)[0] == "failed"
    assert judge(None, failure, 0.02, None)[0] == "successful"
    assert judge(None, None, 99.0, None)[0] == "successful"
    assert judge(Condition.parse("< champion"), None, 1.0, None)[0] == "inconclusive"


def test_a_policy_round_trips_through_its_stored_form() -> None:
    """What a rollout stores reads back as the same policy."""
    policy = RolloutPolicy(
        shadow="30m",
        shadow_requests=500,
        steps=[5, 25, 100],
        metrics=[
            AnalysisMetric("error_rate", success="< 0.02"),
            AnalysisMetric("roc_auc_delta", min_labelled=200, inconclusive_limit=50),
            "prediction_drift",
        ],
        rollback_window="2h",
    )
    assert RolloutPolicy.from_dict(policy.to_dict()) == policy
    assert policy.to_dict()["steps"][0] == {"weight": 5.0, "duration": "10m"}
