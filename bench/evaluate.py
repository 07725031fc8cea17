"""Benchmark: evaluating a challenger against a champion (``driftloop.evaluation``).

100,000 rows of a binary task (20% positives), two models scored on the same rows,
all binary metrics; times ``compute_metrics`` for one model, ``paired_bootstrap``
with 1,000 resamples, ``slice_metrics`` over one categorical column with 10
values, and the whole champion-vs-challenger evaluation ``compare`` (metrics of both,
the bootstrap, 10 slice columns -- 5 categorical with 10 values, 5 numeric in 5
quantile bins -- for both models, calibration, ROC, 5 gates) and rendering its HTML
report. Run from the repository root::

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
from driftloop.evaluation.compare import compare
from driftloop.evaluation.gates import CalibrationBound, Change, SliceRegression, Threshold
from driftloop.evaluation.html import report_html
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
    columns: dict[str, Any] = {f"cat{i}": rng.integers(0, 10, n).astype(str) for i in range(5)}
    columns.update({f"num{i}": rng.normal(size=n) for i in range(5)})
    gates = [
        Threshold("roc_auc", min=0.7),
        Change("roc_auc", min_delta=0.0, use_interval=True),
        Change("log_loss", min_delta=0.0),
        SliceRegression("roc_auc", max_drop=0.02),
        CalibrationBound(max_ece=0.1),
    ]
    compare_s, report = best(
        lambda: compare(
            "binary",
            y,
            challenger,
            champion,
            gates=gates,
            slices=columns,
            resamples=args.resamples,
        ),
        args.repeat,
    )
    html_s, page = best(lambda: report_html(report.to_dict()), args.repeat)
    auc = diffs["roc_auc"]
    print(f"rows {n:,}, resamples {args.resamples:,}, metrics {len(diffs)}")
    print(f"compute_metrics   {metrics_s:8.3f} s")
    print(f"paired_bootstrap  {boot_s:8.3f} s")
    print(f"slice_metrics     {slices_s:8.3f} s  ({len(slices)} slices)")
    print(
        f"compare (whole)   {compare_s:8.3f} s  (10 slice columns, "
        f"{len(report.challenger_slices)} slices per model, {len(gates)} gates)"
    )
    print(f"report_html       {html_s:8.3f} s  ({len(page) / 1024:.0f} KiB)")
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
        "compare_seconds": round(compare_s, 4),
        "compare_slices": len(report.challenger_slices),
        "report_html_seconds": round(html_s, 4),
        "roc_auc_difference": [round(auc.observed, 5), round(auc.low, 5), round(auc.high, 5)],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    sys.exit(main())
