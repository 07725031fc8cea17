"""Drift statistics benchmark (issue 6): every statistic on every column, and one
window of the prediction log analysed end to end.

    .venv/bin/python bench/drift.py [--rows 100000] [--repeat 3] [--files 200]

A reference and a current sample of ``--rows`` rows each, 20 numeric columns (normal,
lognormal and uniform) and 5 categorical ones (5 to 50 categories), drift injected in
5 columns (a 0.05-sd mean shift, a 10% scale change, a tail, a new category, a share
change). The references are fitted once (as they are at training time, untimed); the
timed part compares the current sample to them: Kolmogorov-Smirnov, Wasserstein,
chi-square (numeric: over the reference's bins), PSI and Jensen-Shannon for each
numeric column, chi-square, PSI and Jensen-Shannon for each categorical one. Prints
the best time of ``--repeat``, the peak RSS and which columns drifted by each
statistic.

Then the **window**: a project whose model version carries the reference of the same
``--rows`` reference rows (fitted untimed, as at training), and a prediction log of
``--rows`` predictions over one day, in ``--files`` group-commit files as a server
writes them, with the current sample as inputs (``feature.*``), a prediction and a
latency per request. Timed: ``project.monitor(model)`` analysing that day — reading
the log, profiling each hourly step, drift of 26 columns (25 inputs and the
prediction), data quality, operations, performance (no labels yet), storing the
figures, writing the HTML report, evaluating the default alert rules — then, with one
more hour logged, the next window of a sliding day (step 1h), which reads only the new
hour.

Last, **false alarms**: 200 hourly windows of 100 predictions drawn from the
reference's own distributions (the 17 numeric columns without injected drift),
analysed by driftloop's default decision and by Evidently's choice alone; the share of
(window, column) pairs flagged. Appends a JSON line to bench/results/drift.jsonl.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import resource
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from driftloop.monitoring.statistics import (
    CategoricalReference,
    NumericReference,
    chisquare,
    jensenshannon,
    numeric_statistics,
    psi,
)

RESULTS = Path(__file__).parent / "results" / "drift.jsonl"
DRIFTED = {"num_00", "num_01", "num_02", "cat_00", "cat_01"}


def samples(rows: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    reference: dict[str, Any] = {}
    current: dict[str, Any] = {}
    for i in range(20):
        kind = i % 3
        make = (
            (lambda n, shift=0.0, scale=1.0: rng.normal(shift, scale, n))
            if kind == 0
            else (lambda n, shift=0.0, scale=1.0: rng.lognormal(shift, scale, n))
            if kind == 1
            else (lambda n, shift=0.0, scale=1.0: rng.uniform(shift, shift + 10 * scale, n))
        )
        name = f"num_{i:02d}"
        reference[name] = make(rows)
        if name == "num_00":
            current[name] = make(rows, shift=0.05)  # subtle mean shift
        elif name == "num_01":
            current[name] = make(rows, scale=1.1)
        elif name == "num_02":
            values = make(rows)
            values[: rows // 50] = values.max() * 3  # a new tail
            current[name] = values
        else:
            current[name] = make(rows)
    for i in range(5):
        k = 5 + 10 * i
        cats = np.array([f"c{j}" for j in range(k)])
        shares = rng.dirichlet(np.ones(k))
        name = f"cat_{i:02d}"
        reference[name] = rng.choice(cats, rows, p=shares)
        if name == "cat_00":
            current[name] = np.concatenate(
                [rng.choice(cats, rows - rows // 20, p=shares), np.full(rows // 20, "new")]
            )
        elif name == "cat_01":
            current[name] = rng.choice(cats, rows, p=np.roll(shares, 1))
        else:
            current[name] = rng.choice(cats, rows, p=shares)
    return reference, current


def compare(refs: dict[str, Any], current: dict[str, Any]) -> dict[str, dict[str, bool]]:
    out: dict[str, dict[str, bool]] = {}
    for name, ref in refs.items():
        cur = current[name]
        if isinstance(ref, NumericReference):
            results = list(numeric_statistics(ref, cur).values())
        else:
            results = [chisquare(ref, cur), psi(ref, cur), jensenshannon(ref, cur)]
        out[name] = {r.name: r.drifted for r in results}
    return out


def _log_day(
    project: Any, current: dict[str, Any], start: datetime, *, hours: int, files: int, seed: int
) -> None:
    """``current`` as the prediction records of ``hours`` hours from ``start``."""
    import pyarrow as pa

    from driftloop.serving.predictionlog import RecordLog, prediction_table

    rng = np.random.default_rng(seed)
    rows = len(next(iter(current.values())))
    bounds = np.linspace(0, rows, files + 1).astype(int)
    span = timedelta(hours=hours)
    with RecordLog(project.config.serving.predictions) as log:
        for i in range(files):
            a, b = bounds[i], bounds[i + 1]
            at = start + span * (i + 0.5) / files
            log.submit(
                "bench",
                prediction_table(
                    request_id=f"r{seed}-{i}",
                    at=at,
                    version=1,
                    role="champion",
                    prediction=rng.random(b - a),
                    latency_ms=float(rng.uniform(1, 3)),
                    features={k: pa.array(v[a:b]) for k, v in current.items()},
                ),
            )


@contextlib.contextmanager
def _project(folder: Path, reference: dict[str, Any]) -> Iterator[Any]:
    """A project whose model ``bench`` v1 carries the reference of ``reference``."""
    import pyarrow as pa

    from driftloop.monitoring.references import build_reference
    from driftloop.project import Project
    from driftloop.registry import models as registry

    (folder / "driftloop.yaml").write_text("name: bench\n")
    with Project(folder) as project:
        rows = len(next(iter(reference.values())))
        rng = np.random.default_rng(1)
        ref = build_reference(
            pa.table(reference), rng.random(rows), rng.integers(0, 2, rows), "binary"
        )
        registry.register_version(
            project.store,
            "bench",
            artifact_digest=project.artifacts.put_bytes(b"model"),
            flavor="sklearn",
            who="bench",
            signature={"inputs": [], "output": {"task": "binary", "classes": [0, 1]}},
            lineage={"reference": project.artifacts.put_bytes(ref.to_bytes())},
        )
        yield project


def false_alarms(
    reference: dict[str, Any], *, hours: int = 200, per_hour: int = 100
) -> dict[str, float]:
    """Share of (window, column) pairs flagged in ``hours`` hourly windows of
    ``per_hour`` predictions drawn from the reference's own distributions (the numeric
    columns without injected drift), by driftloop's default decision and by
    Evidently's choice alone."""
    from driftloop.monitoring.definitions import Monitor
    from driftloop.monitoring.runner import run_monitor

    fresh, _ = samples(hours * per_hour, seed=7)
    undrifted = {k: v for k, v in fresh.items() if k.startswith("num") and k not in DRIFTED}
    day = datetime(2026, 3, 2, tzinfo=UTC)
    out = {}
    for statistics in ("driftloop", "evidently"):
        with tempfile.TemporaryDirectory() as folder, _project(Path(folder), reference) as project:
            _log_day(project, undrifted, day, hours=hours, files=hours, seed=4)
            monitor = Monitor("bench", window="1h", statistics=statistics, rules=[])  # type: ignore[arg-type]
            context = dataclasses.replace(project.monitoring_context(monitor), reports=None)
            run = run_monitor(context, monitor, now=day + timedelta(hours=hours))
            flags = [
                m.value
                for w in run.windows
                for m in w.metrics
                if m.metric == "drift.detected" and m.column.startswith("feature.")
            ]
            out[statistics] = sum(flags) / len(flags)
    return out


