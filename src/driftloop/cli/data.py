"""``driftloop data``: sources, contracts, ingest, dataset versions, profiles, quarantine.

Each command calls one or two :class:`~driftloop.project.Project` methods and renders
the result; errors propagate to the root command, which maps them to exit codes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.text import Text

from driftloop.cli.output import (
    AsOfOption,
    JsonOption,
    console,
    failures_table,
    fmt_count,
    fmt_time,
    kv_table,
    print_json,
    profile_json,
    profile_table,
    session,
    table,
)
from driftloop.data.datasets import DatasetVersion
from driftloop.data.quarantine import QuarantineEntry
from driftloop.errors import BatchRejected, InputError, InputNotFound
from driftloop.project import Project

__all__ = ["app", "quarantine_app"]

app = typer.Typer(
    help="Work with sources, dataset versions and quarantine.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
quarantine_app = typer.Typer(
    help="Inspect, release or drop rejected batches.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(quarantine_app, name="quarantine")

SourceArg = Annotated[str, typer.Argument(metavar="SOURCE", help="The source's name.")]
SourceOption = Annotated[
    str | None, typer.Option("--source", "-s", metavar="SOURCE", help="Only this source.")
]


def _project(ctx: typer.Context) -> Project:
    return session(ctx).project()


def _as_of_label(as_of: datetime | None) -> str:
    return f" as of {fmt_time(as_of)}" if as_of else ""


# -- sources and contracts -------------------------------------------------------------------


@app.command()
def sources(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the sources.

    Declared and registered sources with their contract version, event time column,
    columns, dataset versions, rows and quarantined batches.
    """
    project = _project(ctx)
    listing = []
    for entry in project.status()["sources"]:
        contract, _ = project.contract(entry["name"])
        listing.append(
            {
                "name": entry["name"],
                "declared": entry["declared"],
                "registered": entry["registered"],
                "contract_version": entry["contract_version"],
                "event_time": contract.event_time,
                "primary_key": list(contract.primary_key),
                "columns": contract.names,
                "versions": entry["versions"],
                "rows": entry["rows"],
                "quarantined": entry["quarantined"],
                "latest": entry["latest"],
            }
        )
    if as_json:
        print_json({"sources": listing})
        return
    out = console()
    if not listing:
        out.print("no sources: declare one in the definitions module, then `driftloop apply`")
        return
    out.print(
        table(
            ["source", "contract", "event time", "columns", "versions", "rows", "quarantined"],
            [
                (
                    s["name"],
                    f"v{s['contract_version']}" if s["registered"] else "not applied",
                    s["event_time"],
                    len(s["columns"]),
                    fmt_count(s["versions"]),
                    fmt_count(s["rows"]),
                    fmt_count(s["quarantined"]),
                )
                for s in listing
            ],
            right=["columns", "versions", "rows", "quarantined"],
        )
    )


