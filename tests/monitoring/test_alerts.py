"""Alert rules on monitoring windows: firing after consecutive windows, deduplicated
while the condition persists, resolved when it clears, with evidence, delivered to the
log, the metadata store and a real local webhook receiver."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from driftloop.core.metadata import MetadataStore
from driftloop.errors import NotFoundError
from driftloop.monitoring.alerts import (
    Alert,
    AlertChange,
    Delivery,
    Webhook,
    alert_events,
    evaluate,
    get_alert,
    list_alerts,
)
from driftloop.monitoring.definitions import AlertRule
from driftloop.monitoring.series import MetricValue, WindowMetrics, metrics_of, record_window

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
QUIET = Delivery(log=False)
COLUMN_DRIFT = AlertRule("drift.detected", 0.5, column="*", for_windows=2, name="column drift")


# --- building windows ----------------------------------------------------------------


@pytest.fixture
def store(metadata_url: str) -> Iterator[MetadataStore]:
    """A metadata store on SQLite, then on PostgreSQL."""
    store = MetadataStore.open(metadata_url)
    yield store
    store.close()


def window(
    store: MetadataStore,
    day: int,
    metrics: Sequence[MetricValue],
    *,
    model: str = "fraud",
    against: str = "reference",
) -> WindowMetrics:
    """Record the daily window ``day`` days after T0 and read it back from the store."""
    recorded = record_window(
        store,
        model=model,
        against=against,
        start=T0 + day * DAY,
        end=T0 + (day + 1) * DAY,
        rows=1000,
        version=1,
        reference={"version": 1},
        metrics=[MetricValue("rows", 1000.0), *metrics],
    )
    return metrics_of(store, [recorded])[0]


def drift(
    column: str = "feature.amount",
    *,
    value: float = 0.31,
    statistic: str = "wasserstein",
    kind: str = "numeric",
    p_value: float | None = None,
    adjusted: float | None = None,
    effect_size: float | None = None,
    changes: list[dict[str, Any]] | None = None,
) -> list[MetricValue]:
    """A column's drift figures as the analysis writes them (a distance with the extra
    KS test, unless told otherwise)."""
    if p_value is None:
        threshold, drifted = 0.1, value > 0.1
    else:
        threshold, drifted = 0.05, (p_value if adjusted is None else adjusted) < 0.05
    details = {
        "statistic": statistic,
        "kind": kind,
        "value": value,
        "threshold": threshold,
        "p_value": p_value,
        "adjusted_p_value": adjusted,
        "effect_size": effect_size,
        "drifted": drifted,
        "test": None
        if p_value is not None
        else {
            "statistic": "ks",
            "value": 0.18 if drifted else 0.01,
            "p_value": 1.2e-9 if drifted else 0.4,
            "adjusted_p_value": 3.1e-8 if drifted else 0.8,
            "drifted": drifted,
        },
        "changes": changes
        if changes is not None
        else [
            {"bin": "[120, 240)", "reference": 0.08, "current": 0.21},
            {"bin": "[0, 120)", "reference": 0.5, "current": 0.4},
        ],
        "histogram": {
            "bins": ["[0, 120)", "[120, 240)"],
            "reference": [0.5, 0.08],
            "current": [0.4, 0.21],
        },
    }
    return [
        MetricValue("drift.value", value, column, details=details),
        MetricValue("drift.detected", 1.0 if drifted else 0.0, column),
    ]


def steady(column: str = "feature.amount") -> list[MetricValue]:
    return drift(column, value=0.02, changes=[])


def clean_quality(column: str = "feature.amount") -> list[MetricValue]:
    return [
        MetricValue("quality.null_rate", 0.01, column, details={"reference": 0.01}),
        MetricValue("quality.out_of_range", 0.0, column, details={"below": 0, "above": 0}),
        MetricValue("quality.type_errors", 0.0, column),
    ]


def events(store: MetadataStore, alert: Alert) -> list[str]:
    return [e["kind"] for e in alert_events(store, alert.id)]


# --- a real webhook receiver ---------------------------------------------------------


@dataclass
class Receiver:
    """A local HTTP server answering POSTs with ``statuses`` in turn (the last one
    repeats), keeping what it received."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(*statuses: int, store: MetadataStore | None = None) -> Receiver:
        lock = threading.Lock()
        answers = list(statuses) or [200]
        got = Receiver("")

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                seen = {"body": body, "content_type": self.headers["content-type"]}
                if store is not None:  # what the metadata store holds while delivering
                    seen["stored"] = [a.id for a in list_alerts(store)]
                with lock:
                    status = answers[min(len(got.received), len(answers) - 1)]
                    got.received.append(seen)
                payload = b'{"ok": true}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads what was received instead."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        got.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts"
        return got

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


