"""``mtlkit train CONFIG.yaml``: train the multi-task model and its single-task baselines."""

from __future__ import annotations

from pathlib import Path

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors, print_summary, set_threads


@app.command()
@friendly_errors
def train(
    config: Path = typer.Argument(..., help="YAML run config."),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<name>)."),
    no_baselines: bool = typer.Option(False, "--no-baselines", help="Skip the single-task baselines."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set training.epochs=3"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished run in --out."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder from its checkpoints."),
    force: bool = typer.Option(False, "--force", help="Resume even if the config differs."),
    nproc_per_node: int = typer.Option(None, "--nproc-per-node", help="Train data-parallel in N processes "
                                       "(runs torchrun; see docs/scaling.md)."),
) -> None:
    """Train from a YAML config; writes config, metrics, weights, summary and report."""
    from mtlkit.config import load_config
    from mtlkit.experiment import prepare_from_config, run

    set_threads(threads)
    cfg = load_config(config, list(set_))
    if no_baselines:
        cfg.baselines = False
    if nproc_per_node is not None:  # validated above; each worker runs this command without the option
        from mtlkit.training.distributed import launch

        args = ["train", str(config), "--progress" if progress else "--no-progress"]
        for flag, value in (("--out", out), ("--threads", threads), ("--resume", resume)):
            args += [flag, str(value)] if value else []
        for s in set_:
            args += ["--set", s]
        args += [f for f, on in (("--no-baselines", no_baselines), ("--overwrite", overwrite), ("--force", force)) if on]
        raise typer.Exit(code=launch(nproc_per_node, args))
    run_dir = resume or out or Path("runs") / cfg.name
    prepared = prepare_from_config(cfg)
    result = run(cfg, prepared, out_dir=run_dir, progress=progress, log=echo, overwrite=overwrite,
                 resume=resume is not None, force=force)
    from mtlkit.training.distributed import exit_worker, is_distributed, is_main_process

    if is_main_process():  # distributed: rank 0 prints
        print_summary(result.summary)
        echo(f"Run folder: {run_dir}  (report: {run_dir / 'report.html'})")
    if is_distributed():  # a finished torchrun worker: leave without the runtime's teardown
        exit_worker(0)
