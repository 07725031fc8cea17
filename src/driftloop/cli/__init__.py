"""The ``driftloop`` command line: a thin layer over :class:`driftloop.project.Project`.

``main`` is the console script's entry point; ``app`` is the Typer application (for
``typer.testing.CliRunner``). Both map errors to exit codes the same way.
"""

from driftloop.cli.app import app, main

__all__ = ["app", "main"]
