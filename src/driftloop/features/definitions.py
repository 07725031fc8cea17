"""Entities and feature views: what a feature is, where it comes from, how long it lives.

::

    customer = Entity("customer", keys={"customer_id": "string"})

    # the latest value of columns (or DuckDB expressions) per entity
    profile = FeatureView(
        "customer_profile", entity=customer, source="customers", ttl="30d",
        features=[Feature("age", "int", default=-1),
                  Feature("is_premium", "bool", default=False, expr="tier = 'gold'")],
    )

    # windowed aggregates per entity, point-in-time correct
    spend = FeatureView(
        "customer_spend", entity=customer, source="transactions",
        aggregates=[Aggregate("amount", "sum", "7d", default=0.0),
                    Aggregate("amount", "count", "1d", default=0)],
    )

A view's version is the sha256 of its definition: a changed definition is a new
version and the old one stays usable (as ``"customer_spend@<version>"``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import pyarrow as pa

from driftloop.core.config import parse_duration
from driftloop.core.hashing import sha256_json
from driftloop.data.contract import format_duration
from driftloop.data.sources import Source
from driftloop.errors import DefinitionError

__all__ = [
    "AGGREGATIONS",
    "DUCK_TYPES",
    "FEATURE_TYPES",
    "Aggregate",
    "Entity",
    "Feature",
    "FeatureView",
    "Transform",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FEATURE_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
KEY_TYPES = ("int", "string")
DUCK_TYPES: dict[str, str] = {
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "string": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
}
"""The DuckDB type of each feature and key type."""
AGGREGATIONS = ("count", "sum", "mean", "min", "max", "last")

Transform = Callable[[pa.Table], pa.Table]
"""A Python transformation: the source's rows in, rows with the features out (Arrow)."""


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefinitionError(
            f"{kind} name {name!r} must start with a letter or _ and use only letters, digits and _"
        )


@dataclass(frozen=True)
class Entity:
    """What features describe: one or more join keys with their types (int or string)."""

    name: str
    keys: Mapping[str, Literal["int", "string"]]
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("entity", self.name)
        if not self.keys:
            raise DefinitionError(f"entity {self.name!r} needs at least one join key")
        for key, type_ in self.keys.items():
            _check_name("join key", key)
            if type_ not in KEY_TYPES:
                raise DefinitionError(
                    f"entity {self.name!r}: join key {key!r} has type {type_!r}; "
                    f"use one of {', '.join(KEY_TYPES)}"
                )

    @property
    def join_keys(self) -> list[str]:
        return list(self.keys)

    def arrow_types(self) -> dict[str, pa.DataType]:
        return {k: FEATURE_TYPES[t] for k, t in self.keys.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "keys": dict(self.keys), "description": self.description}


@dataclass(frozen=True)
class Feature:
    """A feature taken as the latest value per entity.

    ``expr`` is a DuckDB SQL expression over the source's columns (default: the
    column of the same name). ``default`` is served when the entity has no value
    within the view's TTL.
    """

    name: str
    type: Literal["int", "float", "bool", "string", "timestamp"]
    default: Any = None
    expr: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        if self.type not in FEATURE_TYPES:
            raise DefinitionError(
                f"feature {self.name!r} has type {self.type!r}; use one of "
                f"{', '.join(FEATURE_TYPES)}"
            )
        _check_default(self.name, self.type, self.default)

    @property
    def arrow_type(self) -> pa.DataType:
        return FEATURE_TYPES[self.type]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "default": _json_default(self.default),
            "expr": self.expr or self.name,
            "description": self.description,
        }


@dataclass(frozen=True)
class Aggregate:
    """A windowed aggregate of a source column per entity, over ``[t - window, t)``.

    ``function`` is one of count, sum, mean, min, max, last. The feature is named
    ``<column>_<function>_<window>`` (e.g. ``amount_sum_7d``) unless ``name`` is given.
    """

    column: str
    function: Literal["count", "sum", "mean", "min", "max", "last"]
    window: str | timedelta
    default: Any = None
    name: str | None = None
    type: Literal["int", "float", "bool", "string", "timestamp"] | None = None

    def __post_init__(self) -> None:
        _check_name("aggregate column", self.column)
        if self.function not in AGGREGATIONS:
            raise DefinitionError(
                f"aggregate of {self.column!r}: function {self.function!r} is not one of "
                f"{', '.join(AGGREGATIONS)}"
            )
        try:
            window = parse_duration(self.window)
        except ValueError as exc:
            raise DefinitionError(f"aggregate of {self.column!r}: window: {exc}") from None
        if window <= timedelta(0):
            raise DefinitionError(f"aggregate of {self.column!r}: window must be positive")
        object.__setattr__(self, "window", window)
        if self.name is not None:
            _check_name("feature", self.name)
        if self.type is None:
            object.__setattr__(self, "type", "int" if self.function == "count" else "float")
        _check_default(self.feature_name, str(self.type), self.default)

    @property
    def window_delta(self) -> timedelta:
        assert isinstance(self.window, timedelta)
        return self.window

    @property
    def feature_name(self) -> str:
        return self.name or f"{self.column}_{self.function}_{window_label(self.window_delta)}"

    @property
    def arrow_type(self) -> pa.DataType:
        return FEATURE_TYPES[str(self.type)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.feature_name,
            "column": self.column,
            "function": self.function,
            "window": format_duration(self.window_delta),
            "type": self.type,
            "default": _json_default(self.default),
        }


