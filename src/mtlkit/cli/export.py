"""``mtlkit export RUN_DIR --primary-only --format onnx|torchscript|safetensors``."""

from __future__ import annotations

from pathlib import Path

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors


@app.command()
@friendly_errors
def export(
    run_dir: Path = typer.Argument(..., help="A finished run folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (onnx, torchscript) or folder (safetensors)."),
    fmt: str = typer.Option("safetensors", "--format", "-f", help="safetensors | torchscript | onnx"),
    primary_only: bool = typer.Option(False, "--primary-only", help="Drop auxiliary heads and decoders."),
) -> None:
    """Export the trained model (optionally the primary tasks alone) for serving."""
    from mtlkit._text import plural
    from mtlkit.export import export_model
    from mtlkit.export import primary_only as make_primary
    from mtlkit.inference import load_run

    run = load_run(run_dir)
    model, tasks = run.model, run.tasks
    if run.preprocessor is not None and fmt in ("onnx", "torchscript"):
        # a table run: the preprocessing and the label decoding go into the graph (raw rows in)
        from mtlkit.export import export_table

        path = export_table(run, out, fmt=fmt, primary=primary_only)
        shipped = [t.name for t in run.tasks if t.role == "primary" or not primary_only]
        echo(f"Exported {plural(len(shipped), 'task')} ({', '.join(shipped)}) taking raw rows "
             f"({plural(len(run.preprocessor.features), 'feature column')}) as {fmt} to {path}")
        return
    if primary_only:
        model, tasks = make_primary(model, tasks, run.meta["input_shape"])
    path = export_model(model, tasks, run.meta["input_shape"], out, fmt=fmt, meta=run.meta)
    n = sum(p.numel() for p in model.parameters())
    echo(f"Exported {plural(len(tasks), 'task')} ({', '.join(t.name for t in tasks)}), {n:,} parameters, as {fmt} to {path}")
