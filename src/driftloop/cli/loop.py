"""``driftloop run`` (the retraining controller) and ``driftloop runs list|show|start``."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from driftloop.cli.output import JsonOption, console, fmt_time, kv_table, print_json, session, table

__all__ = ["app", "run"]

app = typer.Typer(
    help="Pipeline runs: each retraining, from its trigger to promotion or rollback.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def run(
    ctx: typer.Context,
    *,
    interval: Annotated[
        float, typer.Option(metavar="SECONDS", min=0.05, help="Seconds between two ticks.")
    ] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Tick once and exit.")] = False,
    executor: Annotated[
        str | None,
        typer.Option(
            metavar="local|inline|ray",
            help="Where steps run (default: the loop.executor setting, local child "
            "processes; ray: Ray tasks).",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDR",
            help="With --executor ray: the Ray cluster to join ('auto': the one started "
            "on this machine; default: start a local one).",
        ),
    ] = None,
    lease_ttl: Annotated[
        float,
        typer.Option(
            metavar="SECONDS", min=1.0, help="How long the lease outlives its last renewal."
        ),
    ] = 15.0,
) -> None:
    """Run the retraining controller: evaluate triggers, train, gate and roll out, until
    interrupted (Ctrl-C / SIGTERM). Only one controller acts at a time; others wait."""
    if executor is not None and executor not in ("local", "inline", "ray"):
        raise typer.BadParameter(
            f"must be 'local', 'inline' or 'ray', not {executor!r}", param_hint="'--executor'"
        )
    project = session(ctx).project()
    executor = executor or project.config.loop.executor
    if ray_address is not None and executor != "ray":
        raise typer.BadParameter("only goes with --executor ray", param_hint="'--ray-address'")
    controller = project.controller(executor=executor, lease_ttl=lease_ttl, ray_address=ray_address)
    out = console()
    if once:
        report = controller.tick()
        controller.lease.release()
        print_json(
            {"leader": report.leader, "started": report.started, "advanced": report.advanced}
        )
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    out.print(f"controller {controller.lease.holder} on {project.root} (every {interval:g} s)")
    controller.run(stop, interval=interval)
    controller.lease.release()
    out.print("controller stopped")


def _row(r: Any) -> list[str]:
    outputs = r.outputs
    version = outputs.get("version")
    return [
        r.id,
        r.model,
        r.state,
        r.step or "-",
        "-" if version is None else f"v{version}",
        fmt_time(r.created_at),
        fmt_time(r.finished_at) if r.finished_at else "-",
        f"{r.training_seconds:.1f}",
    ]


@app.command("list")
def list_command(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Argument(metavar="[MODEL]", help="One model (default: all).")
    ] = None,
    *,
    limit: Annotated[int, typer.Option(metavar="N", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Pipeline runs, newest first."""
    found = session(ctx).project().pipeline_runs(model, limit=limit)
    if as_json:
        print_json({"runs": [r.to_dict() for r in found]})
        return
    if not found:
        console().print("no pipeline runs yet")
        return
    columns = ["run", "model", "state", "step", "version", "created", "finished", "train s"]
    console().print(table(columns, [_row(r) for r in found], right=["train s"]))


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run's id.")],
    *,
    as_json: JsonOption = False,
) -> None:
    """A pipeline run with its timeline: each step, its outputs, the trigger that
    started it, the verdict and the rollout."""
    run, timeline = session(ctx).project().pipeline_run(run_id)
    if as_json:
        print_json({**run.to_dict(), "timeline": timeline})
        return
    out = console()
    out.print(
        kv_table(
            [
                ("run", run.id),
                ("model", run.model),
                ("state", run.state),
                ("version", run.outputs.get("version", "-")),
                ("firing", run.firing_id if run.firing_id is not None else "by hand"),
                ("failed attempts", run.attempts),
                ("training seconds", f"{run.training_seconds:.1f}"),
                ("error", run.error or "-"),
            ]
        )
    )
    rows = [
        [fmt_time(e["at"]), e["kind"], e["step"] or "-", _detail(e["detail"])] for e in timeline
    ]
    out.print(table(["at", "event", "step", "detail"], rows))


def _detail(detail: Any) -> str:
    if not isinstance(detail, dict):
        return "-" if detail is None else str(detail)
    shown = {k: v for k, v in detail.items() if k not in ("trace", "split")}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "-"


@app.command("start")
def start(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model to retrain.")],
    *,
    reason: Annotated[
        str, typer.Option(metavar="TEXT", help="Why, recorded on the run's timeline.")
    ] = "started by hand",
    as_json: JsonOption = False,
) -> None:
    """Queue a pipeline run of MODEL; the controller (`driftloop run`) carries it out."""
    created = session(ctx).project().start_pipeline_run(model, reason=reason)
    if as_json:
        print_json(created.to_dict())
        return
    console().print(f"pipeline run {created.id} of {model} queued")
