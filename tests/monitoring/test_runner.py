"""`Project.monitor`: windows of the prediction log analysed against the version's
reference or the previous window, their figures stored as time series, reports
written, alerts raised — incrementally, with performance updated as labels arrive."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftloop.errors import InputError, NotFoundError
from driftloop.monitoring import series
from driftloop.monitoring.definitions import AlertRule, Monitor

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # the conftest's first prediction day
MODEL = "fraud"
Monitored = Any  # the conftest's project with a registered version and its log writer


def figures(monitored: Monitored, metric: str, column: str = "", version: int | None = None):
    return [
        m.value
        for _, m in series.series(
            monitored.project.store, MODEL, metric, column=column, version=version
        )
    ]


def test_daily_windows_find_the_shifted_day_and_its_data_quality_problems(
    monitored: Monitored,
) -> None:
    monitored.serve(T0, 48, 100, seed=1)
    monitored.serve(T0 + timedelta(days=2), 24, 100, seed=2, shift=0.5, nulls=0.1, new_channel=0.1)
    (run,) = monitored.project.monitor(MODEL, now=T0 + timedelta(days=3, hours=1))
    assert [w.window.start for w in run.windows] == [T0 + timedelta(days=d) for d in range(3)]
    assert [w.window.rows for w in run.windows] == [2400, 2400, 2400]
    assert figures(monitored, "drift.detected", "feature.amount") == [0.0, 0.0, 1.0]
    assert figures(monitored, "drift.detected", "feature.channel") == [0.0, 0.0, 1.0]
    nulls = figures(monitored, "quality.null_rate", "feature.amount")
    assert nulls[:2] == [0.0, 0.0]
    assert 0.07 < nulls[2] < 0.13
    unseen = figures(monitored, "quality.unseen", "feature.channel")
    assert unseen[:2] == [0.0, 0.0]
    assert 0.07 < unseen[2] < 0.13
    last = run.windows[-1]
    unseen_details = last.get("quality.unseen", "feature.channel").details
    assert unseen_details["categories"][0]["value"] == "kiosk"
    out_of_range = last.get("quality.out_of_range", "feature.amount")
    below, above = out_of_range.details["below"], out_of_range.details["above"]
    assert out_of_range.value == (below + above) / 2400
    assert figures(monitored, "requests", version=monitored.version) == [24.0, 24.0, 24.0]
    assert figures(monitored, "error_rate", version=monitored.version) == [0.0, 0.0, 0.0]


def test_each_window_is_analysed_once_and_the_next_run_goes_on_from_there(
    monitored: Monitored,
) -> None:
    monitored.serve(T0, 24, 50, seed=1)
    (first,) = monitored.project.monitor(MODEL, now=T0 + timedelta(days=1, hours=1))
    assert len(first.windows) == 1
    (again,) = monitored.project.monitor(MODEL, now=T0 + timedelta(days=1, hours=2))
    assert again.windows == []
    monitored.serve(T0 + timedelta(days=1), 24, 50, seed=2)
    (second,) = monitored.project.monitor(MODEL, now=T0 + timedelta(days=2, hours=1))
    assert [w.window.start for w in second.windows] == [T0 + timedelta(days=1)]


def test_sliding_windows_merge_cached_step_profiles_instead_of_rereading_the_log(
    monitored: Monitored,
) -> None:
    monitored.serve(T0, 24, 40, seed=1)
    monitor = Monitor(MODEL, window="1d", step="6h")
    project = monitored.project
    (first,) = project.monitor(MODEL, window="1d", step="6h", now=T0 + timedelta(days=1, minutes=1))
    assert [w.window.rows for w in first.windows] == [960]
    assert monitor.step_length == timedelta(hours=6)
    cached = sorted(project.config.monitoring.profiles.rglob("*.parquet"))
    assert len(cached) == 4  # one profile per 6-hour step
    # the log of the first day is gone; the next windows still count its steps
    shutil.rmtree(project.config.serving.predictions / f"model={MODEL}")
    monitored.serve(T0 + timedelta(days=1), 12, 40, seed=2)
    (second,) = project.monitor(MODEL, window="1d", step="6h", now=T0 + timedelta(days=1, hours=12))
    assert [w.window.start for w in second.windows] == [
        T0 + timedelta(hours=6),
        T0 + timedelta(hours=12),
    ]
    assert [w.window.rows for w in second.windows] == [960, 960]


def test_an_offset_moves_where_daily_windows_start(monitored: Monitored) -> None:
    """offset="5h": days from 05:00 UTC; the first window holds the log's first five
    hours, the next ones a whole day each."""
    from driftloop.monitoring.runner import run_monitor

    monitored.serve(T0, 48, 100, seed=1)
    project = monitored.project
    monitor = Monitor(MODEL, window="1d", offset="5h")
    run = run_monitor(project.monitoring_context(monitor), monitor, now=T0 + timedelta(hours=54))
    starts = [T0 + timedelta(hours=h) for h in (-19, 5, 29)]
    assert [w.window.start for w in run.windows] == starts
    assert [w.window.rows for w in run.windows] == [500, 2400, 1900]


def test_the_step_profile_cache_keeps_only_what_later_windows_read(
    monitored: Monitored,
) -> None:
    """Five daily windows analysed: the cache keeps the last day's step profile (the
    next window compared with the previous one reads it), not the four before."""
    monitored.serve(T0, 120, 20, seed=1)
    project = monitored.project
    (run,) = project.monitor(MODEL, now=T0 + timedelta(days=5, hours=1))
    assert len(run.windows) == 5
    cached = sorted(project.config.monitoring.profiles.rglob("*.parquet"))
    last_day = int((T0 + timedelta(days=4)).timestamp() * 1000)
    assert [int(path.stem) for path in cached] == [last_day]


def test_windows_compared_with_the_previous_window_see_a_change_between_them(
    monitored: Monitored,
) -> None:
    monitored.serve(T0, 48, 100, seed=1, shift=1.0)
    monitored.serve(T0 + timedelta(days=2), 24, 100, seed=2, shift=1.0)
    monitored.serve(T0 + timedelta(days=3), 24, 100, seed=3, shift=0.0)
    (run,) = monitored.project.monitor(
        MODEL, against="previous", now=T0 + timedelta(days=4, hours=1)
    )
    # the first day is the reference of the second: no window of its own
    assert [w.window.start for w in run.windows] == [T0 + timedelta(days=d) for d in (1, 2, 3)]
    assert [w.window.reference["kind"] for w in run.windows] == ["previous"] * 3
    detected = [w.get("drift.detected", "feature.amount").value for w in run.windows]
    assert detected == [0.0, 0.0, 1.0]


def test_performance_is_updated_as_labels_arrive_and_counts_what_awaits_them(
    monitored: Monitored,
) -> None:
    monitored.serve(T0, 24, 50, seed=1)
    (run,) = monitored.project.monitor(MODEL, now=T0 + timedelta(days=1, hours=1))
    window = run.windows[0]
    assert window.get("performance.labelled").value == 0.0
    assert window.get("performance.awaiting").value == 1200.0
    assert window.get("performance.roc_auc", version=monitored.version) is None
    # the same predictions again, this time with labels (a second request per hour)
    monitored.serve(T0, 24, 50, seed=2, label=True)
    (later,) = monitored.project.monitor(MODEL, now=T0 + timedelta(days=1, hours=3))
    assert later.windows == []
    assert later.refreshed == 1
    (updated,) = monitored.project.monitoring_windows(MODEL)
    assert updated.get("performance.labelled").value == 1200.0
    assert updated.get("performance.awaiting").value == 1200.0
    auc = updated.get("performance.roc_auc", version=monitored.version)
    assert auc.details == {"labelled": 1200}
    assert 0.6 < auc.value < 0.9


def test_performance_is_broken_down_by_the_declared_slices(monitored: Monitored) -> None:
    monitored.serve(T0, 24, 100, seed=1, label=True)
    monitor = Monitor(MODEL, slices=["feature.channel"], metrics=["accuracy", "roc_auc"])
    from driftloop.monitoring.runner import run_monitor

    run = run_monitor(
        monitored.project.monitoring_context(monitor), monitor, now=T0 + timedelta(days=1)
    )
    labels = sorted(
        m.column for m in run.windows[0].metrics if m.metric == "performance.accuracy" and m.column
    )
    assert labels == [
        "feature.channel = app",
        "feature.channel = store",
        "feature.channel = web",
    ]
    counts = [
        m.details["labelled"]
        for m in run.windows[0].metrics
        if m.metric == "performance.accuracy" and m.column
    ]
    assert sum(counts) == 2400


def test_the_last_n_predictions_form_one_window(monitored: Monitored) -> None:
    monitored.serve(T0, 10, 100, seed=1)
    (run,) = monitored.project.monitor(MODEL, last=250, now=T0 + timedelta(hours=10))
    (window,) = run.windows
    assert window.window.rows == 250
    assert window.window.reference["last"] == 250
    assert window.window.end == T0 + timedelta(hours=9, microseconds=1)
    with pytest.raises(InputError, match="positive"):
        monitored.project.monitor(MODEL, last=0)


def test_every_window_gets_a_self_contained_html_report(monitored: Monitored) -> None:
    monitored.serve(T0, 24, 50, seed=1)
    (run,) = monitored.project.monitor(MODEL, now=T0 + timedelta(days=1))
    path = run.windows[0].window.report
    assert path is not None
    page = Path(path).read_text(encoding="utf-8")
    assert "feature.amount" in page
    assert "<svg" in page
    assert "http" not in page.lower()


def test_a_drift_lasting_two_windows_raises_one_alert_that_resolves_when_it_ends(
    monitored: Monitored,
) -> None:
    monitored.serve(T0, 24, 100, seed=1)
    monitored.serve(T0 + timedelta(days=1), 48, 100, seed=2, shift=1.0)
    monitored.serve(T0 + timedelta(days=3), 24, 100, seed=3)
    (run,) = monitored.project.monitor(MODEL, now=T0 + timedelta(days=4))
    fired = [(c.kind, c.alert.column) for c in run.alerts]
    assert ("fired", "feature.amount") in fired
    assert ("resolved", "feature.amount") in fired
    alerts = monitored.project.alerts(MODEL, status="resolved")
    amount = next(a for a in alerts if a.column == "feature.amount")
    assert "feature.amount" in amount.text
    assert "distribution shift" in amount.text


def test_a_replayed_drift_raises_its_alert_two_windows_after_the_change_and_none_before(
    monitored: Monitored,
) -> None:
    """Hourly windows over two days; the amounts shift by half a standard deviation at
    hour 30. The default rule alerts on a column drifting two windows in a row: no alert
    before the change, the first in the second window after it (detection delay: two
    windows, the rule's own)."""
    drift_at = 30
    monitored.serve(T0, drift_at, 200, seed=11)
    monitored.serve(T0 + timedelta(hours=drift_at), 48 - drift_at, 200, seed=12, shift=0.5)
    (run,) = monitored.project.monitor(MODEL, window="1h", now=T0 + timedelta(hours=48))
    assert len(run.windows) == 48
    fired = [c for c in run.alerts if c.kind == "fired" and c.alert.column == "feature.amount"]
    by_id = {w.window.id: i for i, w in enumerate(run.windows)}
    first = min(by_id[c.alert.first_window] for c in fired)
    assert first == drift_at  # the first of the two windows it held in
    assert by_id[fired[0].alert.last_window] == drift_at + 1
    before = [c for c in run.alerts if by_id[c.alert.last_window] < drift_at]
    assert before == []
    detected = [w.get("drift.detected", "feature.amount").value for w in run.windows]
    assert sum(detected[drift_at:]) >= 0.9 * (48 - drift_at)


def test_the_evidently_choice_alone_misses_the_subtle_shift_the_default_sees(
    monitored: Monitored,
) -> None:
    """A shift of 0.07 standard deviations over 48,000 predictions: Wasserstein stays under
    its 0.1 threshold, the Kolmogorov-Smirnov test sees it."""
    monitored.serve(T0, 24, 2000, seed=5, shift=0.07)
    from driftloop.monitoring.runner import run_monitor

    results = {}
    for statistics in ("driftloop", "evidently"):
        monitor = Monitor(MODEL, statistics=statistics)  # type: ignore[arg-type]
        context = monitored.project.monitoring_context(monitor)
        run = run_monitor(context, monitor, now=T0 + timedelta(days=1), last=48_000)
        window = run.windows[0]
        results[statistics] = window.get("drift.detected", "feature.amount").value
        details = window.get("drift.value", "feature.amount").details
        assert details["statistic"] == "wasserstein"
        assert details["value"] < 0.1
    assert results == {"driftloop": 1.0, "evidently": 0.0}


def test_a_model_without_predictions_has_nothing_to_monitor(monitored: Monitored) -> None:
    (run,) = monitored.project.monitor(MODEL, now=T0)
    assert run.windows == []
    with pytest.raises(NotFoundError):
        monitored.project.monitor("no-such-model", now=T0)


def test_a_bad_override_is_an_input_error(monitored: Monitored) -> None:
    with pytest.raises(InputError, match="whole number of steps"):
        monitored.project.monitor(MODEL, window="1d", step="7h")
    with pytest.raises(InputError, match="not a duration"):
        monitored.project.monitor(MODEL, window="soon")


def test_alert_rules_reach_their_threshold_on_the_stored_series(monitored: Monitored) -> None:
    monitored.serve(T0, 24, 50, seed=1, nulls=0.3)
    monitor = Monitor(MODEL, rules=[AlertRule("quality.missing_rate", 0.2, severity="critical")])
    from driftloop.monitoring.runner import run_monitor

    run = run_monitor(
        monitored.project.monitoring_context(monitor), monitor, now=T0 + timedelta(days=1)
    )
    ((change),) = run.alerts
    assert change.kind == "fired"
    assert change.alert.severity == "critical"
    assert np.isclose(change.alert.threshold, 0.2)


def test_a_delay_waits_for_the_labels_before_analysing_a_window(monitored: Monitored) -> None:
    monitored.serve(T0, 24, 50, seed=1, label=True)  # labels arrive an hour late
    monitor = Monitor(MODEL, delay="2h")
    from driftloop.monitoring.runner import run_monitor

    context = monitored.project.monitoring_context(monitor)
    early = run_monitor(context, monitor, now=T0 + timedelta(days=1, hours=1))
    assert early.windows == []
    (window,) = run_monitor(context, monitor, now=T0 + timedelta(days=1, hours=2)).windows
    assert window.get("performance.labelled").value == 1200.0
    assert window.get("performance.awaiting").value == 0.0


def test_the_last_n_predictions_count_only_their_own_labels(monitored: Monitored) -> None:
    monitored.serve(T0, 10, 100, seed=1, label=True)
    (run,) = monitored.project.monitor(MODEL, last=250, now=T0 + timedelta(hours=12))
    (window,) = run.windows
    assert window.get("performance.labelled").value == 250.0
    assert window.get("performance.awaiting").value == 0.0


def test_undrifted_windows_raise_false_alarms_near_the_tests_level(monitored: Monitored) -> None:
    """200 hourly windows of the reference's own distribution: the share of windows in
    which a column is flagged stays near the 5% level of its (corrected) test."""
    monitored.serve(T0, 200, 100, seed=21)
    (run,) = monitored.project.monitor(MODEL, window="1h", now=T0 + timedelta(hours=200))
    assert len(run.windows) == 200
    for column in ("feature.amount", "feature.channel"):
        flagged = [w.get("drift.detected", column).value for w in run.windows]
        rate = sum(flagged) / len(flagged)
        assert 0.005 <= rate <= 0.08, (column, rate)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"window": "1d", "step": "7h"}, "whole number of steps"),
        ({"window": "tomorrow"}, "not a duration"),
        ({"against": "yesterday"}, "against must be"),
        ({"statistics": "mine"}, "statistics must be"),
        ({"by_type": {"numeric": "t-test"}}, "known statistics"),
        ({"by_type": {"text": "psi"}}, "by_type keys"),
        ({"thresholds": {"t-test": 0.1}}, "known statistics"),
        ({"correction": "holm"}, "correction must be"),
        ({"min_rows": 0}, "min_rows"),
        ({"delay": "-1h"}, "delay"),
        ({"offset": "1d"}, "less than the step"),
        ({"window": "1d", "step": "6h", "offset": "7h"}, "less than the step"),
        ({"offset": "soon"}, "offset 'soon' is not a duration"),
        ({"rules": [AlertRule("rows", 1), AlertRule("rows", 1)]}, "two rules are named"),
    ],
)
def test_a_monitor_with_a_bad_field_is_a_definition_error(
    fields: dict[str, Any], message: str
) -> None:
    from driftloop.errors import DefinitionError

    with pytest.raises(DefinitionError, match=message):
        Monitor(MODEL, **fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"op": "!="}, "op must be"),
        ({"severity": "page"}, "severity must be"),
        ({"for_windows": 0}, "for_windows"),
        ({"threshold": "high"}, "threshold must be a number"),
        ({"version": 3}, "version must be"),
    ],
)
def test_an_alert_rule_with_a_bad_field_is_a_definition_error(
    fields: dict[str, Any], message: str
) -> None:
    from driftloop.errors import DefinitionError

    with pytest.raises(DefinitionError, match=message):
        AlertRule("drift.share", **{"threshold": 0.3, **fields})


def test_the_last_n_predictions_compared_with_the_n_before_them(monitored: Monitored) -> None:
    monitored.serve(T0, 5, 100, seed=1)
    monitored.serve(T0 + timedelta(hours=5), 5, 100, seed=2, shift=1.0)
    (run,) = monitored.project.monitor(
        MODEL, last=500, against="previous", now=T0 + timedelta(hours=10)
    )
    (window,) = run.windows
    assert window.window.reference == {"kind": "previous", "rows": 500, "last": 500}
    assert window.get("drift.detected", "feature.amount").value == 1.0
