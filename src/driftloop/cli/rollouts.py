"""``driftloop rollouts list|show|resume|abort`` and ``driftloop rollback MODEL``:
progressive rollouts, their steps and measurements, and the instant way back. Each
command calls one Project method."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from driftloop.cli.output import JsonOption, console, fmt_time, kv_table, print_json, session, table
from driftloop.rollout.engine import RollbackResult, Rollout, RolloutDetail

__all__ = ["app", "rollback"]

app = typer.Typer(
    help="Progressive rollouts: their steps, measurements, and why they ended.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

IdArgument = Annotated[int, typer.Argument(metavar="ID", help="The rollout's number.")]
ReasonOption = Annotated[
    str, typer.Option("--reason", metavar="TEXT", help="Why, recorded in the timeline.")
]
_STYLES = {
    "promoted": "green",
    "rolled_back": "red",
    "aborted": "yellow",
    "paused": "yellow",
    "successful": "green",
    "failed": "red",
    "inconclusive": "yellow",
}


def _state(text: str) -> Text:
    return Text(text, style=_STYLES.get(text, ""))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _counts(r: Rollout) -> str:
    total = {s: sum(c.get(s, 0) for c in r.counts.values()) for s in _STYLES}
    return (
        f"{r.measurements}: {total['successful']} ok, {total['failed']} failed, "
        f"{total['inconclusive']} inconclusive"
    )


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@app.command("list")
def list_(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Argument(metavar="[MODEL]", help="Only this model's rollouts.")
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            metavar="STATE",
            help="Only rollouts in this state (shadow, canary, paused, promoted, "
            "rolled_back, aborted).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Rollouts, newest first: version, state, step, measurements and why they ended."""
    found = session(ctx).project().rollouts(model, state=state, limit=limit)
    if as_json:
        print_json({"rollouts": [r.to_dict() for r in found]})
        return
    out = console()
    if not found:
        out.print("no rollouts yet")
        return
    out.print(
        table(
            ["id", "model", "version", "vs", "state", "at", "measurements", "started", "reason"],
            [
                (
                    str(r.id),
                    r.model,
                    f"v{r.version}",
                    "-" if r.previous is None else f"v{r.previous}",
                    _state(r.state),
                    r.where(),
                    _counts(r),
                    fmt_time(r.created_at),
                    _short(r.reason) or "-",
                )
                for r in found
            ],
            right=["id"],
        )
    )


def _steps(r: Rollout) -> list[tuple[str, str, str, Text]]:
    rows: list[tuple[str, str, str, Text]] = []
    policy = r.policy
    if policy.has_shadow:
        requests = policy.shadow_requests
        lasting = " and ".join(
            part
            for part in (
                policy.to_dict()["shadow"],
                None if requests is None else f"{requests} requests",
            )
            if part
        )
        status = ("current" if r.active else r.state) if r.phase == "shadow" else "passed"
        rows.append(("shadow", "copy", lasting, _state(status)))
    for i, step in enumerate(policy.canary_steps):
        if r.state == "promoted":
            status = "passed"
        elif r.phase != "canary" or r.step is None or i > r.step:
            status = "-"
        elif i < r.step:
            status = "passed"
        else:
            status = "current" if r.active else r.state
        rows.append((str(i + 1), f"{step.weight:g}%", step.to_dict()["duration"], _state(status)))
    return rows


