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
    top_k: int | None = typer.Option(None, "--top-k", help="Recommend: the K best items per user of INPUT "
                                     "(candidates: the items seen in training, minus the user's own)."),
    user_column: str = typer.Option("user", "--user-column", help="--top-k: the user ID column."),
    item_column: str = typer.Option("item", "--item-column", help="--top-k: the item ID column."),
    task: str | None = typer.Option(None, "--task", help="--top-k: the task whose score ranks "
                                    "(default: the first primary binary task, else the first primary)."),
    include_seen: bool = typer.Option(False, "--include-seen", help="--top-k: keep the user's training items."),
    train: Path | None = typer.Option(None, "--train", help="--top-k: the training table (default: re-built "
                                      "from the run's config.yaml)."),
) -> None:
    """Predict every primary task: class and probability, or value, one column per task.
    With --top-k K: the K best items per user (user, rank, item, score)."""
    from mtlkit._io import atomic_write
    from mtlkit.data._table import read_table
    from mtlkit.inference import load_run, predict_frame

    if out.exists() and input.exists() and out.samefile(input):  # also a link to it
        raise FileExistsError(f"--out {str(out)!r} is the input file; writing the predictions there would "
                              f"replace your data. Choose another --out.")
    run = load_run(run_dir)
    df = read_table(input)
    if top_k is not None:
        from mtlkit.evaluation.ranking_topk import recommend

        pred = recommend(run, run_dir, df, k=top_k, user_column=user_column, item_column=item_column, task=task,
                         include_seen=include_seen, train=read_table(train) if train is not None else None)
        atomic_write(out, pred.to_csv(index=False))
        echo(f"Wrote the top {top_k} items of {pred[user_column].nunique()} user(s) to {out}")
        return
    pred = predict_frame(run, df, all_tasks=all_tasks)
    atomic_write(out, pred.to_csv(index=False))
    echo(f"Wrote {len(pred)} predictions ({', '.join(pred.columns)}) to {out}")