def hook(url: str, retries: int = 5, redeliver: int = 10) -> Delivery:
    webhook = Webhook(url, retries=retries, backoff_s=0.01, redeliver=redeliver)
    return Delivery(log=False, webhook=webhook)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- firing, deduplication, resolution -----------------------------------------------


def test_an_alert_fires_only_after_for_windows_consecutive_windows(store: MetadataStore) -> None:
    """A rule with for_windows=2 fires on the second drifted window in a row, covering
    both windows."""
    first = window(store, 0, drift())
    assert evaluate(store, "fraud", [COLUMN_DRIFT], first, deliver=QUIET) == []
    assert list_alerts(store) == []
    second = window(store, 1, drift())
    [change] = evaluate(store, "fraud", [COLUMN_DRIFT], second, deliver=QUIET)
    assert change.kind == "fired"
    alert = change.alert
    assert (alert.model, alert.rule, alert.column, alert.status) == (
        "fraud",
        "column drift",
        "feature.amount",
        "firing",
    )
    assert (alert.first_window, alert.last_window) == (first.window.id, second.window.id)
    assert (alert.value, alert.threshold, alert.severity) == (1.0, 0.5, "warning")
    assert alert.evidence["windows_held"] == 2
    assert events(store, alert) == ["fired"]
    assert get_alert(store, alert.id) == alert


def test_a_window_without_the_figure_breaks_the_run(store: MetadataStore) -> None:
    """A window lacking the metric (too few rows for drift statistics) between two
    drifted windows means they are not consecutive."""
    rule = AlertRule("drift.detected", 0.5, column="feature.amount", for_windows=2)
    for day, metrics in enumerate([drift(), [], drift()]):
        assert evaluate(store, "fraud", [rule], window(store, day, metrics), deliver=QUIET) == []
    [change] = evaluate(store, "fraud", [rule], window(store, 3, drift()), deliver=QUIET)
    assert change.kind == "fired"


def test_only_windows_of_the_same_comparison_make_a_run(store: MetadataStore) -> None:
    """A drifted window compared with the previous window does not count towards a run
    of windows compared with the reference."""
    evaluate(store, "fraud", [COLUMN_DRIFT], window(store, 0, drift(), against="previous"))
    later = window(store, 1, drift())
    assert evaluate(store, "fraud", [COLUMN_DRIFT], later, deliver=QUIET) == []


def test_an_open_alert_is_deduplicated_while_the_condition_persists(
    store: MetadataStore, receiver: Callable[..., Receiver]
) -> None:
    """Further windows where the condition holds update the one open alert: one fired
    event, updated events, one delivery."""
    got = receiver(200)
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    fired = evaluate(store, "fraud", [rule], window(store, 0, drift()), deliver=hook(got.url))
    later = [window(store, day, drift(value=0.3 + day / 10)) for day in (1, 2)]
    for w in later:
        assert evaluate(store, "fraud", [rule], w, deliver=hook(got.url)) == []
    [alert] = list_alerts(store)
    assert alert.id == fired[0].alert.id
    assert alert.status == "firing"
    assert alert.last_window == later[-1].window.id
    assert alert.evidence["drift"]["value"] == pytest.approx(0.5)
    assert alert.evidence["windows_held"] == 3
    assert events(store, alert) == ["fired", "delivered", "updated", "updated"]
    assert [r["body"]["event"] for r in got.received] == ["fired"]