@app.command()
def contract(
    ctx: typer.Context,
    source: SourceArg,
    history: Annotated[
        bool, typer.Option("--history", help="List every version and what changed in it.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a source's contract.

    The current contract as YAML, or with --history every version and what changed.
    """
    project = _project(ctx)
    if history:
        versions = project.contract_history(source)
        if as_json:
            print_json(
                {
                    "source": source,
                    "versions": [
                        {
                            "version": v.version,
                            "hash": v.hash,
                            "created_at": v.created_at,
                            "created_by": v.created_by,
                            "changes": v.changes,
                            "contract": v.contract.to_dict(),
                        }
                        for v in versions
                    ],
                }
            )
            return
        out = console()
        for v in versions:
            out.print(
                Text.assemble(
                    (f"v{v.version}", "bold"),
                    f"  {fmt_time(v.created_at)}  by {v.created_by}  sha256 {v.hash[:12]}",
                )
            )
            for change in v.changes or (["first version"] if v.version == 1 else []):
                out.print(f"  {change}", soft_wrap=True)
        return
    body, version = project.contract(source)
    if as_json:
        print_json(
            {
                "source": source,
                "version": version,
                "hash": body.hash,
                "applied": version is not None,
                "contract": body.to_dict(),
            }
        )
        return
    shown = f"version {version}" if version is not None else "not applied yet"
    out = console()
    out.print(f"# source {source}, contract {shown}, sha256 {body.hash[:12]}", soft_wrap=True)
    out.print(body.to_yaml().rstrip("\n"), soft_wrap=True)


# -- ingest -------------------------------------------------------------------------------------


def _version_line(outcome: str, path: str, v: DatasetVersion) -> Text:
    rng = (
        f"events {fmt_time(v.event_min)} → {fmt_time(v.event_max)}"
        if v.event_min is not None
        else "no events"
    )
    tail = (
        "  (same content as an existing version)"
        if outcome == "duplicate"
        else f"  {fmt_count(v.rows)} rows  {rng}"
    )
    return Text.assemble(
        (f"{outcome:<11}", "green" if outcome == "accepted" else "yellow"),
        f"{path}  version {v.short_id}{tail}",
    )


def _show_rejection(out: Console, path: str, entry: QuarantineEntry) -> None:
    out.print(
        Text.assemble((f"{'rejected':<11}", "bold red"), f"{path}  quarantined as {entry.id}"),
        soft_wrap=True,
    )
    validation = entry.validation
    if validation is not None and validation.failures:
        out.print(failures_table(validation.failures))
    else:
        for failure in entry.failures:
            out.print(f"  {failure}", soft_wrap=True)


@app.command()
def ingest(
    ctx: typer.Context,
    source: SourceArg,
    paths: Annotated[
        list[str], typer.Argument(metavar="PATH", help="Files or URIs, one batch each.")
    ],
    format: Annotated[
        Literal["parquet", "csv", "arrow", "jsonl"] | None,
        typer.Option("--format", "-f", help="The files' format (default: from the suffix)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest files as dataset versions.

    Each file is validated against the source's contract and stored as a dataset version
    (the same content again is a duplicate of the existing version).

    A rejected batch is kept in quarantine with its report; every path is processed, then
    the command exits 3 if any was rejected or unreadable."""
    project = _project(ctx)
    out = console()
    results: list[dict[str, Any]] = []
    first_error: InputError | BatchRejected | None = None
    for path in paths:
        try:
            outcome = project.ingest_outcome(source, path, format=format)
        except BatchRejected as exc:
            first_error = first_error or exc
            entry = project.quarantine_entry(exc.quarantine_id)
            validation = entry.validation
            results.append(
                {
                    "path": path,
                    "outcome": "rejected",
                    "quarantine_id": exc.quarantine_id,
                    "failures": [r.to_dict() for r in validation.failures] if validation else [],
                    "error": exc.to_dict(),
                }
            )
            if not as_json:
                _show_rejection(out, path, entry)
            continue
        except InputError as exc:
            first_error = first_error or exc
            label = "missing" if isinstance(exc, InputNotFound) else "unreadable"
            results.append({"path": path, "outcome": label, "error": exc.to_dict()})
            if not as_json:
                out.print(Text.assemble((f"{label:<11}", "bold red"), exc.message), soft_wrap=True)
            continue
        v = outcome.version
        results.append({"path": path, "outcome": outcome.outcome, "version": v.to_dict()})
        if not as_json:
            out.print(_version_line(outcome.outcome, path, v), soft_wrap=True)
    if as_json:
        print_json({"source": source, "results": results})
    if first_error is not None:
        raise first_error


# -- dataset versions ------------------------------------------------------------------------


@app.command("list")
def list_(
    ctx: typer.Context,
    source: SourceOption = None,
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
) -> None:
    """List dataset versions.

    Oldest first; with --as-of only those known at that time.
    """
    versions = _project(ctx).versions(source, as_of=as_of)
    if as_json:
        print_json({"source": source, "as_of": as_of, "versions": [v.to_dict() for v in versions]})
        return
    out = console()
    if not versions:
        out.print(f"no dataset versions{_as_of_label(as_of)}")
        return
    out.print(
        table(
            ["source", "version", "contract", "rows", "event min", "event max", "created"],
            [
                (
                    v.source,
                    v.short_id,
                    f"v{v.contract_version}",
                    fmt_count(v.rows),
                    fmt_time(v.event_min),
                    fmt_time(v.event_max),
                    fmt_time(v.created_at),
                )
                for v in versions
            ],
            right=["rows"],
        )
    )


def _provenance_pairs(provenance: dict[str, Any]) -> list[tuple[str, Any]]:
    pairs = []
    for key, raw in provenance.items():
        value = raw
        if isinstance(raw, dict):
            value = ", ".join(f"{k}={v}" for k, v in raw.items())
        elif isinstance(raw, list):
            value = ", ".join(map(str, raw)) or "-"
        pairs.append((f"  {key}", "-" if value is None else value))
    return pairs


@app.command()
def show(
    ctx: typer.Context,
    version: Annotated[
        str, typer.Argument(metavar="VERSION", help="A version id or a prefix of 6+ characters.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Show a dataset version.

    Its metadata, provenance and a profile of each column.
    """
    v = _project(ctx).version(version)
    if as_json:
        body = v.to_dict()
        body["profile"] = profile_json(v.profile) if v.profile is not None else None
        print_json(body)
        return
    out = console()
    out.print(
        kv_table(
            [
                ("version", v.id),
                ("source", v.source),
                ("contract", f"v{v.contract_version}"),
                ("rows", fmt_count(v.rows)),
                ("bytes", fmt_count(v.bytes)),
                ("event time", f"{fmt_time(v.event_min)} → {fmt_time(v.event_max)}"),
                ("created", fmt_time(v.created_at)),
                ("provenance", ""),
                *_provenance_pairs(v.provenance),
            ]
        )
    )
    if v.profile is not None:
        out.print()
        out.print(profile_table(v.profile))


def _delta_text(d: dict[str, Any] | None, fmt: str = "{:,.4g}") -> str:
    if not d:
        return "-"

    def one(x: Any) -> str:
        return "-" if x is None else (x if isinstance(x, str) else fmt.format(x))

    return f"{one(d.get('old'))} → {one(d.get('new'))}"


@app.command()
def diff(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(metavar="V1", help="The older version (id or prefix).")],
    new: Annotated[str, typer.Argument(metavar="V2", help="The newer version (id or prefix).")],
    as_json: JsonOption = False,
) -> None:
    """Compare two dataset versions.

    Rows, schema and per-column statistics, with a population stability index.
    """
    result = _project(ctx).diff(old, new)
    if as_json:
        print_json(result)
        return
    out = console()
    schema = result["schema"]
    out.print(
        kv_table(
            [
                ("old", result["old"]),
                ("new", result["new"]),
                (
                    "rows",
                    f"{fmt_count(result['rows']['old'])} → {fmt_count(result['rows']['new'])}",
                ),
                ("columns added", ", ".join(schema["added"]) or "-"),
                ("columns removed", ", ".join(schema["removed"]) or "-"),
                (
                    "types changed",
                    ", ".join(
                        f"{t['column']} {t['from']} → {t['to']}" for t in schema["type_changed"]
                    )
                    or "-",
                ),
            ]
        )
    )
    profile = result.get("profile")
    if not profile:
        return
    rows = []
    for name, c in profile["columns"].items():
        kind = c["kind"]["new"]
        if "mean" in c and kind == "numeric":
            detail = f"mean {_delta_text(c['mean'])}"
        elif "appeared" in c:
            parts = []
            if c["appeared"]:
                parts.append("new: " + ", ".join(map(str, c["appeared"][:5])))
            if c["disappeared"]:
                parts.append("gone: " + ", ".join(map(str, c["disappeared"][:5])))
            detail = "; ".join(parts) or "same top values"
        else:
            detail = ""
        psi = c.get("psi")
        rows.append(
            (
                name,
                kind,
                _delta_text(c["count"], "{:,}"),
                _delta_text(c["null_rate"], "{:.2%}"),
                detail,
                "-" if psi is None else (psi if isinstance(psi, str) else f"{psi:.3f}"),
            )
        )
    out.print()
    out.print(table(["column", "kind", "count", "null rate", "change", "psi"], rows, right=["psi"]))


@app.command()
def profile(
    ctx: typer.Context,
    source: SourceArg,
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a source's profile.

    Column statistics over every batch known at --as-of (default: now).
    """
    merged = _project(ctx).profile(source, as_of=as_of)
    if as_json:
        print_json({"source": source, "as_of": as_of, "profile": profile_json(merged)})
        return
    out = console()
    out.print(f"{source}: {fmt_count(merged.rows)} rows{_as_of_label(as_of)}")
    out.print(profile_table(merged))


@app.command()
def export(
    ctx: typer.Context,
    source: SourceArg,
    *,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Where to write: a .parquet or .csv file.",
            dir_okay=False,
        ),
    ],
    as_of: AsOfOption = None,
    columns: Annotated[
        str | None,
        typer.Option("--columns", metavar="A,B", help="Only these columns, in this order."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Export a source's data to a file.

    The data as known at --as-of (time travel), written as Parquet or CSV.
    """
    suffix = output.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise typer.BadParameter(f"{output} must end in .parquet or .csv", param_hint="'--output'")
    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    data: pa.Table = _project(ctx).read(source, as_of=as_of, columns=names)
    output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        pq.write_table(data, output)
    else:
        pacsv.write_csv(data, output)
    if as_json:
        print_json(
            {
                "source": source,
                "as_of": as_of,
                "output": str(output),
                "rows": data.num_rows,
                "columns": data.column_names,
            }
        )
        return
    console().print(
        f"wrote {fmt_count(data.num_rows)} rows ({len(data.column_names)} columns) "
        f"of {source}{_as_of_label(as_of)} to {output}",
        soft_wrap=True,
    )


# -- quarantine ----------------------------------------------------------------------------------


EntryArg = Annotated[str, typer.Argument(metavar="ID", help="The quarantine entry's id.")]


def _first_failure(entry: QuarantineEntry) -> str:
    failures = entry.failures
    if not failures:
        return "-"
    return failures[0] + (f" (+{len(failures) - 1} more)" if len(failures) > 1 else "")


@quarantine_app.command("list")
def quarantine_list(
    ctx: typer.Context,
    source: SourceOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Also released and dropped entries.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List quarantined batches.

    Newest first; held ones only unless --all.
    """
    entries = _project(ctx).quarantined(source, status=None if all_ else "held")
    if as_json:
        print_json({"entries": [e.to_dict() for e in entries]})
        return
    out = console()
    if not entries:
        out.print("no quarantined batches" if all_ else "no held batches in quarantine")
        return
    out.print(
        table(
            ["id", "source", "status", "created", "input", "failed rules", "first failure"],
            [
                (
                    e.id,
                    e.source,
                    e.status,
                    fmt_time(e.created_at),
                    Path(e.input_uri).name or "-",
                    len(e.failures),
                    _first_failure(e),
                )
                for e in entries
            ],
            right=["failed rules"],
        )
    )


@quarantine_app.command("show")
def quarantine_show(ctx: typer.Context, entry_id: EntryArg, as_json: JsonOption = False) -> None:
    """Show a quarantined batch.

    Where it came from and its report, rule by rule.
    """
    entry = _project(ctx).quarantine_entry(entry_id)
    if as_json:
        print_json(entry.to_dict())
        return
    out = console()
    pairs: list[tuple[str, Any]] = [
        ("id", entry.id),
        ("source", entry.source),
        ("status", entry.status),
        ("input", entry.input_uri),
        ("format", entry.input_format),
        ("bytes", fmt_count(entry.bytes)),
        ("sha256", entry.blob),
        ("contract", f"v{entry.contract_version}"),
        ("created", f"{fmt_time(entry.created_at)} by {entry.created_by}"),
    ]
    if entry.resolved_at is not None:
        pairs.append(("resolved", f"{fmt_time(entry.resolved_at)} by {entry.resolved_by}"))
    if entry.dataset_version:
        pairs.append(("became", entry.dataset_version))
    out.print(kv_table(pairs))
    out.print()
    validation = entry.validation
    if validation is None:
        out.print(
            Text.assemble(("unreadable: ", "bold red"), _first_failure(entry)), soft_wrap=True
        )
        return
    out.print(
        f"{fmt_count(validation.rows)} rows; "
        f"{len(validation.failures)} of {len(validation.results)} rules failed"
    )
    out.print(failures_table(validation.failures))


@quarantine_app.command("release")
def quarantine_release(ctx: typer.Context, entry_id: EntryArg, as_json: JsonOption = False) -> None:
    """Release a held batch.

    Re-validates it against the source's current contract and accepts it if it passes;
    if it still fails it stays held and the command exits 3.
    """
    version = _project(ctx).release(entry_id)
    if as_json:
        print_json({"id": entry_id, "status": "released", "version": version.to_dict()})
        return
    console().print(
        f"released {entry_id} as version {version.short_id} of {version.source} "
        f"({fmt_count(version.rows)} rows)",
        soft_wrap=True,
    )


@quarantine_app.command("drop")
def quarantine_drop(
    ctx: typer.Context,
    entry_id: EntryArg,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the stored bytes.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Drop a held batch.

    It stays on record as dropped; --purge also deletes its stored bytes.
    """
    entry = _project(ctx).drop(entry_id, purge=purge)
    if as_json:
        print_json(entry.to_dict())
        return
    console().print(f"dropped {entry.id}" + (" and purged its bytes" if purge else ""))
