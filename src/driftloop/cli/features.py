"""``driftloop features`` and ``driftloop materialize``: feature views, training sets,
materialization and online lookups. Each command calls one Project method."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer

from driftloop.cli.output import (
    JsonOption,
    console,
    fmt_count,
    fmt_time,
    kv_table,
    parse_as_of,
    print_json,
    session,
    table,
)
from driftloop.data.readers import read_batch
from driftloop.errors import InputError

__all__ = ["app", "materialize_command"]

app = typer.Typer(
    help="Feature views, point-in-time training sets and online features.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

FeaturesOption = Annotated[
    str,
    typer.Option(
        "--features",
        "-f",
        metavar="REFS",
        help="Comma-separated feature references: view:feature, view@version:feature, view:*.",
    ),
]
EntitiesOption = Annotated[
    Path,
    typer.Option(
        "--entities",
        "-e",
        metavar="FILE",
        help="Entity rows: Parquet, CSV, Arrow or JSON lines with the join keys (and, for "
        "training sets, a timestamp column).",
        dir_okay=False,
    ),
]


def _refs(features: str) -> list[str]:
    return [f.strip() for f in features.split(",") if f.strip()]


def _read_entities(path: Path) -> pa.Table:
    return read_batch(path).table


def _write(data: pa.Table, output: Path) -> None:
    suffix = output.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise typer.BadParameter(f"{output} must end in .parquet or .csv", param_hint="'--output'")
    output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        pq.write_table(data, output)
    else:
        pacsv.write_csv(data, output)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List feature views and their versions (the current one marked)."""
    views = session(ctx).project().feature_views()
    listing = [
        {
            "name": v.name,
            "version": v.version,
            "current": v.current,
            "source": v.body["source"],
            "entity": v.body["entity"]["name"],
            "kind": "aggregates" if "aggregates" in v.body else "latest",
            "features": [f["name"] for f in v.body.get("features", v.body.get("aggregates", []))],
            "ttl": v.body.get("ttl"),
            "created_at": v.created_at,
        }
        for v in views
    ]
    if as_json:
        print_json({"feature_views": listing})
        return
    out = console()
    if not listing:
        out.print(
            "no feature views: declare them in the definitions module, then `driftloop apply`"
        )
        return
    out.print(
        table(
            ["view", "version", "current", "entity", "source", "kind", "ttl", "features"],
            [
                (
                    v["name"],
                    v["version"],
                    "yes" if v["current"] else "",
                    v["entity"],
                    v["source"],
                    v["kind"],
                    v["ttl"] or "-",
                    ", ".join(v["features"]),
                )
                for v in listing
            ],
        )
    )


@app.command()
def show(
    ctx: typer.Context,
    view: Annotated[str, typer.Argument(metavar="VIEW", help="name or name@version")],
    as_json: JsonOption = False,
) -> None:
    """Show a feature view's definition."""
    definition = session(ctx).project().feature_view(view)
    body = definition.to_dict()
    body["version"] = definition.version
    if as_json:
        print_json(body)
        return
    out = console()
    out.print(
        kv_table(
            [
                ("view", f"{definition.name}@{definition.version}"),
                ("entity", f"{definition.entity.name} ({', '.join(definition.entity.keys)})"),
                ("source", definition.source_name),
                ("ttl", body["ttl"] or "none"),
                ("created time", definition.created_time or "batch ingest time"),
            ]
        )
    )
    rows = (
        [
            (
                a["name"],
                a["type"],
                f"{a['function']}({a['column']}) over {a['window']}",
                a["default"],
            )
            for a in body["aggregates"]
        ]
        if "aggregates" in body
        else [(f["name"], f["type"], f["expr"], f["default"]) for f in body["features"]]
    )
    out.print(table(["feature", "type", "definition", "default"], rows))