def test_an_alert_resolves_when_the_condition_clears_and_the_resolution_is_delivered(
    store: MetadataStore, receiver: Callable[..., Receiver]
) -> None:
    """The first window where the condition no longer holds resolves the alert and
    delivers the resolution."""
    got = receiver(200)
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    evaluate(store, "fraud", [rule], window(store, 0, drift()), deliver=hook(got.url))
    cleared = window(store, 1, steady())
    [change] = evaluate(store, "fraud", [rule], cleared, deliver=hook(got.url))
    assert change.kind == "resolved"
    alert = change.alert
    assert alert.status == "resolved"
    assert alert.resolved_at is not None
    assert alert.last_window != cleared.window.id  # the last window where it held
    assert alert.evidence["resolution"]["window"]["id"] == cleared.window.id
    assert "Resolved in window 2026-03-02T00:00Z\u20132026-03-03T00:00Z" in alert.text
    assert (
        "feature.amount no longer drifts (wasserstein 0.02 <= 0.1; KS p 0.4 adjusted 0.8, "
        "D 0.01)." in alert.text
    )
    assert events(store, alert) == ["fired", "delivered", "resolved", "delivered"]
    assert [r["body"]["event"] for r in got.received] == ["fired", "resolved"]
    assert got.received[1]["body"]["alert"] == alert.to_dict()
    assert list_alerts(store, "fraud", status="firing") == []


def test_a_window_without_the_figure_leaves_an_open_alert_as_it_is(store: MetadataStore) -> None:
    """A column gone from a window neither updates nor resolves its alert."""
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    [fired] = evaluate(store, "fraud", [rule], window(store, 0, drift()), deliver=QUIET)
    assert (
        evaluate(store, "fraud", [rule], window(store, 1, drift("feature.age")), deliver=QUIET)
        == []
    )
    assert get_alert(store, fired.alert.id) == fired.alert
    assert events(store, fired.alert) == ["fired"]


def test_evaluating_the_same_window_again_changes_nothing(store: MetadataStore) -> None:
    """A controller that evaluates a window twice neither opens a second alert nor
    updates the first."""
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    w = window(store, 0, drift())
    [fired] = evaluate(store, "fraud", [rule], w, deliver=QUIET)
    assert evaluate(store, "fraud", [rule], w, deliver=QUIET) == []
    assert list_alerts(store) == [fired.alert]
    assert events(store, fired.alert) == ["fired"]


def test_column_star_gives_one_alert_per_column(store: MetadataStore) -> None:
    """column="*" watches every column of the metric present in the window, each on
    its own."""
    metrics = [*drift("feature.amount"), *drift("feature.channel"), *steady("feature.age")]
    rule = AlertRule("drift.detected", 0.5, column="*")
    changes = evaluate(store, "fraud", [rule], window(store, 0, metrics), deliver=QUIET)
    assert sorted(c.alert.column for c in changes) == ["feature.amount", "feature.channel"]
    cleared = [*steady("feature.amount"), *drift("feature.channel")]
    [resolved] = evaluate(store, "fraud", [rule], window(store, 1, cleared), deliver=QUIET)
    assert (resolved.kind, resolved.alert.column) == ("resolved", "feature.amount")
    assert [a.column for a in list_alerts(store, status="firing")] == ["feature.channel"]


