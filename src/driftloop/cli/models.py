"""``driftloop models``: registered models, their versions, aliases moved by
compare-and-set, the alias history, diffs and rollback. Each command calls one
Project method."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from driftloop.cli.output import (
    JsonOption,
    console,
    fmt_time,
    kv_table,
    print_json,
    session,
    table,
)
from driftloop.registry.models import ANY, AliasMove, Expected

__all__ = ["app"]

app = typer.Typer(
    help="Model versions, aliases (champion, challenger...), their history and rollback.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ModelArgument = Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")]
ReasonOption = Annotated[
    str, typer.Option("--reason", metavar="TEXT", help="Why, recorded in the alias history.")
]


def _parse_expected(value: str | None) -> Expected:
    """``--expected``: a version number, or ``none`` for "the alias must not be set yet"."""
    if value is None:
        return ANY
    text = value.strip().lower()
    if text in ("none", "unset"):
        return None
    if text.isdigit():
        return int(text)
    raise typer.BadParameter(
        f"{value!r} is not a version number or 'none'", param_hint="'--expected'"
    )


def _version(v: int | None) -> str:
    return "-" if v is None else f"v{v}"


def _print_move(move: AliasMove) -> None:
    if move.to_version is None:
        what = f"deleted (was {_version(move.from_version)})"
    elif move.from_version is None:
        what = f"set to {_version(move.to_version)}"
    else:
        what = f"{_version(move.from_version)} -> {_version(move.to_version)}"
    console().print(
        Text.assemble((f"{move.model}@{move.alias}", "bold"), f"  {what}"), soft_wrap=True
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List registered models with their latest version and aliases."""
    models = session(ctx).project().models()
    if as_json:
        print_json({"models": [m.to_dict() for m in models]})
        return
    out = console()
    if not models:
        out.print("no models registered yet")
        return
    out.print(
        table(
            ["model", "latest", "aliases", "created at", "created by"],
            [
                (
                    m.name,
                    _version(m.latest_version),
                    ", ".join(f"{a}=v{v}" for a, v in m.aliases.items()) or "-",
                    fmt_time(m.created_at),
                    m.created_by,
                )
                for m in models
            ],
        )
    )


@app.command()
def show(
    ctx: typer.Context,
    model: ModelArgument,
    ref: Annotated[
        str, typer.Argument(metavar="REF", help="A version number, 'latest' or an alias.")
    ] = "latest",
    as_json: JsonOption = False,
) -> None:
    """Show one version of a model: artifact, metrics, tags, lineage and its aliases."""
    project = session(ctx).project()
    version = project.model_version(model, ref)
    pointing = sorted(a for a, v in project.model_aliases(model).items() if v == version.version)
    if as_json:
        print_json({**version.to_dict(), "aliases": pointing})
        return
    out = console()
    out.print(
        kv_table(
            [
                ("version", version.ref),
                ("aliases", ", ".join(pointing) or "-"),
                ("flavor", version.flavor),
                ("artifact", version.artifact_digest),
                ("run", version.run_id or "-"),
                ("created", f"{fmt_time(version.created_at)} by {version.created_by}"),
                ("description", version.description or "-"),
            ]
        )
    )
    for title, section in (
        ("metrics", version.metrics),
        ("tags", version.tags),
        ("lineage", version.lineage),
    ):
        if section:
            out.print()
            out.print(table([title, "value"], [(k, _cell(v)) for k, v in section.items()]))


