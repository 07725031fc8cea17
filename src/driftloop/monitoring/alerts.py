"""Alerts: :class:`~driftloop.monitoring.definitions.AlertRule` s evaluated on each newly
analysed monitoring window, with evidence that says what to look at.

:func:`evaluate` is called once per window, in time order. For each rule and each of
its targets in the window (a column, a version):

- the alert **fires** when the condition held in ``rule.for_windows`` consecutive
  windows of the model (same comparison, ordered by their end) ending with this one;
  a window without the figure breaks the run;
- while it is open (``status="firing"``) a window where the condition still holds only
  **updates** it (no new delivery): one alert per (model, rule, target), however long
  the condition lasts;
- the first window where the condition no longer holds **resolves** it;
- a window without the figure (a column gone, too few rows for drift statistics)
  leaves it as it is.

A target is stored in the alert's ``column``: the column name, or
``"<column>@v<version>"`` for a rule with ``version="*"`` (``"@v3"`` for the
window-wide figure of version 3) — see :func:`target_key`.

Every change is recorded in ``alert_events`` (``fired``, ``updated``, ``resolved``) in
the transaction that makes it, then — once committed — delivered by a
:class:`Delivery`: to the ``driftloop.alerts`` logger and, if set, POSTed to a
:class:`Webhook` with retries; the outcome of a webhook delivery is an event too
(``delivered`` or ``delivery_failed``). A failed delivery never raises and never loses
the alert: it is in the metadata store.

What an alert says — its ``evidence`` and its text, the data-quality or
distribution-shift diagnosis — is built by :mod:`driftloop.monitoring.evidence`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driftloop.core import clock
from driftloop.core.metadata import MetadataStore
from driftloop.errors import ConfigError, DefinitionError, InputError, NotFoundError
from driftloop.monitoring import tables
from driftloop.monitoring.definitions import AlertRule
from driftloop.monitoring.evidence import Target, evidence_for, resolution_for
from driftloop.monitoring.series import Window, WindowMetrics, metrics_of

__all__ = [
    "Alert",
    "AlertChange",
    "Delivery",
    "Webhook",
    "WebhookResult",
    "alert_events",
    "evaluate",
    "get_alert",
    "list_alerts",
    "target_key",
]

logger = logging.getLogger("driftloop.alerts")

FIRING = "firing"
RESOLVED = "resolved"
ChangeKind = Literal["fired", "resolved"]

# --- the alert -----------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One row of ``alerts``: a rule firing for a model and a target."""

    id: int
    model: str
    rule: str
    column: str
    """The target: a column, or ``"<column>@v<version>"`` (see :func:`target_key`)."""
    severity: str
    status: str
    """``"firing"`` while the condition persists, then ``"resolved"``."""
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    first_window: int
    last_window: int
    """The last window where the condition held."""
    value: float | None
    threshold: float
    evidence: dict[str, Any]
    text: str

    def to_dict(self) -> dict[str, Any]:
        body = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("opened_at", "updated_at", "resolved_at"):
            body[name] = None if body[name] is None else body[name].isoformat()
        return body


@dataclass(frozen=True)
class AlertChange:
    """An alert that fired or resolved in a window (updates are not changes)."""

    kind: ChangeKind
    alert: Alert

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, "alert": self.alert.to_dict()}


def target_key(column: str, version: int | None) -> str:
    """How a target is stored in ``alerts.column``: ``"feature.amount"``, or
    ``"feature.amount@v3"`` / ``"@v3"`` when the rule is per version."""
    return column if version is None else f"{column}@v{version}"


def _alert(row: Any) -> Alert:
    return Alert(**{f.name: getattr(row, f.name) for f in fields(Alert)})


def _read(conn: Connection, alert_id: int) -> Alert:
    t = tables.alerts
    row = conn.execute(sa.select(t).where(t.c.id == alert_id)).one_or_none()
    if row is None:
        raise NotFoundError("alert", str(alert_id))
    return _alert(row)