def test_version_star_gives_one_alert_per_version(store: MetadataStore) -> None:
    """version="*" watches each version separately; the target is stored as
    "<column>@v<version>" and the version is in the evidence."""
    rule = AlertRule("error_rate", 0.01, version="*", severity="critical", name="errors")
    metrics = [
        MetricValue("error_rate", 0.002, version=1),
        MetricValue("error_rate", 0.05, version=2),
        MetricValue("error_rate", 0.03),  # all versions together: not a target of "*"
    ]
    [change] = evaluate(store, "fraud", [rule], window(store, 0, metrics), deliver=QUIET)
    alert = change.alert
    assert (alert.column, alert.severity, alert.value) == ("@v2", "critical", 0.05)
    assert (alert.evidence["column"], alert.evidence["version"]) == ("", 2)
    assert alert.text.startswith(
        "errors on fraud: error_rate for version 2 is 5% (> 1%) in window "
        "2026-03-01T00:00Z\u20132026-03-02T00:00Z."
    )
    both = [MetricValue("error_rate", 0.04, version=v) for v in (1, 2)]
    [again] = evaluate(store, "fraud", [rule], window(store, 1, both), deliver=QUIET)
    assert again.alert.column == "@v1"
    assert len(list_alerts(store, "fraud", status="firing")) == 2


def test_a_rule_on_a_performance_figure_says_how_many_labels_it_rests_on(
    store: MetadataStore,
) -> None:
    """A falling metric fires with op "<", and the text names the labelled rows."""
    rule = AlertRule("performance.roc_auc", 0.8, op="<", version="*", severity="critical")
    metrics = [MetricValue("performance.roc_auc", 0.71, version=3, details={"labelled": 412})]
    [change] = evaluate(store, "fraud", [rule], window(store, 0, metrics), deliver=QUIET)
    assert "performance.roc_auc for version 3 is 0.71 on 412 labelled predictions (< 0.8)" in (
        change.alert.text
    )
    assert change.alert.evidence["details"] == {"labelled": 412}


# --- evidence and diagnosis ----------------------------------------------------------


def test_evidence_names_the_statistic_threshold_window_and_most_changed_bins(
    store: MetadataStore,
) -> None:
    """The evidence of a drifted column carries its statistic, value, threshold, the
    extra KS test, the window and the most changed bins; the text says it in a
    paragraph."""
    window(store, 2, [*drift(), *clean_quality()])
    w = window(store, 3, [*drift(), *clean_quality()])
    [change] = evaluate(store, "fraud", [COLUMN_DRIFT], w, deliver=QUIET)
    evidence = change.alert.evidence
    assert evidence["rule"] == "column drift"
    assert (evidence["metric"], evidence["op"], evidence["threshold"]) == (
        "drift.detected",
        ">",
        0.5,
    )
    assert (evidence["column"], evidence["version"], evidence["severity"]) == (
        "feature.amount",
        None,
        "warning",
    )
    assert evidence["window"]["id"] == w.window.id
    assert evidence["window"]["start"] == "2026-03-04T00:00:00+00:00"
    assert evidence["drift"]["statistic"] == "wasserstein"
    assert (evidence["drift"]["value"], evidence["drift"]["threshold"]) == (0.31, 0.1)
    assert evidence["drift"]["test"]["adjusted_p_value"] == 3.1e-8
    assert evidence["drift"]["changes"][0] == {
        "bin": "[120, 240)",
        "reference": 0.08,
        "current": 0.21,
    }
    assert evidence["diagnosis"]["kind"] == "distribution shift"
    assert change.alert.text == (
        "column drift on fraud: feature.amount drifted in window "
        "2026-03-04T00:00Z\u20132026-03-05T00:00Z (wasserstein 0.31 > 0.1; "
        "KS p 1.2e-9 adjusted 3.1e-8, D 0.18). Most changed bins: [120, 240) 8% -> 21%; "
        "[0, 120) 50% -> 40%. Looks like a distribution shift (no nulls, out-of-range "
        "values or unseen categories beyond the reference). Held for 2 windows in a row."
    )


