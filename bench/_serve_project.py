"""The project served by bench/serve.py: 100,000 customers, 10 features, one binary model.

``build(folder, customers, labels)`` writes a driftloop project into ``folder`` (its
``driftloop.yaml`` and a ``definitions.py``), applies it, ingests generated data
(seeded numpy, nothing downloaded), trains the ``churn`` model with the builtin
HistGradientBoosting trainer, promotes it to champion and materializes the features
into the default (SQLite) online store:

- source ``customers``: one row per customer (id ``cu_000000``...), event times 20 to
  30 days before now, 8 float columns and 2 string columns (``segment``: 5 values,
  ``channel``: 3 values);
- feature views ``customer_profile`` (6 features: 5 floats and ``segment``) and
  ``customer_activity`` (4 features: 3 floats and ``channel``), 10 features in all;
- source ``outcomes``: ``labels`` rows (random customer, a time 1 to 19 days before
  now, a 0/1 label that depends on the features), the label of the model ``churn``.

``request_bodies`` gives JSON request bodies for the driftloop server (entity keys) and
for the bare reference (the same instances' encoded feature values, in the model's
input order, read back from the online store as the server would serve them).
"""

from __future__ import annotations

import json
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

MODEL = "churn"
KEY = "customer_id"
MARKER = "bench-serve.json"
SEGMENTS = np.array(["basic", "family", "premium", "senior", "student"])
CHANNELS = np.array(["app", "store", "web"])

DEFINITIONS = textwrap.dedent(
    '''\
    """bench/serve.py's project: customers with 10 features, and a churn model."""

    from driftloop import Entity, Feature, FeatureView, Label, ModelSpec, Source, TimeSplit
    from driftloop.data.contract import Column, Contract

    FLOATS = ["tenure_days", "age", "credit_limit", "balance", "income"]
    ACTIVITY = ["txn_count_30d", "spend_30d", "days_since_last"]

    customers = Source(
        "customers",
        contract=Contract(
            event_time="event_time",
            columns=(
                Column("customer_id", "string", nullable=False),
                Column("event_time", "timestamp", nullable=False),
                *(Column(name, "float") for name in FLOATS + ACTIVITY),
                Column("segment", "category"),
                Column("channel", "category"),
            ),
        ),
    )
    outcomes = Source(
        "outcomes",
        contract=Contract(
            event_time="event_time",
            columns=(
                Column("customer_id", "string", nullable=False),
                Column("event_time", "timestamp", nullable=False),
                Column("churned", "bool", nullable=False),
            ),
        ),
    )

    customer = Entity("customer", keys={"customer_id": "string"})

    customer_profile = FeatureView(
        "customer_profile",
        entity=customer,
        source=customers,
        ttl="90d",
        features=[
            *(Feature(name, "float", default=0.0) for name in FLOATS),
            Feature("segment", "string", default="unknown"),
        ],
    )
    customer_activity = FeatureView(
        "customer_activity",
        entity=customer,
        source=customers,
        ttl="90d",
        features=[
            *(Feature(name, "float", default=0.0) for name in ACTIVITY),
            Feature("channel", "string", default="unknown"),
        ],
    )

    churn = ModelSpec(
        "churn",
        task="binary",
        features=["customer_profile:*", "customer_activity:*"],
        label=Label("outcomes", "churned", entity=customer),
        trainer="hist_gradient_boosting",
        params={"max_iter": 100, "learning_rate": 0.1},
        split=TimeSplit(fraction=0.2),
    )
    '''
)


def customer_ids(n: int) -> np.ndarray:
    return np.char.add("cu_", np.char.zfill(np.arange(n).astype(str), 6))


