"""``driftloop predictions [MODEL]``: what the prediction server answered, from its log.

A summary per model, version and role (count, latency, time range, labels received),
or the records themselves written to a Parquet file, optionally with their labels.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import typer

from driftloop.cli.output import (
    JsonOption,
    console,
    fmt_count,
    fmt_time,
    parse_as_of,
    print_json,
    session,
    table,
)

__all__ = ["predictions"]


def _summary(log: pa.Table, labelled: bool) -> list[dict[str, Any]]:
    if log.num_rows == 0:
        return []
    aggregates = [
        ("request_id", "count"),
        ("latency_ms", "mean"),
        ("latency_ms", "max"),
        ("at", "min"),
        ("at", "max"),
    ]
    if labelled:
        aggregates.append(("label", "count"))
    if "error" in log.column_names:
        aggregates.append(("error", "count"))
    grouped = log.group_by(["model", "version", "role"]).aggregate(aggregates)
    grouped = grouped.sort_by([("model", "ascending"), ("version", "ascending")])
    rows = []
    for row in grouped.to_pylist():
        entry = {
            "model": row["model"],
            "version": row["version"],
            "role": row["role"],
            "predictions": row["request_id_count"],
            "latency_ms_mean": row["latency_ms_mean"],
            "latency_ms_max": row["latency_ms_max"],
            "first": row["at_min"],
            "last": row["at_max"],
            "errors": row.get("error_count", 0),
        }
        if labelled:
            entry["labelled"] = row["label_count"]
        rows.append(entry)
    return rows


def predictions(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Argument(metavar="[MODEL]", help="One model (default: all).")
    ] = None,
    *,
    since: Annotated[
        datetime | None,
        typer.Option(parser=parse_as_of, metavar="ISO", help="Only predictions at or after."),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(parser=parse_as_of, metavar="ISO", help="Only predictions before."),
    ] = None,
    labelled: Annotated[
        bool,
        typer.Option("--labelled", help="Join the labels received through feedback."),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            dir_okay=False,
            help="Write the records to this .parquet file.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Summarise the prediction log (per model, version and role), or export it."""
    if output is not None and output.suffix.lower() != ".parquet":
        raise typer.BadParameter(f"{output} must end in .parquet", param_hint="'--output'")
    log = session(ctx).project().predictions(model, since=since, until=until, labelled=labelled)
    labelled = labelled and "label" in log.column_names
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(log, output)
    summary = _summary(log, labelled)
    if as_json:
        print_json(
            {
                "rows": log.num_rows,
                "output": str(output) if output is not None else None,
                "summary": summary,
            }
        )
        return
    out = console()
    if output is not None:
        out.print(f"wrote {fmt_count(log.num_rows)} records to {output}")
    if not summary:
        out.print("no predictions logged" + (f" for {model}" if model else ""))
        return
    columns = ["model", "version", "role", "predictions", "errors", "mean ms", "max ms"]
    columns += ["first", "last"]
    if labelled:
        columns.append("labelled")
    rows = []
    for s in summary:
        row = [
            s["model"],
            f"v{s['version']}",
            s["role"],
            fmt_count(s["predictions"]),
            fmt_count(s["errors"]),
            f"{s['latency_ms_mean']:.2f}",
            f"{s['latency_ms_max']:.2f}",
            fmt_time(s["first"]),
            fmt_time(s["last"]),
        ]
        if labelled:
            row.append(fmt_count(s["labelled"]))
        rows.append(row)
    out.print(table(columns, rows))
    if labelled:
        waiting = int(pc.sum(pc.is_null(log.column("label"))).as_py() or 0)
        out.print(f"{fmt_count(waiting)} predictions still await a label")