@app.command()
def alias(
    ctx: typer.Context,
    *,
    model: ModelArgument,
    alias: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. champion, challenger.")],
    ref: Annotated[
        str | None,
        typer.Argument(metavar="REF", help="A version number, 'latest' or another alias."),
    ] = None,
    expected: Annotated[
        str | None,
        typer.Option(
            "--expected",
            metavar="N",
            help="Move only if the alias points at version N now ('none': not set yet); "
            "otherwise exit 6 and change nothing.",
        ),
    ] = None,
    reason: ReasonOption = "",
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Point an alias at a version (or remove it), by compare-and-set with --expected."""
    guard = _parse_expected(expected)
    if delete and ref is not None:
        raise typer.BadParameter("--delete takes no REF", param_hint="'REF'")
    if not delete and ref is None:
        raise typer.BadParameter("give the version to point at (or --delete)", param_hint="'REF'")
    project = session(ctx).project()
    if ref is None:
        move = project.delete_alias(model, alias, expected=guard, reason=reason)
    else:
        move = project.set_alias(model, alias, ref, expected=guard, reason=reason)
    if as_json:
        print_json(move.to_dict())
        return
    _print_move(move)


@app.command()
def history(
    ctx: typer.Context,
    model: ModelArgument,
    alias: Annotated[
        str | None, typer.Option("--alias", metavar="ALIAS", help="Only this alias.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Every move of a model's aliases, oldest first: who, when, from, to and why."""
    moves = session(ctx).project().alias_history(model, alias)
    if as_json:
        print_json({"model": model, "history": [m.to_dict() for m in moves]})
        return
    out = console()
    if not moves:
        out.print(f"no alias of {model} was ever set")
        return
    out.print(
        table(
            ["at", "alias", "from", "to", "who", "reason"],
            [
                (
                    fmt_time(m.at),
                    m.alias,
                    _version(m.from_version),
                    _version(m.to_version),
                    m.who,
                    m.reason or "-",
                )
                for m in moves
            ],
        )
    )


@app.command()
def diff(
    ctx: typer.Context,
    model: ModelArgument,
    a: Annotated[str, typer.Argument(metavar="A", help="A version number, 'latest' or alias.")],
    b: Annotated[str, typer.Argument(metavar="B", help="A version number, 'latest' or alias.")],
    as_json: JsonOption = False,
) -> None:
    """What differs between two versions: metrics, tags, signature and lineage keys."""
    result = session(ctx).project().diff_models(model, a, b)
    if as_json:
        print_json({**result.to_dict(), "same": result.same})
        return
    out = console()
    if result.same:
        out.print(
            f"{result.a} and {result.b}: no differences in metrics, params, tags, signature, "
            "lineage"
        )
        return
    rows = [
        (section, key, _cell(old), _cell(new))
        for section, changes in (
            ("metrics", result.metrics),
            ("params", result.params),
            ("tags", result.tags),
            ("signature", result.signature),
            ("lineage", result.lineage),
        )
        for key, (old, new) in changes.items()
    ]
    out.print(table(["section", "key", result.a, result.b], rows))


@app.command()
def rollback(
    ctx: typer.Context,
    model: ModelArgument,
    alias: Annotated[
        str, typer.Option("--alias", metavar="ALIAS", help="The alias to move back.")
    ] = "champion",
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Move an alias back to the version it pointed at before its last move."""
    move = session(ctx).project().rollback(model, alias, reason=reason)
    if as_json:
        print_json(move.to_dict())
        return
    _print_move(move)


RefArgument = Annotated[
    str, typer.Argument(metavar="REF", help="A version number, 'latest' or an alias.")
]


@app.command()
def runs(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Argument(metavar="[MODEL]", help="Only this model's runs.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Recent training runs, newest first: status, version, duration, metrics."""
    found = session(ctx).project().runs(model, limit=limit)
    if as_json:
        print_json({"runs": [r.to_dict() for r in found]})
        return
    out = console()
    if not found:
        out.print("no training runs yet: `driftloop train MODEL`")
        return
    out.print(
        table(
            ["run", "model", "status", "version", "verdict", "started", "fit s", "total s"],
            [
                (
                    r.id,
                    r.model,
                    r.status,
                    _version(r.model_version),
                    "-" if not r.evaluation else ("pass" if r.evaluation.get("passed") else "fail"),
                    fmt_time(r.started_at),
                    _cell(r.fit_seconds),
                    _cell(r.total_seconds),
                )
                for r in found
            ],
        )
    )


@app.command()
def run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="A run id or a unique prefix.")],
    as_json: JsonOption = False,
) -> None:
    """One training run: parameters, data versions, code version, timings, metrics."""
    record = session(ctx).project().run(run_id)
    if as_json:
        print_json(record.to_dict())
        return
    out = console()
    code = record.code_version
    out.print(
        kv_table(
            [
                ("run", record.id),
                ("model", f"{record.model} ({_version(record.model_version)})"),
                ("status", record.status),
                ("trainer", record.trainer),
                ("started", f"{fmt_time(record.started_at)} by {record.created_by}"),
                ("training set", record.training_set_id or "-"),
                ("fit", f"{_cell(record.fit_seconds)} s"),
                ("peak memory", f"{_cell(record.peak_memory_mb)} MB"),
                ("total", f"{_cell(record.total_seconds)} s"),
                (
                    "code",
                    f"driftloop {code.get('driftloop')}, git {code.get('git_sha') or '-'}"
                    + (" (dirty)" if code.get("git_dirty") else ""),
                ),
                ("error", record.error or "-"),
            ]
        )
    )
    for title, section in (
        ("params", record.params),
        ("metrics", record.metrics),
        ("library", record.library_versions),
        ("dataset versions", {k: ", ".join(v) for k, v in record.dataset_versions.items()}),
    ):
        if section:
            out.print()
            out.print(table([title, "value"], [(k, _cell(v)) for k, v in section.items()]))


