"""``driftloop ui``: the dashboard alone, without the prediction server."""

from __future__ import annotations

from typing import Annotated

import typer

from driftloop.cli.output import console, session

__all__ = ["ui"]


def ui(
    ctx: typer.Context,
    *,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8090,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level (debug, info, warning, error).")
    ] = "warning",
) -> None:
    """Serve the dashboard (/ui) of the project, read-only but for the CLI's levers
    (rollback, abort a rollout), without serving predictions. `driftloop serve` serves
    it too, next to the API."""
    import uvicorn

    from driftloop.ui.app import ui_app

    project = session(ctx).project()
    console(stderr=True).print(f"dashboard of {project.root} on http://{host}:{port}/ui/")
    uvicorn.run(ui_app(project), host=host, port=port, log_level=log_level, access_log=False)