def list_alerts(
    store: MetadataStore,
    model: str | None = None,
    *,
    status: str | None = None,
    limit: int | None = None,
) -> list[Alert]:
    """Alerts, newest first; ``status="firing"`` gives the open ones."""
    t = tables.alerts
    query = sa.select(t)
    if model is not None:
        query = query.where(t.c.model == model)
    if status is not None:
        query = query.where(t.c.status == status)
    query = query.order_by(t.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with store.connect() as conn:
        return [_alert(r) for r in conn.execute(query).all()]


def get_alert(store: MetadataStore, alert_id: int) -> Alert:
    """The alert with this id (:class:`~driftloop.errors.NotFoundError` if none)."""
    with store.connect() as conn:
        return _read(conn, alert_id)


def alert_events(store: MetadataStore, alert_id: int) -> list[dict[str, Any]]:
    """What happened to an alert, oldest first: ``{"id", "alert_id", "at", "kind",
    "channel", "detail"}`` with ``kind`` one of fired, updated, resolved, delivered,
    delivery_failed."""
    e = tables.alert_events
    with store.connect() as conn:
        rows = conn.execute(sa.select(e).where(e.c.alert_id == alert_id).order_by(e.c.id)).all()
    return [
        {
            "id": r.id,
            "alert_id": r.alert_id,
            "at": r.at.isoformat(),
            "kind": r.kind,
            "channel": r.channel,
            "detail": r.detail,
        }
        for r in rows
    ]


# --- evaluation ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Finding:
    """A rule's verdict on one target in the window being evaluated."""

    rule: AlertRule
    target: Target
    value: float
    holds: bool
    held: int
    """Consecutive windows, ending with this one, where the condition held (at most
    ``rule.for_windows``; 0 when it does not hold)."""
    first_window: int


def _targets(rule: AlertRule, window: WindowMetrics) -> list[tuple[Target, float]]:
    """The rule's targets that have a value in the window, with the value."""
    found = {
        Target(m.column, m.version): float(m.value)
        for m in window.metrics
        if m.metric == rule.metric
        and m.value is not None
        and not math.isnan(m.value)
        and (rule.version is None) == (m.version is None)
        and (m.column == rule.column or (rule.column == "*" and m.column != ""))
    }
    return sorted(found.items(), key=lambda t: (t[0].column, t[0].version or -1))


def _preceding(store: MetadataStore, window: Window, depth: int) -> list[WindowMetrics]:
    """The ``depth`` windows before ``window`` (same model and comparison), latest first."""
    if depth <= 0:
        return []
    t = tables.monitoring_windows
    query = (
        sa.select(t)
        .where(t.c.model == window.model, t.c.against == window.against, t.c.end < window.end)
        .order_by(t.c.end.desc(), t.c.start.desc(), t.c.id.desc())
        .limit(depth)
    )
    with store.connect() as conn:
        rows = conn.execute(query).all()
    names = [f.name for f in fields(Window)]
    return metrics_of(store, [Window(**{n: getattr(r, n) for n in names}) for r in rows])


def _finding(
    rule: AlertRule,
    target: Target,
    value: float,
    window: WindowMetrics,
    history: Sequence[WindowMetrics],
) -> _Finding:
    if not rule.holds(value):
        return _Finding(rule, target, value, False, 0, window.window.id)
    held, first = 1, window.window.id
    for earlier in history[: rule.for_windows - 1]:
        before = earlier.get(rule.metric, target.column, target.version)
        if before is None or not rule.holds(before.value):
            break
        held, first = held + 1, earlier.window.id
    return _Finding(rule, target, value, True, held, first)


def _check_rules(rules: Sequence[AlertRule]) -> None:
    names = [r.rule_name for r in rules]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DefinitionError(
            f"two alert rules are named {duplicated[0]!r}; give them distinct names"
        )


def evaluate(
    store: MetadataStore,
    model: str,
    rules: Sequence[AlertRule],
    window: WindowMetrics,
    *,
    deliver: Delivery | None = None,
) -> list[AlertChange]:
    """Evaluate ``rules`` on a newly analysed ``window`` of ``model`` (already recorded
    with :func:`~driftloop.monitoring.series.record_window`), open, update and resolve
    alerts in one transaction, then deliver what fired or resolved.

    ``deliver=None`` delivers to the log only (``Delivery()``). Evaluating the same
    window again changes nothing (an alert whose last window ends at or after this
    one is left alone). Returns the alerts that fired or resolved, in rule order.
    """
    if window.window.model != model:
        raise InputError(
            f"window {window.window.id} belongs to model {window.window.model!r}, not {model!r}",
            field="window",
        )
    _check_rules(rules)
    depth = max((r.for_windows for r in rules), default=1) - 1
    history = _preceding(store, window.window, depth)
    findings = [
        _finding(rule, target, value, window, history)
        for rule in rules
        for target, value in _targets(rule, window)
    ]
    changes: list[AlertChange] = []
    if findings:
        with store.transaction() as conn:
            opened = _open_alerts(conn, model, [r.rule_name for r in rules])
            for finding in findings:
                change = _apply(conn, finding, window, opened)
                if change is not None:
                    changes.append(change)
    # called with no change too: failed deliveries are tried again
    (deliver or Delivery())(store, changes)
    return changes


def _open_alerts(conn: Connection, model: str, rules: list[str]) -> dict[tuple[str, str], Any]:
    """Open alerts of ``model`` by (rule, target), each with the end of its last window.

    On PostgreSQL one evaluation per model at a time takes this (a transaction-scoped
    advisory lock), so two evaluators cannot both open the same alert; SQLite's
    ``BEGIN IMMEDIATE`` serialises writers already.
    """
    if conn.dialect.name == "postgresql":
        digest = hashlib.blake2b(f"driftloop.alerts:{model}".encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    a, w = tables.alerts, tables.monitoring_windows
    rows = conn.execute(
        sa.select(a, w.c.end.label("last_end"))
        .outerjoin(w, w.c.id == a.c.last_window)
        .where(a.c.model == model, a.c.status == FIRING, a.c.rule.in_(rules))
    ).all()
    return {(r.rule, r.column): r for r in rows}


def _event(
    conn: Connection,
    alert_id: int,
    kind: str,
    detail: dict[str, Any] | None,
    *,
    channel: str | None = None,
) -> None:
    conn.execute(
        sa.insert(tables.alert_events).values(
            alert_id=alert_id, at=clock.now(), kind=kind, channel=channel, detail=detail
        )
    )


def _apply(
    conn: Connection, finding: _Finding, window: WindowMetrics, opened: dict[tuple[str, str], Any]
) -> AlertChange | None:
    rule, target, w = finding.rule, finding.target, window.window
    a = tables.alerts
    now = clock.now()
    key = target_key(target.column, target.version)
    current = opened.get((rule.rule_name, key))
    detail = {"window": w.id, "value": finding.value}
    if current is None:
        if not finding.holds or finding.held < rule.for_windows:
            return None
        evidence, text = evidence_for(rule, target, window, finding.value, finding.held)
        alert_id = conn.execute(
            sa.insert(a)
            .values(
                model=w.model,
                rule=rule.rule_name,
                column=key,
                severity=rule.severity,
                status=FIRING,
                opened_at=now,
                updated_at=now,
                resolved_at=None,
                first_window=finding.first_window,
                last_window=w.id,
                value=finding.value,
                threshold=float(rule.threshold),
                evidence=evidence,
                text=text,
            )
            .returning(a.c.id)
        ).scalar_one()
        _event(conn, alert_id, "fired", detail)
        return AlertChange("fired", _read(conn, alert_id))
    if current.last_end is not None and current.last_end >= w.end:
        return None  # this window (or a later one) was evaluated already
    if finding.holds:
        held = int(current.evidence.get("windows_held", 1)) + 1
        evidence, text = evidence_for(rule, target, window, finding.value, held)
        _update(
            conn,
            current.id,
            "updated",
            detail,
            last_window=w.id,
            value=finding.value,
            updated_at=now,
            evidence=evidence,
            text=text,
        )
        return None
    resolution = resolution_for(rule, target, window, finding.value)
    _update(
        conn,
        current.id,
        "resolved",
        detail,
        status=RESOLVED,
        resolved_at=now,
        updated_at=now,
        evidence={**current.evidence, "resolution": resolution},
        text=f"{current.text} {resolution['text']}",
    )
    return AlertChange("resolved", _read(conn, current.id))


def _update(
    conn: Connection, alert_id: int, kind: str, detail: dict[str, Any], **values: Any
) -> None:
    """Change an open alert's row and record the event that says why."""
    a = tables.alerts
    conn.execute(sa.update(a).where(a.c.id == alert_id).values(**values))
    _event(conn, alert_id, kind, detail)


# --- delivery ------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookResult:
    """The outcome of one webhook delivery, over all its attempts."""

    delivered: bool
    attempts: int
    status: int | None
    """The last HTTP status received (None if no answer came)."""
    error: str | None
    """The last error (None when delivered)."""
    tries: list[dict[str, Any]] = field(default_factory=list)
    """Each attempt: ``{"attempt", "status"}`` or ``{"attempt", "error"}``."""
    unreachable: bool = False
    """The last attempt got no HTTP answer at all."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "attempts": self.attempts,
            "status": self.status,
            "error": self.error,
            "tries": self.tries,
        }


@dataclass(frozen=True)
class Webhook:
    """POST each alert change as JSON to ``url``.

    Connection errors, timeouts and 5xx/429 answers are retried up to ``retries``
    times, waiting ``backoff_s * 2**attempt`` (at most ``max_backoff_s``; a
    ``Retry-After`` of seconds is honoured up to that cap) between attempts —
    ``jitter=True`` draws each wait uniformly below that ("full jitter"). Any other
    4xx is not retried: the receiver refused the body.

    >>> Webhook("https://hooks.example.com/alerts", backoff_s=1.0).delay(3)
    8.0
    """

    url: str
    timeout_s: float = 5.0
    retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    """Extra request headers (an ``Authorization`` token...); never logged or stored."""
    jitter: bool = False
    redeliver: int = 10
    """How many later deliveries (each evaluation's) try again a change whose delivery
    failed on a connection error, a timeout, a 5xx or a 429, one attempt each, before
    it is given up (``delivery_abandoned``); 0: never."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL must be http(s)://..., got {self.url!r}", key="webhook")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be 0 or more, got {self.retries!r}", key="webhook")
        if not isinstance(self.redeliver, int) or self.redeliver < 0:
            raise ConfigError(f"redeliver must be 0 or more, got {self.redeliver!r}", key="webhook")
        for name in ("timeout_s", "backoff_s", "max_backoff_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative", key="webhook")

    @property
    def origin(self) -> str:
        """The URL's scheme, host and port: what is logged and stored (the path of a
        chat webhook is often its secret)."""
        url = httpx.URL(self.url)
        port = f":{url.port}" if url.port is not None else ""
        return f"{url.scheme}://{url.host}{port}"

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (0 for the first)."""
        capped = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return random.uniform(0, capped) if self.jitter else capped

    def post(self, body: Mapping[str, Any], *, retries: int | None = None) -> WebhookResult:
        """POST ``body``, retrying as the class says; never raises for a failed delivery."""
        allowed = self.retries if retries is None else retries
        headers = {"content-type": "application/json", **(self.headers or {})}
        tries: list[dict[str, Any]] = []
        status: int | None = None
        error: str | None = None
        unreachable = False
        with httpx.Client(timeout=self.timeout_s, headers=headers) as client:
            for attempt in range(allowed + 1):
                wait = self.delay(attempt)
                try:
                    response = client.post(self.url, json=dict(body))
                except (httpx.TransportError, httpx.InvalidURL) as exc:
                    error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    tries.append({"attempt": attempt + 1, "error": error})
                    unreachable = True
                    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
                        break
                else:
                    status, unreachable = response.status_code, False
                    tries.append({"attempt": attempt + 1, "status": status})
                    if response.is_success:
                        return WebhookResult(True, attempt + 1, status, None, tries)
                    answer = response.text[:200].strip()
                    error = f"HTTP {status}: {answer}" if answer else f"HTTP {status}"
                    if status != 429 and status < 500:
                        break
                    wait = max(wait, min(self.max_backoff_s, _retry_after(response)))
                if attempt < allowed:
                    time.sleep(wait)
        return WebhookResult(False, len(tries), status, error, tries, unreachable)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "0")))
    except ValueError:
        return 0.0  # an HTTP date: keep our own backoff


@dataclass(frozen=True)
class Delivery:
    """Where alert changes go once their transaction has committed.

    - ``log``: the ``driftloop.alerts`` logger — WARNING for a warning or critical
      alert firing, INFO for an info alert and for every resolution;
    - the metadata store, always: ``alert_events`` holds fired / updated / resolved,
      and the outcome of each webhook delivery (``delivered`` / ``delivery_failed``);
    - ``webhook``: POSTed as ``{"event": "fired" | "resolved", "alert": {...}}``.

    Once a webhook delivery fails without any HTTP answer (the receiver is down), the
    rest of the same batch gets one attempt each instead of the full retries.

    Each call first delivers again, oldest first and one attempt each, the changes of
    the last :data:`REDELIVERY_DAYS` days whose delivery to this webhook's origin
    failed in a way worth retrying (no answer, a 5xx or 429), up to the webhook's
    ``redeliver`` times; a change whose alert has since had a later change delivered is
    closed as ``delivery_superseded`` instead (the receiver knows newer news).
    """

    log: bool = True
    webhook: Webhook | None = None

    def __call__(self, store: MetadataStore, changes: Sequence[AlertChange]) -> None:
        receiver_down = False
        if self.webhook is not None and self.webhook.redeliver:
            receiver_down = _redeliver(store, self.webhook)
        for change in changes:
            if self.log:
                _log(change)
            if self.webhook is None:
                continue
            result = self.webhook.post(change.to_dict(), retries=0 if receiver_down else None)
            receiver_down = receiver_down or (not result.delivered and result.unreachable)
            _record_delivery(store, change, self.webhook, result)


def _log(change: AlertChange) -> None:
    alert = change.alert
    quiet = change.kind == "resolved" or alert.severity == "info"
    logger.log(
        logging.INFO if quiet else logging.WARNING,
        "alert %d %s (%s): %s",
        alert.id,
        change.kind,
        alert.severity,
        alert.text,
        extra={"alert": alert.to_dict(), "alert_event": change.kind},
    )


REDELIVERY_DAYS = 7
"""Failed deliveries older than this are not tried again."""


def _worth_retrying(detail: Mapping[str, Any]) -> bool:
    status = detail.get("status")
    return status is None or status == 429 or status >= 500


def _redeliver(store: MetadataStore, webhook: Webhook) -> bool:
    """Deliver again the failed changes to ``webhook`` (see :class:`Delivery`); True
    when the receiver did not answer (the caller's new changes then get one attempt)."""
    since = clock.now() - timedelta(days=REDELIVERY_DAYS)
    events = tables.alert_events
    recent = (
        sa.select(events.c.alert_id)
        .where(events.c.kind == "delivery_failed", events.c.at >= since)
        .distinct()
    )
    query = (
        sa.select(events.c.id, events.c.alert_id, events.c.kind, events.c.detail)
        .where(events.c.channel == "webhook", events.c.alert_id.in_(recent))
        .order_by(events.c.id)
    )
    with store.connect() as conn:
        found = conn.execute(query).all()
    latest: dict[tuple[int, str], tuple[int, str, dict[str, Any]]] = {}
    failures: dict[tuple[int, str], int] = {}
    resolution_delivered: set[int] = set()  # alerts whose "resolved" reached the receiver
    for row in found:
        detail = dict(row.detail or {})
        if detail.get("url") != webhook.origin:
            continue
        key = (row.alert_id, str(detail.get("event")))
        latest[key] = (row.id, row.kind, detail)
        if row.kind == "delivery_failed":
            failures[key] = failures.get(key, 0) + 1
        if row.kind == "delivered" and key[1] == "resolved":
            resolution_delivered.add(row.alert_id)
    pending = sorted(
        (first_id, key, detail)
        for key, (first_id, kind, detail) in latest.items()
        if kind == "delivery_failed" and "body" in detail and _worth_retrying(detail)
    )
    receiver_down = False  # then the rest waits for the next evaluation
    for _, (alert_id, event), detail in pending:
        if event == "fired" and alert_id in resolution_delivered:
            _close(
                store, alert_id, "delivery_superseded", event=event, webhook=webhook, failed=detail
            )
        elif failures[(alert_id, event)] > webhook.redeliver:
            _close(
                store, alert_id, "delivery_abandoned", event=event, webhook=webhook, failed=detail
            )
        elif not receiver_down:
            result = webhook.post(detail["body"], retries=0)
            _record_outcome(
                store,
                alert_id,
                event,
                body=detail["body"],
                webhook=webhook,
                result=result,
                redelivery=True,
            )
            receiver_down = not result.delivered and result.unreachable
    return receiver_down


def _close(
    store: MetadataStore,
    alert_id: int,
    kind: str,
    *,
    event: str,
    webhook: Webhook,
    failed: Mapping[str, Any],
) -> None:
    """Stop redelivering a change: superseded by a newer one, or out of tries."""
    detail = {"event": event, "url": webhook.origin, "last_error": failed.get("error")}
    with store.transaction() as conn:
        _event(conn, alert_id, kind, detail, channel="webhook")


def _record_delivery(
    store: MetadataStore, change: AlertChange, webhook: Webhook, result: WebhookResult
) -> None:
    _record_outcome(
        store, change.alert.id, change.kind, body=change.to_dict(), webhook=webhook, result=result
    )


def _record_outcome(
    store: MetadataStore,
    alert_id: int,
    event: str,
    *,
    body: Mapping[str, Any],
    webhook: Webhook,
    result: WebhookResult,
    redelivery: bool = False,
) -> None:
    """The outcome of a delivery as an event; a failure keeps the body, to deliver again."""
    detail: dict[str, Any] = {"event": event, "url": webhook.origin, **result.to_dict()}
    if redelivery:
        detail["redelivery"] = True
    if not result.delivered:
        detail["body"] = dict(body)
    kind = "delivered" if result.delivered else "delivery_failed"
    with store.transaction() as conn:
        _event(conn, alert_id, kind, detail, channel="webhook")
    if not result.delivered:
        logger.warning(
            "alert %d: webhook %s failed after %d attempt(s): %s",
            alert_id,
            webhook.origin,
            result.attempts,
            result.error,
        )
