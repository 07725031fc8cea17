"""``driftloop models``: registered models, their versions, aliases moved by
compare-and-set, the alias history, diffs and rollback. Each command calls one
Project method."""

from __future__ import annotations

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
        out.print(f"{result.a} and {result.b}: no differences in metrics, tags, signature, lineage")
        return
    rows = [
        (section, key, _cell(old), _cell(new))
        for section, changes in (
            ("metrics", result.metrics),
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