def test_a_test_statistic_is_described_by_its_adjusted_p_value_and_effect_size(
    store: MetadataStore,
) -> None:
    """A chi-square column shows its p-value, adjusted p-value, threshold and Cramér's
    V, and its most changed categories."""
    metrics = drift(
        "feature.channel",
        value=41.5,
        statistic="chisquare",
        kind="categorical",
        p_value=2e-9,
        adjusted=6e-9,
        effect_size=0.21,
        changes=[{"bin": "web", "reference": 0.2, "current": 0.35}],
    )
    rule = AlertRule("drift.detected", 0.5, column="*")
    [change] = evaluate(store, "fraud", [rule], window(store, 0, metrics), deliver=QUIET)
    assert (
        "(chi-square statistic 41.5, p 2e-9 adjusted 6e-9 < 0.05, Cramér's V 0.21). "
        "Most changed categories: web 20% -> 35%." in change.alert.text
    )
    assert change.alert.evidence["drift"]["effect_size"] == 0.21


@pytest.mark.parametrize(
    ("quality", "named"),
    [
        (MetricValue("quality.null_rate", 0.3, details={"reference": 0.01}), "null rate 1% -> 30%"),
        (
            MetricValue(
                "quality.out_of_range",
                0.12,
                details={"below": 0, "above": 120, "min": 0.5, "max": 5000.0},
            ),
            "12% of values outside the reference's range [0.5, 5e3] (0 below, 120 above)",
        ),
        (
            MetricValue(
                "quality.unseen",
                0.1,
                details={"categories": [{"value": "kiosk", "count": 100}]},
            ),
            "10% of values in categories the reference never had: kiosk (100)",
        ),
        (
            MetricValue("quality.type_errors", 37.0),
            "37 values not readable as the reference's type",
        ),
        (
            MetricValue(
                "quality.contract",
                0.04,
                details={
                    "source": "transactions",
                    "contract_version": 2,
                    "min": 0.0,
                    "max": 1e5,
                    "allowed": None,
                    "below": 40,
                    "above": 0,
                },
            ),
            "4% of values outside the transactions contract (v2)'s range [0, 1e5] "
            "(40 below, 0 above)",
        ),
        (
            MetricValue(
                "quality.contract",
                0.06,
                details={
                    "source": "transactions",
                    "contract_version": 1,
                    "allowed": ["web", "app", "pos"],
                    "values": [{"value": "kiosk", "count": 60}],
                },
            ),
            "6% of values not allowed by the transactions contract (v1): kiosk (60)",
        ),
    ],
    ids=["null rate", "out of range", "unseen", "type errors", "contract range", "allowed"],
)
def test_the_diagnosis_is_data_quality_when_a_quality_figure_explains_the_drift(
    store: MetadataStore, quality: MetricValue, named: str
) -> None:
    """Changed nulls, out-of-range values, unseen categories or type errors in the same
    column and window make the drift a data quality problem, naming which."""
    column = "feature.amount"
    quality = MetricValue(quality.metric, quality.value, column, details=quality.details)
    rule = AlertRule("drift.detected", 0.5, column=column)
    w = window(store, 0, [*drift(column), quality])
    [change] = evaluate(store, "fraud", [rule], w, deliver=QUIET)
    diagnosis = change.alert.evidence["diagnosis"]
    assert diagnosis["kind"] == "data quality"
    assert [f["metric"] for f in diagnosis["findings"]] == [quality.metric]
    assert change.alert.text.endswith(f"Looks like a data quality problem: {named}.")


def test_small_quality_changes_still_read_as_a_distribution_shift(store: MetadataStore) -> None:
    """A null rate 3 points off the reference and 0.5% out-of-range values are within
    the diagnosis's tolerance."""
    quality = [
        MetricValue("quality.null_rate", 0.04, "feature.amount", details={"reference": 0.01}),
        MetricValue("quality.out_of_range", 0.005, "feature.amount"),
        MetricValue("quality.unseen", 0.0, "feature.amount"),
    ]
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    [change] = evaluate(store, "fraud", [rule], window(store, 0, [*drift(), *quality]))
    diagnosis = change.alert.evidence["diagnosis"]
    assert diagnosis["kind"] == "distribution shift"
    assert diagnosis["checked"] == [
        "quality.null_rate",
        "quality.out_of_range",
        "quality.unseen",
    ]


