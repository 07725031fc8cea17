"""Sticky, deterministic traffic assignment."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest

from driftloop.errors import StateError
from driftloop.serving.routing import Route, bucket, route, routing_value

KEYS = [f"customer-{i}" for i in range(100_000)]

# Computed once with BLAKE2b-64; a change here moves real users between versions.
KNOWN_BUCKETS = {
    "": 9876,
    "a": 3343,
    "customer-1": 3485,
    "customer-42": 1354,
    "customer_id=42|region=eu": 6792,
    "é": 3743,
    "12345": 6449,
}


@pytest.fixture(scope="module")
def buckets() -> np.ndarray:
    return np.array([bucket(k) for k in KEYS])


@pytest.mark.parametrize(("value", "expected"), KNOWN_BUCKETS.items())
def test_bucket_is_stable(value: str, expected: int) -> None:
    """The bucket of a value never changes between releases."""
    assert bucket(value) == expected


def test_bucket_is_the_same_in_another_process() -> None:
    """A fresh interpreter (another hash seed) computes the same buckets."""
    code = (
        "from driftloop.serving.routing import bucket; "
        f"print([bucket(v) for v in {list(KNOWN_BUCKETS)!r}])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout
    assert out.strip() == str(list(KNOWN_BUCKETS.values()))


def test_buckets_are_uniform(buckets: np.ndarray) -> None:
    """Every tenth of the bucket range holds about a tenth of the keys."""
    assert buckets.min() >= 0
    assert buckets.max() < 10_000
    shares = np.bincount(buckets // 1000, minlength=10) / len(buckets)
    assert np.all(np.abs(shares - 0.1) < 0.01)


@pytest.mark.parametrize("weight", [1.0, 5.0, 10.0, 33.3, 50.0, 90.0])
def test_canary_share_matches_its_weight(weight: float) -> None:
    """Over 100,000 keys the canary's share is within 1 percentage point of its weight."""
    canary = sum(
        route(champion=1, canary=2, canary_weight=weight, key=k).role == "canary" for k in KEYS
    )
    assert abs(canary / len(KEYS) * 100 - weight) < 1.0


def test_the_same_key_always_gets_the_same_version() -> None:
    """Routing is a pure function of the key and the deployment state."""
    for key in KEYS[:1000]:
        first = route(champion=1, canary=2, canary_weight=20.0, key=key)
        assert all(
            route(champion=1, canary=2, canary_weight=20.0, key=key) == first for _ in range(3)
        )


def test_raising_the_weight_only_moves_keys_to_the_canary() -> None:
    """A key on the canary at one weight stays on it at every higher weight."""
    on_canary: set[str] = set()
    for weight in (0.0, 0.5, 1.0, 5.0, 12.5, 25.0, 50.0, 75.0, 99.0, 100.0):
        now = {
            k
            for k in KEYS[:20_000]
            if route(champion=1, canary=2, canary_weight=weight, key=k).role == "canary"
        }
        assert on_canary <= now
        on_canary = now
    assert len(on_canary) == 20_000


def test_zero_and_full_weights() -> None:
    """Weight 0 sends nothing to the canary, weight 100 everything."""
    assert {route(champion=1, canary=2, canary_weight=0.0, key=k) for k in KEYS[:2000]} == {
        Route(1, "champion")
    }
    assert {route(champion=1, canary=2, canary_weight=100.0, key=k) for k in KEYS[:2000]} == {
        Route(2, "canary")
    }


def test_a_weight_without_a_canary_is_ignored() -> None:
    """With no canary version, the champion answers whatever the weight."""
    assert route(champion=1, canary=None, canary_weight=50.0, key="x") == Route(1, "champion")


def test_nothing_deployed_is_a_state_error() -> None:
    """No champion, no split and no canary covering the key: a StateError."""
    with pytest.raises(StateError, match="model has nothing deployed"):
        route(champion=None, key="x")
    with pytest.raises(StateError):
        route(champion=None, canary=2, canary_weight=0.0, key="x")
    assert route(champion=None, canary=2, canary_weight=100.0, key="x") == Route(2, "canary")


