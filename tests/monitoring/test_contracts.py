"""Inputs that a feature view passes through from its source are checked against the
source's data contract: values outside its range or not among its allowed values."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from driftloop.cli.init import write_example
from driftloop.core import clock
from driftloop.monitoring.contracts import contract_checks
from driftloop.project import Project
from driftloop.serving.predictionlog import RecordLog, prediction_table


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The example project with fraud v1 trained on the first batch."""
    folder = tmp_path_factory.mktemp("contracts") / "shop"
    write_example(folder)
    with Project(folder) as project:
        project.apply()
        project.ingest("transactions", folder / "data" / "transactions-1.csv")
        project.train("fraud", promote=True)
        yield project


def test_pass_through_inputs_carry_their_contract_and_aggregates_do_not(
    example: Project,
) -> None:
    checks = contract_checks(example.store, example.model_version("fraud", 1).signature)
    assert set(checks) == {"feature.amount", "feature.channel"}
    amount, channel = checks["feature.amount"], checks["feature.channel"]
    assert (amount.source, amount.column, amount.min, amount.max) == (
        "transactions",
        "amount",
        0.0,
        100000.0,
    )
    assert channel.allowed is not None
    assert set(channel.allowed) == {"web", "app", "pos"}


def test_a_signature_without_feature_references_has_no_checks(example: Project) -> None:
    assert contract_checks(example.store, {"inputs": [{"name": "x", "ref": "nope"}]}) == {}


def test_served_values_the_contract_forbids_are_counted_and_explain_the_drift(
    example: Project,
) -> None:
    rng = np.random.default_rng(3)
    n = 400
    amount = rng.uniform(5, 400, n)
    amount[:40] = -10.0  # negative amounts: the contract's minimum is 0
    channel = rng.choice(["web", "app", "pos"], n).astype(object)
    channel[:60] = "kiosk"  # not an allowed channel
    at = clock.now()
    with RecordLog(example.config.serving.predictions) as log:
        log.submit(
            "fraud",
            prediction_table(
                request_id="r1",
                at=at,
                version=1,
                role="champion",
                prediction=rng.random(n),
                latency_ms=2.0,
                features={"amount": amount, "channel": list(channel)},
            ),
        )
    (run,) = example.monitor("fraud", last=n, now=at + timedelta(seconds=1))
    (window,) = run.windows
    amount_check = window.get("quality.contract", "feature.amount")
    assert amount_check.value == pytest.approx(40 / n)
    assert (amount_check.details["below"], amount_check.details["above"]) == (40, 0)
    channel_check = window.get("quality.contract", "feature.channel")
    assert channel_check.value == pytest.approx(60 / n)
    assert channel_check.details["values"] == [{"value": "kiosk", "count": 60}]
    page = Path(window.window.report or "").read_text(encoding="utf-8")
    assert "transactions v1: not allowed" in page
    assert "kiosk" in page
