"""The dashboard's tables on the `driftloop init` example (whose transactions contract
has a 30-day freshness rule), read in process on SQLite and on PostgreSQL: freshness,
health, profiles, the monitoring tables' SQL and paging, and a prediction server that
does not answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from driftloop import Project
from driftloop.cli.init import write_example
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.core.processes import LOOPBACK, free_port
from driftloop.monitoring import series
from driftloop.monitoring.series import MetricValue
from driftloop.ui import tables
from driftloop.ui.health import health_table, http_probe

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
"""The example's data is written as of T0: its payments span the weeks before it."""


WINDOWS = 12
"""Hourly monitoring windows recorded for fraud, each with drift and quality figures."""


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, module_metadata_url: str
) -> Iterator[Project]:
    """The example: two clean batches ingested at T0, fraud v1 trained and promoted, and
    WINDOWS monitoring windows after T0 (window i: amount's null rate i / 100)."""
    folder = tmp_path_factory.mktemp("ui-tables") / "shop"
    write_example(folder, now=T0)
    settings = folder / "driftloop.yaml"
    settings.write_text(
        settings.read_text().replace(
            "url: sqlite:///.driftloop/metadata.db", f"url: {module_metadata_url}"
        )
    )
    with use_clock(SimulatedClock(T0)), Project(folder) as opened:
        opened.apply()
        opened.ingest("transactions", folder / "data" / "transactions-1.csv")
        opened.ingest("transactions", folder / "data" / "transactions-2.csv")
        opened.train("fraud", promote=True)
        for i in range(WINDOWS):
            start = T0 + timedelta(hours=i)
            series.record_window(
                opened.store,
                model="fraud",
                against="reference",
                start=start,
                end=start + timedelta(hours=1),
                rows=100,
                version=1,
                reference={},
                metrics=[
                    MetricValue("drift.value", i / 10, "feature.amount",
                                details={"threshold": 0.5, "drifted": i / 10 > 0.5}),
                    MetricValue("drift.value", 0.01 * i, "prediction",
                                details={"threshold": 0.1, "drifted": False}),
                    MetricValue("drift.share", 1.0 if i > 5 else 0.0),
                    MetricValue("latency.p99", 5.0 + i, version=1),
                    MetricValue("quality.null_rate", i / 100, "feature.amount"),
                    MetricValue("quality.missing_rate", 0.0),
                ],
            )  # fmt: skip
        yield opened


def _freshness(project: Project, at: datetime) -> dict[str, object]:
    with use_clock(SimulatedClock(at)):
        (row,) = tables.sources(project).records()
    return row


def test_a_source_is_fresh_within_its_contracts_max_age_and_stale_after(
    project: Project,
) -> None:
    newest = max(v.event_max for v in project.versions("transactions") if v.event_max)
    fresh = _freshness(project, newest + timedelta(days=29, hours=23))
    assert (fresh["freshness"], fresh["max_age"], fresh["age"]) == ("fresh", "30d", "29d 23h")
    stale = _freshness(project, newest + timedelta(days=30, minutes=1))
    assert (stale["freshness"], stale["age"]) == ("stale", "30d 1m")


def test_a_served_model_without_alerts_is_healthy(project: Project) -> None:
    (row,) = tables.model_overview(project).records()
    assert (row["model"], row["health"], row["champion"], row["open_alerts"]) == (
        "fraud",
        "ok",
        1,
        0,
    )


def test_a_dataset_versions_profile_is_one_row_per_contract_column(project: Project) -> None:
    version = project.version(project.versions("transactions")[0].id)
    assert version.profile is not None
    found = tables.column_profiles("first", version.profile).records()
    assert [r["column"] for r in found] == list(version.profile.columns)
    amount = version.profile.columns["amount"]
    (row,) = [r for r in found if r["column"] == "amount"]
    assert (row["kind"], row["count"], row["nulls"], row["mean"]) == (
        "numeric",
        amount.count,
        amount.nulls,
        amount.mean,
    )


