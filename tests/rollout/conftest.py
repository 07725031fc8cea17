"""A model 'fraud' with a champion (v1) and a challenger (v2) registered by hand in a
real metadata store (SQLite, then PostgreSQL), and a simulated prediction server: each
simulated minute it answers requests as the deployment says — the champion, the canary
for its share of the routing keys, a copy to the shadow — writing the prediction and
feedback logs through :class:`~driftloop.serving.predictionlog.RecordLog`, in
simulated time."""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.core.metadata import MetadataStore
from driftloop.registry import models as registry
from driftloop.rollout import engine
from driftloop.rollout.policy import RolloutPolicy
from driftloop.serving import deployments
from driftloop.serving.predictionlog import (
    RecordLog,
    feedback_table,
    join_feedback,
    prediction_table,
    read_log,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MODEL = "fraud"
OUTPUT = {"task": "binary", "classes": [0, 1], "threshold": 0.5}
MINUTE = timedelta(minutes=1)


class FileLog:
    """The prediction and feedback logs under two folders, read as a rollout reads them
    (what a project's log does, without a project)."""

    def __init__(self, predictions: Path, feedback: Path) -> None:
        self.predictions_root = predictions
        self.feedback_root = feedback

    def predictions(self, model: str, since: datetime, until: datetime) -> pa.Table:
        return read_log(self.predictions_root, model, since=since, until=until)

    def join_labels(self, model: str, table: pa.Table, since: datetime, now: datetime) -> pa.Table:
        # feedback received by now (a label arrives after its prediction)
        feedback = read_log(self.feedback_root, model, since=since)
        if feedback.num_rows:
            feedback = feedback.filter(pc.less_equal(feedback.column("at"), pa.scalar(now)))
        return join_feedback(table, feedback)


@dataclasses.dataclass
class Logs:
    """The prediction and feedback logs of a test, written as a server writes them."""

    folder: Path

    @property
    def log(self) -> FileLog:
        return FileLog(self.folder / "predictions", self.folder / "feedback")

    def predictions(self, **columns: object) -> None:
        """Append the records ``prediction_table(**columns)`` builds."""
        self.append(prediction_table(**columns))

    def append(self, table: pa.Table) -> None:
        with RecordLog(self.folder / "predictions", durability="strict") as log:
            log.submit(MODEL, table).result()

    def labels(self, **columns: object) -> None:
        """Append the feedback ``feedback_table(**columns)`` builds."""
        with RecordLog(self.folder / "feedback", durability="strict") as log:
            log.submit(MODEL, feedback_table(**columns)).result()


@dataclasses.dataclass
class Behaviour:
    """How a version answers: its share of failed predictions, its latency, how good
    its scores are (``skill`` 1: the truth's probability; 0: noise)."""

    errors: float = 0.0
    latency_ms: float = 2.0
    skill: float = 1.0


@dataclasses.dataclass
class Traffic:
    """A simulated server of 'fraud' and its logs."""

    folder: Path
    store: MetadataStore
    per_minute: int = 200
    behaviour: dict[int, Behaviour] = dataclasses.field(default_factory=dict)
    labels: bool = False
    seed: int = 0

    @property
    def logs(self) -> Logs:
        return Logs(self.folder)

    def behave(self, version: int, **how: float) -> None:
        """Make ``version`` answer as :class:`Behaviour` (``errors=0.3``...) says."""
        self.behaviour[version] = Behaviour(**how)

    @property
    def log(self) -> FileLog:
        return self.logs.log

    def _answers(
        self, rng: np.random.Generator, version: int, role: str, ids: list[str], at: datetime
    ) -> pa.Table:
        how = self.behaviour.get(version, Behaviour())
        n = len(ids)
        truth = rng.random(n)
        noise = rng.random(n)
        p = np.clip(how.skill * truth + (1.0 - how.skill) * noise, 0.0, 1.0)
        failed = rng.random(n) < how.errors
        p[failed] = np.nan
        error = [f"RuntimeError: boom {i}" if f else None for i, f in enumerate(failed)]
        return prediction_table(
            request_id=ids,
            at=at,
            version=version,
            role=role,
            prediction=p,
            latency_ms=rng.uniform(0.5, 1.5, n) * how.latency_ms,
            error=error,
        ).append_column("truth", pa.array(truth))

    def serve_minute(self, start: datetime) -> None:
        """One minute of requests, routed as the deployment is now; with ``labels``,
        each request's outcome arrives at the end of the minute."""
        d = deployments.get_deployment(self.store, MODEL)
        rng = np.random.default_rng(self.seed + int(start.timestamp()))
        ids = [f"r-{int(start.timestamp())}-{i}" for i in range(self.per_minute)]
        bucket = np.array([zlib.crc32(i.encode()) % 10_000 for i in ids]) / 100.0
        canary = bucket < d.canary_weight if d.canary is not None else np.zeros(len(ids), bool)
        at = start + timedelta(seconds=30)
        parts = []
        served = [i for i, c in zip(ids, canary, strict=True) if not c]
        if served:
            assert d.champion is not None
            parts.append(self._answers(rng, d.champion, "champion", served, at))
        moved = [i for i, c in zip(ids, canary, strict=True) if c]
        if moved:
            assert d.canary is not None
            parts.append(self._answers(rng, d.canary, "canary", moved, at))
        if d.shadow is not None:
            parts.append(self._answers(rng, d.shadow, "shadow", ids, at))
        table = pa.concat_tables(parts)
        truth = table.column("truth").to_numpy()
        table = table.drop_columns(["truth"])
        self.logs.append(table)
        if self.labels:
            self.logs.labels(
                request_id=table.column("request_id"),
                instance=table.column("instance"),
                label=(rng.random(len(truth)) < truth).astype(float),
                at=start + MINUTE,
            )


@dataclasses.dataclass
class World:
    """The store, the simulated clock and server, and a loop that drives them."""

    store: MetadataStore
    clock: SimulatedClock
    traffic: Traffic

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def start(self, policy: RolloutPolicy, version: int = 2, **kwargs: object) -> engine.Rollout:
        return engine.start_rollout(
            self.store, MODEL, version, policy, who="ci", reason="retrained", **kwargs
        )

    def minute(self, rollout_id: int) -> engine.RolloutStatus:
        """Serve one minute, then let the rollout advance at its end."""
        self.traffic.serve_minute(self.now)
        self.clock.advance(MINUTE)
        return engine.advance(self.store, rollout_id, self.traffic.log, now=self.now)

    def run(self, rollout_id: int, minutes: int = 120) -> engine.RolloutStatus:
        """Minutes of traffic until the rollout is done (or ``minutes`` passed)."""
        status = engine.advance(self.store, rollout_id, self.traffic.log, now=self.now)
        for _ in range(minutes):
            if status.done or status.rollout.state == "paused":
                return status
            status = self.minute(rollout_id)
        return status


def register(store: MetadataStore, versions: int = 3) -> None:
    """'fraud' v1..v3 registered by hand, v1 champion, v2 the challenger alias."""
    for n in range(1, versions + 1):
        registry.register_version(
            store,
            MODEL,
            artifact_digest=hashlib.sha256(bytes([n])).hexdigest(),
            flavor="sklearn",
            who="ci",
            signature={"inputs": [], "output": OUTPUT},
        )
    registry.set_alias(store, MODEL, "champion", 1, who="ci", reason="first")
    registry.set_alias(store, MODEL, "challenger", 2, who="ci", reason="gates passed")


@pytest.fixture
def store(metadata_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore.open(metadata_url)
    try:
        yield store
    finally:
        store.close()


def make_world(store: MetadataStore, folder: Path) -> World:
    """A world at T0 on ``store`` (registered), its logs under ``folder``; its clock is
    used inside ``with use_clock(world.clock)``."""
    clock = SimulatedClock(T0)
    with use_clock(clock):
        register(store)
    return World(store, clock, Traffic(folder, store))


@pytest.fixture
def new_world() -> Callable[[MetadataStore, Path], World]:
    """:func:`make_world`, for tests that build several worlds."""
    return make_world


@pytest.fixture
def world(store: MetadataStore, tmp_path: Path) -> Iterator[World]:
    made = make_world(store, tmp_path / "logs")
    with use_clock(made.clock):
        yield made


@pytest.fixture
def logs(tmp_path: Path) -> Logs:
    return Logs(tmp_path / "logs")
