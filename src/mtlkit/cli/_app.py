"""The Typer application object shared by the command modules.

``rich_markup_mode=None``: help and usage errors are formatted by Typer's plain (click)
formatter. Typer's rich formatter imports ``rich`` (about a quarter of a second of CPU), which
alone would break the start-up goal of ``mtlkit --help`` <= 0.5 s (issue 22,
``benchmarks/startup.py``); no help text of ours uses rich markup.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="mtlkit",
    help="Multi-task learning: train one model for several tasks, compare with single-task models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
