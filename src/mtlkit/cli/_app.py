"""The Typer application object shared by the command modules."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="mtlkit",
    help="Multi-task learning: train one model for several tasks, compare with single-task models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