def window_label(value: timedelta) -> str:
    """``7d``, ``28d``, ``6h``, ``15m``, ``90s``: days rather than weeks, as windows are
    usually written."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return format_duration(value)


def _check_default(name: str, type_: str, default: Any) -> None:
    if default is None:
        return
    try:
        pa.array([default], type=FEATURE_TYPES[type_])
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        raise DefinitionError(f"feature {name!r}: default {default!r} is not a {type_}") from None


def _json_default(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _code_hash(fn: Transform) -> str:
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = getattr(fn, "__qualname__", repr(fn))
    return hashlib.sha256(source.encode()).hexdigest()


@dataclass(frozen=True)
class FeatureView:
    """Features of one entity computed from one source, point-in-time correct.

    ``event_time`` defaults to the source contract's event-time column.
    ``created_time`` names a column holding when each row became known; when set,
    a training row at time t only sees rows with created time <= t (unless
    ``known_at_only=False``). ``ttl`` bounds how old a value may be (offline and
    online); ``None`` means forever. Give ``features`` (latest values, optionally as
    DuckDB expressions, optionally after a Python ``transform``) or ``aggregates``
    (windowed), not both.
    """

    name: str
    entity: Entity
    source: str | Source
    features: Sequence[Feature] = ()
    aggregates: Sequence[Aggregate] = ()
    ttl: str | timedelta | None = None
    event_time: str | None = None
    created_time: str | None = None
    known_at_only: bool = True
    transform: Transform | None = field(default=None, compare=False)
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("feature view", self.name)
        if not isinstance(self.entity, Entity):
            raise DefinitionError(f"feature view {self.name!r}: entity must be an Entity")
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "aggregates", tuple(self.aggregates))
        if bool(self.features) == bool(self.aggregates):
            raise DefinitionError(
                f"feature view {self.name!r}: give either features or aggregates "
                "(one kind per view)"
            )
        if self.aggregates and self.transform is not None:
            raise DefinitionError(
                f"feature view {self.name!r}: a transform applies to features, not aggregates"
            )
        if self.ttl is not None:
            try:
                ttl = parse_duration(self.ttl)
            except ValueError as exc:
                raise DefinitionError(f"feature view {self.name!r}: ttl: {exc}") from None
            if ttl <= timedelta(0):
                raise DefinitionError(f"feature view {self.name!r}: ttl must be positive")
            object.__setattr__(self, "ttl", ttl)
        names = self.feature_names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DefinitionError(
                f"feature view {self.name!r}: feature {dupes[0]!r} is defined twice"
            )
        clash = sorted(set(names) & set(self.entity.keys))
        if clash:
            raise DefinitionError(
                f"feature view {self.name!r}: feature {clash[0]!r} has the name of a join key"
            )

    @property
    def source_name(self) -> str:
        return self.source.name if isinstance(self.source, Source) else self.source

    @property
    def ttl_delta(self) -> timedelta | None:
        return self.ttl if isinstance(self.ttl, timedelta) else None

    @functools.cached_property
    def feature_names(self) -> list[str]:
        if self.aggregates:
            return [a.feature_name for a in self.aggregates]
        return [f.name for f in self.features]

    @functools.cached_property
    def feature_types(self) -> dict[str, pa.DataType]:
        if self.aggregates:
            return {a.feature_name: a.arrow_type for a in self.aggregates}
        return {f.name: f.arrow_type for f in self.features}

    @functools.cached_property
    def defaults(self) -> dict[str, Any]:
        if self.aggregates:
            return {a.feature_name: a.default for a in self.aggregates}
        return {f.name: f.default for f in self.features}

    def to_dict(self) -> dict[str, Any]:
        """The canonical definition, as stored and hashed."""
        body: dict[str, Any] = {
            "name": self.name,
            "entity": self.entity.to_dict(),
            "source": self.source_name,
            "event_time": self.event_time,
            "created_time": self.created_time,
            "known_at_only": self.known_at_only,
            "ttl": format_duration(self.ttl_delta) if self.ttl_delta else None,
            "description": self.description,
        }
        if self.aggregates:
            body["aggregates"] = [a.to_dict() for a in self.aggregates]
        else:
            body["features"] = [f.to_dict() for f in self.features]
        if self.transform is not None:
            body["transform"] = {
                "name": getattr(self.transform, "__qualname__", repr(self.transform)),
                "code_sha256": _code_hash(self.transform),
            }
        return body

    @functools.cached_property
    def version(self) -> str:
        """The first 16 hex digits of the sha256 of :meth:`to_dict`."""
        return sha256_json(self.to_dict())[:16]

    @property
    def ref(self) -> str:
        """``name@version``: the exact version, usable after the definition changes."""
        return f"{self.name}@{self.version}"
