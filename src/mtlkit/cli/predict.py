"""``mtlkit predict RUN_DIR INPUT --out predictions.csv``."""

from __future__ import annotations

from pathlib import Path

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors


@app.command()
@friendly_errors
def predict(
    run_dir: Path = typer.Argument(..., help="A finished run folder."),
    input: Path = typer.Argument(..., help="CSV or Parquet file with the feature columns."),
    out: Path = typer.Option(Path("predictions.csv"), "--out", "-o", help="Where to write predictions."),
    all_tasks: bool = typer.Option(False, "--all-tasks", help="Also output auxiliary tasks."),
) -> None:
    """Predict every primary task: class and probability, or value, one column per task."""
    from mtlkit._io import atomic_write
    from mtlkit.data._table import read_table
    from mtlkit.inference import load_run, predict_frame

    if out.exists() and input.exists() and out.samefile(input):  # also a link to it
        raise FileExistsError(f"--out {str(out)!r} is the input file; writing the predictions there would "
                              f"replace your data. Choose another --out.")
    run = load_run(run_dir)
    df = read_table(input)
    pred = predict_frame(run, df, all_tasks=all_tasks)
    atomic_write(out, pred.to_csv(index=False))
    echo(f"Wrote {len(pred)} predictions ({', '.join(pred.columns)}) to {out}")
