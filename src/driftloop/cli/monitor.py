"""``driftloop monitor run|show|alerts``: drift, data quality, performance and alerts
over the prediction log (see :mod:`driftloop.monitoring.runner`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

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
from driftloop.monitoring.series import WindowMetrics

__all__ = ["app"]

app = typer.Typer(
    help="Monitoring: analyse windows of the prediction log, show their figures and alerts.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _summary(w: WindowMetrics) -> dict[str, Any]:
    share = w.get("drift.share")
    version = w.window.version
    errors = w.get("error_rate", version=version) if version is not None else None
    p99 = w.get("latency.p99", version=version) if version is not None else None
    missing = w.get("quality.missing_rate")
    labelled = w.get("performance.labelled")
    awaiting = w.get("performance.awaiting")
    drifted = (share.details or {}).get("drifted", []) if share is not None else []
    return {
        "window": w.window.id,
        "start": w.window.start,
        "end": w.window.end,
        "rows": w.window.rows,
        "version": version,
        "drift_share": share.value if share is not None else None,
        "drifted": drifted,
        "missing_rate": missing.value if missing is not None else None,
        "error_rate": errors.value if errors is not None else None,
        "latency_p99_ms": p99.value if p99 is not None else None,
        "labelled": labelled.value if labelled is not None else None,
        "awaiting": awaiting.value if awaiting is not None else None,
        "report": w.window.report,
    }


def _windows_table(windows: list[WindowMetrics]) -> Any:
    rows = []
    for w in windows:
        s = _summary(w)
        rows.append(
            [
                f"{fmt_time(s['start'])} to {fmt_time(s['end'])}",
                fmt_count(s["rows"]),
                "-" if s["version"] is None else f"v{s['version']}",
                _pct(s["drift_share"]),
                ", ".join(s["drifted"]) or "-",
                _pct(s["missing_rate"]),
                _pct(s["error_rate"]),
                _num(s["latency_p99_ms"]),
                "-" if s["labelled"] is None else fmt_count(int(s["labelled"])),
                "-" if s["awaiting"] is None else fmt_count(int(s["awaiting"])),
            ]
        )
    return table(
        [
            "window",
            "rows",
            "version",
            "drifted",
            "columns",
            "missing",
            "errors",
            "p99 ms",
            "labelled",
            "awaiting",
        ],
        rows,
        right=["rows", "drifted", "missing", "errors", "p99 ms", "labelled", "awaiting"],
    )


@app.command("run")
def run(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Argument(
            metavar="[MODEL]", help="One model (default: every model with predictions)."
        ),
    ] = None,
    *,
    window: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION", help="Window length, e.g. 1d or 6h (default: the monitor's)."
        ),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION", help="Slide windows by this much (default: the window: tumbling)."
        ),
    ] = None,
    last: Annotated[
        int | None,
        typer.Option(metavar="N", min=1, help="Analyse one window: the latest N predictions."),
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            metavar="reference|previous",
            help="Compare with the version's training data or with the window before.",
        ),
    ] = None,
    now: Annotated[
        datetime | None,
        typer.Option(parser=parse_as_of, metavar="ISO", help="Analyse as of this time."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Analyse the windows of the prediction log not analysed yet: drift, data quality,
    performance with the labels received, latency and errors; evaluate alert rules."""
    if against is not None and against not in ("reference", "previous"):
        raise typer.BadParameter(
            f"must be 'reference' or 'previous', not {against!r}", param_hint="'--against'"
        )
    runs = (
        session(ctx)
        .project()
        .monitor(model, window=window, step=step, against=against, last=last, now=now)
    )
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    out = console()
    if not runs:
        out.print("no predictions logged: nothing to monitor")
        return
    for r in runs:
        if not r.windows:
            out.print(f"{r.model}: no new window to analyse")
        else:
            out.print(_windows_table(r.windows), no_wrap=False)
            out.print(f"{r.model}: {len(r.windows)} window(s) analysed")
        if r.refreshed:
            out.print(f"{r.model}: performance of {r.refreshed} earlier window(s) updated")
        for change in r.alerts:
            a = change.alert
            out.print(f"[{a.severity}] alert {a.id} {change.kind}: {a.text}", markup=False)
        reports = [w.window.report for w in r.windows if w.window.report]
        if reports:
            out.print(f"report: {reports[-1]}", markup=False)


@app.command("show")
def show(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")],
    *,
    metric: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="One figure over the windows, e.g. drift.value."),
    ] = None,
    column: Annotated[
        str, typer.Option(metavar="COLUMN", help="The column of --metric (e.g. feature.amount).")
    ] = "",
    version: Annotated[
        int | None, typer.Option(metavar="N", help="The version of --metric (latency, errors).")
    ] = None,
    limit: Annotated[int, typer.Option(metavar="N", min=1, help="The latest N windows.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The latest windows' figures (or one figure as a time series)."""
    project = session(ctx).project()
    windows = project.monitoring_windows(model, limit=limit)
    if metric is not None:
        points = [(w.window, w.get(metric, column, version)) for w in windows]
        found = [(w, m) for w, m in points if m is not None]
        if as_json:
            print_json(
                [{"window": w.id, "start": w.start, "end": w.end, **m.to_dict()} for w, m in found]
            )
            return
        if not found:
            console().print(f"no figure {metric!r} for column {column!r} in the latest windows")
            raise typer.Exit(1)
        console().print(
            table(
                ["window", "value", "details"],
                [
                    [
                        f"{fmt_time(w.start)} to {fmt_time(w.end)}",
                        _num(m.value),
                        ", ".join(
                            f"{k}={v}"
                            for k, v in (m.details or {}).items()
                            if k not in ("histogram", "changes")
                        ),
                    ]
                    for w, m in found
                ],
                right=["value"],
            )
        )
        return
    if as_json:
        print_json({"windows": [w.to_dict() for w in windows]})
        return
    out = console()
    if not windows:
        out.print(f"no monitoring windows for {model} yet (run `driftloop monitor run {model}`)")
        return
    out.print(_windows_table(windows))
    firing = project.alerts(model, status="firing")
    out.print(f"{len(firing)} alert(s) firing" + (":" if firing else ""))
    for a in firing:
        out.print(f"[{a.severity}] alert {a.id}: {a.text}", markup=False)


@app.command("alerts")
def alerts(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Argument(metavar="[MODEL]", help="One model (default: all).")
    ] = None,
    *,
    all_: Annotated[
        bool, typer.Option("--all", help="Resolved alerts too (default: firing only).")
    ] = False,
    limit: Annotated[int, typer.Option(metavar="N", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Alerts with their evidence, newest first."""
    found = session(ctx).project().alerts(model, status=None if all_ else "firing", limit=limit)
    if as_json:
        print_json([a.to_dict() for a in found])
        return
    out = console()
    if not found:
        out.print("no alerts" + ("" if all_ else " firing"))
        return
    for a in found:
        out.print(
            f"alert {a.id} [{a.severity}] {a.status} since {fmt_time(a.opened_at)}: {a.text}",
            markup=False,
        )
