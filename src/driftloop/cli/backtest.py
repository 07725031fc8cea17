"""``driftloop backtest``: retraining policies compared on the model's own history."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from driftloop.cli.output import JsonOption, console, print_json, session, table

__all__ = ["backtest", "parse_time", "policy_table"]


def parse_time(value: str, option: str) -> datetime:
    """An ISO 8601 time with a zone, or a bare date (midnight UTC)."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 date or time (e.g. 2013-03-01 or 2013-03-01T05:00:00Z)",
            param_hint=f"'{option}'",
        ) from None
    if parsed.tzinfo is None:
        if len(text) > 10:
            raise typer.BadParameter(
                f"{value!r} has no timezone (write e.g. {parsed.isoformat()}Z)",
                param_hint=f"'{option}'",
            )
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def policy_table(result: Any) -> Any:
    """The comparison: one row per policy, the metric per period, then the cost."""
    periods = [p.start.strftime("%Y-%m-%d") for p in result.results[0].periods]
    columns = ["policy", *periods, "overall", "runs", "promoted", "rejected", "rolled back",
               "train s"]  # fmt: skip
    rows = []
    for r in result.results:
        rows.append(
            [
                r.name,
                *(_fmt(p.value) for p in r.periods),
                _fmt(r.overall),
                str(r.runs),
                str(r.promoted),
                str(r.rejected),
                str(r.rolled_back),
                f"{r.training_seconds:.1f}",
            ]
        )
    right = [*periods, "overall", "runs", "promoted", "rejected", "rolled back", "train s"]
    return table(columns, rows, right=right)


def backtest(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model to replay.")],
    *,
    start: Annotated[
        str,
        typer.Option(
            "--from", metavar="TIME", help="Replay from (ISO date or time; a date is UTC)."
        ),
    ],
    end: Annotated[str, typer.Option("--to", metavar="TIME", help="Replay until (exclusive).")],
    policy: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="A policy to compare (repeat, or comma-separated): never, daily, weekly, "
            "monthly, drift, decay, hybrid, declared. Default: never,monthly,drift,hybrid.",
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="The metric (default: the spec's first gate's)."),
    ] = None,
    period: Annotated[
        str, typer.Option(metavar="month|week", help="The metric's periods.")
    ] = "month",
    workdir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Where the scratch projects go (default: .driftloop/backtests in the project).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay MODEL's history from --from to --to once per retraining policy, in simulated
    time, through the same triggers, controller, gates and rollout as `driftloop run`,
    and compare the metric it served over time with what each policy cost."""
    from driftloop.loop.backtest import policy_names, resolve_policies, run_backtest

    t0, t1 = parse_time(start, "--from"), parse_time(end, "--to")
    if t1 <= t0:
        raise typer.BadParameter("must be after --from", param_hint="'--to'")
    if period not in ("month", "week"):
        raise typer.BadParameter(
            f"must be 'month' or 'week', not {period!r}", param_hint="'--period'"
        )
    project = session(ctx).project()
    names = policy_names(policy or ["never,monthly,drift,hybrid"])
    resolve_policies(project, model, names)  # a bad name fails before any work
    days = max(1, int((t1 - t0).total_seconds() // 86_400))
    logging.getLogger("driftloop.monitoring").setLevel(logging.ERROR)  # alerts are expected
    out = console(stderr=as_json)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[runs]} runs"),
        TimeElapsedColumn(),
        console=out,
        transient=as_json,
    )
    tasks: dict[str, Any] = {}
    started: dict[str, int] = {}

    def on_day(name: str, report: Any) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=days, runs=0)
        started[name] = started.get(name, 0) + len(report.started)
        progress.update(tasks[name], advance=1, runs=started[name])

    with progress:
        result = run_backtest(
            project,
            model,
            t0,
            t1,
            names,
            workdir=workdir,
            metric=metric,
            period=period,
            on_day=on_day,
        )
    if as_json:
        print_json(result.to_dict())
        return
    direction = "higher" if result.greater_is_better else "lower"
    out.print(
        f"{model}: {result.metric} of the predictions served ({direction} is better), "
        f"{t0:%Y-%m-%d %H:%M} to {t1:%Y-%m-%d %H:%M} UTC"
    )
    out.print(policy_table(result))
    best = result.best()
    if best is not None:
        out.print(f"best: {best.name} ({best.description}) at {_fmt(best.overall)}", markup=False)
    for r in result.results:
        out.print(f"{r.name}: {r.folder}", markup=False)
