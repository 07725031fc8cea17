"""Data contracts: what a source promises about every batch it delivers.

A contract is declared in Python or in a YAML file::

    >>> from driftloop.data.contract import Column, Contract
    >>> c = Contract(
    ...     event_time="ts",
    ...     primary_key=("id",),
    ...     columns=(
    ...         Column("id", "string", nullable=False, regex="^tx_[0-9]+$"),
    ...         Column("ts", "timestamp", nullable=False),
    ...         Column("amount", "float", min=0),
    ...     ),
    ... )
    >>> c.column("amount").arrow_type
    DataType(double)

Contracts are versioned per source. A new version may relax the old one (add a
nullable column, widen bounds or allowed values, drop ``nullable=False``...) but
never make already accepted data invalid: :func:`compare_contracts` lists the
changes and sorts them into additive and breaking.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass as std_dataclass
from dataclasses import field
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import (
    ConfigDict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from driftloop.core.config import parse_duration
from driftloop.core.hashing import sha256_json
from driftloop.errors import ContractError

__all__ = [
    "COLUMN_TYPES",
    "BatchRules",
    "Column",
    "ColumnType",
    "Contract",
    "ContractChanges",
    "compare_contracts",
    "format_duration",
    "load_contract",
    "parse_contract",
]

ColumnType = Literal[
    "int8",
    "int16",
    "int32",
    "int64",
    "int",
    "float32",
    "float64",
    "float",
    "bool",
    "string",
    "category",
    "timestamp",
    "date",
]

_ARROW_TYPES: dict[str, pa.DataType] = {
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "int": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "category": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}
COLUMN_TYPES: tuple[str, ...] = tuple(_ARROW_TYPES)

# Widening that keeps every old value representable: allowed between contract versions.
_SAFE_WIDENING = {
    ("int8", "int16"),
    ("int8", "int32"),
    ("int8", "int64"),
    ("int8", "int"),
    ("int16", "int32"),
    ("int16", "int64"),
    ("int16", "int"),
    ("int32", "int64"),
    ("int32", "int"),
    ("int64", "int"),
    ("int", "int64"),
    ("float32", "float64"),
    ("float32", "float"),
    ("float64", "float"),
    ("float", "float64"),
    ("category", "string"),
    ("string", "category"),
}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORBID = ConfigDict(extra="forbid", arbitrary_types_allowed=False)

Bound = int | float | str


class _FieldError(ValueError):
    """A rule error raised by a whole-object check, pointing at the field at fault.

    Pydantic locates a model validator's error at the object itself; ``loc`` is
    appended so that the error names (and in YAML, points at the line of) the field.
    """

    def __init__(self, message: str, *loc: str | int) -> None:
        super().__init__(message)
        self.loc = loc


def format_duration(value: timedelta) -> str:
    """The shortest exact ``"7d"``/``"6h"``/``"15m"``/``"90s"`` form of a duration."""
    seconds = value.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds}s"


def _kind(type_: str) -> str:
    if type_.startswith("int"):
        return "int"
    if type_.startswith("float"):
        return "float"
    return type_


@dataclass(frozen=True, config=_FORBID)
class Column:
    """One column of a contract.

    ``min``/``max`` bound numbers, and timestamps or dates (as ISO strings);
    ``allowed`` lists the only values a column may hold; ``regex`` (RE2 syntax)
    must match every string; ``unique`` forbids repeated non-null values; ``pii``
    tags personal data with its kind (``"email"``, ``"name"``...).
    """

    name: str
    type: ColumnType
    nullable: bool = True
    min: Bound | None = None
    max: Bound | None = None
    allowed: tuple[str | int | float | bool, ...] | None = None
    regex: str | None = None
    unique: bool = False
    pii: str | None = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a valid column name (letters, digits, _)")
        return value

    @field_validator("min", "max", mode="before")
    @classmethod
    def _check_bound(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would read true as 1; unquoted YAML dates arrive as date/datetime.
        if isinstance(value, bool):
            raise ValueError(
                f"{info.field_name} must be a number or an ISO date/time string, not {value!r}"
            )
        if isinstance(value, datetime | date):
            return value.isoformat()
        return value

    @model_validator(mode="after")
    def _check_rules(self) -> Column:
        kind = _kind(self.type)
        for label in ("min", "max"):
            bound = getattr(self, label)
            if bound is None:
                continue
            if kind in ("int", "float"):
                if isinstance(bound, bool) or not isinstance(bound, int | float):
                    raise _FieldError(f"{label} of a {self.type} column must be a number", label)
                if isinstance(bound, float) and math.isnan(bound):
                    raise _FieldError(f"{label} must not be NaN", label)
                if kind == "int" and isinstance(bound, float) and not bound.is_integer():
                    raise _FieldError(
                        f"{label} of a {self.type} column must be a whole number, not {bound!r}",
                        label,
                    )
            elif kind in ("timestamp", "date"):
                try:
                    _parse_time_bound(bound, kind, label)
                except ValueError as exc:
                    raise _FieldError(str(exc), label) from None
            else:
                raise _FieldError(
                    f"{label} applies to numbers, timestamps and dates, "
                    f"not to a {self.type} column",
                    label,
                )
        lo, hi = self.min_value(), self.max_value()
        if lo is not None and hi is not None and lo > hi:
            raise _FieldError(f"min {self.min!r} is greater than max {self.max!r}", "min")
        if self.regex is not None:
            if kind not in ("string", "category"):
                raise _FieldError(f"regex applies to string columns, not to {self.type}", "regex")
            try:
                pc.match_substring_regex(pa.array([""], pa.string()), self.regex)
            except pa.ArrowInvalid as exc:
                raise _FieldError(
                    f"regex {self.regex!r} does not compile: {exc}", "regex"
                ) from None
        if self.allowed is not None:
            if not self.allowed:
                raise _FieldError("allowed must list at least one value", "allowed")
            wrong = _FieldError(
                f"allowed values {list(self.allowed)!r} are not all of type {self.type}",
                "allowed",
            )
            # pyarrow would turn True into 1 and truncate 1.5 to 1 in a numeric column.
            if kind in ("int", "float") and any(
                isinstance(v, bool)
                or (kind == "int" and isinstance(v, float) and not v.is_integer())
                for v in self.allowed
            ):
                raise wrong
            try:
                pa.array(list(self.allowed), type=self.arrow_type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                raise wrong from None
        return self

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self.type]

    @property
    def kind(self) -> str:
        """``int``, ``float``, ``bool``, ``string``, ``category``, ``timestamp`` or ``date``."""
        return _kind(self.type)

    @property
    def profile_kind(self) -> Literal["numeric", "categorical", "boolean", "timestamp"]:
        kind = self.kind
        if kind in ("int", "float"):
            return "numeric"
        if kind == "bool":
            return "boolean"
        if kind in ("timestamp", "date"):
            return "timestamp"
        return "categorical"

    def min_value(self) -> Any:
        return None if self.min is None else _bound_value(self.min, self.kind, "min")

    def max_value(self) -> Any:
        return None if self.max is None else _bound_value(self.max, self.kind, "max")


def _parse_time_bound(value: Bound, kind: str, label: str) -> datetime | date:
    if not isinstance(value, str):
        raise ValueError(f"{label} of a {kind} column must be an ISO {kind} string")
    try:
        if kind == "date":
            return date.fromisoformat(value)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{label} {value!r} is not an ISO {kind}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{label} {value!r} has no timezone (write e.g. {value}Z)")
    return parsed.astimezone(UTC)


def _bound_value(value: Bound, kind: str, label: str) -> Any:
    if kind in ("timestamp", "date"):
        return _parse_time_bound(value, kind, label)
    return value


@dataclass(frozen=True, config=_FORBID)
class BatchRules:
    """Rules over a whole batch: its row count, and how fresh its newest event must be."""

    min_rows: int | None = None
    max_rows: int | None = None
    max_age: timedelta | None = None

    @field_validator("max_age", mode="before")
    @classmethod
    def _parse_age(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except ValueError:
                return value  # pydantic then tries ISO 8601 ("P7D") and reports
        return value

    @model_validator(mode="after")
    def _check(self) -> BatchRules:
        for label in ("min_rows", "max_rows"):
            value = getattr(self, label)
            if value is not None and value < 0:
                raise _FieldError(f"{label} must not be negative", label)
        if (
            self.min_rows is not None
            and self.max_rows is not None
            and self.min_rows > self.max_rows
        ):
            raise _FieldError(
                f"min_rows {self.min_rows} is greater than max_rows {self.max_rows}", "min_rows"
            )
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise _FieldError("max_age must be positive", "max_age")
        return self


@dataclass(frozen=True, config=_FORBID)
class Contract:
    """The columns, keys, event time and batch rules of a source's data."""

    columns: tuple[Column, ...]
    event_time: str
    primary_key: tuple[str, ...] = ()
    batch: BatchRules = field(default_factory=BatchRules)
    extra_columns: Literal["reject", "drop"] = "reject"
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Contract:
        if not self.columns:
            raise _FieldError("a contract needs at least one column", "columns")
        names = [c.name for c in self.columns]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise _FieldError(f"column {name!r} is declared more than once", "columns", index)
        by_name = {c.name: c for c in self.columns}
        ts = by_name.get(self.event_time)
        if ts is None:
            raise _FieldError(
                f"event_time {self.event_time!r} is not a declared column", "event_time"
            )
        if ts.type != "timestamp":
            raise _FieldError(
                f"event_time column {self.event_time!r} must have type timestamp, not {ts.type}",
                "event_time",
            )
        for index, key in enumerate(self.primary_key):
            if key not in by_name:
                raise _FieldError(
                    f"primary_key column {key!r} is not a declared column", "primary_key", index
                )
            if key in self.primary_key[:index]:
                raise _FieldError("primary_key lists a column twice", "primary_key", index)
        return self

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns]
        )

    def to_dict(self) -> dict[str, Any]:
        """The canonical, JSON-ready form (defaults omitted), as stored and hashed."""
        body: dict[str, Any] = {"event_time": self.event_time, "columns": []}
        for col in self.columns:
            entry: dict[str, Any] = {"name": col.name, "type": col.type}
            defaults = Column(col.name, col.type)
            for attr in (
                "nullable",
                "min",
                "max",
                "allowed",
                "regex",
                "unique",
                "pii",
                "description",
            ):
                value = getattr(col, attr)
                if value != getattr(defaults, attr):
                    entry[attr] = list(value) if isinstance(value, tuple) else value
            body["columns"].append(entry)
        if self.primary_key:
            body["primary_key"] = list(self.primary_key)
        rules: dict[str, Any] = {
            k: v
            for k, v in (("min_rows", self.batch.min_rows), ("max_rows", self.batch.max_rows))
            if v is not None
        }
        if self.batch.max_age is not None:
            rules["max_age"] = format_duration(self.batch.max_age)
        if rules:
            body["batch"] = rules
        if self.extra_columns != "reject":
            body["extra_columns"] = self.extra_columns
        if self.description:
            body["description"] = self.description
        return body

    @property
    def hash(self) -> str:
        return sha256_json(self.to_dict())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


