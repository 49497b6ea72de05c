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
    from mtlkit._catalog import PACKAGES, entries, kind_names

    if what != "all" and what not in KINDS:
        raise ValueError(f"Unknown list {what!r}; choose all or one of {', '.join(KINDS)}.")
    if what in ("all", "tasks"):
        echo("Task kinds:")
        for k in kind_names():
            echo(f"  {k}")
    for name in PACKAGES:
        if what not in ("all", name):
            continue
        try:  # read from the method files' source: no torch import (mtlkit._catalog)
            found = entries(name)
        except ImportError as exc:  # a package with a missing optional dependency
            echo(f"{name.capitalize()}: (unavailable: {exc})")
            continue
        echo(f"{name.capitalize()}:")
        if not found:
            echo("  (none yet)")
        for e in found:
            params = ", ".join(f"{k}={v!r}" for k, v in e.params.items() if k not in ("tasks", "trunk", "self"))
            paper = f" — {e.paper}" if e.paper else ""
            echo(f"  {e.name}{paper}")
            if params:
                echo(f"      params: {params}")
