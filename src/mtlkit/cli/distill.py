"""``mtlkit distill CONFIG.yaml --teachers RUN_DIRS...``: teachers (single- or multi-task run folders,
several per task = an ensemble) -> one multi-task student."""

from __future__ import annotations

from pathlib import Path

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors, set_threads


@app.command()
@friendly_errors
def distill(
    config: Path = typer.Argument(..., help="YAML run config of the multi-task student."),
    more_teachers: list[Path] = typer.Argument(None, help="More teacher run folders (after --teachers).",
                                               show_default=False),
    teachers: list[Path] = typer.Option([], "--teachers", "-t", help="Teacher run folders (each teaches the "
                                                                     "student tasks its model has; several for "
                                                                     "one task: an ensemble, soft targets "
                                                                     "averaged)."),
    alpha: float = typer.Option(0.5, "--alpha", help="Weight of the label loss (1 − alpha: teacher term)."),
    temperature: float = typer.Option(2.0, "--temperature", "-T", help="Distillation temperature."),
    anneal: bool = typer.Option(False, "--anneal", help="Teacher annealing: alpha rises from 0 to 1."),
    compare: bool = typer.Option(True, "--compare/--no-compare", help="Also train the multi-task model "
                                                                      "without distillation."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: runs/<name>-distill)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set training.epochs=3"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a result in the output folder."),
) -> None:
    """Distil teachers (run folders) into one multi-task student. Several teachers of one task
    form an ensemble: its soft target is the average of their temperature-scaled probabilities
    (MT-DNN, Liu et al. 2019).

    Prints and saves (distill.json) the student vs the teachers vs a multi-task model
    trained without distillation; the student is a loadable run folder.
    """
    from mtlkit.config import load_config
    from mtlkit.run.precheck import precheck

    set_threads(threads)
    dirs = [p for item in [*teachers, *(more_teachers or [])] for p in str(item).split(",") if p]
    if not dirs:
        raise ValueError("Give the teacher run folders: --teachers RUN_DIR [RUN_DIR ...].")
    cfg = load_config(config, list(set_))
    precheck(cfg)  # a misspelt name or key, a value out of range: before torch loads
    from mtlkit.distill import distill as run_distill

    out_dir = out or Path("runs") / f"{cfg.name}-distill"
    res = run_distill(cfg, [Path(d) for d in dirs], alpha=alpha, temperature=temperature, anneal=anneal,
                      compare=compare, out_dir=out_dir, progress=progress, log=echo, overwrite=overwrite)
    echo(res.table())
    echo(f"Wrote {out_dir / 'distill.json'} (student run folder: {out_dir / 'student'})")
