"""The root ``driftloop`` command: global options, ``apply``, ``status``, and the one place
where exceptions become exit codes and messages.

Exit codes: 0 ok, 1 internal error, 2 usage, 3 input rejected or unreadable, 4 not found,
5 config/contract/definition error, 6 state conflict (see ``docs/cli.md``). A
:class:`~driftloop.errors.DriftloopError` carries its own ``exit_code``; this module only
prints it (``error: <message>``, or the error's ``to_dict()`` as JSON when ``--json`` was
given) and returns the code.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from driftloop import __version__
from driftloop.cli import backtest as backtest_cmd
from driftloop.cli import data as data_cmd
from driftloop.cli import demo as demo_cmd
from driftloop.cli import deploy as deploy_cmd
from driftloop.cli import features as features_cmd
from driftloop.cli import init as init_cmd
from driftloop.cli import loop as loop_cmd
from driftloop.cli import models as models_cmd
from driftloop.cli import monitor as monitor_cmd
from driftloop.cli import predictions as predictions_cmd
from driftloop.cli import rollouts as rollouts_cmd
from driftloop.cli import serve as serve_cmd
from driftloop.cli import train as train_cmd
from driftloop.cli import ui as ui_cmd
from driftloop.cli.output import (
    JsonOption,
    Session,
    console,
    fmt_count,
    fmt_time,
    kv_table,
    print_json,
    session,
    table,
)
from driftloop.errors import DriftloopError

__all__ = ["EXIT_CODES", "app", "main", "run"]

EXIT_CODES = {
    0: "ok",
    1: "internal error",
    2: "usage error",
    3: "input rejected or unreadable",
    4: "not found",
    5: "config, contract or definition error",
    6: "state conflict",
    7: "backend unavailable",
    8: "a model version failed its gates",
}
INTERRUPTED = 130


def _print_error(message: str, error: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json(error, file=sys.stderr)
        return
    err = console(stderr=True)
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


def run(invoke: Callable[[], Any], argv: Sequence[str]) -> int:
    """Call ``invoke`` (the parsed command) and turn what it raises into an exit code."""
    as_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    try:
        result = invoke()
    except DriftloopError as exc:
        _print_error(exc.message, exc.to_dict(), as_json=as_json)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        console(stderr=True).print("aborted", style="red")
        return 1
    except typer.TyperException as exc:  # click's usage errors (exit 2) and file errors
        err = console(stderr=True)
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            console().print(Text(ctx.get_help()))
            return exc.exit_code
        if as_json:
            body = {"error": "usage_error", "message": exc.format_message()}
            if ctx is not None:
                body["usage"] = ctx.get_usage()
            print_json(body, file=sys.stderr)
            return exc.exit_code
        if ctx is not None:
            err.print(Text(ctx.get_usage()), soft_wrap=True)
            err.print(Text(f"Try '{ctx.command_path} --help' for help."), soft_wrap=True)
        err.print(Text.assemble(("error: ", "bold red"), exc.format_message()), soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        return 1
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        message = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        debug = os.environ.get("DRIFTLOOP_DEBUG") == "1"
        if debug:
            traceback.print_exc(file=sys.stderr)
        _print_error(
            f"internal error: {message}",
            {"error": "internal_error", "message": message},
            as_json=as_json,
        )
        if not as_json and not debug:
            console(stderr=True).print(
                "(set DRIFTLOOP_DEBUG=1 to see the traceback)", style="dim", soft_wrap=True
            )
        return 1
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


class DriftloopGroup(TyperGroup):
    """The root group; its ``main`` runs the command without click's own error handling
    and maps exceptions through :func:`run` instead, in standalone mode too (so
    ``CliRunner`` sees the same exit codes and messages as the console script)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)

        def invoke() -> Any:
            return TyperGroup.main(
                self,
                argv,
                prog_name or "driftloop",
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )

        code = run(invoke, argv)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    name="driftloop",
    cls=DriftloopGroup,
    help="Versioned data, features, models and deployments in one loop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"driftloop {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    project: Annotated[
        Path | None,
        typer.Option(
            "--project",
            "-p",
            envvar="DRIFTLOOP_PROJECT",
            metavar="DIR",
            help="The project folder (default: the nearest folder at or above the "
            "current one holding driftloop.yaml).",
            file_okay=False,
            dir_okay=True,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the driftloop version and exit.",
        ),
    ] = False,
) -> None:
    """Versioned data, features, models and deployments in one loop."""
    del version
    state = Session(project_dir=project)
    ctx.obj = state
    ctx.call_on_close(state.close)


