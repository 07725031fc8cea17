"""``driftloop train MODEL``: one pipeline run (train, evaluate against the champion,
gate, register), calling :meth:`Project.train`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from driftloop.cli.output import JsonOption, console, kv_table, parse_as_of, print_json, session

__all__ = ["GATES_FAILED", "train"]

GATES_FAILED = 8
"""Exit code of ``driftloop train`` when the new version failed its gates."""


def train(
    ctx: typer.Context,
    *,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A model spec's name.")],
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of",
            parser=parse_as_of,
            metavar="ISO",
            help="Train on the data and labels known at this time (default: now).",
        ),
    ] = None,
    promote: Annotated[
        bool,
        typer.Option("--promote", help="Make the new version champion if its gates pass."),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            dir_okay=False,
            help="Also write the evaluation report as a self-contained HTML page.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train MODEL, evaluate it against the champion and register it as a new version.

    The version is registered whatever the verdict; when its gates pass the
    `challenger` alias moves to it (and `champion` with --promote). Exits 8 when a
    gate failed.
    """
    project = session(ctx).project()
    outcome = project.train(model, as_of=as_of, promote=promote)
    if report is not None:
        from driftloop.evaluation.html import report_html

        body = project.evaluation_report(model, outcome.version.version)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(report_html(body), encoding="utf-8")
    if as_json:
        print_json(outcome.to_dict())
    else:
        _print(outcome.to_dict(), report)
    if not outcome.passed:
        raise typer.Exit(GATES_FAILED)


def _print(body: dict[str, object], report: Path | None) -> None:
    out = console()
    verdict = ("PASS", "bold green") if body["passed"] else ("FAIL", "bold red")
    out.print(
        Text.assemble(
            (f"{body['model']} v{body['version']}", "bold"), "  registered  gates: ", verdict
        )
    )
    split = body["split"]
    assert isinstance(split, dict)
    train_part, valid_part = split.get("train") or {}, split.get("validation") or {}
    champion = body["champion"]
    rows: list[tuple[str, object]] = [
        ("run", body["run"]),
        ("training set", str(body["training_set"])[:12]),
        (
            "train rows",
            f"{train_part.get('rows')} ({train_part.get('start')} .. {train_part.get('end')})",
        ),
        (
            "validation rows",
            f"{valid_part.get('rows')} ({valid_part.get('start')} .. {valid_part.get('end')})",
        ),
        ("compared with", f"champion v{champion}" if champion else "no champion yet"),
        ("fit", f"{body['fit_seconds']:.2f} s, peak {body['peak_memory_mb']:.0f} MB"),
        ("total", f"{body['total_seconds']:.2f} s"),
    ]
    metrics = body["metrics"]
    assert isinstance(metrics, dict)
    rows += [(f"  {k}", f"{v:.4g}" if isinstance(v, float) else v) for k, v in metrics.items()]
    out.print(kv_table(rows))
    reasons = body["reasons"]
    assert isinstance(reasons, list)
    for reason in reasons:
        style = "green" if reason.startswith("PASS") else "red" if reason.startswith("FAIL") else ""
        out.print(Text(f"  {reason}", style=style), soft_wrap=True)
    moves = body["aliases"]
    assert isinstance(moves, list)
    for move in moves:
        out.print(f"{move['alias']} -> v{move['to_version']}")
    if report is not None:
        out.print(f"report: {report}")