def test_drift_share_evidence_lists_the_drifted_columns_most_severe_first(
    store: MetadataStore,
) -> None:
    """A share-of-drifted-columns alert lists each drifted column with its statistic,
    the furthest past its threshold first, and diagnoses each."""
    metrics = [
        *drift("feature.amount", value=0.15),
        *drift("feature.channel", value=0.9),
        *steady("feature.age"),
        MetricValue("quality.unseen", 0.2, "feature.channel", details={"categories": []}),
        MetricValue(
            "drift.share",
            2 / 3,
            details={"drifted": ["feature.amount", "feature.channel"], "columns": 3},
        ),
    ]
    rule = AlertRule("drift.share", 0.5, name="many columns drift")
    [change] = evaluate(store, "fraud", [rule], window(store, 0, metrics), deliver=QUIET)
    evidence = change.alert.evidence
    assert [c["column"] for c in evidence["drifted_columns"]] == [
        "feature.channel",
        "feature.amount",
    ]
    assert evidence["drifted_columns"][0]["drift"]["value"] == 0.9
    assert evidence["diagnosis"] == {
        "kind": "data quality",
        "columns": {"feature.channel": "data quality", "feature.amount": "distribution shift"},
    }
    assert change.alert.text.startswith(
        "many columns drift on fraud: 67% of the columns drifted in window "
        "2026-03-01T00:00Z\u20132026-03-02T00:00Z (> 50%, 2 of 3): feature.channel "
        "(wasserstein 0.9 > 0.1; KS p 1.2e-9 adjusted 3.1e-8, D 0.18), feature.amount"
    )
    assert (
        "Looks like a data quality problem in feature.channel (20% of values in categories "
        "the reference never had); a distribution shift in feature.amount." in change.alert.text
    )


# --- delivery ------------------------------------------------------------------------


def test_a_webhook_answering_503_twice_is_delivered_on_the_third_attempt(
    store: MetadataStore, receiver: Callable[..., Receiver]
) -> None:
    """503 answers are retried with backoff; the third attempt is delivered, after the
    alert was committed, as the JSON body {"event", "alert"}."""
    got = receiver(503, 503, 200, store=store)
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    [change] = evaluate(store, "fraud", [rule], window(store, 0, drift()), deliver=hook(got.url))
    assert len(got.received) == 3
    request = got.received[-1]
    assert request["content_type"] == "application/json"
    assert request["body"] == {"event": "fired", "alert": change.alert.to_dict()}
    assert request["stored"] == [change.alert.id]
    delivered = alert_events(store, change.alert.id)[-1]
    assert (delivered["kind"], delivered["channel"]) == ("delivered", "webhook")
    assert (delivered["detail"]["status"], delivered["detail"]["attempts"]) == (200, 3)
    assert delivered["detail"]["url"] == got.url.removesuffix("/hooks/alerts")  # no secrets
    assert [t.get("status") for t in delivered["detail"]["tries"]] == [503, 503, 200]


def test_a_webhook_always_answering_500_fails_after_its_retries_and_the_alert_is_kept(
    store: MetadataStore, receiver: Callable[..., Receiver]
) -> None:
    """After 1 + retries attempts the failure is recorded; evaluate does not raise and
    the alert stays in the metadata store."""
    got = receiver(500)
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    w = window(store, 0, drift())
    [change] = evaluate(store, "fraud", [rule], w, deliver=hook(got.url, retries=2))
    assert len(got.received) == 3
    failed = alert_events(store, change.alert.id)[-1]
    assert (failed["kind"], failed["channel"]) == ("delivery_failed", "webhook")
    assert failed["detail"]["attempts"] == 3
    assert failed["detail"]["error"].startswith("HTTP 500")
    assert list_alerts(store, "fraud", status="firing") == [change.alert]