@app.command()
def report(
    ctx: typer.Context,
    model: ModelArgument,
    ref: RefArgument = "latest",
    html: Annotated[
        Path | None,
        typer.Option("--html", metavar="FILE", dir_okay=False, help="Write the HTML page here."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The evaluation report of a version: metrics against the champion with intervals,
    slices, gates and verdict (--html: a self-contained page)."""
    body = session(ctx).project().evaluation_report(model, ref)
    if html is not None:
        from driftloop.evaluation.html import report_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(report_html(body), encoding="utf-8")
    if as_json:
        print_json(body)
        return
    out = console()
    champion = body.get("champion")
    out.print(
        Text.assemble(
            (f"{body['challenger']['label']}", "bold"),
            f"  vs  {champion['label'] if champion else 'no champion'}",
            f"  on {body['rows']} rows  ",
            ("PASS", "bold green") if body["verdict"]["passed"] else ("FAIL", "bold red"),
        )
    )
    out.print(
        table(
            ["metric", "challenger", "champion", "difference", "interval"],
            [
                (
                    m["name"],
                    _cell(m["challenger"]),
                    _cell(m["champion"]),
                    _cell(m["difference"]["observed"]) if m["difference"] else "-",
                    f"[{_cell(m['difference']['low'])}, {_cell(m['difference']['high'])}]"
                    if m["difference"]
                    else "-",
                )
                for m in body["metrics"]
            ],
        )
    )
    for result in body["verdict"]["results"]:
        mark = {True: "PASS", False: "FAIL", None: "SKIP"}[result["passed"]]
        out.print(f"{mark}: {result['gate']}: {result['reason']}", soft_wrap=True)
    if html is not None:
        out.print(f"report: {html}")


@app.command()
def card(
    ctx: typer.Context,
    *,
    model: ModelArgument,
    ref: RefArgument = "latest",
    html: Annotated[
        Path | None,
        typer.Option("--html", metavar="FILE", dir_okay=False, help="Write the HTML card here."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", dir_okay=False, help="Write the Markdown here."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The model card of a version, as Markdown on stdout (or --output), HTML (--html) or
    the data behind it (--json)."""
    from driftloop.registry.cards import card_html, card_markdown

    data = session(ctx).project().model_card(model, ref)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(card_html(data), encoding="utf-8")
    if as_json:
        print_json(data)
        return
    text = card_markdown(data)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        console().print(f"card: {output}")
    elif html is None:
        typer.echo(text)
    else:
        console().print(f"card: {html}")
