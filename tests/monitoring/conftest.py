"""A project with one registered model whose version carries a reference profile, and a
way to write its prediction and feedback logs as a server would (through
:class:`~driftloop.serving.predictionlog.RecordLog`), in simulated time."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from driftloop.monitoring.references import build_reference
from driftloop.project import Project
from driftloop.registry import models as registry
from driftloop.serving.predictionlog import RecordLog, feedback_table, prediction_table

T0 = datetime(2026, 3, 2, tzinfo=UTC)
MODEL = "fraud"


def training_frame(rng: np.random.Generator, n: int) -> pa.Table:
    return pa.table(
        {
            "amount": rng.normal(100.0, 20.0, n),
            "channel": rng.choice(["app", "web", "store"], n, p=[0.5, 0.3, 0.2]),
        }
    )


def score(amount: np.ndarray) -> np.ndarray:
    """The model's probability, a fixed function of the amount."""
    return np.asarray(1.0 / (1.0 + np.exp(-(amount - 100.0) / 20.0)))


@dataclasses.dataclass
class Monitored:
    folder: Path
    project: Project
    version: int

    def serve(
        self,
        start: datetime,
        hours: int,
        per_hour: int,
        *,
        seed: int,
        shift: float = 0.0,
        nulls: float = 0.0,
        new_channel: float = 0.0,
        version: int | None = None,
        role: str = "champion",
        label: bool = False,
        label_flip: float = 0.0,
    ) -> None:
        """Predictions every hour from ``start``: amounts shifted by ``shift`` standard
        deviations, a share of null amounts and of a channel the reference never saw;
        with ``label=True`` their labels arrive an hour later (a share flipped)."""
        rng = np.random.default_rng(seed)
        predictions = RecordLog(self.project.config.serving.predictions, durability="strict")
        feedback = RecordLog(self.project.config.serving.feedback, durability="strict")
        try:
            for h in range(hours):
                at = start + timedelta(hours=h)
                n = per_hour
                amount = rng.normal(100.0 + shift * 20.0, 20.0, n)
                channel = rng.choice(["app", "web", "store"], n, p=[0.5, 0.3, 0.2]).astype(object)
                channel[rng.random(n) < new_channel] = "kiosk"
                p = score(amount)
                amount_col = pa.array(np.where(rng.random(n) < nulls, np.nan, amount))
                amount_col = pa.array(amount_col.to_numpy(zero_copy_only=False), from_pandas=True)
                request = f"r-{uuid.uuid4().hex[:12]}"
                table = prediction_table(
                    request_id=request,
                    at=at,
                    version=version or self.version,
                    role=role,
                    prediction=p,
                    latency_ms=rng.uniform(1.0, 3.0),
                    features={"amount": amount_col, "channel": pa.array(list(channel))},
                    missing={
                        "amount": pa.array(amount_col.is_null().to_numpy(zero_copy_only=False))
                    },
                )
                predictions.submit(MODEL, table).result()
                if label:
                    truth = (rng.random(n) < p).astype(float)
                    flip = rng.random(n) < label_flip
                    truth[flip] = 1.0 - truth[flip]
                    feedback.submit(
                        MODEL,
                        feedback_table(
                            label=truth,
                            request_id=request,
                            instance=np.arange(n, dtype=np.int32),
                            at=at + timedelta(hours=1),
                        ),
                    ).result()
        finally:
            predictions.close()
            feedback.close()


def make_project(folder: Path, rng: np.random.Generator) -> Monitored:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "driftloop.yaml").write_text("name: monitored\n")
    project = Project(folder)
    train = training_frame(rng, 5000)
    amounts = train.column("amount").to_numpy()
    labels = (rng.random(5000) < score(amounts)).astype(float)
    reference = build_reference(train, score(amounts), labels, "binary")
    digest = project.artifacts.put_bytes(reference.to_bytes())
    model = project.artifacts.put_bytes(b"not a model: monitoring never loads it")
    version = registry.register_version(
        project.store,
        MODEL,
        artifact_digest=model,
        flavor="sklearn",
        who="test",
        signature={
            "inputs": [],
            "output": {"task": "binary", "classes": [0, 1], "threshold": 0.5},
        },
        lineage={"reference": digest},
    )
    return Monitored(folder, project, version.version)


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[Monitored]:
    m = make_project(tmp_path / "project", np.random.default_rng(7))
    try:
        yield m
    finally:
        m.project.close()