def test_a_failed_delivery_is_delivered_again_by_the_next_evaluation(
    store: MetadataStore, receiver: Callable[..., Receiver]
) -> None:
    """The receiver was down (503) when the alert fired: the next evaluation, with no
    change of its own, posts the same body again, once, and records it delivered."""
    got = receiver(503, 200)
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    deliver = hook(got.url, retries=0)
    [change] = evaluate(store, "fraud", [rule], window(store, 0, drift()), deliver=deliver)
    evaluate(store, "fraud", [rule], window(store, 1, drift()), deliver=deliver)
    evaluate(store, "fraud", [rule], window(store, 2, drift()), deliver=deliver)
    assert [r["body"] for r in got.received] == [change.to_dict(), change.to_dict()]
    webhook = [e for e in alert_events(store, change.alert.id) if e["channel"] == "webhook"]
    assert [e["kind"] for e in webhook] == ["delivery_failed", "delivered"]
    assert webhook[1]["detail"]["redelivery"] is True
    assert "body" not in webhook[1]["detail"]


def test_a_fired_change_whose_resolution_got_through_is_not_delivered_again(
    store: MetadataStore, receiver: Callable[..., Receiver]
) -> None:
    """Fired failed twice, then the resolution was delivered: the receiver knows newer
    news, so the fired change is closed as superseded, not posted a third time."""
    got = receiver(503, 503, 200)
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    deliver = hook(got.url, retries=0)
    [fired] = evaluate(store, "fraud", [rule], window(store, 0, drift()), deliver=deliver)
    evaluate(store, "fraud", [rule], window(store, 1, steady()), deliver=deliver)
    evaluate(store, "fraud", [rule], window(store, 2, steady()), deliver=deliver)
    assert [r["body"]["event"] for r in got.received] == ["fired", "fired", "resolved"]
    webhook = [e for e in alert_events(store, fired.alert.id) if e["channel"] == "webhook"]
    assert [(e["kind"], e["detail"]["event"]) for e in webhook] == [
        ("delivery_failed", "fired"),
        ("delivery_failed", "fired"),
        ("delivered", "resolved"),
        ("delivery_superseded", "fired"),
    ]


def test_a_delivery_is_given_up_after_its_redeliveries(
    store: MetadataStore, receiver: Callable[..., Receiver]
) -> None:
    """With redeliver=1 a change always answered 500 is posted twice in all, then
    recorded as abandoned and left alone."""
    got = receiver(500)
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    deliver = hook(got.url, retries=0, redeliver=1)
    [change] = evaluate(store, "fraud", [rule], window(store, 0, drift()), deliver=deliver)
    for day in (1, 2, 3):
        evaluate(store, "fraud", [rule], window(store, day, drift()), deliver=deliver)
    assert len(got.received) == 2
    kinds = [e["kind"] for e in alert_events(store, change.alert.id) if e["channel"] == "webhook"]
    assert kinds == ["delivery_failed", "delivery_failed", "delivery_abandoned"]


def test_a_refused_body_is_not_delivered_again(
    store: MetadataStore, receiver: Callable[..., Receiver]
) -> None:
    """A 400 says the receiver refused the body: a later evaluation does not resend it."""
    got = receiver(400, 200)
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    deliver = hook(got.url, retries=0)
    evaluate(store, "fraud", [rule], window(store, 0, drift()), deliver=deliver)
    evaluate(store, "fraud", [rule], window(store, 1, drift()), deliver=deliver)
    assert len(got.received) == 1


