"""Tables owned by the rollout package (created by migration 0007)."""

from __future__ import annotations

__all__: list[str] = []
