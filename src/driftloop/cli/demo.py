"""``driftloop demo``: the continuous loop on a year of New York flights (``make demo``)."""

from __future__ import annotations

import logging
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from driftloop.cli.output import JsonOption, console, print_json, table

__all__ = ["demo"]


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=f"'{option}'"
        ) from None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def demo(
    *,
    folder: Annotated[
        Path, typer.Option(metavar="DIR", help="Where the demo's projects go (emptied first).")
    ] = Path("build/demo"),
    start: Annotated[
        str, typer.Option("--from", metavar="DATE", help="First day replayed (2013).")
    ] = "2013-03-01",
    end: Annotated[
        str, typer.Option("--to", metavar="DATE", help="Day after the last one replayed.")
    ] = "2014-01-01",
    compare: Annotated[
        bool,
        typer.Option(
            "--compare/--no-compare",
            help="Also backtest never retraining and monthly retraining, to compare.",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Run the whole loop on the New York flights of 2013 in simulated time: ingest,
    serve over HTTP, monitor, trigger, retrain, gate, shadow, canary, promote — with a
    malformed batch quarantined and a broken challenger rejected — then sum it up."""
    from driftloop.examples.demo import run_demo
    from driftloop.examples.flights import flights_2013

    first, last = _day(start, "--from"), _day(end, "--to")
    if not date(2013, 1, 15) <= first < last <= date(2014, 1, 1):
        raise typer.BadParameter(
            "--from and --to must be in order, within 2013-01-15 .. 2014-01-01",
            param_hint="'--from'",
        )
    flights_2013()  # the [demo] extra missing: MissingExtraError before any work
    logging.getLogger("driftloop").setLevel(logging.ERROR)  # alerts are summed up below
    out = console(stderr=as_json)
    days = (last - first).days
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=out,
        transient=as_json,
    )
    task = progress.add_task("setting up", total=days, state="")
    counts = {"runs": 0, "promoted": 0, "rejected": 0, "rolled back": 0}
    names = {"promoted": "promoted", "rejected": "rejected", "rolled_back": "rolled back"}

    # Rich draws the bar only on a terminal; piped (make demo | tee), a line per stage
    # and per simulated month says how far the demo is.
    plain = not out.is_terminal and not as_json
    began = time.monotonic()

    def on_stage(text: str) -> None:
        progress.update(task, description=text)
        if plain:
            out.print(f"{text} ({time.monotonic() - began:.0f} s)", markup=False)

    def on_day(report: Any, info: dict[str, Any]) -> None:
        counts["runs"] += len(report.started)
        for state in report.finished.values():
            if state in names:
                counts[names[state]] += 1
        d = info["deployment"]
        serving = f"champion v{d.champion}"
        if d.shadow is not None:
            serving += f", shadow v{d.shadow}"
        if d.canary is not None:
            serving += f", canary v{d.canary} at {d.canary_weight:g}%"
        result = info["result"]
        state = (
            f"{serving} · runs {counts['runs']} ({counts['promoted']} promoted, "
            f"{counts['rejected']} rejected, {counts['rolled back']} rolled back) · "
            f"{len(result.quarantined)} quarantined · {result.alerts} alerts"
        )
        progress.update(task, advance=1, description=f"{report.day.date()}", state=state)
        done = progress.tasks[0].completed
        month_end = (report.day + timedelta(days=1)).month != report.day.month
        if plain and (month_end or done == days):
            out.print(
                f"{report.day.date()}  {state}  [{done:.0f}/{days} days, "
                f"{time.monotonic() - began:.0f} s]",
                markup=False,
            )

    with progress:
        result = run_demo(
            folder, start=first, end=last, compare=compare, on_stage=on_stage, on_day=on_day
        )
    if as_json:
        print_json(result.to_dict())
        return
    _summary(out, result)


def _summary(out: Any, result: Any) -> None:
    policies = [("never", "never retrained"), ("monthly", "retrained monthly")]
    columns = ["month", "labelled", "the loop", *(label for _, label in policies)]
    rows = []
    for i, period in enumerate(result.loop):
        row = [period.start.strftime("%Y-%m"), str(period.labelled), _fmt(period.value)]
        for name, _ in policies:
            compared = result.compared.get(name) or []
            row.append(_fmt(compared[i].value) if i < len(compared) else "-")
        rows.append(row)
    rows.append(
        [
            "overall",
            str(sum(p.labelled for p in result.loop)),
            _fmt(result.loop_overall),
            *(_fmt(result.compared_overall.get(name)) for name, _ in policies),
        ]
    )
    out.print()
    out.print(
        f"ROC AUC of the predictions served, by month ({result.predictions:,} predictions "
        f"over HTTP, {result.requests:,} flights):"
    )
    out.print(table(columns, rows, right=columns[1:]))
    if result.comparison_error:
        out.print(f"comparison: {result.comparison_error}", markup=False)
    counts = result.counts()
    monthly_runs = result.compared_runs.get("monthly")
    out.print(
        f"the loop: {counts['runs']} pipeline runs, {counts['promoted']} promoted, "
        f"{counts['rejected']} rejected, {counts['rolled back']} rolled back"
        + (f" (monthly retraining: {monthly_runs} runs)" if monthly_runs is not None else "")
        + f"; {len(result.quarantined)} batch quarantined; {result.alerts} alerts fired",
        markup=False,
    )
    out.print()
    out.print("timeline:")
    events = [
        [
            r["created_at"][:10],
            r["id"],
            r["reason"] if r["firing"] is None else f"trigger firing {r['firing']}",
            f"v{r['version']}" if r["version"] is not None else "-",
            r["state"],
            (r["why"] or "")[:90],
        ]
        for r in result.runs
    ]
    for entry in result.quarantined:
        show = f"driftloop -p {result.folder / 'live'} data quarantine show {entry}"
        events.append(
            [
                f"{entry[2:6]}-{entry[6:8]}-{entry[8:10]}",
                entry,
                "a malformed batch",
                "-",
                "quarantined",
                show,
            ]
        )
    events.sort(key=lambda e: e[0])
    out.print(table(["day", "run", "started by", "version", "outcome", "why"], events))
    out.print()
    live = result.folder / "live"
    for report in result.reports:
        out.print(f"latest monitoring report: {report}", markup=False)
    out.print(f"monitoring reports: {live / 'reports' / 'monitoring'}", markup=False)
    out.print(f"look: driftloop -p {live} ui   (the dashboard, http://127.0.0.1:8090/ui/)",
              markup=False)  # fmt: skip
    out.print(
        f"next: driftloop -p {live} runs list | rollouts list | monitor show late | "
        "models list late",
        markup=False,
    )
    seconds = result.seconds.get("total", 0.0)
    out.print(f"done in {seconds:.0f} s", markup=False)
