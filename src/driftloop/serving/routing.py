"""Sticky, deterministic traffic assignment: which deployed version answers a request.

A request's routing value (the routing key's value, else its entity keys, else its
request id: :func:`routing_value`) is hashed into one of 10,000 buckets with BLAKE2b,
never Python's ``hash()`` (salted per process), so the same value lands in the same
bucket in every process, worker and replica, today and after a restart::

    >>> bucket("customer-42")
    1354
    >>> route(champion=3, canary=4, canary_weight=10.0, key="customer-42")
    Route(version=3, role='champion')

Buckets are handed out from 0 upwards, so raising a canary's weight only moves keys
from the champion to the canary, never back: a customer who has seen the canary
keeps seeing it while the rollout proceeds::

    >>> route(champion=3, canary=4, canary_weight=30.0, key="customer-42")
    Route(version=4, role='canary')

An A/B split divides the buckets among its arms in the sorted order of their names,
each in proportion to its weight::

    >>> route(champion=None, split={"a": 5, "b": 6}, key="customer-42")
    Route(version=5, role='split:a')
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftloop.errors import StateError

__all__ = ["BUCKETS", "Route", "bucket", "route", "routing_value"]

BUCKETS = 10_000
"""The number of buckets; a weight of 1 percent is 100 buckets."""


@dataclass(frozen=True)
class Route:
    """The version that answers a request, and in which role.

    ``role`` is ``"champion"``, ``"canary"`` or ``"split:<name>"`` for an arm of an
    A/B split.
    """

    version: int
    role: str


def bucket(value: str) -> int:
    """The bucket (0..9999) of a routing value: BLAKE2b-64 of its UTF-8 bytes, mod 10,000.

    Stable across processes, machines and Python versions (the modulo bias of a 64-bit
    hash over 10,000 buckets is below 1e-15).
    """
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def route(
    *,
    champion: int | None,
    canary: int | None = None,
    canary_weight: float = 0.0,
    split: Mapping[str, int] | None = None,
    split_weights: Mapping[str, float] | None = None,
    key: str,
) -> Route:
    """The version that answers the request whose routing value is ``key``.

    - With a non-empty ``split`` (arm name -> version), the buckets are divided among
      the arms in the sorted order of their names, in proportion to ``split_weights``
      (relative weights, equal when omitted); the champion and canary are not used.
    - Otherwise a ``canary`` gets the buckets below ``canary_weight`` percent
      (``canary_weight * 100`` buckets, rounded), the champion the rest.

    Raises ``ValueError`` for a weight outside 0..100, negative split weights or split
    weights that name other arms, and :class:`~driftloop.errors.StateError` when the key
    falls to the champion and there is none ("model has nothing deployed").
    """
    if split:
        return _split_route(split, split_weights, bucket(key))
    if not 0.0 <= canary_weight <= 100.0 or math.isnan(canary_weight):
        raise ValueError(f"canary_weight must be a percentage in 0..100, not {canary_weight}")
    if canary is not None and bucket(key) < round(canary_weight * (BUCKETS // 100)):
        return Route(canary, "canary")
    if champion is None:
        raise StateError("model has nothing deployed")
    return Route(champion, "champion")


def _split_route(split: Mapping[str, int], weights: Mapping[str, float] | None, at: int) -> Route:
    names = sorted(split)
    if weights is None:
        weights = dict.fromkeys(names, 1.0)
    elif set(weights) != set(names):
        raise ValueError(f"split weights name {sorted(weights)} but the split's arms are {names}")
    if any(not weights[n] >= 0.0 or math.isinf(weights[n]) for n in names):
        raise ValueError(f"split weights must be finite and >= 0: {dict(weights)}")
    total = math.fsum(weights[n] for n in names)
    if total <= 0.0:
        raise ValueError("split weights must not all be 0")
    cumulative = 0.0
    for name in names:
        cumulative += weights[name]
        # Boundaries from the running sum (not a sum of rounded shares), so the last
        # arm ends exactly at BUCKETS and changing one weight moves only its borders.
        if at < round(cumulative / total * BUCKETS):
            return Route(split[name], f"split:{name}")
    return Route(split[names[-1]], f"split:{names[-1]}")


def routing_value(
    request_fields: Mapping[str, Any],
    entity_keys: Mapping[str, Any] | None,
    routing_key: str | None,
    request_id: str,
) -> str:
    """The string a request is routed by.

    1. The value of ``routing_key`` when one is configured and the request carries it
       (looked up in ``request_fields``, then in ``entity_keys``);
    2. else the entity keys in canonical form: ``name=value`` sorted by name, joined
       with ``|`` (``"customer_id=42|region=eu"``);
    3. else the request id (no stickiness: each request is assigned on its own).

    Values are rendered so that a JSON number and the same digits as a string route
    alike (``42`` and ``"42"``), booleans as ``true``/``false``, times in ISO 8601.

    >>> routing_value({}, {"region": "eu", "customer_id": 42}, None, "req-1")
    'customer_id=42|region=eu'
    >>> routing_value({"session": "s-9"}, {"customer_id": 42}, "session", "req-1")
    's-9'
    """
    if routing_key is not None:
        for source in (request_fields, entity_keys or {}):
            if routing_key in source and source[routing_key] is not None:
                return _text(source[routing_key])
    if entity_keys:
        return "|".join(f"{name}={_text(entity_keys[name])}" for name in sorted(entity_keys))
    return request_id


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
