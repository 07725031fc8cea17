"""``driftloop deploy MODEL``: show or change a model's deployment (canary, shadow, A/B
split, blue-green stage and switch, promote, abort, routing key) and its history. Each
action calls one Project method."""

from __future__ import annotations

from typing import Annotated, TypedDict

import typer
from rich.text import Text

from driftloop.cli.output import JsonOption, console, fmt_time, kv_table, print_json, session, table
from driftloop.project import Project
from driftloop.serving.deployments import Deployment

__all__ = ["deploy", "parse_split"]

_ACTIONS = (
    "--canary",
    "--shadow",
    "--no-shadow",
    "--split",
    "--stage",
    "--switch",
    "--promote",
    "--abort",
    "--routing-key",
    "--history",
)


class _Change(TypedDict):
    """The arguments every change takes."""

    reason: str
    expected_revision: int | None


def parse_split(value: str) -> tuple[dict[str, str], dict[str, int] | None]:
    """``a=REF:50,b=REF:50`` (or ``a=REF,b=REF`` for equal shares) -> arms and weights."""
    arms: dict[str, str] = {}
    weights: dict[str, int] = {}
    for part in value.split(","):
        name, sep, rest = part.strip().partition("=")
        ref, colon, share = rest.partition(":")
        if not sep or not name.strip() or not ref.strip():
            raise typer.BadParameter(
                f"{part.strip()!r} is not ARM=REF or ARM=REF:PERCENT", param_hint="'--split'"
            )
        if name.strip() in arms:
            raise typer.BadParameter(f"arm {name.strip()!r} given twice", param_hint="'--split'")
        arms[name.strip()] = ref.strip()
        if colon:
            if not share.strip().isdigit():
                raise typer.BadParameter(
                    f"{share.strip()!r} (arm {name.strip()!r}) is not a whole percent",
                    param_hint="'--split'",
                )
            weights[name.strip()] = int(share)
    if weights and set(weights) != set(arms):
        raise typer.BadParameter("give a percent for every arm or for none", param_hint="'--split'")
    return arms, weights or None


def _version(v: int | None) -> str:
    return "-" if v is None else f"v{v}"


def _print(d: Deployment) -> None:
    if d.split is not None:
        weights = d.split_weights or {}
        split = ", ".join(f"{a}={_version(v)} ({weights.get(a)}%)" for a, v in d.split.items())
    else:
        split = "-"
    canary = "-" if d.canary is None else f"{_version(d.canary)} at {d.canary_weight:g}%"
    updated = "never changed" if d.updated_at is None else fmt_time(d.updated_at)
    console().print(
        kv_table(
            [
                ("model", d.model),
                (
                    "revision",
                    f"{d.revision} ({updated} by {d.updated_by})"
                    if d.updated_by
                    else f"{d.revision} ({updated})",
                ),
                ("champion", _version(d.champion)),
                ("canary", canary),
                ("shadow", _version(d.shadow)),
                ("split", split),
                ("staged", _version(d.staged)),
                ("routing key", d.routing_key or "- (entity keys, else request id)"),
                ("versions", ", ".join(_version(v) for v in sorted(d.versions())) or "-"),
            ]
        )
    )


def _history(project: Project, model: str, *, as_json: bool) -> None:
    changes = project.deployment_history(model)
    if as_json:
        print_json({"model": model, "history": [c.to_dict() for c in changes]})
        return
    out = console()
    if not changes:
        out.print(f"the deployment of {model} was never changed")
        return
    rows = []
    for c in changes:
        s = c.state
        rows.append(
            (
                str(c.revision),
                fmt_time(c.at),
                c.action,
                _version(s.champion),
                "-" if s.canary is None else f"{_version(s.canary)} {s.canary_weight:g}%",
                _version(s.shadow),
                "-" if s.split is None else ",".join(f"{a}=v{v}" for a, v in s.split.items()),
                _version(s.staged),
                c.who,
                c.reason or "-",
            )
        )
    out.print(
        table(
            [
                "rev",
                "at",
                "action",
                "champion",
                "canary",
                "shadow",
                "split",
                "staged",
                "who",
                "reason",
            ],
            rows,
        )
    )


