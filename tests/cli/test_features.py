"""`driftloop features` and `driftloop materialize` on the example project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from driftloop.cli import app

ENV = {"DRIFTLOOP_PROJECT": None, "DRIFTLOOP_DEBUG": None, "COLUMNS": None}


def cli(project: Path, *args: str | Path) -> Result:
    return CliRunner().invoke(app, ["-p", str(project), *map(str, args)], env=ENV)


def cli_json(project: Path, *args: str | Path) -> Any:
    result = cli(project, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project with both clean batches ingested and its labels exported."""
    folder = tmp_path_factory.mktemp("features") / "shop"
    assert CliRunner().invoke(app, ["init", str(folder)], env=ENV).exit_code == 0
    assert cli(folder, "apply").exit_code == 0
    for name in ("1", "2"):
        ingested = cli(
            folder, "data", "ingest", "transactions", folder / f"data/transactions-{name}.csv"
        )
        assert ingested.exit_code == 0, ingested.output
    exported = cli(
        folder,
        "data",
        "export",
        "transactions",
        "--columns",
        "customer_id,event_time,is_fraud",
        "--output",
        folder / "labels.parquet",
    )
    assert exported.exit_code == 0, exported.output
    return folder


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "shop"))


def test_apply_registers_the_example_feature_views(project: Path) -> None:
    """features list shows both example views with their current versions."""
    listing = cli_json(project, "features", "list")["feature_views"]
    assert {(v["name"], v["kind"], v["current"]) for v in listing} == {
        ("last_transaction", "latest", True),
        ("customer_spend", "aggregates", True),
    }
    shown = cli_json(project, "features", "show", "customer_spend")
    assert [a["name"] for a in shown["aggregates"]] == [
        "amount_sum_1d",
        "amount_sum_7d",
        "amount_count_7d",
        "amount_max_28d",
    ]


def test_a_training_set_is_written_with_one_row_per_label(project: Path) -> None:
    """training-set writes every label row with its features and reports the lineage."""
    out = project / "train.parquet"
    body = cli_json(
        project,
        "features",
        "training-set",
        "--entities",
        project / "labels.parquet",
        "--features",
        "last_transaction:amount,customer_spend:*",
        "--output",
        out,
    )
    table = pq.read_table(out)
    assert table.num_rows == body["rows"] == 4000
    assert table.column_names == [
        "customer_id",
        "event_time",
        "is_fraud",
        "amount",
        "amount_sum_1d",
        "amount_sum_7d",
        "amount_count_7d",
        "amount_max_28d",
    ]
    assert len(body["dataset_versions"]["transactions"]) == 2


def test_materialize_then_look_up_online_features(project: Path) -> None:
    """After materialize, online returns each entity's values with their age."""
    runs = cli_json(project, "materialize")["materialized"]
    assert {r["view"] for r in runs} == {"last_transaction", "customer_spend"}
    assert all(r["entities"] > 0 for r in runs)
    rows = cli_json(
        project,
        "features",
        "online",
        "--features",
        "last_transaction:amount",
        "--key",
        "customer_id=cu_0001",
        "--key",
        "customer_id=nobody",
    )["rows"]
    assert rows[0]["last_transaction__found"] is True
    assert rows[0]["last_transaction__age_s"] >= 0
    assert rows[1] == {
        "customer_id": "nobody",
        "amount": 0.0,
        "last_transaction__age_s": None,
        "last_transaction__stale": False,
        "last_transaction__found": False,
    }
    again = cli_json(project, "materialize")["materialized"]
    assert all(r["previous_watermark"] is not None for r in again)


def test_bad_feature_requests_exit_with_their_codes(project: Path) -> None:
    """Unknown views exit 4, malformed references 5, a --key without = exits 2."""
    unknown = cli(project, "features", "show", "nope")
    assert unknown.exit_code == 4
    assert "unknown feature view 'nope'" in unknown.stderr
    malformed = cli(
        project, "features", "online", "--features", "last_transaction", "--key", "customer_id=x"
    )
    assert malformed.exit_code == 5
    assert "not of the form" in malformed.stderr
    assert (
        cli(
            project,
            "features",
            "online",
            "--features",
            "last_transaction:amount",
            "--key",
            "customer_id",
        ).exit_code
        == 2
    )
    missing = cli(
        project,
        "features",
        "training-set",
        "--entities",
        project / "nope.parquet",
        "--features",
        "last_transaction:amount",
        "--output",
        project / "o.parquet",
    )
    assert missing.exit_code == 3