def window_bench(reference: dict[str, Any], current: dict[str, Any], files: int) -> dict[str, Any]:
    """Time one day's window end to end, then the next sliding window (see the doc)."""
    day = datetime(2026, 3, 2, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as folder, _project(Path(folder), reference) as project:
        _log_day(project, current, day, hours=24, files=files, seed=2)
        start = time.perf_counter()
        (run,) = project.monitor("bench", window="1d", step="1h", now=day + timedelta(days=1))
        first = time.perf_counter() - start
        (window,) = run.windows
        hour = {k: v[: len(v) // 24] for k, v in current.items()}
        _log_day(project, hour, day + timedelta(days=1), hours=1, files=files // 24 or 1, seed=3)
        start = time.perf_counter()
        (slid,) = project.monitor(
            "bench", window="1d", step="1h", now=day + timedelta(days=1, hours=1)
        )
        second = time.perf_counter() - start
        share = window.get("drift.share")
        return {
            "window_rows": window.window.rows,
            "window_seconds": first,
            "next_sliding_window_seconds": second,
            "next_window_rows": slid.windows[0].window.rows,
            "drifted": (share.details or {}).get("drifted") if share else None,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    reference, current = samples(args.rows, seed=0)
    refs: dict[str, Any] = {
        name: NumericReference.fit(values)
        if name.startswith("num")
        else CategoricalReference.fit(values)
        for name, values in reference.items()
    }
    times = []
    verdicts: dict[str, dict[str, bool]] = {}
    for _ in range(args.repeat):
        start = time.perf_counter()
        verdicts = compare(refs, current)
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best = min(times)
    print(f"{args.rows:,} x 25 columns, all statistics: best {best:.3f} s of {args.repeat}")
    print(f"peak RSS {peak_mib:.0f} MiB")
    for name, flags in verdicts.items():
        drifted = [s for s, d in flags.items() if d]
        mark = "(drift injected)" if name in DRIFTED else ""
        print(f"  {name}: {', '.join(drifted) or '-'} {mark}")
    window = window_bench(reference, current, args.files)
    window_peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"prediction-log window of {window['window_rows']:,} rows ({args.files} files), end "
        f"to end: {window['window_seconds']:.3f} s; next sliding window "
        f"({window['next_window_rows']:,} rows, one new hour read): "
        f"{window['next_sliding_window_seconds']:.3f} s; peak RSS {window_peak_mib:.0f} MiB"
    )
    print(f"  drifted in the window: {', '.join(window['drifted'] or []) or '-'}")
    alarms = false_alarms(reference)
    print(
        "false alarms, 200 undrifted hourly windows of 100 predictions x 17 numeric "
        f"columns: driftloop {alarms['driftloop']:.1%}, Evidently's choice "
        f"{alarms['evidently']:.1%}"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        record = {
            "bench": "drift",
            "at": datetime.now(UTC).isoformat(),
            "rows": args.rows,
            "seconds": best,
            "peak_rss_mib": peak_mib,
            "verdicts": verdicts,
            "window": window,
            "window_peak_rss_mib": window_peak_mib,
            "false_alarms": alarms,
        }
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