def _customers(n: int, now: datetime, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = int((now - timedelta(days=30)).timestamp() * 1e6)
    span = int(timedelta(days=10).total_seconds() * 1e6)
    return pa.table(
        {
            "customer_id": customer_ids(n),
            "event_time": pa.array(
                rng.integers(start, start + span, n), pa.timestamp("us", tz="UTC")
            ),
            "tenure_days": rng.uniform(0, 3650, n),
            "age": rng.uniform(18, 90, n).round(),
            "credit_limit": rng.lognormal(8, 0.6, n).round(2),
            "balance": rng.lognormal(6, 1.2, n).round(2),
            "income": rng.lognormal(10.5, 0.5, n).round(2),
            "txn_count_30d": rng.poisson(12, n).astype(np.float64),
            "spend_30d": rng.lognormal(5.5, 1.0, n).round(2),
            "days_since_last": rng.exponential(6, n).round(1),
            "segment": SEGMENTS[rng.choice(5, n, p=[0.4, 0.2, 0.15, 0.15, 0.1])],
            "channel": CHANNELS[rng.choice(3, n, p=[0.5, 0.2, 0.3])],
        }
    )


def _outcomes(customers: pa.Table, rows: int, now: datetime, seed: int = 2) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = customers.num_rows
    who = rng.integers(0, n, rows)
    col = {
        name: customers.column(name).to_numpy(zero_copy_only=False)
        for name in customers.schema.names
    }
    logit = (
        -1.0
        - 0.0006 * col["tenure_days"][who]
        + 0.9 * np.log1p(col["balance"][who] / col["credit_limit"][who])
        - 0.05 * col["txn_count_30d"][who]
        + 0.08 * col["days_since_last"][who]
        + 0.7 * (col["segment"][who] == "student")
        - 0.5 * (col["segment"][who] == "premium")
        + 0.4 * (col["channel"][who] == "web")
        + rng.normal(0, 1, rows)
    )
    start = int((now - timedelta(days=19)).timestamp() * 1e6)
    span = int(timedelta(days=18).total_seconds() * 1e6)
    return pa.table(
        {
            "customer_id": pa.array(col["customer_id"][who]),
            "event_time": pa.array(
                np.sort(rng.integers(start, start + span, rows)), pa.timestamp("us", tz="UTC")
            ),
            "churned": pa.array(logit > 0),
        }
    )


def built(folder: Path) -> dict[str, Any] | None:
    """What ``build`` recorded in ``folder``, or None if it holds no built project."""
    marker = folder / MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def build(folder: Path, customers: int, labels: int) -> dict[str, Any]:
    """Write, fill, train and materialize the project in ``folder`` (see the module doc)."""
    from driftloop import Project

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "driftloop.yaml").write_text("name: bench-serve\n")
    (folder / "definitions.py").write_text(DEFINITIONS)
    now = datetime.now(UTC)
    with Project(folder) as project:
        t0 = time.perf_counter()
        project.apply()
        table = _customers(customers, now)
        project.ingest("customers", table)
        project.ingest("outcomes", _outcomes(table, labels, now))
        t1 = time.perf_counter()
        outcome = project.train(MODEL, promote=True)
        t2 = time.perf_counter()
        project.materialize()
        t3 = time.perf_counter()
        timings = {"ingest_s": t1 - t0, "train_s": t2 - t1, "materialize_s": t3 - t2}
        champion = project.model_version(MODEL, "champion")
        info = {
            "model": MODEL,
            "customers": customers,
            "labels": labels,
            "built_at": now.isoformat(),
            "champion": champion.version,
            "flavor": champion.flavor,
            "artifact_digest": champion.artifact_digest,
            "metrics": {k: v for k, v in outcome.run.metrics.items() if isinstance(v, float)},
            "timings": {k: round(v, 2) for k, v in timings.items()},
        }
    (folder / MARKER).write_text(json.dumps(info, indent=2) + "\n")
    return info


def input_names(folder: Path) -> list[str]:
    """The champion's input columns (the signature's order)."""
    from driftloop import Project
    from driftloop.training.encoding import inputs_from_signature

    with Project(folder) as project:
        version = project.model_version(MODEL, "champion")
        return [i.name for i in inputs_from_signature(version.signature)]


def request_bodies(
    folder: Path, customers: int, instances: int, count: int, seed: int = 3
) -> tuple[list[bytes], list[bytes]]:
    """``count`` bodies of ``instances`` random customers each: (driftloop, bare)."""
    from driftloop import Project
    from driftloop.training.encoding import encode, inputs_from_signature

    rng = np.random.default_rng(seed + instances)
    ids = customer_ids(customers)[rng.integers(0, customers, (count, instances))]
    with Project(folder) as project:
        version = project.model_version(MODEL, "champion")
        inputs = inputs_from_signature(version.signature)
        spec = project.model_spec(MODEL)
        flat = pa.table({KEY: pa.array(ids.reshape(-1))})
        served = project.get_online_features(flat, list(spec.features))
        matrix = encode(served, inputs)
    names = [i.name for i in inputs]
    keyed, bare = [], []
    for r in range(count):
        keyed.append(
            json.dumps(
                {"instances": [{"keys": {KEY: str(c)}} for c in ids[r]]}, separators=(",", ":")
            ).encode()
        )
        rows = matrix[r * instances : (r + 1) * instances]
        bare.append(
            json.dumps(
                {
                    "instances": [
                        {"features": dict(zip(names, map(float, row), strict=True))} for row in rows
                    ]
                },
                separators=(",", ":"),
            ).encode()
        )
    return keyed, bare