def _print_detail(detail: RolloutDetail) -> None:
    r = detail.rollout
    policy = r.policy
    out = console()
    started = f"{fmt_time(r.created_at)} by {r.created_by}" + (
        f": {r.start_reason}" if r.start_reason else ""
    )
    pairs: list[tuple[str, object]] = [
        ("rollout", f"{r.id}" + (f" (pipeline run {r.run_id})" if r.run_id else "")),
        ("model", f"{r.model} v{r.version} against champion v{r.previous}"),
        ("state", Text.assemble(_state(r.state), f"  at {r.where()}")),
        ("started", started),
        ("finished", fmt_time(r.finished_at)),
        ("reason", r.reason or "-"),
        ("measurements", _counts(r)),
        (
            "analysis",
            f"every {policy.to_dict()['interval']}: "
            + ", ".join(
                f"{m.name} (success {m.success or '-'}, failure {m.failure or '-'})"
                for m in policy.analysis
            ),
        ),
        (
            "limits",
            f"failure {policy.failure_limit}, inconclusive {policy.inconclusive_limit} "
            "(per metric)",
        ),
    ]
    if r.rollback_until is not None:
        pairs.append(("rollback window", f"until {fmt_time(r.rollback_until)}"))
    out.print(kv_table(pairs))
    out.print()
    out.print(table(["step", "weight", "lasting", "status"], _steps(r)))
    if detail.measurements:
        out.print()
        out.print(
            table(
                ["#", "window", "at", "metric", "value", "champion", "status", "reason"],
                [
                    (
                        str(m.seq),
                        f"{fmt_time(m.window[0])} - {m.window[1].strftime('%H:%M:%S')}",
                        m.phase if m.step is None else f"step {m.step + 1}",
                        m.metric,
                        _number(m.value),
                        _number(m.champion_value),
                        _state(m.status),
                        m.reason,
                    )
                    for m in detail.measurements
                ],
                right=["#", "value", "champion"],
            )
        )
    out.print()
    out.print(
        table(
            ["at", "event", "who", "what"],
            [(fmt_time(e["at"]), e["kind"], e["who"], e["message"]) for e in detail.timeline()],
        )
    )


@app.command()
def show(ctx: typer.Context, rollout_id: IdArgument, as_json: JsonOption = False) -> None:
    """One rollout: its steps, each measurement with its status, the timeline, and the
    reason for its promotion, pause or rollback."""
    detail = session(ctx).project().rollout(rollout_id)
    if as_json:
        print_json(detail.to_dict())
        return
    _print_detail(detail)


def _print_change(r: Rollout) -> None:
    console().print(
        Text.assemble((f"rollout {r.id}", "bold"), "  ", _state(r.state), f" at {r.where()}"),
        soft_wrap=True,
    )


@app.command()
def resume(
    ctx: typer.Context,
    rollout_id: IdArgument,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Resume a paused rollout: its current step starts again, with new counts."""
    r = session(ctx).project().resume_rollout(rollout_id, reason=reason)
    if as_json:
        print_json(r.to_dict())
        return
    _print_change(r)


@app.command()
def abort(
    ctx: typer.Context,
    rollout_id: IdArgument,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Stop a rollout: the challenger stops receiving traffic, the champion stays."""
    r = session(ctx).project().abort_rollout(rollout_id, reason=reason)
    if as_json:
        print_json(r.to_dict())
        return
    _print_change(r)


def _print_rollback(result: RollbackResult) -> None:
    out = console()
    if result.aborted is not None:
        out.print(
            Text.assemble(
                (f"rollout {result.aborted}", "bold"),
                "  rolled back: the challenger no longer receives traffic",
            ),
            soft_wrap=True,
        )
    if result.moved:
        how = "at once: it was still loaded" if result.preloaded else "(servers load it now)"
        out.print(
            Text.assemble(
                (f"{result.model}@champion", "bold"),
                f"  v{result.from_version} -> v{result.to_version} {how}",
            ),
            soft_wrap=True,
        )
    else:
        out.print(f"{result.model}@champion stays v{result.to_version}")


def rollback(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="VERSION",
            help="The version to return to (a number, 'latest' or an alias); default: the "
            "champion before the current one.",
        ),
    ] = None,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Roll MODEL back now: an active rollout is rolled back (its challenger off the
    traffic, marked rejected) and the champion returns to --to, or to the champion
    before it; within a rollback window that version is still loaded."""
    result = session(ctx).project().rollback_model(model, to=to, reason=reason)
    if as_json:
        print_json(result.to_dict())
        return
    _print_rollback(result)
