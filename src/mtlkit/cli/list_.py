"""``mtlkit list``: task kinds, architectures, weightings, aggregators, samplers, datasets."""

from __future__ import annotations

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors

KINDS = ("architectures", "weightings", "aggregators", "samplers", "schedules", "auxiliary", "datasets",
         "tasks")


@app.command(name="list")
@friendly_errors
def list_(what: str = typer.Argument("all", help=f"One of: all, {', '.join(KINDS)}.")) -> None:
    """List what is available, with each method's paper and parameters."""
    from mtlkit import _registry as R
    from mtlkit.tasks import KINDS as TASK_KINDS

    regs = {"architectures": R.ARCHITECTURES, "weightings": R.WEIGHTINGS, "aggregators": R.AGGREGATORS,
            "samplers": R.SAMPLERS, "schedules": R.SCHEDULES, "auxiliary": R.AUXILIARY, "datasets": R.DATASETS}
    if what != "all" and what not in KINDS:
        raise ValueError(f"Unknown list {what!r}; choose all or one of {', '.join(KINDS)}.")
    if what in ("all", "tasks"):
        echo("Task kinds:")
        for k in TASK_KINDS:
            echo(f"  {k}")
    for name, reg in regs.items():
        if what not in ("all", name):
            continue
        try:
            entries = list(reg)
        except ImportError as exc:  # a package with a missing optional dependency
            echo(f"{name.capitalize()}: (unavailable: {exc})")
            continue
        echo(f"{name.capitalize()}:")
        if not entries:
            echo("  (none yet)")
        for e in entries:
            params = ", ".join(f"{k}={v!r}" for k, v in e.parameters().items()
                               if k not in ("tasks", "trunk", "self"))
            paper = f" — {e.paper}" if e.paper else ""
            echo(f"  {e.name}{paper}")
            if params:
                echo(f"      params: {params}")
