"""``mtlkit affinity CONFIG.yaml [--method tag|cosine] [--every N]``: inter-task affinity."""

from __future__ import annotations

from pathlib import Path

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors, set_threads


@app.command()
@friendly_errors
def affinity(
    config: Path = typer.Argument(..., help="YAML run config (data, tasks, model, training)."),
    method: str = typer.Option("tag", "--method", help="tag (look-ahead, Fifty et al. 2021) or cosine "
                                                       "(gradient cosine from the conflict monitor)."),
    every: int = typer.Option(1, "--every", help="TAG: measure every N-th training step."),
    epochs: int = typer.Option(None, "--epochs", help="Train this many epochs instead of the config's."),
    lookahead_lr: float = typer.Option(None, "--lookahead-lr", help="TAG look-ahead learning rate "
                                                                     "(default: the optimiser's)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: runs/<name>-affinity)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set training.epochs=3"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
) -> None:
    """Measure the pairwise task affinity (TAG look-ahead or gradient cosine).

    Trains all tasks together once; writes affinity.csv, affinity.json and the heatmap
    affinity.png, and prints the matrix. Row i, column j: the affinity of task i onto task j.
    """
    from mtlkit.config import load_config
    from mtlkit.run.precheck import precheck

    set_threads(threads)
    cfg = load_config(config, list(set_))
    precheck(cfg)  # a misspelt name or key, a value out of range: before torch loads
    from mtlkit.analysis import compute_affinity

    res = compute_affinity(cfg, method=method, every=every, lookahead_lr=lookahead_lr, epochs=epochs,
                           progress=progress)
    out_dir = out or Path("runs") / f"{cfg.name}-affinity"
    paths = res.save(out_dir)
    echo(str(res))
    steps = res.meta.get("steps_measured")
    if steps is not None:
        echo(f"({steps} measured steps of {res.meta.get('steps_total')}, every {res.meta.get('every')})")
    echo(f"Wrote {', '.join(str(p) for p in paths.values())}")
    echo(f"Next: mtlkit group {out_dir} --networks 2")
