"""``mtlkit demo``: the main job — MultiMNIST, hard-sharing LeNet, baselines, Δm, report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors, print_summary, set_threads

DEMO_CONFIG: dict[str, Any] = {
    "name": "demo-multimnist",
    "seed": 0,
    "data": {"dataset": "multimnist", "options": {}, "split": {"train": 0.8, "val": 0.2, "test": 0.0}},
    "model": {"trunk": {"name": "lenet"}, "architecture": {"name": "hard_sharing"}},
    "training": {"epochs": 6, "batch_size": 128, "optimizer": {"name": "adam", "lr": 0.002}},
    "baselines": True,
}


def demo_config(quick: bool) -> dict:
    import copy

    cfg = copy.deepcopy(DEMO_CONFIG)
    if quick:
        cfg["name"] = "demo-multimnist-quick"
        cfg["data"]["options"] = {"quick": True}
        cfg["training"]["epochs"] = 2
    return cfg


@app.command()
@friendly_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run folder."),
    quick: bool = typer.Option(False, "--quick", help="Small data, 2 epochs (< 60 s): a smoke test."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    threads: int = typer.Option(None, "--threads", help="torch threads."),
) -> None:
    """Train a hard-sharing LeNet on MultiMNIST (left/right digit) with single-task
    baselines; print accuracy per task, Δm, parameters and inference time; write a report.
    The demo replaces its own previous run folder."""
    from mtlkit.config import parse_config
    from mtlkit.run import prepare_from_config, run

    set_threads(threads)
    cfg = parse_config(demo_config(quick), source="(demo)")
    prepared = prepare_from_config(cfg)
    echo(f"MultiMNIST: {len(prepared.train)} train / {len(prepared.val)} val / {len(prepared.test)} test "
         f"pairs, 36x36 images, tasks left and right (10 classes each).")
    result = run(cfg, prepared, out_dir=out, progress=progress, log=echo, overwrite=True)
    print_summary(result.summary)
    echo(f"Run folder: {out}  (report: {out / 'report.html'})")
