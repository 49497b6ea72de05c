"""``mtlkit train CONFIG.yaml``: train the multi-task model and its single-task baselines.

``mtlkit train --resume DIR`` continues the run in DIR from its checkpoints with the run's
own ``config.yaml`` (``--set`` applies on top of it; ``--set training.epochs=N`` with more
epochs extends a finished run). Every problem of the config is reported at once, before any
data loads or any file is written.

A config that names user code (a hint's ``fn: "my_hints:parity"``) runs it only with
``--code my_hints.py`` (or ``--code package.module``): a config, or a run folder being
resumed, never makes mtlkit import code by itself (:mod:`mtlkit.user_code`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors, print_summary, set_threads

if TYPE_CHECKING:
    from mtlkit.config import RunConfig


@app.command()
@friendly_errors
def train(
    config: Path = typer.Argument(None, help="YAML run config (optional with --resume: the run's own "
                                  "config.yaml is used)."),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<name>)."),
    no_baselines: bool = typer.Option(False, "--no-baselines", help="Skip the single-task baselines."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set training.epochs=3"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the earlier run in --out (it is "
                                   "moved to --out/replaced/, never deleted)."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder from its checkpoints "
                                "and its own config.yaml (more training.epochs extend a finished run)."),
    force: bool = typer.Option(False, "--force", help="Resume even if the config differs in more than "
                               "the budget (training.epochs)."),
    nproc_per_node: int = typer.Option(None, "--nproc-per-node", help="Train data-parallel in N processes "
                                       "(runs torchrun; see docs/scaling.md)."),
    code: list[str] = typer.Option([], "--code", help="Allow the config to use the functions of this Python "
                                   "file (my_hints.py) or installed module (package.module); repeatable. "
                                   "Without it a config that names code is refused."),
    allow_data_change: bool = typer.Option(False, "--allow-data-change", help="Resume even if the data differs "
                                           "from the run's (a warning, recorded in run.json)."),
    seeds: int = typer.Option(None, "--seeds", help="Train N times (seeds seed, seed+1, ...; each in "
                              "--out/seed-<s>/) and report mean ± sd, 95 % intervals, paired tests and a "
                              "verdict per task. YAML: seeds: [0, 1, 2]."),
) -> None:
    """Train from a YAML config; writes config, metrics, weights, summary and report."""
    from mtlkit.user_code import allow_code

    set_threads(threads)
    for spec in code:  # before the config is checked: its hints resolve against these
        allow_code(spec)
    if seeds is not None:  # checked before the config: --seeds 0 is an error whatever the config says
        from mtlkit.run.seeds import seeds_from_count

        seeds_from_count(seeds)
    cfg = _load(config, resume, list(set_))
    if no_baselines:
        cfg.baselines = False
    # a misspelt name or key, or a value out of range, is reported before torch loads when that
    # is every problem of the config (mtlkit.run.precheck); otherwise the full check below
    from mtlkit.run.precheck import precheck

    precheck(cfg)
    from mtlkit.run import check, prepare_from_config, run

    run_dir = resume or out or Path("runs") / cfg.name
    if seeds is not None or cfg.seeds:
        _train_seeds(cfg, seeds, run_dir, progress=progress, overwrite=overwrite, resume=resume,
                     nproc_per_node=nproc_per_node, config=config)
        return
    # every problem of the config and of the run folder, before any data loads or file is written
    check(cfg, run_dir, resume=resume is not None, overwrite=overwrite, force=force)
    if nproc_per_node is not None:  # each worker runs this command without the option
        from mtlkit.training.distributed import launch

        args = ["train", *([str(config)] if config is not None else []),
                "--progress" if progress else "--no-progress"]
        for flag, value in (("--out", out), ("--threads", threads), ("--resume", resume)):
            args += [flag, str(value)] if value else []
        for s in set_:
            args += ["--set", s]
        for c in code:
            args += ["--code", c]
        args += [f for f, on in (("--no-baselines", no_baselines), ("--overwrite", overwrite), ("--force", force),
                                 ("--allow-data-change", allow_data_change)) if on]
        raise typer.Exit(code=launch(nproc_per_node, args))
    prepared = prepare_from_config(cfg)
    result = run(cfg, prepared, out_dir=run_dir, progress=progress, log=echo, overwrite=overwrite,
                 resume=resume is not None, force=force, allow_data_change=allow_data_change)
    from mtlkit.training.distributed import exit_worker, is_distributed, is_main_process

    if is_main_process():  # distributed: rank 0 prints
        print_summary(result.summary)
        from mtlkit.evaluation.ranking_run import ranking_table

        ranking = ranking_table(result.summary)
        if ranking:
            echo(ranking)
        echo(f"Run folder: {run_dir}  (report: {run_dir / 'report.html'})")
    if is_distributed():  # a finished torchrun worker: leave without the runtime's teardown
        exit_worker(0)


def _train_seeds(cfg: RunConfig, count: int | None, run_dir: Path, *, progress: bool, overwrite: bool,
                 resume: Path | None, nproc_per_node: int | None, config: Path | None = None) -> None:
    """``--seeds N`` (or the config's ``seeds:``): one run per seed, then the evidence."""
    from mtlkit.report.seeds import seeds_table
    from mtlkit.run import check
    from mtlkit.run.seeds import run_seeds, seeds_from_count

    if resume is not None or nproc_per_node is not None:
        raise ValueError("--seeds (or a config's seeds:) cannot be combined with --resume or --nproc-per-node; "
                         "resume one seed's run with --resume DIR/seed-<s>.")
    chosen = seeds_from_count(count, start=cfg.seed) if count is not None else list(cfg.seeds or [])
    check(cfg)  # every problem of the config, before any data loads or file is written
    result = run_seeds(cfg, chosen, out_dir=run_dir, progress=progress, log=echo, overwrite=overwrite)
    echo(seeds_table(result.record, config=str(config) if config is not None else "CONFIG.yaml"))
    echo(f"Run folder: {run_dir}  (report: {run_dir / 'report.html'}; each seed in {run_dir}/seed-<s>/)")


def _load(config: Path | None, resume: Path | None, overrides: list[str]) -> RunConfig:
    """The config file with the overrides; without one, the resumed run's own config.yaml
    (that of an unfinished ``--overwrite`` run beside it, if there is one)."""
    from mtlkit.config import load_config

    if config is not None:
        return load_config(config, overrides)
    from mtlkit.run import RunFolder  # here: a config file is checked without loading torch

    if resume is None:
        raise ValueError("Give the run's CONFIG file (or --resume DIR to continue a run with its own "
                         "config.yaml).")
    saved = RunFolder(resume).active().config_path
    if not saved.exists():
        raise FileNotFoundError(f"Nothing to resume: {str(resume)!r} holds no run (config.yaml).")
    return load_config(saved, overrides)