def deploy(
    ctx: typer.Context,
    *,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")],
    canary: Annotated[
        str | None,
        typer.Option(
            "--canary", metavar="REF", help="Send --weight percent of the traffic to REF."
        ),
    ] = None,
    weight: Annotated[
        float | None,
        typer.Option("--weight", metavar="N", help="The canary's percent of traffic (0-100]."),
    ] = None,
    shadow: Annotated[
        str | None,
        typer.Option("--shadow", metavar="REF", help="Let REF score a copy of each request."),
    ] = None,
    no_shadow: Annotated[bool, typer.Option("--no-shadow", help="Stop shadowing.")] = False,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            metavar="A=REF:PCT,B=REF:PCT",
            help="An A/B split replacing champion/canary routing (percents sum to 100; "
            "omitted: equal).",
        ),
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option("--stage", metavar="REF", help="Load and warm REF for a blue-green switch."),
    ] = None,
    switch: Annotated[
        bool, typer.Option("--switch", help="Make the staged version champion, atomically.")
    ] = False,
    promote: Annotated[bool, typer.Option("--promote", help="Make the canary champion.")] = False,
    abort: Annotated[
        bool, typer.Option("--abort", help="Clear canary, shadow, split and staged version.")
    ] = False,
    routing_key: Annotated[
        str | None,
        typer.Option(
            "--routing-key",
            metavar="FIELD",
            help="Route by this request field or entity key ('' for the entity keys).",
        ),
    ] = None,
    history: Annotated[
        bool, typer.Option("--history", help="Every change of the deployment, oldest first.")
    ] = False,
    expected_revision: Annotated[
        int | None,
        typer.Option(
            "--expected-revision",
            metavar="N",
            min=0,
            help="Change only if the deployment is at revision N; otherwise exit 6.",
        ),
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why, recorded in the history.")
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """Show MODEL's deployment, or change it with exactly one action.

    A REF is a version number, 'latest' or an alias. Every change bumps the revision
    and is recorded with who, when and --reason; --expected-revision makes it a
    compare-and-set.
    """
    given = {
        "--canary": canary is not None,
        "--shadow": shadow is not None,
        "--no-shadow": no_shadow,
        "--split": split is not None,
        "--stage": stage is not None,
        "--switch": switch,
        "--promote": promote,
        "--abort": abort,
        "--routing-key": routing_key is not None,
        "--history": history,
    }
    chosen = [name for name in _ACTIONS if given[name]]
    if len(chosen) > 1:
        raise typer.BadParameter(
            f"give one action at a time, not {' and '.join(chosen)}", param_hint=chosen[1]
        )
    if weight is not None and canary is None:
        raise typer.BadParameter("--weight goes with --canary", param_hint="'--weight'")
    if canary is not None and weight is None:
        raise typer.BadParameter("--canary needs --weight N (percent)", param_hint="'--canary'")
    if expected_revision is not None and (not chosen or history):
        raise typer.BadParameter(
            "--expected-revision goes with a change", param_hint="'--expected-revision'"
        )
    arms = parse_split(split) if split is not None else None
    project = session(ctx).project()
    if history:
        _history(project, model, as_json=as_json)
        return
    cas = _Change(reason=reason, expected_revision=expected_revision)
    if canary is not None and weight is not None:
        d = project.deploy_canary(model, canary, weight, **cas)
    elif shadow is not None or no_shadow:
        d = project.deploy_shadow(model, shadow, **cas)
    elif arms is not None:
        d = project.deploy_split(model, arms[0], arms[1], **cas)
    elif stage is not None:
        d = project.stage(model, stage, **cas)
    elif switch:
        d = project.switch(model, **cas)
    elif promote:
        d = project.promote(model, **cas)
    elif abort:
        d = project.abort(model, **cas)
    elif routing_key is not None:
        d = project.deploy_routing_key(model, routing_key or None, **cas)
    else:
        d = project.deployment(model)
    if as_json:
        print_json(d.to_dict())
        return
    if chosen:
        console().print(
            Text.assemble((d.model, "bold"), f"  {chosen[0].lstrip('-')}: revision {d.revision}"),
            soft_wrap=True,
        )
    _print(d)
