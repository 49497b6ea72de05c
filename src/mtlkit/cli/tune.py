"""``mtlkit tune CONFIG.yaml --trials N``: search what the config's ``search:`` section marks
searchable with Optuna (seeded TPE, median pruning on the per-epoch validation objective),
resumable from its study (SQLite in the run folder, or ``--storage URL`` shared by several
machines), then retrain the best config over ``--seeds`` seeds with intervals and verdicts.

Run the same command again to continue an interrupted or shorter study: finished trials are
never repeated. See :mod:`mtlkit.tune`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors, set_threads


@app.command()
@friendly_errors
def tune(
    config: Path = typer.Argument(..., help="YAML run config with a 'search:' section."),
    trials: int = typer.Option(..., "--trials", "-n", help="Finished trials the study should hold (a resumed "
                               "study runs only the missing ones)."),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<name>-tune)."),
    storage: str = typer.Option(None, "--storage", help="Optuna storage URL shared by several workers "
                                "(default: SQLite in --out/study.db)."),
    study: str = typer.Option(None, "--study", help="Study name in the storage (default: mtlkit-<name>)."),
    seeds: int = typer.Option(3, "--seeds", help="Retrain the best config over this many seeds "
                              "(intervals and verdicts)."),
    no_retrain: bool = typer.Option(False, "--no-retrain", help="Skip the retrain of the best config."),
    timeout: float = typer.Option(None, "--timeout", help="Start no new trial after this many seconds."),
    no_prune: bool = typer.Option(False, "--no-prune", help="Train every trial to the end (no pruning)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set training.epochs=3"),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
    progress: bool = typer.Option(False, "--progress/--no-progress", help="Progress bars in the retrain."),
) -> None:
    """Search the config's 'search:' space with Optuna, then retrain the best config over seeds."""
    from mtlkit.config import load_config
    from mtlkit.run.precheck import precheck

    cfg = load_config(config, list(set_))
    # a misspelt name or key, a value out of range, before torch and Optuna load: the
    # config without its search is checked in full before any trial (mtlkit.tune.execute)
    precheck(cfg)
    from mtlkit.tune._optuna import require_optuna

    require_optuna()  # the message says which extra to install
    if trials < 1:
        raise ValueError(f"The number of trials (--trials) must be a positive integer. Got {trials}.")
    if not no_retrain:
        from mtlkit.run.seeds import seeds_from_count

        seeds_from_count(seeds)
    set_threads(threads)
    from mtlkit.tune import tune as run_tune

    run_dir = out or Path("runs") / f"{cfg.name}-tune"
    result = run_tune(cfg, trials=trials, out_dir=run_dir, storage=storage, study_name=study,
                      seeds=None if no_retrain else seeds, timeout=timeout, prune=not no_prune, log=echo,
                      progress=progress)
    best = result.record["best"]
    echo(f"Best trial {best['number']}: {result.record['objective']} {best['value']:.4g} with "
         + ", ".join(f"{k}={v}" for k, v in (best.get("params") or {}).items()))
    if result.seeds is not None:
        from mtlkit.report.seeds import seeds_table

        echo(seeds_table(result.seeds.record, config=None))  # no tune hint after a tune
    echo(f"Run folder: {run_dir}  (report: {run_dir / 'report.html'}; best config: "
         f"{run_dir / 'best_config.yaml'})")
