"""Benchmark: evaluating a challenger against a champion (``driftloop.evaluation``).

100,000 rows of a binary task (20% positives), two models scored on the same rows,
all binary metrics; times ``compute_metrics`` for one model, ``paired_bootstrap``
with 1,000 resamples, and ``slice_metrics`` over one categorical column with 10
values. Run from the repository root::

    .venv/bin/python bench/evaluate.py [--rows N] [--resamples R] [--repeat K]

Prints seconds (best of ``--repeat``) and appends one JSON line to
``bench/results/evaluate.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from driftloop.evaluation.bootstrap import paired_bootstrap
from driftloop.evaluation.metrics import compute_metrics
from driftloop.evaluation.slices import slice_metrics

RESULTS = Path(__file__).parent / "results" / "evaluate.jsonl"


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs and the last result."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n = args.rows
    y = (rng.random(n) < 0.2).astype(np.int64)
    noise = rng.normal(size=n)
    champion = 1 / (1 + np.exp(-(2 * y - 1 + 1.5 * noise)))
    challenger = 1 / (1 + np.exp(-(2 * y - 1 + 1.3 * noise)))
    segment = rng.integers(0, 10, n).astype(str)

    metrics_s, _ = best(lambda: compute_metrics("binary", y, challenger), args.repeat)
    boot_s, diffs = best(
        lambda: paired_bootstrap(
            "binary", y, champion, challenger, resamples=args.resamples, seed=0
        ),
        args.repeat,
    )
    slices_s, slices = best(
        lambda: slice_metrics("binary", y, challenger, {"segment": segment}), args.repeat
    )
    auc = diffs["roc_auc"]
    print(f"rows {n:,}, resamples {args.resamples:,}, metrics {len(diffs)}")
    print(f"compute_metrics   {metrics_s:8.3f} s")
    print(f"paired_bootstrap  {boot_s:8.3f} s")
    print(f"slice_metrics     {slices_s:8.3f} s  ({len(slices)} slices)")
    print(f"roc_auc b - a = {auc.observed:+.4f} [{auc.low:+.4f}, {auc.high:+.4f}]")
    record = {
        "benchmark": "evaluate",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "rows": n,
        "resamples": args.resamples,
        "metrics": len(diffs),
        "slices": len(slices),
        "compute_metrics_seconds": round(metrics_s, 4),
        "bootstrap_seconds": round(boot_s, 4),
        "slice_metrics_seconds": round(slices_s, 4),
        "roc_auc_difference": [round(auc.observed, 5), round(auc.low, 5), round(auc.high, 5)],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    sys.exit(main())