def test_the_windows_table_holds_each_windows_figures_oldest_first(project: Project) -> None:
    found = tables.window_series(project, "fraud").records()
    assert [r["latency_p99_ms"] for r in found] == [5.0 + i for i in range(WINDOWS)]
    assert [r["prediction_drift"] for r in found] == [0.01 * i for i in range(WINDOWS)]
    assert [r["drift_share"] for r in found] == [1.0 if i > 5 else 0.0 for i in range(WINDOWS)]


def test_the_windows_table_pages_back_from_the_newest(project: Project) -> None:
    """Pages of 5 from the newest: windows 7-11, then 2-6, then 0-1 with no more."""
    pages = [tables.window_series(project, "fraud", offset=o, windows=5) for o in (0, 5, 10)]
    column = pages[0].columns.index("end")
    ends = [[row[column] for row in page.rows] for page in pages]
    assert ends == [
        [T0 + timedelta(hours=i + 1) for i in window]
        for window in (range(7, 12), range(2, 7), range(2))
    ]
    assert [(page.offset, page.more) for page in pages] == [(0, True), (5, True), (10, False)]


def test_data_quality_shows_the_latest_window_and_counts_the_windows_with_problems(
    project: Project,
) -> None:
    rows = {r["column"]: r for r in tables.data_quality(project, "fraud", windows=5).records()}
    amount = rows["feature.amount"]
    assert (amount["null_rate"], amount["windows_with_problems"], amount["windows"]) == (
        (WINDOWS - 1) / 100,
        5,
        5,
    )
    assert (rows["(all)"]["missing_inputs"], rows["(all)"]["windows_with_problems"]) == (0.0, 0)


def test_the_heatmap_divides_each_statistic_by_its_threshold(project: Project) -> None:
    found = tables.drift_heatmap(project, "fraud", windows=4)
    (amount,) = [r for r in found.table.rows if r[0] == "feature.amount"]
    assert amount[1:] == [round(i / 10 / 0.5, 4) for i in range(WINDOWS - 4, WINDOWS)]
    (flags,) = [
        f for r, f in zip(found.table.rows, found.drifted, strict=True) if r[0] == "feature.amount"
    ]
    assert flags == [i / 10 > 0.5 for i in range(WINDOWS - 4, WINDOWS)]


def test_the_loop_controller_shows_as_running_while_it_holds_its_lease(project: Project) -> None:
    """No controller yet: never started. While `driftloop run` holds the lease: running,
    with its holder; once it lets go: stopped."""
    from driftloop.loop.lease import Lease

    (before,) = tables.controller(project).records()
    assert (before["state"], before["holder"], before["runs_in_progress"]) == (
        "never started",
        None,
        0,
    )
    lease = Lease(project.store, holder="host:1234:run", ttl=timedelta(seconds=15))
    with use_clock(SimulatedClock(T0 + timedelta(days=1))):
        assert lease.acquire()
        (running,) = tables.controller(project).records()
        lease.release()
        (stopped,) = tables.controller(project).records()
    assert (running["state"], running["holder"]) == ("running", "host:1234:run")
    assert stopped["state"] == "stopped"


def test_a_server_that_does_not_answer_is_shown_unreachable_with_the_reason() -> None:
    url = f"http://{LOOPBACK}:{free_port()}"  # nobody listens there
    (row,) = health_table(http_probe(url, timeout=2.0)()).records()
    assert (row["server"], row["status"], row["model"]) == (url, "unreachable", None)
    assert row["reasons"]


def test_ui_refuses_a_server_address_that_is_not_a_url(project: Project) -> None:
    from typer.testing import CliRunner

    from driftloop.cli.app import app

    result = CliRunner().invoke(app, ["-p", str(project.root), "ui", "--server", "localhost:8080"])
    assert result.exit_code == 2
    assert "--server" in result.output
    assert Path(project.root).is_dir()
