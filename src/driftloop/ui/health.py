"""The prediction server's health, as the dashboard's overview shows it.

Inside ``driftloop serve`` the dashboard asks the worker's own engine; run alone
(``driftloop ui``) it asks the server over HTTP, at ``/readyz`` and ``/v1/models`` of
the address it was given (by default the project's ``serving.host`` and ``port``). A
server that does not answer is shown as unreachable, with the reason, not as an error
of the page.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driftloop.ui.tables import UiTable

if TYPE_CHECKING:
    from driftloop.serving.engine import Engine

__all__ = ["HealthProbe", "engine_probe", "health_table", "http_probe"]

HealthProbe = Callable[[], dict[str, Any]]
"""A function answering ``{"server", "status", "reasons", "models"}``: where the
server is, ``ready`` / ``not ready`` / ``unreachable``, why, and each model's
``info()`` (its deployment, loaded versions and load error)."""


def engine_probe(engine: Engine) -> HealthProbe:
    """The health of this worker's engine (the dashboard inside ``driftloop serve``)."""

    def probe() -> dict[str, Any]:
        reasons = engine.readiness()
        return {
            "server": f"this worker (pid {os.getpid()})",
            "status": "not ready" if reasons else "ready",
            "reasons": reasons,
            "models": engine.models(),
        }

    return probe


def http_probe(url: str, *, timeout: float = 1.0) -> HealthProbe:
    """The health of the server at ``url``, asked over HTTP at each call."""
    import httpx

    base = url.rstrip("/")

    def probe() -> dict[str, Any]:
        try:
            with httpx.Client(base_url=base, timeout=timeout) as client:
                ready = client.get("/readyz")
                models = client.get("/v1/models")
        except httpx.HTTPError as exc:
            return {"server": base, "status": "unreachable", "reasons": [str(exc)], "models": []}
        body = _body(ready)
        status = "ready" if ready.status_code == 200 else "not ready"
        reasons = body.get("reasons") if isinstance(body.get("reasons"), list) else []
        if ready.status_code not in (200, 503):
            reasons = [f"/readyz answered {ready.status_code}"]
        listed = _body(models).get("models")
        return {
            "server": base,
            "status": status,
            "reasons": reasons,
            "models": listed if isinstance(listed, list) else [],
        }

    return probe


def _body(response: Any) -> dict[str, Any]:
    """A response's JSON object, or an empty one when it is not JSON."""
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def health_table(found: dict[str, Any]) -> UiTable:
    """The probe's answer as a table: one row per model the server loaded (one row for
    the server alone when it has none)."""
    table = UiTable(
        "server",
        ["server", "status", "reasons", "model", "champion", "loaded_versions", "model_error"],
        title="Prediction server",
    )
    reasons = "; ".join(str(r) for r in found.get("reasons") or [])
    models = found.get("models") or []
    if not models:
        table.rows.append([found["server"], found["status"], reasons, None, None, None, None])
    for info in models:
        deployment = info.get("deployment") or {}
        table.rows.append(
            [
                found["server"],
                found["status"],
                reasons,
                info.get("model"),
                deployment.get("champion"),
                ", ".join(f"v{v}" for v in info.get("loaded") or []),
                info.get("error"),
            ]
        )
    return table