@pytest.mark.parametrize("weight", [-1.0, 100.5, float("nan")])
def test_a_weight_outside_0_to_100_is_refused(weight: float) -> None:
    """The canary weight is a percentage."""
    with pytest.raises(ValueError, match=r"0\.\.100"):
        route(champion=1, canary=2, canary_weight=weight, key="x")


def test_split_divides_buckets_by_weight_in_name_order(buckets: np.ndarray) -> None:
    """Arms take consecutive bucket ranges in sorted name order, sized by weight."""
    split = {"blue": 7, "alpha": 5, "green": 9}
    weights = {"green": 1.0, "alpha": 2.0, "blue": 1.0}
    roles = [route(champion=1, split=split, split_weights=weights, key=k) for k in KEYS]
    share = {arm: sum(r.role == f"split:{arm}" for r in roles) / len(KEYS) for arm in split}
    assert share == pytest.approx({"alpha": 0.5, "blue": 0.25, "green": 0.25}, abs=0.01)
    for r, b in zip(roles, buckets, strict=True):
        expected = "alpha" if b < 5000 else "blue" if b < 7500 else "green"
        assert r == Route(split[expected], f"split:{expected}")


def test_split_without_weights_is_even() -> None:
    """Without weights every arm gets the same share; the champion is not used."""
    roles = [route(champion=None, split={"a": 1, "b": 2}, key=k).role for k in KEYS[:20_000]]
    assert roles.count("split:a") / 20_000 == pytest.approx(0.5, abs=0.01)
    assert set(roles) == {"split:a", "split:b"}


def test_split_weights_must_match_the_arms() -> None:
    """Weights naming other arms, negative or all-zero weights are refused."""
    with pytest.raises(ValueError, match="arms"):
        route(champion=1, split={"a": 1, "b": 2}, split_weights={"a": 1.0}, key="x")
    with pytest.raises(ValueError, match=">= 0"):
        route(champion=1, split={"a": 1}, split_weights={"a": -1.0}, key="x")
    with pytest.raises(ValueError, match="all be 0"):
        route(champion=1, split={"a": 1}, split_weights={"a": 0.0}, key="x")


def test_a_zero_weight_arm_gets_nothing() -> None:
    """An arm with weight 0 receives no traffic."""
    weights = {"a": 0.0, "b": 1.0}
    assert {
        route(champion=None, split={"a": 1, "b": 2}, split_weights=weights, key=k).role
        for k in KEYS[:5000]
    } == {"split:b"}


def test_routing_value_prefers_the_routing_key() -> None:
    """The routing key's value, from the request fields or the entity keys."""
    assert routing_value({"session": "s1"}, {"customer_id": 3}, "session", "r") == "s1"
    assert routing_value({}, {"customer_id": 3}, "customer_id", "r") == "3"


def test_routing_value_joins_entity_keys_canonically() -> None:
    """Entity keys are sorted name=value pairs joined by '|', whatever their order."""
    assert routing_value({}, {"b": "x", "a": 1}, None, "r") == "a=1|b=x"
    assert routing_value({}, {"a": 1, "b": "x"}, None, "r") == "a=1|b=x"
    assert routing_value({}, {"a": 42}, None, "r") == routing_value({}, {"a": "42"}, None, "r")
    assert routing_value({}, {"ok": True}, None, "r") == "ok=true"
    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert routing_value({}, {"t": when}, None, "r") == "t=2024-01-01T00:00:00+00:00"


def test_routing_value_falls_back_to_the_request_id() -> None:
    """No routing key value and no entity keys: the request id."""
    assert routing_value({}, None, None, "req-7") == "req-7"
    assert routing_value({}, {}, "session", "req-7") == "req-7"
    assert routing_value({"session": None}, {"a": 1}, "session", "req-7") == "a=1"
