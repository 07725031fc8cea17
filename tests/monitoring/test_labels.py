"""Labels arrive through the model's label source as well as through feedback: each
prediction takes the label of the first source row for its entity at or after it,
once the label is known."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from driftloop.cli.init import write_example
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.project import Project
from driftloop.serving.predictionlog import RecordLog, prediction_table

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
"""The example's data is written as of T0: the second batch's payments span the week
before it, and it is ingested at T0."""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project: fraud v1 trained on the first batch, the second ingested."""
    folder = tmp_path_factory.mktemp("labels") / "shop"
    write_example(folder, now=T0)
    clock = SimulatedClock(T0 - timedelta(days=7) + timedelta(minutes=1))
    with use_clock(clock), Project(folder) as project:
        project.apply()
        project.ingest("transactions", folder / "data" / "transactions-1.csv")
        project.train("fraud", promote=True)
        clock.set(T0)
        project.ingest("transactions", folder / "data" / "transactions-2.csv")
    return folder


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Iterator[Project]:
    with Project(shutil.copytree(template, tmp_path / "shop")) as opened:
        yield opened


def _serve_second_batch(project: Project) -> pa.Table:
    """A prediction for each payment of the second batch, made at its time."""
    rows = pa.csv.read_csv(project.root / "data" / "transactions-2.csv")
    at = pc.cast(rows.column("event_time"), pa.timestamp("us", tz="UTC"))
    n = rows.num_rows
    with RecordLog(project.config.serving.predictions) as log:
        log.submit(
            "fraud",
            prediction_table(
                request_id=[f"r{i}" for i in range(n)],
                at=at,
                version=1,
                role="champion",
                prediction=np.random.default_rng(0).random(n),
                latency_ms=1.0,
                keys={"customer_id": rows.column("customer_id")},
                features={"amount": rows.column("amount"), "channel": rows.column("channel")},
            ),
        )
    return rows


def test_predictions_are_labelled_from_the_source_once_their_labels_are_known(
    project: Project,
) -> None:
    rows = _serve_second_batch(project)
    last = pc.max(rows.column("event_time")).as_py()
    n = rows.num_rows
    # a day after the last payment every label is known (known_after="1d")
    (done,) = project.monitor("fraud", last=n, now=last + timedelta(days=1, seconds=1))
    window = done.windows[0]
    assert window.get("performance.labelled").value == n
    assert window.get("performance.awaiting").value == 0
    auc = window.get("performance.roc_auc", version=1)
    assert auc is not None
    assert auc.details == {"labelled": n}


def test_labels_not_known_yet_leave_their_predictions_awaiting(project: Project) -> None:
    """An hour after the batch arrived, only the payments older than a day have their
    label known (known_after="1d"); before the batch arrived, none has."""
    rows = _serve_second_batch(project)
    times = pc.cast(rows.column("event_time"), pa.timestamp("us", tz="UTC"))
    now = T0 + timedelta(hours=1)
    (run,) = project.monitor("fraud", last=rows.num_rows, now=now)
    window = run.windows[0]
    limit = pa.scalar(now - timedelta(days=1), times.type)
    known = int(pc.sum(pc.less_equal(times, limit)).as_py())
    assert 0 < known < rows.num_rows
    assert window.get("performance.labelled").value == known
    assert window.get("performance.awaiting").value == rows.num_rows - known


def test_a_label_source_not_yet_ingested_labels_nothing(project: Project) -> None:
    rows = _serve_second_batch(project)
    last = pc.max(rows.column("event_time")).as_py()
    (run,) = project.monitor("fraud", last=rows.num_rows, now=last + timedelta(minutes=1))
    assert run.windows[0].get("performance.labelled").value == 0