_ADAPTER = TypeAdapter(Contract)


def parse_contract(
    data: Any, *, file: str | None = None, nodes: yaml.Node | None = None
) -> Contract:
    """Build a contract from plain data (parsed YAML or a stored body).

    Errors name the file, the line (when ``nodes`` is the YAML node tree) and the
    field, e.g. ``contracts/tx.yaml:14: columns[2].type: ...``.
    """
    if not isinstance(data, Mapping):
        raise ContractError(
            "a contract must be a mapping with 'columns' and 'event_time'", file=file
        )
    body = {k: v for k, v in data.items() if k != "source"}
    try:
        return _ADAPTER.validate_python(body)
    except ValidationError as exc:
        raise _contract_error(exc, body, file=file, nodes=nodes) from None


def _contract_error(
    exc: ValidationError,
    body: Mapping[str, Any],
    *,
    file: str | None = None,
    nodes: yaml.Node | None = None,
    prefix: str = "",
) -> ContractError:
    """The first pydantic error as a ContractError naming the field (and line)."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, _FieldError):
        loc += cause.loc
    field_name = prefix + _format_loc(loc, body)
    line = _line_of(nodes, loc, body) if nodes is not None else None
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        message = "this field is required"
    elif err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        message = "unknown field"
    elif err["type"] == "literal_error":
        message = f"{err['input']!r} is not one of: {_literal_choices(err)}"
    return ContractError(message, file=file, field=field_name or None, line=line)


def _raise_contract_errors(cls: type[Any]) -> None:
    """Make a contract class declared in Python raise ContractError, like its YAML form."""
    validate = cls.__init__
    names = [f.name for f in dataclass_fields(cls)]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise ContractError(
                f"{cls.__name__} takes at most {len(names)} positional "
                f"arguments ({len(args)} given)"
            )
        named = {**dict(zip(names, args, strict=False)), **kwargs}
        try:
            validate(self, **named)
        except ValidationError as exc:
            label = named.get("name")
            prefix = f"{cls.__name__}({label!r})" if isinstance(label, str) else cls.__name__
            loc = exc.errors()[0]["loc"]
            raise _contract_error(exc, named, prefix=prefix + ("." if loc else "")) from None

    __init__.__doc__ = validate.__doc__
    cls.__init__ = __init__


for _cls in (Column, BatchRules, Contract):
    _raise_contract_errors(_cls)


def _literal_choices(err: Mapping[str, Any]) -> str:
    expected = err.get("ctx", {}).get("expected", "")
    return str(expected)


def _format_loc(loc: tuple[Any, ...], body: Mapping[str, Any]) -> str:
    parts: list[str] = []
    node: Any = body
    for item in loc:
        if isinstance(item, int):
            name = None
            if isinstance(node, Sequence) and 0 <= item < len(node):
                node = node[item]
                if isinstance(node, Mapping) and isinstance(node.get("name"), str):
                    name = node["name"]
            parts.append(f"[{item}]" if name is None else f"[{item}:{name}]")
        else:
            node = node.get(item) if isinstance(node, Mapping) else None
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts)


def _line_of(root: yaml.Node, loc: tuple[Any, ...], body: Mapping[str, Any]) -> int:
    node: yaml.Node = root
    for item in loc:
        child = _child(node, item)
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _child(node: yaml.Node, item: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(item, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == item:
                return value  # type: ignore[no-any-return]
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(item, int):
        return node.value[item] if 0 <= item < len(node.value) else None
    return None


def load_contract(path: str | Path) -> Contract:
    """Read a contract from a YAML file; errors name the file, line and field."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError("contract file not found", file=file) from None
    except UnicodeDecodeError as exc:
        raise ContractError(f"not UTF-8 text (byte {exc.start})", file=file) from None
    except OSError as exc:  # a directory, no permission...
        raise ContractError(f"cannot read: {exc.strerror or exc}", file=file) from None
    try:
        nodes = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ContractError(
            f"invalid YAML: {problem}", file=file, line=mark.line + 1 if mark else None
        ) from None
    return parse_contract(data, file=file, nodes=nodes)


