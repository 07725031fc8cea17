"""The dashboard's tables on the `driftloop init` example (whose transactions contract
has a 30-day freshness rule), read in process: freshness, health, profiles, and a
prediction server that does not answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from driftloop import Project
from driftloop.cli.init import write_example
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.core.processes import LOOPBACK, free_port
from driftloop.ui import tables
from driftloop.ui.health import health_table, http_probe

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
"""The example's data is written as of T0: its payments span the weeks before it."""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The example: two clean batches ingested at T0, fraud v1 trained and promoted."""
    folder = tmp_path_factory.mktemp("ui-tables") / "shop"
    write_example(folder, now=T0)
    with use_clock(SimulatedClock(T0)), Project(folder) as opened:
        opened.apply()
        opened.ingest("transactions", folder / "data" / "transactions-1.csv")
        opened.ingest("transactions", folder / "data" / "transactions-2.csv")
        opened.train("fraud", promote=True)
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