@app.command("training-set")
def training_set(
    ctx: typer.Context,
    *,
    entities: EntitiesOption,
    features: FeaturesOption,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="FILE", help="A .parquet or .csv file.", dir_okay=False
        ),
    ],
    timestamp_column: Annotated[
        str, typer.Option("--timestamp-column", "-t", help="The entity rows' time column.")
    ] = "event_time",
    full_names: Annotated[
        bool, typer.Option("--full-names", help="Name features view__feature.")
    ] = False,
    missing_flags: Annotated[
        bool, typer.Option("--missing-flags", help="Add <feature>__missing columns.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Build a point-in-time correct training set and store it with its lineage."""
    project = session(ctx).project()
    result = project.get_training_set(
        _read_entities(entities),
        _refs(features),
        timestamp_column=timestamp_column,
        full_names=full_names,
        missing_flags=missing_flags,
    )
    _write(result.table, output)
    if as_json:
        print_json({**result.to_dict(), "output": str(output)})
        return
    short = (result.id or "")[:12]
    console().print(
        f"training set {short}: {fmt_count(result.table.num_rows)} rows, "
        f"{len(result.table.column_names)} columns -> {output}",
        soft_wrap=True,
    )
    for view in result.views:
        console().print(f"  {view['name']}@{view['version']}", soft_wrap=True)
    for source, versions in result.dataset_versions.items():
        console().print(f"  source {source}: {len(versions)} dataset versions", soft_wrap=True)


@app.command()
def online(
    ctx: typer.Context,
    features: FeaturesOption,
    entities: Annotated[
        Path | None,
        typer.Option(
            "--entities", "-e", metavar="FILE", help="Entity keys in a file.", dir_okay=False
        ),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            "-k",
            metavar="NAME=VALUE",
            help="An entity's key; repeat for more entities (or composite keys).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Look up materialized features of entities, with their age."""
    if entities is not None:
        keys = _read_entities(entities)
    elif key:
        pairs = [k.split("=", 1) for k in key]
        if any(len(p) != 2 for p in pairs):
            raise typer.BadParameter("write --key NAME=VALUE", param_hint="'--key'")
        columns: dict[str, list[str]] = {}
        for name, value in pairs:
            columns.setdefault(name, []).append(value)
        if len({len(v) for v in columns.values()}) > 1:
            raise typer.BadParameter(
                "give every key name the same number of times (one per entity)",
                param_hint="'--key'",
            )
        keys = pa.table(columns)
    else:
        raise InputError("give the entities with --entities FILE or --key NAME=VALUE")
    result = session(ctx).project().get_online_features(keys, _refs(features))
    rows = result.to_pylist()
    if as_json:
        print_json({"rows": rows})
        return
    out = console()
    for i, row in enumerate(rows):
        if i:
            out.print()
        out.print(kv_table([(name, _cell(value)) for name, value in row.items()]))


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return fmt_time(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)


def materialize_command(
    ctx: typer.Context,
    until: Annotated[
        datetime | None,
        typer.Option(
            "--until",
            parser=parse_as_of,
            metavar="ISO",
            help="Materialize values as of this time (default: now).",
        ),
    ] = None,
    view: Annotated[
        list[str] | None,
        typer.Option("--view", metavar="VIEW", help="Only this view (repeatable)."),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Recompute every entity, not only changed ones.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write the latest feature values into the online store (incremental)."""
    results = session(ctx).project().materialize(view or None, until=until, full=full)
    listing: list[dict[str, Any]] = [
        {
            "view": r.view,
            "version": r.version,
            "until": r.until,
            "previous_watermark": r.previous_watermark,
            "entities": r.entities,
        }
        for r in results
    ]
    if as_json:
        print_json({"materialized": listing})
        return
    out = console()
    if not listing:
        out.print("no feature views to materialize")
        return
    out.print(
        table(
            ["view", "version", "until", "since", "entities written"],
            [
                (
                    r["view"],
                    r["version"],
                    fmt_time(r["until"]),
                    fmt_time(r["previous_watermark"]) if r["previous_watermark"] else "(first run)",
                    fmt_count(r["entities"]),
                )
                for r in listing
            ],
            right=["entities written"],
        )
    )