@std_dataclass(frozen=True)
class ContractChanges:
    """What changed between two contract versions."""

    additive: tuple[str, ...] = ()
    breaking: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.additive or self.breaking)

    def __iter__(self) -> Iterator[str]:
        yield from self.breaking
        yield from self.additive


def _set(values: tuple[Any, ...] | None) -> set[Any] | None:
    return None if values is None else set(values)


def compare_contracts(old: Contract, new: Contract) -> ContractChanges:
    """Sort the differences between ``old`` and ``new`` into additive and breaking.

    A change is breaking when data accepted under ``old`` could be invalid or
    unreadable under ``new``: a removed column, a narrowed type, a new
    non-nullable column, a tightened bound, fewer allowed values, a new regex or
    uniqueness rule, another event time or primary key. Batch rules only judge new
    deliveries, so changing them is additive.
    """
    additive: list[str] = []
    breaking: list[str] = []
    old_cols = {c.name: c for c in old.columns}
    new_cols = {c.name: c for c in new.columns}
    for name in old_cols.keys() - new_cols.keys():
        breaking.append(f"column {name!r} removed")
    for name in [c.name for c in new.columns if c.name not in old_cols]:
        col = new_cols[name]
        if col.nullable:
            additive.append(f"nullable column {name!r} added")
        else:
            breaking.append(f"non-nullable column {name!r} added (old batches have no values)")
    for name in [c.name for c in old.columns if c.name in new_cols]:
        _compare_column(old_cols[name], new_cols[name], additive, breaking)
    if old.event_time != new.event_time:
        breaking.append(f"event_time changed from {old.event_time!r} to {new.event_time!r}")
    if old.primary_key != new.primary_key:
        breaking.append(
            f"primary_key changed from {list(old.primary_key)} to {list(new.primary_key)}"
        )
    _compare_batch(old.batch, new.batch, additive, breaking)
    if old.extra_columns != new.extra_columns:
        additive.append(
            f"extra_columns changed from {old.extra_columns!r} to {new.extra_columns!r}"
        )
    if old.description != new.description:
        additive.append("description changed")
    return ContractChanges(tuple(additive), tuple(breaking))


