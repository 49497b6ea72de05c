"""``mtlkit evaluate RUN_DIR [--data FILE]``: the run's model is verified first (its files
against their checksums): a truncated ``model.safetensors`` or a missing ``model.json`` is an
error, also when only ``summary.json`` is shown."""

from __future__ import annotations

from pathlib import Path

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors, print_summary


@app.command()
@friendly_errors
def evaluate(
    run_dir: Path = typer.Argument(..., help="A finished run folder."),
    data: Path = typer.Option(None, "--data", help="A labelled CSV/Parquet file to evaluate on."),
) -> None:
    """Show the run's test results, or evaluate its model on a labelled file."""
    from mtlkit.run import SUMMARY, read_json, verify_model

    if data is None:
        verify_model(run_dir)  # the summary describes this model: refuse a damaged one
        print_summary(read_json(Path(run_dir) / SUMMARY))
        return
    from mtlkit.data._table import read_table
    from mtlkit.inference import evaluate_frame, load_run

    run = load_run(run_dir)
    metrics = evaluate_frame(run, read_table(data))
    width = max(len(t.name) for t in run.tasks)
    for t in run.tasks:
        vals = "  ".join(f"{k}={v:.4f}" for k, v in metrics[t.name].items())
        echo(f"{t.name:<{width}}  {vals}")