app.command("init")(init_cmd.init)


@app.command()
def apply(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Register the project's definitions.

    Each source's contract becomes a new version when it changed compatibly; a breaking
    change is refused (exit 5) and listed.
    """
    project = session(ctx).project()
    before = {s.name: s.contract_version for s in project.sources()}
    applied = project.apply()
    results: list[dict[str, Any]] = []
    for cv in applied.sources:
        old = before.get(cv.source)
        status = "new" if old is None else ("unchanged" if old == cv.version else "changed")
        results.append(
            {
                "name": cv.source,
                "contract_version": cv.version,
                "hash": cv.hash,
                "status": status,
                "changes": cv.changes if status == "changed" else [],
            }
        )
    views = [
        {"name": v.name, "version": v.version, "status": "new" if v.new else "unchanged"}
        for v in applied.views
    ]
    if as_json:
        print_json({"project": project.config.name, "sources": results, "feature_views": views})
        return
    out = console()
    if not results and not views:
        definitions = project.config.definitions
        out.print(f"nothing to apply: {definitions} declares no sources or feature views")
        return
    for r in results:
        label = {"new": "registered", "changed": "updated", "unchanged": "unchanged"}
        out.print(
            Text.assemble(
                (f"{r['name']}", "bold"),
                f"  contract v{r['contract_version']}  ",
                (label[r["status"]], "green" if r["status"] != "unchanged" else "dim"),
            )
        )
        for change in r["changes"]:
            out.print(f"  + {change}", soft_wrap=True)
    for v in views:
        out.print(
            Text.assemble(
                (v["name"], "bold"),
                f"  feature view @{v['version']}  ",
                (
                    "registered" if v["status"] == "new" else "unchanged",
                    "green" if v["status"] == "new" else "dim",
                ),
            )
        )


@app.command()
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the project, its stores and its sources."""
    info = session(ctx).project().status()
    if as_json:
        print_json(info)
        return
    out = console()
    out.print(
        kv_table(
            [
                ("project", info["project"]),
                ("root", info["root"]),
                ("driftloop", info["driftloop_version"]),
                ("metadata", f"{info['metadata']} (schema {info['metadata_revision'] or 'none'})"),
                ("artifacts", info["artifacts"]),
            ]
        )
    )
    out.print()
    if not info["sources"]:
        out.print("no sources yet: declare one in the definitions module, then `driftloop apply`")
        return
    rows = [
        (
            s["name"],
            f"v{s['contract_version']}" if s["registered"] else "not applied",
            "yes" if s["declared"] else "no",
            fmt_count(s["versions"]),
            fmt_count(s["rows"]),
            (s["latest"] or "-")[:12],
            fmt_time(s["latest_at"]),
            fmt_count(s["quarantined"]),
        )
        for s in info["sources"]
    ]
    out.print(
        table(
            [
                "source",
                "contract",
                "declared",
                "versions",
                "rows",
                "latest",
                "latest at",
                "quarantined",
            ],
            rows,
            right=["versions", "rows", "quarantined"],
        )
    )


app.add_typer(data_cmd.app, name="data")
app.add_typer(features_cmd.app, name="features")
app.add_typer(models_cmd.app, name="models")
app.add_typer(monitor_cmd.app, name="monitor")
app.add_typer(loop_cmd.app, name="runs")
app.add_typer(rollouts_cmd.app, name="rollouts")
app.command("rollback")(rollouts_cmd.rollback)
app.command("materialize")(features_cmd.materialize_command)
app.command("train")(train_cmd.train)
app.command("deploy")(deploy_cmd.deploy)
app.command("serve")(serve_cmd.serve)
app.command("predictions")(predictions_cmd.predictions)
app.command("run")(loop_cmd.run)
app.command("backtest")(backtest_cmd.backtest)
app.command("demo")(demo_cmd.demo)
app.command("ui")(ui_cmd.ui)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: run ``driftloop`` with ``argv`` (default ``sys.argv[1:]``) and
    return the exit code."""
    command = typer.main.get_command(app)
    code: int = command.main(args=argv, prog_name="driftloop", standalone_mode=False)
    return code