def _compare_column(a: Column, b: Column, additive: list[str], breaking: list[str]) -> None:
    name = a.name
    if a.type != b.type:
        if (a.type, b.type) in _SAFE_WIDENING:
            additive.append(f"column {name!r} widened from {a.type} to {b.type}")
        else:
            breaking.append(f"column {name!r} type changed from {a.type} to {b.type}")
            return
    if a.nullable and not b.nullable:
        breaking.append(f"column {name!r} became non-nullable")
    elif b.nullable and not a.nullable:
        additive.append(f"column {name!r} became nullable")
    bounds = (("min", a.min_value(), b.min_value()), ("max", a.max_value(), b.max_value()))
    for label, old_v, new_v in bounds:
        if old_v == new_v:
            continue
        looser = (
            new_v is not None
            and old_v is not None
            and (new_v <= old_v if label == "min" else new_v >= old_v)
        )
        if new_v is None:
            additive.append(f"column {name!r} {label} bound removed")
        elif not looser:
            breaking.append(
                f"column {name!r} {label} tightened from {getattr(a, label)!r} "
                f"to {getattr(b, label)!r}"
            )
        else:
            additive.append(
                f"column {name!r} {label} relaxed from {getattr(a, label)!r} "
                f"to {getattr(b, label)!r}"
            )
    old_allowed, new_allowed = _set(a.allowed), _set(b.allowed)
    if old_allowed != new_allowed:
        if new_allowed is None:
            additive.append(f"column {name!r} allowed values removed")
        elif old_allowed is None or not old_allowed <= new_allowed:
            missing = sorted(map(str, (old_allowed or set()) - new_allowed))
            detail = f" (no longer allowed: {', '.join(missing)})" if missing else ""
            breaking.append(f"column {name!r} allowed values narrowed{detail}")
        else:
            added = sorted(map(str, new_allowed - old_allowed))
            additive.append(f"column {name!r} allowed values added: {', '.join(added)}")
    if a.regex != b.regex:
        if b.regex is None:
            additive.append(f"column {name!r} regex removed")
        else:
            breaking.append(f"column {name!r} regex changed to {b.regex!r}")
    if a.unique != b.unique:
        if b.unique:
            breaking.append(f"column {name!r} became unique")
        else:
            additive.append(f"column {name!r} no longer unique")
    if a.pii != b.pii:
        additive.append(f"column {name!r} pii tag changed from {a.pii!r} to {b.pii!r}")
    if a.description != b.description:
        additive.append(f"column {name!r} description changed")


def _compare_batch(a: BatchRules, b: BatchRules, additive: list[str], breaking: list[str]) -> None:
    # Batch rules judge a delivery when it arrives; accepted data stays valid either way,
    # so a change to them is never breaking (it is still listed and versioned).
    del breaking
    for label in ("min_rows", "max_rows", "max_age"):
        old_v, new_v = getattr(a, label), getattr(b, label)
        if old_v != new_v:
            shown_old = format_duration(old_v) if isinstance(old_v, timedelta) else old_v
            shown_new = format_duration(new_v) if isinstance(new_v, timedelta) else new_v
            additive.append(f"batch {label} changed from {shown_old} to {shown_new}")