def test_a_400_answer_is_not_retried(
    store: MetadataStore, receiver: Callable[..., Receiver]
) -> None:
    """The receiver refused the body: retrying would not help."""
    got = receiver(400)
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    [change] = evaluate(store, "fraud", [rule], window(store, 0, drift()), deliver=hook(got.url))
    assert len(got.received) == 1
    failed = alert_events(store, change.alert.id)[-1]
    assert failed["kind"] == "delivery_failed"
    assert (failed["detail"]["status"], failed["detail"]["attempts"]) == (400, 1)


def test_an_unreachable_webhook_gives_delivery_failed(store: MetadataStore) -> None:
    """Nobody listens on the port: connection errors are retried, then recorded."""
    url = f"http://127.0.0.1:{closed_port()}/hooks"
    rule = AlertRule("drift.detected", 0.5, column="feature.amount")
    w = window(store, 0, drift())
    [change] = evaluate(store, "fraud", [rule], w, deliver=hook(url, retries=1))
    failed = alert_events(store, change.alert.id)[-1]
    assert failed["kind"] == "delivery_failed"
    assert failed["detail"]["attempts"] == 2
    assert failed["detail"]["status"] is None
    assert failed["detail"]["error"].startswith("ConnectError")
    assert get_alert(store, change.alert.id).status == "firing"


def test_once_the_receiver_is_unreachable_the_rest_of_the_batch_gets_one_attempt(
    store: MetadataStore,
) -> None:
    """Two alerts firing in one window toward a receiver that is down: the first uses
    its retries, the second is tried once; both are recorded as not delivered."""
    url = f"http://127.0.0.1:{closed_port()}/hooks"
    metrics = [*drift("feature.amount"), *drift("feature.channel")]
    rule = AlertRule("drift.detected", 0.5, column="*")
    changes = evaluate(store, "fraud", [rule], window(store, 0, metrics), deliver=hook(url, 2))
    attempts = [alert_events(store, c.alert.id)[-1]["detail"]["attempts"] for c in changes]
    assert attempts == [3, 1]


def test_changes_are_logged_warning_when_fired_and_info_when_resolved(
    store: MetadataStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The driftloop.alerts logger gets each change: WARNING for a warning alert
    firing, INFO for its resolution and for an info alert."""
    rules = [
        AlertRule("drift.detected", 0.5, column="feature.amount"),
        AlertRule("quality.missing_rate", 0.1, severity="info", name="missing inputs"),
    ]
    caplog.set_level(logging.INFO, logger="driftloop.alerts")
    metrics = [*drift(), MetricValue("quality.missing_rate", 0.2)]
    evaluate(store, "fraud", rules, window(store, 0, metrics))
    evaluate(store, "fraud", rules, window(store, 1, steady()))
    logged = [(r.levelname, r.alert_event, r.alert["rule"]) for r in caplog.records]  # type: ignore[attr-defined]
    assert logged == [
        ("WARNING", "fired", "drift.detected[feature.amount] > 0.5"),
        ("INFO", "fired", "missing inputs"),
        ("INFO", "resolved", "drift.detected[feature.amount] > 0.5"),
    ]
    assert "missing inputs on fraud: quality.missing_rate is 20% (> 10%)" in caplog.text


def test_alerts_are_listed_newest_first_by_model_and_status(store: MetadataStore) -> None:
    """list_alerts filters by model and status; an unknown id is a NotFoundError."""
    rule = AlertRule("drift.detected", 0.5, column="*")
    fraud: list[AlertChange] = evaluate(store, "fraud", [rule], window(store, 0, drift()))
    churn = evaluate(store, "churn", [rule], window(store, 0, drift(), model="churn"))
    assert list_alerts(store) == [churn[0].alert, fraud[0].alert]
    assert list_alerts(store, "fraud") == [fraud[0].alert]
    assert list_alerts(store, status="resolved") == []
    assert list_alerts(store, limit=1) == [churn[0].alert]
    with pytest.raises(NotFoundError, match="unknown alert '999'"):
        get_alert(store, 999)
