"""``mtlkit rl CONFIG.yaml``: multi-task reinforcement learning (``kind: rl`` configs).

Trains every method of the config (``single``, ``shared``, ``distral``, ``care``) with every
seed, prints the table of evaluation returns and Δm, and writes the run folder with its
report. ``mtlkit rl --resume DIR`` continues a run from its checkpoints with the run's own
config. ``mtlkit rl-export DIR --method distral --distilled -o pi0.pt`` exports a trained
policy (TorchScript or ONNX) that maps an observation (and task id) to action probabilities.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors, set_threads


@app.command("rl")
@friendly_errors
def rl(
    config: Path = typer.Argument(None, help="YAML config with 'kind: rl' (optional with --resume)."),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<name>)."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder from its checkpoints."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set budget=20000"),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final table."),
) -> None:
    """Train single / shared / Distral / CARE agents on a family of Gymnasium tasks."""
    from mtlkit.rl._run import run_rl
    from mtlkit.rl.config import load_rl_config
    from mtlkit.rl.report import rl_table

    set_threads(threads)
    if config is None and resume is None:
        raise ValueError("Give the run's CONFIG file (or --resume DIR to continue a run).")
    if resume is not None and out is not None and out != resume:
        raise ValueError("--out and --resume name different folders; --resume continues the run in its folder.")
    if config is None:
        if not (resume / "config.yaml").exists():
            raise FileNotFoundError(f"Nothing to resume: {str(resume)!r} holds no RL run (config.yaml).")
        config = resume / "config.yaml"
    cfg = load_rl_config(config, list(set_))
    run_dir = resume or out or Path("runs") / cfg.name
    result = run_rl(cfg, run_dir, resume=resume is not None, log=None if quiet else echo)
    echo(rl_table(result.summary))
    echo("Δm: relative change of the mean evaluation return per task, in %, higher is better.")
    echo(f"Run folder: {run_dir}  (report: {run_dir / 'report.html'})")


@app.command("rl-export")
@friendly_errors
def rl_export(
    run_dir: Path = typer.Argument(..., help="A finished RL run folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file."),
    method: str = typer.Option(..., "--method", "-m", help="single | shared | distral | care"),
    seed: int = typer.Option(None, "--seed", help="Which seed's policy (default: the first of the run)."),
    task: str = typer.Option(None, "--task", help="Export this task's policy alone (obs -> probs)."),
    distilled: bool = typer.Option(False, "--distilled", help="Distral: export the distilled policy π̂₀."),
    fmt: str = typer.Option("torchscript", "--format", "-f", help="torchscript | onnx"),
) -> None:
    """Export a trained policy: observation (and task id) -> action probabilities."""
    from mtlkit.rl._run import load_rl_run, seed_dir
    from mtlkit.rl.export import export_policy

    cfg, _ = load_rl_run(run_dir)
    if method not in cfg.methods:
        raise ValueError(f"The run has no method {method!r}; it has {cfg.methods}.")
    seed = cfg.seeds[0] if seed is None else seed
    if seed not in cfg.seeds:
        raise ValueError(f"The run has no seed {seed}; it has {cfg.seeds}.")
    path = export_policy(seed_dir(run_dir, method, seed), out, fmt=fmt, task=task, distilled=distilled)
    what = "distilled policy" if distilled else f"policy of task {task!r}" if task else "multi-task policy"
    inputs = "obs" if (distilled or task) else "obs, task"
    echo(f"Exported the {what} of {method} (seed {seed}) as {fmt} to {path}: ({inputs}) -> action probabilities "
         f"(see {path}.json)")
