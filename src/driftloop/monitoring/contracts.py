"""The data contract's ranges behind a model's inputs, for data-quality checks.

An input that a feature view passes through from its source unchanged (a feature
without an expression, in a view without a Python transform) is the source's column:
its contract's ``min``/``max`` (numbers) and ``allowed`` values apply to what the
model is served. :func:`contract_checks` finds them for a model version's inputs;
aggregates and computed features have no contract range and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driftloop.core.metadata import MetadataStore
from driftloop.data.sources import get_source_state
from driftloop.errors import DriftloopError
from driftloop.features.registry import parse_refs, resolve_view

__all__ = ["ContractCheck", "contract_checks"]


@dataclass(frozen=True)
class ContractCheck:
    """What the source's contract says of one input."""

    source: str
    column: str
    contract_version: int
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    """Allowed values, as text (the way categorical inputs are counted)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "column": self.column,
            "contract_version": self.contract_version,
            "min": self.min,
            "max": self.max,
            "allowed": list(self.allowed) if self.allowed is not None else None,
        }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None  # timestamp bounds are not input ranges
    return float(value)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def contract_checks(store: MetadataStore, signature: Mapping[str, Any]) -> dict[str, ContractCheck]:
    """The contract checks of a version's inputs, by log column (``feature.<name>``)."""
    out: dict[str, ContractCheck] = {}
    for item in signature.get("inputs") or []:
        try:
            (ref,) = parse_refs([str(item.get("ref", ""))])
            view = resolve_view(store, ref.view, ref.version, {})
            source = view.source if isinstance(view.source, str) else view.source.name
            state = get_source_state(store, source)
        except DriftloopError:
            continue  # a hand-made signature, a transform view, a source gone: no check
        if view.transform is not None:
            continue
        feature = next((f for f in view.features if f.name == ref.feature), None)
        if feature is None or feature.expr is not None:
            continue
        column = next((c for c in state.contract.columns if c.name == ref.feature), None)
        if column is None:
            continue
        low, high = _number(column.min), _number(column.max)
        allowed = tuple(_text(v) for v in column.allowed) if column.allowed else None
        if low is None and high is None and allowed is None:
            continue
        out[f"feature.{item['name']}"] = ContractCheck(
            source, column.name, state.contract_version, low, high, allowed
        )
    return out
