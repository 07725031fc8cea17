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
    server: Annotated[
        str | None,
        typer.Option(
            help="The prediction server whose health the overview shows "
            "(default: http://serving.host:serving.port of the project's settings).",
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level (debug, info, warning, error).")
    ] = "warning",
) -> None:
    """Serve the dashboard (/ui) of the project, read-only but for the CLI's levers
    (rollback, abort a rollout), without serving predictions. `driftloop serve` serves
    it too, next to the API."""
    import uvicorn

    from driftloop.ui.app import ui_app
    from driftloop.ui.health import http_probe

    project = session(ctx).project()
    serving = project.config.serving
    url = server or f"http://{serving.host}:{serving.port}"
    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter(
            f"{url!r} is not an http:// or https:// URL", param_hint="--server"
        )
    console(stderr=True).print(f"dashboard of {project.root} on http://{host}:{port}/ui/")
    app = ui_app(project, health=http_probe(url))
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
